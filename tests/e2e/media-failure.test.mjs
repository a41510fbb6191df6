// When signalling works but media never connects, the page does not loop between
// "Reconnecting…" and "Reconnected.": after MEDIA_FAILURES_TO_GIVE_UP sessions in a row
// without media it stops, says what is wrong and what to do, and offers Rejoin.
//
// - Chromium against a server that announces a media address nobody listens on
//   (--public-ip 127.0.0.2; the media socket is on 127.0.0.1) and has TURN off (with TURN on,
//   the relay carries media to the real media socket and the meeting works);
// - a stock Firefox (no media.peerconnection.ice.loopback) against the loopback local trial:
//   the case issue 12 reported, now with the Firefox-specific advice.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { TEST_TIMEOUT_MS, joinMeeting, launchBrowser, openParticipant, randomRoomId, waitFor, withParticipants } from './helpers.mjs';
import { joinFirefox, launchFirefox, openFirefoxParticipant } from './firefox.mjs';
import { startServer } from './server.mjs';

/** Three sessions of up to ICE_CONNECT_TIMEOUT_MS (20 s) each, and the waits between them. */
const GIVE_UP_WAIT_MS = 100_000;

/** @type {import('./server.mjs').RunningServer | undefined} */
let unreachable;
/** @type {import('./server.mjs').RunningServer | undefined} */
let loopback;
/** @type {import('playwright-core').Browser | undefined} */
let chromium;
/** @type {import('puppeteer-core').Browser | undefined} */
let firefox;

before(async () => {
  [unreachable, loopback] = await Promise.all([startServer({ extraArgs: ['--public-ip', '127.0.0.2'], env: { CONCLAVE_TURN__ENABLED: 'false' } }), startServer()]);
  chromium = await launchBrowser();
  firefox = await launchFirefox({ loopback: false });
});
after(async () => {
  await chromium?.close();
  await firefox?.close();
  await unreachable?.stop();
  await loopback?.stop();
});

/**
 * Record every announcement with the media state at that moment.
 * @param {import('./helpers.mjs').Participant} p
 */
function recordAnnouncements(p) {
  return p.page.evaluate(() => {
    const w = /** @type {any} */ (window);
    w.announcements = [];
    const region = document.getElementById('announcer');
    if (!region) throw new Error('no announcer');
    new MutationObserver(() => {
      w.announcements.push({ text: region.textContent ?? '', media: w.conclave?.pc?.connectionState ?? null });
    }).observe(region, { childList: true, characterData: true, subtree: true });
  });
}

/**
 * Wait until the page gave up on media, and return what it shows.
 * @param {import('./helpers.mjs').Participant} p
 */
async function expectGaveUp(p) {
  const shown = await waitFor(
    `${p.label} to give up on media with a specific error`,
    () =>
      p.page.evaluate(() => {
        const view = document.getElementById('room-view');
        const banner = document.getElementById('connection-banner');
        const rejoin = document.getElementById('rejoin-button');
        if (view?.dataset.connection !== 'failed' || !banner || banner.hidden) return null;
        return {
          failure: view.dataset.failure ?? '',
          text: document.getElementById('connection-text')?.textContent ?? '',
          rejoin: rejoin instanceof HTMLElement && !rejoin.hidden,
          announcements: /** @type {{text: string, media: string | null}[]} */ (/** @type {any} */ (window).announcements),
          sessions: /** @type {any} */ (window).conclave?.session?.state ?? null,
        };
      }),
    { timeout: GIVE_UP_WAIT_MS, interval: 500 },
  );
  assert.ok(shown.rejoin, `${p.label} offers Rejoin`);
  assert.ok(
    !shown.announcements.some((a) => a.text.includes('Reconnected.')),
    `${p.label} never said "Reconnected." without media: ${JSON.stringify(shown.announcements)}`,
  );
  assert.ok(
    shown.announcements.filter((a) => a.text.includes('Reconnecting')).length >= 2,
    `${p.label} tried again before giving up: ${JSON.stringify(shown.announcements)}`,
  );
  assert.equal(shown.sessions, 'closed', `${p.label} stopped joining again`);
  return shown;
}

test('Chromium: media that never connects ends in a specific error after three tries, not a loop', { timeout: TEST_TIMEOUT_MS }, async () => {
  assert.ok(unreachable && chromium);
  const srv = unreachable;
  const br = chromium;
  await withParticipants('media-failure-chromium', srv, async (ps) => {
    const p = await openParticipant(br, `${srv.url}/r/${randomRoomId()}`, { label: 'cleo' });
    ps.push(p);
    await recordAnnouncements(p);
    await joinMeeting(p);
    const shown = await expectGaveUp(p);
    assert.equal(shown.failure, 'mediaFailed');
    assert.match(shown.text, /media connection failed 3 times in a row/);
    assert.match(shown.text, /allow UDP and TCP port 443/);
    // Leave still works from there.
    await p.page.getByRole('button', { name: 'Leave', exact: true }).click();
    await p.page.getByRole('button', { name: 'Join', exact: true }).waitFor({ state: 'visible' });
  });
});

test('stock Firefox against the loopback local trial is told why and what to do', { timeout: TEST_TIMEOUT_MS }, async () => {
  assert.ok(loopback && firefox);
  const srv = loopback;
  const ff = firefox;
  await withParticipants('media-failure-firefox', srv, async (ps) => {
    const p = await openFirefoxParticipant(ff, `${srv.url}/r/${randomRoomId()}`, { label: 'finn' });
    ps.push(p);
    await recordAnnouncements(p);
    await joinFirefox(p);
    const shown = await expectGaveUp(p);
    assert.equal(shown.failure, 'mediaFailedLoopbackFirefox');
    assert.match(shown.text, /--media-bind-ip 0\.0\.0\.0/);
    assert.match(shown.text, /media\.peerconnection\.ice\.loopback/);
  });
});
