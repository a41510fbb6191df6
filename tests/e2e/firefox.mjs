// Debian's Firefox ESR for the browser tests, driven over WebDriver BiDi by puppeteer-core.
//
// A Firefox participant has the shape of helpers.mjs's Participant (label, context, page,
// logs) where the helpers only call `page.evaluate`, `page.screenshot` and `context.close`
// (participantId, inboundStreams, expectMediaFrom, saveArtifacts, withParticipants), so the
// same assertions run on both browsers. The UI actions that use Playwright locators there
// have DOM equivalents here.
//
// Prefs (see the shared testing notes):
// - media.navigator.streams.fake / permission.disabled: fake camera and microphone, no prompt;
// - media.peerconnection.ice.loopback: Firefox pairs our 127.0.0.1 media candidate only with
//   loopback candidates, which it gathers only with this pref on. A stock Firefox does not:
//   against a loopback-only server it needs the TURN path (firefox-turn.test.mjs).

import puppeteer from 'puppeteer-core';
import { WAIT_MS, waitFor } from './helpers.mjs';

/** Prefs every Firefox of the tests gets. */
const BASE_PREFS = {
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'media.autoplay.default': 0,
  'media.autoplay.blocking_policy': 0,
  // Headless tests have no focus: keep timers and media running in background contexts.
  'dom.min_background_timeout_value': 4,
  'browser.shell.checkDefaultBrowser': false,
};

/**
 * Launch headless Firefox ESR. `loopback: false` leaves out the ICE loopback pref, as a stock
 * Firefox has it.
 * @param {{loopback?: boolean}} [options]
 * @returns {Promise<import('puppeteer-core').Browser>}
 */
export function launchFirefox({ loopback = true } = {}) {
  return puppeteer.launch({
    browser: 'firefox',
    executablePath: process.env.FIREFOX_BIN || '/usr/bin/firefox-esr',
    headless: true,
    acceptInsecureCerts: true,
    protocolTimeout: WAIT_MS * 3,
    timeout: WAIT_MS * 3,
    extraPrefsFirefox: {
      ...BASE_PREFS,
      ...(loopback ? { 'media.peerconnection.ice.loopback': true } : {}),
    },
  });
}

/**
 * A new Firefox user context (its own cookies and peer connection) on `url`, as a
 * Participant of helpers.mjs.
 * @param {import('puppeteer-core').Browser} browser
 * @param {string} url
 * @param {{label: string}} options
 * @returns {Promise<import('./helpers.mjs').Participant>}
 */
export async function openFirefoxParticipant(browser, url, { label }) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  /** @type {string[]} */
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e instanceof Error ? e.message : String(e)}`));
  await page.goto(url, { waitUntil: 'load' });
  return /** @type {any} */ ({ label, context, page, logs, browserName: 'firefox' });
}

/**
 * Click the element `selector` in `p`'s page (a DOM click: one page, no mouse to share).
 * @param {import('./helpers.mjs').Participant} p
 * @param {string} selector
 */
async function click(p, selector) {
  await waitFor(`${p.label}: ${selector} to be enabled and visible`, () =>
    p.page.evaluate((sel) => {
      const el = document.querySelector(sel);
      if (!(el instanceof HTMLElement) || el.hidden || (el instanceof HTMLButtonElement && el.disabled)) return false;
      el.click();
      return true;
    }, selector),
  );
}

/**
 * Type the name, click Join, wait until the meeting shows; returns the participant ID.
 * @param {import('./helpers.mjs').Participant} p
 * @returns {Promise<string>}
 */
export async function joinFirefox(p) {
  await waitFor(`${p.label}: the name field`, () =>
    p.page.evaluate((name) => {
      const input = document.querySelector('#name-input');
      if (!(input instanceof HTMLInputElement)) return false;
      input.value = name;
      input.dispatchEvent(new Event('input', { bubbles: true }));
      return true;
    }, p.label),
  );
  await click(p, '#join-button');
  await waitFor(`${p.label}: the Leave button (in the meeting)`, () =>
    p.page.evaluate(() => {
      const leave = document.querySelector('#leave-button');
      return leave instanceof HTMLElement && !leave.hidden;
    }),
  );
  return waitFor(`${p.label} to have a participant ID and a peer connection`, () =>
    p.page.evaluate(() => {
      const c = /** @type {any} */ (window).conclave;
      return c && c.pc && c.session && c.session.id ? String(c.session.id) : null;
    }),
  );
}

/**
 * Turn camera and microphone on (ids camera-toggle, microphone-toggle) and wait until both
 * report it.
 * @param {import('./helpers.mjs').Participant} p
 */
export async function cameraAndMicrophoneOnFirefox(p) {
  for (const id of ['camera-toggle', 'microphone-toggle']) {
    const pressed = await p.page.evaluate((i) => document.getElementById(i)?.getAttribute('aria-pressed'), id);
    if (pressed !== 'true') await click(p, `#${id}`);
  }
  await waitFor(`${p.label}: camera and microphone to be on`, () =>
    p.page.evaluate(() =>
      ['camera-toggle', 'microphone-toggle'].every((i) => document.getElementById(i)?.getAttribute('aria-pressed') === 'true'),
    ),
  );
}
