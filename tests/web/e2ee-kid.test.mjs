// The receivers' sender check (web/e2ee/kid.js): a frame may be shown as a track of
// participant P only when its KID's leaf is one that the epoch's MLS tree binds to P. The
// check against real MLS trees (mediaSecret().senders, a resync) is in e2ee-group.test.mjs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EPOCH_BITS, MAX_LEAF, checkSender, kidEpochBits, kidLeaf, makeKid, sendersMap } from '../../web/e2ee/kid.js';

test('KID = (leaf << 8) | (epoch mod 256), and back', () => {
  assert.equal(EPOCH_BITS, 8);
  assert.equal(makeKid(0, 0), 0);
  assert.equal(makeKid(1, 0), 256);
  assert.equal(makeKid(3, 258), 3 * 256 + 2);
  for (const [leaf, epoch] of [[0, 7], [1, 255], [2, 256], [1000, 123456], [MAX_LEAF, 2 ** 40 + 5]]) {
    const kid = makeKid(leaf, epoch);
    assert.ok(Number.isSafeInteger(kid));
    assert.equal(kidLeaf(kid), leaf);
    assert.equal(kidEpochBits(kid), epoch % 256);
  }
});

test('a frame passes only under a leaf of its publisher', () => {
  const senders = sendersMap([
    { leaf: 0, participant: 'aaaa' },
    { leaf: 1, participant: 'bbbb' },
    { leaf: 3, participant: 'bbbb' }, // a participant's old and new leaf (resync, before the removal)
  ]);
  const epoch = 5;
  assert.equal(checkSender(makeKid(0, epoch), 'aaaa', senders), 'ok');
  assert.equal(checkSender(makeKid(1, epoch), 'bbbb', senders), 'ok');
  assert.equal(checkSender(makeKid(3, epoch), 'bbbb', senders), 'ok');
  // The server labels Ada's track as Bob's, or Bob's as Ada's.
  assert.equal(checkSender(makeKid(0, epoch), 'bbbb', senders), 'wrong-sender');
  assert.equal(checkSender(makeKid(1, epoch), 'aaaa', senders), 'wrong-sender');
  // A leaf that is not in the tree (blank, or from another epoch's tree), and a publisher
  // that has no leaf at all.
  assert.equal(checkSender(makeKid(2, epoch), 'aaaa', senders), 'wrong-sender');
  assert.equal(checkSender(makeKid(0, epoch), 'cccc', senders), 'wrong-sender');
  // No publisher known: never decode.
  for (const p of [null, undefined, '']) assert.equal(checkSender(makeKid(0, epoch), p, senders), 'no-publisher');
  // An empty tree (a key without senders) lets nothing through.
  assert.equal(checkSender(makeKid(0, epoch), 'aaaa', sendersMap([])), 'wrong-sender');
});

test('a malformed senders list is refused', () => {
  for (const bad of [
    null,
    undefined,
    {},
    'aaaa',
    [{ leaf: -1, participant: 'aaaa' }],
    [{ leaf: 1.5, participant: 'aaaa' }],
    [{ leaf: MAX_LEAF + 1, participant: 'aaaa' }],
    [{ leaf: '1', participant: 'aaaa' }],
    [{ leaf: 1, participant: '' }],
    [{ leaf: 1, participant: 7 }],
    [{ leaf: 1 }],
    [null],
    [{ leaf: 1, participant: 'aaaa' }, { leaf: 1, participant: 'bbbb' }],
  ]) {
    assert.throws(() => sendersMap(bad), /senders/, `accepted ${JSON.stringify(bad)}`);
  }
  assert.deepEqual([...sendersMap([{ leaf: 4, participant: 'x' }])], [[4, 'x']]);
});
