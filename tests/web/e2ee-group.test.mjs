// web/e2ee/group.js against a small in-test delivery service that behaves like the server in
// the E2EE contract: one commit per epoch (first wins), mls_rejected with the current
// GroupInfo, accepted commits relayed to the others in order, chat relayed, a moderator's
// mls_reset (a new generation; requests for an older one refused). Real ts-mls, real
// WebCrypto; only the WebSocket is replaced by direct calls.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { E2eeGroup, REMOVE_STAGGER_MS, toBase64 } from '../../web/e2ee/group.js';
import { checkSender, makeKid, sendersMap } from '../../web/e2ee/kid.js';

const WAIT_MS = 15_000;

/** polls cond until it is true (bounded) */
async function waitFor(cond, what, ms = WAIT_MS) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const hex = (/** @type {Uint8Array} */ b) => Buffer.from(b).toString('hex');

class DeliveryService {
  epoch = null;
  groupInfo = null;
  generation = 0;
  /** participant id -> how many mls_rejected it was sent */
  rejections = new Map();
  /** @type {Map<string, {name: string, group: E2eeGroup}>} */
  clients = new Map();
  /** accepted commits, in order */
  commits = [];
  /** participant ids whose next relayed commit is dropped (to make them miss one) */
  dropNext = new Set();
  warnings = [];

  /** participant id -> every roster the client had (recorded on each onChange) */
  rosters = new Map();

  async connect(id, name = id) {
    /** @type {E2eeGroup | null} */
    let g = null;
    const rosters = [];
    this.rosters.set(id, rosters);
    const group = await E2eeGroup.create({ participant: id, name, send: (m) => this.receive(id, m), onChange: () => rosters.push(g?.roster() ?? []) });
    g = group;
    this.clients.set(id, { name, group });
    this.announce();
    return group;
  }

  /** joined: the client starts with the server's e2ee object */
  start(id) {
    return this.clients.get(id).group.start({ mode: 'required', epoch: this.epoch, group_info: this.groupInfo, generation: this.generation });
  }

  async join(id, name = id) {
    const g = await this.connect(id, name);
    await this.start(id);
    return g;
  }

  leave(id) {
    const c = this.clients.get(id);
    this.clients.delete(id);
    this.announce();
    return c.group;
  }

  announce() {
    const roster = [...this.clients].map(([id, c]) => ({ id, name: c.name }));
    for (const c of this.clients.values()) c.group.setPresent(roster);
  }

  to(id, msg) {
    const c = this.clients.get(id);
    if (c) c.group.handle(msg);
  }

  reject(to, generation) {
    this.rejections.set(to, (this.rejections.get(to) ?? 0) + 1);
    const current = generation === this.generation;
    this.to(to, { type: 'mls_rejected', epoch: current ? this.epoch : null, group_info: current ? this.groupInfo : null, generation });
  }

  /** @param {string} from @param {any} msg @param {boolean} [raw] from a participant with no E2eeGroup (e.g. a hostile raw client) */
  receive(from, msg, raw = false) {
    if (!raw && !this.clients.has(from)) return; // gone
    if (msg.generation !== this.generation) {
      assert.ok(msg.generation < this.generation, `a request for generation ${msg.generation}, the room is at ${this.generation}`);
      return this.reject(from, msg.generation);
    }
    if (msg.type === 'mls_group') {
      if (this.epoch === null) {
        this.epoch = 0;
        this.groupInfo = msg.group_info;
        this.to(from, { type: 'mls_accepted', epoch: 0, generation: this.generation });
      } else this.reject(from, msg.generation);
    } else if (msg.type === 'mls_commit') {
      if (msg.epoch !== this.epoch) return this.reject(from, msg.generation);
      this.epoch += 1;
      this.groupInfo = msg.group_info;
      const relay = { type: 'mls_commit', epoch: msg.epoch, commit: msg.commit, from };
      this.commits.push(relay);
      for (const id of this.clients.keys()) {
        if (id === from) continue;
        if (this.dropNext.delete(id)) continue;
        this.to(id, relay);
      }
      this.to(from, { type: 'mls_accepted', epoch: this.epoch, generation: this.generation });
    } else throw new Error(`unexpected ${msg.type}`);
  }

  /** a moderator's mls_reset: no group, a new generation, everyone told in order */
  reset(by) {
    this.epoch = null;
    this.groupInfo = null;
    this.generation += 1;
    for (const id of this.clients.keys()) this.to(id, { type: 'mls_reset', by, generation: this.generation });
  }

  groups() {
    return [...this.clients.values()].map((c) => c.group);
  }

  /** all connected clients are members at the server's epoch with nothing stale left */
  async settled(size = this.clients.size) {
    await waitFor(() => this.groups().every((g) => g.member && g.epoch === this.epoch && g.roster().length === size), `all ${size} members at epoch ${this.epoch}`).catch((err) => {
      throw new Error(`${err.message}; ${[...this.clients].map(([id, c]) => `${id}: epoch ${c.group.epoch}, roster ${c.group.roster().map((e) => e.participant)}`).join("; ")}`);
    });
  }
}

async function sasOf(g) {
  const s = await g.sas();
  return `${s.epoch}|${s.digits}|${s.emoji.map((e) => e.name).join(',')}`;
}

test('three members join one after another: same epoch, media secret and SAS', async () => {
  const ds = new DeliveryService();
  const a = await ds.join('a', 'Alice');
  await ds.settled();
  assert.equal(a.epoch, 0);
  const b = await ds.join('b', 'Bob');
  await ds.settled();
  const c = await ds.join('c', 'Carol');
  await ds.settled();
  assert.equal(ds.epoch, 2, 'each join is one external commit');
  const secrets = await Promise.all([a, b, c].map((g) => g.mediaSecret()));
  assert.equal(new Set(secrets.map((s) => hex(s.secret))).size, 1, 'one media secret per epoch');
  assert.equal(secrets[0].secret.length, 16);
  assert.deepEqual(secrets.map((s) => s.leaf).sort(), [0, 1, 2]);
  const sas = await Promise.all([a, b, c].map(sasOf));
  assert.equal(new Set(sas).size, 1, `SAS differ: ${sas}`);
  const s = await a.sas();
  assert.match(s.digits, /^\d{3} \d{3}$/);
  assert.equal(s.emoji.length, 6);
  for (const g of [a, b, c]) {
    const r = g.roster();
    assert.deepEqual(r.map((e) => [e.participant, e.name, e.present]).sort(), [['a', 'Alice', true], ['b', 'Bob', true], ['c', 'Carol', true]]);
    assert.equal(r.filter((e) => e.self).length, 1);
    assert.equal(r.find((e) => e.self).leaf, g.ownLeaf);
  }
  for (const g of [a, b, c]) g.close();
});

test('two newcomers racing for the same epoch both end up in the group', async () => {
  const ds = new DeliveryService();
  const a = await ds.join('a');
  await ds.settled();
  const b = await ds.connect('b');
  const c = await ds.connect('c');
  // both start from the same GroupInfo (epoch 0): one external commit wins, the other is
  // rejected with the new GroupInfo and retries
  await Promise.all([ds.start('b'), ds.start('c')]);
  await ds.settled(3);
  assert.equal(ds.epoch, 2);
  assert.equal(new Set(await Promise.all([a, b, c].map(sasOf))).size, 1);
  for (const g of [a, b, c]) g.close();
});

test('a member leaves: the designated member removes it, the leaver is cut off', async () => {
  const ds = new DeliveryService();
  const a = await ds.join('a');
  await ds.settled();
  const b = await ds.join('b');
  await ds.settled();
  const c = await ds.join('c');
  await ds.settled();
  const before = await c.mediaSecret();
  const t0 = Date.now();
  ds.leave('c');
  // rank 0 (the lowest leaf, a) commits at once; b would only after REMOVE_STAGGER_MS
  await ds.settled(2);
  const took = Date.now() - t0;
  assert.equal(ds.epoch, 3);
  assert.equal(ds.commits.at(-1).from, 'a', 'the member with the lowest leaf commits the remove');
  assert.ok(took < REMOVE_STAGGER_MS + 5000, `remove took ${took} ms`);
  const after = await a.mediaSecret();
  assert.equal(hex(after.secret), hex((await b.mediaSecret()).secret));
  assert.notEqual(hex(after.secret), hex(before.secret), 'the leaver does not know the new media secret');
  assert.equal(new Set(await Promise.all([a, b].map(sasOf))).size, 1);

  // the leaver cannot read chat of the new epoch
  const ct = await a.encryptChat('after c left');
  await assert.rejects(c.decryptChat('a', ct), /cannot be decrypted/);
  // and processing the remove commit tells it that it was removed
  await c.handle(ds.commits.at(-1));
  assert.equal(c.removed, true);
  assert.equal(c.member, false);
  await assert.rejects(c.decryptChat('a', ct), /not a member/);
  assert.equal((await b.decryptChat('a', ct)).text, 'after c left');
  for (const g of [a, b, c]) g.close();
});

test("a newcomer's media secret differs from every earlier epoch's", async () => {
  const ds = new DeliveryService();
  const a = await ds.join('a');
  await ds.settled();
  const earlier = [hex((await a.mediaSecret()).secret)];
  const b = await ds.join('b');
  await ds.settled();
  earlier.push(hex((await a.mediaSecret()).secret));
  const c = await ds.join('c');
  await ds.settled();
  const mine = await c.mediaSecret();
  assert.equal(mine.epoch, 2);
  assert.ok(!earlier.includes(hex(mine.secret)));
  assert.equal(new Set(earlier).size, 2);
  for (const g of [a, b, c]) g.close();
});

test('chat: encrypt/decrypt round trip, sender check, garbage, and a message from the previous epoch', async () => {
  const ds = new DeliveryService();
  const a = await ds.join('a', 'Alice');
  await ds.settled();
  const b = await ds.join('b', 'Bob');
  await ds.settled();
  const text = 'hello bob, the secret word is platypus';
  const ct = await a.encryptChat(text);
  assert.match(ct, /^[A-Za-z0-9+/]+={0,2}$/);
  const raw = Buffer.from(ct, 'base64');
  assert.equal(raw.indexOf(Buffer.from('platypus')), -1, 'the ciphertext contains the plaintext');
  const got = await b.decryptChat('a', ct);
  assert.deepEqual(got, { text, private: false, epoch: 1, sender: { leaf: a.ownLeaf, participant: 'a', name: 'Alice' }, senderMatches: true });
  // the same message again (replay) is refused: its key is used up
  await assert.rejects(b.decryptChat('a', ct), /cannot be decrypted/);
  const ct2 = await a.encryptChat('second');
  assert.equal((await b.decryptChat('x', ct2)).senderMatches, false, 'a server claiming another sender is detected');
  await assert.rejects(b.decryptChat('a', 'not base64!'), /garbled/);
  await assert.rejects(b.decryptChat('a', Buffer.from('garbage').toString('base64')), /garbled/);
  const flipped = Buffer.from(await a.encryptChat('x'));
  const bad = Buffer.from(flipped.toString(), 'base64');
  bad[bad.length - 3] ^= 1;
  await assert.rejects(b.decryptChat('a', bad.toString('base64')), /cannot be decrypted/);

  // sent by b at epoch 1, received by a only after c's join (epoch 2)
  const old = await b.encryptChat('sent before the commit');
  const c = await ds.join('c', 'Carol');
  await ds.settled();
  assert.equal(a.epoch, 2);
  const late = await a.decryptChat('b', old);
  assert.equal(late.text, 'sent before the commit');
  assert.equal(late.epoch, 1);
  // the newcomer cannot read it (earlier epoch)
  await assert.rejects(c.decryptChat('b', old), /cannot be decrypted/);
  for (const g of [a, b, c]) g.close();
});

test('private chat: only the addressee can open it, also after its own commit changed its leaf key', async () => {
  const ds = new DeliveryService();
  // Bob first: he has rank 0, so he commits the removal below (and gets a new leaf key)
  const b = await ds.join('b', 'Bob');
  await ds.settled();
  const a = await ds.join('a', 'Alice');
  await ds.settled();
  const c = await ds.join('c', 'Carol');
  await ds.settled();
  const secret = 'only for bob: the platypus sleeps at noon';
  const ct = await a.encryptChat(secret, 'b');
  assert.equal(Buffer.from(ct, 'base64').indexOf(Buffer.from('platypus')), -1, 'the ciphertext contains the plaintext');
  // a server that routes it to Carol as well: she is in the group (the MLS layer opens), but
  // the text is sealed to Bob's leaf
  await assert.rejects(c.decryptChat('a', ct), /private message for b, not for us/);
  const got = await b.decryptChat('a', ct);
  assert.equal(got.text, secret);
  assert.equal(got.private, true);
  assert.equal(got.senderMatches, true);
  // purposes: a file offer (group or private) delivered as chat is refused, and the reverse
  await assert.rejects(b.decryptChat('a', await a.encryptChat('{"name":"x"}', null, 'file')), /a file message delivered as chat/);
  await assert.rejects(b.decryptChat('a', await a.encryptChat('{"name":"x"}', 'b', 'file')), /a file message delivered as chat/);
  await assert.rejects(b.decryptChat('a', await a.encryptChat('hi'), 'file'), /a chat message delivered as file/);
  const offer = await b.decryptChat('a', await a.encryptChat('{"name":"y"}', 'b', 'file'), 'file');
  assert.equal(offer.text, '{"name":"y"}');
  assert.equal(offer.private, true);
  // a group message is not private
  assert.equal((await b.decryptChat('a', await a.encryptChat('to all'))).private, false);
  // to someone without a leaf: a clear error
  await assert.rejects(a.encryptChat('hi', 'nobody'), /nobody has no leaf in the E2EE group/);
  await assert.rejects(a.encryptChat('hi', 'a'), /a has no leaf/, 'not to oneself');

  // sealed to Bob's leaf key of this epoch; then Bob commits Carol's removal, which gives him a
  // new leaf key: he opens it with the key of the epoch it was sealed in
  const before = await a.encryptChat('sealed before bob committed', 'b');
  const epoch = b.epoch;
  ds.leave('c');
  await waitFor(() => a.epoch === epoch + 1 && b.epoch === epoch + 1, 'the remove commit');
  assert.equal(ds.commits.at(-1).from, 'b', 'Bob (rank 0) committed the removal');
  const late = await b.decryptChat('a', before);
  assert.equal(late.text, 'sealed before bob committed');
  assert.equal(late.epoch, epoch);
  // and the other way round, in the new epoch; Carol, removed, cannot open anything new
  const back = await b.encryptChat('for alice', 'a');
  assert.equal((await a.decryptChat('b', back)).text, 'for alice');
  await assert.rejects(c.decryptChat('b', back), /not a member|cannot be decrypted/);
  for (const g of [a, b, c]) g.close();
});

test('MITM: a server running two groups gives different SAS; an injected member is flagged and removed', async () => {
  // honest: one group
  const honest = new DeliveryService();
  const a1 = await honest.join('alice', 'Alice');
  await honest.settled();
  const b1 = await honest.join('bob', 'Bob');
  await honest.settled();
  assert.equal(await sasOf(a1), await sasOf(b1));

  // malicious: Alice+Mallory in one group, Bob+Mallory in the other, Mallory relays chat and
  // claims to be the other side in each group
  const left = new DeliveryService();
  const right = new DeliveryService();
  const alice = await left.join('alice', 'Alice');
  await left.settled();
  const malB = await left.join('bob', 'Bob');
  await left.settled();
  const bob = await right.join('bob', 'Bob');
  await right.settled();
  const malA = await right.join('alice', 'Alice');
  await right.settled();
  const ct = await alice.encryptChat('hi bob');
  const relayed = await malA.encryptChat((await malB.decryptChat('alice', ct)).text);
  const got = await bob.decryptChat('alice', relayed);
  assert.equal(got.text, 'hi bob');
  assert.equal(got.senderMatches, true, 'chat alone cannot reveal the MITM');
  assert.equal(alice.epoch, bob.epoch);
  assert.notEqual(await sasOf(alice), await sasOf(bob), 'the SAS reveals the two groups');

  // injection: the server joins a member of its own by external commit
  const ghost = await E2eeGroup.create({ participant: 'ghost', name: 'Alice', send: (m) => honest.receive('ghost', m) });
  honest.clients.set('ghost', { name: 'Alice', group: ghost }); // the server can send, but it is not in the roster
  ghost.setPresent([{ id: 'alice', name: 'Alice' }, { id: 'bob', name: 'Bob' }, { id: 'ghost', name: 'Alice' }]); // a passive ghost
  await ghost.start({ mode: 'required', epoch: honest.epoch, group_info: honest.groupInfo });
  await waitFor(() => honest.epoch === 3, 'the remove commit of the injected member');
  honest.clients.delete('ghost');
  await honest.settled(2);
  for (const id of ['alice', 'bob']) {
    // the roster each member had right after processing the injection
    const seen = honest.rosters.get(id).find((r) => r.some((e) => e.participant === 'ghost'));
    assert.ok(seen, `the injected leaf was in ${id}'s roster`);
    assert.deepEqual(seen.map((e) => [e.participant, e.name, e.present]).sort(), [['alice', 'Alice', true], ['bob', 'Bob', true], ['ghost', 'Alice', false]]);
  }
  // and the designated member (alice, leaf 0) removed it at once
  assert.equal(honest.commits.at(-1).from, 'alice');
  assert.ok(a1.roster().every((e) => e.present));
  for (const g of [a1, b1, alice, malB, bob, malA, ghost]) g.close();
});

test('a member that missed a commit rejoins by a resync external commit', async () => {
  const ds = new DeliveryService();
  const a = await ds.join('a');
  await ds.settled();
  const b = await ds.join('b');
  await ds.settled();
  ds.dropNext.add('b');
  const c = await ds.join('c'); // b misses this commit
  await waitFor(() => a.epoch === 2 && c.epoch === 2, 'a and c at epoch 2');
  assert.equal(b.epoch, 1);
  const d = await ds.join('d'); // b sees a commit from epoch 2 while at 1: out of sync
  await ds.settled(4);
  assert.equal(new Set(await Promise.all([a, b, c, d].map(sasOf))).size, 1);
  assert.deepEqual(b.roster().map((e) => e.participant).sort(), ['a', 'b', 'c', 'd'], 'the old leaf of b is gone');
  for (const g of [a, b, c, d]) g.close();
});

test('a garbage commit wins an epoch and the group is stuck; after a reset all members are in one new group', async () => {
  const ds = new DeliveryService();
  const a = await ds.join('a', 'Alice');
  await ds.settled();
  const b = await ds.join('b', 'Bob');
  await ds.settled();
  const c = await ds.join('c', 'Carol');
  await ds.settled();
  const before = await sasOf(a);
  const oldSecret = hex((await a.mediaSecret()).secret);

  // Mallory (a raw client, not in the group) sends garbage as the commit of the current epoch
  // and as its GroupInfo: the delivery service cannot tell and accepts it.
  const garbage = toBase64(new TextEncoder().encode('not an MLS message'));
  const stuckAt = ds.epoch + 1;
  ds.rejections.clear();
  ds.receive('mallory', { type: 'mls_commit', epoch: ds.epoch, commit: garbage, group_info: garbage, generation: 0 }, true);
  assert.equal(ds.epoch, stuckAt);
  // Nobody can process it; each tries to rejoin, is sent the garbage GroupInfo, and is stuck.
  await waitFor(() => [a, b, c].every((g) => !g.member) && ['a', 'b', 'c'].every((id) => ds.rejections.get(id) >= 1), 'all three out of the group');
  assert.equal(ds.epoch, stuckAt, 'no commit got through');
  // ... and a newcomer cannot join from the garbage either.
  const d = await ds.connect('d', 'Dave');
  await assert.rejects(ds.start('d'));
  assert.equal(d.member, false);

  // A moderator (Alice) resets: everyone starts again and ends in one new group.
  ds.reset('a');
  await ds.settled(4);
  assert.equal(ds.generation, 1);
  for (const g of [a, b, c, d]) assert.equal(g.generation, 1);
  assert.equal(a.ownLeaf, 0, 'the moderator who reset created the new group');
  assert.equal(ds.commits.filter((m) => m.from === 'mallory').length, 1);
  const sas = await Promise.all([a, b, c, d].map(sasOf));
  assert.equal(new Set(sas).size, 1, `SAS differ: ${sas}`);
  assert.notEqual(sas[0], before, 'a new group has a new SAS');
  for (const g of [a, b, c, d]) assert.equal((await g.sas()).generation, 1);
  const secrets = await Promise.all([a, b, c, d].map(async (g) => hex((await g.mediaSecret()).secret)));
  assert.equal(new Set(secrets).size, 1);
  assert.notEqual(secrets[0], oldSecret);
  for (const g of [a, b, c, d]) {
    assert.deepEqual(g.roster().map((e) => e.participant).sort(), ['a', 'b', 'c', 'd']);
  }

  // An answer for the old generation (to something sent before the reset) is ignored.
  const epoch = a.epoch;
  await a.handle({ type: 'mls_rejected', epoch: null, group_info: null, generation: 0 });
  await a.handle({ type: 'mls_reset', by: 'a', generation: 1 }); // a repeated reset changes nothing
  assert.equal(a.member, true);
  assert.equal(a.epoch, epoch);
  // Chat works in the new group.
  const ct = await b.encryptChat('after the reset');
  assert.equal((await d.decryptChat('b', ct)).text, 'after the reset');
  for (const g of [a, b, c, d]) g.close();
});

test("mediaSecret's senders bind each member's KID to its participant, across a resync", async () => {
  const ds = new DeliveryService();
  const a = await ds.join('a', 'Alice');
  await ds.settled();
  const b = await ds.join('b', 'Bob');
  await ds.settled();
  /** Every member's own KID must pass as itself and fail as anyone else, in every member's view. */
  const expectBinding = async (/** @type {Map<string, E2eeGroup>} */ members) => {
    const keys = new Map();
    for (const [id, g] of members) keys.set(id, await g.mediaSecret());
    for (const [, view] of keys) {
      const senders = sendersMap(view.senders);
      assert.equal(senders.size, members.size, `senders of epoch ${view.epoch}: ${JSON.stringify(view.senders)}`);
      for (const [id, own] of keys) {
        assert.equal(own.epoch, view.epoch);
        const kid = makeKid(own.leaf, own.epoch);
        for (const other of members.keys()) {
          assert.equal(checkSender(kid, other, senders), other === id ? 'ok' : 'wrong-sender', `KID of ${id} (leaf ${own.leaf}) shown as ${other}`);
        }
      }
    }
    return keys;
  };
  const before = await expectBinding(new Map([['a', a], ['b', b]]));
  const oldLeaf = before.get('b').leaf;
  ds.dropNext.add('b');
  const c = await ds.join('c', 'Carol'); // b misses this commit
  await waitFor(() => a.epoch === 2 && c.epoch === 2, 'a and c at epoch 2');
  const d = await ds.join('d', 'Dan'); // b is out of sync and rejoins with a new leaf
  await ds.settled(4);
  const after = await expectBinding(new Map([['a', a], ['b', b], ['c', c], ['d', d]]));
  // b's frames of the old epoch still check against that epoch's map (kept with its key).
  assert.equal(checkSender(makeKid(oldLeaf, before.get('a').epoch), 'b', sendersMap(before.get('a').senders)), 'ok');
  console.log(`b: leaf ${oldLeaf} in epoch ${before.get('b').epoch}, leaf ${after.get('b').leaf} in epoch ${after.get('b').epoch}`);
  for (const g of [a, b, c, d]) g.close();
});
