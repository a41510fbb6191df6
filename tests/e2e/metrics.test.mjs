// A scrape of /metrics during a three-person meeting of real browsers, parsed with the
// reference OpenMetrics parser (Debian's python3-prometheus-client), shows the participants
// and packet counters that grow between two scrapes.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'playwright-core';
import {
  TEST_TIMEOUT_MS,
  expectMediaFrom,
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

const KEY = 'metrics-test-key-'.padEnd(40, 'x');

/** @type {import('./server.mjs').RunningServer | undefined} */
let server;
/** @type {import('playwright-core').Browser | undefined} */
let browser;
/** @type {string | undefined} */
let keyDir;

before(async () => {
  keyDir = await mkdtemp(join(tmpdir(), 'conclave-metrics-'));
  const keyFile = join(keyDir, 'metrics.key');
  await writeFile(keyFile, `${KEY}\n`, { mode: 0o600 });
  server = await startServer({ env: { CONCLAVE_METRICS__KEY_FILE: keyFile } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (keyDir) await rm(keyDir, { recursive: true, force: true });
});

/**
 * Scrape /metrics with the bearer key and parse it with prometheus_client's OpenMetrics
 * parser. Returns sample name → value (samples without labels; the first one of a name).
 * @param {string} url
 * @returns {Promise<Map<string, number>>}
 */
async function scrape(url) {
  const api = await request.newContext({ ignoreHTTPSErrors: true, baseURL: url });
  try {
    const r = await api.get('/metrics', { headers: { authorization: `Bearer ${KEY}` } });
    assert.equal(r.status(), 200);
    const body = await r.text();
    // The parser raises on anything that is not valid OpenMetrics (it also requires # EOF).
    const out = execFileSync(
      '/usr/bin/python3',
      [
        '-c',
        `import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
samples = [(s.name, s.value) for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]
print(json.dumps(samples))`,
      ],
      { input: body, encoding: 'utf8' },
    );
    /** @type {Map<string, number>} */
    const m = new Map();
    for (const [name, value] of /** @type {[string, number][]} */ (JSON.parse(out))) {
      if (!m.has(name)) m.set(name, value);
    }
    return m;
  } finally {
    await api.dispose();
  }
}

/**
 * @param {Map<string, number>} m
 * @param {string} name
 */
function sample(m, name) {
  const v = m.get(name);
  assert.ok(v !== undefined, `${name} missing from the scrape: ${[...m.keys()].join(', ')}`);
  return v;
}

test('a scrape during a three-person meeting shows the participants and growing packet counters', { timeout: TEST_TIMEOUT_MS }, async () => {
  if (!server || !browser) throw new Error('the server or the browser did not start');
  const srv = server;
  const br = browser;
  const empty = await scrape(srv.url);
  assert.equal(sample(empty, 'conclave_participants'), 0);

  await withParticipants('metrics', srv, async (ps) => {
    const room = `${srv.url}/r/${randomRoomId()}`;
    ps.push(
      ...(await Promise.all(['ida', 'jon', 'kai'].map((label) => openParticipant(br, room, { label })))),
    );
    const ids = [];
    for (const p of ps) ids.push(await joinMeeting(p));
    await Promise.all(ps.map((p) => setToggles(p, ['Camera', 'Microphone'], true)));
    await Promise.all(ps.map((p, i) => expectMediaFrom(p, ids.filter((_, j) => j !== i))));

    const first = await scrape(srv.url);
    assert.equal(sample(first, 'conclave_rooms'), 1);
    assert.equal(sample(first, 'conclave_participants'), 3);
    assert.equal(sample(first, 'conclave_media_participants'), 3);
    assert.equal(sample(first, 'conclave_media_connected'), 3);
    assert.ok(sample(first, 'conclave_media_rtp_forwarded_total') > 0);
    assert.ok(sample(first, 'conclave_process_resident_memory_bytes') > 0);

    // Media keeps flowing: the next scrape counts more packets and bytes.
    await sleep(2_000);
    const second = await scrape(srv.url);
    for (const name of [
      'conclave_media_rtp_received_total',
      'conclave_media_rtp_forwarded_total',
      'conclave_media_bytes_sent_total',
      'conclave_media_datagrams_sent_total',
    ]) {
      assert.ok(
        sample(second, name) > sample(first, name),
        `${name} did not grow: ${sample(first, name)} then ${sample(second, name)}`,
      );
    }
    assert.equal(sample(second, 'conclave_participants'), 3);
    // Loss and RTT as the SFU sees them arrive with str0m's peer stats (every 5 s).
    await waitFor('RTT in the scrape', async () => ((await scrape(srv.url)).has('conclave_media_rtt_max_seconds') ? true : null), { timeout: 15_000 });
  });
});
