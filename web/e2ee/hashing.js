// SHA-256, HMAC and HKDF for ts-mls without a WebCrypto round trip per call.
//
// ts-mls's default provider sends every hash, MAC and HKDF step to crypto.subtle, which is
// asynchronous: each call costs tens of microseconds of scheduling whatever its size. A
// commit in a group of 100 makes hundreds of such calls on tiny inputs (tree hashes of every
// node, the key schedule, the secret tree), so processing one took about 50 ms of CPU per
// member (docs/performance.md). The audited noble-hashes (vendored with ts-mls) computes the
// same functions synchronously. Signatures (Ed25519), HPKE (X25519, AES-GCM) and frame
// encryption stay on WebCrypto. tests/web/e2ee-group.test.mjs checks that every function
// here gives the same bytes as WebCrypto.

/** @typedef {import('../vendor/ts-mls/index.js').CiphersuiteImpl} CiphersuiteImpl */
/** @typedef {((data: Uint8Array) => Uint8Array) & {outputLen: number, blockLen: number}} Hash */

// Loaded by a computed specifier: the vendored noble-hashes has no type declarations, and a
// literal import would make tsc type-check its JavaScript as ours. Loaded on first use, not at
// the top level: a top-level await would hold back the page's start (and its `load` event).
const NOBLE = '../vendor/noble-hashes/';
/** @type {Hash} */
let sha256;
/** @type {(hash: Hash, key: Uint8Array, message: Uint8Array) => Uint8Array} */
let hmac;
let loaded = false;

/** Load noble-hashes once; every function below needs it. */
export async function loadHashing() {
  if (loaded) return;
  const [sha2, mac] = await Promise.all([import(NOBLE + 'sha2.js'), import(NOBLE + 'hmac.js')]);
  sha256 = /** @type {{sha256: Hash}} */ (sha2).sha256;
  hmac = /** @type {{hmac: typeof hmac}} */ (mac).hmac;
  loaded = true;
}

const HASH_LEN = 32;

/** HKDF-Extract (RFC 5869 §2.2) with SHA-256; an empty salt is HashLen zeros. Needs `loadHashing()`.
 * @param {Uint8Array} salt @param {Uint8Array} ikm */
export function hkdfExtract(salt, ikm) {
  return hmac(sha256, salt.length > 0 ? salt : new Uint8Array(HASH_LEN), ikm);
}

/** HKDF-Expand (RFC 5869 §2.3) with SHA-256.
 * @param {Uint8Array} prk @param {Uint8Array} info @param {number} length */
export function hkdfExpand(prk, info, length) {
  if (!Number.isInteger(length) || length < 0 || length > 255 * HASH_LEN) throw new RangeError(`HKDF-Expand length ${length}`);
  const out = new Uint8Array(length);
  /** @type {Uint8Array} */
  let previous = new Uint8Array(0);
  for (let i = 1, at = 0; at < length; i++, at += HASH_LEN) {
    const input = new Uint8Array(previous.length + info.length + 1);
    input.set(previous);
    input.set(info, previous.length);
    input[input.length - 1] = i;
    previous = hmac(sha256, prk, input);
    out.set(previous.subarray(0, Math.min(HASH_LEN, length - at)), at);
  }
  return out;
}

/** Constant-time equality of two byte strings. @param {Uint8Array} a @param {Uint8Array} b */
function equal(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/**
 * `impl` (a SHA-256 ciphersuite) with its hash and KDF computed by noble-hashes.
 * @param {CiphersuiteImpl} impl
 * @returns {Promise<CiphersuiteImpl>}
 */
export async function withFastHashing(impl) {
  if (impl.kdf.size !== HASH_LEN) throw new Error('withFastHashing: only for SHA-256 ciphersuites');
  await loadHashing();
  return {
    ...impl,
    hash: {
      async digest(data) {
        return sha256(data);
      },
      async mac(key, data) {
        return hmac(sha256, key, data);
      },
      async verifyMac(key, mac, data) {
        return equal(hmac(sha256, key, data), mac);
      },
    },
    kdf: {
      async extract(salt, ikm) {
        return hkdfExtract(salt, ikm);
      },
      async expand(prk, info, length) {
        return hkdfExpand(prk, info, length);
      },
      size: HASH_LEN,
    },
  };
}
