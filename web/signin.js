// The account part of the landing page: "Sign in" opens a small form (user name, password);
// when the server asks for a second step it shows the code form (app code or recovery code)
// or, where the policy wants one, sets up an authenticator app (QR code, key, first code,
// recovery codes). Once signed in it says "Signed in as …" and offers "Sign out" and
// "Set up authenticator app". The HTTP calls are in account.js; this module only draws and
// keeps the keyboard focus where the user is.

import {
  beginTotp,
  confirmTotp,
  currentSession,
  oidcProviders,
  sendSecondFactor,
  signIn,
  signOut,
} from './account.js';
import { onLocaleChange, t } from './i18n.js';
import { addPasskey, passkeysSupported, signInWithPasskey } from './passkey.js';
import { securityPanel } from './security.js';
import { announce, byId, clearAlert, showAlert } from './page.js';

/** @typedef {import('./account.js').Account} Account */
/** @typedef {import('./account.js').SignInResult} SignInResult */
/** @typedef {import('./account.js').TotpSetup} TotpSetup */

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
    case 'second-factor':
    case 'enrol':
    case 'invalid':
      return t('signInInvalid');
    case 'throttled':
      return result.retryAfterSeconds === null
        ? t('signInThrottledNoWait')
        : t('signInThrottled', { wait: waitText(result.retryAfterSeconds) });
    case 'not-allowed':
      return t('signInNotAllowed');
    case 'unavailable':
      return t('signInDirectoryUnavailable');
    case 'failed':
      return result.status === null ? t('signInUnreachable') : t('signInServerError', { status: result.status });
  }
}

/**
 * Draw a QR code (rows of '0' and '1') on a canvas, with the quiet zone of 4 modules.
 * @param {HTMLCanvasElement} canvas
 * @param {string[] | null} rows
 */
function drawQr(canvas, rows) {
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (!rows || rows.length === 0) return;
  const modules = rows.length + 8;
  const scale = Math.floor(canvas.width / modules);
  const offset = Math.floor((canvas.width - scale * rows.length) / 2);
  ctx.fillStyle = '#000';
  rows.forEach((row, y) => {
    for (let x = 0; x < row.length; x++) {
      if (row[x] === '1') ctx.fillRect(offset + x * scale, offset + y * scale, scale, scale);
    }
  });
}

/** Show the account controls of the landing page and learn who is signed in. */
export function showAccountPanel() {
  const ui = {
    signedOut: byId('signed-out', HTMLDivElement),
    toggle: byId('sign-in-toggle', HTMLButtonElement),
    signedIn: byId('signed-in', HTMLDivElement),
    signedInText: byId('signed-in-text', HTMLParagraphElement),
    enrolStart: byId('enrol-start', HTMLButtonElement),
    passkeyAdd: byId('passkey-add', HTMLButtonElement),
    passkeyStatus: byId('passkey-status', HTMLParagraphElement),
    passkeySignIn: byId('passkey-sign-in', HTMLButtonElement),
    oidcButtons: byId('oidc-buttons', HTMLDivElement),
    signOutButton: byId('sign-out', HTMLButtonElement),
    form: byId('sign-in-form', HTMLFormElement),
    username: byId('sign-in-username', HTMLInputElement),
    password: byId('sign-in-password', HTMLInputElement),
    error: byId('sign-in-error', HTMLParagraphElement),
    submit: byId('sign-in-submit', HTMLButtonElement),
    cancel: byId('sign-in-cancel', HTMLButtonElement),
    factorForm: byId('second-factor-form', HTMLFormElement),
    factorLabel: byId('second-factor-label', HTMLLabelElement),
    factorCode: byId('second-factor-code', HTMLInputElement),
    factorError: byId('second-factor-error', HTMLParagraphElement),
    factorSubmit: byId('second-factor-submit', HTMLButtonElement),
    factorSwitch: byId('second-factor-switch', HTMLButtonElement),
    factorCancel: byId('second-factor-cancel', HTMLButtonElement),
    enrolPanel: byId('enrol-panel', HTMLElement),
    enrolHeading: byId('enrol-heading', HTMLHeadingElement),
    enrolWhy: byId('enrol-why', HTMLParagraphElement),
    enrolQr: byId('enrol-qr', HTMLCanvasElement),
    enrolSecret: byId('enrol-secret', HTMLElement),
    enrolForm: byId('enrol-form', HTMLFormElement),
    enrolCode: byId('enrol-code', HTMLInputElement),
    enrolError: byId('enrol-error', HTMLParagraphElement),
    enrolSubmit: byId('enrol-submit', HTMLButtonElement),
    enrolCancel: byId('enrol-cancel', HTMLButtonElement),
    recoveryPanel: byId('recovery-panel', HTMLElement),
    recoveryHeading: byId('recovery-heading', HTMLHeadingElement),
    recoveryList: byId('recovery-list', HTMLOListElement),
    recoveryDone: byId('recovery-done', HTMLButtonElement),
  };
  const security = securityPanel({
    onRecoveryCodes: (codes) => {
      showRecoveryCodes(codes);
      draw();
      ui.recoveryHeading.focus();
    },
    onChange: () => {
      learnFactors();
    },
  });
  /** Who is signed in; undefined until the server said. @type {Account | null | undefined} */
  let account;
  /** A sign-in whose second step is due. @type {{kind: 'second-factor' | 'enrol', account: Account} | null} */
  let pending = null;
  /** Whether the password form is open. */
  let formOpen = false;
  /** Whether the second step takes a recovery code instead of the app's code. */
  let recovery = false;
  /** The app being set up, while the enrolment panel is open. @type {TotpSetup | null} */
  let enrolment = null;
  /** Recovery codes to show once. @type {string[] | null} */
  let recoveryCodes = null;
  /** Whether the signed-in account may set up an app (it has none, the server allows it). */
  let canEnrol = false;
  /** Whether a request is under way. */
  let busy = false;
  /** Draws the errors shown under the forms, in the current language. @type {(() => string) | null} */
  let error = null;
  /** @type {(() => string) | null} */
  let factorError = null;
  /** @type {(() => string) | null} */
  let enrolError = null;
  /** What the last passkey action came to, in the current language. @type {(() => string) | null} */
  let passkeyStatus = null;

  function draw() {
    const stepping = pending !== null || enrolment !== null || recoveryCodes !== null;
    // While a form is open it has the focus and its own buttons: the opener steps aside
    // (two "Sign in" buttons would be ambiguous).
    ui.signedOut.hidden = account !== null || formOpen || stepping;
    ui.signedIn.hidden = !account || stepping;
    ui.signedInText.textContent = account ? t('signedInAs', { name: account.name }) : '';
    ui.enrolStart.hidden = !canEnrol;
    ui.passkeyAdd.hidden = !account || !passkeysSupported();
    ui.passkeyAdd.disabled = busy;
    ui.passkeyStatus.textContent = account && passkeyStatus ? passkeyStatus() : '';
    ui.passkeySignIn.hidden = !passkeysSupported();
    ui.passkeySignIn.disabled = busy;
    security.redraw();
    if (stepping || !account) byId('security-panel', HTMLElement).hidden = true;
    ui.form.hidden = !(account === null && formOpen && !stepping);
    ui.toggle.setAttribute('aria-expanded', String(formOpen));
    ui.error.textContent = error ? error() : '';
    ui.submit.disabled = busy;
    ui.form.setAttribute('aria-busy', String(busy));
    ui.factorForm.hidden = pending?.kind !== 'second-factor';
    ui.factorLabel.textContent = t(recovery ? 'secondFactorRecoveryLabel' : 'secondFactorCodeLabel');
    ui.factorCode.inputMode = recovery ? 'text' : 'numeric';
    ui.factorSwitch.textContent = t(recovery ? 'secondFactorUseApp' : 'secondFactorUseRecovery');
    ui.factorError.textContent = factorError ? factorError() : '';
    ui.factorSubmit.disabled = busy;
    ui.enrolPanel.hidden = enrolment === null || recoveryCodes !== null;
    ui.enrolWhy.textContent = t(pending?.kind === 'enrol' ? 'enrolRequired' : 'enrolOptional');
    ui.enrolSecret.textContent = enrolment ? enrolment.secret.replace(/(.{4})/g, '$1 ').trim() : '';
    ui.enrolError.textContent = enrolError ? enrolError() : '';
    ui.enrolSubmit.disabled = busy;
    ui.recoveryPanel.hidden = recoveryCodes === null;
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

  /**
   * Show recovery codes once (the recovery panel).
   * @param {string[]} codes
   */
  function showRecoveryCodes(codes) {
    recoveryCodes = codes;
    ui.recoveryList.replaceChildren(
      ...codes.map((c) => {
        const li = document.createElement('li');
        const code = document.createElement('code');
        code.textContent = c;
        li.append(code);
        return li;
      }),
    );
  }

  /** Ask the server about the account's factors (may it still set up an app, its passkeys). */
  async function learnFactors() {
    const f = await security.refresh(!!account);
    canEnrol = f !== null && f.mfa !== 'off' && !f.totp;
    draw();
  }

  /** @param {Account} signedIn */
  function finishSignIn(signedIn) {
    account = signedIn;
    pending = null;
    formOpen = false;
    recovery = false;
    ui.password.value = '';
    ui.factorCode.value = '';
    setError(null, []);
    factorError = null;
    clearAlert();
    announce('signedInAs', { name: signedIn.name });
    draw();
    ui.signedInText.focus();
    learnFactors();
  }

  /** Open the enrolment panel with a fresh secret. */
  async function startEnrolment() {
    busy = true;
    draw();
    const setup = await beginTotp();
    busy = false;
    if (!setup) {
      enrolment = null;
      if (pending) {
        pending = null;
        account = null;
        formOpen = true;
        error = () => t('enrolFailed');
      } else {
        showAlert('enrolFailed');
      }
      draw();
      return;
    }
    enrolment = setup;
    enrolError = null;
    ui.enrolCode.value = '';
    draw();
    drawQr(ui.enrolQr, setup.qr);
    ui.enrolHeading.focus();
  }

  /** Drop a half session (the user gave up on the second step). */
  async function abandon() {
    pending = null;
    enrolment = null;
    recovery = false;
    factorError = null;
    enrolError = null;
    if (account === null) await signOut();
    draw();
    (account ? ui.signedInText : ui.toggle).focus();
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
      finishSignIn(result.account);
      return;
    }
    if (result.kind === 'second-factor' || result.kind === 'enrol') {
      pending = { kind: result.kind, account: result.account };
      ui.password.value = '';
      formOpen = false;
      draw();
      if (result.kind === 'enrol') await startEnrolment();
      else ui.factorCode.focus();
      return;
    }
    const invalid = result.kind === 'invalid' ? [ui.username, ui.password] : [];
    setError(() => signInErrorText(result), invalid);
    if (result.kind === 'invalid') ui.password.value = '';
    (result.kind === 'invalid' ? ui.password : ui.submit).focus();
  });
  ui.factorSwitch.addEventListener('click', () => {
    recovery = !recovery;
    factorError = null;
    ui.factorCode.value = '';
    draw();
    ui.factorCode.focus();
  });
  ui.factorCancel.addEventListener('click', abandon);
  ui.factorForm.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return;
    event.preventDefault();
    abandon();
  });
  ui.factorForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (busy) return;
    const code = ui.factorCode.value.trim();
    if (!code) {
      factorError = () => t('secondFactorMissing');
      draw();
      ui.factorCode.focus();
      return;
    }
    busy = true;
    factorError = null;
    draw();
    const result = await sendSecondFactor(recovery ? { recovery_code: code } : { code });
    busy = false;
    if (result.kind === 'signed-in') {
      finishSignIn(result.account);
      return;
    }
    ui.factorCode.value = '';
    if (result.kind === 'invalid') {
      // Either the code was wrong, or the half session ran out: ask which.
      const s = await currentSession();
      if (s.kind !== 'second-factor') {
        pending = null;
        formOpen = true;
        setError(() => t('secondFactorExpired'), []);
        ui.username.focus();
        return;
      }
      factorError = () => t('secondFactorInvalid');
    } else {
      factorError = () => signInErrorText(result);
    }
    ui.factorCode.setAttribute('aria-invalid', 'true');
    draw();
    ui.factorCode.focus();
  });
  ui.enrolStart.addEventListener('click', startEnrolment);
  ui.passkeyAdd.addEventListener('click', async () => {
    if (busy) return;
    busy = true;
    passkeyStatus = null;
    draw();
    const r = await addPasskey(navigator.platform || 'Passkey');
    busy = false;
    passkeyStatus = () => t(r.kind === 'ok' ? 'passkeyAdded' : r.kind === 'cancelled' ? 'passkeyCancelled' : 'passkeyRefused');
    draw();
    if (r.kind === 'ok') learnFactors();
  });
  ui.passkeySignIn.addEventListener('click', async () => {
    if (busy) return;
    busy = true;
    setError(null, []);
    const result = await signInWithPasskey();
    busy = false;
    if (result.kind === 'signed-in') {
      finishSignIn(result.account);
      return;
    }
    if (result.kind === 'cancelled') setError(() => t('passkeyCancelled'), []);
    else if (result.kind === 'invalid' || result.kind === 'failed') setError(() => t('passkeyRefused'), []);
    else setError(() => signInErrorText(result), []);
    ui.passkeySignIn.focus();
  });
  ui.enrolCancel.addEventListener('click', abandon);
  ui.enrolForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (busy) return;
    const code = ui.enrolCode.value.trim();
    if (!code) {
      enrolError = () => t('secondFactorMissing');
      draw();
      ui.enrolCode.focus();
      return;
    }
    busy = true;
    enrolError = null;
    draw();
    const result = await confirmTotp(code);
    busy = false;
    if (result.kind === 'enrolled') {
      account = result.account;
      pending = null;
      enrolment = null;
      canEnrol = false;
      showRecoveryCodes(result.recoveryCodes);
      learnFactors();
      announce('enrolledAnnounce');
      draw();
      ui.recoveryHeading.focus();
      return;
    }
    ui.enrolCode.value = '';
    enrolError = () => (result.kind === 'invalid' ? t('secondFactorInvalid') : signInErrorText(result));
    draw();
    ui.enrolCode.focus();
  });
  ui.recoveryDone.addEventListener('click', () => {
    recoveryCodes = null;
    ui.recoveryList.replaceChildren();
    draw();
    if (account) announce('signedInAs', { name: account.name });
    ui.signedInText.focus();
  });
  ui.signOutButton.addEventListener('click', async () => {
    ui.signOutButton.disabled = true;
    const done = await signOut();
    ui.signOutButton.disabled = false;
    if (!done.ok) {
      showAlert('signOutFailed');
      return;
    }
    if (done.logout) {
      // The provider ends its session too and sends the browser back here.
      location.assign(done.logout);
      return;
    }
    clearAlert();
    account = null;
    canEnrol = false;
    draw();
    announce('signedOutAnnounce');
    ui.toggle.focus();
  });
  onLocaleChange(draw);

  // One link per OpenID provider: a plain navigation to the server, which sends the browser
  // on to the provider (the label is the operator's, not translated).
  oidcProviders().then((providers) => {
    ui.oidcButtons.replaceChildren(
      ...providers.map((p) => {
        const a = document.createElement('a');
        a.className = 'button';
        a.href = `/api/oidc/${p.name}/start`;
        a.textContent = p.label;
        a.dataset.provider = p.name;
        return a;
      }),
    );
    ui.oidcButtons.hidden = providers.length === 0;
  });

  draw();
  currentSession().then(async (s) => {
    if (s.kind === 'signed-in') {
      account = s.account;
      draw();
      learnFactors();
      return;
    }
    account = null;
    if (s.kind === 'second-factor' || s.kind === 'enrol') {
      pending = { kind: s.kind, account: s.account };
      draw();
      if (s.kind === 'enrol') await startEnrolment();
    } else {
      draw();
    }
  });
}
