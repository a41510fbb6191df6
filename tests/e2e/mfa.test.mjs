// Second factors in the browser, on a `hosts` server with `[accounts] mfa = "moderators"`:
// a moderator account must set up an authenticator app at its first sign-in before it can
// open a room (until then it is a guest who waits in the lobby); it scans nothing but reads
// the key off the page, and the codes come from Debian's oathtool, an independent TOTP
// implementation. Then it signs in with a code, a reused code is refused, a recovery code
// works once, and a member account signs in with its password alone.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { TEST_TIMEOUT_MS, launchBrowser, openParticipant, waitFor, withParticipants } from './helpers.mjs';
import { addUser, serverBinary, startServer } from './server.mjs';
import { textContrastFailures } from './contrast.mjs';

const HOST = { user: 'hanna', name: 'Hanna Host', password: 'lantern-orchard-e2e-71' };
const PUPIL = { user: 'pia', name: 'Pia Pupil', password: 'meadow-compass-e2e-38' };

/** @type {import('playwright-core').Browser | undefined} */
let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

function br() {
  if (!browser) throw new Error('the browser did not start');
  return browser;
}

/**
 * The TOTP code of `secret` (base32) at `offsetSeconds` from now, from oathtool.
 * @param {string} secret
 * @param {number} [offsetSeconds]
 */
function oathtool(secret, offsetSeconds = 0) {
  const at = Math.floor(Date.now() / 1000) + offsetSeconds;
  return execFileSync('oathtool', ['--totp', '-b', secret, '-N', `@${at}`], { encoding: 'utf8' }).trim();
}

/**
 * What GET /api/session answers in `page`'s browser.
 * @param {import('playwright-core').Page} page
 */
function sessionStatus(page) {
  return page.evaluate(async () => {
    const r = await fetch('/api/session', { cache: 'no-store' });
    return { status: r.status, body: await r.json().catch(() => null) };
  });
}

/**
 * POST JSON from `page` (same origin, with its cookies).
 * @param {import('playwright-core').Page} page
 * @param {string} path
 * @param {unknown} body
 */
function post(page, path, body) {
  return page.evaluate(
    async ([p, b]) => {
      const r = await fetch(/** @type {string} */ (p), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(b),
      });
      return { status: r.status, body: await r.json().catch(() => null) };
    },
    [path, body],
  );
}

/**
 * Open the sign-in form and send the password.
 * @param {import('playwright-core').Page} page
 * @param {{user: string, password: string}} who
 */
async function signInWithPassword(page, who) {
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByLabel('User name', { exact: true }).fill(who.user);
  await page.getByLabel('Password', { exact: true }).fill(who.password);
  await page.getByLabel('Password', { exact: true }).press('Enter');
}

/** @param {import('playwright-core').Page} page */
async function signOut(page) {
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor({ state: 'visible' });
}

/**
 * Wait for "Signed in as …".
 * @param {import('playwright-core').Page} page
 * @param {string} name
 */
function expectSignedIn(page, name) {
  const text = page.locator('#signed-in-text');
  return waitFor(`"Signed in as ${name}"`, async () =>
    (await text.isVisible()) && (await text.textContent()) === `Signed in as ${name}`,
  );
}

test('mfa = "moderators": enrol before opening a room, sign in with a code, a reused code and a spent recovery code are refused', { timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = await startServer({
    env: { CONCLAVE_ACCESS__MODE: 'hosts', CONCLAVE_ACCOUNTS__MFA: 'moderators', CONCLAVE_ACCOUNTS__TOTP_ISSUER: 'Conclave E2E' },
  });
  /** The app's key, read off the page. */
  let secret = '';
  try {
    await addUser(srv.dataDir, HOST.user, HOST.name, HOST.password);
    assert.match(await addUser(srv.dataDir, PUPIL.user, PUPIL.name, PUPIL.password, ['--role', 'member']), /member/);
    await withParticipants('mfa-moderators', srv, async (ps) => {
      const host = await openParticipant(br(), `${srv.url}/`, { label: 'host' });
      ps.push(host);
      const { page } = host;

      // The password alone: the page asks for an app and the session is only half.
      await signInWithPassword(page, HOST);
      await page.getByRole('heading', { name: 'Set up an authenticator app' }).waitFor({ state: 'visible' });
      assert.equal(
        await page.locator('#enrol-why').textContent(),
        'This server asks for a second step at sign-in: set up an authenticator app to finish signing in.',
      );
      secret = ((await page.locator('#enrol-secret').textContent()) ?? '').replace(/\s/g, '');
      assert.match(secret, /^[A-Z2-7]{32}$/, 'a 160-bit key in base32');
      const darkModules = await page.locator('#enrol-qr').evaluate((el) => {
        const c = /** @type {HTMLCanvasElement} */ (el);
        const data = c.getContext('2d')?.getImageData(0, 0, c.width, c.height).data ?? [];
        let dark = 0;
        for (let i = 0; i < data.length; i += 4) if (data[i] < 128) dark++;
        return dark;
      });
      assert.ok(darkModules > 1000, `the QR code is drawn (${darkModules} dark pixels)`);
      assert.deepEqual(await textContrastFailures(page), [], 'the enrolment panel meets WCAG AA contrast');
      const half = await sessionStatus(page);
      assert.equal(half.status, 401);
      assert.equal(half.body.next, 'enrol');

      // Meanwhile the half session cannot open a room: in another tab of the same browser
      // (same cookie) it is a guest who waits in the lobby.
      const tab = await host.context.newPage();
      await tab.goto(`${srv.url}/r/mfa-room-0000000001`);
      await tab.getByLabel('Name', { exact: true }).fill('Not yet a host');
      await tab.getByRole('button', { name: 'Join', exact: true }).click();
      await tab.getByRole('heading', { name: 'Waiting to be let in' }).waitFor({ state: 'visible' });
      await tab.close();
      // Nor can it skip the app with the code endpoint, which is for accounts that have one.
      assert.equal((await post(page, '/api/session/second-factor', { code: '123456' })).status, 409);

      // A wrong code first, then the app's current code: recovery codes, shown once.
      const code = page.getByLabel('Code the app shows now', { exact: true });
      await code.fill('000000' === oathtool(secret) ? '111111' : '000000');
      await code.press('Enter');
      await waitFor('the wrong-code error', async () =>
        ((await page.locator('#enrol-error').textContent()) ?? '').includes('Wrong code'),
      );
      await code.fill(oathtool(secret));
      await code.press('Enter');
      await page.getByRole('heading', { name: 'Your recovery codes' }).waitFor({ state: 'visible' });
      const recovery = await page.locator('#recovery-list li').allTextContents();
      assert.equal(recovery.length, 10);
      for (const c of recovery) assert.match(c, /^[0-9a-z]{5}-[0-9a-z]{5}$/);
      await page.getByRole('button', { name: 'I have stored them', exact: true }).click();
      await expectSignedIn(page, HOST.name);
      assert.deepEqual(await sessionStatus(page), { status: 200, body: { username: HOST.user, name: HOST.name, role: 'moderator' } });
      assert.equal(await page.getByRole('button', { name: 'Set up authenticator app' }).isVisible(), false);
      // "Sign-in security" offers new recovery codes; the app itself is required for a
      // moderator here, so there is no button to remove it.
      await page.getByRole('heading', { name: 'Sign-in security' }).waitFor({ state: 'visible' });
      assert.equal(await page.getByRole('button', { name: 'New recovery codes', exact: true }).isVisible(), true);
      assert.equal(await page.getByRole('button', { name: 'Remove authenticator app', exact: true }).isVisible(), false);

      // Now she opens a room as its moderator.
      const tab2 = await host.context.newPage();
      await tab2.goto(`${srv.url}/r/mfa-room-0000000002`);
      await tab2.getByRole('button', { name: 'Join', exact: true }).click();
      await tab2.getByRole('button', { name: 'Moderation', exact: true }).waitFor({ state: 'visible' });
      await tab2.close();

      // Next sign-in: password, then the code form. The next step's code (30 s ahead, inside
      // the ±1 step window) is newer than the one that set the app up, so it is accepted.
      await signOut(page);
      await signInWithPassword(page, HOST);
      const codeField = page.getByLabel('Code from your authenticator app', { exact: true });
      await codeField.waitFor({ state: 'visible' });
      assert.equal(await codeField.getAttribute('autocomplete'), 'one-time-code');
      const next = oathtool(secret, 30);
      await codeField.fill(next);
      await codeField.press('Enter');
      await expectSignedIn(page, HOST.name);

      // The same code again, after another password: refused (RFC 6238 §5.2).
      await signOut(page);
      await signInWithPassword(page, HOST);
      await codeField.waitFor({ state: 'visible' });
      await codeField.fill(next);
      await codeField.press('Enter');
      await waitFor('the reused-code error', async () =>
        ((await page.locator('#second-factor-error').textContent()) ?? '').includes('already used'),
      );
      assert.equal((await sessionStatus(page)).body.next, 'second_factor', 'still a half session');

      // A recovery code instead: it works once.
      await page.getByRole('button', { name: 'Use a recovery code', exact: true }).click();
      const recoveryField = page.getByLabel('Recovery code', { exact: true });
      await recoveryField.fill(recovery[0].toUpperCase());
      await recoveryField.press('Enter');
      await expectSignedIn(page, HOST.name);
      await signOut(page);
      const again = await page.evaluate(async (pw) => {
        const r = await fetch('/api/session', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ username: 'hanna', password: pw }),
        });
        return r.json();
      }, HOST.password);
      assert.equal(again.next, 'second_factor');
      assert.equal((await post(page, '/api/session/second-factor', { recovery_code: recovery[0] })).status, 401);
      assert.equal((await post(page, '/api/session/second-factor', { recovery_code: recovery[1] })).status, 200);
      await signOut(page).catch(() => {});

      // A member account is not a moderator: under "moderators" its password is enough.
      const pupil = await openParticipant(br(), `${srv.url}/`, { label: 'pupil' });
      ps.push(pupil);
      await signInWithPassword(pupil.page, PUPIL);
      await expectSignedIn(pupil.page, PUPIL.name);
      assert.deepEqual(await sessionStatus(pupil.page), { status: 200, body: { username: PUPIL.user, name: PUPIL.name, role: 'member' } });
      // It may still set up an app of its own, and manage it in "Sign-in security": new
      // recovery codes with one code, then remove the app with a later one.
      const pp = pupil.page;
      await pp.getByRole('button', { name: 'Set up authenticator app', exact: true }).click();
      await pp.getByRole('heading', { name: 'Set up an authenticator app' }).waitFor({ state: 'visible' });
      const pupilSecret = ((await pp.locator('#enrol-secret').textContent()) ?? '').replace(/\s/g, '');
      const enrolStep = Math.floor(Date.now() / 30_000);
      await pp.getByLabel('Code the app shows now', { exact: true }).fill(oathtool(pupilSecret));
      await pp.getByLabel('Code the app shows now', { exact: true }).press('Enter');
      await pp.getByRole('button', { name: 'I have stored them', exact: true }).click();
      const security = pp.getByRole('heading', { name: 'Sign-in security' });
      await security.waitFor({ state: 'visible' });
      const codeBox = pp.getByLabel('Current code from the app', { exact: true });
      await codeBox.fill(oathtool(pupilSecret, 30));
      await pp.getByRole('button', { name: 'New recovery codes', exact: true }).click();
      await pp.getByRole('heading', { name: 'Your recovery codes' }).waitFor({ state: 'visible' });
      assert.equal((await pp.locator('#recovery-list li').allTextContents()).length, 10);
      await pp.getByRole('button', { name: 'I have stored them', exact: true }).click();
      // The next step's code was spent; wait for the clock to pass the enrolment step so a
      // newer one is inside the window.
      await waitFor('the next TOTP step', async () => Math.floor(Date.now() / 30_000) > enrolStep, { timeout: 40_000 });
      await codeBox.fill(oathtool(pupilSecret, 30));
      await pp.getByRole('button', { name: 'Remove authenticator app', exact: true }).click();
      await security.waitFor({ state: 'hidden' });
      await pp.getByRole('button', { name: 'Set up authenticator app', exact: true }).waitFor({ state: 'visible' });
      assert.equal((await sessionStatus(pp)).status, 200, 'still signed in');
    });

    // Every step is in the audit log, verified by the real binary.
    const audit = execFileSync(serverBinary(), ['audit-log', 'export', '--data-dir', srv.dataDir], {
      encoding: 'utf8',
    });
    const kinds = audit.trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.actor === 'account:hanna').map((r) => `${r.kind} ${r.detail}`);
    for (const want of [
      'signin.password password; second factor due: enrol',
      'account.totp_enrolled 10 recovery codes issued',
      'signin.success password and totp',
      'signin.failure code already used',
      'signin.success password and recovery code (9 left)',
      'signin.failure wrong or used recovery code',
    ]) {
      assert.ok(kinds.includes(want), `audit log has "${want}": ${kinds.join(' | ')}`);
    }
    const pupilKinds = audit.trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.actor === 'account:pia').map((r) => r.kind);
    for (const want of ['account.totp_enrolled', 'account.recovery_codes_renewed', 'account.totp_removed']) {
      assert.ok(pupilKinds.includes(want), `audit log has ${want} for pia: ${pupilKinds.join(' | ')}`);
    }
    assert.ok(secret.length === 32 && !audit.includes(secret), 'the audit log never holds the key');
  } finally {
    await srv.stop();
  }
});
