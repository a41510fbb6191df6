// Passkeys (WebAuthn) over the server's API (docs/protocol.md, "HTTP: passkeys"): add one
// to the signed-in account, or sign in with one instead of the password. No DOM, no texts.

import { isAccount, send } from './account.js';

/** @param {string} s base64url @returns {ArrayBuffer} */
function fromB64(s) {
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/'));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out.buffer;
}

/** @param {ArrayBuffer | null} buf @returns {string} base64url without padding */
function toB64(buf) {
  if (!buf) return '';
  let bin = '';
  for (const b of new Uint8Array(buf)) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Whether this browser can use passkeys at all. */
export function passkeysSupported() {
  return typeof window.PublicKeyCredential === 'function' && !!navigator.credentials;
}

/**
 * What became of a passkey ceremony. `cancelled`: the user (or the browser) stopped it;
 * `refused`: the server did not accept it; others as for a sign-in.
 * @typedef {{kind: 'ok'} | {kind: 'cancelled'} | {kind: 'refused', status: number | null}} PasskeyResult
 */

/**
 * Create a passkey for the signed-in account and register it.
 * @param {string} name What to call it in the account's list.
 * @returns {Promise<PasskeyResult>}
 */
export async function addPasskey(name) {
  const options = await send('/api/account/passkeys/options', {});
  if (options.kind !== 'ok') return { kind: 'refused', status: 'status' in options ? options.status : null };
  const o = /** @type {any} */ (options.body);
  /** @type {PublicKeyCredential | null} */
  let cred;
  try {
    cred = /** @type {PublicKeyCredential | null} */ (
      await navigator.credentials.create({
        publicKey: {
          challenge: fromB64(o.challenge),
          rp: { id: o.rp.id, name: o.rp.name },
          user: { id: fromB64(o.user.id), name: o.user.name, displayName: o.user.displayName },
          pubKeyCredParams: o.algorithms.map((/** @type {number} */ alg) => ({ type: 'public-key', alg })),
          excludeCredentials: o.excludeCredentials.map((/** @type {string} */ id) => ({ type: 'public-key', id: fromB64(id) })),
          authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
          attestation: 'none',
          timeout: o.timeoutMs,
        },
      })
    );
  } catch {
    return { kind: 'cancelled' };
  }
  if (!cred) return { kind: 'cancelled' };
  const response = /** @type {AuthenticatorAttestationResponse} */ (cred.response);
  const r = await send('/api/account/passkeys', {
    id: toB64(cred.rawId),
    clientDataJson: toB64(response.clientDataJSON),
    authenticatorData: toB64(response.getAuthenticatorData()),
    publicKey: toB64(response.getPublicKey()),
    publicKeyAlgorithm: response.getPublicKeyAlgorithm(),
    name,
  });
  return r.kind === 'ok' ? { kind: 'ok' } : { kind: 'refused', status: 'status' in r ? r.status : null };
}

/**
 * Sign in with a passkey this site's authenticator holds (the browser asks which).
 * @returns {Promise<import('./account.js').SignInResult | {kind: 'cancelled'}>}
 */
export async function signInWithPasskey() {
  const options = await send('/api/session/passkey/options', {});
  if (options.kind !== 'ok') return options.kind === 'invalid' ? { kind: 'failed', status: 401 } : options;
  const o = /** @type {any} */ (options.body);
  /** @type {PublicKeyCredential | null} */
  let cred;
  try {
    cred = /** @type {PublicKeyCredential | null} */ (
      await navigator.credentials.get({
        publicKey: { challenge: fromB64(o.challenge), rpId: o.rpId, userVerification: 'required', timeout: o.timeoutMs },
      })
    );
  } catch {
    return { kind: 'cancelled' };
  }
  if (!cred) return { kind: 'cancelled' };
  const response = /** @type {AuthenticatorAssertionResponse} */ (cred.response);
  const r = await send('/api/session/passkey', {
    id: toB64(cred.rawId),
    clientDataJson: toB64(response.clientDataJSON),
    authenticatorData: toB64(response.authenticatorData),
    signature: toB64(response.signature),
    userHandle: response.userHandle ? toB64(response.userHandle) : undefined,
  });
  if (r.kind !== 'ok') return r;
  return isAccount(r.body) ? { kind: 'signed-in', account: r.body } : { kind: 'failed', status: 200 };
}
