// Files in an end-to-end encrypted meeting (issue 16, "Done when", files), three browsers:
// - a file Ada sends to the room reaches Bob and Cy and matches its SHA-256;
// - a private file reaches only its addressee: Cy's page never hears of it;
// - what went over every page's WebSocket (the server's whole signalling traffic for this
//   room) holds no plaintext of either file, nor its name;
// - the sender cancels a large file half-way: the others see it cancelled.
// The server's refusal of a participant without the `files` permission, over a raw
// WebSocket, is in crates/conclave/tests/integration/files.rs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  TEST_TIMEOUT_MS,
  joinMeeting,
  openParticipant,
  randomRoomId,
  serverAndBrowser,
  sleep,
  waitFor,
  withParticipants,
} from './helpers.mjs';

const suite = serverAndBrowser();

const MARKER = 'CONCLAVE-PLAINTEXT-MARKER-7f3a9c';

/**
 * `size` random bytes with MARKER written every 10 000 bytes.
 * @param {number} size
 */
function fileWithMarkers(size) {
  const buf = randomBytes(size);
  for (let at = 0; at + MARKER.length < size; at += 10_000) buf.write(MARKER, at, 'latin1');
  return buf;
}

/** @param {Buffer} buf */
const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

/**
 * Traces of `text` in a frame: itself, and its base64 at each of the three alignments
 * (without the characters the alignment's end changes).
 * @param {string} text
 */
function traces(text) {
  const out = [text];
  for (let k = 0; k < 3; k++) out.push(Buffer.from(text.slice(k)).toString('base64').slice(0, -4));
  return out;
}

/**
 * Wait until `p`'s page lists a received transfer named `name` as `state`; then the SHA-256
 * of what its Save link holds (for `done`).
 * @param {import('./helpers.mjs').Participant} p
 * @param {string} name
 * @param {string} state
 */
async function received(p, name, state = 'done') {
  return waitFor(`${p.label} to show ${name} as ${state}`, () =>
    p.page.evaluate(async ({ name, state }) => {
      const li = [...document.querySelectorAll('#file-list li[data-direction="in"]')].find((e) => e.querySelector('.file-name')?.textContent?.startsWith(name));
      if (!(li instanceof HTMLElement) || li.dataset.state !== state) return null;
      if (state !== 'done') return { status: li.querySelector('.file-status')?.textContent ?? '' };
      const a = li.querySelector('a[download]');
      if (!(a instanceof HTMLAnchorElement)) return null;
      // (the page's CSP lets no fetch of blob: URLs; read the Blob behind the link instead)
      const blob = /** @type {any} */ (window).conclave.files.transfers.get(li.dataset.file)?.blob;
      if (!(blob instanceof Blob)) return null;
      const bytes = await blob.arrayBuffer();
      const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
      return { sha256: [...digest].map((b) => b.toString(16).padStart(2, '0')).join(''), download: a.download, private: li.dataset.private === 'true' };
    }, { name, state }),
  { timeout: 60_000 });
}

/**
 * Send `buffer` as `name` from `p`'s chat panel, to `to` (a participant ID) or everyone.
 * @param {import('./helpers.mjs').Participant} p
 * @param {string} name
 * @param {Buffer} buffer
 * @param {string} [to]
 */
async function sendFile(p, name, buffer, to = '') {
  await p.page.locator('#chat-to').selectOption(to);
  const chooser = p.page.waitForEvent('filechooser');
  await p.page.getByRole('button', { name: 'Send a file…' }).click();
  await (await chooser).setFiles({ name, mimeType: 'application/octet-stream', buffer });
}

test('files reach the room or one person, encrypted, and can be cancelled', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withParticipants('files', suite.server, async (ps) => {
    const roomUrl = `${suite.server.url}/r/${randomRoomId()}`;
    /** @type {string[]} */
    const ids = [];
    for (const label of ['Ada', 'Bob', 'Cy']) {
      const p = await openParticipant(suite.browser, roomUrl, { label });
      ps.push(p);
      ids.push(await joinMeeting(p));
    }
    const [a, b, c] = ps;
    for (const p of ps) {
      await waitFor(`${p.label} to be in a group of three`, () =>
        p.page.evaluate(() => {
          const s = /** @type {any} */ (window).conclave?.e2ee?.status();
          return s && s.state === 'encrypted' && s.members.length === 3 ? true : null;
        }),
      );
      await p.page.getByRole('button', { name: /^Chat/ }).click();
    }

    // To everyone: 300 kB, five chunks.
    const report = fileWithMarkers(300_000);
    await sendFile(a, 'quarterly-report.bin', report);
    for (const p of [b, c]) {
      const got = await received(p, 'quarterly-report.bin');
      assert.equal(got.sha256, sha256(report), `${p.label}'s copy differs`);
      assert.equal(got.download, 'quarterly-report.bin');
      assert.equal(got.private, false);
      // the chat notes it, with the sender's name
      assert.ok(await p.page.evaluate(() => document.querySelector('#chat-log')?.textContent?.includes('Ada: sent a file: quarterly-report.bin')));
    }
    await waitFor('Ada to show it sent', () =>
      a.page.evaluate(() => document.querySelector('#file-list li[data-direction="out"]')?.getAttribute('data-state') === 'done' || null),
    );

    // To Bob only.
    const letter = fileWithMarkers(70_000);
    await sendFile(a, 'letter-for-bob.bin', letter, ids[1]);
    const got = await received(b, 'letter-for-bob.bin');
    assert.equal(got.sha256, sha256(letter));
    assert.equal(got.private, true);
    await sleep(1000);
    const offersToCy = c.logs.filter((l) => l.startsWith('ws< ') && l.includes('"file_offer"'));
    assert.equal(offersToCy.length, 1, `Cy heard of more than the room's file: ${offersToCy.length}`);
    assert.equal(await c.page.locator('#file-list li').count(), 1);

    // The tap: every frame each page sent and received.
    const frames = ps.flatMap((p) => p.logs.filter((l) => l.startsWith('ws> ') || l.startsWith('ws< ')));
    const chunkFrames = a.logs.filter((l) => l.startsWith('ws> ') && l.includes('"file_chunk"'));
    assert.equal(chunkFrames.length, Math.ceil(300_000 / 65_536) + Math.ceil(70_000 / 65_536), 'Ada sent every chunk');
    for (const trace of [...traces(MARKER), 'quarterly-report', 'letter-for-bob']) {
      const hit = frames.find((f) => f.includes(trace));
      assert.equal(hit, undefined, `plaintext (${trace}) on the wire: ${hit?.slice(0, 200)}`);
    }
    console.log(`tap: ${frames.length} frames, ${chunkFrames.length} chunks sent by Ada, no plaintext`);

    // A large file, cancelled by the sender half-way (the server's rate makes it take seconds).
    const big = randomBytes(12 * 1024 * 1024);
    await sendFile(a, 'big-video.bin', big);
    await waitFor('Bob to receive part of the big file', () =>
      b.page.evaluate(() => {
        const bar = [...document.querySelectorAll('#file-list li[data-direction="in"][data-state="receiving"] progress')].at(-1);
        return bar instanceof HTMLProgressElement && bar.value > 0 ? true : null;
      }),
    );
    await a.page.getByRole('button', { name: 'Cancel big-video.bin' }).click();
    for (const p of [b, c]) {
      const r = await received(p, 'big-video.bin', 'cancelled');
      assert.match(r.status, /The sender cancelled it/);
    }
    assert.equal(await a.page.locator('#file-list li[data-direction="out"][data-state="cancelled"]').count(), 1);
  });
});
