// Sign-in through a real OpenID Provider (npm `oidc-provider`, certified, started on HTTPS on
// loopback by ./oidc-provider.mjs) on a `hosts` server, with Keycloak-shaped claims
// (`realm_access.roles`): Ada's roles make her a moderator, she opens a room; Eve's make
// her nobody here and she is refused with a sentence that says why; a callback URL used a
// second time finds no sign-in; signing out ends the provider's session too and comes back.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_TIMEOUT_MS, launchBrowser, openParticipant, waitFor, withParticipants } from './helpers.mjs';
import { loginAtProvider, startOidcProvider } from './oidc-provider.mjs';
import { serverBinary, startServer } from './server.mjs';

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

/** @returns {Promise<number>} a port free on 127.0.0.1 a moment ago */
function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = /** @type {import('node:net').AddressInfo} */ (s.address()).port;
      s.close(() => res(port));
    });
  });
}

/**
 * From the landing page: open the sign-in form, take the provider's button, log in there.
 * @param {import('playwright-core').Page} page
 * @param {string} login
 */
async function signInWithProvider(page, login) {
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('link', { name: 'Sign in with Keycloak', exact: true }).click();
  await loginAtProvider(page, login);
}

test('OIDC: a moderator role opens a room, a user in no allowed group is refused, logout ends both sessions', { timeout: TEST_TIMEOUT_MS * 2 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-e2e-oidc-'));
  const port = await freePort();
  const origin = `https://127.0.0.1:${port}`;
  const secret = 'e2e-oidc-client-secret-5f1c';
  const op = await startOidcProvider({
    clientId: 'conclave',
    clientSecret: secret,
    redirectUri: `${origin}/api/oidc/kc/callback`,
    accounts: {
      ada: { name: 'Ada Lovelace', preferred_username: 'ada', realm_access: { roles: ['staff', 'conclave-moderators'] } },
      eve: { name: 'Eve Example', preferred_username: 'eve', realm_access: { roles: ['guests'] } },
    },
  });
  try {
    const secretFile = join(dir, 'oidc-secret');
    await writeFile(secretFile, `${secret}\n`, { mode: 0o600 });
    const config = join(dir, 'conclave.toml');
    await writeFile(
      config,
      `[access]
mode = "hosts"

[[oidc]]
name = "kc"
label = "Sign in with Keycloak"
issuer = "${op.issuer}"
client_id = "conclave"
client_secret_file = "${secretFile}"
ca_file = "${op.caFile}"
groups_claim = "realm_access.roles"
allowed_groups = ["staff"]
moderator_groups = ["conclave-moderators"]
`,
    );
    const srv = await startServer({ listen: `127.0.0.1:${port}`, extraArgs: ['--config', config] });
    try {
      await withParticipants('oidc', srv, async (ps) => {
        const ada = await openParticipant(br(), `${srv.url}/`, { label: 'ada' });
        ps.push(ada);
        const { page } = ada;
        /** @type {string[]} */
        const callbacks = [];
        page.on('request', (r) => {
          if (r.url().startsWith(`${origin}/api/oidc/kc/callback?`)) callbacks.push(r.url());
        });

        // Ada: the provider's roles make her a moderator; the name is the provider's.
        await signInWithProvider(page, 'ada');
        const text = page.locator('#signed-in-text');
        await waitFor('"Signed in as Ada Lovelace"', async () =>
          (await text.isVisible()) && (await text.textContent()) === 'Signed in as Ada Lovelace',
        );
        assert.equal(new URL(page.url()).origin, origin, 'back on Conclave after the callback');
        const me = await page.evaluate(async () => (await fetch('/api/session')).json());
        assert.deepEqual(me, { username: 'ada', name: 'Ada Lovelace', role: 'moderator' });
        const room = await ada.context.newPage();
        await room.goto(`${srv.url}/r/oidc-room-00000000001`);
        await room.getByRole('button', { name: 'Join', exact: true }).click();
        await room.getByRole('button', { name: 'Moderation', exact: true }).waitFor({ state: 'visible' });
        await room.close();

        // The callback URL again (a leaked code, or a replay): its flow was used once.
        assert.equal(callbacks.length, 1, callbacks.join('\n'));
        const replay = await ada.context.newPage();
        const again = await replay.goto(callbacks[0]);
        assert.equal(again?.status(), 400);
        assert.match((await replay.locator('#oidc-message').textContent()) ?? '', /expired or was started in another browser/);
        await replay.close();

        // Sign out: Conclave's session ends, the provider asks to end its own, and the
        // browser comes back to Conclave's start page, signed out.
        await page.getByRole('button', { name: 'Sign out', exact: true }).click();
        await page.waitForURL((u) => u.origin === op.issuer);
        await page.getByRole('button', { name: 'Yes, sign me out' }).click();
        await page.waitForURL(`${origin}/`);
        await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor({ state: 'visible' });
        assert.equal(await page.evaluate(async () => (await fetch('/api/session')).status), 401);
        // The provider forgot her too: signing in again asks for the login.
        await signInWithProvider(page, 'ada');
        await waitFor('signed in again', async () => (await text.textContent()) === 'Signed in as Ada Lovelace');

        // Eve signs in at the provider, but her roles allow nothing here.
        const eve = await openParticipant(br(), `${srv.url}/`, { label: 'eve' });
        ps.push(eve);
        await signInWithProvider(eve.page, 'eve');
        const message = eve.page.locator('#oidc-message');
        await message.waitFor({ state: 'visible' });
        assert.equal(
          await message.textContent(),
          'Your account may not use this server: it is in none of the groups allowed to sign in.',
        );
        assert.equal(await eve.page.evaluate(async () => (await fetch('/api/session')).status), 401);
      });
      // The audit log says who came through the provider and who was refused.
      const audit = execFileSync(serverBinary(), ['audit-log', 'export', '--data-dir', srv.dataDir], { encoding: 'utf8' })
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
        .map((r) => `${r.kind} ${r.actor} ${r.detail}`);
      assert.ok(audit.includes('signin.success account:ada oidc:kc'), audit.join('\n'));
      assert.ok(audit.includes('signin.failure account:eve oidc:kc: in none of the allowed groups'), audit.join('\n'));
      const users = JSON.parse(execFileSync(serverBinary(), ['user', 'list', '--json', '--data-dir', srv.dataDir], { encoding: 'utf8' }));
      const adas = users.filter((/** @type {{username: string}} */ u) => u.username === 'ada');
      assert.equal(adas[0]?.source, 'oidc:kc');
      assert.equal(users.filter((/** @type {{username: string}} */ u) => u.username === 'eve').length, 0, 'no account for eve');
    } finally {
      await srv.stop();
    }
  } finally {
    await op.stop();
  }
});
