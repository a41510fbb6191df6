// The signed-in account's sign-in security on the landing page: with the app's current code,
// get new recovery codes or remove the app; list the passkeys and remove one. The panel is
// shown only when the account has an app or a passkey.

import { accountFactors, changeApp, removePasskey } from './account.js';
import { t } from './i18n.js';
import { byId } from './page.js';

/**
 * @param {{onRecoveryCodes: (codes: string[]) => void, onChange: () => void}} hooks
 *   `onRecoveryCodes`: show new codes once; `onChange`: the factors changed.
 */
export function securityPanel(hooks) {
  const ui = {
    panel: byId('security-panel', HTMLElement),
    app: byId('security-app', HTMLDivElement),
    code: byId('security-code', HTMLInputElement),
    renew: byId('security-new-codes', HTMLButtonElement),
    remove: byId('security-remove-app', HTMLButtonElement),
    list: byId('passkey-list', HTMLUListElement),
    passkeysHeading: byId('passkeys-heading', HTMLHeadingElement),
    error: byId('security-error', HTMLParagraphElement),
  };
  /** @type {Awaited<ReturnType<typeof accountFactors>>} */
  let factors = null;
  /** @type {(() => string) | null} */
  let error = null;
  let busy = false;

  function draw() {
    const show = factors !== null && (factors.totp || factors.passkeys.length > 0);
    ui.panel.hidden = !show;
    if (!factors) return;
    ui.app.hidden = !factors.totp;
    ui.remove.hidden = factors.required;
    ui.renew.disabled = busy;
    ui.remove.disabled = busy;
    ui.passkeysHeading.hidden = factors.passkeys.length === 0;
    ui.list.replaceChildren(
      ...factors.passkeys.map((k) => {
        const li = document.createElement('li');
        const name = document.createElement('span');
        name.textContent = k.name;
        const b = document.createElement('button');
        b.type = 'button';
        b.textContent = t('passkeyRemove');
        b.setAttribute('aria-label', t('passkeyRemoveNamed', { name: k.name }));
        b.disabled = busy;
        b.addEventListener('click', async () => {
          busy = true;
          draw();
          const ok = await removePasskey(k.id);
          busy = false;
          error = ok ? null : () => t('passkeyRemoveFailed');
          await refresh(true);
          hooks.onChange();
        });
        li.append(name, ' ', b);
        return li;
      }),
    );
    ui.error.textContent = error ? error() : '';
  }

  /**
   * Learn the account's factors again (null: nobody is signed in).
   * @param {boolean} signedIn
   */
  async function refresh(signedIn) {
    factors = signedIn ? await accountFactors() : null;
    if (!signedIn) error = null;
    draw();
    return factors;
  }

  /** @param {'remove' | 'renew'} what */
  async function change(what) {
    if (busy) return;
    const code = ui.code.value.trim();
    if (!/^\d{6}$/.test(code)) {
      error = () => t('secondFactorMissing');
      draw();
      ui.code.focus();
      return;
    }
    busy = true;
    error = null;
    draw();
    const r = await changeApp(what, code);
    busy = false;
    ui.code.value = '';
    if (r.kind === 'renewed') hooks.onRecoveryCodes(r.recoveryCodes);
    else if (r.kind === 'invalid') error = () => t('secondFactorInvalid');
    else if (r.kind === 'refused') error = () => t('securityRemoveRefused');
    else if (r.kind !== 'removed') error = () => t('securityFailed');
    await refresh(true);
    hooks.onChange();
    if (error) ui.code.focus();
  }

  ui.renew.addEventListener('click', () => change('renew'));
  ui.remove.addEventListener('click', () => change('remove'));
  return { refresh, redraw: draw };
}
