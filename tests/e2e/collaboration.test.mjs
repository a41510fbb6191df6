// Chat, raised hands and screen sharing between three browsers in one room.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS,
  expectNoAlert,
  inboundStreams,
  joinMeeting,
  openParticipant,
  randomRoomId,
  serverAndBrowser,
  sleep,
  waitFor,
  withParticipants,
} from './helpers.mjs';

const suite = serverAndBrowser();

/**
 * Open three participants in a new room and join them one after another (devices as the
 * page starts them). Returns their IDs.
 * @param {import('./helpers.mjs').Participant[]} ps
 * @param {string[]} labels
 */
async function meetingOf(ps, labels) {
  const roomUrl = `${suite.server.url}/r/${randomRoomId()}`;
  /** @type {string[]} */
  const ids = [];
  for (const label of labels) {
    const p = await openParticipant(suite.browser, roomUrl, { label });
    ps.push(p);
    ids.push(await joinMeeting(p));
  }
  // Everyone sees everyone before anything is said.
  for (const p of ps) {
    await waitFor(`${p.label} to show ${labels.length} tiles`, () =>
      p.page.evaluate((n) => document.querySelectorAll('#grid .tile').length === n, labels.length),
    );
  }
  return ids;
}

/**
 * Open the chat panel of `p` and send `text`, to `to` (a display name) if given.
 * @param {import('./helpers.mjs').Participant} p
 * @param {string} text
 * @param {string} [to]
 */
async function sendChat(p, text, to) {
  const { page } = p;
  const panel = page.locator('#chat-panel');
  if (!(await panel.isVisible())) await page.getByRole('button', { name: /^Chat/ }).click();
  await page.getByLabel('To', { exact: true }).selectOption({ label: to ?? 'Everyone' });
  await page.getByLabel('Message', { exact: true }).fill(text);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
}

/**
 * The texts of the chat log of `p`.
 * @param {import('./helpers.mjs').Participant} p
 * @returns {Promise<string[]>}
 */
function chatLines(p) {
  return p.page.locator('#chat-log .chat-message').allTextContents();
}

test('a chat message to everyone reaches the two others', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withParticipants('chat-room', suite.server, async (ps) => {
    await meetingOf(ps, ['ada', 'bob', 'cy']);
    const [ada, bob, cy] = ps;
    await sendChat(ada, 'Hello everyone');
    // The sender shows its own message (the server does not echo it).
    await waitFor('ada to show her own message', async () =>
      (await chatLines(ada)).some((l) => l.includes('Hello everyone')),
    );
    for (const p of [bob, cy]) {
      // The chat is closed there: the button shows one unread message.
      await waitFor(`${p.label} to show an unread message`, () =>
        p.page.evaluate(() => document.getElementById('chat-unread')?.textContent === '1'),
      );
      await p.page.getByRole('button', { name: /^Chat/ }).click();
      const lines = await waitFor(`${p.label} to show the message`, async () => {
        const all = await chatLines(p);
        return all.length > 0 ? all : null;
      });
      assert.equal(lines.length, 1);
      assert.match(lines[0], /^ada: Hello everyone$/);
      assert.equal(await p.page.locator('#chat-log').getAttribute('role'), 'log');
      await expectNoAlert(p);
    }
    // Nothing of the chat is stored in the browser.
    const stored = await bob.page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
    assert.doesNotMatch(stored, /Hello everyone/);
  });
});

test('a private chat message reaches only its addressee', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withParticipants('chat-private', suite.server, async (ps) => {
    await meetingOf(ps, ['ada', 'bob', 'cy']);
    const [ada, bob, cy] = ps;
    await cy.page.getByRole('button', { name: /^Chat/ }).click();
    await sendChat(ada, 'Only for Bob', 'bob');
    await waitFor('ada to show her private message', async () =>
      (await chatLines(ada)).some((l) => l.includes('You to bob') && l.includes('Private') && l.includes('Only for Bob')),
    );
    await bob.page.getByRole('button', { name: /^Chat/ }).click();
    const lines = await waitFor('bob to show the private message', async () => {
      const all = await chatLines(bob);
      return all.length > 0 ? all : null;
    });
    assert.match(lines[0], /^ada Private: Only for Bob$/);
    // A message to everyone afterwards reaches cy: the private one never did.
    await sendChat(ada, 'Now for all');
    await waitFor('cy to show the room message', async () =>
      (await chatLines(cy)).some((l) => l.includes('Now for all')),
    );
    const cyLines = await chatLines(cy);
    assert.deepEqual(cyLines, ['ada: Now for all']);
    assert.ok(!cy.logs.some((l) => l.includes('Only for Bob')), 'cy received the private text');
  });
});

test('a raised hand shows on the tile and in the list of the others', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withParticipants('raise-hand', suite.server, async (ps) => {
    const [, bobId] = await meetingOf(ps, ['ada', 'bob', 'cy']);
    const [ada, bob, cy] = ps;
    const hand = bob.page.getByRole('button', { name: 'Raise hand', exact: true });
    assert.equal(await hand.getAttribute('aria-pressed'), 'false');
    await hand.click();
    await waitFor('bob to see his hand raised', async () => (await hand.getAttribute('aria-pressed')) === 'true');
    for (const p of [ada, cy]) {
      await p.page
        .locator(`.tile[data-participant-id="${bobId}"] .badge.hand`)
        .waitFor({ state: 'visible' });
      await p.page.locator('#people-list li', { hasText: 'bob' }).locator('.badge.hand').waitFor();
      await waitFor(`${p.label} to announce the raised hand`, () =>
        p.page.evaluate(() => document.getElementById('announcer')?.textContent?.includes('bob raised a hand') ?? false),
      );
    }
    await hand.click();
    for (const p of [ada, cy]) {
      await p.page
        .locator(`.tile[data-participant-id="${bobId}"] .badge.hand`)
        .waitFor({ state: 'hidden' });
    }
  });
});

test('a shared screen reaches the others as a presentation and goes away when stopped', { timeout: TEST_TIMEOUT_MS }, async () => {
  await withParticipants('screen-share', suite.server, async (ps) => {
    const [adaId] = await meetingOf(ps, ['ada', 'bob', 'cy']);
    const [ada, bob, cy] = ps;
    const share = ada.page.getByRole('button', { name: 'Share screen', exact: true });
    await share.click();
    await waitFor('ada to share her screen', async () => (await share.getAttribute('aria-pressed')) === 'true');
    await expectNoAlert(ada);
    // The sender encodes at most the meeting's screen_share_fps frames per second.
    const cap = await waitFor('ada to cap the screen frame rate', () =>
      ada.page.evaluate(() => {
        const c = /** @type {any} */ (window).conclave;
        const fps = c.session.settings.screen_share_fps;
        const sender = c.pc.getSenders().find((/** @type {RTCRtpSender} */ s) => s.track?.kind === 'video' && s.track.label !== '' && s.track.getSettings().displaySurface !== undefined);
        const max = sender?.getParameters().encodings?.[0]?.maxFramerate;
        return max !== undefined ? { fps, max } : null;
      }),
    );
    assert.equal(cap.max, cap.fps);
    for (const p of [bob, cy]) {
      const screen = await waitFor(`${p.label} to decode ada's screen`, async () =>
        (await inboundStreams(p)).find(
          (s) => s.kind === 'video' && s.participant === adaId && s.source === 'screen' && s.framesDecoded > 0,
        ) ?? null,
      );
      await sleep(1500);
      await waitFor(`${p.label}: screen frames to keep growing`, async () => {
        const now = (await inboundStreams(p)).find((s) => s.id === screen.id);
        return now !== undefined && now.framesDecoded > screen.framesDecoded;
      });
      await waitFor(`${p.label}: the presentation tile to play`, () =>
        p.page.evaluate((id) => {
          const v = document.querySelector(`.presentation[data-participant-id="${id}"] video`);
          return v instanceof HTMLVideoElement && v.videoWidth > 0;
        }, adaId),
      );
      assert.equal(
        await p.page.locator('.presentation figcaption').textContent(),
        'Screen of ada',
      );
    }
    await share.click();
    assert.equal(await share.getAttribute('aria-pressed'), 'false');
    for (const p of [bob, cy]) {
      await p.page.locator('.presentation').waitFor({ state: 'detached' });
      assert.equal(await p.page.locator('#presentations').isHidden(), true);
    }
  });
});
