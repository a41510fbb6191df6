// Joining without devices: when the browser blocks camera and microphone, and when it has no
// getUserMedia at all. The page explains what happened, stays usable, and the participant
// sees and hears the others while sending nothing.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS,
  expectMediaFrom,
  expectNoAlert,
  joinMeeting,
  launchBrowser,
  openParticipant,
  outboundStreams,
  randomRoomId,
  serverAndBrowser,
  setToggles,
  sleep,
  waitFor,
  withParticipants,
} from './helpers.mjs';

const suite = serverAndBrowser();

/**
 * A browser without `--use-fake-ui-for-media-stream`: nothing accepts a device request for
 * the user, so a context without camera and microphone permissions is refused, like a user
 * who blocked them.
 * @type {import('playwright-core').Browser | undefined}
 */
let denying;

before(async () => {
  denying = await launchBrowser({ fakeUi: false });
});

after(async () => {
  await denying?.close();
});

test('with camera and microphone blocked, "Join without devices" sees and hears two others and sends nothing', { timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = suite.server;
  assert.ok(denying);
  const blocked = denying;
  await withParticipants('listen-only-denied', srv, async (ps) => {
    const room = `${srv.url}/r/${randomRoomId()}`;
    const lou = await openParticipant(blocked, room, { label: 'lou', permissions: [] });
    ps.push(lou);
    const { page } = lou;

    // The browser really refuses this page the devices.
    const refusal = await page.evaluate(() =>
      Promise.race([
        navigator.mediaDevices.getUserMedia({ audio: true }).then(
          (stream) => {
            for (const track of stream.getTracks()) track.stop();
            return 'granted';
          },
          (e) => e.name,
        ),
        new Promise((resolve) => setTimeout(() => resolve('no answer'), 10_000)),
      ]),
    );
    assert.equal(refusal, 'NotAllowedError');

    // Asking for the microphone explains the refusal; the toggle stays off, the page usable.
    await page.getByLabel('Name', { exact: true }).fill(lou.label);
    await page.getByRole('button', { name: 'Microphone', exact: true }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor({ state: 'visible' });
    assert.match((await alert.textContent()) ?? '', /blocked the microphone/);
    assert.equal(
      await page.getByRole('button', { name: 'Microphone', exact: true }).getAttribute('aria-pressed'),
      'false',
    );
    await page.getByRole('button', { name: 'Camera', exact: true }).click();
    await waitFor('the alert to explain the camera', async () =>
      /blocked the camera/.test((await alert.textContent()) ?? ''),
    );

    const others = [];
    for (const label of ['mia', 'noa']) {
      const p = await openParticipant(suite.browser, room, { label });
      ps.push(p);
      others.push(p);
    }
    const otherIds = [];
    for (const p of others) {
      otherIds.push(await joinMeeting(p));
      await setToggles(p, ['Camera', 'Microphone'], true);
    }

    const louId = await joinMeeting(lou, { join: 'Join without devices' });
    await expectNoAlert(lou);
    await expectMediaFrom(lou, otherIds);

    // Lou sends nothing: no outbound stream has sent a packet, also a little later.
    for (let round = 0; round < 2; round++) {
      const sent = await outboundStreams(lou);
      for (const s of sent) assert.equal(s.packetsSent, 0, `lou sent ${s.kind} packets: ${JSON.stringify(sent)}`);
      if (round === 0) await sleep(2000);
    }
    // The others show Lou as muted, without video.
    for (const p of others) {
      const tile = p.page.locator(`.tile[data-participant-id="${louId}"]`);
      await tile.waitFor({ state: 'visible' });
      assert.equal(await tile.getAttribute('data-microphone'), 'off');
      assert.equal(await tile.getAttribute('data-camera'), 'off');
      await tile.getByText('Muted', { exact: true }).waitFor({ state: 'visible' });
    }
  });
});

test('without getUserMedia the devices are disabled with a note, and "Join without devices" still works', { timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = suite.server;
  await withParticipants('listen-only-unsupported', srv, async (ps) => {
    const room = `${srv.url}/r/${randomRoomId()}`;
    const otto = await openParticipant(suite.browser, room, {
      label: 'otto',
      beforeOpen: (context) =>
        context.addInitScript(() => {
          // Like an old browser or a page outside a secure context.
          Object.defineProperty(Navigator.prototype, 'mediaDevices', { get: () => undefined });
        }),
    });
    ps.push(otto);
    const { page } = otto;
    await page.getByText('This browser offers no camera or microphone', { exact: false }).waitFor();
    for (const name of ['Microphone', 'Camera']) {
      assert.equal(await page.getByRole('button', { name, exact: true }).isDisabled(), true, `${name} is disabled`);
    }
    await joinMeeting(otto, { join: 'Join without devices' });
    await expectNoAlert(otto);
    await page.getByRole('status').filter({ hasText: 'Nobody else is here yet' }).waitFor();
  });
});
