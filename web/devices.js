// The user's own devices as the page shows them: the microphone and camera toggles, the
// device choice, the camera preview and the microphone level meter. Both start off on every
// visit and after every meeting; nothing about them is remembered.
//
// Every change of one source (on, off, other device) runs after the previous change of that
// source, so a quick double click cannot leave a device running unseen.

import { onLocaleChange, t } from './i18n.js';
import { CaptureError, LevelMeter, canCapture, capture, listDevices, onDeviceChange } from './media.js';
import { showAlert } from './page.js';

/** @typedef {import('./protocol.js').DeviceSource} Source */
/** @typedef {import('./media.js').DeviceChoice} DeviceChoice */
/** @typedef {import('./i18n.js').MessageKey} MessageKey */

/**
 * The elements this controller drives.
 * @typedef {object} DeviceElements
 * @property {Record<Source, HTMLButtonElement>} toggles
 * @property {Record<Source, HTMLSelectElement>} selects
 * @property {HTMLVideoElement} preview The camera preview before joining.
 * @property {HTMLElement} previewOff Shown instead of the preview while the camera is off.
 * @property {HTMLElement} meter The microphone level meter (role="meter").
 * @property {HTMLElement} cameraField The camera choice, hidden for audio only.
 * @property {HTMLElement} note Explains why devices cannot be used, if so.
 */

/**
 * Called whenever the track of a source changes (null: off). The meeting sends it; the
 * previous track is stopped only after this settled.
 * @typedef {(source: Source, track: MediaStreamTrack | null) => Promise<void> | void} TrackListener
 */

/** @type {Record<Source, Record<'denied' | 'notFound' | 'busy' | 'failed' | 'ended', MessageKey>>} */
const FAILURE_MESSAGES = {
  microphone: {
    denied: 'deniedMicrophone',
    notFound: 'notFoundMicrophone',
    busy: 'busyMicrophone',
    failed: 'failedMicrophone',
    ended: 'endedMicrophone',
  },
  camera: {
    denied: 'deniedCamera',
    notFound: 'notFoundCamera',
    busy: 'busyCamera',
    failed: 'failedCamera',
    ended: 'endedCamera',
  },
};

const SOURCE_LIST = /** @type {Source[]} */ (['microphone', 'camera']);

export class LocalDevices {
  /** @type {DeviceElements} */
  #ui;
  /** @type {TrackListener} */
  #onTrack;
  /** @type {Map<Source, MediaStreamTrack>} */
  #tracks = new Map();
  /** What the user last asked for with the toggles. @type {Record<Source, boolean>} */
  #wanted = { microphone: false, camera: false };
  /** The chosen device of each source ('' for the browser's default). @type {Record<Source, string>} */
  #deviceIds = { microphone: '', camera: '' };
  /** @type {Record<Source, Promise<void>>} */
  #chains = { microphone: Promise.resolve(), camera: Promise.resolve() };
  /** @type {Record<Source, DeviceChoice[]>} */
  #devices = { microphone: [], camera: [] };
  /** @type {LevelMeter | null} */
  #meter = null;
  #audioOnly = false;

  /**
   * @param {DeviceElements} ui
   * @param {TrackListener} onTrack
   */
  constructor(ui, onTrack) {
    this.#ui = ui;
    this.#onTrack = onTrack;
    const usable = canCapture();
    for (const source of SOURCE_LIST) {
      ui.toggles[source].disabled = !usable;
      ui.selects[source].disabled = !usable;
      ui.toggles[source].addEventListener('click', () => {
        this.set(source, !this.#wanted[source]);
      });
      ui.selects[source].addEventListener('change', () => {
        this.#switchDevice(source, ui.selects[source].value);
      });
    }
    if (!usable) {
      ui.note.textContent = t('mediaUnsupported');
      ui.note.hidden = false;
    }
    this.#drawDeviceLists();
    onLocaleChange(() => {
      if (!ui.note.hidden) ui.note.textContent = t('mediaUnsupported');
      this.#drawDeviceLists();
    });
    if (usable) {
      onDeviceChange(() => this.refreshDeviceLists());
      this.refreshDeviceLists();
    }
  }

  /**
   * The live track of `source`, if on.
   * @param {Source} source
   */
  track(source) {
    return this.#tracks.get(source) ?? null;
  }

  /**
   * The microphone's root mean square level (0…1) since the last call; 0 while it is off.
   * @returns {number}
   */
  takeMicrophoneRms() {
    return this.#meter?.takeRms() ?? 0;
  }

  /** Every live track. @returns {[Source, MediaStreamTrack][]} */
  get tracks() {
    return [...this.#tracks];
  }

  /** Whether the camera is left out (the "Audio only" choice). */
  get audioOnly() {
    return this.#audioOnly;
  }

  /**
   * Leave the camera out: hide its toggle and choice, and turn it off.
   * @param {boolean} on
   */
  setAudioOnly(on) {
    this.#audioOnly = on;
    this.#ui.toggles.camera.hidden = on;
    this.#ui.cameraField.hidden = on;
    if (on) this.set('camera', false);
  }

  /**
   * Turn `source` on or off, after every earlier change of it.
   * @param {Source} source
   * @param {boolean} on
   * @returns {Promise<void>}
   */
  set(source, on) {
    this.#wanted[source] = on;
    return this.#enqueue(source, () => this.#apply(source, on));
  }

  /** Turn everything off (before a listen-only join and after leaving). */
  stopAll() {
    return Promise.all(SOURCE_LIST.map((source) => this.set(source, false))).then(() => {});
  }

  /** Read the device lists again (labels appear once the page may use a device). */
  async refreshDeviceLists() {
    this.#devices = await listDevices();
    this.#drawDeviceLists();
  }

  /**
   * @param {Source} source
   * @param {() => Promise<void>} task
   */
  #enqueue(source, task) {
    const run = this.#chains[source].then(task);
    this.#chains[source] = run.catch(() => {});
    return run;
  }

  /**
   * @param {Source} source
   * @param {boolean} on
   */
  async #apply(source, on) {
    if (on === this.#tracks.has(source)) return;
    const button = this.#ui.toggles[source];
    button.setAttribute('aria-busy', 'true');
    try {
      if (on) {
        const track = await capture(source, this.#deviceIds[source]);
        this.#adopt(source, track);
        await this.#onTrack(source, track);
        this.refreshDeviceLists();
      } else {
        const track = this.#tracks.get(source);
        this.#tracks.delete(source);
        this.#show(source, null);
        await this.#onTrack(source, null);
        track?.stop();
      }
    } catch (e) {
      this.#wanted[source] = this.#tracks.has(source);
      this.#explain(source, e);
    } finally {
      button.setAttribute('aria-pressed', String(this.#tracks.has(source)));
      button.removeAttribute('aria-busy');
    }
  }

  /**
   * Use another device for `source`; if it is on, capture the new one, send it instead, and
   * stop the old one.
   * @param {Source} source
   * @param {string} deviceId
   */
  #switchDevice(source, deviceId) {
    const previous = this.#deviceIds[source];
    this.#deviceIds[source] = deviceId;
    return this.#enqueue(source, async () => {
      const old = this.#tracks.get(source);
      if (!old) return;
      try {
        const track = await capture(source, deviceId);
        this.#adopt(source, track);
        await this.#onTrack(source, track);
        old.stop();
      } catch (e) {
        this.#deviceIds[source] = previous;
        this.#ui.selects[source].value = previous;
        this.#explain(source, e);
      }
    });
  }

  /**
   * Make `track` the live track of `source` and show it.
   * @param {Source} source
   * @param {MediaStreamTrack} track
   */
  #adopt(source, track) {
    this.#tracks.set(source, track);
    track.addEventListener('ended', () => {
      // The device went away (unplugged, or permission revoked).
      if (this.#tracks.get(source) !== track) return;
      showAlert(FAILURE_MESSAGES[source].ended);
      this.set(source, false);
    });
    this.#show(source, track);
  }

  /**
   * @param {Source} source
   * @param {MediaStreamTrack | null} track
   */
  #show(source, track) {
    if (source === 'camera') {
      this.#ui.preview.srcObject = track ? new MediaStream([track]) : null;
      this.#ui.preview.hidden = !track;
      this.#ui.previewOff.hidden = !!track;
      return;
    }
    this.#meter?.stop();
    this.#meter = null;
    const meter = this.#ui.meter;
    meter.hidden = !track;
    setLevel(meter, 0);
    if (track) this.#meter = new LevelMeter(track, (level) => setLevel(meter, level));
  }

  /**
   * Show why `source` could not be used.
   * @param {Source} source
   * @param {unknown} e
   */
  #explain(source, e) {
    const failure = e instanceof CaptureError ? e.failure : 'failed';
    if (failure === 'unsupported') {
      showAlert('mediaUnsupported');
      return;
    }
    const error = e instanceof Error ? e.message : String(e);
    showAlert(FAILURE_MESSAGES[source][failure], { error });
  }

  /** Fill the device choices, keeping what is selected. */
  #drawDeviceLists() {
    for (const source of SOURCE_LIST) {
      const select = this.#ui.selects[source];
      const wanted = this.#deviceIds[source];
      const options = [new Option(t(source === 'camera' ? 'defaultCamera' : 'defaultMicrophone'), '')];
      this.#devices[source].forEach((device, i) => {
        const unnamed = t(source === 'camera' ? 'unnamedCamera' : 'unnamedMicrophone', { n: i + 1 });
        options.push(new Option(device.label || unnamed, device.deviceId));
      });
      select.replaceChildren(...options);
      select.value = options.some((o) => o.value === wanted) ? wanted : '';
    }
  }
}

/**
 * Show `level` (0…1) on the meter: the bar's length through a CSS custom property (set from
 * script, which the CSP allows), the value for assistive technology.
 * @param {HTMLElement} meter
 * @param {number} level
 */
function setLevel(meter, level) {
  meter.style.setProperty('--level', level.toFixed(3));
  meter.setAttribute('aria-valuenow', String(Math.round(level * 100)));
}
