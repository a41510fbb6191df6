// Main-thread side of media frame encryption: starts the transform worker (./worker.js),
// attaches it to RTP senders and receivers, and hands it the epoch keys.
//
// Two browser APIs:
// - 'streams': the legacy createEncodedStreams() with `encodedInsertableStreams: true` in
//   the RTCConfiguration. Fail-closed: a sender holds its frames until its streams are taken,
//   and once the peer connection has that flag no frame bypasses the worker.
// - 'script': RTCRtpScriptTransform. In Chromium a video sender whose transform is set too
//   late sends PLAINTEXT without any error (docs/e2ee-evaluation.md §1), so the session checks
//   that every live video sender's frames reach the worker (see ConclaveSession).
// `mode()` says which one to use in this browser ('streams' where available).
//
// Receivers also check who sent a frame (./kid.js): the session tells each receiver which
// participant publishes its track (`setPublisher`, from signalling), and each epoch's key comes
// with the leaf -> participant id map of that epoch's MLS ratchet tree. A frame whose KID's
// leaf is not the publisher's is dropped; a receiver with no publisher decodes nothing.

/** @typedef {'script' | 'streams'} FrameCryptoMode */
/** @typedef {'audio' | 'video'} MediaKind */

/**
 * The epoch key: `secret` is the epoch's SFrame base key (MLS-Exporter("SFrame 1.0 Base Key",
 * "", 16)), `leaf` our own MLS leaf index, which makes our KID. `senders` lists every leaf of
 * the epoch's ratchet tree with the participant id in its credential (from the MLS state,
 * never from the server's participant list): receivers decode a frame only when its KID's
 * leaf belongs to the track's publisher. Leaves without a readable credential are left out
 * (their frames decode nowhere).
 * @typedef {import('./kid.js').EpochSender} EpochSender
 * @typedef {{epoch: number, secret: Uint8Array, leaf: number, senders: EpochSender[]}} EpochKey
 */

/**
 * Counters of one direction and kind.
 * @typedef {object} FrameCounters
 * @property {number} encrypted
 * @property {number} decrypted
 * @property {number} droppedNoKey Sender: no key yet. Receiver: no key for the frame's KID.
 * @property {number} droppedBadTag Authentication failed (wrong key, or tampered).
 * @property {number} droppedNoHeader Too short for an SFrame header and tag.
 * @property {number} droppedWrongSender Receiver: the KID's leaf is not one the MLS tree of
 *   that epoch binds to the participant signalling says publishes the track.
 * @property {number} droppedNoPublisher Receiver: nobody told it who publishes the track.
 */

/**
 * What the worker counted.
 * @typedef {object} FrameStats
 * @property {{audio: FrameCounters, video: FrameCounters}} encrypt
 * @property {{audio: FrameCounters, video: FrameCounters}} decrypt
 * @property {number} keyFrameRequests Key frames asked for after decryption failures.
 * @property {Record<string, TransformCounters>} transforms
 *   Frames each attached sender/receiver passed to the worker, by transform id.
 * @property {string[]} errors
 */

/**
 * One attached sender or receiver: frames it gave the worker (`frames`) and frames the worker
 * passed on encrypted or decrypted (`passed`; dropped ones are not).
 * @typedef {{operation: string, kind: string, frames: number, passed: number}} TransformCounters
 */

/** How long a worker request may take before it fails. */
const REQUEST_TIMEOUT_MS = 5000;

/** Video codecs allowed under E2EE: VP8 (its clear prefix is what the worker knows) and the
 * resilience formats that wrap it. Never H.264: its packetizer parses NAL units in the frame. */
const E2EE_VIDEO_CODECS = /^video\/(vp8|rtx|red|ulpfec)$/i;

export class FrameCrypto {
  /**
   * The API this browser offers, the fail-closed streams API first; null if none.
   * @returns {FrameCryptoMode | null}
   */
  static mode() {
    if (typeof RTCRtpSender !== 'undefined' && 'createEncodedStreams' in RTCRtpSender.prototype) return 'streams';
    if (typeof RTCRtpScriptTransform !== 'undefined') return 'script';
    return null;
  }

  /** @type {FrameCryptoMode} */
  #mode;
  /** @type {Worker} */
  #worker;
  #seq = 0;
  /** @type {Map<number, {resolve: (v: any) => void, reject: (e: Error) => void}>} */
  #pending = new Map();
  /** Transform id of each attached sender/receiver. @type {WeakMap<RTCRtpSender | RTCRtpReceiver, string>} */
  #attached = new WeakMap();
  /** The publisher last given for each receiver. @type {WeakMap<RTCRtpReceiver, string | null>} */
  #publishers = new WeakMap();
  #nextTransform = 0;
  #closed = false;

  /**
   * @param {FrameCryptoMode} mode From `FrameCrypto.mode()`.
   */
  constructor(mode) {
    if (mode !== 'script' && mode !== 'streams') throw new Error(`unknown frame crypto mode ${mode}`);
    this.#mode = mode;
    this.#worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'conclave-e2ee' });
    this.#worker.addEventListener('message', (e) => {
      const p = this.#pending.get(e.data?.id);
      if (!p) return;
      this.#pending.delete(e.data.id);
      if (e.data.error) p.reject(new Error(e.data.error));
      else p.resolve(e.data.stats);
    });
    this.#worker.addEventListener('error', (e) => {
      const err = new Error(`E2EE worker failed: ${e.message}`);
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
    });
  }

  /** @returns {FrameCryptoMode} */
  get mode() {
    return this.#mode;
  }

  /**
   * Extra RTCConfiguration fields the peer connection needs.
   * @returns {Record<string, unknown>}
   */
  rtcConfig() {
    return this.#mode === 'streams' ? { encodedInsertableStreams: true } : {};
  }

  /**
   * Encrypt what `sender` sends. Synchronous (call it in the same task that made the
   * transceiver); a second call for the same sender does nothing.
   * @param {RTCRtpSender} sender
   * @param {MediaKind} kind
   */
  attachSender(sender, kind) {
    this.#attach(sender, 'encrypt', kind);
  }

  /**
   * Decrypt what `receiver` receives; frames that do not authenticate are dropped.
   * Synchronous and idempotent like `attachSender`.
   * @param {RTCRtpReceiver} receiver
   * @param {MediaKind} kind
   */
  attachReceiver(receiver, kind) {
    this.#attach(receiver, 'decrypt', kind);
  }

  /**
   * Who publishes what `receiver` receives (a participant id from signalling), or null when
   * nobody does (the track went away): its frames decode only if their KID's leaf belongs to
   * that participant in the frame's epoch. Until this is called a receiver decodes nothing.
   * Synchronous; call it in the task that attached the receiver (frames cannot arrive
   * earlier) and again whenever signalling says the receiver carries another track.
   * @param {RTCRtpReceiver} receiver An attached receiver.
   * @param {string | null} participant
   */
  setPublisher(receiver, participant) {
    if (this.#closed) return;
    const tid = this.#attached.get(receiver);
    if (tid === undefined) throw new Error('setPublisher: the receiver has no transform');
    if (participant !== null && (typeof participant !== 'string' || participant === '')) {
      throw new Error('setPublisher: participant must be a participant id or null');
    }
    if (this.#publishers.has(receiver) && this.#publishers.get(receiver) === participant) return;
    this.#publishers.set(receiver, participant);
    this.#worker.postMessage({ type: 'publisher', tid, participant });
  }

  /**
   * Whether `senderOrReceiver` has the transform.
   * @param {RTCRtpSender | RTCRtpReceiver} senderOrReceiver
   */
  isAttached(senderOrReceiver) {
    return this.#attached.has(senderOrReceiver);
  }

  /**
   * How many frames of `senderOrReceiver` reached the worker (encrypted or dropped); null if
   * it has no transform.
   * @param {RTCRtpSender | RTCRtpReceiver} senderOrReceiver
   * @returns {Promise<number | null>}
   */
  async framesSeen(senderOrReceiver) {
    return (await this.transformStats(senderOrReceiver))?.frames ?? null;
  }

  /**
   * The counters of `senderOrReceiver`'s transform; null if it has none.
   * @param {RTCRtpSender | RTCRtpReceiver} senderOrReceiver
   * @returns {Promise<TransformCounters | null>}
   */
  async transformStats(senderOrReceiver) {
    const id = this.#attached.get(senderOrReceiver);
    if (id === undefined) return null;
    const stats = await this.stats();
    return stats.transforms[id] ?? { operation: '', kind: '', frames: 0, passed: 0 };
  }

  /**
   * @param {RTCRtpSender | RTCRtpReceiver} target
   * @param {'encrypt' | 'decrypt'} operation
   * @param {MediaKind} kind
   */
  #attach(target, operation, kind) {
    if (this.#closed) throw new Error('FrameCrypto is closed');
    if (this.#attached.has(target)) return;
    if (kind !== 'audio' && kind !== 'video') throw new Error(`unknown media kind ${kind}`);
    const tid = `${operation}-${kind}-${this.#nextTransform++}`;
    if (this.#mode === 'script') {
      target.transform = new RTCRtpScriptTransform(this.#worker, { operation, kind, id: tid });
    } else {
      const t = /** @type {{createEncodedStreams: () => {readable: ReadableStream, writable: WritableStream}}} */ (
        /** @type {unknown} */ (target)
      );
      const { readable, writable } = t.createEncodedStreams();
      this.#worker.postMessage({ type: 'streams', readable, writable, operation, kind, tid }, [
        /** @type {Transferable} */ (/** @type {unknown} */ (readable)),
        /** @type {Transferable} */ (/** @type {unknown} */ (writable)),
      ]);
    }
    this.#attached.set(target, tid);
  }

  /**
   * Use a new epoch: our senders switch to it at once; receivers also keep the previous
   * epoch (with its senders) for a grace period (10 s), for frames sent before the others
   * switched. The same epoch and secret again replaces the epoch's senders.
   * @param {EpochKey} key
   * @returns {Promise<void>}
   */
  async setKey({ epoch, secret, leaf, senders }) {
    if (!(secret instanceof Uint8Array) || secret.length !== 16) throw new Error('secret must be 16 bytes');
    if (!Array.isArray(senders)) throw new Error('senders must be an array of {leaf, participant}');
    const list = senders.map((s) => ({ leaf: s.leaf, participant: s.participant }));
    await this.#request({ type: 'setKey', epoch, secret: secret.slice(), leaf, senders: list });
  }

  /**
   * The worker's counters.
   * @returns {Promise<FrameStats>}
   */
  stats() {
    return this.#request({ type: 'stats' });
  }

  /** Stop the worker: every attached sender and receiver stops passing frames. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#worker.terminate();
    const err = new Error('FrameCrypto is closed');
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  /**
   * @param {Record<string, unknown>} msg
   * @returns {Promise<any>}
   */
  #request(msg) {
    if (this.#closed) return Promise.reject(new Error('FrameCrypto is closed'));
    const id = ++this.#seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`E2EE worker did not answer ${String(msg.type)} within ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      this.#pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.#worker.postMessage({ ...msg, id });
    });
  }
}

/**
 * The codec list for a video transceiver under E2EE: VP8 and its rtx/red/ulpfec, in the
 * browser's order. Throws if the browser has no VP8 (E2EE video would not be possible).
 * @returns {RTCRtpCodec[]}
 */
export function e2eeVideoCodecs() {
  const caps = RTCRtpReceiver.getCapabilities('video');
  const codecs = (caps?.codecs ?? []).filter((c) => E2EE_VIDEO_CODECS.test(c.mimeType));
  if (!codecs.some((c) => /^video\/vp8$/i.test(c.mimeType))) throw new Error('this browser cannot receive VP8, which E2EE needs');
  return codecs;
}

/**
 * The video codecs an SDP names in its video sections that are not allowed under E2EE.
 * @param {string} sdp
 * @returns {string[]}
 */
export function forbiddenVideoCodecs(sdp) {
  /** @type {Set<string>} */
  const bad = new Set();
  let video = false;
  for (const line of sdp.split(/\r?\n/)) {
    if (line.startsWith('m=')) video = line.startsWith('m=video') && !/^m=video 0 /.test(line);
    const m = video ? /^a=rtpmap:\d+ ([^/]+)\//.exec(line) : null;
    if (m && !E2EE_VIDEO_CODECS.test(`video/${m[1]}`)) bad.add(m[1]);
  }
  return [...bad];
}
