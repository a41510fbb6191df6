// What the meeting view shows about the people in it: who is speaking (from the audio that
// really arrives: Chromium's fake microphone beeps), a speaker view next to the grid, and the
// quality of every connection (from getStats()).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TEST_TIMEOUT_MS,
  expectMediaFrom,
  expectNoAlert,
  joinMeeting,
  openParticipant,
  randomRoomId,
  serverAndBrowser,
  setToggles,
  waitFor,
  withParticipants,
} from './helpers.mjs';
import { graphicContrastFailures, textContrastFailures } from './contrast.mjs';

const suite = serverAndBrowser();

/**
 * The `data-speaking` of every tile on `p`'s page, by participant ID ("self" for the own).
 * @param {import('./helpers.mjs').Participant} p
 * @returns {Promise<Record<string, string>>}
 */
function speakingTiles(p) {
  return p.page.evaluate(() => {
    /** @type {Record<string, string>} */
    const out = {};
    for (const el of document.querySelectorAll('.tile')) {
      const tile = /** @type {HTMLElement} */ (el);
      out[tile.dataset.participantId ?? 'self'] = tile.dataset.speaking ?? '';
    }
    return out;
  });
}

/**
 * Colour checks for the marks of this view, in both schemes: text, the speaking outline,
 * and the quality bars.
 * @param {import('./helpers.mjs').Participant} p
 * @param {string} what
 * @returns {Promise<string[]>}
 */
async function contrastProblems(p, what) {
  /** @type {string[]} */
  const problems = [];
  for (const colorScheme of /** @type {const} */ (['light', 'dark'])) {
    await p.page.emulateMedia({ colorScheme });
    const failures = [
      ...(await textContrastFailures(p.page)),
      ...(await graphicContrastFailures(p.page, '.tile[data-speaking="true"]', 'outline-color')),
      ...(await graphicContrastFailures(p.page, '.quality .bars > span', 'border-top-color')),
    ];
    for (const f of failures) {
      problems.push(`${what} (${colorScheme}): "${f.text}" ${f.color} on ${f.background} is ${f.ratio}:1, needs ${f.required}:1`);
    }
  }
  await p.page.emulateMedia({ colorScheme: null });
  return problems;
}

test('the tile of whoever speaks is highlighted, with words, for everyone; a silent one is not', { timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = suite.server;
  const br = suite.browser;
  await withParticipants('active-speaker', srv, async (ps) => {
    const room = `${srv.url}/r/${randomRoomId()}`;
    const [ada, bob, cy] = await Promise.all(['ada', 'bob', 'cy'].map((label) => openParticipant(br, room, { label })));
    ps.push(ada, bob, cy);
    const adaId = await joinMeeting(ada);
    const bobId = await joinMeeting(bob);
    await joinMeeting(cy);
    // Ada's microphone is on (the fake device beeps); Bob only shows his camera.
    await setToggles(ada, ['Microphone'], true);
    await setToggles(bob, ['Camera'], true);

    for (const p of [bob, cy]) {
      const seen = await waitFor(`${p.label} to highlight ada as the speaker`, async () => {
        const tiles = await speakingTiles(p);
        return tiles[adaId] === 'true' ? tiles : null;
      });
      if (p === cy) assert.equal(seen[bobId], 'false', 'the silent one is not highlighted');
      // Not by colour alone: the tile says so in words, and its accessible name carries them.
      const tile = p.page.locator(`.tile[data-participant-id="${adaId}"]`);
      await tile.getByText('Speaking', { exact: true }).waitFor({ state: 'visible' });
      await p.page.getByRole('figure', { name: /^ada\b.*Speaking/ }).waitFor();
    }
    // Bob (silent) is never the highlighted one while ada beeps.
    for (let i = 0; i < 6; i++) {
      const tiles = await speakingTiles(cy);
      assert.notEqual(tiles[bobId], 'true', 'the silent one was highlighted');
      await new Promise((r) => setTimeout(r, 250));
    }
    // Ada's own tile lights up too, from her microphone's level.
    await waitFor('ada to highlight her own tile', async () => (await speakingTiles(ada)).self === 'true');

    assert.deepEqual(await contrastProblems(cy, 'speaker highlighted'), []);

    // When ada stops, the highlight goes (after its hold time) and nobody else gets it.
    await setToggles(ada, ['Microphone'], false);
    for (const p of [bob, cy]) {
      await waitFor(`${p.label} to drop the highlight`, async () => {
        const tiles = await speakingTiles(p);
        return Object.values(tiles).every((v) => v === 'false');
      });
    }
    for (const p of ps) await expectNoAlert(p);
  });
});

test('the speaker view shows the speaker large and the others in a strip, by keyboard, and a shared screen first', { timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = suite.server;
  const br = suite.browser;
  await withParticipants('speaker-view', srv, async (ps) => {
    const room = `${srv.url}/r/${randomRoomId()}`;
    const [ada, bob, cy] = await Promise.all(['ada', 'bob', 'cy'].map((label) => openParticipant(br, room, { label })));
    ps.push(ada, bob, cy);
    const adaId = await joinMeeting(ada);
    const bobId = await joinMeeting(bob);
    await joinMeeting(cy);
    await setToggles(ada, ['Camera', 'Microphone'], true);
    await setToggles(bob, ['Camera'], true);
    const { page } = cy;
    for (const id of [adaId, bobId]) {
      await waitFor(`cy to show the video of ${id}`, () =>
        page.evaluate((pid) => {
          const v = document.querySelector(`.tile[data-participant-id="${pid}"] video`);
          return v instanceof HTMLVideoElement && !v.hidden && v.videoWidth > 0;
        }, id),
      );
    }
    const grid = page.locator('#grid');
    const button = page.getByRole('button', { name: 'Speaker view', exact: true });
    assert.equal(await grid.getAttribute('data-layout'), 'grid');
    assert.equal(await button.getAttribute('aria-pressed'), 'false');

    // Reach the switch with Tab alone, and turn it on with Space.
    await page.locator('body').focus();
    await waitFor('Tab to reach the speaker view switch', async () => {
      await page.keyboard.press('Tab');
      return button.evaluate((el) => el === document.activeElement);
    }, { interval: 0, timeout: 20_000 });
    await page.keyboard.press('Space');
    await waitFor('the speaker view', async () => (await grid.getAttribute('data-layout')) === 'speaker');
    assert.equal(await button.getAttribute('aria-pressed'), 'true');

    // Ada speaks: her tile is the large one; the others are small, in the strip below it.
    const sizes = await waitFor('ada to be shown large', () =>
      page.evaluate((id) => {
        const featured = document.querySelectorAll('#grid > .tile[data-featured="true"]');
        if (featured.length !== 1 || /** @type {HTMLElement} */ (featured[0]).dataset.participantId !== id) return null;
        const big = featured[0].getBoundingClientRect();
        const small = [...document.querySelectorAll('#grid > .tile:not([data-featured])')].map((el) => el.getBoundingClientRect());
        return { big: { width: big.width, bottom: big.bottom }, small: small.map((r) => ({ width: r.width, top: r.top })) };
      }, adaId),
    );
    assert.equal(sizes.small.length, 2, 'two tiles in the strip');
    for (const s of sizes.small) {
      assert.ok(s.width * 2 < sizes.big.width, `strip tile ${s.width}px vs large ${sizes.big.width}px`);
      assert.ok(s.top >= sizes.big.bottom, 'the strip is below the large tile');
    }

    // A shared screen takes the large place: every tile goes to the strip.
    await bob.page.getByRole('button', { name: 'Share screen', exact: true }).click();
    await page.locator(`.presentation[data-participant-id="${bobId}"]`).waitFor({ state: 'visible' });
    await waitFor('no large tile while a screen is shown', () =>
      page.evaluate(() => document.querySelectorAll('#grid > .tile[data-featured]').length === 0),
    );
    await bob.page.getByRole('button', { name: 'Share screen', exact: true }).click();
    await waitFor('a large tile again after the screen went', () =>
      page.evaluate(() => document.querySelectorAll('#grid > .tile[data-featured="true"]').length === 1),
    );

    // Enter switches back to the grid: every tile alike again.
    await button.focus();
    await page.keyboard.press('Enter');
    await waitFor('the grid again', async () => (await grid.getAttribute('data-layout')) === 'grid');
    assert.equal(await button.getAttribute('aria-pressed'), 'false');
    assert.equal(await page.locator('#grid > .tile[data-featured]').count(), 0);
    for (const p of ps) await expectNoAlert(p);
  });
});

test('every tile with media and the control bar show a connection quality, in words, in both languages', { timeout: TEST_TIMEOUT_MS }, async () => {
  const srv = suite.server;
  const br = suite.browser;
  await withParticipants('quality', srv, async (ps) => {
    const room = `${srv.url}/r/${randomRoomId()}`;
    const [ada, bob, cy] = await Promise.all(['ada', 'bob', 'cy'].map((label) => openParticipant(br, room, { label })));
    ps.push(ada, bob, cy);
    const adaId = await joinMeeting(ada);
    const bobId = await joinMeeting(bob);
    // Cy joins without devices: there is nothing of hers to judge.
    await cy.page.getByLabel('Name', { exact: true }).fill('cy');
    await cy.page.getByRole('button', { name: 'Join without devices', exact: true }).click();
    await cy.page.getByRole('button', { name: 'Leave', exact: true }).waitFor();
    await setToggles(ada, ['Camera', 'Microphone'], true);
    await setToggles(bob, ['Camera', 'Microphone'], true);
    await expectMediaFrom(cy, [adaId, bobId]);
    const cyId = await cy.page.evaluate(() => String(/** @type {any} */ (window).conclave.session.id));

    const valid = /^Connection: (Good|Fair|Poor)$/;
    for (const [p, others] of /** @type {const} */ ([[ada, [bobId]], [bob, [adaId]], [cy, [adaId, bobId]]])) {
      for (const id of others) {
        const badge = p.page.locator(`.tile[data-participant-id="${id}"]`).getByRole('img', { name: valid });
        await badge.waitFor({ state: 'visible' });
        const value = await badge.getAttribute('data-quality');
        assert.ok(['good', 'fair', 'poor'].includes(value ?? ''), `${p.label}: quality of ${id} is ${value}`);
        assert.match((await badge.textContent()) ?? '', /^(Good|Fair|Poor)$/, 'the word is shown');
      }
      // Our own connection, in the control bar.
      await p.page.getByRole('group', { name: 'Meeting controls' })
        .getByRole('img', { name: /^Your connection: (Good|Fair|Poor)$/ }).waitFor({ state: 'visible' });
    }
    // Nothing arrives from cy (she sends nothing): her tile claims no quality.
    for (const p of [ada, bob]) {
      assert.equal(
        await p.page.locator(`.tile[data-participant-id="${cyId}"] .quality`).isVisible(),
        false,
        `${p.label} shows a quality for cy, who sends nothing`,
      );
    }

    assert.deepEqual(await contrastProblems(ada, 'quality shown'), []);

    // In German.
    await ada.page.locator('#language-select').selectOption('de');
    await ada.page.locator(`.tile[data-participant-id="${bobId}"]`)
      .getByRole('img', { name: /^Verbindung: (Gut|Mittel|Schlecht)$/ }).waitFor({ state: 'visible' });
    await ada.page.getByRole('img', { name: /^Ihre Verbindung: (Gut|Mittel|Schlecht)$/ }).waitFor({ state: 'visible' });
    for (const p of ps) await expectNoAlert(p);
  });
});
