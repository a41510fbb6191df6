// Audio-only mode: the participant sends no camera and receives no video (the server stops
// forwarding it on `receive_video`), while audio flows; and the server's `[meeting]
// audio_only` default reaches the pre-join page.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS,
  inboundStreams,
  joinMeeting,
  launchBrowser,
  openParticipant,
  randomRoomId,
  setToggles,
  sleep,
  waitFor,
  withParticipants,
} from './helpers.mjs';
import { startServer } from './server.mjs';

/** @type {import('./server.mjs').RunningServer | undefined} */
let server;
/** @type {import('playwright-core').Browser | undefined} */
let browser;

before(async () => {
  // Audio-only by default, as an operator with little bandwidth would set it.
  server = await startServer({ env: { CONCLAVE_MEETING__AUDIO_ONLY: 'true' } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('audio only: checked by the server default, no video received, audio flows', { timeout: TEST_TIMEOUT_MS }, async () => {
  assert.ok(server && browser);
  const srv = server;
  const br = browser;
  await withParticipants('audio-only-receive', srv, async (ps) => {
    const room = `${srv.url}/r/${randomRoomId()}`;
    // Vic sends camera and microphone; he turned audio-only off.
    const vic = await openParticipant(br, room, { label: 'vic' });
    ps.push(vic);
    const vicBox = vic.page.getByRole('checkbox', { name: 'Audio only (no video)', exact: true });
    await waitFor('the server default to check "Audio only"', () => vicBox.isChecked());
    await vicBox.uncheck();
    const vicId = await joinMeeting(vic);
    await setToggles(vic, ['Microphone', 'Camera'], true);

    // Ula keeps the default.
    const ula = await openParticipant(br, room, { label: 'ula' });
    ps.push(ula);
    const box = ula.page.getByRole('checkbox', { name: 'Audio only (no video)', exact: true });
    await waitFor('the server default to check "Audio only"', () => box.isChecked());
    await joinMeeting(ula);

    // Wes turned audio-only off: he gets Vic's video, so there is video to hold back.
    const wes = await openParticipant(br, room, { label: 'wes' });
    ps.push(wes);
    const wesBox = wes.page.getByRole('checkbox', { name: 'Audio only (no video)', exact: true });
    await waitFor('the server default to check "Audio only"', () => wesBox.isChecked());
    await wesBox.uncheck();
    await joinMeeting(wes);
    await waitFor('video from vic at wes', async () =>
      (await inboundStreams(wes)).some(
        (s) => s.kind === 'video' && s.participant === vicId && s.framesDecoded > 5,
      ),
    );

    // Audio from Vic arrives and keeps arriving ...
    const audioFromVic = async () =>
      (await inboundStreams(ula))
        .filter((s) => s.kind === 'audio' && s.participant === vicId)
        .reduce((n, s) => n + s.packetsReceived, 0);
    await waitFor('audio from vic', async () => (await audioFromVic()) > 50);
    const videoPackets = async () =>
      (await inboundStreams(ula))
        .filter((s) => s.kind === 'video')
        .reduce((n, s) => n + s.packetsReceived, 0);
    const before = await videoPackets();
    const audioBefore = await audioFromVic();
    await sleep(2000);
    // ... while no video does, although Vic's camera is on.
    assert.equal(await videoPackets(), before, 'video reached an audio-only participant');
    assert.equal(before, 0, 'video reached an audio-only participant before the check');
    assert.ok((await audioFromVic()) > audioBefore + 20, 'audio must keep flowing');
  });
});
