// The room page: the pre-join form (name, devices, preview) and the meeting itself (tiles,
// controls, participant list), one after the other on the same page.
//
// This module knows nothing of the wire: it drives a ConclaveSession (protocol.js) and draws
// what the session reports. Texts come from i18n.js.

import { ConclaveSession, signallingUrl } from './protocol.js';
import { LocalDevices } from './devices.js';
import { roomLink } from './home.js';
import { announce, byId, clearAlert, copyLink, setStatus, showAlert } from './page.js';
import { Roster } from './tiles.js';

/** @typedef {import('./protocol.js').Source} Source */
/** @typedef {import('./protocol.js').ProtocolError} ProtocolError */
/** @typedef {import('./protocol.js').LeaveReason} LeaveReason */
/** @typedef {'prejoin' | 'meeting'} Phase */

/** From this width on, the participant list starts open in a meeting. */
const WIDE_SCREEN = '(min-width: 60rem)';
/** Room kept free between the tile grid and the control bar, in CSS pixels. */
const GRID_MARGIN_PX = 16;
/** The grid is never made shorter than this; a smaller window scrolls. */
const MIN_GRID_HEIGHT_PX = 180;

/** @type {Record<LeaveReason, import('./i18n.js').MessageKey>} */
const REASONS = {
  left: 'reasonLeft',
  disconnected: 'reasonDisconnected',
  timeout: 'reasonTimeout',
  error: 'reasonError',
};

/**
 * Show the room page for `room` and wire everything on it.
 * @param {string} room
 */
export function showRoom(room) {
  const ui = {
    view: byId('room-view', HTMLElement),
    stage: byId('stage', HTMLDivElement),
    controls: byId('controls', HTMLDivElement),
    preview: byId('preview', HTMLDivElement),
    meetingHeading: byId('meeting-heading', HTMLHeadingElement),
    grid: byId('grid', HTMLDivElement),
    prejoinForm: byId('prejoin-form', HTMLFormElement),
    nameInput: byId('name-input', HTMLInputElement),
    audioOnly: byId('audio-only', HTMLInputElement),
    devicePanel: byId('device-panel', HTMLFieldSetElement),
    peoplePanel: byId('people-panel', HTMLElement),
    /** @type {Record<Source, HTMLButtonElement>} */
    toggles: {
      microphone: byId('microphone-toggle', HTMLButtonElement),
      camera: byId('camera-toggle', HTMLButtonElement),
    },
    joinButton: byId('join-button', HTMLButtonElement),
    listenOnlyButton: byId('listen-only-button', HTMLButtonElement),
    listenOnlyHint: byId('listen-only-hint', HTMLParagraphElement),
    devicesButton: byId('devices-button', HTMLButtonElement),
    peopleButton: byId('people-button', HTMLButtonElement),
    copyLinkButton: byId('copy-link-button', HTMLButtonElement),
    leaveButton: byId('leave-button', HTMLButtonElement),
    shareBox: byId('share-box', HTMLDivElement),
    roomLink: byId('room-link', HTMLInputElement),
  };

  /** @type {ConclaveSession | null} */
  let session = null;
  /** Whether the side panels are open during the meeting. */
  const expanded = { devices: false, people: false };

  const roster = new Roster(
    {
      grid: ui.grid,
      list: byId('people-list', HTMLUListElement),
      heading: byId('people-heading', HTMLHeadingElement),
      count: byId('people-count', HTMLSpanElement),
    },
    () => {
      // The grid may fill the stage's width and the window's height between its top and
      // the control bar (which stays at the bottom of the window).
      const top = ui.grid.getBoundingClientRect().top + window.scrollY;
      const below = ui.controls.offsetHeight + GRID_MARGIN_PX;
      const gap = parseFloat(getComputedStyle(ui.grid).rowGap) || 0;
      return {
        width: ui.stage.clientWidth,
        height: Math.max(window.innerHeight - top - below, MIN_GRID_HEIGHT_PX),
        gap,
      };
    },
  );
  new ResizeObserver(() => roster.relayout()).observe(ui.stage);
  window.addEventListener('resize', () => roster.relayout());

  const devices = new LocalDevices(
    {
      toggles: ui.toggles,
      selects: {
        microphone: byId('microphone-select', HTMLSelectElement),
        camera: byId('camera-select', HTMLSelectElement),
      },
      preview: byId('self-view', HTMLVideoElement),
      previewOff: byId('preview-off', HTMLParagraphElement),
      meter: byId('microphone-meter', HTMLDivElement),
      cameraField: byId('camera-field', HTMLDivElement),
      note: byId('media-note', HTMLParagraphElement),
    },
    async (source, track) => {
      roster.setSelfMedia(devices.track('camera'), devices.track('microphone') !== null);
      await session?.setSource(source, track);
    },
  );

  /** @param {Phase} phase */
  function setPhase(phase) {
    const meeting = phase === 'meeting';
    ui.view.dataset.phase = phase;
    ui.preview.hidden = meeting;
    ui.meetingHeading.hidden = !meeting;
    ui.grid.hidden = !meeting;
    ui.prejoinForm.hidden = meeting;
    ui.joinButton.hidden = meeting;
    ui.listenOnlyButton.hidden = meeting;
    ui.listenOnlyHint.hidden = meeting;
    ui.devicesButton.hidden = !meeting;
    ui.peopleButton.hidden = !meeting;
    ui.leaveButton.hidden = !meeting;
    drawPanels();
  }

  function drawPanels() {
    const meeting = ui.view.dataset.phase === 'meeting';
    ui.devicePanel.hidden = meeting && !expanded.devices;
    ui.peoplePanel.hidden = !meeting || !expanded.people;
    ui.devicesButton.setAttribute('aria-expanded', String(expanded.devices));
    ui.peopleButton.setAttribute('aria-expanded', String(expanded.people));
    ui.view.dataset.panel = meeting && (expanded.devices || expanded.people) ? 'open' : 'closed';
    roster.relayout();
  }

  function updateJoinButtons() {
    const blocked = session !== null || ui.nameInput.value.trim() === '';
    ui.joinButton.disabled = blocked;
    ui.listenOnlyButton.disabled = blocked;
  }

  function updateAloneHint() {
    if (session?.state === 'joined') setStatus(roster.othersCount === 0 ? 'alone' : null);
  }

  /**
   * Connect to the room under the typed name; without devices, turn every device off first.
   * @param {boolean} withoutDevices
   */
  async function join(withoutDevices) {
    const name = ui.nameInput.value.trim();
    if (!name || session) return;
    clearAlert();
    const current = new ConclaveSession(signallingUrl(location));
    session = current;
    updateJoinButtons();
    ui.nameInput.disabled = true;
    setStatus('connecting');
    if (withoutDevices) await devices.stopAll();

    current.on('joined', ({ participants }) => {
      roster.showSelf(name);
      roster.setSelfMedia(devices.track('camera'), devices.track('microphone') !== null);
      for (const p of participants) roster.upsert(p);
    });
    current.on('participantjoined', ({ participant }) => {
      if (roster.upsert(participant)) announce('personJoined', { name: participant.name });
      updateAloneHint();
    });
    current.on('participantupdated', ({ participant }) => roster.upsert(participant));
    current.on('participantleft', ({ id }) => {
      const left = roster.nameOf(id);
      roster.remove(id);
      if (left !== undefined) announce('personLeft', { name: left });
      updateAloneHint();
    });
    current.on('trackadded', (remote) => roster.addTrack(remote));
    current.on('trackremoved', (remote) => roster.removeTrack(remote));
    current.on('error', showProtocolError);
    current.on('closed', ({ reason }) => onSessionEnded(current, reason));

    try {
      await current.join(room, name);
    } catch (e) {
      showProtocolError(/** @type {ProtocolError} */ (e));
      setStatus(null);
      session = null;
      ui.nameInput.disabled = false;
      updateJoinButtons();
      return;
    }
    Object.assign(window, { conclave: { session: current, pc: current.pc } });
    expanded.people = matchMedia(WIDE_SCREEN).matches;
    expanded.devices = false;
    setPhase('meeting');
    updateAloneHint();
    announce('youJoined');
    for (const [source, track] of devices.tracks) current.setSource(source, track);
    // The join button is gone: keep the keyboard focus in the meeting's controls.
    const first = ui.toggles.microphone.disabled ? ui.leaveButton : ui.toggles.microphone;
    first.focus();
  }

  /**
   * @param {ConclaveSession} ended
   * @param {LeaveReason} reason
   */
  function onSessionEnded(ended, reason) {
    if (session !== ended) return;
    session = null;
    roster.clear();
    // The defaults again: camera and microphone off. Nothing carries over to the next join.
    devices.stopAll();
    setPhase('prejoin');
    ui.nameInput.disabled = false;
    updateJoinButtons();
    if (reason === 'left') setStatus('left');
    else {
      setStatus(null);
      showAlert('ended', { reason: { key: REASONS[reason] ?? 'reasonError' } });
    }
    ui.joinButton.focus();
  }

  ui.view.hidden = false;
  ui.roomLink.value = roomLink(room);
  setPhase('prejoin');
  updateJoinButtons();
  ui.nameInput.addEventListener('input', updateJoinButtons);
  ui.prejoinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    join(false);
  });
  ui.listenOnlyButton.addEventListener('click', () => join(true));
  ui.audioOnly.addEventListener('change', () => devices.setAudioOnly(ui.audioOnly.checked));
  devices.setAudioOnly(ui.audioOnly.checked);
  ui.devicesButton.addEventListener('click', () => {
    expanded.devices = !expanded.devices;
    drawPanels();
  });
  ui.peopleButton.addEventListener('click', () => {
    expanded.people = !expanded.people;
    drawPanels();
  });
  ui.copyLinkButton.addEventListener('click', () =>
    copyLink(ui.roomLink, () => {
      ui.shareBox.hidden = false;
    }),
  );
  ui.leaveButton.addEventListener('click', () => session?.leave());
  ui.nameInput.focus();
}

/** @param {ProtocolError} err */
function showProtocolError(err) {
  showAlert('serverError', { code: err.code, message: err.message });
}
