// The account key of a signed-in page and the accounts this browser verified
// (docs/architecture.md, "Identities bound to accounts"). Browser only: IndexedDB,
// localStorage and fetch; the checks themselves are in ./binding.js.
//
// The account key is an Ed25519 key made with WebCrypto, its private half not extractable, kept
// in IndexedDB per account name: every tab of this browser profile is the same identity. The
// server binds it to the account (`POST /api/account/identity`), and the page signs each MLS
// leaf's signature key with it.

import { fingerprint, leafMessage, toB64url, fromB64url } from './binding.js';

const DB_NAME = 'conclave-identity';
const DB_STORE = 'account-keys';
const VERIFIED_KEY = 'conclave.verifiedAccounts';

/**
 * What the page gives E2EE for its own leaf.
 * @typedef {import('./group.js').LeafBinder & {fingerprint: string}} AccountBinder
 */

/** @returns {Promise<IDBDatabase>} */
function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(DB_STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/**
 * @param {IDBDatabase} db @param {'readonly' | 'readwrite'} mode
 * @param {(store: IDBObjectStore) => IDBRequest} op
 * @returns {Promise<any>}
 */
function run(db, mode, op) {
  return new Promise((resolve, reject) => {
    const req = op(db.transaction(DB_STORE, mode).objectStore(DB_STORE));
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** The account key of `username` in this profile, made on first use.
 * @param {string} username @returns {Promise<CryptoKeyPair>} */
async function accountKey(username) {
  const db = await openDb();
  try {
    const found = await run(db, 'readonly', (s) => s.get(username));
    if (found && found.privateKey && found.publicKey) return found;
    const pair = /** @type {CryptoKeyPair} */ (await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']));
    await run(db, 'readwrite', (s) => s.put(pair, username));
    return pair;
  } finally {
    db.close();
  }
}

/**
 * The binder of a signed-in page for `room`: the server's binding of our account key, and a
 * signer of our leaf. Null when the server gives no binding (signed out meanwhile, an old
 * server) or this browser has no Ed25519: the leaf then carries no binding.
 * @param {string} username @param {string} room
 * @returns {Promise<AccountBinder | null>}
 */
export async function accountBinder(username, room) {
  try {
    const pair = await accountKey(username);
    const raw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
    const res = await fetch('/api/account/identity', {
      method: 'POST',
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ key: toB64url(raw) }),
    });
    if (!res.ok) return null;
    const b = await res.json();
    if (typeof b?.payload !== 'string' || typeof b?.sig !== 'string') return null;
    return {
      signed: { payload: b.payload, sig: b.sig },
      fingerprint: await fingerprint(raw),
      signLeaf: async (mlsKey) =>
        toB64url(new Uint8Array(await crypto.subtle.sign('Ed25519', pair.privateKey, leafMessage(room, mlsKey)))),
    };
  } catch (err) {
    console.warn('conclave: no account binding for E2EE', err);
    return null;
  }
}

/** The server's binding key from `/api/settings`, or null.
 * @returns {Promise<Uint8Array<ArrayBuffer> | null>} */
export async function serverIdentityKey() {
  try {
    const res = await fetch('/api/settings', { credentials: 'same-origin' });
    if (!res.ok) return null;
    const key = (await res.json())?.identity_key;
    return typeof key === 'string' ? fromB64url(key) : null;
  } catch {
    return null;
  }
}

/** Accounts whose keys this browser verified by SAS: account id -> fingerprints.
 * @returns {Map<number, Set<string>>} */
export function verifiedAccounts() {
  /** @type {Map<number, Set<string>>} */
  const out = new Map();
  try {
    const v = JSON.parse(localStorage.getItem(VERIFIED_KEY) ?? '{}');
    for (const [id, fps] of Object.entries(v)) {
      if (Array.isArray(fps)) out.set(Number(id), new Set(fps.filter((f) => typeof f === 'string')));
    }
  } catch {
    // nothing remembered, or storage is off
  }
  return out;
}

/** Remember that the user verified `account`'s key `fp`. @param {number} account @param {string} fp */
export function rememberVerified(account, fp) {
  const all = verifiedAccounts();
  const set = all.get(account) ?? new Set();
  set.add(fp);
  all.set(account, set);
  try {
    localStorage.setItem(VERIFIED_KEY, JSON.stringify(Object.fromEntries([...all].map(([k, v]) => [k, [...v]]))));
  } catch {
    // storage off: the verification holds for this meeting only
  }
}
