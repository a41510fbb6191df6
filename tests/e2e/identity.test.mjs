// E2EE identities bound to accounts (docs/security.md, "Identities bound to accounts"), in
// Chromium. Alice and Bob sign in, meet once and compare the code; in a second meeting (a new
// room, a new MLS group) they see each other as verified at once, and Alice's second tab is
// her own key. A page whose server binding was bent on the way (the name in it changed after
// the server signed it) is flagged as a forged identity on every page; Bob from a browser
// that never held his account key is a new key, not verified.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TEST_TIMEOUT_MS, launchBrowser, openParticipant, randomRoomId, waitFor, withParticipants } from './helpers.mjs';
import { addUser, startServer } from './server.mjs';

const ALICE = { user: 'alice', name: 'Alice Adler', password: 'lantern-orchard-e2e-71' };
const BOB = { user: 'bob', name: 'Bob Berg', password: 'meadow-compass-e2e-38' };
const CAROL = { user: 'carol', name: 'Carol Cole', password: 'harbour-violin-e2e-55' };

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
 * Sign in on the landing page of `p`.
 * @param {import('playwright-core').Page} page
 * @param {{user: string, name: string, password: string}} who
 */
async function signIn(page, who) {
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByLabel('User name', { exact: true }).fill(who.user);
  await page.getByLabel('Password', { exact: true }).fill(who.password);
  await page.getByLabel('Password', { exact: true }).press('Enter');
  const text = page.locator('#signed-in-text');
  await waitFor(`"Signed in as ${who.name}"`, async () =>
    (await text.isVisible()) && (await text.textContent()) === `Signed in as ${who.name}`,
  );
}

/**
 * Open `room` in a new page of `p`'s context and join as the signed-in account.
 * @param {import('./helpers.mjs').Participant} p
 * @param {string} url
 * @param {string} label
 * @returns {Promise<import('./helpers.mjs').Participant>}
 */
async function joinAsAccount(p, url, label) {
  const page = await p.context.newPage();
  /** @type {string[]} */
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  await page.goto(url);
  // The page knows the account (the name is read-only) before Join: its leaf carries the binding.
  await page.locator('#account-note').waitFor({ state: 'visible' });
  await page.getByRole('button', { name: 'Join', exact: true }).click();
  await page.getByRole('button', { name: 'Leave', exact: true }).waitFor({ state: 'visible' });
  return { label, context: p.context, page, logs };
}

/** @param {import('./helpers.mjs').Participant} p */
function status(p) {
  return p.page.evaluate(() => /** @type {any} */ (window).conclave?.e2ee?.status() ?? null);
}

/**
 * Wait until `p` has `n` members, each of whose identity is checked, and return them.
 * @param {import('./helpers.mjs').Participant} p
 * @param {number} n
 * @returns {Promise<any[]>}
 */
function membersOf(p, n) {
  return waitFor(`${p.label} to list ${n} checked members`, async () => {
    const s = await status(p);
    const ms = s?.members ?? [];
    return ms.length === n && ms.every((/** @type {any} */ m) => m.identity !== 'checking' && m.match === 'present') ? ms : null;
  });
}

/** @param {any[]} members @param {string} username */
function byAccount(members, username) {
  return members.filter((m) => m.account?.username === username && !m.self);
}

/** @param {import('./helpers.mjs').Participant} p */
async function confirmCode(p) {
  await p.page.locator('#e2ee-button').click();
  await p.page.locator('#e2ee-sas-digits').waitFor({ state: 'visible' });
  await waitFor(`${p.label} to show the code`, () => p.page.locator('#e2ee-sas-digits').textContent());
  await p.page.getByRole('button', { name: 'The codes match' }).click();
}

test('identities bound to accounts: verified carries over to the next meeting; a forged binding and a new key are flagged', { timeout: TEST_TIMEOUT_MS * 2 }, async () => {
  const srv = await startServer();
  try {
    for (const who of [ALICE, BOB, CAROL]) await addUser(srv.dataDir, who.user, who.name, who.password);
    await withParticipants('identity', srv, async (ps) => {
      const alice = await openParticipant(br(), `${srv.url}/`, { label: 'alice' });
      const bob = await openParticipant(br(), `${srv.url}/`, { label: 'bob' });
      ps.push(alice, bob);
      await signIn(alice.page, ALICE);
      await signIn(bob.page, BOB);

      // Meeting 1: each sees the other bound to their account, not yet verified; both compare.
      const first = `${srv.url}/r/${randomRoomId()}`;
      const a1 = await joinAsAccount(alice, first, 'alice@1');
      const b1 = await joinAsAccount(bob, first, 'bob@1');
      ps.push(a1, b1);
      for (const [p, other] of [[a1, 'bob'], [b1, 'alice']]) {
        const [m] = byAccount(await membersOf(/** @type {any} */ (p), 2), /** @type {string} */ (other));
        assert.equal(m?.identity, 'bound', `${p.label} sees ${other} bound: ${JSON.stringify(m)}`);
        assert.equal(m.verified, false);
      }
      await confirmCode(a1);
      await confirmCode(b1);
      for (const p of [a1, b1]) {
        await waitFor(`${p.label} to verify the other`, async () => (await membersOf(p, 2)).every((m) => m.verified));
      }
      await a1.page.close();
      await b1.page.close();
      ps.splice(ps.indexOf(a1), 1);
      ps.splice(ps.indexOf(b1), 1);

      // Meeting 2: a new room and a new group; verified with no code compared, and Alice's
      // second tab is her own key.
      const second = `${srv.url}/r/${randomRoomId()}`;
      const a2 = await joinAsAccount(alice, second, 'alice@2');
      const b2 = await joinAsAccount(bob, second, 'bob@2');
      const a2b = await joinAsAccount(alice, second, 'alice@2, second tab');
      ps.push(a2, b2, a2b);
      for (const p of [a2, b2, a2b]) {
        const ms = await membersOf(p, 3);
        const others = ms.filter((m) => !m.self);
        assert.ok(
          others.every((m) => m.identity === 'verified' && m.verified),
          `${p.label}: ${JSON.stringify(others)}`,
        );
        assert.equal((await status(p)).state, 'encrypted');
      }
      const row = a2.page.locator('#e2ee-members li[data-account="bob"]');
      await a2.page.locator('#e2ee-button').click();
      assert.equal(await row.getAttribute('data-identity'), 'verified');
      assert.match((await row.textContent()) ?? '', /^Bob Berg \(account bob\) — verified: you compared the code with this account key$/);

      // Carol's binding is bent on the way: the name in it says "alice", the server's
      // signature is the one it made for carol. Every page flags her leaf.
      const carol = await openParticipant(br(), `${srv.url}/`, {
        label: 'carol',
        beforeOpen: (context) =>
          context.route('**/api/account/identity', async (route) => {
            const response = await route.fetch();
            const body = await response.json();
            const payload = JSON.parse(Buffer.from(body.payload, 'base64url').toString('utf8'));
            payload.username = 'alice';
            payload.name = ALICE.name;
            body.payload = Buffer.from(JSON.stringify(payload)).toString('base64url');
            await route.fulfill({ response, json: body });
          }),
      });
      ps.push(carol);
      await signIn(carol.page, CAROL);
      const c2 = await joinAsAccount(carol, second, 'carol@2');
      ps.push(c2);
      for (const p of [a2, b2]) {
        const forged = await waitFor(`${p.label} to flag carol's leaf`, async () => {
          const s = await status(p);
          return s?.members.find((/** @type {any} */ m) => m.identity === 'forged') ? s : null;
        });
        assert.equal(forged.state, 'unverified', `${p.label}: a forged leaf makes the room unverified`);
        const m = forged.members.find((/** @type {any} */ x) => x.identity === 'forged');
        assert.equal(m.verified, false);
        assert.equal(m.account, null, 'a forged binding names nobody');
      }
      const flagged = a2.page.locator('#e2ee-members li[data-identity="forged"]');
      await flagged.waitFor({ state: 'visible' });
      assert.match((await flagged.textContent()) ?? '', /FORGED IDENTITY/);
      await c2.page.close();
      ps.splice(ps.indexOf(c2), 1);

      // Bob from a browser that never held his account key: the server binds the new key to
      // bob, but Alice remembered another one for him.
      const bobElsewhere = await openParticipant(br(), `${srv.url}/`, { label: 'bob elsewhere' });
      ps.push(bobElsewhere);
      await signIn(bobElsewhere.page, BOB);
      const b3 = await joinAsAccount(bobElsewhere, second, 'bob@2, new device');
      ps.push(b3);
      const fresh = await waitFor('alice to see the new key', async () => {
        const s = await status(a2);
        const bobs = byAccount(s?.members ?? [], 'bob');
        return bobs.length === 2 && bobs.every((/** @type {any} */ m) => m.identity !== 'checking') ? bobs : null;
      });
      assert.deepEqual(fresh.map((m) => m.identity).sort(), ['new_key', 'verified']);
      assert.equal(fresh.find((m) => m.identity === 'new_key').verified, false);
      const newKey = a2.page.locator('#e2ee-members li[data-identity="new_key"]');
      assert.match((await newKey.textContent()) ?? '', /NEW KEY for this account/);
    });
  } finally {
    await srv.stop();
  }
});
