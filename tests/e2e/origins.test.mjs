// No third-party requests: during a whole meeting — landing page, new meeting, copy link,
// two people with camera and microphone, leave — every request the browser makes goes to
// the Conclave server's origin, and media flows only to the server's address.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS,
  expectMediaFrom,
  expectNoAlert,
  expectTileGone,
  joinMeeting,
  openParticipant,
  serverAndBrowser,
  setToggles,
  withParticipants,
} from './helpers.mjs';

const suite = serverAndBrowser();

test('every request of a full meeting goes to the Conclave origin', { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const srv = suite.server;
  const br = suite.browser;
  const origin = new URL(srv.url).origin;
  const host = new URL(srv.url).host;
  /** @type {{via: string, who: string, url: string}[]} */
  const seen = [];

  /**
   * Record every request of a context and its pages, and every WebSocket.
   * @param {string} who
   * @param {import('playwright-core').BrowserContext} context
   */
  const record = (who, context) => {
    context.on('request', (r) => seen.push({ via: 'context', who, url: r.url() }));
    context.on('page', (page) => {
      page.on('request', (r) => seen.push({ via: 'page', who, url: r.url() }));
      page.on('websocket', (ws) => seen.push({ via: 'websocket', who, url: ws.url() }));
    });
    context.on('serviceworker', (w) => seen.push({ via: 'serviceworker', who, url: w.url() }));
  };

  await withParticipants('origins', srv, async (ps) => {
    const ruth = await openParticipant(br, `${srv.url}/`, {
      label: 'ruth',
      permissions: ['camera', 'microphone', 'clipboard-read', 'clipboard-write'],
      beforeOpen: (context) => record('ruth', context),
    });
    ps.push(ruth);
    await ruth.page.getByRole('button', { name: 'New meeting', exact: true }).click();
    await ruth.page.getByRole('button', { name: 'Copy link', exact: true }).click();
    const roomUrl = await ruth.page.getByRole('textbox', { name: 'Meeting link', exact: true }).inputValue();
    await ruth.page.getByRole('link', { name: 'Go to the meeting', exact: true }).click();
    await ruth.page.waitForURL(roomUrl);

    const sam = await openParticipant(br, roomUrl, {
      label: 'sam',
      beforeOpen: (context) => record('sam', context),
    });
    ps.push(sam);

    const ids = [await joinMeeting(ruth), await joinMeeting(sam)];
    await Promise.all([ruth, sam].map((p) => setToggles(p, ['Camera', 'Microphone'], true)));
    await Promise.all([expectMediaFrom(ruth, [ids[1]]), expectMediaFrom(sam, [ids[0]])]);
    for (const p of ps) await expectNoAlert(p);

    // Media too goes only to the server: no STUN or TURN server elsewhere, and every remote
    // ICE candidate is the server's own address.
    for (const p of ps) {
      const ice = await p.page.evaluate(async () => {
        /** @type {RTCPeerConnection} */
        const pc = /** @type {any} */ (window).conclave.pc;
        const report = await pc.getStats();
        /** @type {string[]} */
        const remote = [];
        report.forEach((s) => {
          if (s.type === 'remote-candidate') remote.push(String(s.address ?? s.ip));
        });
        return { servers: pc.getConfiguration().iceServers ?? [], remote };
      });
      // Only this server's own STUN/TURN (from `joined`), never anyone else's.
      const urls = ice.servers.flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]));
      assert.ok(urls.length > 0, `${p.label} got the server's STUN/TURN`);
      const ownHost = new URL(srv.url).hostname;
      for (const u of urls) {
        const m = /^(stun|turns?):([^:?]+):\d+(\?transport=(udp|tcp))?$/.exec(u);
        assert.ok(m, `${p.label}: ICE server URL ${u}`);
        assert.equal(m[2], ownHost, `${p.label}: ICE server ${u} is this server`);
      }
      assert.ok(ice.remote.length > 0, `${p.label} has remote ICE candidates`);
      for (const address of ice.remote) assert.equal(address, '127.0.0.1', `${p.label}: remote candidate`);
    }

    await sam.page.getByRole('button', { name: 'Leave', exact: true }).click();
    await expectTileGone(ruth, ids[1]);
    await ruth.page.getByRole('button', { name: 'Leave', exact: true }).click();
    await ruth.page.getByRole('button', { name: 'Join', exact: true }).waitFor({ state: 'visible' });
  });

  const foreign = seen.filter(({ via, url }) => {
    const u = new URL(url);
    if (u.protocol === 'data:' || u.protocol === 'blob:') return false;
    if (via === 'websocket') return !(u.protocol === 'wss:' && u.host === host && u.pathname === '/ws');
    return u.origin !== origin;
  });
  assert.deepEqual(foreign, [], 'requests to anything but the Conclave origin');
  // The recording worked: pages, scripts, styles and the signalling sockets were seen.
  for (const who of ['ruth', 'sam']) {
    const urls = seen.filter((s) => s.who === who).map((s) => s.url);
    assert.ok(urls.some((u) => u.endsWith('/app.js')), `${who}: app.js was recorded`);
    assert.ok(urls.some((u) => u.endsWith('/style.css')), `${who}: style.css was recorded`);
    assert.ok(
      seen.some((s) => s.who === who && s.via === 'websocket'),
      `${who}: the signalling WebSocket was recorded`,
    );
  }
  assert.ok(seen.some((s) => s.via === 'page'), 'page-level requests were recorded');
  const distinct = [...new Set(seen.map((s) => `${s.via} ${new URL(s.url).pathname}`))].sort();
  t.diagnostic(`${seen.length} requests recorded, all to ${origin}: ${distinct.join(', ')}`);
});
