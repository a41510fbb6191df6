// The page itself: language, safe defaults before joining, and the home page.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './server.mjs';
import {
  TEST_TIMEOUT_MS,
  WAIT_MS,
  joinMeeting,
  launchBrowser,
  openParticipant,
  randomRoomId,
  waitFor,
  withParticipants,
} from './helpers.mjs';

/** @type {import('./server.mjs').RunningServer | undefined} */
let server;
/** @type {import('playwright-core').Browser | undefined} */
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('a German browser gets German labels before and after joining', { timeout: TEST_TIMEOUT_MS }, async () => {
  assert.ok(server && browser);
  const srv = server;
  const br = browser;
  await withParticipants('german', srv, async (ps) => {
    const p = await openParticipant(br, `${srv.url}/r/${randomRoomId()}`, {
      label: 'greta',
      locale: 'de-DE',
    });
    ps.push(p);
    const { page } = p;
    assert.equal(await page.locator('html').getAttribute('lang'), 'de');
    for (const name of ['Mikrofon', 'Kamera', 'Beitreten']) {
      await page.getByRole('button', { name, exact: true }).waitFor({ state: 'visible' });
    }
    await page.getByLabel('Name', { exact: true }).waitFor({ state: 'visible' });
    await joinMeeting(p, { join: 'Beitreten', leave: 'Verlassen' });
    await page.getByRole('button', { name: 'Verlassen', exact: true }).waitFor({ state: 'visible' });
    for (const name of ['Mikrofon', 'Kamera']) {
      await page.getByRole('button', { name, exact: true }).waitFor({ state: 'visible' });
    }
  });
});

test('before joining, microphone and camera are off and Join needs a name', { timeout: TEST_TIMEOUT_MS }, async () => {
  assert.ok(server && browser);
  const srv = server;
  const br = browser;
  await withParticipants('prejoin-defaults', srv, async (ps) => {
    const p = await openParticipant(br, `${srv.url}/r/${randomRoomId()}`, { label: 'paul' });
    ps.push(p);
    const { page } = p;
    const mic = page.getByRole('button', { name: 'Microphone', exact: true });
    const cam = page.getByRole('button', { name: 'Camera', exact: true });
    const join = page.getByRole('button', { name: 'Join', exact: true });
    const name = page.getByLabel('Name', { exact: true });

    await join.waitFor({ state: 'visible' });
    assert.equal(await mic.getAttribute('aria-pressed'), 'false');
    assert.equal(await cam.getAttribute('aria-pressed'), 'false');
    assert.equal(await join.isDisabled(), true, 'Join is disabled without a name');

    await name.fill('   ');
    assert.equal(await join.isDisabled(), true, 'a blank name does not count');
    await name.fill('Paul');
    await waitFor('Join to become enabled', () => join.isEnabled());
    await name.fill('');
    await waitFor('Join to become disabled again', () => join.isDisabled());

    // Nothing was captured: no device is live before the user asks for it.
    const live = await page.evaluate(() => {
      const v = document.getElementById('self-view');
      return v instanceof HTMLVideoElement && v.srcObject !== null;
    });
    assert.equal(live, false, 'no camera preview before the camera is turned on');
  });
});

test('the home page makes a new unguessable room and opens a pasted link', { timeout: TEST_TIMEOUT_MS }, async () => {
  assert.ok(server && browser);
  const srv = server;
  const br = browser;
  await withParticipants('home', srv, async (ps) => {
    const p = await openParticipant(br, `${srv.url}/`, { label: 'hanna' });
    ps.push(p);
    const { page } = p;

    await page.getByRole('button', { name: 'New meeting', exact: true }).click();
    await page.waitForURL(/\/r\/[A-Za-z0-9_-]{22}$/, { timeout: WAIT_MS });
    const first = new URL(page.url()).pathname;

    await page.goto(`${srv.url}/`);
    await page.getByRole('button', { name: 'New meeting', exact: true }).click();
    await page.waitForURL(/\/r\/[A-Za-z0-9_-]{22}$/, { timeout: WAIT_MS });
    assert.notEqual(new URL(page.url()).pathname, first, 'each new meeting has its own ID');

    const room = randomRoomId();
    await page.goto(`${srv.url}/`);
    await page.getByLabel('Meeting ID or link', { exact: true }).fill(`${srv.url}/r/${room}`);
    await page.getByRole('button', { name: 'Open', exact: true }).click();
    await page.waitForURL(`${srv.url}/r/${room}`, { timeout: WAIT_MS });

    await page.goto(`${srv.url}/`);
    await page.getByLabel('Meeting ID or link', { exact: true }).fill('too-short');
    await page.getByRole('button', { name: 'Open', exact: true }).click();
    await page.getByRole('alert').waitFor({ state: 'visible' });
    assert.equal(new URL(page.url()).pathname, '/');
  });
});

test('an error from the server shows in an alert with its code', { timeout: TEST_TIMEOUT_MS }, async () => {
  assert.ok(server && browser);
  const srv = server;
  const br = browser;
  await withParticipants('server-error', srv, async (ps) => {
    const p = await openParticipant(br, `${srv.url}/r/${randomRoomId()}`, { label: 'ivan' });
    ps.push(p);
    const { page } = p;
    // The page caps names at the server's limit; lift the cap to make the server refuse.
    const name = page.getByLabel('Name', { exact: true });
    await name.evaluate((el) => el.removeAttribute('maxlength'));
    await name.fill('x'.repeat(100));
    await page.getByRole('button', { name: 'Join', exact: true }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor({ state: 'visible' });
    assert.match((await alert.textContent()) ?? '', /invalid_name/);
    // Still at the pre-join form, ready to try again.
    await waitFor('Join to be enabled again', () =>
      page.getByRole('button', { name: 'Join', exact: true }).isEnabled(),
    );
  });
});
