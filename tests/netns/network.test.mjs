// Meetings across a real (virtual) network: browsers in the client namespace, the server in
// the server namespace on 10.77.0.1:443 (tests/netns/run.sh sets them up).
//
// - direct: UDP open, media goes straight to the media port (host candidate pair);
// Chromium and Firefox (stock prefs) in each.
//
// - only TCP 443 open (nft drops everything else to the server): the meeting works through
//   TURN on the HTTPS port (plain TCP here: Chromium checks a TURN server's certificate, and
//   the test server's is self-signed);
// - [network] relay_only: the pages use relay candidates only;
// - a bad link (5 % of packets dropped at random each way, and 50 ms ± 20 ms delay each way):
//   three pages still decode each other. (This kernel has no netem: nft drops, and
//   delay.py delays through NFQUEUE; see netns.mjs.)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cameraAndMicrophoneOnFirefox, joinFirefox, launchFirefox, openFirefoxParticipant } from '../e2e/firefox.mjs';
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
} from '../e2e/helpers.mjs';
import {
  SERVER_IP,
  clearFirewall,
  clearLoss,
  delayOnLink,
  droppedPackets,
  icePath,
  loseOnLink,
  lostPackets,
  netnsServer,
  onlyTcp443,
} from './netns.mjs';

/** @type {import('../e2e/server.mjs').RunningServer | undefined} */
let server;
/** @type {import('playwright-core').Browser | undefined} */
let browser;
/** @type {import('puppeteer-core').Browser | undefined} */
let firefox;

before(async () => {
  server = await netnsServer();
  browser = await launchBrowser();
  // Stock prefs: no loopback candidates needed here.
  firefox = await launchFirefox({ loopback: false });
});
after(async () => {
  clearFirewall();
  clearLoss();
  await browser?.close();
  await firefox?.close();
  await server?.stop();
});

/**
 * Pages join one room on `srv`, turn camera and microphone on, and each decodes all others.
 * A label starting with "f" is a Firefox page, any other a Chromium page.
 * @param {import('../e2e/server.mjs').RunningServer} srv
 * @param {import('playwright-core').Browser} br
 * @param {import('../e2e/helpers.mjs').Participant[]} ps
 * @param {string[]} labels
 */
async function meet(srv, br, ps, labels) {
  const url = `${srv.url}/r/${randomRoomId()}`;
  const isFirefox = (/** @type {string} */ label) => label.startsWith('f');
  for (const label of labels) {
    ps.push(isFirefox(label) ? await openFirefoxParticipant(/** @type {any} */ (firefox), url, { label }) : await openParticipant(br, url, { label }));
  }
  /** @type {string[]} */
  const ids = [];
  for (const p of ps) ids.push(await (isFirefox(p.label) ? joinFirefox(p) : joinMeeting(p)));
  await Promise.all(ps.map((p) => (isFirefox(p.label) ? cameraAndMicrophoneOnFirefox(p) : setToggles(p, ['Camera', 'Microphone'], true))));
  await Promise.all(ps.map((p, i) => expectMediaFrom(p, ids.filter((_, j) => j !== i))));
  return ids;
}

/**
 * The selected candidate pair of `p`, once there is one.
 * @param {import('../e2e/helpers.mjs').Participant} p
 */
async function selected(p) {
  const path = await waitFor(`${p.label} to select a candidate pair`, async () => {
    const s = await icePath(p);
    return s.selected ? s : null;
  });
  return /** @type {NonNullable<typeof path.selected>} */ (path.selected);
}

test('UDP open: media goes directly to the media port over UDP', { timeout: TEST_TIMEOUT_MS }, async () => {
  assert.ok(server && browser);
  const srv = server;
  await withParticipants('netns-direct', srv, async (ps) => {
    await meet(srv, /** @type {any} */ (browser), ps, ['dora', 'dan']);
    for (const p of ps) {
      const pair = await selected(p);
      assert.equal(pair.local.type !== 'relay', true, `${p.label}: no relay needed: ${JSON.stringify(pair)}`);
      assert.equal(pair.local.protocol, 'udp');
      assert.equal(pair.remote.address, SERVER_IP);
    }
  });
});

test('only TCP 443 open: Chromium and Firefox meet through TURN on the HTTPS port', { timeout: TEST_TIMEOUT_MS }, async () => {
  assert.ok(server && browser);
  const srv = server;
  onlyTcp443();
  try {
    await withParticipants('netns-tcp443', srv, async (ps) => {
      try {
        await meet(srv, /** @type {any} */ (browser), ps, ['tina', 'fritz']);
      } catch (e) {
        for (const p of ps) console.error(p.label, JSON.stringify(await icePath(p)));
        throw e;
      }
      for (const p of ps) {
        const pair = await selected(p);
        assert.equal(pair.local.type, 'relay', `${p.label} relays: ${JSON.stringify(pair)}`);
        // TLS with a certificate the browser trusts; TCP with this self-signed one. (Firefox
        // does not report relayProtocol; the firewall leaves it nothing but TCP 443.)
        if (pair.local.relayProtocol !== null || !p.label.startsWith('f')) {
          assert.ok(['tcp', 'tls'].includes(String(pair.local.relayProtocol)), `${p.label} reaches the relay by TCP 443: ${JSON.stringify(pair)}`);
        }
      }
      assert.ok(droppedPackets() > 0, 'the firewall dropped the direct attempts');
    });
  } finally {
    clearFirewall();
  }
});

test('relay_only: Chromium and Firefox use relay candidates only', { timeout: TEST_TIMEOUT_MS }, async () => {
  assert.ok(server && browser);
  // Its own server, on the same address: stop the shared one meanwhile.
  await server.stop();
  server = undefined;
  const relayOnly = await netnsServer({ env: { CONCLAVE_NETWORK__RELAY_ONLY: 'true' } });
  try {
    await withParticipants('netns-relay-only', relayOnly, async (ps) => {
      await meet(relayOnly, /** @type {any} */ (browser), ps, ['rita', 'frank']);
      for (const p of ps) {
        const pair = await selected(p);
        assert.equal(pair.local.type, 'relay', `${p.label}: ${JSON.stringify(pair)}`);
        const path = await icePath(p);
        const types = [...new Set(path.local.map((c) => c.type))];
        assert.deepEqual(types, ['relay'], `${p.label} gathered only relay candidates`);
        const policy = await p.page.evaluate(() => /** @type {any} */ (window).conclave.pc.getConfiguration().iceTransportPolicy);
        assert.equal(policy, 'relay');
      }
    });
  } finally {
    await relayOnly.stop();
    server = await netnsServer();
  }
});

test('a bad link (5 % loss, 50 ms ± 20 ms delay each way): two Chromium and one Firefox page decode each other', { timeout: TEST_TIMEOUT_MS }, async () => {
  assert.ok(server && browser);
  const srv = server;
  loseOnLink(5);
  const delay = await delayOnLink({ delayMs: 50, jitterMs: 20 });
  try {
    await withParticipants('netns-loss', srv, async (ps) => {
      await meet(srv, /** @type {any} */ (browser), ps, ['lea', 'lars', 'flora']);
      assert.ok(lostPackets() > 0, 'the link lost packets');
      // The delay is in effect: packets went through delay.py, and the pages' connectivity
      // checks see a round trip of at least the minimum delay both ways (2 × 30 ms).
      for (const p of ps) {
        const pair = await selected(p);
        console.log(`${p.label}: round trip ${pair.rtt === null ? 'not reported' : `${Math.round(pair.rtt * 1000)} ms`}`);
        if (pair.rtt !== null) assert.ok(pair.rtt >= 0.06, `${p.label} sees the delayed link: ${JSON.stringify(pair)}`);
      }
    });
  } finally {
    const stats = await delay.stop();
    clearLoss();
    console.log(`delay.py: ${stats.delayed} packets delayed by ${stats.mean_delay_ms.toFixed(1)} ms on average, ${stats.overruns} queue overruns`);
    assert.ok(stats.delayed > 1000, `the link delayed the meeting's packets: ${JSON.stringify(stats)}`);
  }
});
