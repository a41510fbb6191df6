// Pictures of the page for people to look at (docs/screenshots/ holds a copy): the pre-join
// form with camera and microphone on, a three-person meeting, and the same meeting on a phone
// (390×844, portrait), where nothing may scroll sideways and every control must be in reach.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ARTIFACTS_DIR,
  TEST_TIMEOUT_MS,
  expectMediaFrom,
  expectNoAlert,
  joinMeeting,
  openParticipant,
  randomRoomId,
  serverAndBrowser,
  setToggles,
  waitFor,
  withParticipants,
} from './helpers.mjs';

const suite = serverAndBrowser();

const SCREENSHOTS = join(ARTIFACTS_DIR, 'screenshots');

/**
 * Fail unless the page fits its viewport's width and every visible button of the control bar
 * lies inside the viewport: at once (`scroll: false`, the meeting's bar stays in view), or
 * after scrolling it into view vertically (the pre-join form may be longer than a phone).
 * @param {import('./helpers.mjs').Participant} p
 * @param {string} when
 * @param {{scroll: boolean}} options
 */
async function expectPhoneFit(p, when, { scroll }) {
  const fit = await p.page.evaluate((scrollTo) => {
    const width = window.innerWidth;
    const height = window.innerHeight;
    const outside = [];
    for (const el of document.querySelectorAll('.controls button')) {
      if (!(el instanceof HTMLElement) || el.offsetParent === null) continue;
      if (scrollTo) el.scrollIntoView({ block: 'nearest', inline: 'nearest' });
      const r = el.getBoundingClientRect();
      if (r.left < 0 || r.right > width || r.top < 0 || r.bottom > height) {
        outside.push(`${el.textContent?.trim()} at ${Math.round(r.left)},${Math.round(r.top)}–${Math.round(r.right)},${Math.round(r.bottom)}`);
      }
    }
    window.scrollTo(0, 0);
    return { scrollWidth: document.documentElement.scrollWidth, width, outside };
  }, scroll);
  assert.ok(fit.scrollWidth <= fit.width, `${when}: page is ${fit.scrollWidth}px wide in a ${fit.width}px viewport`);
  assert.deepEqual(fit.outside, [], `${when}: controls outside the ${fit.width}px viewport`);
}

test('screenshots of the pre-join form, a three-person meeting and the phone layout', { timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = suite.server;
  const br = suite.browser;
  await mkdir(SCREENSHOTS, { recursive: true });
  await withParticipants('screenshot-tour', srv, async (ps) => {
    const room = `${srv.url}/r/${randomRoomId()}`;
    const ada = await openParticipant(br, room, { label: 'Ada' });
    ps.push(ada);

    // Pre-join: name typed, camera preview and microphone meter live.
    await ada.page.getByLabel('Name', { exact: true }).fill('Ada');
    await setToggles(ada, ['Camera', 'Microphone'], true);
    await waitFor('the camera preview to play', () =>
      ada.page.evaluate(() => {
        const v = document.getElementById('self-view');
        return v instanceof HTMLVideoElement && !v.hidden && v.videoWidth > 0;
      }),
    );
    const meter = ada.page.getByRole('meter', { name: 'Microphone level' });
    await waitFor('the microphone meter to move', async () =>
      Number(await meter.getAttribute('aria-valuenow')) > 20,
      { interval: 50 },
    );
    await ada.page.screenshot({ path: join(SCREENSHOTS, 'prejoin.png') });

    const adaId = await joinMeeting(ada);
    const grace = await openParticipant(br, room, { label: 'Grace' });
    ps.push(grace);
    const alan = await openParticipant(br, room, {
      label: 'Alan',
      viewport: { width: 390, height: 844 },
      phone: true,
    });
    ps.push(alan);
    await expectPhoneFit(alan, 'phone before joining', { scroll: true });
    const graceId = await joinMeeting(grace);
    const alanId = await joinMeeting(alan);
    await Promise.all([grace, alan].map((p) => setToggles(p, ['Camera', 'Microphone'], true)));

    await expectMediaFrom(ada, [graceId, alanId]);
    await expectMediaFrom(alan, [adaId, graceId]);
    for (const p of ps) await expectNoAlert(p);

    // Ada's wide window shows the participant list; it names all three.
    const list = ada.page.getByRole('list');
    await waitFor('the participant list to name all three', async () => {
      const text = (await list.textContent()) ?? '';
      return ['Ada (you)', 'Grace', 'Alan'].every((n) => text.includes(n));
    });
    await ada.page.screenshot({ path: join(SCREENSHOTS, 'meeting.png') });

    await expectPhoneFit(alan, 'phone in the meeting', { scroll: false });
    await alan.page.screenshot({ path: join(SCREENSHOTS, 'phone.png') });
  });
});
