// Conclave E2EE frame transform (a module worker; one per FrameCrypto, i.e. per session).
//
// SFrame (RFC 9605) on whole encoded frames, cipher suite 0x0004 AES_128_GCM_SHA256_128:
//
//   frame on the wire = clear codec bytes || SFrame header || AES-GCM(payload) || tag
//
// - Clear codec bytes, so that the SFU and the receiving depacketizer still see what they
//   parse: VP8 key frame 10 (payload descriptor + key frame header), VP8 delta frame 3, Opus 1
//   (TOC). They are the SFrame `metadata`: authenticated, not encrypted.
// - Keys follow RFC 9605 §5.2 (MLS): the epoch's `base_key` is the MLS exporter secret
//   ("SFrame 1.0 Base Key", 16 bytes), given to us as `secret`; each sender uses
//   KID = (leaf << 8) | (epoch mod 256) (E = 8, context 0). §5.2 derives no per-sender base
//   key: senders are separated by the KID, which is part of the §4.4.2 derivation
//   sframe_key  = HKDF-Expand(HKDF-Extract("", base_key), "SFrame 1.0 Secret key "  || KID(u64) || suite(u16), 16)
//   sframe_salt = HKDF-Expand(HKDF-Extract("", base_key), "SFrame 1.0 Secret salt " || KID(u64) || suite(u16), 12)
// - nonce = salt XOR CTR (CTR big-endian in the last 8 bytes); one 64-bit CTR for all our
//   senders under one KID (audio and video share the key, so they share the counter).
// - AAD = SFrame header || metadata (RFC 9605 §4.4.3: `aad = header + metadata`).
//
// Fail closed: a sender without a key drops the frame (never sends plaintext). A receiver
// drops every frame it cannot authenticate (no header, unknown KID, bad tag): undecryptable
// frames must never reach the decoder (libvpx "decodes" garbage key frames, Opus plays noise).
// After failures, the first good video frame asks the sender for a key frame through the
// transformer (RTCRtpScriptTransform only: the legacy streams API has no such call; there
// Chromium sends its own PLI, after about 3 s).
//
// Sender check (./kid.js): each receiving transform has a publisher, the participant id that
// signalling says sends the track (`publisher` messages, set by protocol.js from each offer's
// `tracks`). A receiver decodes a frame only if the leaf in its KID is one that the ratchet
// tree of the KID's epoch binds to that participant id (the `senders` of `setKey`, computed by
// the page from the MLS tree, never from the server's list). Otherwise the frame is dropped
// (`droppedWrongSender`) before any key is derived, so keys are derived only for KIDs of the
// publisher's leaves, not for any KID a server makes up. A receiver whose publisher is not
// known drops its frames (`droppedNoPublisher`) rather than holding them: the page gives the
// publisher in the same task that attaches the transform, from the same offer, so a receiver
// without one carries a track the server names no publisher for. A later offer might name
// one, but holding frames until then would stall the stream for an unbounded time, and once a
// publisher is set the first good video frame asks for a key frame, as after any failure.
//
// Both Chromium APIs: RTCRtpScriptTransform (`rtctransform` event, options
// {operation, kind, id}) and the legacy createEncodedStreams (a `streams` message carrying
// the readable/writable pair, and `tid`, the transform id).
//
// Messages in: {type: 'setKey', epoch, secret, leaf, senders: [{leaf, participant}]} |
// {type: 'publisher', tid, participant: string | null} | {type: 'streams', readable, writable,
// operation, kind, tid} | {type: 'stats', id}. Replies to messages with an `id`: {id, stats} or
// {id, error}.

import { EPOCH_BITS, MAX_LEAF, checkSender, kidEpochBits, makeKid, sendersMap } from './kid.js';

const SUITE = 0x0004;
/** How long receivers keep the previous epoch's keys after a new one arrives. */
const GRACE_MS = 10_000;
/** How long a receiver holds a frame whose KID names an epoch it does not know yet. */
const AWAIT_EPOCH_MS = 500;
const TAG_BYTES = 16;
const te = new TextEncoder();

/**
 * @typedef {{key: CryptoKey, salt: Uint8Array}} FrameKey
 * @typedef {{epoch: number, secret: Uint8Array, expires: number, keys: Map<number, Promise<FrameKey>>, senders: Map<number, string>}} Epoch
 *   `senders`: leaf -> participant id in that epoch's ratchet tree.
 * @typedef {{kid: number, epoch: number, key: FrameKey}} SendState
 */

/** @type {SendState | null} */
let send = null;
/** One counter for every frame we encrypt under the current KID. */
let ctr = 0n;
/** Known epochs, by epoch number: the current one, and the previous during its grace period. */
/** @type {Map<number, Epoch>} */
const epochs = new Map();
/** Resolvers waiting for the next `setKey`. @type {(() => void)[]} */
let keyWaiters = [];
/** The publisher (participant id) of each receiving transform, by transform id. @type {Map<string, string | null>} */
const publishers = new Map();

const zero = () => ({
  encrypted: 0,
  decrypted: 0,
  droppedNoKey: 0,
  droppedBadTag: 0,
  droppedNoHeader: 0,
  droppedWrongSender: 0,
  droppedNoPublisher: 0,
});
const stats = {
  encrypt: { audio: zero(), video: zero() },
  decrypt: { audio: zero(), video: zero() },
  keyFrameRequests: 0,
  /** Frames each transform saw (whatever became of them) and passed on (encrypted or
   * decrypted), by the id given at attach time. */
  /** @type {Record<string, TransformSeen>} */
  transforms: {},
  /** @type {string[]} */
  errors: [],
};

/**
 * @param {string} label
 * @param {number} kid
 */
function kdfInfo(label, kid) {
  const l = te.encode(label);
  const info = new Uint8Array(l.length + 10);
  info.set(l, 0);
  const dv = new DataView(info.buffer);
  dv.setBigUint64(l.length, BigInt(kid));
  dv.setUint16(l.length + 8, SUITE);
  return info;
}

/**
 * RFC 9605 §4.4.2.
 * @param {Uint8Array} baseKey
 * @param {number} kid
 * @returns {Promise<FrameKey>}
 */
async function deriveFrameKey(baseKey, kid) {
  const ikm = await crypto.subtle.importKey('raw', /** @type {BufferSource} */ (baseKey), 'HKDF', false, ['deriveBits']);
  /** @param {Uint8Array} info @param {number} bits */
  const hkdf = (info, bits) =>
    crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: /** @type {BufferSource} */ (info) }, ikm, bits);
  const keyBytes = await hkdf(kdfInfo('SFrame 1.0 Secret key ', kid), 128);
  const salt = new Uint8Array(await hkdf(kdfInfo('SFrame 1.0 Secret salt ', kid), 96));
  const key = await crypto.subtle.importKey('raw', keyBytes, 'AES-GCM', false, ['encrypt', 'decrypt']);
  return { key, salt };
}

/**
 * Minimal big-endian bytes of a non-negative integer (at least one byte).
 * @param {bigint} v
 * @returns {number[]}
 */
function minimalBytes(v) {
  /** @type {number[]} */
  const out = [];
  let x = v;
  do {
    out.unshift(Number(x & 0xffn));
    x >>= 8n;
  } while (x > 0n);
  return out;
}

/**
 * RFC 9605 §4.3: config byte |X|K(3)|Y|C(3)|, then the long KID and CTR if any.
 * @param {number} kid
 * @param {bigint} counter
 */
function encodeHeader(kid, counter) {
  const bytes = [0];
  let cfg = 0;
  if (kid < 8) cfg |= kid << 4;
  else {
    const k = minimalBytes(BigInt(kid));
    cfg |= 0x80 | ((k.length - 1) << 4);
    bytes.push(...k);
  }
  if (counter < 8n) cfg |= Number(counter);
  else {
    const c = minimalBytes(counter);
    cfg |= 0x08 | (c.length - 1);
    bytes.push(...c);
  }
  bytes[0] = cfg;
  return Uint8Array.from(bytes);
}

/**
 * Parse the SFrame header at `off`; null if the buffer is too short for it and a tag.
 * @param {Uint8Array} buf
 * @param {number} off
 * @returns {{kid: number, ctr: bigint, len: number} | null}
 */
function parseHeader(buf, off) {
  if (off >= buf.length) return null;
  const cfg = buf[off];
  let p = off + 1;
  let kid = 0;
  let counter = 0n;
  if (cfg & 0x80) {
    const n = ((cfg >> 4) & 7) + 1;
    if (p + n > buf.length) return null;
    for (let i = 0; i < n; i++) kid = kid * 256 + buf[p++];
  } else kid = (cfg >> 4) & 7;
  if (cfg & 0x08) {
    const n = (cfg & 7) + 1;
    if (p + n > buf.length) return null;
    for (let i = 0; i < n; i++) counter = (counter << 8n) | BigInt(buf[p++]);
  } else counter = BigInt(cfg & 7);
  if (buf.length - p < TAG_BYTES) return null;
  return { kid, ctr: counter, len: p - off };
}

/**
 * @param {Uint8Array} salt
 * @param {bigint} counter
 */
function nonce(salt, counter) {
  const n = salt.slice();
  let x = counter;
  for (let i = 11; i >= 4 && x > 0n; i--) {
    n[i] ^= Number(x & 0xffn);
    x >>= 8n;
  }
  return n;
}

/**
 * @param {{type?: string}} frame
 * @param {string} kind
 */
function clearBytes(frame, kind) {
  if (kind === 'audio') return 1;
  return frame.type === 'key' ? 10 : 3;
}

/** Forget epochs whose grace period is over. */
function expireEpochs() {
  const now = Date.now();
  for (const [n, e] of epochs) if (e.expires <= now) epochs.delete(n);
}

/**
 * The known epoch whose low bits `kid` names; null if none.
 * @param {number} kid
 * @returns {Epoch | null}
 */
function recvEpoch(kid) {
  expireEpochs();
  const e8 = kidEpochBits(kid);
  for (const e of epochs.values()) if (e.epoch % 2 ** EPOCH_BITS === e8) return e;
  return null;
}

/**
 * The key of `kid` in epoch `e` (derived once).
 * @param {Epoch} e
 * @param {number} kid
 * @returns {Promise<FrameKey>}
 */
function recvKey(e, kid) {
  let k = e.keys.get(kid);
  if (!k) {
    k = deriveFrameKey(e.secret, kid);
    e.keys.set(kid, k);
  }
  return k;
}

/** @param {number} ms */
function nextKeyOrTimeout(ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    keyWaiters.push(() => {
      clearTimeout(timer);
      resolve(undefined);
    });
  });
}

/**
 * A new epoch (or the same epoch again: its senders are replaced).
 * @param {{epoch: number, secret: Uint8Array, leaf: number, senders: unknown}} m
 */
async function setKey(m) {
  if (!Number.isSafeInteger(m.epoch) || m.epoch < 0) throw new Error('epoch must be a non-negative integer');
  if (!Number.isSafeInteger(m.leaf) || m.leaf < 0 || m.leaf > MAX_LEAF) throw new Error('leaf must be a 32-bit unsigned integer');
  if (!(m.secret instanceof Uint8Array) || m.secret.length !== 16) throw new Error('secret must be 16 bytes');
  const senders = sendersMap(m.senders);
  if (send && m.epoch < send.epoch) throw new Error(`epoch ${m.epoch} is older than the current epoch ${send.epoch}`);
  const secret = m.secret.slice();
  const kid = makeKid(m.leaf, m.epoch);
  const key = await deriveFrameKey(secret, kid);
  const now = Date.now();
  // The previous epochs stay for the grace period; an epoch with the same low bits goes now
  // (RFC 9605 §5.2: roll-over).
  for (const [n, e] of epochs) {
    if (n === m.epoch) continue;
    if (n % 2 ** EPOCH_BITS === m.epoch % 2 ** EPOCH_BITS) epochs.delete(n);
    else e.expires = Math.min(e.expires, now + GRACE_MS);
  }
  const existing = epochs.get(m.epoch);
  const same = existing !== undefined && sameBytes(existing.secret, secret);
  if (same) {
    existing.expires = Infinity;
    existing.senders = senders;
  } else epochs.set(m.epoch, { epoch: m.epoch, secret, expires: Infinity, keys: new Map(), senders });
  if (!same || !send || send.kid !== kid) {
    // A new (base key, KID) starts at CTR 0. Going back to one used before would reuse nonces.
    const tag = `${kid}:${hex(secret)}`;
    if (usedSendKeys.has(tag)) throw new Error(`key of epoch ${m.epoch}, leaf ${m.leaf} was used before; refusing to restart its counter`);
    usedSendKeys.add(tag);
    send = { kid, epoch: m.epoch, key };
    ctr = 0n;
  }
  const waiters = keyWaiters;
  keyWaiters = [];
  for (const w of waiters) w();
}

/** (KID, base key) pairs we have encrypted with. @type {Set<string>} */
const usedSendKeys = new Set();

/** @param {Uint8Array} b */
function hex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 */
function sameBytes(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Set (or forget, with null) the publisher of receiving transform `tid`.
 * @param {{tid: unknown, participant: unknown}} m
 */
function setPublisher(m) {
  if (typeof m.tid !== 'string' || m.tid === '') throw new Error('publisher: tid must be a transform id');
  if (m.participant !== null && (typeof m.participant !== 'string' || m.participant === '')) {
    throw new Error('publisher: participant must be a participant id or null');
  }
  publishers.set(m.tid, m.participant);
}

/**
 * @typedef {{operation: string, kind: string, frames: number, passed: number}} TransformSeen
 * @typedef {{type?: string, data: ArrayBuffer}} EncodedFrame
 * @typedef {{enqueue: (f: EncodedFrame) => void}} Controller
 * @typedef {{sendKeyFrameRequest?: () => Promise<void>}} FrameTransformer
 */

/**
 * @param {string} kind
 * @param {TransformSeen} seen
 * @returns {(frame: EncodedFrame, controller: Controller) => Promise<void>}
 */
function encryptor(kind, seen) {
  const count = kind === 'video' ? stats.encrypt.video : stats.encrypt.audio;
  return async (frame, controller) => {
    seen.frames++;
    const data = new Uint8Array(frame.data);
    if (data.length === 0) {
      controller.enqueue(frame); // nothing to hide
      seen.passed++;
      return;
    }
    const s = send;
    if (!s) {
      count.droppedNoKey++;
      return;
    }
    const nClear = Math.min(clearBytes(frame, kind), data.length);
    const c = ctr++;
    const header = encodeHeader(s.kid, c);
    const aad = new Uint8Array(header.length + nClear);
    aad.set(header, 0);
    aad.set(data.subarray(0, nClear), header.length);
    const ct = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: 'AES-GCM', iv: nonce(s.key.salt, c), additionalData: aad, tagLength: 128 },
        s.key.key,
        data.subarray(nClear),
      ),
    );
    const out = new Uint8Array(nClear + header.length + ct.length);
    out.set(data.subarray(0, nClear), 0);
    out.set(header, nClear);
    out.set(ct, nClear + header.length);
    frame.data = out.buffer;
    controller.enqueue(frame);
    count.encrypted++;
    seen.passed++;
  };
}

/**
 * @param {string} kind
 * @param {string} tid The transform id: its publisher is `publishers.get(tid)`.
 * @param {TransformSeen} seen
 * @param {FrameTransformer | null} transformer
 * @returns {(frame: EncodedFrame, controller: Controller) => Promise<void>}
 */
function decryptor(kind, tid, seen, transformer) {
  const count = kind === 'video' ? stats.decrypt.video : stats.decrypt.audio;
  let failed = false;
  /** The low epoch bits we last waited for in vain, and when. */
  let gaveUp = { e8: -1, at: 0 };
  return async (frame, controller) => {
    seen.frames++;
    const data = new Uint8Array(frame.data);
    if (data.length === 0) {
      controller.enqueue(frame);
      seen.passed++;
      return;
    }
    // Fail closed: no publisher, no check, no decoding (see the header for why not hold).
    if (typeof publishers.get(tid) !== 'string') {
      count.droppedNoPublisher++;
      failed = true;
      return;
    }
    const nClear = Math.min(clearBytes(frame, kind), data.length);
    const h = parseHeader(data, nClear);
    if (!h) {
      count.droppedNoHeader++;
      failed = true;
      return;
    }
    let epoch = recvEpoch(h.kid);
    const e8 = kidEpochBits(h.kid);
    if (!epoch && send && e8 === (send.epoch + 1) % 2 ** EPOCH_BITS) {
      // A KID of the epoch after ours: the sender moved on just before us. Hold the frame
      // (and so this receiver's stream) briefly for the key, rather than drop it.
      if (!(gaveUp.e8 === e8 && Date.now() - gaveUp.at < 5000)) {
        const deadline = Date.now() + AWAIT_EPOCH_MS;
        while (!epoch && Date.now() < deadline) {
          await nextKeyOrTimeout(deadline - Date.now());
          epoch = recvEpoch(h.kid);
        }
        if (!epoch) gaveUp = { e8, at: Date.now() };
      }
    }
    if (!epoch) {
      count.droppedNoKey++;
      failed = true;
      return;
    }
    // The KID's leaf must belong to the track's publisher in the KID's epoch (the publisher is
    // read again: it may have changed while the frame waited for its epoch).
    const check = checkSender(h.kid, publishers.get(tid), epoch.senders);
    if (check !== 'ok') {
      if (check === 'no-publisher') count.droppedNoPublisher++;
      else count.droppedWrongSender++;
      failed = true;
      return;
    }
    const keyP = recvKey(epoch, h.kid);
    const aadLen = nClear + h.len;
    const aad = new Uint8Array(aadLen);
    aad.set(data.subarray(nClear, aadLen), 0);
    aad.set(data.subarray(0, nClear), h.len);
    /** @type {Uint8Array} */
    let pt;
    try {
      const k = await keyP;
      pt = new Uint8Array(
        await crypto.subtle.decrypt(
          { name: 'AES-GCM', iv: nonce(k.salt, h.ctr), additionalData: aad, tagLength: 128 },
          k.key,
          data.subarray(aadLen),
        ),
      );
    } catch {
      count.droppedBadTag++;
      failed = true;
      return;
    }
    const out = new Uint8Array(nClear + pt.length);
    out.set(data.subarray(0, nClear), 0);
    out.set(pt, nClear);
    frame.data = out.buffer;
    controller.enqueue(frame);
    count.decrypted++;
    seen.passed++;
    if (failed) {
      failed = false;
      if (kind === 'video' && transformer && typeof transformer.sendKeyFrameRequest === 'function') {
        stats.keyFrameRequests++;
        transformer.sendKeyFrameRequest().catch((/** @type {unknown} */ e) => noteError(`sendKeyFrameRequest: ${e}`));
      }
    }
  };
}

/** @param {string} e */
function noteError(e) {
  if (stats.errors.length < 20) stats.errors.push(e);
}

/**
 * @param {ReadableStream} readable
 * @param {WritableStream} writable
 * @param {{operation?: unknown, kind?: unknown, id?: unknown}} options
 * @param {FrameTransformer | null} transformer
 */
function pipe(readable, writable, options, transformer) {
  const operation = options.operation === 'encrypt' ? 'encrypt' : options.operation === 'decrypt' ? 'decrypt' : null;
  const kind = options.kind === 'audio' || options.kind === 'video' ? options.kind : null;
  if (!operation || !kind) {
    // Nothing passes: neither plaintext out nor undecryptable frames to the decoder.
    noteError(`bad transform options ${JSON.stringify(options)}`);
    readable.cancel().catch(() => {});
    return;
  }
  const id = String(options.id ?? `${operation}-${kind}-${Object.keys(stats.transforms).length}`);
  /** @type {TransformSeen} */
  const seen = { operation, kind, frames: 0, passed: 0 };
  stats.transforms[id] = seen;
  const fn = operation === 'encrypt' ? encryptor(kind, seen) : decryptor(kind, id, seen, transformer);
  readable
    .pipeThrough(new TransformStream({ transform: (frame, controller) => fn(frame, controller) }))
    .pipeTo(writable)
    .catch((e) => noteError(`${id}: ${e}`));
}

/** @type {any} */ (self).onrtctransform = (/** @type {any} */ event) => {
  const t = event.transformer;
  pipe(t.readable, t.writable, t.options ?? {}, t);
};

self.onmessage = async (/** @type {MessageEvent} */ e) => {
  const m = e.data;
  try {
    switch (m?.type) {
      case 'streams':
        pipe(m.readable, m.writable, { operation: m.operation, kind: m.kind, id: m.tid }, null);
        break;
      case 'setKey':
        await setKey(m);
        break;
      case 'publisher':
        setPublisher(m);
        break;
      case 'stats':
        break;
      default:
        throw new Error(`unknown message type ${m?.type}`);
    }
    if (m.id !== undefined) self.postMessage({ id: m.id, stats });
  } catch (err) {
    if (m?.id !== undefined) self.postMessage({ id: m.id, error: String(err) });
    else noteError(String(err));
  }
};
