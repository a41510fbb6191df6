// Three browsers meet in one room through the UI and each sees and hears the two others,
// asserted on RTCPeerConnection.getStats(). Once one after another, once all at the same
// moment (the case a naive renegotiation design breaks on).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './server.mjs';
import {
  TEST_TIMEOUT_MS,
  expectMediaFrom,
  expectNoAlert,
  expectTileGone,
  joinMeeting,
  launchBrowser,
  openParticipant,
  setToggle,
  setToggles,
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
  assert.ok(server && browser);
  const srv = server;
  const br = browser;
  await withParticipants('sequential', srv, async (ps) => {
    // The first one creates the meeting from the home page; the others follow its link.
    const first = await openParticipant(br, `${srv.url}/`, { label: 'alice' });
    ps.push(first);
    await first.page.getByRole('button', { name: 'New meeting', exact: true }).click();
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
  assert.ok(server && browser);
  const srv = server;
  const br = browser;
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
