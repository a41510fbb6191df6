// A server in `hosts` mode, in the browser: a host with a real account (made with the real
// `conclave user add` on the server's data directory) signs in on the landing page and opens
// a room; guests knock and wait in the lobby; the host admits, hard-mutes, removes and bans
// a guest; and signs out again.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS,
  inboundStreams,
  launchBrowser,
  openParticipant,
  participantId,
  setToggle,
  sleep,
  waitFor,
  withParticipants,
} from './helpers.mjs';
import { addUser, startServer } from './server.mjs';
import { textContrastFailures } from './contrast.mjs';

const HOST_USER = 'host';
const HOST_NAME = 'Hanna Host';
const HOST_PASSWORD = 'lantern-orchard-e2e-71';

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
 * The alert text of `p`'s page, once it contains `needle`.
 * @param {import('./helpers.mjs').Participant} p
 * @param {string} needle
 */
function expectAlert(p, needle) {
  return waitFor(`${p.label} to show an alert with "${needle}"`, async () => {
    const alert = p.page.locator('#alert');
    if (!(await alert.isVisible())) return null;
    const text = (await alert.textContent()) ?? '';
    return text.includes(needle) ? text : null;
  });
}

/**
 * The audio packets `p` has received from participant `from`.
 * @param {import('./helpers.mjs').Participant} p
 * @param {string} from
 */
async function audioPacketsFrom(p, from) {
  const streams = await inboundStreams(p);
  return streams
    .filter((s) => s.kind === 'audio' && s.participant === from)
    .reduce((sum, s) => sum + s.packetsReceived, 0);
}

/**
 * Wait until the audio `p` receives from `from` stops growing.
 * @param {import('./helpers.mjs').Participant} p
 * @param {string} from
 * @param {string} fromLabel
 */
function expectAudioStopped(p, from, fromLabel) {
  return waitFor(`${p.label}: no more audio from ${fromLabel}`, async () => {
    const a = await audioPacketsFrom(p, from);
    await sleep(1500);
    return a === (await audioPacketsFrom(p, from));
  });
}

/**
 * Wait until the audio `p` receives from `from` grows.
 * @param {import('./helpers.mjs').Participant} p
 * @param {string} from
 * @param {string} fromLabel
 */
function expectAudioGrowing(p, from, fromLabel) {
  return waitFor(`${p.label}: audio from ${fromLabel} growing`, async () => {
    const a = await audioPacketsFrom(p, from);
    await sleep(1000);
    return a > 0 && (await audioPacketsFrom(p, from)) > a;
  });
}

/**
 * What GET /api/session answers in `p`'s browser (with its cookies).
 * @param {import('./helpers.mjs').Participant} p
 */
function sessionStatus(p) {
  return p.page.evaluate(async () => {
    const r = await fetch('/api/session', { cache: 'no-store' });
    return { status: r.status, body: r.ok ? await r.json() : null };
  });
}

/**
 * A guest types `p.label` as their name, asks to join, and waits in the lobby.
 * @param {import('./helpers.mjs').Participant} p
 */
async function knock(p) {
  await p.page.getByLabel('Name', { exact: true }).fill(p.label);
  await p.page.getByRole('button', { name: 'Join', exact: true }).click();
  await p.page.getByRole('heading', { name: 'Waiting to be let in' }).waitFor({ state: 'visible' });
}

/**
 * The host admits `guest` from the lobby queue; returns the guest's participant ID.
 * @param {import('./helpers.mjs').Participant} host
 * @param {import('./helpers.mjs').Participant} guest
 */
async function admit(host, guest) {
  const button = host.page.getByRole('button', { name: `Admit: ${guest.label}`, exact: true });
  if (!(await button.isVisible())) {
    await host.page.getByRole('button', { name: /^Lobby/ }).click();
  }
  await button.click();
  await guest.page.getByRole('button', { name: 'Leave', exact: true }).waitFor({ state: 'visible' });
  return participantId(guest);
}

/**
 * Click a moderator action in `mod`'s participant list and, if asked, confirm it.
 * @param {import('./helpers.mjs').Participant} mod
 * @param {string} action e.g. "Mute microphone"
 * @param {string} name whose entry
 * @param {boolean} [confirm]
 */
async function moderate(mod, action, name, confirm = false) {
  await mod.page.getByRole('button', { name: `${action}: ${name}`, exact: true }).click();
  if (confirm) await mod.page.getByRole('button', { name: 'Confirm', exact: true }).click();
}

test('hosts mode: sign in, open a room, admit, mute, remove, ban; sign out', { timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = await startServer({ env: { CONCLAVE_ACCESS__MODE: 'hosts' } });
  try {
    await addUser(srv.dataDir, HOST_USER, HOST_NAME, HOST_PASSWORD);
    await withParticipants('hosts-sign-in-moderation', srv, async (ps) => {
      const host = await openParticipant(br(), `${srv.url}/`, { label: 'host' });
      ps.push(host);
      const { page } = host;
      assert.equal((await sessionStatus(host)).status, 401, 'nobody is signed in at first');

      // The form opens from "Sign in" with the focus in it; Escape closes it.
      const toggle = page.getByRole('button', { name: 'Sign in', exact: true });
      await toggle.click();
      const username = page.getByLabel('User name', { exact: true });
      const password = page.getByLabel('Password', { exact: true });
      assert.equal(await username.evaluate((el) => el === document.activeElement), true);
      await page.keyboard.press('Escape');
      assert.equal(await page.locator('#sign-in-form').isVisible(), false);
      assert.equal(await toggle.evaluate((el) => el === document.activeElement), true, 'focus back on "Sign in"');
      assert.equal(await toggle.getAttribute('aria-expanded'), 'false');
      await page.keyboard.press('Enter');
      assert.equal(await username.evaluate((el) => el === document.activeElement), true);

      // A wrong password: a clear error in the live region, in either language.
      await username.fill(HOST_USER);
      await password.fill('not-the-password-at-all');
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
      const error = page.locator('#sign-in-error');
      await waitFor('the sign-in error', async () =>
        ((await error.textContent()) ?? '').includes('Wrong user name or password'),
      );
      assert.equal(await error.getAttribute('role'), 'alert');
      assert.equal(await password.getAttribute('aria-invalid'), 'true');
      assert.equal(await password.evaluate((el) => el === document.activeElement), true, 'focus back on the password');
      assert.equal(await password.inputValue(), '');
      assert.deepEqual(await textContrastFailures(page), [], 'the sign-in form meets WCAG AA contrast');
      await page.getByLabel('Language / Sprache').selectOption('de');
      await waitFor('the error in German', async () =>
        ((await error.textContent()) ?? '').includes('Benutzername oder Passwort ist falsch'),
      );
      await page.getByLabel('Sprache / Language').selectOption('en');
      assert.equal((await sessionStatus(host)).status, 401);

      // The right one: signed in, the form is gone.
      await password.fill(HOST_PASSWORD);
      await password.press('Enter');
      const signedIn = page.locator('#signed-in-text');
      await waitFor('"Signed in as …"', async () =>
        (await signedIn.isVisible()) && (await signedIn.textContent()) === `Signed in as ${HOST_NAME}`,
      );
      assert.equal(await signedIn.evaluate((el) => el === document.activeElement), true, 'focus on the new state');
      assert.equal(await page.locator('#sign-in-form').isVisible(), false);
      assert.equal(await page.getByRole('button', { name: 'Sign out', exact: true }).isVisible(), true);
      assert.deepEqual(await sessionStatus(host), { status: 200, body: { username: HOST_USER, name: HOST_NAME, role: 'moderator' } });

      // She opens a room; her name is the account's, read-only.
      await page.getByRole('button', { name: 'New meeting', exact: true }).click();
      await page.getByRole('link', { name: 'Go to the meeting', exact: true }).click();
      await page.waitForURL(/\/r\/[A-Za-z0-9_-]+$/);
      const roomUrl = page.url();
      const nameField = page.getByLabel('Name', { exact: true });
      await waitFor('the name field to show the account name, read-only', async () =>
        (await nameField.inputValue()) === HOST_NAME && (await nameField.evaluate((el) => /** @type {HTMLInputElement} */ (el).readOnly)),
      );
      assert.equal(
        await page.locator('#account-note').textContent(),
        `Signed in as ${HOST_NAME}: you join with the name of your account.`,
      );
      await page.getByRole('button', { name: 'Join', exact: true }).click();
      await page.getByRole('button', { name: 'Leave', exact: true }).waitFor({ state: 'visible' });
      await participantId(host);
      await page.locator('.tile.self .tile-name', { hasText: `${HOST_NAME} (you)` }).waitFor();
      await page.getByRole('button', { name: 'Moderation', exact: true }).waitFor({ state: 'visible' });

      // A guest opens the link, types a name, and waits in the lobby with the microphone on.
      const gus = await openParticipant(br(), roomUrl, { label: 'gus' });
      ps.push(gus);
      await setToggle(gus, 'Microphone', true);
      await knock(gus);
      await waitFor('the host to hear of the knock', async () =>
        ((await page.locator('#announcer').textContent()) ?? '').includes('gus is waiting'),
      );
      const gusId = await admit(host, gus);
      const entry = host.page.locator('#people-list li', { hasText: 'gus' });
      await entry.waitFor();
      assert.equal(await entry.locator('.badge.identity').textContent(), 'Guest');

      // A second guest, to show that the mute holds for everyone.
      const carol = await openParticipant(br(), roomUrl, { label: 'carol' });
      ps.push(carol);
      await knock(carol);
      await admit(host, carol);

      await expectAudioGrowing(host, gusId, 'gus');
      await expectAudioGrowing(carol, gusId, 'gus');

      // Hard mute: the guest's control is disabled and nobody receives their audio any more.
      await moderate(host, 'Mute microphone', 'gus');
      const mic = gus.page.getByRole('button', { name: 'Microphone', exact: true });
      await waitFor('gus: microphone disabled and off', async () =>
        (await mic.isDisabled()) && (await mic.getAttribute('aria-pressed')) === 'false',
      );
      assert.match((await gus.page.locator('#permission-note').textContent()) ?? '', /A moderator muted you/);
      await expectAudioStopped(host, gusId, 'gus');
      await expectAudioStopped(carol, gusId, 'gus');

      // Removed: a clear message; joining again means knocking again.
      await moderate(host, 'Remove', 'gus', true);
      await expectAlert(gus, 'removed you');
      await gus.page.getByRole('button', { name: 'Join', exact: true }).click();
      await gus.page.getByRole('heading', { name: 'Waiting to be let in' }).waitFor({ state: 'visible' });
      await admit(host, gus);

      // Banned: the rejoin is refused with a clear message.
      await moderate(host, 'Ban', 'gus', true);
      await expectAlert(gus, 'banned you');
      await gus.page.getByRole('button', { name: 'Join', exact: true }).click();
      await expectAlert(gus, 'You cannot join it again');
      assert.equal(await gus.page.getByRole('button', { name: 'Leave', exact: true }).isVisible(), false);
      assert.equal(await gus.page.getByRole('heading', { name: 'Waiting to be let in' }).isVisible(), false);

      // Sign out on the landing page: the session is gone and "Sign in" is back.
      await page.getByRole('button', { name: 'Leave', exact: true }).click();
      await page.goto(`${srv.url}/`);
      await waitFor('"Signed in as …" after a reload', async () =>
        (await signedIn.isVisible()) && (await signedIn.textContent()) === `Signed in as ${HOST_NAME}`,
      );
      await page.getByRole('button', { name: 'Sign out', exact: true }).click();
      await toggle.waitFor({ state: 'visible' });
      assert.equal(await toggle.evaluate((el) => el === document.activeElement), true, 'focus on "Sign in"');
      assert.equal(await signedIn.isVisible(), false);
      assert.equal((await sessionStatus(host)).status, 401);
      await page.reload();
      await toggle.waitFor({ state: 'visible' });
    });
  } finally {
    await srv.stop();
  }
});
