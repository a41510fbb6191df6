// The meeting works by keyboard alone: typing, Tab, Shift+Tab, Enter and Space, no clicks.
// Joins and leaves are announced to screen readers through the polite live region.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS,
  expectTileGone,
  joinMeeting,
  openParticipant,
  participantId,
  randomRoomId,
  serverAndBrowser,
  waitFor,
  withParticipants,
} from './helpers.mjs';

const suite = serverAndBrowser();

/** The most Tab presses it may take to reach a control. */
const MAX_TABS = 30;

/**
 * What the focused element is called (its accessible name, as far as this page needs), and
 * whether it shows a focus ring.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<{name: string, ring: boolean}>}
 */
function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!(el instanceof HTMLElement) || el === document.body) return { name: '', ring: false };
    /** @param {Node} node @returns {string} Text without aria-hidden parts. */
    const text = (node) => {
      if (node instanceof Element && node.getAttribute('aria-hidden') === 'true') return '';
      if (node.nodeType === Node.TEXT_NODE) return node.textContent ?? '';
      return [...node.childNodes].map(text).join('');
    };
    const labelled = el instanceof HTMLInputElement || el instanceof HTMLSelectElement ? el.labels?.[0] : null;
    const name = (el.getAttribute('aria-label') ?? (labelled ? text(labelled) : text(el))).trim();
    const style = getComputedStyle(el);
    return { name, ring: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2 };
  });
}

/**
 * Press Tab (or Shift+Tab) until the control named `name` has the focus; fail after
 * MAX_TABS presses. Checks that the focused control shows a focus ring.
 * @param {import('playwright-core').Page} page
 * @param {string} name
 * @param {{back?: boolean}} [options]
 */
async function tabTo(page, name, { back = false } = {}) {
  /** @type {string[]} */
  const passed = [];
  for (let i = 0; i < MAX_TABS; i++) {
    await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
    const now = await focused(page);
    passed.push(now.name);
    if (now.name === name) {
      assert.ok(now.ring, `"${name}" has the focus but shows no focus ring`);
      return;
    }
  }
  throw new Error(`"${name}" never got the focus; ${back ? 'Shift+Tab' : 'Tab'} went through: ${passed.join(' | ')}`);
}

/**
 * @param {import('playwright-core').Page} page
 * @param {string} name
 */
function pressed(page, name) {
  return page.getByRole('button', { name, exact: true }).getAttribute('aria-pressed');
}

/**
 * Wait until the polite live region of `p` has said `text`.
 * @param {import('./helpers.mjs').Participant} p
 * @param {string} text
 */
async function expectAnnounced(p, text) {
  const region = p.page.locator('[aria-live="polite"]');
  assert.equal(await region.count(), 1, 'one polite live region');
  await waitFor(`${p.label} to announce "${text}"`, async () =>
    ((await region.textContent()) ?? '').includes(text),
  );
}

test('join, use the devices and leave with the keyboard alone; joins and leaves are announced', { timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = suite.server;
  const br = suite.browser;
  await withParticipants('keyboard', srv, async (ps) => {
    const room = `${srv.url}/r/${randomRoomId()}`;
    // Someone already in the meeting hears about Kim coming and going.
    const lee = await openParticipant(br, room, { label: 'Lee' });
    ps.push(lee);
    await joinMeeting(lee);

    const kim = await openParticipant(br, room, { label: 'Kim' });
    ps.push(kim);
    const { page, keyboard } = { page: kim.page, keyboard: kim.page.keyboard };

    // The page opens with the focus in the name field.
    await waitFor('the name field to have the focus', async () => (await focused(page)).name === 'Name');
    await keyboard.type('Kim');

    // Camera on with Space, then back to the microphone with Shift+Tab and on with Enter.
    await tabTo(page, 'Camera');
    await keyboard.press('Space');
    await waitFor('the camera to be on', async () => (await pressed(page, 'Camera')) === 'true');
    await tabTo(page, 'Microphone', { back: true });
    await keyboard.press('Enter');
    await waitFor('the microphone to be on', async () => (await pressed(page, 'Microphone')) === 'true');

    // Join with Enter.
    await tabTo(page, 'Join');
    await keyboard.press('Enter');
    await page.getByRole('button', { name: 'Leave', exact: true }).waitFor({ state: 'visible' });
    const kimId = await participantId(kim);
    await expectAnnounced(kim, 'You joined the meeting.');
    await expectAnnounced(lee, 'Kim joined');

    // The focus moved to the meeting's controls: mute with Space, right where it is.
    assert.equal((await focused(page)).name, 'Microphone');
    await keyboard.press('Space');
    await waitFor('the microphone to be off', async () => (await pressed(page, 'Microphone')) === 'false');

    // The participant list opens and closes by keyboard.
    await tabTo(page, 'Participants');
    const list = page.getByRole('list');
    const wasOpen = await list.isVisible();
    await keyboard.press('Enter');
    await waitFor('the participant list to toggle', async () => (await list.isVisible()) !== wasOpen);
    if (!(await list.isVisible())) await keyboard.press('Enter');
    await waitFor('the participant list to name Kim and Lee', async () => {
      const text = (await list.textContent()) ?? '';
      return text.includes('Kim (you)') && text.includes('Lee');
    });

    // Leave with Enter: back at the pre-join form, the focus on Join, devices off.
    await tabTo(page, 'Leave');
    await keyboard.press('Enter');
    await page.getByRole('button', { name: 'Join', exact: true }).waitFor({ state: 'visible' });
    await expectTileGone(lee, kimId);
    await expectAnnounced(lee, 'Kim left');
    assert.equal((await focused(page)).name, 'Join');
    assert.equal(await pressed(page, 'Camera'), 'false');
    assert.equal(await pressed(page, 'Microphone'), 'false');

    // Join again right away with Enter: still nothing on (no setting carries over).
    await keyboard.press('Enter');
    await page.getByRole('button', { name: 'Leave', exact: true }).waitFor({ state: 'visible' });
    await participantId(kim);
    assert.equal(await pressed(page, 'Camera'), 'false');
    assert.equal(await pressed(page, 'Microphone'), 'false');
    await tabTo(page, 'Leave');
    await keyboard.press('Enter');
    await page.getByRole('button', { name: 'Join', exact: true }).waitFor({ state: 'visible' });
  });
});
