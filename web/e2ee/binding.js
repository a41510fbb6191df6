// Account bindings of MLS leaves (docs/architecture.md, "Identities bound to accounts"): pure
// checks on WebCrypto Ed25519, no DOM, tested in node (tests/web/e2ee-binding.test.mjs).
//
// A leaf of a signed-in participant carries two signatures:
// - the server's, over a binding {account, username, name, key, origin, iat, exp}: "this
//   server says account X holds account key K";
// - the account key K's, over this leaf's MLS signature key and the room: "the holder of K
//   made this leaf, for this meeting".
// The first only says the server vouched. The second is what a server cannot make for a key
// it does not hold; a peer who remembered K for account X (after comparing the SAS once) sees
// a leaf under X with another key as a new key, never as verified.

/** Domain separation of the two signed messages. */
export const BINDING_CONTEXT = 'conclave-binding-v1';
export const LEAF_CONTEXT = 'conclave-leaf-v1';

/** Longest binding payload accepted (bytes of JSON before base64url). */
export const MAX_BINDING_BYTES = 2048;

/** Bytes WebCrypto takes (not a view of a SharedArrayBuffer). @typedef {Uint8Array<ArrayBuffer>} Bytes */

const te = new TextEncoder();
const td = new TextDecoder('utf-8', { fatal: true });

/**
 * What the server signs (docs/protocol.md, "HTTP: identity binding").
 * @typedef {{v: 1, origin: string, account: number, username: string, name: string,
 *   source: string, key: string, iat: number, exp: number}} Binding
 */

/**
 * The signed binding as it travels: base64url of the payload JSON and of the signature.
 * @typedef {{payload: string, sig: string}} SignedBinding
 */

/**
 * What a leaf's binding says, after the checks.
 * @typedef {{status: 'bound', binding: Binding, fingerprint: string}
 *   | {status: 'forged', reason: string}
 *   | {status: 'none'}} LeafBinding
 */

/** @param {string} s @returns {Bytes} */
export function fromB64url(s) {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s)) throw new Error('not base64url');
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

/** @param {Uint8Array} bytes @returns {string} */
export function toB64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** @param {...Uint8Array} parts @returns {Bytes} */
function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A length-prefixed (u32 big-endian) field, so no two field lists sign the same bytes.
 * @param {Uint8Array} bytes @returns {Bytes} */
function field(bytes) {
  const len = new Uint8Array(4);
  new DataView(len.buffer).setUint32(0, bytes.length);
  return concat(len, bytes);
}

/** The bytes the server signs for a binding payload. @param {Uint8Array} payload @returns {Bytes} */
export function bindingMessage(payload) {
  return concat(field(te.encode(BINDING_CONTEXT)), field(payload));
}

/**
 * The bytes an account key signs for one leaf: its MLS signature key in one room. Signing the
 * MLS key is what stops a copy: a leaf that reuses Alice's credential must also use her MLS
 * signature key, whose private half only her page has (every leaf node and commit is signed
 * with it).
 * @param {string} room @param {Uint8Array} mlsSignatureKey
 * @returns {Bytes}
 */
export function leafMessage(room, mlsSignatureKey) {
  return concat(field(te.encode(LEAF_CONTEXT)), field(te.encode(room)), field(mlsSignatureKey));
}

/** Hex SHA-256 of an account key, the form remembered and compared.
 * @param {Bytes} key @returns {Promise<string>} */
export async function fingerprint(key) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', key));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** @param {Bytes} raw */
async function ed25519(raw) {
  return crypto.subtle.importKey('raw', raw, { name: 'Ed25519' }, false, ['verify']);
}

/** @param {unknown} v @returns {Binding | null} */
function asBinding(v) {
  if (!v || typeof v !== 'object') return null;
  const b = /** @type {Record<string, unknown>} */ (v);
  const str = (/** @type {string} */ k) => typeof b[k] === 'string';
  const int = (/** @type {string} */ k) => Number.isSafeInteger(b[k]);
  if (b.v !== 1 || !str('origin') || !str('username') || !str('name') || !str('source') || !str('key')) return null;
  if (!int('account') || !int('iat') || !int('exp')) return null;
  return /** @type {Binding} */ (b);
}

/**
 * Check one leaf's binding. `signed` and `leafSig` come from the leaf's credential (absent for
 * token and guest participants: status `none`); `serverKey` is the binding key from
 * `/api/settings` (raw 32 bytes); `now` is Unix seconds.
 * @param {{signed: SignedBinding | undefined, leafSig: string | undefined,
 *   mlsSignatureKey: Uint8Array, room: string, serverKey: Bytes,
 *   origin: string, now: number}} leaf
 * @returns {Promise<LeafBinding>}
 */
export async function checkLeaf(leaf) {
  const { signed, leafSig } = leaf;
  if (signed === undefined && leafSig === undefined) return { status: 'none' };
  /** @param {string} reason @returns {LeafBinding} */
  const forged = (reason) => ({ status: 'forged', reason });
  if (!signed || typeof signed !== 'object' || typeof leafSig !== 'string') return forged('incomplete binding');
  let payload, sig, leafSigBytes;
  try {
    payload = fromB64url(signed.payload);
    sig = fromB64url(signed.sig);
    leafSigBytes = fromB64url(leafSig);
  } catch {
    return forged('binding is not base64url');
  }
  if (payload.length > MAX_BINDING_BYTES) return forged('binding too long');
  let ok = false;
  try {
    ok = await crypto.subtle.verify('Ed25519', await ed25519(leaf.serverKey), sig, bindingMessage(payload));
  } catch {
    ok = false;
  }
  if (!ok) return forged('not signed by this server');
  /** @type {Binding | null} */
  let binding = null;
  try {
    binding = asBinding(JSON.parse(td.decode(payload)));
  } catch {
    binding = null;
  }
  if (!binding) return forged('binding is not a binding');
  if (binding.origin !== leaf.origin) return forged(`binding is for ${binding.origin}`);
  if (binding.exp <= leaf.now) return forged('binding expired');
  /** @type {Bytes | null} */
  let accountKey = null;
  try {
    accountKey = fromB64url(binding.key);
    ok = await crypto.subtle.verify(
      'Ed25519',
      await ed25519(accountKey),
      leafSigBytes,
      leafMessage(leaf.room, leaf.mlsSignatureKey),
    );
  } catch {
    ok = false;
  }
  if (!ok || !accountKey) return forged('leaf not signed by the account key');
  return { status: 'bound', binding, fingerprint: await fingerprint(accountKey) };
}

/**
 * How the page shows a member, from its checked binding and the account keys this browser
 * remembered after comparing a SAS (account id -> fingerprints).
 * - `verified`: bound, and the key is the one remembered for that account (or it is our own);
 * - `new_key`: bound, but another key was remembered for that account (a new device, or a
 *   server that made a leaf under this account): never verified until its SAS is compared;
 * - `bound`: bound, nothing remembered yet; `forged`: a check failed; `none`: no binding.
 * @param {LeafBinding} b @param {Map<number, Set<string>>} remembered @param {string | null} ownFingerprint
 * @returns {'verified' | 'new_key' | 'bound' | 'forged' | 'none'}
 */
export function judge(b, remembered, ownFingerprint) {
  if (b.status !== 'bound') return b.status;
  if (ownFingerprint !== null && b.fingerprint === ownFingerprint) return 'verified';
  const known = remembered.get(b.binding.account);
  if (known === undefined || known.size === 0) return 'bound';
  return known.has(b.fingerprint) ? 'verified' : 'new_key';
}
