// Shared pieces of the browser tests: launching Chromium, one participant per browser
// context, UI actions, and bounded polling on RTCPeerConnection.getStats().
//
// Every wait here has a timeout: a test fails with a message saying what it waited for and
// what it saw last, it never hangs. Tests assert what happened, never how fast.

import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import { chromium, request } from 'playwright-core';
import { startServer } from './server.mjs';

/** The default bound of every wait. */
export const WAIT_MS = 20_000;

/** The bound of one whole test (several waits in a row). */
export const TEST_TIMEOUT_MS = 180_000;

/** Where tests leave screenshots and logs (ignored by git). */
export const ARTIFACTS_DIR = resolve(fileURLToPath(new URL('.', import.meta.url)), 'artifacts');

/** Chromium flags for headless media tests (see shared testing notes). */
export const CHROMIUM_ARGS = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
  '--autoplay-policy=no-user-gesture-required',
  '--disable-quic',
];

/** @param {number} ms */
export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Reject if `promise` does not settle within `ms`.
 * @template T
 * @param {Promise<T>} promise
 * @param {number} ms
 * @param {string} what
 * @returns {Promise<T>}
 */
export function withTimeout(promise, ms, what) {
  /** @type {NodeJS.Timeout | undefined} */
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Poll `probe` until it returns a truthy value, and return that value. Fails after `timeout`
 * with `what` and the last value seen.
 * @template T
 * @param {string} what
 * @param {() => Promise<T> | T} probe
 * @param {{timeout?: number, interval?: number}} [options]
 * @returns {Promise<T>}
 */
export async function waitFor(what, probe, { timeout = WAIT_MS, interval = 250 } = {}) {
  const deadline = Date.now() + timeout;
  /** @type {unknown} */
  let last;
  /** @type {unknown} */
  let lastError;
  for (;;) {
    try {
      const value = await withTimeout(
        Promise.resolve(probe()),
        Math.max(1000, deadline - Date.now()),
        what,
      );
      if (value) return value;
      last = value;
      lastError = undefined;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const seen = lastError ? `last error: ${lastError}` : `last value: ${JSON.stringify(last)}`;
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; ${seen}`);
    }
    await sleep(interval);
  }
}

/**
 * Launch headless Chromium with fake devices. With `fakeUi: false` the browser does not
 * auto-accept camera and microphone requests: a context without those permissions is
 * refused (NotAllowedError), as when a user blocks them.
 * @param {{fakeUi?: boolean}} [options]
 * @returns {Promise<import('playwright-core').Browser>}
 */
export function launchBrowser({ fakeUi = true } = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN || '/usr/bin/chromium',
    headless: true,
    args: [
      ...(fakeUi ? CHROMIUM_ARGS : CHROMIUM_ARGS.filter((a) => a !== '--use-fake-ui-for-media-stream')),
      // See serveWebFromDisk: pages answered from disk must still reach the loopback server.
      ...(process.env.E2E_WEB_DIR ? ['--disable-features=LocalNetworkAccessChecks'] : []),
    ],
    timeout: WAIT_MS,
  });
}

/**
 * @typedef {object} Suite
 * @property {import('./server.mjs').RunningServer} server
 * @property {import('playwright-core').Browser} browser
 */

/**
 * One server and one browser for all tests of a file: started before the first test,
 * stopped after the last. Read `suite.server` and `suite.browser` inside a test.
 * @returns {Suite}
 */
export function serverAndBrowser() {
  /** @type {import('./server.mjs').RunningServer | undefined} */
  let server;
  /** @type {import('playwright-core').Browser | undefined} */
  let browser;
  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    await warnIfWebIsStale(server.url);
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });
  return {
    get server() {
      if (!server) throw new Error('the server did not start');
      return server;
    },
    get browser() {
      if (!browser) throw new Error('the browser did not start');
      return browser;
    },
  };
}

const webDir = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'web');

/**
 * Say so when the server embeds other web files than web/ holds (a release binary built
 * before the last client change) and E2E_WEB_DIR does not stand in for them: the tests would
 * run the old client.
 * @param {string} url
 */
async function warnIfWebIsStale(url) {
  if (process.env.E2E_WEB_DIR) return;
  const api = await request.newContext({ ignoreHTTPSErrors: true, baseURL: url });
  try {
    /** @type {string[]} */
    const stale = [];
    for (const file of await readdir(webDir)) {
      if (!contentTypes[extname(file)]) continue;
      const served = await api.get(`/${file}`);
      const local = await readFile(join(webDir, file));
      if (!served.ok() || !local.equals(await served.body())) stale.push(file);
    }
    if (stale.length > 0) {
      console.error(
        `warning: the server binary embeds other versions of web/${stale.join(', web/')}; ` +
          'rebuild it (cargo build --release) or set E2E_WEB_DIR=web',
      );
    }
  } finally {
    await api.dispose();
  }
}

/**
 * @typedef {object} Participant
 * @property {string} label A name for logs (also the display name they join with).
 * @property {import('playwright-core').BrowserContext} context
 * @property {import('playwright-core').Page} page
 * @property {string[]} logs Console output and page errors of the page.
 */

/**
 * @typedef {object} ParticipantOptions
 * @property {string} label
 * @property {string} [locale] Browser language, default en-US.
 * @property {string[]} [permissions] Default: camera and microphone granted.
 * @property {{width: number, height: number}} [viewport] Default 1280×720.
 * @property {boolean} [phone] Emulate a phone (mobile viewport, touch).
 * @property {(context: import('playwright-core').BrowserContext) => Promise<void> | void} [beforeOpen]
 *   Runs on the new context before the page opens (e.g. to record its requests).
 */

/**
 * A new browser context (its own cookies, devices and peer connection) on `url`.
 * @param {import('playwright-core').Browser} browser
 * @param {string} url
 * @param {ParticipantOptions} options
 * @returns {Promise<Participant>}
 */
export async function openParticipant(browser, url, options) {
  const {
    label,
    locale = 'en-US',
    permissions = ['camera', 'microphone'],
    viewport = { width: 1280, height: 720 },
    phone = false,
    beforeOpen,
  } = options;
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    locale,
    permissions,
    viewport,
    ...(phone ? { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } : {}),
  });
  await beforeOpen?.(context);
  context.setDefaultTimeout(WAIT_MS);
  await serveWebFromDisk(context);
  const page = await context.newPage();
  /** @type {string[]} */
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  page.on('websocket', (ws) => {
    ws.on('framesent', (f) => logs.push(`ws> ${String(f.payload)}`));
    ws.on('framereceived', (f) => logs.push(`ws< ${String(f.payload)}`));
    ws.on('close', () => logs.push('ws closed'));
  });
  await page.goto(url);
  return { label, context, page, logs };
}

const contentTypes = /** @type {Record<string, string>} */ ({
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
});

/**
 * With E2E_WEB_DIR set (e.g. to web/), answer the page (index.html), its scripts and styles
 * from that folder instead of the copy embedded in a release binary, so client changes need
 * no rebuild. The server still answers every request first (its status and headers, CSP
 * included, are kept; a file it does not embed yet gets 200 from disk).
 *
 * A document fulfilled by the test has no loopback address space, so Chromium's local
 * network access checks would block its WebSocket to 127.0.0.1: `launchBrowser` turns those
 * checks off, only when E2E_WEB_DIR is set.
 * @param {import('playwright-core').BrowserContext} context
 */
async function serveWebFromDisk(context) {
  const dir = process.env.E2E_WEB_DIR;
  if (!dir) return;
  await context.route(/^https:\/\/127\.0\.0\.1:\d+\/(?!ws$)/, async (route) => {
    const path = new URL(route.request().url()).pathname;
    const isPage = path === '/' || /^\/r\/[^/]*\/?$/.test(path);
    if (route.request().isNavigationRequest() && !isPage) return route.continue();
    const file = isPage ? 'index.html' : path.slice(1);
    const type = contentTypes[extname(file)];
    if (!type || file.includes('..')) return route.continue();
    const response = await route.fetch();
    const body = await readFile(join(dir, file)).catch(() => null);
    if (!body) return route.fulfill({ response });
    const headers = { ...response.headers(), 'content-type': type };
    delete headers['content-length'];
    // A file the binary does not embed yet answers 404 there; from disk it exists.
    await route.fulfill({ response, status: 200, body, headers });
  });
}

/**
 * A random room ID of 22 base64url characters.
 * @returns {string}
 */
export function randomRoomId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Buffer.from(bytes).toString('base64url');
}

/**
 * Type the name, click Join (or another join button), and wait until the meeting shows.
 * Returns the participant ID.
 * @param {Participant} p
 * @param {{join?: string, leave?: string, name?: string}} [labels]
 * @returns {Promise<string>}
 */
export async function joinMeeting(p, labels = {}) {
  const { page } = p;
  await page.getByLabel(labels.name ?? 'Name', { exact: true }).fill(p.label);
  await page.getByRole('button', { name: labels.join ?? 'Join', exact: true }).click();
  await page
    .getByRole('button', { name: labels.leave ?? 'Leave', exact: true })
    .waitFor({ state: 'visible', timeout: WAIT_MS });
  return participantId(p);
}

/**
 * Wait until `p` is in a meeting, and return its participant ID.
 * @param {Participant} p
 * @returns {Promise<string>}
 */
export function participantId(p) {
  return waitFor(`${p.label} to have a participant ID and a peer connection`, () =>
    p.page.evaluate(() => {
      const c = /** @type {any} */ (window).conclave;
      return c && c.pc && c.session && c.session.id ? String(c.session.id) : null;
    }),
  );
}

/**
 * Click toggles ("Microphone", "Camera") that are not yet in state `on`, one click right
 * after the other without waiting for the page to finish acting on them (one page has one
 * mouse: concurrent clicks on one page would interleave their mouse events), then wait
 * until the page reports every toggle in that state.
 * @param {Participant} p
 * @param {string[]} labels
 * @param {boolean} on
 */
export async function setToggles(p, labels, on) {
  const buttons = labels.map((label) => p.page.getByRole('button', { name: label, exact: true }));
  for (const button of buttons) {
    if ((await button.getAttribute('aria-pressed')) !== String(on)) await button.click();
  }
  await waitFor(`${p.label}: ${labels.join(' and ')} to be ${on ? 'on' : 'off'}`, async () => {
    for (const button of buttons) {
      if ((await button.getAttribute('aria-pressed')) !== String(on)) return false;
    }
    return true;
  });
}

/**
 * Set one toggle and wait until the page reports it in that state.
 * @param {Participant} p
 * @param {string} label
 * @param {boolean} on
 */
export function setToggle(p, label, on) {
  return setToggles(p, [label], on);
}

/**
 * @typedef {object} InboundStream
 * @property {string} id
 * @property {string} kind
 * @property {string | null} mid
 * @property {string | null} participant Publisher, from the session's mid → track map.
 * @property {string | null} source
 * @property {number} framesDecoded
 * @property {number} packetsReceived
 */

/**
 * The inbound-rtp stats of a participant's peer connection, each mapped to its publisher.
 * @param {Participant} p
 * @returns {Promise<InboundStream[]>}
 */
export async function inboundStreams(p) {
  return p.page.evaluate(async () => {
    const c = /** @type {any} */ (window).conclave;
    /** @type {RTCPeerConnection | undefined} */
    const pc = c?.pc;
    if (!pc) return [];
    /** @type {Record<string, {participant: string, source: string}>} */
    const trackMap = c.session.trackMap;
    /** @type {Map<string, string>} */
    const midByTrackId = new Map();
    for (const t of pc.getTransceivers()) {
      if (t.mid !== null) midByTrackId.set(t.receiver.track.id, t.mid);
    }
    const report = await pc.getStats();
    /** @type {any[]} */
    const out = [];
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      const mid = s.mid ?? midByTrackId.get(s.trackIdentifier) ?? null;
      const info = mid !== null ? trackMap[mid] : undefined;
      out.push({
        id: s.id,
        kind: s.kind,
        mid,
        participant: info?.participant ?? null,
        source: info?.source ?? null,
        framesDecoded: s.framesDecoded ?? 0,
        packetsReceived: s.packetsReceived ?? 0,
      });
    });
    return out;
  });
}

/**
 * The outbound-rtp stats of a participant's peer connection (what it sends).
 * @param {Participant} p
 * @returns {Promise<{kind: string, mid: string | null, packetsSent: number}[]>}
 */
export async function outboundStreams(p) {
  return p.page.evaluate(async () => {
    /** @type {RTCPeerConnection | undefined} */
    const pc = /** @type {any} */ (window).conclave?.pc;
    if (!pc) return [];
    const report = await pc.getStats();
    /** @type {{kind: string, mid: string | null, packetsSent: number}[]} */
    const out = [];
    report.forEach((s) => {
      if (s.type === 'outbound-rtp') {
        out.push({ kind: s.kind, mid: s.mid ?? null, packetsSent: s.packetsSent ?? 0 });
      }
    });
    return out;
  });
}

/**
 * Wait until `p` decodes video from every one of `others` and the frame counts keep
 * growing, receives audio from every one of them, and shows their video in their tiles.
 * @param {Participant} p
 * @param {string[]} others Participant IDs.
 */
export async function expectMediaFrom(p, others) {
  const want = new Set(others);
  /** @param {InboundStream[]} streams @param {string} kind @param {(s: InboundStream) => boolean} ok */
  const covering = (streams, kind, ok) => {
    const byParticipant = new Map();
    for (const s of streams) {
      if (s.kind === kind && s.participant && want.has(s.participant) && ok(s)) {
        byParticipant.set(s.participant, s);
      }
    }
    return byParticipant.size === want.size ? [...byParticipant.values()] : null;
  };

  const video = await waitFor(
    `${p.label} to decode video from ${others.length} others (${others.join(', ')})`,
    async () => covering(await inboundStreams(p), 'video', (s) => s.framesDecoded > 0),
  );
  const ids = new Set(video.map((s) => s.id));
  if (ids.size !== others.length) {
    throw new Error(`${p.label}: expected ${others.length} distinct video streams, got ${[...ids]}`);
  }
  const before = new Map(video.map((s) => [s.id, s.framesDecoded]));
  await sleep(2000);
  await waitFor(`${p.label}: decoded video frames to keep growing`, async () => {
    const now = await inboundStreams(p);
    return [...before].every(([id, frames]) => {
      const s = now.find((x) => x.id === id);
      return s !== undefined && s.framesDecoded > frames;
    });
  });

  const audio = await waitFor(
    `${p.label} to receive audio from ${others.length} others`,
    async () => covering(await inboundStreams(p), 'audio', (s) => s.packetsReceived > 0),
  );
  if (new Set(audio.map((s) => s.id)).size !== others.length) {
    throw new Error(`${p.label}: expected ${others.length} distinct audio streams`);
  }

  for (const id of others) {
    await waitFor(`${p.label}: the tile of ${id} to play video`, () =>
      p.page.evaluate((pid) => {
        const v = document.querySelector(`.tile[data-participant-id="${pid}"] video`);
        return v instanceof HTMLVideoElement && !v.hidden && v.videoWidth > 0;
      }, id),
    );
  }
}

/**
 * Wait until the tile of `id` is gone from `p`'s page.
 * @param {Participant} p
 * @param {string} id
 */
export async function expectTileGone(p, id) {
  await p.page
    .locator(`[data-participant-id="${id}"]`)
    .waitFor({ state: 'detached', timeout: WAIT_MS });
}

/**
 * Fail if the page shows an error alert.
 * @param {Participant} p
 */
export async function expectNoAlert(p) {
  const alert = p.page.getByRole('alert');
  if ((await alert.count()) > 0 && (await alert.first().isVisible())) {
    throw new Error(`${p.label} shows an alert: ${await alert.first().textContent()}`);
  }
}

/**
 * Save screenshots, page logs and the server log under tests/e2e/artifacts/<name>/.
 * @param {string} name
 * @param {Participant[]} participants
 * @param {{log: () => string} | undefined} server
 */
export async function saveArtifacts(name, participants, server) {
  const dir = join(ARTIFACTS_DIR, name.replace(/[^A-Za-z0-9_-]+/g, '_'));
  await mkdir(dir, { recursive: true });
  for (const p of participants) {
    await writeFile(join(dir, `${p.label}.log`), p.logs.join('\n') + '\n');
    try {
      await withTimeout(p.page.screenshot({ path: join(dir, `${p.label}.png`) }), 5000, 'screenshot');
    } catch {
      // A crashed page has no screenshot; the log is what matters.
    }
  }
  if (server) await writeFile(join(dir, 'server.log'), server.log());
  return dir;
}

/**
 * Run `body` with the participants it opens; on failure (or always, with
 * E2E_ARTIFACTS=always) save artifacts; always close them.
 * @param {string} name
 * @param {{log: () => string} | undefined} server
 * @param {(participants: Participant[]) => Promise<void>} body
 */
export async function withParticipants(name, server, body) {
  /** @type {Participant[]} */
  const participants = [];
  try {
    await body(participants);
    if (process.env.E2E_ARTIFACTS === 'always') await saveArtifacts(name, participants, server);
  } catch (e) {
    const dir = await saveArtifacts(name, participants, server).catch(() => null);
    if (dir) console.error(`artifacts of failed test "${name}": ${dir}`);
    throw e;
  } finally {
    for (const p of participants) await p.context.close().catch(() => {});
  }
}
