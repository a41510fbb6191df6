// The page's pure logic, run in node on simulated time: the reconnect backoff, the active
// speaker detector and the quality judgement. (The browser tests show the same in a meeting;
// these show the rules at their edges.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MEDIA_FAILURES_TO_GIVE_UP,
  MediaFailures,
  RECONNECT_FIRST_DELAY_MS,
  RECONNECT_MAX_DELAY_MS,
  Reconnector,
  backoffDelay,
  mediaFailureKey,
} from '../../web/reconnect.js';
import { SPEAKER_HOLD_MS, SPEAKER_SWITCH_MS, SPEAKING_LEVEL, SpeakerDetector } from '../../web/speaker.js';
import { QUALITY_LIMITS, judgeQuality, levelFromRms } from '../../web/stats.js';
import { missingKeys } from '../../web/i18n.js';
import { isConnectionLoss, permissionFor } from '../../web/protocol.js';
import { retryAfterSeconds } from '../../web/account.js';

test('backoff: 1 s doubling to 15 s, each within ±20 %', () => {
  const middle = () => 0.5;
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 50].map((n) => backoffDelay(n, middle)),
    [1000, 2000, 4000, 8000, 15000, 15000, 15000],
  );
  for (let n = 1; n < 12; n++) {
    const base = Math.min(RECONNECT_FIRST_DELAY_MS * 2 ** (n - 1), RECONNECT_MAX_DELAY_MS);
    assert.equal(backoffDelay(n, () => 0), base * 0.8);
    assert.ok(backoffDelay(n, () => 0.999999) <= base * 1.2);
  }
});

test('reconnector: retries until an attempt joins, and reports each step', async () => {
  /** @type {string[]} */
  const seen = [];
  let attempts = 0;
  await new Promise((resolve) => {
    const r = new Reconnector(
      async () => (++attempts < 2 ? 'retry' : 'joined'),
      (state) => {
        seen.push(state.phase);
        if (state.phase === 'waiting') r.tryNow(); // Do not wait the real backoff.
        if (state.phase === 'joined') resolve(undefined);
      },
    );
    r.start();
  });
  assert.equal(attempts, 2);
  assert.deepEqual(seen, ['waiting', 'trying', 'waiting', 'trying', 'joined']);
});

test('reconnector: "stop" ends it, and a cancelled one ignores what comes back', async () => {
  const stopped = await new Promise((resolve) => {
    const r = new Reconnector(async () => 'stop', (state) => {
      if (state.phase === 'waiting') r.tryNow();
      if (state.phase === 'stopped') resolve(r.active);
    });
    r.start();
  });
  assert.equal(stopped, false);

  /** @type {string[]} */
  const seen = [];
  /** @type {(v: 'joined') => void} */
  let finish = () => {};
  const r = new Reconnector(() => new Promise((resolve) => { finish = resolve; }), (s) => seen.push(s.phase));
  r.start();
  r.tryNow();
  r.cancel();
  finish('joined');
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(seen, ['waiting', 'trying'], 'nothing reported after cancel');
  assert.equal(r.active, false);
});

test('media failures: give up after three sessions in a row without media; media in between starts over', () => {
  assert.equal(MEDIA_FAILURES_TO_GIVE_UP, 3);
  const f = new MediaFailures();
  assert.deepEqual([f.lost(false), f.lost(false)], [false, false]);
  f.connected(); // A session's media connected: what came before does not count.
  assert.deepEqual([f.lost(false), f.lost(false), f.lost(false)], [false, false, true]);
  assert.equal(f.count, 3);
  f.reset();
  assert.deepEqual([f.lost(false), f.lost(true), f.lost(false), f.lost(false)], [false, false, false, false]);
  assert.equal(f.lost(false), true);
});

test('media failures: Firefox on a loopback page gets its own advice, everyone else the network one', () => {
  const firefox = 'Mozilla/5.0 (X11; Linux x86_64; rv:153.0) Gecko/20100101 Firefox/153.0';
  const chromium = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/148.0.0.0 Safari/537.36';
  for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '[::1]']) {
    assert.equal(mediaFailureKey(host, firefox), 'mediaFailedLoopbackFirefox', host);
    assert.equal(mediaFailureKey(host, chromium), 'mediaFailed', host);
  }
  for (const host of ['meet.example.org', '192.0.2.7', '127.0.0.1.example.org', '[2001:db8::1]']) {
    assert.equal(mediaFailureKey(host, firefox), 'mediaFailed', host);
  }
});

test('speaker: a loud one becomes the speaker, keeps it through a pause, and loses it after the hold', () => {
  const d = new SpeakerDetector('self');
  const loud = SPEAKING_LEVEL + 0.1;
  const quiet = SPEAKING_LEVEL - 0.1;
  assert.deepEqual(d.update(0, new Map([['a', quiet]])), { speaking: null, recent: null });
  assert.deepEqual(d.update(500, new Map([['a', loud], ['b', quiet]])), { speaking: 'a', recent: 'a' });
  // A pause shorter than the hold: still a.
  assert.equal(d.update(500 + SPEAKER_HOLD_MS, new Map([['a', 0]])).speaking, 'a');
  // Longer: nobody speaks, but a stays the one to show.
  assert.deepEqual(d.update(501 + SPEAKER_HOLD_MS, new Map()), { speaking: null, recent: 'a' });
});

test('speaker: another takes over only once the speaker was quiet for the switch time', () => {
  const d = new SpeakerDetector('self');
  const loud = 0.9;
  d.update(0, new Map([['a', loud]]));
  // b is louder while a still speaks: a keeps it.
  assert.equal(d.update(200, new Map([['a', 0.6], ['b', loud]])).speaking, 'a');
  // a quiet for less than the switch time: still a.
  assert.equal(d.update(200 + SPEAKER_SWITCH_MS - 1, new Map([['b', loud]])).speaking, 'a');
  // Long enough: b.
  assert.equal(d.update(200 + SPEAKER_SWITCH_MS, new Map([['b', loud]])).speaking, 'b');
});

test('speaker: we can be the speaker, but are never the one the speaker view shows', () => {
  const d = new SpeakerDetector('self');
  d.update(0, new Map([['b', 0.9]]));
  d.update(5000, new Map());
  assert.deepEqual(d.update(6000, new Map([['self', 0.9]])), { speaking: 'self', recent: 'b' });
  d.forget('b');
  assert.deepEqual(d.update(6100, new Map([['self', 0.9]])), { speaking: 'self', recent: null });
});

test('level: −60 dBFS and below is 0, full scale is 1, linear in decibels', () => {
  assert.equal(levelFromRms(0), 0);
  assert.equal(levelFromRms(0.0005), 0);
  assert.equal(levelFromRms(1), 1);
  assert.ok(Math.abs(levelFromRms(10 ** (-30 / 20)) - 0.5) < 1e-9);
  assert.equal(levelFromRms(Number.NaN), 0);
});

test('quality: the worst measure decides; nothing measured is unknown', () => {
  const none = { lossFraction: null, jitterMs: null, rttMs: null, limited: false, stalled: false };
  assert.equal(judgeQuality(none), 'unknown');
  assert.equal(judgeQuality({ ...none, rttMs: 20, lossFraction: 0, jitterMs: 2 }), 'good');
  assert.equal(judgeQuality({ ...none, rttMs: 20, lossFraction: QUALITY_LIMITS.lossFraction.fair }), 'fair');
  assert.equal(judgeQuality({ ...none, rttMs: QUALITY_LIMITS.rttMs.poor, lossFraction: 0 }), 'poor');
  assert.equal(judgeQuality({ ...none, jitterMs: QUALITY_LIMITS.jitterMs.fair - 1 }), 'good');
  assert.equal(judgeQuality({ ...none, rttMs: 20, limited: true }), 'fair');
  assert.equal(judgeQuality({ ...none, stalled: true }), 'poor');
});

test('i18n: German has every text English has', () => {
  assert.deepEqual(missingKeys('de'), []);
});

test("protocol: a moderator's decision is never a connection loss; sources map to permissions", () => {
  for (const reason of ['removed', 'banned', 'ended', 'denied', 'left', 'error']) {
    assert.equal(isConnectionLoss(/** @type {any} */ (reason)), false, reason);
  }
  assert.equal(isConnectionLoss('disconnected'), true);
  assert.equal(permissionFor('microphone'), 'unmute');
  assert.equal(permissionFor('camera'), 'camera');
  assert.equal(permissionFor('screen'), 'screen');
});

test('sign-in throttle: Retry-After in seconds or as a date, anything else unknown', () => {
  assert.equal(retryAfterSeconds('42'), 42);
  assert.equal(retryAfterSeconds(' 7 '), 7);
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(retryAfterSeconds('Thu, 01 Jan 2026 00:01:30 GMT', now), 90);
  assert.equal(retryAfterSeconds('Wed, 31 Dec 2025 23:00:00 GMT', now), 0);
  assert.equal(retryAfterSeconds(null), null);
  assert.equal(retryAfterSeconds('soon'), null);
  assert.equal(retryAfterSeconds('-5'), null);
});
