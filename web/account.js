// The account of this browser: sign in, ask who is signed in, sign out, over the server's
// HTTP API (docs/protocol.md, "HTTP: sign-in"). No DOM, no texts: the pages decide what to
// show. The session itself is an HttpOnly cookie that scripts never see; the WebSocket
// carries it, and the server then knows the account.

/**
 * A signed-in account, as the server names it.
 * @typedef {object} Account
 * @property {string} username
 * @property {string} name The display name; meetings show it and it cannot be changed there.
 */

/*
 * What a sign-in attempt came to. `invalid`: unknown user, wrong password, or an account that
 * cannot sign in (the server gives one answer for all). `throttled`: too many failed
 * attempts; wait as long as said. `failed`: the server answered with an error (`status`) or
 * could not be reached (null).
 */
/*
 * `second-factor`: the password was right and the code from the authenticator app (or a
 * recovery code) is next; `enrol`: the password was right and the server wants an
 * authenticator app set up first. Both hold a short "half session" that can do nothing else.
 */
/**
 * @typedef {{kind: 'signed-in', account: Account}
 *   | {kind: 'second-factor', account: Account}
 *   | {kind: 'enrol', account: Account}
 *   | {kind: 'invalid'}
 *   | {kind: 'throttled', retryAfterSeconds: number | null}
 *   | {kind: 'not-allowed'} | {kind: 'unavailable'}
 *   | {kind: 'failed', status: number | null}} SignInResult
 */

const SESSION_PATH = '/api/session';

/**
 * Whether `value` looks like an account of the API.
 * @param {unknown} value
 * @returns {value is Account}
 */
export function isAccount(value) {
  if (typeof value !== 'object' || value === null) return false;
  const v = /** @type {Record<string, unknown>} */ (value);
  return typeof v.username === 'string' && typeof v.name === 'string';
}

/**
 * The seconds of a Retry-After header (delta-seconds or an HTTP date), or null.
 * @param {string | null} header
 * @param {number} [now] Milliseconds since the epoch.
 * @returns {number | null}
 */
export function retryAfterSeconds(header, now = Date.now()) {
  if (header === null) return null;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text);
  // An HTTP date names its weekday and month; Date.parse alone would take "-5" for a year.
  if (!/[A-Za-z]/.test(text)) return null;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return null;
  return Math.max(0, Math.ceil((at - now) / 1000));
}

/**
 * The state of this browser's session.
 * @typedef {{kind: 'signed-in' | 'second-factor' | 'enrol', account: Account}
 *   | {kind: 'signed-out'}} SessionState
 */

/**
 * Who is signed in in this browser, and whether a second factor is still due. Signed out
 * when nobody is (or the server cannot say; the page then behaves as signed out).
 * @returns {Promise<SessionState>}
 */
export async function currentSession() {
  try {
    const response = await fetch(SESSION_PATH, { credentials: 'same-origin', cache: 'no-store' });
    const body = await response.json();
    if (!isAccount(body)) return { kind: 'signed-out' };
    if (response.ok) return { kind: 'signed-in', account: body };
    const next = /** @type {Record<string, unknown>} */ (body).next;
    if (next === 'second_factor') return { kind: 'second-factor', account: body };
    if (next === 'enrol') return { kind: 'enrol', account: body };
    return { kind: 'signed-out' };
  } catch {
    return { kind: 'signed-out' };
  }
}

/**
 * Who is signed in in this browser: the account, or null when nobody is (a session waiting
 * for its second factor counts as nobody).
 * @returns {Promise<Account | null>}
 */
export async function currentAccount() {
  const s = await currentSession();
  return s.kind === 'signed-in' ? s.account : null;
}

/**
 * POST (or DELETE) JSON to the API and sort the answer like a sign-in: 401 is `invalid`,
 * 429 `throttled`, a directory's refusal `not-allowed`, an unreachable directory
 * `unavailable`, other errors `failed`; a 2xx gives its JSON body.
 * @param {string} path
 * @param {unknown} body
 * @param {string} [method]
 * @returns {Promise<{kind: 'ok', body: Record<string, unknown>} | {kind: 'invalid'}
 *   | {kind: 'throttled', retryAfterSeconds: number | null} | {kind: 'not-allowed'}
 *   | {kind: 'unavailable'} | {kind: 'failed', status: number | null}>}
 */
export async function send(path, body, method = 'POST') {
  /** @type {Response} */
  let response;
  try {
    response = await fetch(path, {
      method,
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
  } catch {
    return { kind: 'failed', status: null };
  }
  if (response.status === 401) return { kind: 'invalid' };
  if (response.status === 429) {
    return { kind: 'throttled', retryAfterSeconds: retryAfterSeconds(response.headers.get('Retry-After')) };
  }
  if (response.status === 403 || response.status === 503) {
    const code = await response.json().then((b) => b?.error, () => null);
    if (code === 'not_allowed') return { kind: 'not-allowed' };
    if (code === 'directory_unavailable') return { kind: 'unavailable' };
  }
  if (!response.ok) return { kind: 'failed', status: response.status };
  if (response.status === 204) return { kind: 'ok', body: {} };
  try {
    const parsed = await response.json();
    if (typeof parsed === 'object' && parsed !== null) return { kind: 'ok', body: parsed };
  } catch {
    // Not JSON: fall through.
  }
  return { kind: 'failed', status: response.status };
}

/**
 * Finish a sign-in with the code from the authenticator app, or with a recovery code.
 * @param {{code: string} | {recovery_code: string}} factor
 * @returns {Promise<SignInResult>}
 */
export async function sendSecondFactor(factor) {
  const r = await send('/api/session/second-factor', factor);
  if (r.kind !== 'ok') return r;
  return isAccount(r.body) ? { kind: 'signed-in', account: r.body } : { kind: 'failed', status: 200 };
}

/**
 * A new authenticator-app secret to set up: the secret to type in, the otpauth URI, and
 * its QR code as rows of '0' and '1'. Null when the server refused.
 * @typedef {{secret: string, uri: string, qr: string[] | null}} TotpSetup
 * @returns {Promise<TotpSetup | null>}
 */
export async function beginTotp() {
  const r = await send('/api/account/totp', {});
  if (r.kind !== 'ok') return null;
  const { secret, uri, qr } = r.body;
  if (typeof secret !== 'string' || typeof uri !== 'string') return null;
  const rows = Array.isArray(qr) && qr.every((row) => typeof row === 'string') ? qr : null;
  return { secret, uri, qr: rows };
}

/**
 * Finish setting up the app with its first code: the recovery codes (shown once) and the
 * account, now fully signed in.
 * @param {string} code
 * @returns {Promise<{kind: 'enrolled', account: Account, recoveryCodes: string[]}
 *   | Exclude<SignInResult, {kind: 'signed-in' | 'second-factor' | 'enrol'}>>}
 */
export async function confirmTotp(code) {
  const r = await send('/api/account/totp/confirm', { code });
  if (r.kind !== 'ok') return r;
  const codes = r.body.recovery_codes;
  if (!isAccount(r.body) || !Array.isArray(codes)) return { kind: 'failed', status: 200 };
  return { kind: 'enrolled', account: r.body, recoveryCodes: codes.map(String) };
}

/**
 * A registered passkey, as the server lists it.
 * @typedef {{id: string, name: string, createdAt: number, lastUsedAt: number | null}} PasskeyInfo
 */

/**
 * The account's second factors, passkeys and the server's policy, or null.
 * @returns {Promise<{mfa: string, required: boolean, totp: boolean, recoveryCodesLeft: number, passkeys: PasskeyInfo[]} | null>}
 */
export async function accountFactors() {
  try {
    const response = await fetch('/api/account/factors', { credentials: 'same-origin', cache: 'no-store' });
    if (!response.ok) return null;
    const b = await response.json();
    const list = Array.isArray(b.passkey_list) ? b.passkey_list : [];
    return {
      mfa: String(b.mfa),
      required: b.required === true,
      totp: b.totp === true,
      recoveryCodesLeft: Number(b.recovery_codes_left) || 0,
      passkeys: list.map((/** @type {any} */ k) => ({
        id: String(k.id),
        name: String(k.name),
        createdAt: Number(k.created_at) || 0,
        lastUsedAt: typeof k.last_used_at === 'number' ? k.last_used_at : null,
      })),
    };
  } catch {
    return null;
  }
}

/**
 * With the app's current code: remove the app (and its recovery codes), or get new recovery
 * codes (the old ones stop working).
 * @param {'remove' | 'renew'} what
 * @param {string} code
 * @returns {Promise<{kind: 'removed'} | {kind: 'renewed', recoveryCodes: string[]}
 *   | {kind: 'invalid'} | {kind: 'refused'} | {kind: 'throttled', retryAfterSeconds: number | null}
 *   | {kind: 'failed', status: number | null}>}
 */
export async function changeApp(what, code) {
  const r = what === 'remove'
    ? await send('/api/account/totp', { code }, 'DELETE')
    : await send('/api/account/recovery-codes', { code });
  if (r.kind === 'ok') {
    if (what === 'remove') return { kind: 'removed' };
    const codes = r.body.recovery_codes;
    return Array.isArray(codes) ? { kind: 'renewed', recoveryCodes: codes.map(String) } : { kind: 'failed', status: 200 };
  }
  if (r.kind === 'failed' && r.status === 403) return { kind: 'refused' };
  if (r.kind === 'not-allowed' || r.kind === 'unavailable') return { kind: 'refused' };
  return r;
}

/**
 * Remove one of the account's passkeys. Whether the server removed it.
 * @param {string} id
 */
export async function removePasskey(id) {
  try {
    const r = await fetch(`/api/account/passkeys/${encodeURIComponent(id)}`, {
      method: 'DELETE',
      credentials: 'same-origin',
      cache: 'no-store',
    });
    return r.status === 204;
  } catch {
    return false;
  }
}

/**
 * Sign in with a user name and password; on success the browser holds the session cookie.
 * @param {string} username
 * @param {string} password
 * @returns {Promise<SignInResult>}
 */
export async function signIn(username, password) {
  const r = await send(SESSION_PATH, { username, password });
  if (r.kind !== 'ok') return r;
  if (!isAccount(r.body)) return { kind: 'failed', status: 200 };
  const next = /** @type {Record<string, unknown>} */ (r.body).next;
  if (next === 'second_factor') return { kind: 'second-factor', account: r.body };
  if (next === 'enrol') return { kind: 'enrol', account: r.body };
  return { kind: 'signed-in', account: r.body };
}

/**
 * Sign out: the server ends the session and clears the cookie. `ok` says whether it did;
 * `logout` is where the page goes next when the account came from an OpenID provider that
 * ends its own session too (RP-initiated logout), or null.
 * @returns {Promise<{ok: boolean, logout: string | null}>}
 */
export async function signOut() {
  try {
    const response = await fetch(SESSION_PATH, {
      method: 'DELETE',
      credentials: 'same-origin',
      cache: 'no-store',
    });
    if (response.status !== 200) return { ok: response.ok, logout: null };
    const body = /** @type {unknown} */ (await response.json().catch(() => null));
    const logout = body && typeof body === 'object' ? /** @type {Record<string, unknown>} */ (body).logout : null;
    return { ok: true, logout: typeof logout === 'string' && logout.startsWith('https://') ? logout : null };
  } catch {
    return { ok: false, logout: null };
  }
}

/** @typedef {{name: string, label: string}} OidcProvider */

/**
 * The OpenID providers this server signs in with (`GET /api/settings`, `oidc`); [] when
 * there are none or the server cannot be asked.
 * @returns {Promise<OidcProvider[]>}
 */
export async function oidcProviders() {
  try {
    const response = await fetch('/api/settings', { credentials: 'same-origin', cache: 'no-store' });
    if (!response.ok) return [];
    const body = /** @type {{oidc?: unknown}} */ (await response.json());
    if (!Array.isArray(body.oidc)) return [];
    return body.oidc.filter(
      (/** @type {any} */ p) => p && typeof p.name === 'string' && /^[a-z0-9-]{1,32}$/.test(p.name) && typeof p.label === 'string',
    );
  } catch {
    return [];
  }
}
