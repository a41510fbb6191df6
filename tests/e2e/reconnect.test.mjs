// Automatic reconnect: the server dies in the middle of a meeting (SIGKILL, as in a crash)
// and a new one starts on the same address. Both pages say they are reconnecting, join again
// by themselves under the same names with microphone and camera as they were, and see each
// other again on a new peer connection.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS,
  expectMediaFrom,
  expectNoAlert,
  joinMeeting,
  launchBrowser,
  openParticipant,
  randomRoomId,
  setToggles,
  waitFor,
  withParticipants,
} from './helpers.mjs';
import { restartServer, startServer } from './server.mjs';

/** A reconnect waits at most 15 s between attempts; the first attempt after a restart wins. */
const RECONNECT_WAIT_MS = 60_000;

/** @type {import('./server.mjs').RunningServer | undefined} */
let server;
/** What servers before the current one printed. */
let earlierLogs = '';
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

/**
 * What the page says about its connection: the room's state attribute, the banner's text
 * when it is visible, and every announcement so far.
 * @param {import('./helpers.mjs').Participant} p
 */
function connectionState(p) {
  return p.page.evaluate(() => {
    const view = document.getElementById('room-view');
    const banner = document.getElementById('connection-banner');
    return {
      state: view?.dataset.connection ?? null,
      banner: banner && !banner.hidden ? (banner.textContent ?? '').trim() : null,
      announced: document.getElementById('announcer')?.textContent ?? '',
    };
  });
}

/**
 * The participant ID of `p`'s current session once it is not `old` any more.
 * @param {import('./helpers.mjs').Participant} p
 * @param {string} old
 */
function newParticipantId(p, old) {
  return waitFor(
    `${p.label} to join again under a new participant ID`,
    () =>
      p.page.evaluate((previous) => {
        const c = /** @type {any} */ (window).conclave;
        const id = c?.session?.state === 'joined' ? String(c.session.id) : null;
        return id && id !== previous ? id : null;
      }, old),
    { timeout: RECONNECT_WAIT_MS },
  );
}

test('after the server restarts, both pages reconnect by themselves and see each other again', { timeout: TEST_TIMEOUT_MS }, async () => {
  const logs = { log: () => earlierLogs + (server?.log() ?? '') };
  await withParticipants('reconnect-after-restart', logs, async (ps) => {
    if (!server || !browser) throw new Error('the server or the browser did not start');
    const room = `${server.url}/r/${randomRoomId()}`;
    const [ada, bob] = await Promise.all(['ada', 'bob'].map((label) => openParticipant(/** @type {any} */ (browser), room, { label })));
    ps.push(ada, bob);
    const adaId = await joinMeeting(ada);
    const bobId = await joinMeeting(bob);
    await Promise.all(ps.map((p) => setToggles(p, ['Camera', 'Microphone'], true)));
    await Promise.all([expectMediaFrom(ada, [bobId]), expectMediaFrom(bob, [adaId])]);
    for (const p of ps) {
      assert.equal((await connectionState(p)).state, 'connected');
      await p.page.evaluate(() => {
        const w = /** @type {any} */ (window);
        w.lostPc = w.conclave.pc;
      });
    }

    // Note the media state at each announcement: "Reconnected." must wait for media.
    for (const p of ps) {
      await p.page.evaluate(() => {
        const w = /** @type {any} */ (window);
        w.announcements = [];
        const region = document.getElementById('announcer');
        if (!region) throw new Error('no announcer');
        new MutationObserver(() => {
          w.announcements.push({ text: region.textContent ?? '', media: w.conclave?.pc?.connectionState ?? null });
        }).observe(region, { childList: true, characterData: true, subtree: true });
      });
    }

    await server.kill();
    earlierLogs += server.log();

    // Both pages show that they lost the connection and are trying again; the live region
    // said so.
    for (const p of ps) {
      const seen = await waitFor(`${p.label} to show the reconnecting state`, async () => {
        const s = await connectionState(p);
        return s.state === 'reconnecting' && s.banner?.includes('Reconnecting') ? s : null;
      });
      assert.match(seen.announced, /The connection was lost\. Reconnecting…/);
      // The meeting stays on screen meanwhile, with the own devices as they were.
      await p.page.getByRole('button', { name: 'Leave', exact: true }).waitFor({ state: 'visible' });
    }

    server = await restartServer(server);

    const [adaNew, bobNew] = await Promise.all([newParticipantId(ada, adaId), newParticipantId(bob, bobId)]);
    for (const p of ps) {
      await waitFor(`${p.label} to show the connected state again`, async () => {
        const s = await connectionState(p);
        return s.state === 'connected' && s.banner === null && s.announced.includes('Reconnected.');
      }, { timeout: RECONNECT_WAIT_MS });
      const fresh = await p.page.evaluate(() => {
        const w = /** @type {any} */ (window);
        return { newPc: w.conclave.pc !== w.lostPc, oldClosed: w.lostPc.connectionState === 'closed' };
      });
      assert.deepEqual(fresh, { newPc: true, oldClosed: true }, `${p.label} uses a new peer connection`);
      const said = await p.page.evaluate(() => /** @type {any} */ (window).announcements);
      const back = said.filter((/** @type {{text: string}} */ a) => a.text.includes('Reconnected.'));
      assert.ok(back.length > 0, `${p.label} announced "Reconnected."`);
      for (const a of back) assert.equal(a.media, 'connected', `${p.label} said "Reconnected." only with media connected: ${JSON.stringify(said)}`);
      for (const name of ['Camera', 'Microphone']) {
        assert.equal(
          await p.page.getByRole('button', { name, exact: true }).getAttribute('aria-pressed'),
          'true',
          `${p.label}: ${name} is still on`,
        );
      }
    }

    // Each decodes the other's video again (growing frame counts), on the new connection.
    await Promise.all([expectMediaFrom(ada, [bobNew]), expectMediaFrom(bob, [adaNew])]);
    for (const [p, other] of /** @type {const} */ ([[ada, bobNew], [bob, adaNew]])) {
      // One tile for the other one: the tile from before the loss was replaced, not doubled.
      const tiles = await p.page.locator('.tile[data-participant-id]').evaluateAll((els) =>
        els.map((el) => /** @type {HTMLElement} */ (el).dataset.participantId),
      );
      assert.deepEqual(tiles, [other], `${p.label} shows exactly the other's tile`);
      await expectNoAlert(p);
    }
  });
});
