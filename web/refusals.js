// Why we are not (or no longer) in a meeting, in words: join errors, the end of a session
// by a moderator's decision, and the invitation token of the link. No wire code, no state.

import { showAlert } from './page.js';

/** @typedef {import('./protocol.js').ProtocolError} ProtocolError */
/** @typedef {import('./protocol.js').LeaveReason} LeaveReason */
/** @typedef {import('./i18n.js').MessageKey} MessageKey */

/**
 * Join errors after which joining again cannot work, so a reconnect stops: the room or name
 * is refused as such, the server speaks another protocol version, or a moderator's or the
 * server's access rule keeps us out. Everything else (a full room or server, a lost
 * connection, a rate limit) may pass, and is tried again.
 */
export const PERMANENT_JOIN_ERRORS = new Set([
  'invalid_room',
  'invalid_name',
  'unsupported_version',
  'banned',
  'room_locked',
  'password_required',
  'wrong_password',
  'sign_in_required',
  'invalid_token',
  'client_e2ee_unsupported',
]);

/** Join errors that ask for the room password: the pre-join form shows its field. */
export const PASSWORD_ERRORS = new Set(['password_required', 'wrong_password']);

/** Server error codes with their own sentence; others show code and message. @type {Record<string, MessageKey>} */
const ERROR_TEXTS = {
  banned: 'errorBanned',
  room_locked: 'errorRoomLocked',
  password_required: 'errorPasswordRequired',
  wrong_password: 'errorWrongPassword',
  too_many_attempts: 'errorTooManyAttempts',
  sign_in_required: 'errorSignInRequired',
  invalid_token: 'errorInvalidToken',
  forbidden: 'errorForbidden',
  invalid_password: 'errorInvalidPassword',
  client_e2ee_unsupported: 'errorE2eeUnsupported',
  e2ee_not_encrypting: 'errorE2eeNotEncrypting',
};

/**
 * Take the invitation token out of the address (`?jwt=…`) once: it is kept only in memory,
 * and the address bar, history and screenshots no longer show it.
 * @returns {string | null}
 */
export function takeTokenFromUrl() {
  const url = new URL(location.href);
  const token = url.searchParams.get('jwt');
  if (token === null) return null;
  url.searchParams.delete('jwt');
  history.replaceState(history.state, '', url.pathname + url.search + url.hash);
  return token || null;
}

/** The words for each reason a session ended. @type {Record<LeaveReason, MessageKey>} */
const REASONS = {
  left: 'reasonLeft',
  disconnected: 'reasonDisconnected',
  timeout: 'reasonTimeout',
  error: 'reasonError',
  removed: 'reasonRemoved',
  banned: 'reasonBanned',
  ended: 'reasonEnded',
  denied: 'reasonDenied',
};

/**
 * Say that the session ended for `reason`, with a moderator's words if there are any.
 * @param {LeaveReason} reason
 * @param {string | null} message
 */
export function showEnded(reason, message) {
  const why = { key: REASONS[reason] ?? 'reasonError' };
  if (message) showAlert('endedWithMessage', { reason: why, message });
  else showAlert('ended', { reason: why });
}

/**
 * Show why the server refused a join or an action, in the page's language.
 * @param {ProtocolError} err
 */
export function showProtocolError(err) {
  if (err.reason) {
    showEnded(err.reason, err.message || null);
    return;
  }
  const key = ERROR_TEXTS[err.code];
  if (key) showAlert(key, { message: err.message });
  else showAlert('serverError', { code: err.code, message: err.message });
}
