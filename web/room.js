// The room page: the pre-join form (name, devices, preview) and the meeting itself (tiles,
// controls, participant list), one after the other on the same page.
//
// This module knows nothing of the wire: it drives a ConclaveSession (protocol.js) and draws
// what the session reports. Texts come from i18n.js.

import { ConclaveSession, allPermissions, isConnectionLoss, signallingUrl } from './protocol.js';
import { ModerationUI } from './moderation.js';
import { canCapture } from './media.js';
import {
  PASSWORD_ERRORS,
  PERMANENT_JOIN_ERRORS,
  showEnded,
  showProtocolError,
  takeTokenFromUrl,
} from './refusals.js';
import { MediaFailures, Reconnector, mediaFailureKey } from './reconnect.js';
import { LocalDevices } from './devices.js';
import { ChatPanel } from './chat.js';
import { FilePanel } from './file-list.js';
import { formatBytes } from './files.js';
import { limitVideoHeight } from './media.js';
import { onLocaleChange, t } from './i18n.js';
import { roomLink } from './home.js';
import { currentAccount } from './account.js';
import { accountBinder, serverIdentityKey } from './e2ee/identity.js';
import { announce, byId, clearAlert, copyLink, setStatus, showAlert } from './page.js';
import { Roster, SELF, createQualityBadge, drawQuality } from './tiles.js';
import { MeetingStats, levelFromRms } from './stats.js';
import { SpeakerDetector } from './speaker.js';
import { E2eeUnsupportedError, MeetingE2ee } from './e2ee/meeting.js';

/** @typedef {import('./protocol.js').DeviceSource} Source */
/** @typedef {import('./protocol.js').ProtocolError} ProtocolError */
/** @typedef {import('./protocol.js').LeaveReason} LeaveReason */
/** @typedef {'prejoin' | 'lobby' | 'meeting'} Phase */
/** @typedef {import('./protocol.js').Permissions} Permissions */
/** @typedef {import('./i18n.js').MessageKey} MessageKey */

/** From this width on, the participant list starts open in a meeting. */
const WIDE_SCREEN = '(min-width: 60rem)';
/** Room kept free between the tile grid and the control bar, in CSS pixels. */
const GRID_MARGIN_PX = 16;
/** The grid is never made shorter than this; a smaller window scrolls. */
const MIN_GRID_HEIGHT_PX = 180;

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
    chatPanel: byId('chat-panel', HTMLElement),
    chatButton: byId('chat-button', HTMLButtonElement),
    chatInput: byId('chat-input', HTMLInputElement),
    handButton: byId('hand-button', HTMLButtonElement),
    screenButton: byId('screen-button', HTMLButtonElement),
    layoutButton: byId('layout-button', HTMLButtonElement),
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
    connectionBanner: byId('connection-banner', HTMLDivElement),
    connectionText: byId('connection-text', HTMLParagraphElement),
    rejoinButton: byId('rejoin-button', HTMLButtonElement),
    roomLink: byId('room-link', HTMLInputElement),
    nameField: byId('name-input', HTMLInputElement).closest('.field'),
    tokenNote: byId('token-note', HTMLParagraphElement),
    accountNote: byId('account-note', HTMLParagraphElement),
    passwordField: byId('password-field', HTMLDivElement),
    passwordInput: byId('password-input', HTMLInputElement),
    lobbyPanel: byId('lobby-panel', HTMLElement),
    lobbyHeading: byId('lobby-heading', HTMLHeadingElement),
    lobbyMessage: byId('lobby-message', HTMLParagraphElement),
    lobbyForm: byId('lobby-form', HTMLFormElement),
    lobbyPassword: byId('lobby-password', HTMLInputElement),
    lobbyCancel: byId('lobby-cancel', HTMLButtonElement),
    permissionNote: byId('permission-note', HTMLParagraphElement),
    chatSend: byId('chat-send', HTMLButtonElement),
    e2eeButton: byId('e2ee-button', HTMLButtonElement),
    e2eePanel: byId('e2ee-panel', HTMLElement),
    e2eeExplain: byId('e2ee-explain', HTMLParagraphElement),
    e2eeSas: byId('e2ee-sas', HTMLDivElement),
    e2eeSasDigits: byId('e2ee-sas-digits', HTMLParagraphElement),
    e2eeSasEmoji: byId('e2ee-sas-emoji', HTMLParagraphElement),
    e2eeSasEpoch: byId('e2ee-sas-epoch', HTMLParagraphElement),
    e2eeConfirm: byId('e2ee-confirm', HTMLButtonElement),
    e2eeVerified: byId('e2ee-verified', HTMLParagraphElement),
    e2eeMembers: byId('e2ee-members', HTMLUListElement),
    e2eeOutside: byId('e2ee-outside', HTMLParagraphElement),
    e2eeResetNote: byId('e2ee-reset-note', HTMLParagraphElement),
    e2eeResetBox: byId('e2ee-reset-box', HTMLDivElement),
    e2eeReset: byId('e2ee-reset', HTMLButtonElement),
  };
  /** The invitation token of the link, kept in memory only (reconnects use it again). */
  const token = takeTokenFromUrl();
  /** The room password the user typed, kept in memory for reconnects. */
  let password = '';
  /** What we may do, as the server last said. @type {Permissions} */
  let permissions = allPermissions(true);
  /** Whether the user cancelled waiting in the lobby. */
  let cancelledWait = false;

  /** @type {ConclaveSession | null} */
  let session = null;
  /** End-to-end encryption of `session` (null: off on this server). @type {MeetingE2ee | null} */
  let e2ee = null;
  /** The server's public settings (asked once, before the first join). */
  const publicSettings = fetchPublicSettings();
  /** Whether the side panels are open during the meeting. */
  const expanded = { devices: false, people: false, chat: false, e2ee: false };
  /** The screen being shared, if any. @type {MediaStreamTrack | null} */
  let screenTrack = null;
  /** Whether our hand is raised, as the server last told us. */
  let handRaised = false;
  /** Whether the first join is under way. */
  let joining = false;
  /** Whether to raise the hand again once a reconnect joined. */
  let handWanted = false;
  /** The name we joined under; a reconnect joins under it again. */
  let joinedName = '';
  /** Joining again after the connection was lost; null when not. @type {Reconnector | null} */
  let reconnector = null;
  /** Sessions in a row whose media never connected (joining again would loop). */
  const mediaFailures = new MediaFailures();
  /** A reconnect joined, but media does not flow yet: "Reconnected." waits for it. */
  let awaitingMedia = false;
  /** We stopped joining again because media never connected; Rejoin starts over. */
  let mediaGaveUp = false;
  /** Reads the statistics of the current session. @type {MeetingStats | null} */
  let meetingStats = null;
  const speakers = new SpeakerDetector(SELF);
  const selfQuality = createQualityBadge(byId('self-quality', HTMLSpanElement));
  /** The text of the connection banner. @type {{key: MessageKey, params?: Record<string, number>} | null} */
  let connectionMessage = null;

  const chat = new ChatPanel(
    {
      log: byId('chat-log', HTMLDivElement),
      form: byId('chat-form', HTMLFormElement),
      recipient: byId('chat-to', HTMLSelectElement),
      input: ui.chatInput,
      unread: byId('chat-unread', HTMLSpanElement),
      unreadLabel: byId('chat-unread-label', HTMLSpanElement),
    },
    (text, to) => sendChat(text, to),
  );
  const files = new FilePanel(
    { list: byId('file-list', HTMLUListElement), input: byId('file-input', HTMLInputElement), button: byId('file-send', HTMLButtonElement) },
    {
      recipient: () => byId('chat-to', HTMLSelectElement).value || null,
      nameOf: (id) => roster.nameOf(id),
      offered: (from, name, size, isPrivate) => {
        const who = roster.nameOf(from) ?? t('someone');
        if (chat.receive(who, t('fileOfferedChat', { name, size: formatBytes(size) }), isPrivate)) announce('chatNewMessage', { name: who });
      },
    },
  );

  const roster = new Roster(
    {
      grid: ui.grid,
      list: byId('people-list', HTMLUListElement),
      heading: byId('people-heading', HTMLHeadingElement),
      count: byId('people-count', HTMLSpanElement),
      presentations: byId('presentations', HTMLDivElement),
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

  const moderation = new ModerationUI(
    (msg) => session?.moderate(msg) ?? false,
    () => roster.redraw(),
    () => drawPanels(),
  );
  roster.setDecorator((item, info) => moderation.decorate(item, info));

  /** @param {Phase} phase */
  function setPhase(phase) {
    const meeting = phase === 'meeting';
    const lobby = phase === 'lobby';
    ui.view.dataset.phase = phase;
    ui.preview.hidden = meeting;
    ui.meetingHeading.hidden = !meeting;
    ui.grid.hidden = !meeting;
    ui.prejoinForm.hidden = meeting || lobby;
    ui.lobbyPanel.hidden = !lobby;
    ui.joinButton.hidden = meeting || lobby;
    ui.listenOnlyButton.hidden = meeting || lobby;
    ui.listenOnlyHint.hidden = meeting || lobby;
    ui.devicesButton.hidden = !meeting;
    ui.peopleButton.hidden = !meeting;
    ui.chatButton.hidden = !meeting;
    ui.e2eeButton.hidden = !meeting;
    ui.handButton.hidden = !meeting;
    ui.screenButton.hidden = !meeting || typeof navigator.mediaDevices?.getDisplayMedia !== 'function';
    ui.layoutButton.hidden = !meeting;
    ui.leaveButton.hidden = !meeting;
    drawPanels();
  }

  function drawPanels() {
    const meeting = ui.view.dataset.phase === 'meeting';
    ui.devicePanel.hidden = meeting && !expanded.devices;
    ui.peoplePanel.hidden = !meeting || !expanded.people;
    ui.chatPanel.hidden = !meeting || !expanded.chat;
    ui.e2eePanel.hidden = !meeting || !expanded.e2ee;
    ui.e2eeButton.setAttribute('aria-expanded', String(expanded.e2ee));
    ui.chatButton.setAttribute('aria-expanded', String(expanded.chat));
    chat.setOpen(meeting && expanded.chat);
    ui.devicesButton.setAttribute('aria-expanded', String(expanded.devices));
    ui.peopleButton.setAttribute('aria-expanded', String(expanded.people));
    const open = expanded.devices || expanded.people || expanded.chat || expanded.e2ee || moderation.panelOpen;
    ui.view.dataset.panel = meeting && open ? 'open' : 'closed';
    roster.relayout();
  }

  function updateJoinButtons() {
    const blocked = session !== null || joining || (!token && ui.nameInput.value.trim() === '');
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
    // With an invitation token the server names us; the typed name is then not needed.
    const name = ui.nameInput.value.trim() || (token ? '-' : '');
    if (!name || session || reconnector || joining) return;
    joining = true;
    cancelledWait = false;
    password = ui.passwordField.hidden ? '' : ui.passwordInput.value;
    clearAlert();
    updateJoinButtons();
    ui.nameInput.disabled = true;
    setStatus('connecting');
    try {
      if (withoutDevices) await devices.stopAll();
      await connect(name);
    } catch (e) {
      const err = /** @type {ProtocolError} */ (e);
      setPhase('prejoin');
      if (cancelledWait) clearAlert();
      else showProtocolError(err);
      if (PASSWORD_ERRORS.has(err.code)) {
        ui.passwordField.hidden = false;
        ui.passwordInput.value = '';
      }
      setStatus(null);
      ui.nameInput.disabled = false;
      joining = false;
      updateJoinButtons();
      (PASSWORD_ERRORS.has(err.code) ? ui.passwordInput : ui.joinButton.disabled ? ui.nameInput : ui.joinButton).focus();
      return;
    } finally {
      joining = false;
      updateJoinButtons();
    }
    expanded.people = matchMedia(WIDE_SCREEN).matches;
    expanded.devices = false;
    setPhase('meeting');
    updateAloneHint();
    announce('youJoined');
    // The join button is gone: keep the keyboard focus in the meeting's controls.
    const first = ui.toggles.microphone.disabled ? ui.leaveButton : ui.toggles.microphone;
    first.focus();
  }

  /**
   * Open a session as `name`, show what it reports, and join. Once joined it is `session`
   * and sends the devices that are on. Rejects with the ProtocolError of a failed join.
   * @param {string} name
   * @returns {Promise<ConclaveSession>}
   */
  async function connect(name) {
    /** @type {MeetingE2ee | null} */
    let encryption;
    try {
      encryption = MeetingE2ee.forSettings(await publicSettings);
    } catch (e) {
      if (e instanceof E2eeUnsupportedError) throw { code: e.code, message: e.message };
      throw e;
    }
    // Our leaf carries the account binding when signed in; every page checks the others'.
    if (encryption) {
      const [binder, serverKey] = await Promise.all([
        account ? accountBinder(account.username, room) : Promise.resolve(null),
        serverIdentityKey(),
      ]);
      encryption.setIdentity({ binder, serverKey, room });
    }
    const current = new ConclaveSession(signallingUrl(location));
    session = current;
    e2ee?.close();
    e2ee = encryption;
    encryption?.attach(current, () => {
      if (session === current) drawE2ee();
    });
    drawE2ee();
    updateJoinButtons();
    wire(current, name);
    try {
      /** @type {import('./protocol.js').JoinOptions} */
      const options = {};
      if (password) options.password = password;
      if (token) options.token = token;
      await current.join(room, name, options);
    } catch (e) {
      if (session === current) session = null;
      updateJoinButtons();
      throw e;
    }
    Object.assign(window, { conclave: { session: current, pc: current.pc, e2ee: encryption, files } });
    for (const [source, track] of devices.tracks) {
      if (allowed(source)) current.setSource(source, track);
    }
    watch(current);
    return current;
  }

  /**
   * Read `current`'s statistics: who speaks (the others' audio, our microphone) and how good
   * the connections are.
   * @param {ConclaveSession} current
   */
  function watch(current) {
    unwatch();
    const pc = current.pc;
    if (!pc) return;
    meetingStats = new MeetingStats(pc, () => current.trackMap, (report) => {
      if (session !== current) return;
      const levels = new Map(report.levels);
      levels.set(SELF, levelFromRms(devices.takeMicrophoneRms()));
      const state = speakers.update(performance.now(), levels);
      roster.setSpeaking(state.speaking);
      roster.setFeatured(state.recent);
      roster.setQualities(report.quality);
      selfQuality.quality = report.self;
      drawQuality(selfQuality, true);
    });
  }

  /** Stop reading statistics and show nothing of them. */
  function unwatch() {
    meetingStats?.stop();
    meetingStats = null;
    speakers.reset();
    roster.setSpeaking(null);
    roster.setQualities(new Map());
    selfQuality.quality = 'unknown';
    drawQuality(selfQuality, true);
  }

  /**
   * Show what `current` reports, as long as it is the session of this page.
   * @param {ConclaveSession} current
   * @param {string} name
   */
  function wire(current, name) {
    current.on('lobby', ({ message }) => {
      if (session !== current || ui.view.dataset.phase === 'meeting') return;
      ui.lobbyMessage.textContent = message;
      setStatus(null);
      if (ui.view.dataset.phase !== 'lobby') {
        setPhase('lobby');
        ui.lobbyPassword.value = '';
        ui.lobbyHeading.focus();
        announce('lobbyWaitingAnnounce');
      }
    });
    current.on('joined', ({ participants, settings, name: given, signedIn, role, permissions: mine, roomState, lobby }) => {
      limitVideoHeight(settings.max_video_height, devices.track('camera'));
      // Audio only: no camera sent (devices) and no video received (the server stops it).
      if (devices.audioOnly) current.setReceiveVideo(false);
      joinedName = given ?? name;
      moderation.start(role, roomState, lobby);
      drawE2ee();
      applyPermissions(mine, false);
      roster.showSelf(joinedName, role, signedIn);
      roster.setSelfMedia(devices.track('camera'), devices.track('microphone') !== null);
      // After a reconnect: whoever is not in the room any more goes, the others stay.
      roster.retain(participants.map((p) => p.id));
      for (const p of participants) roster.upsert(p);
      updateRecipients();
    });
    current.on('participantjoined', ({ participant }) => {
      if (roster.upsert(participant)) announce('personJoined', { name: participant.name });
      updateAloneHint();
      updateRecipients();
    });
    current.on('participantupdated', ({ participant }) => {
      const before = roster.handOf(participant.id);
      const wasSharing = roster.isSharing(participant.id);
      roster.upsert(participant);
      const raised = participant.hand_raised === true;
      if (raised !== before) {
        announce(raised ? 'personRaisedHand' : 'personLoweredHand', { name: participant.name });
      }
      if (!wasSharing && participant.sources.includes('screen')) {
        announce('personSharesScreen', { name: participant.name });
      }
      updateRecipients();
    });
    current.on('permissions', ({ role, permissions: mine }) => {
      if (session !== current) return;
      const wasModerator = moderation.isModerator;
      moderation.setRole(role);
      roster.showSelf(joinedName, role);
      if (wasModerator !== (role === 'moderator')) announce(role === 'moderator' ? 'youAreModerator' : 'youAreNoModerator');
      applyPermissions(mine, true);
      drawE2ee();
      drawPanels();
    });
    current.on('knock', (knock) => moderation.addKnock(knock));
    current.on('knockwithdrawn', ({ participant }) => moderation.removeKnock(participant));
    current.on('roomupdated', ({ roomState }) => moderation.setRoomState(roomState));
    current.on('selfupdated', ({ participant }) => {
      const raised = participant.hand_raised === true;
      if (raised === handRaised) return;
      handRaised = raised;
      drawHand();
      roster.setSelfHand(raised);
      announce(raised ? 'youRaisedHand' : 'youLoweredHand');
    });
    files.attach(current, e2ee);
    current.on('chat', (message) => {
      const from = roster.nameOf(message.from) ?? t('someone');
      /** @param {string} text @param {boolean} [isPrivate] */
      const show = (text, isPrivate = message.private) => {
        if (session === current && chat.receive(from, text, isPrivate)) {
          announce('chatNewMessage', { name: from });
        }
      };
      const encryption = e2ee;
      if (message.text !== null) {
        // Plain text in an encrypted meeting only comes from a server that breaks the rules.
        show(encryption ? t('chatNotEncrypted', { text: message.text }) : message.text);
      } else if (encryption && message.ciphertext !== null) {
        encryption.decrypt(message.from, message.ciphertext).then(
          // private is what the sender sealed, not what the server says
          (m) => show(m.senderMatches ? m.text : t('chatSenderMismatch', { text: m.text }), m.private),
          (err) => {
            console.warn('conclave: chat not decrypted', err);
            show(t('chatUndecryptable'));
          },
        );
      }
    });
    current.on('participantleft', ({ id }) => {
      const left = roster.nameOf(id);
      speakers.forget(id);
      moderation.forget(id);
      roster.remove(id);
      if (left !== undefined) announce('personLeft', { name: left });
      updateAloneHint();
      updateRecipients();
    });
    current.on('trackadded', (remote) => roster.addTrack(remote));
    current.on('trackremoved', (remote) => roster.removeTrack(remote));
    current.on('error', (err) => {
      if (session === current) showProtocolError(err);
    });
    current.on('mediaconnected', () => onMediaConnected(current));
    current.on('closed', ({ reason, message }) => onSessionEnded(current, reason, message));
  }

  /**
   * Send a chat message: encrypted when the meeting is, else as text. Returns whether it
   * was sent (after encrypting it, when the meeting is encrypted); then the panel shows it as
   * ours, else the text stays in the input.
   * @param {string} text
   * @param {string | null} to
   */
  function sendChat(text, to) {
    const current = session;
    if (!current) return false;
    const encryption = e2ee;
    if (!encryption) return current.sendChat(text, to ?? undefined);
    if (!encryption.ready) {
      showAlert('chatNotReady');
      return false;
    }
    return encryption.encrypt(text, to).then(
      (ciphertext) => session === current && current.sendEncryptedChat(ciphertext, to ?? undefined),
      (err) => {
        console.warn('conclave: chat not encrypted', err);
        // a private message to someone whose leaf is not in the group yet (group.js says so)
        if (to !== null && err instanceof Error && err.message.includes('has no leaf')) {
          showAlert('chatRecipientNotReady', { name: roster.nameOf(to) ?? t('someone') });
        } else showAlert('chatNotReady');
        return false;
      },
    );
  }

  /** The SAS shown, by group generation and epoch, so that it is derived once per epoch. @type {{epoch: number, generation: number, digits: string, emoji: {char: string, name: string}[]} | null} */
  let shownSas = null;
  /** The group generation whose reset was last announced. */
  let announcedReset = 0;

  /** Draw the encryption state: the control's label, the panel, the SAS and the members. */
  function drawE2ee() {
    const status = e2ee?.status() ?? null;
    const state = status ? status.state : 'off';
    /** @type {Record<string, import('./i18n.js').MessageKey>} */
    const labels = { off: 'e2eeStateOff', pending: 'e2eeStatePending', encrypted: 'e2eeStateEncrypted', unverified: 'e2eeStateUnverified' };
    /** @type {Record<string, import('./i18n.js').MessageKey>} */
    const explain = { off: 'e2eeExplainOff', pending: 'e2eeExplainPending', encrypted: 'e2eeExplainEncrypted', unverified: 'e2eeExplainUnverified' };
    const previous = ui.e2eeButton.dataset.state;
    ui.e2eeButton.dataset.state = state;
    ui.e2eeButton.textContent = t(labels[state]);
    ui.e2eeExplain.textContent = t(explain[state]);
    if (previous && previous !== state && state === 'unverified') announce('e2eeStateUnverified');
    const members = status?.members ?? [];
    ui.e2eeMembers.replaceChildren(
      ...members.map((m) => {
        const li = document.createElement('li');
        li.dataset.match = m.match;
        li.dataset.verified = String(m.verified);
        li.dataset.identity = m.identity;
        if (m.account) li.dataset.account = m.account.username;
        /** @type {import('./i18n.js').MessageKey} */
        const what = m.identity === 'forged' ? 'e2eeMemberForged'
          : m.match === 'unknown' ? 'e2eeMemberUnknown'
          : m.match === 'leaving' ? 'e2eeMemberLeaving'
          : m.identity === 'new_key' ? 'e2eeMemberNewKey'
          : m.verified && !m.self && m.identity === 'verified' ? 'e2eeMemberVerifiedAccount'
          : m.verified ? 'e2eeMemberVerified' : 'e2eeMemberUnverified';
        const shown = m.account ? t('e2eeMemberAccount', { name: m.name || '?', username: m.account.username }) : m.name || '?';
        const name = m.self ? t('e2eeYou', { name: shown }) : shown;
        li.textContent = `${name} — ${t(what)}`;
        return li;
      }),
    );
    const outside = (status?.outside ?? []).map((id) => roster.nameOf(id) ?? id);
    ui.e2eeOutside.hidden = outside.length === 0 || state === 'pending';
    ui.e2eeOutside.textContent = t('e2eeOutside', { names: outside.join(', ') });
    const others = members.filter((m) => !m.self && m.match === 'present');
    const verified = others.filter((m) => m.verified).length;
    ui.e2eeVerified.textContent = others.length ? t('e2eeVerifiedCount', { verified, total: others.length }) : '';
    ui.e2eeConfirm.disabled = others.length === 0 || verified === others.length;
    ui.e2eeResetBox.hidden = !status || !moderation.isModerator;
    const reset = status?.reset ?? null;
    ui.e2eeResetNote.hidden = reset === null;
    if (reset) {
      /** @type {import('./i18n.js').MessageKey} */
      const key = reset.self ? 'e2eeResetBySelf' : reset.name ? 'e2eeResetBy' : 'e2eeResetByUnknown';
      ui.e2eeResetNote.textContent = t(key, { name: reset.name });
      if (status && status.generation > announcedReset) {
        announcedReset = status.generation;
        announce(key, { name: reset.name });
      }
    }
    const epoch = status?.epoch ?? null;
    const generation = status?.generation ?? 0;
    ui.e2eeSas.hidden = epoch === null;
    ui.e2eeSas.dataset.epoch = epoch === null ? '' : String(epoch);
    ui.e2eeSas.dataset.generation = String(generation);
    if (epoch === null) {
      shownSas = null;
      return;
    }
    if (shownSas?.epoch === epoch && shownSas.generation === generation) {
      drawSas(shownSas);
      return;
    }
    const current = e2ee;
    void current?.sas().then((sas) => {
      if (!sas) return;
      const now = current === e2ee ? current.status() : null;
      if (!now || now.epoch !== sas.epoch || now.generation !== sas.generation) return;
      shownSas = sas;
      drawSas(sas);
    });
  }

  /** @param {{epoch: number, digits: string, emoji: {char: string, name: string}[]}} sas */
  function drawSas(sas) {
    ui.e2eeSasDigits.textContent = sas.digits;
    ui.e2eeSasEmoji.replaceChildren(
      ...sas.emoji.map(({ char, name }) => {
        const span = document.createElement('span');
        span.textContent = char;
        span.title = name;
        span.setAttribute('role', 'img');
        span.setAttribute('aria-label', name);
        return span;
      }),
    );
    ui.e2eeSasEpoch.textContent = t('e2eeSasEpoch', { epoch: sas.epoch });
  }

  /**
   * Whether we may send `source` now.
   * @param {import('./protocol.js').Source} source
   */
  function allowed(source) {
    return permissions[source === 'microphone' ? 'unmute' : source];
  }

  /**
   * Follow what the server lets us do: a source we may no longer send stops at once and its
   * control is disabled with the reason; once allowed again the control works again (the
   * source stays off until the user turns it on). Chat input follows `chat`.
   * @param {Permissions} next
   * @param {boolean} say Announce the changes (not on joining).
   */
  function applyPermissions(next, say) {
    const before = permissions;
    permissions = { ...next };
    if (!next.unmute && devices.track('microphone')) devices.set('microphone', false);
    if (!next.camera && devices.track('camera')) devices.set('camera', false);
    if (!next.screen && screenTrack) stopScreen(false);
    if (say) {
      /** @type {[boolean, boolean, MessageKey, MessageKey][]} */
      const changes = [
        [before.unmute, next.unmute, 'mutedByModerator', 'microphoneAllowed'],
        [before.camera, next.camera, 'cameraStoppedByModerator', 'cameraAllowed'],
        [before.screen, next.screen, 'screenStoppedByModerator', 'screenAllowed'],
      ];
      for (const [was, now, stopped, allowedAgain] of changes) {
        if (was && !now) announce(stopped);
        else if (!was && now) announce(allowedAgain);
      }
    }
    drawPermissions();
  }

  /** Disable what we may not use, and say why next to the controls. */
  function drawPermissions() {
    const inMeeting = ui.view.dataset.phase === 'meeting' || session !== null;
    const usable = canCapture();
    /** @type {MessageKey[]} */
    const reasons = [];
    if (inMeeting && !permissions.unmute) reasons.push('mutedByModerator');
    if (inMeeting && !permissions.camera) reasons.push('cameraStoppedByModerator');
    if (inMeeting && !permissions.screen) reasons.push('screenStoppedByModerator');
    if (inMeeting && !permissions.chat) reasons.push('chatNotAllowed');
    if (inMeeting && !permissions.files) reasons.push('filesNotAllowed');
    files.setAllowed(!(inMeeting && !permissions.files));
    ui.toggles.microphone.disabled = !usable || (inMeeting && !permissions.unmute);
    ui.toggles.camera.disabled = !usable || (inMeeting && !permissions.camera);
    ui.screenButton.disabled = ui.view.dataset.connection !== 'connected' || (inMeeting && !permissions.screen);
    ui.chatInput.disabled = inMeeting && !permissions.chat;
    ui.chatSend.disabled = inMeeting && !permissions.chat;
    ui.permissionNote.textContent = reasons.map((key) => t(key)).join(' ');
    ui.permissionNote.hidden = reasons.length === 0;
    for (const el of [ui.toggles.microphone, ui.toggles.camera, ui.screenButton, ui.chatInput]) {
      if (reasons.length > 0 && el.disabled) el.setAttribute('aria-describedby', 'permission-note');
      else el.removeAttribute('aria-describedby');
    }
  }

  /**
   * The connection was lost in a meeting: keep the meeting on screen (tiles, chat, own
   * devices), say so, and join again under the same name until it works or time is up.
   */
  function startReconnect() {
    reconnector?.cancel();
    if (screenTrack) {
      stopScreen(false);
      announce('screenShareEndedByLoss');
    }
    handWanted = handRaised;
    handRaised = false;
    drawHand();
    roster.setSelfHand(false);
    setStatus(null);
    drawConnection('reconnecting');
    announce('connectionLost');
    const current = new Reconnector(async () => {
      try {
        await connect(joinedName);
        return 'joined';
      } catch (e) {
        const err = /** @type {ProtocolError} */ (e);
        if (PERMANENT_JOIN_ERRORS.has(err.code)) {
          showProtocolError(err);
          return 'stop';
        }
        return 'retry';
      }
    }, (state) => {
      if (reconnector !== current) return;
      onReconnectState(state);
    });
    reconnector = current;
    current.start();
  }

  /**
   * The media path of `current` connected: media flows. After a reconnect, that is when the
   * meeting is back.
   * @param {ConclaveSession} current
   */
  function onMediaConnected(current) {
    if (session !== current) return;
    mediaFailures.connected();
    if (awaitingMedia) reconnected();
  }

  function reconnected() {
    awaitingMedia = false;
    drawConnection('connected');
    announce('reconnected');
    if (handWanted) session?.raiseHand(true);
    handWanted = false;
    updateAloneHint();
  }

  /**
   * Media never connected in MEDIA_FAILURES_TO_GIVE_UP sessions in a row: stop joining
   * again (it would loop), keep the meeting on screen and say what to do; Rejoin starts over.
   */
  function giveUpOnMedia() {
    reconnector?.cancel();
    reconnector = null;
    awaitingMedia = false;
    mediaGaveUp = true;
    const key = mediaFailureKey(location.hostname, navigator.userAgent);
    drawConnection('failed', undefined, { key, params: { n: mediaFailures.count } });
    announce(key, { n: mediaFailures.count });
  }

  /** @param {import('./reconnect.js').ReconnectState} state */
  function onReconnectState(state) {
    switch (state.phase) {
      case 'waiting':
      case 'trying':
        drawConnection('reconnecting', state.attempt);
        break;
      case 'joined': {
        // Signalling is back; the meeting is back only once media flows again.
        reconnector = null;
        if (session?.mediaConnected) reconnected();
        else awaitingMedia = true;
        break;
      }
      case 'gaveup':
        drawConnection('failed');
        announce('reconnectFailed');
        break;
      case 'stopped':
        reconnector = null;
        endMeeting('error', true);
        break;
    }
  }

  /**
   * Show the state of the connection in the meeting.
   * @param {'connected' | 'reconnecting' | 'failed'} state
   * @param {number} [attempt]
   * @param {{key: MessageKey, params?: Record<string, number>}} [failure] Why it
   *   failed, when not the default "could not reconnect".
   */
  function drawConnection(state, attempt, failure) {
    ui.view.dataset.connection = state;
    ui.view.dataset.failure = state === 'failed' ? (failure?.key ?? 'reconnectFailed') : '';
    ui.connectionBanner.hidden = state === 'connected';
    ui.rejoinButton.hidden = state !== 'failed';
    if (state === 'reconnecting') {
      connectionMessage = attempt && attempt > 1 ? { key: 'reconnectingAttempt', params: { n: attempt } } : { key: 'reconnecting' };
    } else if (state === 'failed') {
      connectionMessage = failure ?? { key: 'reconnectFailed' };
    } else {
      connectionMessage = null;
    }
    drawConnectionText();
    const busy = state !== 'connected';
    ui.handButton.disabled = busy;
    ui.screenButton.disabled = busy || !permissions.screen;
  }

  function drawConnectionText() {
    const m = connectionMessage;
    ui.connectionText.textContent = m ? t(m.key, m.params) : '';
  }

  function updateRecipients() {
    const people = session?.participants ?? [];
    chat.setPeople(people.map((p) => ({ id: p.id, name: p.name })));
  }

  function drawHand() {
    ui.handButton.setAttribute('aria-pressed', String(handRaised));
  }

  async function startScreen() {
    const current = session;
    if (!current || screenTrack) return;
    const fps = current.settings.screen_share_fps;
    /** @type {MediaTrackConstraints} */
    const video = fps ? { frameRate: { max: fps } } : {};
    /** @type {MediaStream} */
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video, audio: false });
    } catch (e) {
      // The user cancelled the browser's picker: nothing to report then.
      if (e instanceof DOMException && e.name === 'NotAllowedError') return;
      showAlert('screenShareFailed', { error: e instanceof Error ? e.message : String(e) });
      return;
    }
    const track = stream.getVideoTracks()[0];
    if (!track) return;
    if (session !== current) {
      track.stop();
      return;
    }
    if ('contentHint' in track) track.contentHint = 'detail';
    if (fps) track.applyConstraints({ frameRate: { max: fps } }).catch(() => {});
    screenTrack = track;
    ui.screenButton.setAttribute('aria-pressed', 'true');
    // The browser's own "stop sharing" ends the track.
    track.addEventListener('ended', () => {
      if (screenTrack === track) stopScreen(true);
    });
    await current.setSource('screen', track);
    if (fps) await capFrameRate(current, track, fps);
    announce('screenShareStarted');
  }

  /** @param {boolean} say Whether to announce it. */
  function stopScreen(say) {
    const track = screenTrack;
    if (!track) return;
    screenTrack = null;
    ui.screenButton.setAttribute('aria-pressed', 'false');
    track.stop();
    session?.setSource('screen', null);
    if (say) announce('screenShareStopped');
  }

  /**
   * @param {ConclaveSession} ended
   * @param {LeaveReason} reason
   * @param {string | null} message A moderator's words.
   */
  function onSessionEnded(ended, reason, message) {
    if (session !== ended) return;
    session = null;
    unwatch();
    if (isConnectionLoss(reason) && ui.view.dataset.phase === 'meeting') {
      if (mediaFailures.lost(ended.mediaConnected)) giveUpOnMedia();
      else startReconnect();
      return;
    }
    endMeeting(reason, false, message);
  }

  /**
   * Back to the pre-join form, with the defaults again.
   * @param {LeaveReason} reason
   * @param {boolean} alerted Whether an alert already says what went wrong.
   * @param {string | null} [message] A moderator's words, shown with the reason.
   */
  function endMeeting(reason, alerted, message = null) {
    reconnector?.cancel();
    reconnector = null;
    awaitingMedia = false;
    mediaGaveUp = false;
    mediaFailures.reset();
    const current = session;
    session = null;
    current?.leave();
    unwatch();
    drawConnection('connected');
    roster.clear();
    chat.clear();
    files.detach();
    stopScreen(false);
    handRaised = false;
    handWanted = false;
    drawHand();
    expanded.chat = false;
    expanded.e2ee = false;
    moderation.stop();
    permissions = allPermissions(true);
    // The defaults again: camera and microphone off. Nothing carries over to the next join.
    devices.stopAll();
    setPhase('prejoin');
    drawPermissions();
    ui.nameInput.disabled = false;
    updateJoinButtons();
    if (reason === 'left') setStatus('left');
    else {
      setStatus(null);
      if (!alerted) showEnded(reason, message);
    }
    ui.joinButton.focus();
  }

  ui.lobbyForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const typed = ui.lobbyPassword.value;
    if (!typed || !session) return;
    password = typed;
    /** @type {import('./protocol.js').JoinOptions} */
    const options = { password };
    if (token) options.token = token;
    session.retryJoin(options);
  });
  ui.lobbyCancel.addEventListener('click', () => {
    cancelledWait = true;
    session?.leave();
  });
  if (token) {
    // The invitation names us: the name field is not needed (the server's name is shown).
    if (ui.nameField instanceof HTMLElement) ui.nameField.hidden = true;
    ui.tokenNote.hidden = false;
  }
  /** The signed-in account, if any: the server names us by it, so the name is shown read-only. @type {import('./account.js').Account | null} */
  let account = null;
  function drawAccount() {
    ui.accountNote.hidden = account === null;
    ui.accountNote.textContent = account ? t('accountNameNote', { name: account.name }) : '';
  }
  if (!token) {
    currentAccount().then((found) => {
      if (!found || session || joining) return;
      account = found;
      ui.nameInput.value = found.name;
      ui.nameInput.readOnly = true;
      ui.nameInput.setAttribute('aria-describedby', 'account-note');
      drawAccount();
      updateJoinButtons();
      // Nothing to type: the next step is joining.
      if (document.activeElement === ui.nameInput) ui.joinButton.focus();
    });
  }
  onLocaleChange(drawAccount);
  onLocaleChange(drawPermissions);

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
  // The server's default (`[meeting] audio_only`) applies before joining too.
  void publicSettings.then((settings) => {
    if (settings?.audio_only && !ui.audioOnly.checked) {
      ui.audioOnly.checked = true;
      devices.setAudioOnly(true);
    }
  });
  ui.devicesButton.addEventListener('click', () => {
    expanded.devices = !expanded.devices;
    drawPanels();
  });
  ui.e2eeButton.addEventListener('click', () => {
    expanded.e2ee = !expanded.e2ee;
    drawPanels();
    if (expanded.e2ee) drawE2ee();
  });
  ui.e2eeConfirm.addEventListener('click', () => {
    const sas = shownSas;
    if (sas && e2ee?.confirmSas(sas.epoch, sas.generation)) drawE2ee();
  });
  ui.e2eeReset.addEventListener('click', () =>
    moderation.confirm({ key: 'confirmE2eeReset' }, () => {
      e2ee?.resetGroup();
    }),
  );
  onLocaleChange(drawE2ee);
  ui.peopleButton.addEventListener('click', () => {
    expanded.people = !expanded.people;
    drawPanels();
  });
  ui.copyLinkButton.addEventListener('click', () =>
    copyLink(ui.roomLink, () => {
      ui.shareBox.hidden = false;
    }),
  );
  ui.chatButton.addEventListener('click', () => {
    expanded.chat = !expanded.chat;
    drawPanels();
    if (expanded.chat) ui.chatInput.focus();
  });
  ui.handButton.addEventListener('click', () => session?.raiseHand(!handRaised));
  ui.screenButton.addEventListener('click', () => {
    if (screenTrack) stopScreen(true);
    else startScreen();
  });
  ui.leaveButton.addEventListener('click', () => {
    // While reconnecting there may be no session (or only an attempt): leave at once.
    if (reconnector || mediaGaveUp || !session) endMeeting('left', false);
    else session?.leave();
  });
  ui.rejoinButton.addEventListener('click', () => {
    if (mediaGaveUp) {
      mediaGaveUp = false;
      mediaFailures.reset();
      startReconnect();
    } else {
      reconnector?.restart();
    }
  });
  ui.layoutButton.addEventListener('click', () => {
    const speaker = roster.layout !== 'speaker';
    roster.setLayout(speaker ? 'speaker' : 'grid');
    ui.layoutButton.setAttribute('aria-pressed', String(speaker));
  });
  onLocaleChange(() => drawQuality(selfQuality, true));
  window.addEventListener('online', () => reconnector?.tryNow());
  onLocaleChange(drawConnectionText);
  if (token) ui.joinButton.focus();
  else ui.nameInput.focus();
}

/**
 * Cap the frame rate the sender of `track` encodes to `fps`.
 * @param {ConclaveSession} session
 * @param {MediaStreamTrack} track
 * @param {number} fps
 */
async function capFrameRate(session, track, fps) {
  const sender = session.pc?.getSenders().find((s) => s.track === track);
  if (!sender) return;
  const params = sender.getParameters();
  if (!params.encodings || params.encodings.length === 0) return;
  for (const encoding of params.encodings) encoding.maxFramerate = fps;
  try {
    await sender.setParameters(params);
  } catch (e) {
    console.warn('conclave: could not cap the screen frame rate', e);
  }
}

/**
 * The server's public meeting settings (`GET /api/settings`), or null when unavailable.
 * @returns {Promise<import('./protocol.js').MeetingSettings | null>}
 */
async function fetchPublicSettings() {
  try {
    const res = await fetch('/api/settings', { credentials: 'same-origin' });
    if (!res.ok) return null;
    const body = /** @type {{settings?: import('./protocol.js').MeetingSettings}} */ (await res.json());
    return body.settings ?? null;
  } catch {
    return null;
  }
}
