// What every view of the page shares: finding elements, the alert, the status line, the
// announcements for screen readers, and copying a link. Every text is a catalog key, so a
// language switch redraws what is shown.

import { onLocaleChange, t } from './i18n.js';

/** @typedef {import('./i18n.js').MessageKey} MessageKey */

/**
 * A message parameter: a text or number as it is, or another message drawn in the current
 * language (e.g. the reason inside "The meeting connection ended: {reason}").
 * @typedef {string | number | {key: MessageKey}} Param
 */

/**
 * A message to show: a catalog key and its parameters, drawn in the current language.
 * @typedef {{key: MessageKey, params?: Record<string, Param>}} Message
 */

/**
 * The element with `id`, checked to be of the expected class.
 * @template {HTMLElement} T
 * @param {string} id
 * @param {new () => T} type
 * @returns {T}
 */
export function byId(id, type) {
  const el = document.getElementById(id);
  if (!(el instanceof type)) throw new Error(`index.html lacks #${id} (${type.name})`);
  return el;
}

const alertBox = byId('alert', HTMLDivElement);
const statusLine = byId('status', HTMLParagraphElement);
const announcer = byId('announcer', HTMLDivElement);

/** How long a passing status message (e.g. "Link copied.") stays before the usual one returns. */
const FLASH_MS = 5000;
/** How many announcements stay in the live region (older ones are removed). */
const ANNOUNCEMENTS_KEPT = 5;

/** @type {Message | null} */
let alertMessage = null;
/** @type {Message | null} */
let statusMessage = null;
/** @type {Message | null} */
let flashMessage = null;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let flashTimer;

/** @param {Message | null} message */
function render(message) {
  if (!message) return '';
  if (!message.params) return t(message.key);
  /** @type {Record<string, string | number>} */
  const params = {};
  for (const [name, value] of Object.entries(message.params)) {
    params[name] = typeof value === 'object' ? t(value.key) : value;
  }
  return t(message.key, params);
}

function drawAlert() {
  alertBox.textContent = render(alertMessage);
  alertBox.hidden = alertMessage === null;
}

function drawStatus() {
  statusLine.textContent = render(flashMessage ?? statusMessage);
}

onLocaleChange(() => {
  drawAlert();
  drawStatus();
});

/**
 * Show an error the user should read (role="alert": screen readers say it at once).
 * @param {MessageKey} key
 * @param {Record<string, Param>} [params]
 */
export function showAlert(key, params) {
  alertMessage = params ? { key, params } : { key };
  drawAlert();
}

export function clearAlert() {
  alertMessage = null;
  drawAlert();
}

/**
 * Set the status line (role="status"), or clear it with null.
 * @param {MessageKey | null} key
 * @param {Record<string, Param>} [params]
 */
export function setStatus(key, params) {
  statusMessage = key === null ? null : params ? { key, params } : { key };
  drawStatus();
}

/**
 * Show a passing message in the status line for a few seconds.
 * @param {MessageKey} key
 */
export function flashStatus(key) {
  flashMessage = { key };
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => {
    flashMessage = null;
    drawStatus();
  }, FLASH_MS);
  drawStatus();
}

/**
 * Tell screen-reader users what happened (the polite live region), e.g. "Ada joined". The
 * text is fixed in the language of the moment: an announcement is said once.
 * @param {MessageKey} key
 * @param {Record<string, string | number>} [params]
 */
export function announce(key, params) {
  const line = document.createElement('p');
  line.textContent = t(key, params);
  announcer.append(line);
  while (announcer.childElementCount > ANNOUNCEMENTS_KEPT) announcer.firstElementChild?.remove();
}

/**
 * Copy `input`'s text (a link) to the clipboard. Where the clipboard is not available or
 * refuses, show and select the text instead and tell the user to copy it with the keyboard.
 * @param {HTMLInputElement} input
 * @param {() => void} [reveal] Makes `input` visible if it is not.
 * @returns {Promise<boolean>} Whether the text is on the clipboard.
 */
export async function copyLink(input, reveal) {
  try {
    if (!navigator.clipboard?.writeText) throw new Error('no clipboard');
    await navigator.clipboard.writeText(input.value);
    flashStatus('linkCopied');
    return true;
  } catch {
    reveal?.();
    input.focus();
    input.select();
    flashStatus('linkSelected');
    return false;
  }
}
