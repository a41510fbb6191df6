#!/usr/bin/env node
// CPU cost of one MLS commit for every member of a group of N, in node, with the client's own
// code path: the vendored ts-mls (web/vendor/), our hashing (web/e2ee/hashing.js), commits as
// the server relays them (encoded, then decoded by each member), processMessage with
// acceptAll as web/e2ee/group.js calls it. It is the per-member part of
// bench/e2ee-keys.mjs without browsers, so a change to the MLS code can be measured in
// seconds, and profiled (`node --cpu-prof bench/mls-commit.mjs`).
//
//   node bench/mls-commit.mjs [--members 100] [--rounds 3] [--profile out.cpuprofile]
//
// --profile writes a V8 CPU profile of the rounds only (not the setup), for Chromium's
// DevTools or any .cpuprofile reader.
//
// Setup: member 0 creates the group and adds members 1..N-2 in one commit (Welcome). Then per
// round: JOIN, a newcomer joins by external commit from member 0's GroupInfo (as every
// newcomer does) and all N-1 others process it; LEAVE, member 0 (rank 0, as group.js picks the
// committer) removes a member in the middle and the rest process it. Prints per phase the
// median, max and sum of the members' processing times and the committer's time, and checks
// that every member ends in the committer's epoch with its epoch authenticator.

import { performance } from 'node:perf_hooks';
import * as mls from '../web/vendor/ts-mls/index.js';
import { withFastHashing } from '../web/e2ee/hashing.js';
import { CIPHERSUITE, toBase64, fromBase64 } from '../web/e2ee/group.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf('--' + name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const N = opt('members', 100);
const pi = args.indexOf('--profile');
const PROFILE = pi >= 0 ? args[pi + 1] : null;
const ROUNDS = opt('rounds', 3);
if (!Number.isInteger(N) || N < 4 || !Number.isInteger(ROUNDS) || ROUNDS < 1) {
  console.error('usage: node bench/mls-commit.mjs [--members N>=4] [--rounds R>=1]');
  process.exit(2);
}

const te = new TextEncoder();
const impl = await withFastHashing(await mls.getCiphersuiteImpl(mls.getCiphersuiteFromName(CIPHERSUITE)));
const identity = (i) => te.encode(JSON.stringify({ p: `participant-${i}`, n: `Member ${i}` }));
const keyPackage = (i) => mls.generateKeyPackage({ credentialType: 'basic', identity: identity(i) }, mls.defaultCapabilities(), mls.defaultLifetime, [], impl);
/** through the wire, as the server relays it */
const wire = (msg) => mls.decodeMlsMessage(fromBase64(toBase64(mls.encodeMlsMessage(msg))), 0)[0];
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[s.length >> 1], max: s[s.length - 1], sum: s.reduce((a, b) => a + b, 0) };
};
const ms = (x) => x.toFixed(1);

let next = 0;
const kps = [];
for (let i = 0; i < N - 1; i++) kps.push(await keyPackage(next++));
let t = performance.now();
const members = []; // {state}
const first = await mls.createGroup(te.encode('bench-group'), kps[0].publicPackage, kps[0].privatePackage, [], impl);
const batch = await mls.createCommit({ state: first, cipherSuite: impl }, {
  extraProposals: kps.slice(1).map((k) => ({ proposalType: 'add', add: { keyPackage: k.publicPackage } })),
  ratchetTreeExtension: true,
});
members.push({ state: batch.newState });
const welcome = wire({ version: 'mls10', wireformat: 'mls_welcome', welcome: batch.welcome }).welcome;
for (const k of kps.slice(1)) members.push({ state: await mls.joinGroup(welcome, k.publicPackage, k.privatePackage, mls.emptyPskIndex, impl) });
console.log(`setup: ${N - 1} members in ${ms(performance.now() - t)} ms`);

/** every member except `skip` processes `msg`; returns their times */
async function processAll(msg, skip) {
  const times = [];
  for (const m of members) {
    if (m === skip) continue;
    const t0 = performance.now();
    const r = await mls.processMessage(msg, m.state, mls.emptyPskIndex, mls.acceptAll, impl);
    times.push(performance.now() - t0);
    if (r.kind !== 'newState') throw new Error('not a commit');
    m.state = r.newState;
  }
  return times;
}

function check(committer) {
  const epoch = committer.state.groupContext.epoch;
  const auth = committer.state.keySchedule.epochAuthenticator;
  for (const m of members) {
    if (m.state.groupContext.epoch !== epoch || !equal(m.state.keySchedule.epochAuthenticator, auth)) throw new Error('members disagree on the epoch');
  }
}

const report = (phase, commitMs, times) => {
  const s = stats(times);
  console.log(`${phase.padEnd(5)} N=${String(N).padEnd(4)} commit ${ms(commitMs).padStart(6)} ms | processing per member: median ${ms(s.median)} ms, max ${ms(s.max)} ms, sum ${ms(s.sum)} ms over ${times.length}`);
};

let session = null;
if (PROFILE) {
  const { Session } = await import('node:inspector/promises');
  session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
}

for (let round = 0; round < ROUNDS; round++) {
  // JOIN: external commit from member 0's GroupInfo
  const gi = await mls.createGroupInfoWithExternalPubAndRatchetTree(members[0].state, [], impl);
  const giWire = wire({ version: 'mls10', wireformat: 'mls_group_info', groupInfo: gi }).groupInfo;
  const kp = await keyPackage(next++);
  t = performance.now();
  const ext = await mls.joinGroupExternal(giWire, kp.publicPackage, kp.privatePackage, false, impl);
  const joinMs = performance.now() - t;
  const newcomer = { state: ext.newState };
  const joinTimes = await processAll(wire({ version: 'mls10', wireformat: 'mls_public_message', publicMessage: ext.publicMessage }), null);
  members.push(newcomer);
  check(newcomer);
  report('join', joinMs, joinTimes);

  // LEAVE: member 0 removes a member in the middle
  const gone = members[Math.floor(members.length / 2)];
  t = performance.now();
  const rm = await mls.createCommit({ state: members[0].state, cipherSuite: impl }, {
    extraProposals: [{ proposalType: 'remove', remove: { removed: gone.state.privatePath.leafIndex } }],
  });
  const rmMs = performance.now() - t;
  members.splice(members.indexOf(gone), 1);
  members[0].state = rm.newState;
  const leaveTimes = await processAll(wire(rm.commit), members[0]);
  check(members[0]);
  report('leave', rmMs, leaveTimes);
}

if (session) {
  const { profile } = await session.post('Profiler.stop');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(PROFILE, JSON.stringify(profile));
  console.log(`profile of the rounds: ${PROFILE}`);
}
