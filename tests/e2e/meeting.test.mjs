// Three browsers meet in one room through the UI and each sees and hears the two others,
// asserted on RTCPeerConnection.getStats(). Once one after another, once all at the same
// moment (the case a naive renegotiation design breaks on).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS,
  expectMediaFrom,
  expectNoAlert,
  expectTileGone,
  joinMeeting,
  openParticipant,
  randomRoomId,
  serverAndBrowser,
  setToggle,
  setToggles,
  waitFor,
  withParticipants,
} from './helpers.mjs';

const suite = serverAndBrowser();

/**
 * Every participant receives media from every other, then `leaver` leaves and the others
 * drop its tile.
 * @param {import('./helpers.mjs').Participant[]} ps
 * @param {string[]} ids
 */
async function assertFullMeshThenLeave(ps, ids) {
  await Promise.all(
    ps.map((p, i) => expectMediaFrom(p, ids.filter((_, j) => j !== i))),
  );
  for (const p of ps) await expectNoAlert(p);

  const leaver = ps[ps.length - 1];
  const leaverId = ids[ids.length - 1];
  await leaver.page.getByRole('button', { name: 'Leave', exact: true }).click();
  await Promise.all(ps.slice(0, -1).map((p) => expectTileGone(p, leaverId)));
  // The leaver is back at the pre-join form, devices off.
  await leaver.page.getByRole('button', { name: 'Join', exact: true }).waitFor({ state: 'visible' });
  assert.equal(
    await leaver.page.getByRole('button', { name: 'Camera', exact: true }).getAttribute('aria-pressed'),
    'false',
  );
}

test('three participants join and turn on camera and microphone one after another', { timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = suite.server;
  const br = suite.browser;
  await withParticipants('sequential', srv, async (ps) => {
    // The first one creates the meeting from the home page; the others follow its link.
    const first = await openParticipant(br, `${srv.url}/`, { label: 'alice' });
    ps.push(first);
    await first.page.getByRole('button', { name: 'New meeting', exact: true }).click();
    await first.page.getByRole('link', { name: 'Go to the meeting', exact: true }).click();
    await first.page.waitForURL(/\/r\/[A-Za-z0-9_-]{22}$/);
    const roomUrl = first.page.url();
    ps.push(await openParticipant(br, roomUrl, { label: 'bob' }));
    ps.push(await openParticipant(br, roomUrl, { label: 'carol' }));

    /** @type {string[]} */
    const ids = [];
    for (const p of ps) ids.push(await joinMeeting(p));
    assert.equal(new Set(ids).size, 3, 'three distinct participant IDs');

    for (const p of ps) {
      await setToggle(p, 'Camera', true);
      await setToggle(p, 'Microphone', true);
    }
    await assertFullMeshThenLeave(ps, ids);
  });
});

test('three participants join and turn on camera and microphone at the same moment', { timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = suite.server;
  const br = suite.browser;
  await withParticipants('simultaneous', srv, async (ps) => {
    const room = `${srv.url}/r/${Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('base64url')}`;
    ps.push(
      ...(await Promise.all(
        ['dora', 'emil', 'frida'].map((label) => openParticipant(br, room, { label })),
      )),
    );
    const ids = await Promise.all(ps.map((p) => joinMeeting(p)));
    assert.equal(new Set(ids).size, 3, 'three distinct participant IDs');

    // Every page clicks Camera and Microphone at once; the pages do so at the same moment.
    await Promise.all(ps.map((p) => setToggles(p, ['Camera', 'Microphone'], true)));
    await assertFullMeshThenLeave(ps, ids);
  });
});

test('switching microphone and camera in the call replaces the tracks without a renegotiation', { timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = suite.server;
  const br = suite.browser;
  await withParticipants('switch-devices', srv, async (ps) => {
    const room = `${srv.url}/r/${randomRoomId()}`;
    const [gil, hal] = await Promise.all(['gil', 'hal'].map((label) => openParticipant(br, room, { label })));
    ps.push(gil, hal);
    const gilId = await joinMeeting(gil);
    await joinMeeting(hal);
    await setToggles(gil, ['Camera', 'Microphone'], true);
    await expectMediaFrom(hal, [gilId]);

    /** What gil's upstream senders carry. */
    const senders = () =>
      gil.page.evaluate(() => {
        /** @type {RTCPeerConnection} */
        const pc = /** @type {any} */ (window).conclave.pc;
        return pc.getSenders().filter((s) => s.track).map((s) => ({
          kind: s.track?.kind,
          id: s.track?.id,
          label: s.track?.label,
          live: s.track?.readyState === 'live',
        }));
      });
    const before = await senders();
    const offers = () => gil.logs.filter((l) => l.startsWith('ws< {"type":"offer"')).length;
    const offersBefore = offers();

    await gil.page.getByRole('button', { name: 'Devices', exact: true }).click();
    await gil.page.getByRole('combobox', { name: 'Choose microphone', exact: true }).selectOption({ label: 'Fake Audio Input 2' });
    await gil.page.getByRole('combobox', { name: 'Choose camera', exact: true }).selectOption({ index: 1 });
    const after = await waitFor('gil to send the newly chosen devices', async () => {
      const now = await senders();
      const audio = now.find((s) => s.kind === 'audio');
      const video = now.find((s) => s.kind === 'video');
      const old = (/** @type {string} */ kind) => before.find((s) => s.kind === kind)?.id;
      return audio?.label === 'Fake Audio Input 2' && audio.id !== old('audio') && video && video.id !== old('video')
        ? now
        : null;
    });
    assert.ok(after.every((s) => s.live), 'the new tracks are live');
    assert.equal(
      await gil.page.getByRole('button', { name: 'Camera', exact: true }).getAttribute('aria-pressed'),
      'true',
    );
    // Hal keeps seeing and hearing gil, and no new offer was needed for the switch.
    await expectMediaFrom(hal, [gilId]);
    assert.equal(offers(), offersBefore, 'switching devices caused no renegotiation');
    for (const p of ps) await expectNoAlert(p);
  });
});
