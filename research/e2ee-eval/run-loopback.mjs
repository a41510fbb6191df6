// Drives web/loopback.html in Debian's headless Chromium and prints one JSON line per scenario.
// Usage: node run-loopback.mjs [scenario ...]   (default: all)
// Scenarios: caps, right-script, right-streams, wrong-drop, wrong-pass, none, late, rotate,
//            codec-default, noe2ee, bench
import { chromium } from 'playwright-core';
import { startServer } from './server.mjs';

const HOLD_MS = Number(process.env.HOLD_MS || 6000);
const server = await startServer(0);
const base = `http://localhost:${server.address().port}/web/loopback.html`;
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium', headless: true,
  args: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--allow-loopback-in-peer-connection',
    '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
    '--disable-backgrounding-occluded-windows', '--autoplay-policy=no-user-gesture-required'],
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function brief(s) {
  const v = s.inbound.video || {}, a = s.inbound.audio || {}, ov = s.outbound.video || {};
  return {
    video: { codec: v.codec, framesReceived: v.framesReceived, framesDecoded: v.framesDecoded, keyFramesDecoded: v.keyFramesDecoded,
      framesDropped: v.framesDropped, pliCount: v.pliCount, firCount: v.firCount, nackCount: v.nackCount,
      frameWidth: v.frameWidth, frameHeight: v.frameHeight, freezeCount: v.freezeCount, totalFreezesDuration: v.totalFreezesDuration },
    audio: { codec: a.codec, totalSamplesReceived: a.totalSamplesReceived, concealedSamples: a.concealedSamples, silentConcealedSamples: a.silentConcealedSamples },
    sent: { codec: ov.codec, framesEncoded: ov.framesEncoded, keyFramesEncoded: ov.keyFramesEncoded, pliReceived: ov.pliCount, firReceived: ov.firCount,
      frameWidth: ov.frameWidth, frameHeight: ov.frameHeight, fps: ov.framesPerSecond, bytesSent: ov.bytesSent, encoderImpl: ov.encoderImplementation },
    track: s.trackSettings && `${s.trackSettings.width}x${s.trackSettings.height}@${s.trackSettings.frameRate}`,
    log: s.log, transforms: s.transforms, kf: { req: s.recvWorker.kfRequests, err: s.recvWorker.kfRequestError, api: s.recvWorker.transformerApi },
    enc: s.sendWorker.enc, dec: s.recvWorker.dec, pipeError: s.sendWorker.pipeError || s.recvWorker.pipeError,
  };
}

async function scenario(name, query, fn) {
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  try {
    await page.goto(`${base}?${query}`);
    await page.waitForFunction(() => window.e2ee, null, { timeout: 10000 });
    const result = await fn(page);
    console.log(JSON.stringify({ scenario: name, query, ...result, consoleErrors: consoleErrors.slice(0, 5) }));
  } catch (e) {
    console.log(JSON.stringify({ scenario: name, query, error: String(e), consoleErrors }));
  } finally {
    await page.evaluate(() => window.e2ee && window.e2ee.close()).catch(() => {});
    await page.close();
  }
}

async function hold(page, ms = HOLD_MS) {
  await page.evaluate(() => window.e2ee.start());
  await sleep(ms);
  return brief(await page.evaluate(() => window.e2ee.summary()));
}

const all = {
  caps: () => scenario('caps', 'rx=right', async (p) => ({ caps: await p.evaluate(() => window.e2ee.caps) })),
  'right-script': () => scenario('right-script', 'api=script&rx=right', (p) => hold(p)),
  'right-streams': () => scenario('right-streams', 'api=streams&rx=right', (p) => hold(p)),
  'wrong-drop': () => scenario('wrong-drop', 'api=script&rx=wrong&fail=drop', (p) => hold(p)),
  'wrong-pass': () => scenario('wrong-pass', 'api=script&rx=wrong&fail=pass', (p) => hold(p)),
  none: () => scenario('none', 'api=script&rx=none', (p) => hold(p)),
  'codec-default': () => scenario('codec-default', 'api=script&rx=right&codec=default', (p) => hold(p, 3000)),
  noe2ee: () => scenario('noe2ee', 'e2ee=0&rx=none', (p) => hold(p)),
  // Receiver has no key for 4 s (frames dropped), then gets it: how long until frames decode again?
  late: () => scenario('late', 'api=script&rx=late&fail=drop', async (p) => {
    const before = await hold(p, 4000);
    const tKey = Date.now();
    await p.evaluate(() => window.e2ee.setRecvKey(true));
    let after, t = 0;
    for (; t < 8000; t += 100) {
      await sleep(100);
      after = brief(await p.evaluate(() => window.e2ee.summary()));
      if (after.video.framesDecoded > 0) break;
    }
    const firstDec = (await p.evaluate(() => window.e2ee.summary())).recvWorker.firstDecAt;
    return { before, after, msKeyToFirstDecryptedFrame: firstDec - tKey, msKeyToFirstDecodedVideoFrame_poll100ms: t + 100 };
  }),
  // Sender rotates its key; receiver learns the new key only 300 ms later (epoch change race)
  rotate: (name = 'rotate', query = 'api=script&rx=right&fail=drop') => scenario(name, query, async (p) => {
    const before = await hold(p, 3000);
    const r = await p.evaluate(async () => {
      const k = await window.e2ee.rotateSendKey();
      const t0 = performance.now();
      await new Promise((res) => setTimeout(res, 300));
      await window.e2ee.setRecvKeyBytes(k); // same KID: old key replaced; real code keys by (epoch, sender)
      return { rotatedAtMs: t0 };
    });
    await sleep(3000);
    return { before, after: brief(await p.evaluate(() => window.e2ee.summary())), r };
  }),
  hd: () => scenario('hd', 'api=script&rx=right&dp=maintain-resolution&br=2500000', async (p) => {
    await p.evaluate(() => window.e2ee.start());
    await sleep(8000); await p.evaluate(() => window.e2ee.resetStats());
    const s0 = brief(await p.evaluate(() => window.e2ee.summary()));
    await sleep(10000);
    const s1 = brief(await p.evaluate(() => window.e2ee.summary()));
    return { window_s: 10, s0sent: s0.sent, s1 };
  }),
  'rotate-kf': () => all.rotate('rotate-kf', 'api=script&rx=right&fail=drop&kf=1'),
  'hd-nodp': () => scenario('hd-nodp', 'api=script&rx=right&w=1280&h=720', (p) => hold(p, 8000)),
  'dp-small': () => scenario('dp-small', 'api=script&rx=right&w=640&h=360&dp=maintain-resolution', (p) => hold(p, 5000)),
  'dp-after': () => scenario('dp-after', 'api=script&rx=right&w=640&h=360&dp=maintain-resolution&dpWhen=after', (p) => hold(p, 5000)),
  'dp-streams': () => scenario('dp-streams', 'api=streams&rx=right&w=640&h=360&dp=maintain-resolution', (p) => hold(p, 5000)),
  'dp-balanced': () => scenario('dp-balanced', 'api=script&rx=right&w=640&h=360&dp=balanced', (p) => hold(p, 5000)),
  'dp-after-transform': () => scenario('dp-after-transform', 'api=script&rx=right&w=640&h=360&dp=maintain-resolution&dpWhen=afterTransform', (p) => hold(p, 5000)),
  'sleep-attach': () => scenario('sleep-attach', 'api=script&rx=right&w=640&h=360&sleepBeforeAttach=50', (p) => hold(p, 5000)),
  'attach-late': () => scenario('attach-late', 'api=script&rx=right&w=640&h=360&attachLate=1500', (p) => hold(p, 5000)),
  'video-only-sleep': () => scenario('video-only-sleep', 'api=script&rx=right&w=640&h=360&sleepBeforeAttach=50&noaudio=1', (p) => hold(p, 5000)),
  'streams-attach-late': () => scenario('streams-attach-late', 'api=streams&rx=right&w=640&h=360&attachLate=1500', (p) => hold(p, 5000)),
  'streams-sleep': () => scenario('streams-sleep', 'api=streams&rx=right&w=640&h=360&sleepBeforeAttach=50', (p) => hold(p, 5000)),
  bench: () => scenario('bench', 'rx=right', async (p) => {
    const out = [];
    for (const [size, clear, iters] of [[160, 1, 3000], [8_000, 3, 2000], [12_000, 3, 2000], [60_000, 10, 500], [150_000, 10, 200]]) {
      out.push((await p.evaluate(([s, i, c]) => window.e2ee.bench(s, i, c), [size, iters, clear])).result);
    }
    return { bench: out };
  }),
};

const names = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(all);
for (const n of names) {
  if (!all[n]) { console.error('unknown scenario', n); continue; }
  await all[n]();
}
await browser.close();
server.close();
