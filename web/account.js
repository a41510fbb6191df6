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
/**
 * @typedef {{kind: 'signed-in', account: Account}
 *   | {kind: 'invalid'}
 *   | {kind: 'throttled', retryAfterSeconds: number | null}
 *   | {kind: 'failed', status: number | null}} SignInResult
 */

const SESSION_PATH = '/api/session';

/**
 * Whether `value` looks like an account of the API.
 * @param {unknown} value
 * @returns {value is Account}
 */
function isAccount(value) {
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
 * Who is signed in in this browser: the account, or null when nobody is (or the server
 * cannot say; the page then behaves as signed out).
 * @returns {Promise<Account | null>}
 */
export async function currentAccount() {
  try {
    const response = await fetch(SESSION_PATH, { credentials: 'same-origin', cache: 'no-store' });
    if (!response.ok) return null;
    const body = await response.json();
    return isAccount(body) ? body : null;
  } catch {
    return null;
  }
}

/**
 * Sign in with a user name and password; on success the browser holds the session cookie.
 * @param {string} username
 * @param {string} password
 * @returns {Promise<SignInResult>}
 */
export async function signIn(username, password) {
  /** @type {Response} */
  let response;
  try {
    response = await fetch(SESSION_PATH, {
      method: 'POST',
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username, password }),
    });
  } catch {
    return { kind: 'failed', status: null };
  }
  if (response.status === 401) return { kind: 'invalid' };
  if (response.status === 429) {
    return { kind: 'throttled', retryAfterSeconds: retryAfterSeconds(response.headers.get('Retry-After')) };
  }
  if (!response.ok) return { kind: 'failed', status: response.status };
  try {
    const body = await response.json();
    if (isAccount(body)) return { kind: 'signed-in', account: body };
  } catch {
    // Not JSON: fall through.
  }
  return { kind: 'failed', status: response.status };
}

/**
 * Sign out: the server ends the session and clears the cookie. Resolves to whether it did.
 * @returns {Promise<boolean>}
 */
export async function signOut() {
  try {
    const response = await fetch(SESSION_PATH, {
      method: 'DELETE',
      credentials: 'same-origin',
      cache: 'no-store',
    });
    return response.ok;
  } catch {
    return false;
  }
}
