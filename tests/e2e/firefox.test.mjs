// Firefox meets Firefox and Chromium with E2EE on: three Firefox ESR pages in one room, and a
// mixed room of two Chromium pages and one Firefox page. Each page decodes video and
// receives audio from every other (getStats, as meeting.test.mjs), every page shows the same
// encrypted MLS epoch, and each page's frame worker decrypted video and audio frames —
// Firefox with RTCRtpScriptTransform, Chromium with encoded streams.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS,
  expectMediaFrom,
  joinMeeting,
  launchBrowser,
  openParticipant,
  randomRoomId,
  setToggles,
  waitFor,
  withParticipants,
} from './helpers.mjs';
import { cameraAndMicrophoneOnFirefox, joinFirefox, launchFirefox, openFirefoxParticipant } from './firefox.mjs';
import { startServer } from './server.mjs';

/** @type {import('./server.mjs').RunningServer | undefined} */
let server;
/** @type {import('puppeteer-core').Browser | undefined} */
let firefox;
/** @type {import('playwright-core').Browser | undefined} */
let chromium;

before(async () => {
  server = await startServer();
  firefox = await launchFirefox();
  chromium = await launchBrowser();
});
after(async () => {
  await firefox?.close();
  await chromium?.close();
  await server?.stop();
});

/**
 * The page's E2EE state: status, frame API, and its worker's decryption counters.
 * @param {import('./helpers.mjs').Participant} p
 */
function e2ee(p) {
  return p.page.evaluate(async () => {
    const e = /** @type {any} */ (window).conclave?.e2ee;
    if (!e?.frames) return null;
    const status = e.status();
    const stats = await e.frames.stats();
    return {
      state: String(status.state),
      epoch: status.epoch,
      members: status.members.filter((/** @type {any} */ m) => m.match === 'present').length,
      mode: String(e.frames.mode),
      video: Number(stats.decrypt.video.decrypted),
      audio: Number(stats.decrypt.audio.decrypted),
      sentVideo: Number(stats.encrypt.video.encrypted),
    };
  });
}

/**
 * Every page decodes every other's video and audio, all in one encrypted epoch with everyone
 * as a member, and every worker decrypted (and encrypted) frames.
 * @param {import('./helpers.mjs').Participant[]} ps
 * @param {string[]} ids
 * @param {string[]} modes The frame API each page must use.
 */
async function expectEncryptedMesh(ps, ids, modes) {
  await Promise.all(ps.map((p, i) => expectMediaFrom(p, ids.filter((_, j) => j !== i))));
  await waitFor('every page in one encrypted epoch with all members', async () => {
    const all = await Promise.all(ps.map(e2ee));
    if (all.some((s) => s?.state !== 'encrypted' || s.members !== ps.length)) return null;
    return new Set(all.map((s) => s?.epoch)).size === 1;
  });
  const states = await Promise.all(ps.map(e2ee));
  states.forEach((s, i) => {
    assert.ok(s, `${ps[i].label} has E2EE`);
    assert.equal(s.mode, modes[i], `${ps[i].label} uses ${modes[i]}`);
    assert.ok(s.video > 0 && s.audio > 0, `${ps[i].label} decrypted video and audio frames: ${JSON.stringify(s)}`);
    assert.ok(s.sentVideo > 0, `${ps[i].label} encrypted the video it sent: ${JSON.stringify(s)}`);
  });
  for (const p of ps) {
    const shown = await p.page.evaluate(() => document.querySelector('#e2ee-button')?.getAttribute('data-state'));
    assert.equal(shown, 'encrypted', `${p.label} shows the padlock`);
  }
}

test('three Firefox pages meet with E2EE: each decodes the two others', { timeout: TEST_TIMEOUT_MS }, async () => {
  assert.ok(server && firefox);
  const srv = server;
  const ff = firefox;
  await withParticipants('firefox-three', srv, async (ps) => {
    const url = `${srv.url}/r/${randomRoomId()}`;
    for (const label of ['fiona', 'felix', 'frida']) ps.push(await openFirefoxParticipant(ff, url, { label }));
    /** @type {string[]} */
    const ids = [];
    for (const p of ps) ids.push(await joinFirefox(p));
    assert.equal(new Set(ids).size, 3);
    for (const p of ps) await cameraAndMicrophoneOnFirefox(p);
    await expectEncryptedMesh(ps, ids, ['script', 'script', 'script']);
  });
});

test('two Chromium pages and one Firefox page join at the same moment with E2EE: each decodes the two others', { timeout: TEST_TIMEOUT_MS }, async () => {
  assert.ok(server && firefox && chromium);
  const srv = server;
  const ff = firefox;
  const cr = chromium;
  await withParticipants('firefox-mixed', srv, async (ps) => {
    const url = `${srv.url}/r/${randomRoomId()}`;
    ps.push(
      await openParticipant(cr, url, { label: 'chris' }),
      await openParticipant(cr, url, { label: 'chloe' }),
      await openFirefoxParticipant(ff, url, { label: 'fred' }),
    );
    const [c1, c2, f] = ps;
    const ids = await Promise.all([joinMeeting(c1), joinMeeting(c2), joinFirefox(f)]);
    assert.equal(new Set(ids).size, 3);
    await Promise.all([
      setToggles(c1, ['Camera', 'Microphone'], true),
      setToggles(c2, ['Camera', 'Microphone'], true),
      cameraAndMicrophoneOnFirefox(f),
    ]);
    await expectEncryptedMesh(ps, ids, ['streams', 'streams', 'script']);
  });
});
