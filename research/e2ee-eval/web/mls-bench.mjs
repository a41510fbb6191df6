// MLS (ts-mls) cost for one meeting of N members. Same code runs in node (mls-bench-node.mjs)
// and in Chromium (mls-bench.html, import map, no bundler).
//
// Setup: member 0 creates the group and adds members 1..N-2 in one commit (batch).
// Then, measured: (a) ADD: member 0 adds member N-1 -> group of N: createCommit, the
// newcomer's joinGroup(welcome), and commit processing by sampled existing members;
// (b) REMOVE at size N: member 0 removes one member: createCommit + processing by samples;
// (c) REMOVE committed by a member whose path is not yet populated (worst case);
// (d) UPDATE (self-update commit) by a sampled member, processed by member 0.
// Every message goes through encodeMlsMessage/decodeMlsMessage, as it would through the
// server (the delivery service). Samples are joined members at leaves 1, N/2, N-2.
// Also: per-sender frame keys from the MLS exporter for all N senders, and the epoch authenticator.

const te = new TextEncoder();
const now = () => performance.now();

export async function runMlsBench(mls, { n = 100, suite = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519', log = console.log, allMembers = false } = {}) {
  const {
    getCiphersuiteImpl, getCiphersuiteFromName, generateKeyPackage, defaultCapabilities, defaultLifetime,
    createGroup, createCommit, joinGroup, processPrivateMessage, emptyPskIndex, encodeMlsMessage, decodeMlsMessage, mlsExporter,
  } = mls;
  const out = { suite, n, ms: {}, bytes: {} };
  const impl = await getCiphersuiteImpl(getCiphersuiteFromName(suite));
  const wire = (msg) => { const b = encodeMlsMessage(msg); return [decodeMlsMessage(b, 0)[0], b.length]; };

  let t = now();
  const kps = [];
  for (let i = 0; i < n; i++) {
    kps.push(await generateKeyPackage({ credentialType: 'basic', identity: te.encode('member-' + i) }, defaultCapabilities(), defaultLifetime, [], impl));
  }
  out.ms.keyPackagesEach = (now() - t) / n;

  t = now();
  let st0 = await createGroup(te.encode('room-xyz'), kps[0].publicPackage, kps[0].privatePackage, [], impl);
  out.ms.createGroup = now() - t;

  // batch add 1..n-2
  const addOf = (i) => ({ proposalType: 'add', add: { keyPackage: kps[i].publicPackage } });
  t = now();
  let res = await createCommit({ state: st0, cipherSuite: impl }, { extraProposals: Array.from({ length: n - 2 }, (_, k) => addOf(k + 1)), ratchetTreeExtension: true });
  out.ms.batchAddCommit = now() - t;
  st0 = res.newState;
  let [welcomeMsg, wlen] = wire({ welcome: res.welcome, wireformat: 'mls_welcome', version: 'mls10' });
  out.bytes.batchWelcome = wlen;

  const sampleLeaves = allMembers ? Array.from({ length: n - 2 }, (_, k) => k + 1) : [1, Math.floor(n / 2), n - 2];
  const members = new Map(); // leaf -> state
  t = now();
  for (const i of sampleLeaves) members.set(i, await joinGroup(welcomeMsg.welcome, kps[i].publicPackage, kps[i].privatePackage, emptyPskIndex, impl));
  out.ms.batchJoinEach = (now() - t) / sampleLeaves.length;

  async function processAll(commitMsg, skip = -1) {
    const times = [];
    for (const [leaf, s] of members) {
      if (leaf === skip) continue;
      const t1 = now();
      const r = await processPrivateMessage(s, commitMsg.privateMessage, emptyPskIndex, impl);
      times.push(now() - t1);
      members.set(leaf, r.newState);
    }
    return times;
  }
  const fmt = (a) => (allMembers ? { members: a.length, sumMs: Math.round(a.reduce((x, y) => x + y, 0)), maxMs: Math.round(Math.max(...a)), medianMs: Math.round([...a].sort((x, y) => x - y)[a.length >> 1]) } : a.map((x) => Math.round(x)));

  // (a) add member n-1 -> size n
  t = now();
  res = await createCommit({ state: st0, cipherSuite: impl }, { extraProposals: [addOf(n - 1)], ratchetTreeExtension: true });
  out.ms.addCommit = now() - t;
  st0 = res.newState;
  let [commitMsg, clen] = wire(res.commit);
  [welcomeMsg, wlen] = wire({ welcome: res.welcome, wireformat: 'mls_welcome', version: 'mls10' });
  out.bytes.addCommit = clen; out.bytes.addWelcome = wlen;
  t = now();
  members.set(n - 1, await joinGroup(welcomeMsg.welcome, kps[n - 1].publicPackage, kps[n - 1].privatePackage, emptyPskIndex, impl));
  out.ms.addNewcomerJoin = now() - t;
  out.ms.addProcessByMembers = fmt(await processAll(commitMsg, n - 1));
  out.epochAfterAdd = Number(st0.groupContext.epoch);
  out.sameEpochAuthenticator = [...members.values()].every((s) => eq(s.keySchedule.epochAuthenticator, st0.keySchedule.epochAuthenticator));

  // exporter: per-sender media base keys for all n senders (what each client does per epoch)
  t = now();
  for (let leaf = 0; leaf < n; leaf++) {
    const ctx = new Uint8Array(4); new DataView(ctx.buffer).setUint32(0, leaf);
    await mlsExporter(st0.keySchedule.exporterSecret, 'conclave media sender key', ctx, 16, impl);
  }
  out.ms.exporterAllSenders = now() - t;

  // (b) remove at size n, committed by member 0 (whose direct path is populated)
  const victim = Math.floor(n / 4);
  t = now();
  res = await createCommit({ state: st0, cipherSuite: impl }, { extraProposals: [{ proposalType: 'remove', remove: { removed: victim } }] });
  out.ms.removeCommit = now() - t;
  st0 = res.newState;
  [commitMsg, clen] = wire(res.commit);
  out.bytes.removeCommit = clen;
  members.delete(victim); // the removed member processes nothing after its removal
  out.ms.removeProcessByMembers = fmt(await processAll(commitMsg));
  out.sameEpochAfterRemove = [...members.values()].every((s) => eq(s.keySchedule.epochAuthenticator, st0.keySchedule.epochAuthenticator));

  // (c) remove committed by a member that never committed (blank direct path: larger commit)
  const committer = Math.floor(n / 2);
  const victim2 = Math.floor((3 * n) / 4);
  t = now();
  res = await createCommit({ state: members.get(committer), cipherSuite: impl }, { extraProposals: [{ proposalType: 'remove', remove: { removed: victim2 } }] });
  out.ms.removeCommitByFreshMember = now() - t;
  members.set(committer, res.newState);
  [commitMsg, clen] = wire(res.commit);
  out.bytes.removeCommitByFreshMember = clen;
  t = now();
  st0 = (await processPrivateMessage(st0, commitMsg.privateMessage, emptyPskIndex, impl)).newState;
  const p0 = now() - t;
  members.delete(victim2);
  const rest = await processAll(commitMsg, committer);
  out.ms.removeByFreshProcessByMembers = fmt([p0, ...rest]);

  // (d) empty commit (self-update / key rotation) by member 0
  t = now();
  res = await createCommit({ state: st0, cipherSuite: impl }, {});
  out.ms.updateCommit = now() - t;
  st0 = res.newState;
  [commitMsg, clen] = wire(res.commit);
  out.bytes.updateCommit = clen;
  out.ms.updateProcessByMembers = fmt(await processAll(commitMsg));
  out.finalEpoch = Number(st0.groupContext.epoch);
  out.allInSync = [...members.values()].every((s) => eq(s.keySchedule.epochAuthenticator, st0.keySchedule.epochAuthenticator));
  for (const k of Object.keys(out.ms)) if (typeof out.ms[k] === 'number') out.ms[k] = Math.round(out.ms[k] * 10) / 10;
  log(JSON.stringify(out));
  return out;
}

function eq(a, b) { if (a.length !== b.length) return false; for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false; return true; }
