// The account part of the landing page: "Sign in" opens a small form (user name, password);
// once signed in it says "Signed in as …" and offers "Sign out". The HTTP calls are in
// account.js; this module only draws and keeps the keyboard focus where the user is.

import { currentAccount, signIn, signOut } from './account.js';
import { onLocaleChange, t } from './i18n.js';
import { announce, byId, clearAlert, showAlert } from './page.js';

/** @typedef {import('./account.js').Account} Account */
/** @typedef {import('./account.js').SignInResult} SignInResult */

/** From this many seconds on, a wait is said in minutes. */
const MINUTES_FROM_SECONDS = 120;

/**
 * A wait as words in the page's language: "45 seconds", "3 minutes".
 * @param {number} seconds
 * @returns {string}
 */
export function waitText(seconds) {
  if (seconds < MINUTES_FROM_SECONDS) return t('waitSeconds', { n: Math.max(1, Math.ceil(seconds)) });
  return t('waitMinutes', { n: Math.ceil(seconds / 60) });
}

/**
 * The error sentence for a failed sign-in, in the page's language.
 * @param {Exclude<SignInResult, {kind: 'signed-in'}>} result
 * @returns {string}
 */
export function signInErrorText(result) {
  switch (result.kind) {
    case 'invalid':
      return t('signInInvalid');
    case 'throttled':
      return result.retryAfterSeconds === null
        ? t('signInThrottledNoWait')
        : t('signInThrottled', { wait: waitText(result.retryAfterSeconds) });
    case 'failed':
      return result.status === null ? t('signInUnreachable') : t('signInServerError', { status: result.status });
  }
}

/** Show the account controls of the landing page and learn who is signed in. */
export function showAccountPanel() {
  const ui = {
    signedOut: byId('signed-out', HTMLDivElement),
    toggle: byId('sign-in-toggle', HTMLButtonElement),
    signedIn: byId('signed-in', HTMLDivElement),
    signedInText: byId('signed-in-text', HTMLParagraphElement),
    signOutButton: byId('sign-out', HTMLButtonElement),
    form: byId('sign-in-form', HTMLFormElement),
    username: byId('sign-in-username', HTMLInputElement),
    password: byId('sign-in-password', HTMLInputElement),
    error: byId('sign-in-error', HTMLParagraphElement),
    submit: byId('sign-in-submit', HTMLButtonElement),
    cancel: byId('sign-in-cancel', HTMLButtonElement),
  };
  /** Who is signed in; undefined until the server said. @type {Account | null | undefined} */
  let account;
  /** Whether the form is open. */
  let formOpen = false;
  /** Whether a sign-in request is under way. */
  let busy = false;
  /** Draws the error shown under the form, in the current language. @type {(() => string) | null} */
  let error = null;

  function draw() {
    // While the form is open it has the focus and its own buttons: the opener steps aside
    // (two "Sign in" buttons would be ambiguous).
    ui.signedOut.hidden = account !== null || formOpen;
    ui.signedIn.hidden = !account;
    ui.signedInText.textContent = account ? t('signedInAs', { name: account.name }) : '';
    ui.form.hidden = !(account === null && formOpen);
    ui.toggle.setAttribute('aria-expanded', String(formOpen));
    ui.error.textContent = error ? error() : '';
    ui.submit.disabled = busy;
    ui.form.setAttribute('aria-busy', String(busy));
  }

  /**
   * Show `text` as the form's error (or clear it with null) and mark the fields.
   * @param {(() => string) | null} text
   * @param {HTMLInputElement[]} invalid
   */
  function setError(text, invalid) {
    error = text;
    for (const field of [ui.username, ui.password]) {
      if (invalid.includes(field)) field.setAttribute('aria-invalid', 'true');
      else field.removeAttribute('aria-invalid');
    }
    draw();
  }

  /** @param {boolean} open */
  function setFormOpen(open) {
    formOpen = open;
    if (!open) setError(null, []);
    draw();
    if (open) ui.username.focus();
  }

  ui.toggle.addEventListener('click', () => setFormOpen(true));
  ui.cancel.addEventListener('click', () => {
    setFormOpen(false);
    ui.toggle.focus();
  });
  ui.form.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return;
    event.preventDefault();
    setFormOpen(false);
    ui.toggle.focus();
  });
  ui.form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (busy) return;
    const username = ui.username.value.trim();
    const password = ui.password.value;
    if (!username || !password) {
      const missing = [username ? null : ui.username, password ? null : ui.password].filter(
        /** @returns {f is HTMLInputElement} */ (f) => f !== null,
      );
      setError(() => t('signInMissing'), missing);
      missing[0].focus();
      return;
    }
    busy = true;
    setError(null, []);
    const result = await signIn(username, password);
    busy = false;
    if (result.kind === 'signed-in') {
      account = result.account;
      formOpen = false;
      ui.password.value = '';
      setError(null, []);
      clearAlert();
      announce('signedInAs', { name: account.name });
      ui.signedInText.focus();
      return;
    }
    const invalid = result.kind === 'invalid' ? [ui.username, ui.password] : [];
    setError(() => signInErrorText(result), invalid);
    if (result.kind === 'invalid') ui.password.value = '';
    (result.kind === 'invalid' ? ui.password : ui.submit).focus();
  });
  ui.signOutButton.addEventListener('click', async () => {
    ui.signOutButton.disabled = true;
    const done = await signOut();
    ui.signOutButton.disabled = false;
    if (!done) {
      showAlert('signOutFailed');
      return;
    }
    clearAlert();
    account = null;
    draw();
    announce('signedOutAnnounce');
    ui.toggle.focus();
  });
  onLocaleChange(draw);

  draw();
  currentAccount().then((found) => {
    account = found;
    draw();
  });
}
