// The chat panel: the message log (an aria-live log), the recipient choice and the text
// field. Messages live only in this page's memory: nothing is stored, and leaving clears them.
// Knows nothing of the wire: room.js sends what this panel hands it and feeds it what arrives.

import { onLocaleChange, t } from './i18n.js';

/**
 * One line of the log.
 * @typedef {object} ChatEntry
 * @property {string | null} from The sender's name; null for our own messages.
 * @property {string | null} to The addressee's name for a private message we sent.
 * @property {string} text
 * @property {boolean} private
 */

/**
 * @typedef {object} ChatElements
 * @property {HTMLElement} log
 * @property {HTMLFormElement} form
 * @property {HTMLSelectElement} recipient
 * @property {HTMLInputElement} input
 * @property {HTMLElement} unread The badge with the number of unread messages.
 * @property {HTMLElement} unreadLabel Its text for screen readers.
 */

/**
 * @typedef {(text: string, to: string | null) => boolean | Promise<boolean>} SendChat
 * Whether the message went out (a promise when it is encrypted first); on false the text
 * stays in the input, so nothing typed is lost.
 *   Send `text` to participant `to` (null for everyone); false if it could not be sent.
 */

export class ChatPanel {
  /** @type {ChatElements} */
  #ui;
  /** @type {ChatEntry[]} */
  #entries = [];
  /** @type {{id: string, name: string}[]} */
  #people = [];
  #unread = 0;
  #open = false;

  /**
   * @param {ChatElements} ui
   * @param {SendChat} send
   */
  constructor(ui, send) {
    this.#ui = ui;
    ui.form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const typed = ui.input.value;
      const text = typed.trim();
      if (!text) return;
      const to = ui.recipient.value || null;
      const toName = to ? (this.#people.find((p) => p.id === to)?.name ?? null) : null;
      if (!(await send(text, to))) return;
      this.#add({ from: null, to: toName, text, private: to !== null });
      // clear it unless something else was typed meanwhile
      if (ui.input.value === typed) ui.input.value = '';
      ui.input.focus();
    });
    onLocaleChange(() => this.#redraw());
    this.#redraw();
  }

  /**
   * Whether the panel is shown; opening it marks everything read.
   * @param {boolean} open
   */
  setOpen(open) {
    this.#open = open;
    if (open) this.#setUnread(0);
  }

  /**
   * The people a private message can go to.
   * @param {{id: string, name: string}[]} people
   */
  setPeople(people) {
    this.#people = people;
    this.#drawRecipients();
  }

  /**
   * Show a message someone else sent.
   * @param {string} from The sender's name.
   * @param {string} text
   * @param {boolean} isPrivate
   * @returns {boolean} Whether it arrived while the panel was closed.
   */
  receive(from, text, isPrivate) {
    this.#add({ from, to: null, text, private: isPrivate });
    if (this.#open) return false;
    this.#setUnread(this.#unread + 1);
    return true;
  }

  /** Forget every message (leaving the meeting). */
  clear() {
    this.#entries = [];
    this.#ui.log.replaceChildren();
    this.#ui.input.value = '';
    this.#setUnread(0);
  }

  /** @param {ChatEntry} entry */
  #add(entry) {
    this.#entries.push(entry);
    this.#ui.log.append(drawEntry(entry));
    this.#ui.log.scrollTop = this.#ui.log.scrollHeight;
  }

  /** @param {number} count */
  #setUnread(count) {
    this.#unread = count;
    this.#ui.unread.textContent = count > 0 ? String(count) : '';
    this.#ui.unreadLabel.textContent = count > 0 ? ` ${t('chatUnread', { count })}` : '';
  }

  #drawRecipients() {
    const select = this.#ui.recipient;
    const chosen = select.value;
    const everyone = document.createElement('option');
    everyone.value = '';
    everyone.textContent = t('chatEveryone');
    const options = [everyone];
    for (const person of this.#people) {
      const option = document.createElement('option');
      option.value = person.id;
      option.textContent = person.name;
      options.push(option);
    }
    select.replaceChildren(...options);
    select.value = this.#people.some((p) => p.id === chosen) ? chosen : '';
  }

  #redraw() {
    this.#drawRecipients();
    this.#ui.log.replaceChildren(...this.#entries.map(drawEntry));
    this.#setUnread(this.#unread);
  }
}

/**
 * @param {ChatEntry} entry
 * @returns {HTMLElement}
 */
function drawEntry(entry) {
  const line = document.createElement('p');
  line.className = entry.from === null ? 'chat-message own' : 'chat-message';
  if (entry.private) line.dataset.private = 'true';
  const who = document.createElement('span');
  who.className = 'chat-from';
  if (entry.from !== null) who.textContent = entry.from;
  else if (entry.to !== null) who.textContent = t('chatYouTo', { name: entry.to });
  else who.textContent = t('chatFromYou');
  line.append(who);
  if (entry.private) {
    const badge = document.createElement('span');
    badge.className = 'badge private';
    badge.textContent = t('chatPrivate');
    line.append(' ', badge);
  }
  const text = document.createElement('span');
  text.className = 'chat-text';
  text.textContent = entry.text;
  line.append(': ', text);
  return line;
}
