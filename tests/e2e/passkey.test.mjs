// Passkeys in Chromium with its virtual authenticator (DevTools WebAuthn domain: a CTAP2
// platform authenticator with resident keys and user verification): a local account adds a
// passkey after signing in with its password, then signs in with the passkey alone and opens
// a room as its moderator. Removing the credential from the authenticator leaves nothing to
// sign in with, and a forged assertion sent from the page is refused by the server.
// WebAuthn needs a domain as RP ID (not an IP address), so the page is on localhost.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { TEST_TIMEOUT_MS, launchBrowser, openParticipant, waitFor, withParticipants } from './helpers.mjs';
import { addUser, serverBinary, startServer } from './server.mjs';

const HOST = { user: 'hanna', name: 'Hanna Host', password: 'lantern-orchard-e2e-71' };

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

test('passkeys: add one, sign in with it alone, open a room; a forged assertion is refused', { timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = await startServer({ env: { CONCLAVE_ACCESS__MODE: 'hosts' } });
  const base = srv.url.replace('127.0.0.1', 'localhost');
  try {
    await addUser(srv.dataDir, HOST.user, HOST.name, HOST.password);
    await withParticipants('passkey', srv, async (ps) => {
      const host = await openParticipant(br(), `${base}/`, { label: 'host' });
      ps.push(host);
      const { page } = host;
      const cdp = await host.context.newCDPSession(page);
      await cdp.send('WebAuthn.enable');
      const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
        options: {
          protocol: 'ctap2',
          transport: 'internal',
          hasResidentKey: true,
          hasUserVerification: true,
          isUserVerified: true,
          automaticPresenceSimulation: true,
        },
      });

      // Password first, then "Add a passkey".
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.getByLabel('User name', { exact: true }).fill(HOST.user);
      await page.getByLabel('Password', { exact: true }).fill(HOST.password);
      await page.getByLabel('Password', { exact: true }).press('Enter');
      await expectSignedIn(page, HOST.name);
      await page.getByRole('button', { name: 'Add a passkey', exact: true }).click();
      const status = page.locator('#passkey-status');
      await waitFor('"Passkey added"', async () => ((await status.textContent()) ?? '').startsWith('Passkey added.'));
      const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      assert.equal(credentials.length, 1);
      assert.equal(credentials[0].rpId, 'localhost');
      assert.equal(credentials[0].isResidentCredential, true);
      const factors = await page.evaluate(async () => (await fetch('/api/account/factors')).json());
      assert.equal(factors.passkeys, 1);

      // Signed out, the passkey alone signs in: no user name, no password.
      await page.getByRole('button', { name: 'Sign out', exact: true }).click();
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.getByRole('button', { name: 'Sign in with a passkey', exact: true }).click();
      await expectSignedIn(page, HOST.name);
      const me = await page.evaluate(async () => (await fetch('/api/session')).json());
      assert.deepEqual(me, { username: HOST.user, name: HOST.name, role: 'moderator' });
      const after1 = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      assert.ok(after1.credentials[0].signCount >= 1, 'the authenticator counted the signature');
      const room = await host.context.newPage();
      await room.goto(`${base}/r/passkey-room-0000000001`);
      await room.getByRole('button', { name: 'Join', exact: true }).click();
      await room.getByRole('button', { name: 'Moderation', exact: true }).waitFor({ state: 'visible' });
      await room.close();

      // A forged assertion: a real challenge and the real credential ID, but a signature the
      // key never made. Refused, and no session.
      await page.getByRole('button', { name: 'Sign out', exact: true }).click();
      const forged = await page.evaluate(async (credentialId) => {
        const post = (/** @type {string} */ path, /** @type {unknown} */ body) =>
          fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
        const o = await (await post('/api/session/passkey/options', {})).json();
        const b64 = (/** @type {Uint8Array} */ u) => btoa(String.fromCharCode(...u)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
        const client = new TextEncoder().encode(JSON.stringify({ type: 'webauthn.get', challenge: o.challenge, origin: location.origin }));
        const rpHash = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(location.hostname)));
        const auth = new Uint8Array(37);
        auth.set(rpHash);
        auth[32] = 0x05;
        auth[36] = 99;
        const r = await post('/api/session/passkey', {
          id: credentialId,
          clientDataJson: b64(client),
          authenticatorData: b64(auth),
          signature: b64(new Uint8Array(70).fill(7)),
        });
        return { status: r.status, body: await r.json(), session: (await fetch('/api/session')).status };
      }, credentials[0].credentialId.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''));
      assert.equal(forged.status, 401, JSON.stringify(forged));
      assert.equal(forged.body.error, 'passkey_refused');
      assert.equal(forged.session, 401);

      // Without the credential on the authenticator there is nothing to sign in with.
      await cdp.send('WebAuthn.clearCredentials', { authenticatorId });
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      await page.getByRole('button', { name: 'Sign in with a passkey', exact: true }).click();
      await waitFor('the cancelled message', async () =>
        ((await page.locator('#sign-in-error').textContent()) ?? '') === 'The passkey step was cancelled.',
      );

      // Signed in with the password, the passkey is listed under "Sign-in security" and
      // can be removed there.
      await page.getByLabel('User name', { exact: true }).fill(HOST.user);
      await page.getByLabel('Password', { exact: true }).fill(HOST.password);
      await page.getByLabel('Password', { exact: true }).press('Enter');
      await expectSignedIn(page, HOST.name);
      const list = page.locator('#passkey-list li');
      await waitFor('the passkey listed', async () => (await list.count()) === 1);
      await list.getByRole('button').click();
      await page.getByRole('heading', { name: 'Sign-in security' }).waitFor({ state: 'hidden' });
      const left = await page.evaluate(async () => (await fetch('/api/account/factors')).json());
      assert.equal(left.passkeys, 0);
    });
    const audit = execFileSync(serverBinary(), ['audit-log', 'export', '--data-dir', srv.dataDir], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((r) => r.actor === 'account:hanna')
      .map((r) => `${r.kind} ${r.detail}`);
    assert.ok(audit.includes('signin.success passkey'), audit.join('\n'));
    assert.ok(audit.some((l) => l.startsWith('account.passkey_added')), audit.join('\n'));
    assert.ok(audit.includes('signin.failure passkey: bad signature'), audit.join('\n'));
    assert.ok(audit.some((l) => l.startsWith('account.passkey_removed')), audit.join('\n'));
  } finally {
    await srv.stop();
  }
});
