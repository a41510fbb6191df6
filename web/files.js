// File transfers in a meeting: send a file to the room or to one person, receive, cancel.
// Knows nothing of the DOM (file-list.js draws it) and nothing of MLS (the page passes a
// `seal`/`open` pair that encrypts the offer with the room's group, or none without E2EE).
//
// One file = one random AES-256-GCM key. The offer (name, type, size, SHA-256, chunk size,
// key) travels sealed like chat (docs/architecture.md, "Collaboration inside the encrypted
// meeting"); the chunks are AES-GCM under the file key with nonce = seq and additional data
// naming the transfer, the seq and whether it is the last, so that the server can neither
// reorder, cut short nor splice; the receiver checks size and SHA-256 at the end.

/** Plaintext bytes in a full chunk (crates/proto `FILE_CHUNK_BYTES`). */
export const FILE_CHUNK_BYTES = 64 * 1024;
/** Version of the offer's JSON and of the chunk's additional data. */
const FILE_VERSION = 1;
/** Stop sending while this many bytes wait on the socket. */
const MAX_BUFFERED = 1024 * 1024;
/** Pace to this share of the server's `file_bytes_per_second`, to stay under it. */
const RATE_SHARE = 0.8;
/** The server's byte bucket holds two seconds' worth; we start with one. */
const BURST_SECONDS = 1;

import { fromBase64, toBase64 } from './e2ee/group.js';

const te = new TextEncoder();

/**
 * What the page shows of one transfer.
 * @typedef {object} Transfer
 * @property {string} id
 * @property {'out' | 'in'} direction
 * @property {string} name The file's name (as the sender gave it).
 * @property {string} type Its media type (as the sender gave it; the download does not trust it).
 * @property {number} size
 * @property {number} done Bytes sent or received.
 * @property {string | null} peer Out: the addressee's ID (null: everyone). In: the sender's ID.
 * @property {boolean} private
 * @property {'sending' | 'receiving' | 'done' | 'cancelled' | 'failed'} state
 * @property {string | null} reason Why it ended early (a key for the page's texts).
 * @property {Blob | null} blob In, once done and checked.
 */

/**
 * The offer inside the sealed part.
 * @typedef {{v: number, file: string, name: string, type: string, size: number, sha256: string, chunk: number, key: string}} Offer
 */

/**
 * What the transfers need of the meeting.
 * @typedef {object} FileHost
 * @property {(msg: import('./protocol.js').CollabClientMessage) => boolean} send
 * @property {() => number} buffered Bytes waiting on the socket.
 * @property {() => Partial<import('./protocol.js').ClientLimits>} limits
 * @property {((text: string, to: string | null) => Promise<string>) | null} seal Encrypt an
 *   offer (purpose `file`); null without E2EE (the offer goes as `text`).
 * @property {((from: string, ciphertext: string) => Promise<{text: string, private: boolean, senderMatches: boolean}>) | null} open
 */

export class FileTransfers {
  /** @type {FileHost} */
  #host;
  /** @type {() => void} */
  #onChange;
  /** @type {Map<string, Transfer>} */
  #transfers = new Map();
  /** Incoming: key, chunks, and the chain that keeps chunks in order after the offer. @type {Map<string, {key: Promise<CryptoKey | null>, offer: Promise<Offer | null>, parts: ArrayBuffer[], chain: Promise<void>, next: number}>} */
  #incoming = new Map();
  /** Outgoing transfers to stop. @type {Set<string>} */
  #stopped = new Set();

  /**
   * @param {FileHost} host
   * @param {() => void} onChange Something changed: redraw.
   */
  constructor(host, onChange) {
    this.#host = host;
    this.#onChange = onChange;
  }

  /** Every transfer, oldest first. @returns {Transfer[]} */
  list() {
    return [...this.#transfers.values()];
  }

  /** @param {string} id @returns {Transfer | undefined} */
  get(id) {
    return this.#transfers.get(id);
  }

  /**
   * Send `file` to everyone else (`to` null) or to one participant. Resolves when the last
   * chunk is sent or the transfer ended; rejects (before anything is sent) with a message key
   * when the file cannot be sent.
   * @param {Blob & {name?: string}} file
   * @param {string | null} to
   */
  async send(file, to) {
    const limits = this.#host.limits();
    const max = limits.max_file_bytes ?? 0;
    if (max === 0) throw new FileError('fileSharingOff');
    if (file.size === 0) throw new FileError('fileEmpty');
    if (file.size > max) throw new FileError('fileTooLarge', { max: formatBytes(max) });
    const mine = this.list().filter((t) => t.direction === 'out' && t.state === 'sending').length;
    if (mine >= (limits.max_files_in_flight ?? 1)) throw new FileError('fileTooMany');
    const id = randomId();
    const rawKey = crypto.getRandomValues(new Uint8Array(32));
    const key = await crypto.subtle.importKey('raw', rawKey, 'AES-GCM', false, ['encrypt']);
    const bytes = new Uint8Array(await file.arrayBuffer());
    const sha256 = toBase64(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)));
    /** @type {Offer} */
    const offer = {
      v: FILE_VERSION,
      file: id,
      name: (file.name ?? 'file').slice(0, 255) || 'file',
      type: file.type.slice(0, 100),
      size: file.size,
      sha256,
      chunk: FILE_CHUNK_BYTES,
      key: toBase64(rawKey),
    };
    const json = JSON.stringify(offer);
    /** @type {import('./protocol.js').CollabClientMessage} */
    const msg = { type: 'file_offer', file: id, size: file.size };
    if (this.#host.seal) {
      try {
        msg.ciphertext = await this.#host.seal(json, to);
      } catch (err) {
        console.warn('conclave: file offer not encrypted', err);
        throw new FileError(to !== null && err instanceof Error && err.message.includes('has no leaf') ? 'fileRecipientNotReady' : 'fileNotReady');
      }
    } else msg.text = json;
    if (to !== null) msg.to = to;
    if (!this.#host.send(msg)) throw new FileError('fileNotSent');
    /** @type {Transfer} */
    const t = { id, direction: 'out', name: offer.name, type: offer.type, size: file.size, done: 0, peer: to, private: to !== null, state: 'sending', reason: null, blob: null };
    this.#transfers.set(id, t);
    this.#onChange();
    await this.#pump(t, key, bytes);
  }

  /**
   * Send the chunks, paced to the server's byte rate and the socket's buffer.
   * @param {Transfer} t @param {CryptoKey} key @param {Uint8Array<ArrayBuffer>} bytes
   */
  async #pump(t, key, bytes) {
    const rate = (this.#host.limits().file_bytes_per_second ?? 1024 * 1024) * RATE_SHARE;
    let budget = rate * BURST_SECONDS;
    let last = performance.now();
    const count = Math.max(1, Math.ceil(bytes.length / FILE_CHUNK_BYTES));
    for (let seq = 0; seq < count; seq++) {
      const isLast = seq === count - 1;
      const plain = bytes.subarray(seq * FILE_CHUNK_BYTES, (seq + 1) * FILE_CHUNK_BYTES);
      const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonce(seq), additionalData: chunkAad(t.id, seq, isLast) }, key, plain));
      const data = toBase64(sealed);
      // The server counts the base64 characters; wait until the budget has them.
      for (;;) {
        if (this.#stopped.has(t.id) || t.state !== 'sending') return;
        const now = performance.now();
        budget = Math.min(rate * BURST_SECONDS, budget + ((now - last) / 1000) * rate);
        last = now;
        if (budget >= data.length && this.#host.buffered() < MAX_BUFFERED) break;
        await sleep(Math.max(10, Math.min(250, ((data.length - budget) / rate) * 1000)));
      }
      budget -= data.length;
      if (!this.#host.send({ type: 'file_chunk', file: t.id, seq, data, last: isLast })) {
        return this.#end(t, 'failed', 'fileConnectionLost');
      }
      t.done += plain.length;
      if (isLast) t.state = 'done';
      this.#onChange();
    }
  }

  /**
   * Stop a transfer: ours for everyone, one to us for us.
   * @param {string} id
   */
  cancel(id) {
    const t = this.#transfers.get(id);
    if (!t || (t.state !== 'sending' && t.state !== 'receiving')) return;
    this.#host.send({ type: 'file_cancel', file: id });
    this.#stopped.add(id);
    this.#incoming.delete(id);
    this.#end(t, 'cancelled', 'fileCancelledByYou');
  }

  /**
   * A message from the server (the session's `collab` event).
   * @param {import('./protocol.js').CollabServerMessage} msg
   */
  handle(msg) {
    if (msg.type === 'file_offer') this.#offered(msg);
    else if (msg.type === 'file_chunk') this.#chunk(msg);
    else if (msg.type === 'file_cancel') this.#cancelled(msg);
  }

  /** Forget everything (the meeting ended): transfers under way stop. */
  clear() {
    for (const t of this.#transfers.values()) this.#stopped.add(t.id);
    this.#transfers.clear();
    this.#incoming.clear();
    this.#onChange();
  }

  /** @param {Extract<import('./protocol.js').CollabServerMessage, {type: 'file_offer'}>} msg */
  #offered(msg) {
    if (this.#transfers.has(msg.file)) return;
    /** @type {Transfer} */
    const t = { id: msg.file, direction: 'in', name: '…', type: '', size: msg.size, done: 0, peer: msg.from, private: msg.private, state: 'receiving', reason: null, blob: null };
    this.#transfers.set(msg.file, t);
    const offer = this.#readOffer(msg).catch((err) => {
      console.warn('conclave: file offer refused', err);
      this.#refuse(t, err instanceof FileError ? err.key : 'fileUndecryptable');
      return null;
    });
    const key = offer.then((o) => (o ? crypto.subtle.importKey('raw', fromBase64(o.key), 'AES-GCM', false, ['decrypt']) : null));
    this.#incoming.set(msg.file, { offer, key, parts: [], chain: offer.then(() => undefined), next: 0 });
    offer.then((o) => {
      if (o) {
        t.name = o.name;
        t.type = o.type;
      }
      this.#onChange();
    });
  }

  /**
   * The offer's JSON, opened and checked against what the server relayed.
   * @param {Extract<import('./protocol.js').CollabServerMessage, {type: 'file_offer'}>} msg
   * @returns {Promise<Offer>}
   */
  async #readOffer(msg) {
    let text;
    if (this.#host.open) {
      if (typeof msg.ciphertext !== 'string') throw new FileError('fileNotEncrypted');
      const opened = await this.#host.open(msg.from, msg.ciphertext);
      if (!opened.senderMatches) throw new FileError('fileSenderMismatch');
      if (opened.private !== msg.private) throw new FileError('fileSenderMismatch');
      text = opened.text;
    } else {
      if (typeof msg.text !== 'string') throw new FileError('fileUndecryptable');
      text = msg.text;
    }
    const o = JSON.parse(text);
    const ok = o && o.v === FILE_VERSION && o.file === msg.file && o.size === msg.size && typeof o.name === 'string' && typeof o.type === 'string'
      && typeof o.sha256 === 'string' && o.chunk === FILE_CHUNK_BYTES && typeof o.key === 'string' && fromBase64(o.key).length === 32;
    if (!ok) throw new FileError('fileUndecryptable');
    return /** @type {Offer} */ (o);
  }

  /** @param {Extract<import('./protocol.js').CollabServerMessage, {type: 'file_chunk'}>} msg */
  #chunk(msg) {
    const t = this.#transfers.get(msg.file);
    const inc = this.#incoming.get(msg.file);
    if (!t || !inc || t.direction !== 'in' || t.peer !== msg.from) return;
    inc.chain = inc.chain.then(async () => {
      const [key, offer] = await Promise.all([inc.key, inc.offer]);
      if (!key || !offer || t.state !== 'receiving') return;
      if (msg.seq !== inc.next) return this.#refuse(t, 'fileCorrupt');
      let plain;
      try {
        plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: nonce(msg.seq), additionalData: chunkAad(t.id, msg.seq, msg.last) }, key, fromBase64(msg.data));
      } catch {
        return this.#refuse(t, 'fileCorrupt');
      }
      inc.next += 1;
      inc.parts.push(plain);
      t.done += plain.byteLength;
      if (t.done > t.size || (!msg.last && plain.byteLength !== FILE_CHUNK_BYTES)) return this.#refuse(t, 'fileCorrupt');
      if (msg.last) {
        const blob = new Blob(inc.parts, { type: 'application/octet-stream' });
        const digest = toBase64(new Uint8Array(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer())));
        this.#incoming.delete(t.id);
        if (t.done !== t.size || digest !== offer.sha256) return this.#refuse(t, 'fileCorrupt');
        t.blob = blob;
        t.state = 'done';
      }
      this.#onChange();
    });
  }

  /** @param {Extract<import('./protocol.js').CollabServerMessage, {type: 'file_cancel'}>} msg */
  #cancelled(msg) {
    const t = this.#transfers.get(msg.file);
    if (!t || (t.state !== 'sending' && t.state !== 'receiving')) return;
    this.#stopped.add(t.id);
    this.#incoming.delete(t.id);
    if (msg.reason === 'refused') this.#end(t, 'failed', 'fileRefused');
    else if (msg.reason === 'left') this.#end(t, 'cancelled', 'fileSenderLeft');
    else this.#end(t, 'cancelled', t.direction === 'out' ? 'fileCancelledByRecipients' : 'fileCancelledBySender');
  }

  /** A received transfer that failed a check: tell the server we want no more of it.
   * @param {Transfer} t @param {string} reason */
  #refuse(t, reason) {
    if (t.state !== 'receiving') return;
    this.#host.send({ type: 'file_cancel', file: t.id });
    this.#incoming.delete(t.id);
    this.#end(t, 'failed', reason);
  }

  /** @param {Transfer} t @param {'cancelled' | 'failed'} state @param {string} reason */
  #end(t, state, reason) {
    t.state = state;
    t.reason = reason;
    this.#onChange();
  }
}

/** A file that cannot be sent, with the key of the text that says why. */
export class FileError extends Error {
  /** @param {string} key @param {Record<string, string | number>} [params] */
  constructor(key, params = {}) {
    super(key);
    this.key = key;
    this.params = params;
  }
}

/** @param {number} n @returns {string} e.g. "32 MB" */
export function formatBytes(n) {
  if (n < 1000) return `${n} B`;
  if (n < 1_000_000) return `${Math.round(n / 100) / 10} kB`;
  if (n < 1_000_000_000) return `${Math.round(n / 100_000) / 10} MB`;
  return `${Math.round(n / 100_000_000) / 10} GB`;
}

/** The chunk's 96-bit nonce: the seq, big-endian, in the last 4 bytes (one key per file). @param {number} seq */
function nonce(seq) {
  const iv = new Uint8Array(12);
  new DataView(iv.buffer).setUint32(8, seq);
  return iv;
}

/** @param {string} id @param {number} seq @param {boolean} last */
function chunkAad(id, seq, last) {
  return te.encode(`conclave file v${FILE_VERSION}|${id}|${seq}|${last ? 1 : 0}`);
}

function randomId() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return toBase64(b).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** @param {number} ms */
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
