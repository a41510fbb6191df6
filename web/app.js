// The page: home (new meeting / open a meeting), pre-join form, and the meeting itself.
//
// This module knows nothing of the wire: it drives a ConclaveSession (protocol.js) and draws
// what the session reports. Texts come from i18n.js.

import { ConclaveSession, ROOM_ID_PATTERN, SOURCES, signallingUrl } from './protocol.js';
import { t, translatePage } from './i18n.js';

/** @typedef {import('./protocol.js').Source} Source */
/** @typedef {import('./protocol.js').ParticipantInfo} ParticipantInfo */
/** @typedef {import('./protocol.js').RemoteTrack} RemoteTrack */
/** @typedef {import('./protocol.js').ProtocolError} ProtocolError */

/**
 * The element with `id`, checked to be of the expected class.
 * @template {HTMLElement} T
 * @param {string} id
 * @param {new () => T} type
 * @returns {T}
 */
function byId(id, type) {
  const el = document.getElementById(id);
  if (!(el instanceof type)) throw new Error(`index.html lacks #${id} (${type.name})`);
  return el;
}

const ui = {
  alert: byId('alert', HTMLDivElement),
  status: byId('status', HTMLParagraphElement),
  homeView: byId('home-view', HTMLElement),
  newMeeting: byId('new-meeting', HTMLButtonElement),
  openForm: byId('open-form', HTMLFormElement),
  openInput: byId('open-input', HTMLInputElement),
  roomView: byId('room-view', HTMLElement),
  prejoinForm: byId('prejoin-form', HTMLFormElement),
  nameInput: byId('name-input', HTMLInputElement),
  joinButton: byId('join-button', HTMLButtonElement),
  grid: byId('grid', HTMLDivElement),
  selfView: byId('self-view', HTMLVideoElement),
  /** @type {Record<Source, HTMLButtonElement>} */
  toggles: {
    microphone: byId('microphone-toggle', HTMLButtonElement),
    camera: byId('camera-toggle', HTMLButtonElement),
  },
  leaveButton: byId('leave-button', HTMLButtonElement),
};

// ---------------------------------------------------------------------------------------
// Messages

/** @param {string} text */
function showAlert(text) {
  ui.alert.textContent = text;
  ui.alert.hidden = false;
}

function clearAlert() {
  ui.alert.textContent = '';
  ui.alert.hidden = true;
}

/** @param {string} text */
function setStatus(text) {
  ui.status.textContent = text;
}

/** @param {ProtocolError} err */
function showProtocolError(err) {
  showAlert(t('serverError', { code: err.code, message: err.message }));
}

// ---------------------------------------------------------------------------------------
// Home: new meeting, open an existing one

/**
 * A fresh room ID: 16 random bytes as 22 base64url characters (128 bits).
 * @returns {string}
 */
function newRoomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const base64 = btoa(String.fromCharCode(...bytes));
  return base64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * The room ID in what the user typed: a bare ID, or a link whose path is `/r/<id>`.
 * @param {string} input
 * @returns {string | null}
 */
function roomIdFromInput(input) {
  const text = input.trim();
  if (ROOM_ID_PATTERN.test(text)) return text;
  let url;
  try {
    url = new URL(text, location.origin);
  } catch {
    return null;
  }
  const match = /^\/r\/([^/]+)\/?$/.exec(url.pathname);
  return match && ROOM_ID_PATTERN.test(match[1]) ? match[1] : null;
}

/** @param {string} room */
function goToRoom(room) {
  location.assign(`/r/${room}`);
}

function showHome() {
  ui.homeView.hidden = false;
  ui.newMeeting.addEventListener('click', () => goToRoom(newRoomId()));
  ui.openForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const room = roomIdFromInput(ui.openInput.value);
    if (room) goToRoom(room);
    else showAlert(t('invalidRoom'));
  });
}

// ---------------------------------------------------------------------------------------
// Local media

/** @type {Map<Source, MediaStreamTrack>} */
const localTracks = new Map();
/** What the user last asked for with the toggles. @type {Record<Source, boolean>} */
const wanted = { microphone: false, camera: false };
/** Each source's toggle operations run one after another. @type {Record<Source, Promise<void>>} */
const toggleChains = { microphone: Promise.resolve(), camera: Promise.resolve() };

/**
 * Turn `source` on or off: capture or stop the device, and tell the session if joined.
 * @param {Source} source
 * @param {boolean} on
 */
async function setLocalSource(source, on) {
  const button = ui.toggles[source];
  if (on === localTracks.has(source)) return;
  console.debug(`conclave: turning ${source} ${on ? 'on' : 'off'}`);
  button.setAttribute('aria-busy', 'true');
  try {
    if (on) {
      const constraints = source === 'camera' ? { video: true } : { audio: true };
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      const track = stream.getTracks()[0];
      console.debug(`conclave: captured ${source} (${track.label})`);
      localTracks.set(source, track);
      if (source === 'camera') showSelfView(track);
      await session?.setSource(source, track);
    } else {
      const track = localTracks.get(source);
      localTracks.delete(source);
      if (source === 'camera') showSelfView(null);
      await session?.setSource(source, null);
      track?.stop();
    }
  } catch (e) {
    wanted[source] = localTracks.has(source);
    const device = source === 'camera' ? t('camera') : t('microphone');
    showAlert(t('mediaFailed', { device, error: e instanceof Error ? e.message : String(e) }));
  } finally {
    button.setAttribute('aria-pressed', String(localTracks.has(source)));
    button.removeAttribute('aria-busy');
  }
}

/**
 * Queue a toggle of `source` behind earlier ones.
 * @param {Source} source
 * @param {boolean} on
 */
function queueToggle(source, on) {
  wanted[source] = on;
  toggleChains[source] = toggleChains[source].then(() => setLocalSource(source, on));
  return toggleChains[source];
}

/** Stop every local device (after leaving: the defaults are camera and microphone off). */
function stopLocalMedia() {
  for (const source of SOURCES) queueToggle(source, false);
}

/** @param {MediaStreamTrack | null} track */
function showSelfView(track) {
  ui.selfView.srcObject = track ? new MediaStream([track]) : null;
  ui.selfView.hidden = !track;
}

// ---------------------------------------------------------------------------------------
// Tiles: one per other participant

/**
 * @typedef {object} Tile
 * @property {HTMLElement} root
 * @property {HTMLVideoElement} video
 * @property {HTMLAudioElement} audio
 * @property {HTMLElement} caption
 * @property {ParticipantInfo} info
 */

/** @type {Map<string, Tile>} */
const tiles = new Map();
/** Remote tracks by participant and source, kept even if a track arrives before its tile. */
/** @type {Map<string, Map<Source, RemoteTrack>>} */
const remoteTracks = new Map();

/**
 * The tile of `participant`, created if new; its caption and state follow `participant`.
 * @param {ParticipantInfo} participant
 * @returns {Tile}
 */
function upsertTile(participant) {
  let tile = tiles.get(participant.id);
  if (!tile) {
    const root = document.createElement('figure');
    root.className = 'tile';
    root.dataset.participantId = participant.id;
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true; // Sound comes from the audio element.
    video.hidden = true;
    const audio = document.createElement('audio');
    audio.autoplay = true;
    const avatar = document.createElement('div');
    avatar.className = 'avatar';
    avatar.setAttribute('aria-hidden', 'true');
    const caption = document.createElement('figcaption');
    root.append(avatar, video, audio, caption);
    ui.grid.append(root);
    tile = { root, video, audio, caption, info: participant };
    tiles.set(participant.id, tile);
    for (const remote of remoteTracks.get(participant.id)?.values() ?? []) {
      attachTrack(remote.source === 'camera' ? video : audio, remote.track);
    }
  }
  tile.info = participant;
  tile.caption.textContent = participant.name;
  const avatar = tile.root.querySelector('.avatar');
  if (avatar) avatar.textContent = [...participant.name.trim()][0]?.toUpperCase() ?? '?';
  for (const source of SOURCES) {
    tile.root.dataset[source] = participant.sources.includes(source) ? 'on' : 'off';
  }
  updateVideoVisibility(tile);
  updateAloneHint();
  return tile;
}

/** @param {Tile} tile */
function updateVideoVisibility(tile) {
  tile.video.hidden = !(tile.video.srcObject && tile.info.sources.includes('camera'));
}

/** @param {string} id */
function removeTile(id) {
  const tile = tiles.get(id);
  if (!tile) return;
  tile.video.srcObject = null;
  tile.audio.srcObject = null;
  tile.root.remove();
  tiles.delete(id);
  remoteTracks.delete(id);
  updateAloneHint();
}

function removeAllTiles() {
  for (const id of [...tiles.keys()]) removeTile(id);
  remoteTracks.clear();
}

function updateAloneHint() {
  if (session?.state === 'joined') setStatus(tiles.size === 0 ? t('alone') : '');
}

/**
 * @param {HTMLMediaElement} element
 * @param {MediaStreamTrack} track
 */
function attachTrack(element, track) {
  element.srcObject = new MediaStream([track]);
  element.play().catch(() => {
    // Autoplay refused: the element starts when the browser allows it.
  });
}

/** @param {RemoteTrack} remote */
function onTrackAdded(remote) {
  let tracks = remoteTracks.get(remote.participant);
  if (!tracks) {
    tracks = new Map();
    remoteTracks.set(remote.participant, tracks);
  }
  tracks.set(remote.source, remote);
  const tile = tiles.get(remote.participant);
  if (!tile) return; // Attached when the tile appears.
  attachTrack(remote.source === 'camera' ? tile.video : tile.audio, remote.track);
  updateVideoVisibility(tile);
}

/** @param {RemoteTrack} remote */
function onTrackRemoved(remote) {
  const tracks = remoteTracks.get(remote.participant);
  if (tracks?.get(remote.source)?.track === remote.track) tracks.delete(remote.source);
  const tile = tiles.get(remote.participant);
  if (!tile) return;
  const element = remote.source === 'camera' ? tile.video : tile.audio;
  const stream = element.srcObject;
  if (stream instanceof MediaStream && stream.getTracks().includes(remote.track)) {
    element.srcObject = null;
  }
  updateVideoVisibility(tile);
}

// ---------------------------------------------------------------------------------------
// Room: pre-join form, meeting, leave

/** @type {ConclaveSession | null} */
let session = null;

/** @param {boolean} inMeeting */
function showMeetingControls(inMeeting) {
  ui.prejoinForm.hidden = inMeeting;
  ui.joinButton.hidden = inMeeting;
  ui.grid.hidden = !inMeeting;
  ui.leaveButton.hidden = !inMeeting;
}

function updateJoinButton() {
  ui.joinButton.disabled = session !== null || ui.nameInput.value.trim() === '';
}

/**
 * Connect to `room` under the typed name.
 * @param {string} room
 */
async function join(room) {
  const name = ui.nameInput.value.trim();
  if (!name || session) return;
  clearAlert();
  setStatus(t('connecting'));
  const current = new ConclaveSession(signallingUrl(location));
  session = current;
  updateJoinButton();
  ui.nameInput.disabled = true;

  current.on('joined', ({ participants }) => {
    for (const p of participants) upsertTile(p);
  });
  current.on('participantjoined', ({ participant }) => upsertTile(participant));
  current.on('participantupdated', ({ participant }) => upsertTile(participant));
  current.on('participantleft', ({ id }) => removeTile(id));
  current.on('trackadded', onTrackAdded);
  current.on('trackremoved', onTrackRemoved);
  current.on('error', showProtocolError);
  current.on('closed', ({ reason }) => onSessionEnded(current, reason));

  try {
    await current.join(room, name);
  } catch (e) {
    showProtocolError(/** @type {ProtocolError} */ (e));
    setStatus('');
    session = null;
    ui.nameInput.disabled = false;
    updateJoinButton();
    return;
  }
  Object.assign(window, { conclave: { session: current, pc: current.pc } });
  showMeetingControls(true);
  updateAloneHint();
  for (const [source, track] of localTracks) current.setSource(source, track);
}

/**
 * @param {ConclaveSession} ended
 * @param {string} reason
 */
function onSessionEnded(ended, reason) {
  if (session !== ended) return;
  session = null;
  removeAllTiles();
  stopLocalMedia();
  showMeetingControls(false);
  ui.nameInput.disabled = false;
  updateJoinButton();
  if (reason === 'left') setStatus(t('left'));
  else {
    setStatus('');
    showAlert(t('ended', { reason }));
  }
}

/** @param {string} room */
function showRoom(room) {
  ui.roomView.hidden = false;
  showMeetingControls(false);
  ui.nameInput.addEventListener('input', updateJoinButton);
  updateJoinButton();
  ui.prejoinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    join(room);
  });
  for (const source of SOURCES) {
    const button = ui.toggles[source];
    button.addEventListener('click', () => {
      queueToggle(source, !wanted[source]);
    });
  }
  ui.leaveButton.addEventListener('click', () => session?.leave());
  ui.nameInput.focus();
}

// ---------------------------------------------------------------------------------------
// Start

function start() {
  translatePage(document);
  const match = /^\/r\/([^/]*)\/?$/.exec(location.pathname);
  if (!match) {
    showHome();
    return;
  }
  const room = match[1];
  if (!ROOM_ID_PATTERN.test(room)) {
    showAlert(t('invalidRoom'));
    showHome();
    return;
  }
  showRoom(room);
}

start();
