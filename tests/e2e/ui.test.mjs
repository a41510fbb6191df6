// The page itself: language, safe defaults before joining, and the home page.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS,
  WAIT_MS,
  joinMeeting,
  openParticipant,
  randomRoomId,
  serverAndBrowser,
  waitFor,
  setToggle,
  withParticipants,
} from './helpers.mjs';
import { textContrastFailures } from './contrast.mjs';

const suite = serverAndBrowser();

test('a German browser gets German labels before and after joining', { timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = suite.server;
  const br = suite.browser;
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
  const srv = suite.server;
  const br = suite.browser;
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

test('"Audio only" turns the camera off and hides it, before and in the meeting', { timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = suite.server;
  const br = suite.browser;
  await withParticipants('audio-only', srv, async (ps) => {
    const p = await openParticipant(br, `${srv.url}/r/${randomRoomId()}`, { label: 'ulla' });
    ps.push(p);
    const { page } = p;
    const camera = page.getByRole('button', { name: 'Camera', exact: true });
    await setToggle(p, 'Camera', true);
    await page.getByRole('checkbox', { name: 'Audio only (no video)', exact: true }).check();
    await camera.waitFor({ state: 'hidden' });
    await page.getByText('Camera is off', { exact: true }).waitFor({ state: 'visible' });
    assert.equal(await page.getByRole('combobox', { name: 'Choose camera' }).count(), 0);
    const previewLive = await page.evaluate(() => {
      const v = document.getElementById('self-view');
      return v instanceof HTMLVideoElement && v.srcObject !== null;
    });
    assert.equal(previewLive, false, 'the camera was turned off');

    await joinMeeting(p);
    await setToggle(p, 'Microphone', true);
    assert.equal(await camera.isVisible(), false, 'no camera toggle in the meeting');
    await page.getByRole('button', { name: 'Devices', exact: true }).click();
    await page.getByRole('combobox', { name: 'Choose microphone' }).waitFor({ state: 'visible' });
    assert.equal(await page.getByRole('combobox', { name: 'Choose camera' }).count(), 0);
  });
});

test('the home page makes a new unguessable room, copies its link and opens a pasted link', { timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = suite.server;
  const br = suite.browser;
  await withParticipants('home', srv, async (ps) => {
    const p = await openParticipant(br, `${srv.url}/`, {
      label: 'hanna',
      permissions: ['clipboard-read', 'clipboard-write'],
    });
    ps.push(p);
    const { page } = p;
    const linkPattern = new RegExp(`^${srv.url.replace(/[.]/g, '\\.')}/r/[A-Za-z0-9_-]{22}$`);
    const link = page.getByRole('textbox', { name: 'Meeting link', exact: true });
    const status = page.getByRole('status');

    await page.getByRole('button', { name: 'New meeting', exact: true }).click();
    const first = await link.inputValue();
    assert.match(first, linkPattern);
    await page.getByRole('button', { name: 'New meeting', exact: true }).click();
    const second = await link.inputValue();
    assert.match(second, linkPattern);
    assert.notEqual(second, first, 'each new meeting has its own ID');

    // Copy link: onto the clipboard when the browser allows it ...
    await page.getByRole('button', { name: 'Copy link', exact: true }).click();
    await waitFor('the status to say the link was copied', async () =>
      (await status.textContent())?.includes('Link copied.'),
    );
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), second);
    // ... and selected for Ctrl+C when it refuses.
    await page.evaluate(() => {
      navigator.clipboard.writeText = () => Promise.reject(new DOMException('refused', 'NotAllowedError'));
    });
    await page.getByRole('button', { name: 'Copy link', exact: true }).click();
    await waitFor('the status to say the link is selected', async () =>
      (await status.textContent())?.includes('The link is selected'),
    );
    const selection = await page.evaluate(() => {
      const el = document.activeElement;
      return el instanceof HTMLInputElement ? el.value.slice(el.selectionStart ?? 0, el.selectionEnd ?? 0) : null;
    });
    assert.equal(selection, second, 'the link is focused and selected');

    await page.getByRole('link', { name: 'Go to the meeting', exact: true }).click();
    await page.waitForURL(second, { timeout: WAIT_MS });

    const room = randomRoomId();
    await page.goto(`${srv.url}/`);
    await page.getByLabel('Meeting ID or link', { exact: true }).fill(`${srv.url}/r/${room}`);
    await page.getByRole('button', { name: 'Open', exact: true }).click();
    await page.waitForURL(`${srv.url}/r/${room}`, { timeout: WAIT_MS });

    await page.goto(`${srv.url}/`);
    await page.getByLabel('Meeting ID or link', { exact: true }).fill(room);
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
  const srv = suite.server;
  const br = suite.browser;
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

test('the language switch changes every label at once, English → German → English, without a reload', { timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = suite.server;
  const br = suite.browser;
  await withParticipants('language-switch', srv, async (ps) => {
    const p = await openParticipant(br, `${srv.url}/r/${randomRoomId()}`, { label: 'lena' });
    ps.push(p);
    const { page } = p;
    await page.evaluate(() => Object.assign(window, { loadedOnce: true }));
    const language = page.locator('#language-select');
    /** The visible text of the page, and the accessible names of its controls. */
    const pageText = () =>
      page.evaluate(() => {
        const names = [...document.querySelectorAll('[aria-label]')].map((el) => el.getAttribute('aria-label'));
        return `${document.body.innerText}\n${names.join('\n')}`;
      });
    /**
     * @param {string[]} buttons
     * @param {string[]} labels
     * @param {string} heading
     */
    const expectLabels = async (buttons, labels, heading) => {
      for (const name of buttons) {
        await page.getByRole('button', { name, exact: true }).waitFor({ state: 'visible' });
      }
      for (const name of labels) {
        await page.getByRole('textbox', { name, exact: true }).or(page.getByRole('combobox', { name, exact: true }))
          .or(page.getByRole('checkbox', { name, exact: true })).waitFor({ state: 'visible' });
      }
      await page.getByRole('heading', { name: heading, exact: true }).waitFor({ state: 'visible' });
    };
    const english = {
      buttons: ['Microphone', 'Camera', 'Join', 'Join without devices', 'Copy link'],
      labels: ['Name', 'Audio only (no video)', 'Choose microphone', 'Choose camera', 'Language / Sprache'],
      heading: 'Ready to join?',
    };
    const german = {
      buttons: ['Mikrofon', 'Kamera', 'Beitreten', 'Ohne Geräte beitreten', 'Link kopieren'],
      labels: ['Name', 'Nur Audio (kein Video)', 'Mikrofon auswählen', 'Kamera auswählen', 'Sprache / Language'],
      heading: 'Bereit zum Beitreten?',
    };
    // English words that must all be gone in German (and the other way round).
    const englishOnly = ['Microphone', 'Camera', 'Join', 'devices', 'Copy link', 'Ready', 'Choose', 'Audio only', 'Default'];
    const germanOnly = ['Mikrofon', 'Kamera', 'Beitreten', 'Geräte', 'kopieren', 'Bereit', 'auswählen', 'Nur Audio', 'Standard'];

    assert.equal(await page.locator('html').getAttribute('lang'), 'en');
    await expectLabels(english.buttons, english.labels, english.heading);

    await language.selectOption('de');
    assert.equal(await page.locator('html').getAttribute('lang'), 'de');
    await expectLabels(german.buttons, german.labels, german.heading);
    let text = await pageText();
    for (const word of englishOnly) assert.ok(!text.includes(word), `"${word}" is left in German:\n${text}`);

    // In the meeting too, including texts drawn by script (status, tiles, list).
    await joinMeeting(p, { join: 'Beitreten', leave: 'Verlassen' });
    for (const name of ['Verlassen', 'Geräte', 'Teilnehmende', 'Mikrofon', 'Kamera']) {
      await page.getByRole('button', { name, exact: true }).waitFor({ state: 'visible' });
    }
    await page.getByRole('status').filter({ hasText: 'Noch ist niemand sonst hier' }).waitFor();
    await page.getByText('lena (Sie)').first().waitFor();

    await language.selectOption('en');
    assert.equal(await page.locator('html').getAttribute('lang'), 'en');
    for (const name of ['Leave', 'Devices', 'Participants', 'Microphone', 'Camera']) {
      await page.getByRole('button', { name, exact: true }).waitFor({ state: 'visible' });
    }
    await page.getByRole('status').filter({ hasText: 'Nobody else is here yet' }).waitFor();
    await page.getByText('lena (you)').first().waitFor();
    text = await pageText();
    for (const word of [...germanOnly, 'Sie)', 'Verlassen', 'Teilnehmende']) {
      assert.ok(!text.includes(word), `"${word}" is left in English:\n${text}`);
    }

    await page.getByRole('button', { name: 'Leave', exact: true }).click();
    await expectLabels(english.buttons, english.labels, english.heading);
    assert.equal(await page.evaluate(() => /** @type {any} */ (window).loadedOnce), true, 'the page was not reloaded');
  });
});

test('every text meets WCAG AA contrast, in the light and the dark colour scheme', { timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = suite.server;
  const br = suite.browser;
  await withParticipants('contrast', srv, async (ps) => {
    const home = await openParticipant(br, `${srv.url}/`, { label: 'vera' });
    const room = await openParticipant(br, `${srv.url}/r/${randomRoomId()}`, { label: 'walt' });
    ps.push(home, room);
    /** @type {string[]} */
    const problems = [];
    /**
     * @param {import('./helpers.mjs').Participant} p
     * @param {string} what
     */
    const check = async (p, what) => {
      for (const colorScheme of /** @type {const} */ (['light', 'dark'])) {
        await p.page.emulateMedia({ colorScheme });
        for (const f of await textContrastFailures(p.page)) {
          problems.push(`${what} (${colorScheme}): "${f.text}" ${f.color} on ${f.background} is ${f.ratio}:1, needs ${f.required}:1`);
        }
      }
    };

    // Landing page with a new meeting's link, and with an error.
    await home.page.getByRole('button', { name: 'New meeting', exact: true }).click();
    await home.page.getByRole('button', { name: 'Copy link', exact: true }).click();
    await home.page.getByLabel('Meeting ID or link', { exact: true }).fill('nonsense');
    await home.page.getByRole('button', { name: 'Open', exact: true }).click();
    await home.page.getByRole('alert').waitFor({ state: 'visible' });
    await check(home, 'landing page');

    // Pre-join with the camera off, then the meeting with both panels open and a muted badge.
    await check(room, 'pre-join');
    await joinMeeting(room);
    const { page } = room;
    await setToggle(room, 'Microphone', true);
    await setToggle(room, 'Microphone', false);
    for (const name of ['Devices', 'Participants']) {
      const button = page.getByRole('button', { name, exact: true });
      if ((await button.getAttribute('aria-expanded')) !== 'true') await button.click();
    }
    await page.getByRole('list').getByText('Muted', { exact: true }).waitFor();
    await check(room, 'meeting');

    assert.deepEqual(problems, []);
  });
});
