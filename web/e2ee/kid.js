// SFrame KIDs under MLS (RFC 9605 §5.2) and the receivers' sender check: pure functions,
// used by the frame worker (./worker.js) and tested in node (tests/web/e2ee-kid.test.mjs).
//
// KID = (leaf << E) | (epoch mod 2^E), E = 8. The KID names the sending MLS leaf, but every
// member can derive every KID's key (they all come from one epoch secret), so a frame's key
// proves only that a member made it. What a receiver can check is that the leaf in the KID is
// one the MLS group binds to the participant the server says publishes the track: the
// credential identity of a leaf is {"p": participant id, "n": name} (./group.js), taken from
// the epoch's ratchet tree, which every member computes itself from the commits. A server that
// shows one member's media as another's (in another tile) then gets nothing decoded.

/** Bits of the epoch in the KID (RFC 9605 §5.2 `E`). */
export const EPOCH_BITS = 8;

/** Largest leaf index a KID may name: the KID must stay a safe integer (and fit 8 bytes). */
export const MAX_LEAF = 2 ** 32 - 1;

/**
 * @param {number} leaf
 * @param {number} epoch
 * @returns {number}
 */
export function makeKid(leaf, epoch) {
  return leaf * 2 ** EPOCH_BITS + (epoch % 2 ** EPOCH_BITS);
}

/**
 * The MLS leaf index a KID names.
 * @param {number} kid
 * @returns {number}
 */
export function kidLeaf(kid) {
  return Math.floor(kid / 2 ** EPOCH_BITS);
}

/**
 * The low epoch bits a KID carries.
 * @param {number} kid
 * @returns {number}
 */
export function kidEpochBits(kid) {
  return kid % 2 ** EPOCH_BITS;
}

/**
 * One leaf of an epoch's ratchet tree and the participant id in its credential.
 * @typedef {{leaf: number, participant: string}} EpochSender
 */

/**
 * The leaf -> participant id map of one epoch, from the list the page sends with the epoch's
 * key. Throws on anything malformed (the worker then refuses the key: fail closed).
 * @param {unknown} list
 * @returns {Map<number, string>}
 */
export function sendersMap(list) {
  if (!Array.isArray(list)) throw new Error('senders must be an array of {leaf, participant}');
  /** @type {Map<number, string>} */
  const map = new Map();
  for (const s of list) {
    const leaf = /** @type {{leaf?: unknown}} */ (s)?.leaf;
    const participant = /** @type {{participant?: unknown}} */ (s)?.participant;
    if (typeof leaf !== 'number' || !Number.isSafeInteger(leaf) || leaf < 0 || leaf > MAX_LEAF) {
      throw new Error(`senders: leaf ${String(leaf)} is not a 32-bit unsigned integer`);
    }
    if (typeof participant !== 'string' || participant === '') throw new Error(`senders: leaf ${leaf} has no participant id`);
    if (map.has(leaf)) throw new Error(`senders: leaf ${leaf} is listed twice`);
    map.set(leaf, participant);
  }
  return map;
}

/**
 * May a frame under `kid` be shown as `publisher`'s track?
 * - `no-publisher`: the page has not been told who publishes the track (or was told nobody):
 *   the sender cannot be checked, so the frame must not be decoded;
 * - `wrong-sender`: the KID's leaf is not in the epoch's tree, or its credential names another
 *   participant;
 * - `ok`: the leaf belongs to `publisher` in that epoch.
 * @param {number} kid
 * @param {string | null | undefined} publisher The participant id signalling gave for the track.
 * @param {ReadonlyMap<number, string>} senders leaf -> participant id, of the epoch the KID names.
 * @returns {'ok' | 'no-publisher' | 'wrong-sender'}
 */
export function checkSender(kid, publisher, senders) {
  if (typeof publisher !== 'string' || publisher === '') return 'no-publisher';
  return senders.get(kidLeaf(kid)) === publisher ? 'ok' : 'wrong-sender';
}
