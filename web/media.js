// Local devices: capture a microphone or camera, list the devices, measure the microphone
// level. Knows nothing of the page or the wire; app.js decides what to show and what to send.

/** @typedef {import('./protocol.js').DeviceSource} Source */

/**
 * Why a capture failed, in the words the page uses to explain it.
 * - `denied`: the user or the browser refused access (NotAllowedError, SecurityError).
 * - `notFound`: no such device (NotFoundError, OverconstrainedError).
 * - `busy`: the device exists but could not be started (NotReadableError, AbortError).
 * - `unsupported`: this page has no getUserMedia (old browser, insecure context).
 * - `failed`: anything else.
 * @typedef {'denied' | 'notFound' | 'busy' | 'unsupported' | 'failed'} CaptureFailure
 */

/**
 * A device the user can choose.
 * @typedef {object} DeviceChoice
 * @property {string} deviceId
 * @property {string} label Empty until the page has permission for this kind of device.
 */

/** The `MediaDeviceInfo.kind` of each source. */
const DEVICE_KINDS = /** @type {const} */ ({ microphone: 'audioinput', camera: 'videoinput' });

/** Whether this page can capture devices at all. */
export function canCapture() {
  return (
    typeof navigator !== 'undefined' &&
    typeof navigator.mediaDevices?.getUserMedia === 'function'
  );
}

/** The highest camera picture the meeting allows, in pixels (0: no limit). */
let maxVideoHeight = 0;

/**
 * Limit camera captures from now on to `height` pixels (the meeting's `max_video_height`),
 * and apply the limit to `current`, a camera track already running.
 * @param {number | undefined} height
 * @param {MediaStreamTrack | null} current
 */
export function limitVideoHeight(height, current) {
  maxVideoHeight = typeof height === 'number' && height > 0 ? height : 0;
  if (current && maxVideoHeight) {
    current.applyConstraints({ height: { max: maxVideoHeight } }).catch(() => {
      // The camera keeps its size; the server still gets a usable picture.
    });
  }
}

/**
 * Capture `source`, from `deviceId` if given ('' for the browser's default).
 * @param {Source} source
 * @param {string} deviceId
 * @returns {Promise<MediaStreamTrack>}
 */
export async function capture(source, deviceId) {
  if (!canCapture()) throw new CaptureError('unsupported', 'getUserMedia is not available');
  /** @type {MediaTrackConstraints | boolean} */
  const track = deviceId ? { deviceId: { exact: deviceId } } : true;
  /** @type {MediaTrackConstraints | boolean} */
  let video = track;
  if (maxVideoHeight) video = { ...(track === true ? {} : track), height: { max: maxVideoHeight } };
  const constraints = source === 'camera' ? { video } : { audio: track };
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia(constraints);
  } catch (e) {
    throw CaptureError.from(e);
  }
  const [first, ...rest] = stream.getTracks();
  for (const extra of rest) extra.stop();
  if (!first) throw new CaptureError('failed', 'the browser returned no track');
  return first;
}

/** A capture that failed, with the reason the page explains. */
export class CaptureError extends Error {
  /**
   * @param {CaptureFailure} failure
   * @param {string} message
   */
  constructor(failure, message) {
    super(message);
    this.name = 'CaptureError';
    /** @type {CaptureFailure} */
    this.failure = failure;
  }

  /**
   * Classify an error thrown by getUserMedia.
   * @param {unknown} e
   * @returns {CaptureError}
   */
  static from(e) {
    const name = e instanceof Error || e instanceof DOMException ? e.name : '';
    const message = e instanceof Error || e instanceof DOMException ? e.message : String(e);
    switch (name) {
      case 'NotAllowedError':
      case 'SecurityError':
      case 'PermissionDeniedError':
        return new CaptureError('denied', message || name);
      case 'NotFoundError':
      case 'OverconstrainedError':
      case 'DevicesNotFoundError':
        return new CaptureError('notFound', message || name);
      case 'NotReadableError':
      case 'AbortError':
      case 'TrackStartError':
        return new CaptureError('busy', message || name);
      default:
        return new CaptureError('failed', message || name || 'unknown error');
    }
  }
}

/**
 * The devices of each source, without the browser's "default" and "communications" aliases
 * (the page offers its own "default" entry). Empty lists when the page cannot enumerate.
 * @returns {Promise<Record<Source, DeviceChoice[]>>}
 */
export async function listDevices() {
  /** @type {Record<Source, DeviceChoice[]>} */
  const result = { microphone: [], camera: [] };
  if (typeof navigator.mediaDevices?.enumerateDevices !== 'function') return result;
  let devices;
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch {
    return result;
  }
  for (const source of /** @type {Source[]} */ (['microphone', 'camera'])) {
    for (const d of devices) {
      if (d.kind !== DEVICE_KINDS[source]) continue;
      // Without permission the browser hides the IDs; such entries cannot be chosen.
      if (!d.deviceId || d.deviceId === 'default' || d.deviceId === 'communications') continue;
      result[source].push({ deviceId: d.deviceId, label: d.label });
    }
  }
  return result;
}

/**
 * Call `listener` when devices are plugged in or out.
 * @param {() => void} listener
 */
export function onDeviceChange(listener) {
  navigator.mediaDevices?.addEventListener?.('devicechange', listener);
}

/** How often the level meter reports, in milliseconds. */
const LEVEL_INTERVAL_MS = 60;
/** The quietest level the meter shows, in dBFS; 0 dBFS is full scale. */
const LEVEL_FLOOR_DB = -60;

/**
 * Measures the level of one audio track with a Web Audio AnalyserNode and reports it as a
 * number from 0 (silence) to 1 (full scale, on a decibel scale) several times a second.
 */
export class LevelMeter {
  /** @type {AudioContext | null} */
  #context = null;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #timer;
  /** Sum of the mean squares of the windows measured since `takeRms` last ran. */
  #power = 0;
  #windows = 0;

  /**
   * @param {MediaStreamTrack} track
   * @param {(level: number) => void} onLevel
   */
  constructor(track, onLevel) {
    if (typeof AudioContext !== 'function') return;
    const context = new AudioContext();
    this.#context = context;
    const input = context.createMediaStreamSource(new MediaStream([track]));
    const analyser = context.createAnalyser();
    analyser.fftSize = 1024;
    input.connect(analyser); // Not to the destination: the user must not hear themselves.
    const samples = new Float32Array(analyser.fftSize);
    // A context made outside a user gesture may start suspended.
    context.resume().catch(() => {});
    this.#timer = setInterval(() => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      const rms = Math.sqrt(sum / samples.length);
      this.#power += rms * rms;
      this.#windows++;
      const db = rms > 0 ? 20 * Math.log10(rms) : -Infinity;
      onLevel(Math.min(1, Math.max(0, (db - LEVEL_FLOOR_DB) / -LEVEL_FLOOR_DB)));
    }, LEVEL_INTERVAL_MS);
  }

  /**
   * The root mean square level (0…1) of everything measured since the last call: the same
   * measure stats.js derives for the others' audio.
   * @returns {number}
   */
  takeRms() {
    const rms = this.#windows > 0 ? Math.sqrt(this.#power / this.#windows) : 0;
    this.#power = 0;
    this.#windows = 0;
    return rms;
  }

  /** Stop measuring and release the audio context. Idempotent. */
  stop() {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#context?.close().catch(() => {});
    this.#context = null;
  }
}
