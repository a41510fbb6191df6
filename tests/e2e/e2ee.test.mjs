// End-to-end encryption in the meeting page, on by default (issue 6's "Done when"):
// - three participants agree keys with MLS through the server and decode each other;
//   a participant without the keys decodes nothing, and a tap on what the SFU forwards sees
//   only SFrame ciphertext (libvpx fed with it "decodes" the odd garbage frame: printed);
//   chat reaches the others while what the server receives contains no plaintext;
//   the SAS is the same on every page, and confirming it marks the others verified;
// - after one participant leaves, the others move to a new epoch and their media keeps
//   decoding across the change (the longest freeze is printed, not asserted);
// - a moderator resets the encryption (after a confirmation): every page starts a new group,
//   forgets who it had verified, says who reset it, and keeps decoding;
// - a browser without encoded transforms is told why it cannot join, and does not connect;
// - a server that labels one member's camera as another member's track gets nothing of it
//   decoded: the receiver checks the KID's leaf against the MLS tree (web/e2ee/kid.js).
// The man-in-the-middle SAS test is in tests/web/e2ee-group.test.mjs (two groups, one DS).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS,
  expectMediaFrom,
  inboundStreams,
  joinMeeting,
  openParticipant,
  randomRoomId,
  serverAndBrowser,
  setToggles,
  sleep,
  waitFor,
  withParticipants,
} from './helpers.mjs';

const suite = serverAndBrowser();

/**
 * Ada, Bob and Cy join `roomUrl` one after another with microphone and camera on.
 * Returns their participant IDs.
 * @param {import('./helpers.mjs').Participant[]} ps
 * @param {string} roomUrl
 */
async function threeWithDevices(ps, roomUrl) {
  /** @type {string[]} */
  const ids = [];
  for (const label of ['Ada', 'Bob', 'Cy']) {
    const p = await openParticipant(suite.browser, roomUrl, { label });
    ps.push(p);
    ids.push(await joinMeeting(p));
    await setToggles(p, ['Microphone', 'Camera'], true);
  }
  return ids;
}

/**
 * What `p`'s page says about encryption.
 * @param {import('./helpers.mjs').Participant} p
 * @returns {Promise<{state: string, epoch: number | null, generation: number, members: {participant: string, match: string, verified: boolean}[], outside: string[], reset: {by: string, name: string, self: boolean} | null} | null>}
 */
function e2eeStatus(p) {
  return p.page.evaluate(() => /** @type {any} */ (window).conclave?.e2ee?.status() ?? null);
}

/**
 * Wait until every page in `ps` shows "End-to-end encrypted" in the same epoch, with exactly
 * the others of `ps` as members. Returns the epoch.
 * @param {import('./helpers.mjs').Participant[]} ps
 * @param {string[]} ids
 * @param {number} [after] The epoch must be later than this.
 * @param {number} [generation] The group's generation (one more after each reset).
 */
async function expectOneGroup(ps, ids, after = -1, generation = 0) {
  return waitFor(`${ps.map((p) => p.label).join(', ')} to share one encrypted epoch after ${after} of generation ${generation}`, async () => {
    const all = await Promise.all(ps.map(e2eeStatus));
    if (all.some((s) => s?.generation !== generation)) return null;
    const epochs = new Set(all.map((s) => s?.epoch));
    if (epochs.size !== 1) return null;
    const [epoch] = epochs;
    if (typeof epoch !== 'number' || epoch <= after) return null;
    for (const s of all) {
      if (s?.state !== 'encrypted') return null;
      const members = s.members.filter((m) => m.match === 'present').map((m) => m.participant).sort();
      if (JSON.stringify(members) !== JSON.stringify([...ids].sort())) return null;
    }
    for (const p of ps) {
      const shown = await p.page.locator('#e2ee-button').getAttribute('data-state');
      if (shown !== 'encrypted') return null;
    }
    return epoch;
  });
}

/**
 * Join `room` from `p`'s page with a bare ConclaveSession that sends nothing and plays what
 * it receives; its chat events are kept in `window.t`.
 * - `keyless`: with the real FrameCrypto, which never gets a key (a participant without
 *   the keys);
 * - `tap`: with an observer in place of FrameCrypto that passes every received frame on to
 *   the decoder unchanged and parses it as the SFU forwarded it: clear codec bytes, then an
 *   SFrame header (RFC 9605 §4.3), then ciphertext and tag. `window.t.frames` counts frames
 *   that have that form (`sframe`, by KID) and frames that do not (`other`).
 * @param {import('./helpers.mjs').Participant} p
 * @param {string} room
 * @param {'keyless' | 'tap'} kind
 */
async function joinWithoutKeys(p, room, kind) {
  await p.page.evaluate(
    async ({ room, kind, name }) => {
      const { ConclaveSession, signallingUrl } = await import('/protocol.js');
      const { FrameCrypto } = await import('/e2ee/frames.js');
      const session = new ConclaveSession(signallingUrl(location));
      /** @type {any[]} */
      const chats = [];
      session.on('chat', (m) => chats.push(m));
      session.on('trackadded', (r) => {
        if (r.track.kind !== 'audio') return;
        const el = new Audio();
        el.srcObject = new MediaStream([r.track]);
        el.play().catch(() => {});
      });
      const frames = { sframe: 0, other: 0, /** @type {Record<string, number>} */ kids: {} };
      /** Parse one received video frame as clear bytes || SFrame header || ciphertext || tag. */
      const inspect = (/** @type {any} */ frame) => {
        const data = new Uint8Array(frame.data);
        const clear = frame.type === 'key' ? 10 : 3;
        let at = clear;
        const config = data[at++];
        if (config === undefined) return frames.other++;
        const x = config >> 7, k = (config >> 4) & 7, y = (config >> 3) & 1, c = config & 7;
        let kid = 0;
        if (x) for (let i = 0; i <= k; i++) kid = kid * 256 + (data[at++] ?? 0);
        else kid = k;
        at += y ? c + 1 : 0;
        if (at + 16 > data.length) return frames.other++;
        frames.sframe++;
        frames.kids[kid] = (frames.kids[kid] ?? 0) + 1;
      };
      const attached = new WeakSet();
      const observer = {
        rtcConfig: () => ({ encodedInsertableStreams: true }),
        attachSender: () => {},
        attachReceiver: (/** @type {any} */ receiver, /** @type {string} */ kind) => {
          if (attached.has(receiver)) return; // once per receiver, as FrameCrypto does
          attached.add(receiver);
          const { readable, writable } = receiver.createEncodedStreams();
          readable
            .pipeThrough(new TransformStream({ transform(frame, out) { if (kind === 'video') inspect(frame); out.enqueue(frame); } }))
            .pipeTo(writable)
            .catch(() => {});
        },
        setPublisher: () => {},
        framesSeen: async () => 1,
      };
      let fc = null;
      if (kind === 'keyless') {
        fc = new FrameCrypto(/** @type {any} */ (FrameCrypto.mode()));
        session.setFrameCrypto(fc);
      } else {
        session.setFrameCrypto(/** @type {any} */ (observer));
      }
      await session.join(room, name);
      /** @type {any} */ (window).conclave = { session, pc: session.pc };
      /** @type {any} */ (window).t = { session, fc, chats, frames };
    },
    { room, kind, name: p.label },
  );
}

test('three participants with E2EE decode each other; without the keys nothing decodes; the server sees no chat plaintext; the SAS matches', { timeout: TEST_TIMEOUT_MS * 2 }, async () => {
  await withParticipants('e2ee-three', suite.server, async (ps) => {
    const room = randomRoomId();
    const roomUrl = `${suite.server.url}/r/${room}`;
    const ids = await threeWithDevices(ps, roomUrl);
    const [a, b, c] = ps;
    const epoch = await expectOneGroup([a, b, c], ids);
    await expectMediaFrom(a, [ids[1], ids[2]]);
    await expectMediaFrom(b, [ids[0], ids[2]]);
    await expectMediaFrom(c, [ids[0], ids[1]]);

    // The SAS: the same digits and emoji on every page; "The codes match" marks the others
    // verified on that page only.
    /** @type {string[]} */
    const codes = [];
    for (const p of [a, b, c]) {
      await p.page.locator('#e2ee-button').click();
      await p.page.locator(`#e2ee-sas[data-epoch="${epoch}"]`).waitFor({ state: 'visible' });
      await waitFor(`${p.label} to show the SAS`, () => p.page.locator('#e2ee-sas-digits').textContent());
      const digits = await p.page.locator('#e2ee-sas-digits').textContent();
      const emoji = await p.page.locator('#e2ee-sas-emoji').textContent();
      assert.match(digits ?? '', /^\d{3} \d{3}$/);
      codes.push(`${digits} ${emoji}`);
    }
    assert.equal(new Set(codes).size, 1, `SAS differs between honest participants: ${codes.join(' | ')}`);
    await a.page.getByRole('button', { name: 'The codes match' }).click();
    const verified = await waitFor('Ada to mark Bob and Cy verified', async () => {
      const s = await e2eeStatus(a);
      return s && s.members.filter((m) => m.verified).length === 3 ? s : null;
    });
    assert.equal(verified.members.length, 3);
    assert.equal((await e2eeStatus(b))?.members.filter((m) => m.verified).length, 1, 'only Bob himself is verified on his page');

    // A participant with the frame transforms but no keys, and a tap without transforms.
    const keyless = await openParticipant(suite.browser, roomUrl, { label: 'Keyless' });
    ps.push(keyless);
    await joinWithoutKeys(keyless, room, 'keyless');
    const tap = await openParticipant(suite.browser, roomUrl, { label: 'Tap' });
    ps.push(tap);
    await joinWithoutKeys(tap, room, 'tap');
    for (const p of [keyless, tap]) {
      await waitFor(`${p.label} to receive many video packets from all three`, async () => {
        const video = (await inboundStreams(p)).filter((s) => s.kind === 'video' && ids.includes(s.participant ?? ''));
        return video.length === 3 && video.every((s) => s.packetsReceived > 200) ? video : null;
      }, { timeout: 40_000 });
    }
    // The members see the two as outside the group, and the room stays encrypted.
    await waitFor('Ada to list the two as outside the encrypted group', async () => {
      const s = await e2eeStatus(a);
      return s && s.outside.length === 2 && s.state === 'encrypted';
    });

    const stats = await keyless.page.evaluate(async () => {
      const pc = /** @type {any} */ (window).t.session.pc;
      const report = await pc.getStats();
      /** @type {any[]} */
      const video = [];
      report.forEach((/** @type {any} */ s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') video.push({ frames: s.framesDecoded ?? 0, packets: s.packetsReceived });
      });
      return { video, worker: await /** @type {any} */ (window).t.fc.stats() };
    });
    console.log('keyless participant:', JSON.stringify(stats));
    assert.equal(stats.video.length, 3);
    for (const v of stats.video) assert.equal(v.frames, 0, `the keyless participant decoded video: ${JSON.stringify(stats)}`);
    const w = stats.worker.decrypt;
    assert.equal(w.video.decrypted + w.audio.decrypted, 0, `the keyless worker decrypted frames: ${JSON.stringify(w)}`);
    assert.ok(w.video.droppedNoKey > 0 && w.audio.droppedNoKey > 0, `the keyless worker dropped nothing: ${JSON.stringify(w)}`);

    // What the SFU forwards: every video frame is SFrame ciphertext under a member's KID, and
    // the decoder fed with it (as a tap would) shows no picture worth the name.
    const tapped = await tap.page.evaluate(async () => {
      const t = /** @type {any} */ (window).t;
      const report = await t.session.pc.getStats();
      /** @type {any[]} */
      const video = [];
      report.forEach((/** @type {any} */ s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') {
          video.push({ decoded: s.framesDecoded ?? 0, keyFramesDecoded: s.keyFramesDecoded ?? 0, received: s.framesReceived ?? 0 });
        }
      });
      return { frames: t.frames, video };
    });
    console.log('tap on the forwarded frames:', JSON.stringify(tapped));
    assert.equal(tapped.frames.other, 0, `the SFU forwarded frames that are not SFrame ciphertext: ${JSON.stringify(tapped)}`);
    assert.ok(tapped.frames.sframe > 100, `the tap saw too few frames: ${JSON.stringify(tapped)}`);
    const members = new Set((await e2eeStatus(a))?.members.map((m) => /** @type {any} */ (m).leaf));
    for (const kid of Object.keys(tapped.frames.kids).map(Number)) {
      assert.ok(members.has(kid >> 8), `KID ${kid} is no member's leaf (${[...members]})`);
    }

    // Chat: the others read it; the server (and the tap) only ever see ciphertext.
    const secret = 'The quarterly numbers are 4711 and confidential';
    await a.page.getByRole('button', { name: /^Chat/ }).click();
    await a.page.getByLabel('Message', { exact: true }).fill(secret);
    await a.page.getByRole('button', { name: 'Send', exact: true }).click();
    for (const p of [b, c]) {
      await waitFor(`${p.label} to show the message`, () =>
        p.page.evaluate((text) => document.querySelector('#chat-log')?.textContent?.includes(text) ?? false, secret),
      );
    }
    const relayed = await waitFor('the tap to get the relayed chat', () =>
      tap.page.evaluate(() => /** @type {any} */ (window).t.chats[0] ?? null),
    );
    assert.equal(relayed.text, null);
    assert.equal(typeof relayed.ciphertext, 'string');
    const bytes = Buffer.from(relayed.ciphertext, 'base64');
    assert.ok(!bytes.includes(Buffer.from('quarterly')), 'the relayed chat contains the plaintext');
    const sent = a.logs.filter((l) => l.startsWith('ws> ') && l.includes('"chat"'));
    assert.equal(sent.length, 1, `Ada sent one chat frame: ${sent.join('\n')}`);
    for (const frame of a.logs.filter((l) => l.startsWith('ws> '))) {
      assert.ok(!frame.includes('quarterly') && !frame.includes('4711'), `plaintext reached the server: ${frame}`);
    }
    const chatFrame = JSON.parse(sent[0].slice(4));
    assert.ok(!Buffer.from(chatFrame.ciphertext, 'base64').includes(Buffer.from('4711')));

    // A private message: sealed to the addressee's leaf (tests/web/e2ee-group.test.mjs shows
    // that another member cannot open it); Bea shows it as private, Cy never gets it.
    const whisper = 'Only for Bea: the code word is marmalade';
    await a.page.locator('#chat-to').selectOption(ids[1]);
    await a.page.getByLabel('Message', { exact: true }).fill(whisper);
    await a.page.getByRole('button', { name: 'Send', exact: true }).click();
    await waitFor('Bea to show the private message', () =>
      b.page.evaluate((text) => [...document.querySelectorAll('#chat-log [data-private="true"]')].some((e) => e.textContent?.includes(text)), whisper),
    );
    const sentPrivate = a.logs.filter((l) => l.startsWith('ws> ') && l.includes('"chat"')).map((l) => JSON.parse(l.slice(4)));
    assert.equal(sentPrivate.length, 2);
    assert.equal(sentPrivate[1].to, ids[1]);
    assert.ok(!Buffer.from(sentPrivate[1].ciphertext, 'base64').includes(Buffer.from('marmalade')), 'the private chat frame contains the plaintext');
    assert.ok(!(await c.page.evaluate((text) => document.querySelector('#chat-log')?.textContent?.includes(text) ?? false, whisper)), 'Cy shows the private message');

    // To someone without keys (the tap, named Tap, has no leaf): nothing is sent, Ada is told why, and
    // her text stays in the input.
    const unsealed = 'This cannot be sealed for the tap';
    await a.page.locator('#chat-to').selectOption({ label: 'Tap' });
    await a.page.getByLabel('Message', { exact: true }).fill(unsealed);
    await a.page.getByRole('button', { name: 'Send', exact: true }).click();
    await a.page.locator('#alert', { hasText: 'Tap has no encryption keys yet' }).waitFor({ state: 'visible' });
    assert.equal(await a.page.getByLabel('Message', { exact: true }).inputValue(), unsealed, 'the text stays in the input');
    assert.equal(a.logs.filter((l) => l.startsWith('ws> ') && l.includes('"chat"')).length, 2, 'no third chat frame was sent');
    assert.ok(!(await a.page.evaluate((text) => document.querySelector('#chat-log')?.textContent?.includes(text) ?? false, unsealed)), 'shown as sent');
  });
});

test('after one participant leaves the others move to a new epoch and keep decoding', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withParticipants('e2ee-leave', suite.server, async (ps) => {
    const ids = await threeWithDevices(ps, `${suite.server.url}/r/${randomRoomId()}`);
    const [a, b, c] = ps;
    const before = await expectOneGroup([a, b, c], ids);
    await expectMediaFrom(a, [ids[1]]);
    await expectMediaFrom(b, [ids[0]]);

    // Sample the decoded video frames from the other of the two every 100 ms.
    for (const [p, other] of /** @type {const} */ ([[a, ids[1]], [b, ids[0]]])) {
      await p.page.evaluate((other) => {
        const w = /** @type {any} */ (window);
        w.samples = [];
        w.sampler = setInterval(async () => {
          const report = await w.conclave.pc.getStats();
          const map = w.conclave.session.trackMap;
          let frames = 0;
          report.forEach((/** @type {any} */ s) => {
            if (s.type === 'inbound-rtp' && s.kind === 'video' && map[s.mid]?.participant === other) frames = s.framesDecoded ?? 0;
          });
          w.samples.push({ t: performance.now(), frames, epoch: w.conclave.e2ee.status().epoch });
        }, 100);
      }, other);
    }
    await sleep(1000);
    await c.page.getByRole('button', { name: 'Leave', exact: true }).click();
    const after = await expectOneGroup([a, b], [ids[0], ids[1]], before);
    await sleep(3000);
    for (const p of [a, b]) {
      const samples = await p.page.evaluate(() => {
        const w = /** @type {any} */ (window);
        clearInterval(w.sampler);
        return /** @type {{t: number, frames: number, epoch: number}[]} */ (w.samples);
      });
      const change = samples.findIndex((s) => s.epoch >= after);
      assert.ok(change > 0, `${p.label} never reached epoch ${after}`);
      let longest = 0;
      let lastGrowth = samples[0].t;
      for (let i = 1; i < samples.length; i++) {
        if (samples[i].frames > samples[i - 1].frames) {
          longest = Math.max(longest, samples[i].t - lastGrowth);
          lastGrowth = samples[i].t;
        }
      }
      longest = Math.max(longest, samples[samples.length - 1].t - lastGrowth);
      const framesAfter = samples[samples.length - 1].frames - samples[change].frames;
      console.log(`${p.label}: epoch ${before} -> ${after}; longest freeze ${Math.round(longest)} ms; ${framesAfter} frames decoded in the ${Math.round(samples[samples.length - 1].t - samples[change].t)} ms after the change`);
      assert.ok(framesAfter >= 10, `${p.label} decoded only ${framesAfter} frames after the epoch change`);
    }
  });
});

test('a moderator resets the encryption: one new group on every page, verification cleared, media keeps decoding', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withParticipants('e2ee-reset', suite.server, async (ps) => {
    const ids = await threeWithDevices(ps, `${suite.server.url}/r/${randomRoomId()}`);
    const [a, b, c] = ps; // Ada, the first in an open room, moderates it
    await expectOneGroup([a, b, c], ids);
    await expectMediaFrom(b, [ids[0], ids[2]]);
    // Bob compares the code; he is no moderator and has no reset button.
    await b.page.locator('#e2ee-button').click();
    await b.page.getByRole('button', { name: 'The codes match' }).click();
    await waitFor('Bob to mark everyone verified', async () => (await e2eeStatus(b))?.members.every((m) => m.verified));
    assert.equal(await b.page.getByRole('button', { name: 'Reset encryption' }).isVisible(), false);

    await a.page.locator('#e2ee-button').click();
    await a.page.getByRole('button', { name: 'Reset encryption' }).click();
    await a.page.getByRole('button', { name: 'Confirm', exact: true }).click();
    const epoch = await expectOneGroup([a, b, c], ids, -1, 1);
    const s = await e2eeStatus(b);
    assert.deepEqual(s?.reset, { by: ids[0], name: 'Ada', self: false });
    assert.equal(s?.members.filter((m) => m.verified).length, 1, 'after a reset only Bob himself is verified on his page');
    await b.page.locator('#e2ee-reset-note').filter({ hasText: 'Ada reset the encryption' }).waitFor({ state: 'visible' });
    await b.page.locator(`#e2ee-sas[data-generation="1"][data-epoch="${epoch}"]`).waitFor({ state: 'visible' });
    for (const [p, others] of /** @type {const} */ ([[a, [ids[1], ids[2]]], [b, [ids[0], ids[2]]], [c, [ids[0], ids[1]]]])) {
      await expectMediaFrom(p, [...others]);
    }
    for (const p of [a, b, c]) {
      const sent = p.logs.filter((l) => l.startsWith('ws> ') && l.includes('"mls_')).map((l) => JSON.parse(l.slice(4)));
      const after = sent.filter((m) => m.generation === 1);
      console.log(`${p.label} after the reset: ${after.filter((m) => m.type === 'mls_group').length} mls_group, ${after.filter((m) => m.type === 'mls_commit').length} mls_commit`);
      assert.ok(!p.logs.some((l) => l.includes('media key not set')), `${p.label} could not key the new group's media:\n${p.logs.filter((l) => l.includes('e2ee')).join('\n')}`);
    }
  });
});

test('a browser without encoded transforms is told why it cannot join and does not connect', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withParticipants('e2ee-unsupported', suite.server, async (ps) => {
    const p = await openParticipant(suite.browser, `${suite.server.url}/r/${randomRoomId()}`, {
      label: 'Old',
      beforeOpen: (context) =>
        context.addInitScript(() => {
          const w = /** @type {any} */ (window);
          delete w.RTCRtpScriptTransform;
          delete w.RTCRtpSender.prototype.createEncodedStreams;
          delete w.RTCRtpReceiver.prototype.createEncodedStreams;
        }),
    });
    ps.push(p);
    await p.page.getByLabel('Name', { exact: true }).fill('Old');
    await p.page.getByRole('button', { name: 'Join', exact: true }).click();
    await p.page.getByRole('alert').filter({ hasText: 'cannot encrypt audio and video' }).waitFor({ state: 'visible' });
    assert.equal(p.logs.filter((l) => l.startsWith('ws> ')).length, 0, 'the page sent something to the server');
    assert.ok(await p.page.getByRole('button', { name: 'Join', exact: true }).isVisible());
  });
});

/**
 * Every receiver of `p`'s page: what the session says it carries, what the decoder made of
 * it, and what its E2EE transform passed on.
 * @param {import('./helpers.mjs').Participant} p
 * @returns {Promise<{mid: string, kind: string, participant: string | null, source: string | null, framesDecoded: number, packetsReceived: number, transform: {frames: number, passed: number} | null}[]>}
 */
function receivers(p) {
  return p.page.evaluate(async () => {
    const { session } = /** @type {any} */ (window).conclave;
    const pc = /** @type {RTCPeerConnection} */ (session.pc);
    const fc = session.frameCrypto;
    const map = session.trackMap;
    /** @type {any[]} */
    const out = [];
    for (const t of pc.getTransceivers()) {
      if (t.mid === null || !map[t.mid]) continue;
      let framesDecoded = 0;
      let packetsReceived = 0;
      (await t.receiver.getStats()).forEach((/** @type {any} */ s) => {
        if (s.type === 'inbound-rtp') {
          framesDecoded = s.framesDecoded ?? 0;
          packetsReceived = s.packetsReceived ?? 0;
        }
      });
      const ts = await fc.transformStats(t.receiver);
      out.push({
        mid: t.mid,
        kind: t.receiver.track.kind,
        participant: map[t.mid].participant,
        source: map[t.mid].source,
        framesDecoded,
        packetsReceived,
        transform: ts ? { frames: ts.frames, passed: ts.passed } : null,
      });
    }
    return out;
  });
}

/**
 * Re-label, in `p`'s page, the receiver of `mid` as published by `participant` (what a
 * misattributing offer would do).
 * @param {import('./helpers.mjs').Participant} p
 * @param {string} mid
 * @param {string} participant
 */
function relabel(p, mid, participant) {
  return p.page.evaluate(
    ([m, who]) => {
      const { session } = /** @type {any} */ (window).conclave;
      const t = /** @type {RTCPeerConnection} */ (session.pc).getTransceivers().find((x) => x.mid === m);
      session.frameCrypto.setPublisher(t?.receiver, who);
    },
    [mid, participant],
  );
}

/** @param {import('./helpers.mjs').Participant} p */
function workerStats(p) {
  return p.page.evaluate(() => /** @type {any} */ (window).conclave.e2ee.frames.stats());
}

test('a track the server attributes to another member decodes nothing; the correctly attributed ones keep decoding', { timeout: TEST_TIMEOUT_MS * 2 }, async () => {
  await withParticipants('e2ee-misattributed', suite.server, async (ps) => {
    const room = randomRoomId();
    const roomUrl = `${suite.server.url}/r/${room}`;
    /** @type {string[]} */
    const ids = [];
    for (const label of ['Ada', 'Bob']) {
      const p = await openParticipant(suite.browser, roomUrl, { label });
      ps.push(p);
      ids.push(await joinMeeting(p));
      await setToggles(p, ['Microphone', 'Camera'], true);
    }
    // Cy's "server" lies: every offer it gets labels Ada's camera as Bob's screen share (the
    // WebSocket is wrapped before the page loads; the page itself is unchanged).
    const cy = await openParticipant(suite.browser, roomUrl, {
      label: 'Cy',
      beforeOpen: (context) =>
        context.addInitScript(() => {
          const w = /** @type {any} */ (window);
          const Native = w.WebSocket;
          /** @type {Map<string, string>} */
          const names = new Map();
          /** @type {string[]} */
          const relabelled = [];
          w.relabelled = relabelled;
          /** @param {string} text */
          const rewrite = (text) => {
            let msg;
            try {
              msg = JSON.parse(text);
            } catch {
              return text;
            }
            if (msg?.type === 'joined') for (const q of msg.participants ?? []) names.set(q.id, q.name);
            if (msg?.type === 'participant_joined') names.set(msg.participant.id, msg.participant.name);
            if (msg?.type !== 'offer' || !msg.tracks) return text;
            const bob = [...names].find(([, n]) => n === 'Bob')?.[0];
            for (const [mid, info] of Object.entries(msg.tracks)) {
              const i = /** @type {any} */ (info);
              if (bob && names.get(i.participant) === 'Ada' && i.source === 'camera') {
                msg.tracks[mid] = { participant: bob, source: 'screen' };
                if (!relabelled.includes(mid)) relabelled.push(mid);
              }
            }
            return JSON.stringify(msg);
          };
          w.WebSocket = class extends Native {
            /** @param {string} type @param {any} listener @param {any} [options] */
            addEventListener(type, listener, options) {
              if (type !== 'message' || typeof listener !== 'function') return super.addEventListener(type, listener, options);
              return super.addEventListener(
                type,
                (/** @type {MessageEvent} */ ev) =>
                  listener.call(this, typeof ev.data === 'string' ? new MessageEvent('message', { data: rewrite(ev.data) }) : ev),
                options,
              );
            }
          };
        }),
    });
    ps.push(cy);
    ids.push(await joinMeeting(cy));
    const [ada, bob] = ps;
    await expectOneGroup([ada, bob, cy], ids);
    // Honest attribution: Ada's camera decodes at Bob's.
    await expectMediaFrom(bob, [ids[0]]);

    const [mid] = await cy.page.evaluate(() => /** @type {any} */ (window).relabelled);
    assert.equal(typeof mid, 'string', 'the lying offer relabelled no track');
    // Wait until Cy has received plenty of Ada's camera, and decodes Bob's camera.
    const seen = await waitFor("Cy to receive Ada's camera (as Bob's screen) and decode Bob's camera", async () => {
      const rs = await receivers(cy);
      const lied = rs.find((r) => r.mid === mid);
      const bobCam = rs.find((r) => r.participant === ids[1] && r.source === 'camera');
      return lied && bobCam && lied.packetsReceived > 300 && (lied.transform?.frames ?? 0) > 100 && bobCam.framesDecoded > 30 ? rs : null;
    }, { timeout: 40_000 });
    const before = await workerStats(cy);
    await sleep(2000);
    const rs = await receivers(cy);
    const w = await workerStats(cy);
    console.log('Cy receivers:', JSON.stringify(rs));
    console.log('Cy worker decrypt:', JSON.stringify(w.decrypt));
    const lied = /** @type {any} */ (rs.find((r) => r.mid === mid));
    assert.equal(lied.participant, ids[1], "Cy's session shows Ada's camera as Bob's");
    assert.equal(lied.framesDecoded, 0, `Cy decoded ${lied.framesDecoded} frames of the misattributed track`);
    assert.equal(lied.transform.passed, 0, 'the worker passed frames of the misattributed track');
    assert.ok(lied.transform.frames > 100, `too few frames reached the worker to mean anything: ${lied.transform.frames}`);
    assert.ok(w.decrypt.video.droppedWrongSender > before.decrypt.video.droppedWrongSender, 'the worker counts the frames of the wrong sender');
    assert.equal(w.decrypt.audio.droppedWrongSender, 0, 'audio was dropped as the wrong sender');
    assert.equal(w.decrypt.video.droppedNoPublisher + w.decrypt.audio.droppedNoPublisher, 0, 'a receiver had no publisher');
    // The correctly attributed tracks: Bob's camera keeps decoding; both microphones decrypt.
    const bobCam = /** @type {any} */ (rs.find((r) => r.participant === ids[1] && r.source === 'camera'));
    const bobCamBefore = /** @type {any} */ (seen.find((r) => r.mid === bobCam.mid));
    assert.ok(bobCam.framesDecoded > bobCamBefore.framesDecoded, "Bob's camera stopped decoding");
    for (const id of [ids[0], ids[1]]) {
      const mic = rs.find((r) => r.participant === id && r.source === 'microphone');
      assert.ok((mic?.transform?.passed ?? 0) > 50, `the microphone of ${id} does not decrypt: ${JSON.stringify(mic)}`);
    }

    // The check, not something else, held the frames back: told the right publisher (the
    // test's hook), the same receiver decodes Ada's camera.
    await relabel(cy, mid, ids[0]);
    await waitFor("Cy to decode Ada's camera once it is attributed to Ada", async () => {
      const r = (await receivers(cy)).find((x) => x.mid === mid);
      return r && r.framesDecoded > 10;
    });
    // And the other way: Bob's camera, labelled as Ada's, stops passing the worker.
    const w0 = (await workerStats(cy)).decrypt.video.droppedWrongSender;
    await relabel(cy, bobCam.mid, ids[0]);
    await waitFor('the worker to drop Bob\'s camera as the wrong sender', async () => (await workerStats(cy)).decrypt.video.droppedWrongSender > w0);
    const p0 = (await receivers(cy)).find((x) => x.mid === bobCam.mid)?.transform?.passed;
    await sleep(2000);
    const p1 = (await receivers(cy)).find((x) => x.mid === bobCam.mid)?.transform?.passed;
    console.log(`Bob's camera labelled as Ada's: the worker passed ${p0} frames before, ${p1} after 2 s`);
    assert.equal(p1, p0, "the worker passed Bob's camera under Ada's name");
  });
});
