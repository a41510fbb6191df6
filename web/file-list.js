// The files part of the chat panel: a "Send a file" button (to whoever the chat's "To"
// names), and one line per transfer with its progress, Cancel while it runs, and Save once a
// received file is complete and checked. Files live only in this page's memory.
//
// Drives a FileTransfers (files.js) per meeting session: `attach` on every join (a new
// session ends the old one's transfers), `detach` on leaving.

import { FileError, FileTransfers, formatBytes } from './files.js';
import { isMessageKey, onLocaleChange, t } from './i18n.js';
import { announce, showAlert } from './page.js';

/**
 * @typedef {object} FileElements
 * @property {HTMLUListElement} list
 * @property {HTMLInputElement} input The (visually hidden) file chooser.
 * @property {HTMLButtonElement} button Opens it.
 */

/**
 * @typedef {object} FilePeople
 * @property {() => string | null} recipient The chat's addressee (null: everyone).
 * @property {(id: string) => string | undefined} nameOf
 * @property {(from: string, name: string, size: number, isPrivate: boolean) => void} offered
 *   Someone offered us a file (the page notes it in the chat).
 */

export class FilePanel {
  /** @type {FileElements} */
  #ui;
  /** @type {FilePeople} */
  #people;
  /** @type {FileTransfers | null} */
  #transfers = null;
  /** Object URLs of received files, revoked when they are forgotten. @type {Map<string, string>} */
  #urls = new Map();
  /** Transfers already announced as offered. @type {Set<string>} */
  #known = new Set();
  /** The line drawn for each transfer, and what it showed besides progress. @type {Map<string, {li: HTMLLIElement, shape: string}>} */
  #items = new Map();

  /**
   * @param {FileElements} ui
   * @param {FilePeople} people
   */
  constructor(ui, people) {
    this.#ui = ui;
    this.#people = people;
    ui.button.addEventListener('click', () => ui.input.click());
    ui.input.addEventListener('change', () => {
      const file = ui.input.files?.[0];
      ui.input.value = '';
      if (file) this.#send(file);
    });
    onLocaleChange(() => {
      this.#items.clear();
      this.#draw();
    });
  }

  /**
   * Take part in `session`'s file transfers.
   * @param {import('./protocol.js').ConclaveSession} session
   * @param {import('./e2ee/meeting.js').MeetingE2ee | null} e2ee
   */
  attach(session, e2ee) {
    this.detach();
    const transfers = new FileTransfers(
      {
        send: (msg) => session.sendCollab(msg),
        buffered: () => session.bufferedAmount,
        limits: () => session.limits,
        seal: e2ee ? (text, to) => e2ee.encrypt(text, to, 'file') : null,
        open: e2ee ? (from, ciphertext) => e2ee.decrypt(from, ciphertext, 'file') : null,
      },
      () => {
        if (this.#transfers === transfers) this.#draw();
      },
    );
    this.#transfers = transfers;
    session.on('collab', (msg) => {
      if (this.#transfers === transfers) transfers.handle(msg);
    });
    this.#draw();
  }

  /** The current session's transfers (for tests and tools). */
  get transfers() {
    return this.#transfers;
  }

  /** Forget every transfer (leaving the meeting). */
  detach() {
    this.#transfers?.clear();
    this.#transfers = null;
    for (const url of this.#urls.values()) URL.revokeObjectURL(url);
    this.#urls.clear();
    this.#known.clear();
    this.#items.clear();
    this.#ui.list.replaceChildren();
  }

  /** @param {boolean} allowed Whether we may send files (the `files` permission). */
  setAllowed(allowed) {
    this.#ui.button.disabled = !allowed;
  }

  /** @param {File} file */
  async #send(file) {
    const transfers = this.#transfers;
    if (!transfers) return;
    try {
      await transfers.send(file, this.#people.recipient());
    } catch (err) {
      if (err instanceof FileError && isMessageKey(err.key)) showAlert(err.key, err.params);
      else {
        console.warn('conclave: file not sent', err);
        showAlert('fileNotSent');
      }
    }
  }

  #draw() {
    const transfers = this.#transfers;
    if (!transfers) return;
    const list = transfers.list();
    const items = [];
    for (const tr of list) {
      if (tr.direction === 'in' && !this.#known.has(tr.id) && tr.name !== '…') {
        this.#known.add(tr.id);
        this.#people.offered(tr.peer ?? '', tr.name, tr.size, tr.private);
      }
      // Progress redraws many times a second: a line is built again only when more than its
      // numbers changed, so that a button under the pointer or the keyboard focus stays.
      const shape = `${tr.state}|${tr.name}|${tr.blob !== null}`;
      let item = this.#items.get(tr.id);
      if (!item || item.shape !== shape) {
        const li = this.#item(tr);
        item?.li.replaceWith(li);
        item = { li, shape };
        this.#items.set(tr.id, item);
      } else this.#progress(item.li, tr);
      items.push(item.li);
    }
    const same = items.length === this.#ui.list.children.length && items.every((li, i) => this.#ui.list.children[i] === li);
    if (!same) this.#ui.list.replaceChildren(...items);
  }

  /** Update a running line's numbers in place.
   * @param {HTMLLIElement} li @param {import('./files.js').Transfer} tr */
  #progress(li, tr) {
    const bar = li.querySelector('progress');
    if (bar) bar.value = tr.done;
    const status = li.querySelector('.file-status');
    if (status) status.textContent = this.#status(tr);
  }

  /** @param {import('./files.js').Transfer} tr */
  #status(tr) {
    const percent = tr.size > 0 ? Math.floor((tr.done / tr.size) * 100) : 100;
    if (tr.state === 'sending' || tr.state === 'receiving') return t(tr.state === 'sending' ? 'fileSending' : 'fileReceiving', { percent });
    if (tr.state === 'done') return t(tr.direction === 'out' ? 'fileSent' : 'fileReceived');
    return tr.reason && isMessageKey(tr.reason) ? t(tr.reason) : t('fileFailed');
  }

  /**
   * @param {import('./files.js').Transfer} tr
   * @returns {HTMLLIElement}
   */
  #item(tr) {
    const li = document.createElement('li');
    li.className = 'file';
    li.dataset.file = tr.id;
    li.dataset.state = tr.state;
    li.dataset.direction = tr.direction;
    if (tr.private) li.dataset.private = 'true';
    const peer = tr.peer === null ? t('chatEveryone') : (this.#people.nameOf(tr.peer) ?? t('someone'));
    const title = document.createElement('span');
    title.className = 'file-name';
    title.textContent = `${tr.name} (${formatBytes(tr.size)})`;
    const who = document.createElement('span');
    who.className = 'file-peer';
    who.textContent = tr.direction === 'out' ? t('fileTo', { name: peer }) : t('fileFrom', { name: peer });
    li.append(title, ' ', who);
    if (tr.private) {
      const badge = document.createElement('span');
      badge.className = 'badge private';
      badge.textContent = t('chatPrivate');
      li.append(' ', badge);
    }
    const status = document.createElement('span');
    status.className = 'file-status';
    const running = tr.state === 'sending' || tr.state === 'receiving';
    status.textContent = this.#status(tr);
    li.append(' ', status);
    if (running) {
      const bar = document.createElement('progress');
      bar.max = tr.size;
      bar.value = tr.done;
      bar.setAttribute('aria-label', t('fileProgress', { name: tr.name }));
      const cancel = document.createElement('button');
      cancel.type = 'button';
      cancel.textContent = t('fileCancel');
      cancel.dataset.action = 'cancel';
      cancel.setAttribute('aria-label', t('fileCancelNamed', { name: tr.name }));
      cancel.addEventListener('click', () => {
        this.#transfers?.cancel(tr.id);
        announce('fileCancelledByYou');
      });
      li.append(bar, cancel);
    }
    if (tr.state === 'done' && tr.blob) {
      let url = this.#urls.get(tr.id);
      if (!url) {
        url = URL.createObjectURL(tr.blob);
        this.#urls.set(tr.id, url);
        announce('fileReady', { name: tr.name });
      }
      const save = document.createElement('a');
      save.href = url;
      save.download = tr.name;
      save.className = 'button';
      save.textContent = t('fileSave');
      save.dataset.action = 'save';
      save.setAttribute('aria-label', t('fileSaveNamed', { name: tr.name }));
      li.append(' ', save);
    }
    return li;
  }
}
