// Sign-in through a real OpenLDAP directory (Debian's slapd, started on loopback by
// tests/fixtures/slapd/start.sh) on a `hosts` server: a member of the moderator group signs
// in with the directory's password and opens a room as its moderator; a user in no allowed
// group has the right password and is refused with a sentence that says why; a wrong
// password gets the same answer as for local accounts.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEST_TIMEOUT_MS, launchBrowser, openParticipant, waitFor, withParticipants } from './helpers.mjs';
import { serverBinary, startServer } from './server.mjs';

const START = resolve(fileURLToPath(new URL('.', import.meta.url)), '../fixtures/slapd/start.sh');

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

/** A free TCP port on loopback whose successor is free too (slapd takes PORT and PORT+1). */
async function freePortPair() {
  for (;;) {
    /** @param {number} port */
    const probe = (port) =>
      new Promise((res) => {
        const s = createServer();
        s.once('error', () => res(0));
        s.listen(port, '127.0.0.1', () => {
          const got = /** @type {import('node:net').AddressInfo} */ (s.address()).port;
          s.close(() => res(got));
        });
      });
    const port = /** @type {number} */ (await probe(0));
    if (port < 65535 && (await probe(port + 1))) return port;
  }
}

/**
 * Open the sign-in form and send a name and password.
 * @param {import('playwright-core').Page} page
 * @param {string} user
 * @param {string} password
 */
async function signIn(page, user, password) {
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByLabel('User name', { exact: true }).fill(user);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByLabel('Password', { exact: true }).press('Enter');
}

test('LDAP: the moderator group opens a room, a user in no allowed group is refused', { timeout: TEST_TIMEOUT_MS }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'conclave-e2e-ldap-'));
  const port = await freePortPair();
  const ready = execFileSync('bash', [START, join(dir, 'slapd'), String(port)], { encoding: 'utf8' }).trim();
  const pid = /^ready pid=(\d+)$/.exec(ready)?.[1];
  assert.ok(pid, `slapd started: ${ready}`);
  const config = join(dir, 'conclave.toml');
  await writeFile(
    config,
    `[access]
mode = "hosts"

[[ldap]]
name = "example"
url = "ldap://127.0.0.1:${port}"
starttls = true
ca_file = "${join(dir, 'slapd', 'ca.pem')}"
bind_dn = "uid={username},ou=people,dc=example,dc=org"
user_base = "ou=people,dc=example,dc=org"
group_base = "ou=groups,dc=example,dc=org"
allowed_groups = ["conclave-users"]
moderator_groups = ["conclave-moderators"]
`,
  );
  const srv = await startServer({ extraArgs: ['--config', config] });
  try {
    await withParticipants('ldap', srv, async (ps) => {
      const alice = await openParticipant(br(), `${srv.url}/`, { label: 'alice' });
      ps.push(alice);
      const { page } = alice;

      // A wrong directory password: the same sentence as a wrong local password.
      await signIn(page, 'alice', 'not-her-password');
      const error = page.locator('#sign-in-error');
      await waitFor('the invalid-credentials error', async () =>
        ((await error.textContent()) ?? '').startsWith('Wrong user name or password'),
      );

      // The right one: signed in with the directory's display name, as a moderator.
      await page.getByLabel('Password', { exact: true }).fill('alice-secret-pw');
      await page.getByLabel('Password', { exact: true }).press('Enter');
      const text = page.locator('#signed-in-text');
      await waitFor('"Signed in as Alice Adler"', async () =>
        (await text.isVisible()) && (await text.textContent()) === 'Signed in as Alice Adler',
      );
      const me = await page.evaluate(async () => (await fetch('/api/session')).json());
      assert.deepEqual(me, { username: 'alice', name: 'Alice Adler', role: 'moderator' });
      const room = await alice.context.newPage();
      await room.goto(`${srv.url}/r/ldap-room-00000000001`);
      await room.getByRole('button', { name: 'Join', exact: true }).click();
      await room.getByRole('button', { name: 'Moderation', exact: true }).waitFor({ state: 'visible' });
      await room.close();

      // Carol's password is right, but she is in none of the allowed groups.
      const carol = await openParticipant(br(), `${srv.url}/`, { label: 'carol' });
      ps.push(carol);
      await signIn(carol.page, 'carol', 'carol-secret-pw');
      const refused = carol.page.locator('#sign-in-error');
      await waitFor('the not-allowed error', async () =>
        ((await refused.textContent()) ?? '') ===
        'Your directory account may not use this server. Ask your administrator to add you to an allowed group.',
      );
      const status = await carol.page.evaluate(async () => (await fetch('/api/session')).status);
      assert.equal(status, 401, 'carol has no session');
    });
    // The audit log says who came through the directory and who was refused.
    const audit = execFileSync(serverBinary(), ['audit-log', 'export', '--data-dir', srv.dataDir], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .map((r) => `${r.kind} ${r.actor} ${r.detail}`);
    assert.ok(audit.includes('signin.success account:alice ldap:example'), audit.join('\n'));
    assert.ok(audit.includes('signin.failure account:carol ldap:example: in none of the allowed groups'), audit.join('\n'));
    const users = execFileSync(serverBinary(), ['user', 'list', '--json', '--data-dir', srv.dataDir], { encoding: 'utf8' });
    const alices = JSON.parse(users).filter((/** @type {{username: string}} */ u) => u.username === 'alice');
    assert.equal(alices[0]?.source, 'ldap:example');
  } finally {
    await srv.stop();
    try {
      process.kill(Number(pid));
    } catch {
      // already gone
    }
    await rm(dir, { recursive: true, force: true });
  }
});
