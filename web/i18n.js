// The message catalog. English and German; German when the browser prefers it.
//
// Every text the page shows comes from here. Keys are the same in every language; a key
// missing from a language falls back to English.

/** @typedef {'en' | 'de'} Locale */

const en = {
  title: 'Conclave',
  tagline: 'Confidential video meetings',
  newMeeting: 'New meeting',
  joinExistingLabel: 'Meeting ID or link',
  joinExisting: 'Open',
  invalidRoom: 'That is not a meeting ID or link.',
  name: 'Name',
  microphone: 'Microphone',
  camera: 'Camera',
  join: 'Join',
  leave: 'Leave',
  you: 'You',
  connecting: 'Connecting…',
  alone: 'Nobody else is here yet. Share the link of this page to invite others.',
  left: 'You left the meeting.',
  ended: 'The meeting connection ended ({reason}).',
  mediaFailed: 'Could not use the {device}: {error}',
  serverError: 'Error {code}: {message}',
  home: 'Home',
};

/** @type {Record<Locale, Partial<typeof en>>} */
const catalogs = {
  en,
  de: {
    title: 'Conclave',
    tagline: 'Vertrauliche Videokonferenzen',
    newMeeting: 'Neue Besprechung',
    joinExistingLabel: 'Besprechungs-ID oder Link',
    joinExisting: 'Öffnen',
    invalidRoom: 'Das ist keine Besprechungs-ID und kein Link zu einer Besprechung.',
    name: 'Name',
    microphone: 'Mikrofon',
    camera: 'Kamera',
    join: 'Beitreten',
    leave: 'Verlassen',
    you: 'Sie',
    connecting: 'Verbinde …',
    alone: 'Noch ist niemand sonst hier. Teilen Sie den Link dieser Seite, um andere einzuladen.',
    left: 'Sie haben die Besprechung verlassen.',
    ended: 'Die Verbindung zur Besprechung wurde beendet ({reason}).',
    mediaFailed: '{device} konnte nicht verwendet werden: {error}',
    serverError: 'Fehler {code}: {message}',
    home: 'Startseite',
  },
};

/** @typedef {keyof typeof en} MessageKey */

/**
 * Pick the language: the first of `languages` that is English or German wins; English if none.
 * @param {readonly string[]} languages e.g. `navigator.languages`
 * @returns {Locale}
 */
export function pickLocale(languages) {
  for (const tag of languages) {
    const primary = tag.toLowerCase().split('-')[0];
    if (primary === 'de') return 'de';
    if (primary === 'en') return 'en';
  }
  return 'en';
}

/** The page's language, chosen once at load. */
export const locale = pickLocale(
  typeof navigator === 'undefined' ? [] : navigator.languages ?? [navigator.language],
);

/**
 * The text for `key` in the page's language, with `{name}` placeholders filled from `params`.
 * @param {MessageKey} key
 * @param {Record<string, string>} [params]
 * @returns {string}
 */
export function t(key, params) {
  const text = catalogs[locale][key] ?? en[key];
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name) => params[name] ?? whole);
}

/**
 * Whether `key` is a message key.
 * @param {string} key
 * @returns {key is MessageKey}
 */
export function isMessageKey(key) {
  return Object.hasOwn(en, key);
}

/**
 * Fill every element under `root` that has `data-i18n="key"` with its text, and set the
 * document language.
 * @param {ParentNode} root
 */
export function translatePage(root) {
  document.documentElement.lang = locale;
  for (const el of root.querySelectorAll('[data-i18n]')) {
    const key = el.getAttribute('data-i18n') ?? '';
    if (isMessageKey(key)) el.textContent = t(key);
    else console.warn(`i18n: no message "${key}"`);
  }
}
