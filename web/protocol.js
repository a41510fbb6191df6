// Conclave signalling and media negotiation, version 1.
//
// This module knows nothing about the page. It speaks the wire protocol (see
// docs/protocol.md and crates/proto) over one WebSocket and owns the one RTCPeerConnection.
// The UI listens to its events and calls `join`, `setSource` and `leave`.
//
// The server is the only SDP offerer. This client never creates an offer: it answers every
// `offer`, one after another, in the order they arrive (a promise queue). Publishing a source
// only swaps the track on the upstream slot the server assigned in its first offer, so it
// needs no renegotiation.

import { e2eeVideoCodecs, forbiddenVideoCodecs } from './e2ee/frames.js';

/** @typedef {import('./e2ee/frames.js').FrameCrypto} FrameCrypto */

/** The protocol version this client speaks. */
export const PROTOCOL_VERSION = 1;

/** Every media source a participant can publish, in the server's slot order. */
export const SOURCES = /** @type {const} */ (['microphone', 'camera', 'screen']);

/** What a room ID looks like (16 to 64 base64url characters). */
export const ROOM_ID_PATTERN = /^[A-Za-z0-9_-]{16,64}$/;

/** A source captured from a device (as opposed to the screen). @typedef {'microphone' | 'camera'} DeviceSource */
/** @typedef {DeviceSource | 'screen'} Source */

/**
 * What the server's `[meeting]` config asks of clients.
 * @typedef {object} MeetingSettings
 * @property {number} [max_video_height] Camera video at most this many pixels high.
 * @property {number} [screen_share_fps] Screen sharing at most this many frames per second.
 * @property {boolean} [audio_only] Start in audio-only mode.
 * @property {number} [last_n] Camera video only from this many recent speakers (0: all).
 * @property {'required' | 'off'} [e2ee] End-to-end encryption of media and chat.
 */

/**
 * A participant as the others see it.
 * @typedef {object} ParticipantInfo
 * @property {string} id Server-assigned ID (16 hex digits).
 * @property {string} name Display name.
 * @property {Source[]} sources Sources this participant publishes now.
 * @property {boolean} [hand_raised] Whether their hand is raised.
 * @property {Role} [role] Their role in the room.
 * @property {boolean} [signed_in] Signed in (account or token) rather than a guest.
 * @property {Source[]} [denied] Sources a moderator stopped and has not allowed again (absent: none).
 */

/** @typedef {'moderator' | 'participant' | 'guest'} Role */

/** Every permission a role can have, in the order the page shows them. */
export const PERMISSIONS = /** @type {const} */ (['unmute', 'camera', 'screen', 'chat', 'files', 'record']);

/** @typedef {typeof PERMISSIONS[number]} Permission */
/** What someone may do: each permission true or false. @typedef {Record<Permission, boolean>} Permissions */

/**
 * The room's moderation state.
 * @typedef {object} RoomState
 * @property {boolean} locked Nobody new enters but moderators.
 * @property {boolean} lobby Newcomers wait until a moderator admits them.
 * @property {boolean} password_set The room has a password.
 * @property {Permissions} participant What participants may do.
 * @property {Permissions} guest What guests may do.
 */

/**
 * Someone waiting in the lobby (shown to moderators).
 * @typedef {object} Knock
 * @property {string} participant Their ID, for `admit` and `deny`.
 * @property {string} name Their display name.
 * @property {boolean} signed_in Signed in rather than a guest.
 */

/**
 * Limits to check input against before sending (the server enforces them anyway).
 * @typedef {{max_name_chars: number, max_chat_chars: number, max_file_bytes?: number, file_bytes_per_second?: number, max_files_in_flight?: number}} ClientLimits
 */

/**
 * Collaboration messages (files), which the session passes through as they are: to the
 * server with `sendCollab`, from it as `collab` events (docs/protocol.md, "Files").
 * @typedef {{type: 'file_offer', file: string, size: number, text?: string, ciphertext?: string, to?: string}
 *   | {type: 'file_chunk', file: string, seq: number, data: string, last: boolean}
 *   | {type: 'file_cancel', file: string}} CollabClientMessage
 * @typedef {{type: 'file_offer', from: string, file: string, size: number, text?: string, ciphertext?: string, private: boolean}
 *   | {type: 'file_chunk', from: string, file: string, seq: number, data: string, last: boolean}
 *   | {type: 'file_cancel', file: string, by: string, reason: 'cancelled' | 'left' | 'refused'}} CollabServerMessage
 */

/**
 * The room's end-to-end encryption policy and MLS group state, from `joined`.
 * @typedef {object} E2eeJoined
 * @property {'required' | 'off'} mode
 * @property {number | null} epoch The group's epoch (null: no group yet).
 * @property {string | null} group_info The latest GroupInfo (base64), for an external commit.
 * @property {number} [generation] How many times a moderator reset the group (0: never).
 */

/**
 * The MLS delivery service's messages (docs/protocol.md, "End-to-end encryption").
 * @typedef {{type: 'mls_accepted', epoch: number, generation: number}} MlsAcceptedMessage
 * @typedef {{type: 'mls_rejected', epoch: number | null, group_info: string | null, generation: number}} MlsRejectedMessage
 * @typedef {{type: 'mls_commit', epoch: number, commit: string, from: string}} MlsCommitRelayMessage
 * @typedef {{type: 'mls_reset', by: string, generation: number}} MlsResetMessage
 * @typedef {MlsAcceptedMessage | MlsRejectedMessage | MlsCommitRelayMessage | MlsResetMessage} MlsServerMessage
 * @typedef {{type: 'mls_group', group_info: string, generation: number} | {type: 'mls_commit', epoch: number, commit: string, group_info: string, generation: number}} MlsClientMessage
 */

/**
 * What the page may pass to `join` besides room and name.
 * @typedef {object} JoinOptions
 * @property {string} [password] The room password.
 * @property {string} [token] An invitation token (JWT) from the link.
 */

/**
 * Moderator actions, sent as they are (see docs/protocol.md); the server checks every one.
 * @typedef {{type: 'mute', participant: string, source: Source}
 *   | {type: 'mute_all', source: Source}
 *   | {type: 'allow', participant: string, source: Source}
 *   | {type: 'remove', participant: string, message?: string}
 *   | {type: 'ban', participant: string, message?: string}
 *   | {type: 'lock', locked: boolean}
 *   | {type: 'end_meeting'}
 *   | {type: 'set_role', participant: string, role: Role}
 *   | {type: 'set_password', password: string | null}
 *   | {type: 'set_lobby', enabled: boolean}
 *   | {type: 'set_permissions', role: 'participant' | 'guest', permissions: Permissions}
 *   | {type: 'admit', participant: string}
 *   | {type: 'deny', participant: string, message?: string}
 *   | {type: 'mls_reset'}} ModeratorMessage
 */

/**
 * What one downstream m-line carries.
 * @typedef {object} TrackInfo
 * @property {string} participant The publisher's ID.
 * @property {Source} source Which of their sources.
 */

/**
 * Why a session ended. `removed`, `banned`, `ended` and `denied` are a moderator's decision.
 * @typedef {'left' | 'disconnected' | 'timeout' | 'error' | 'removed' | 'banned' | 'ended' | 'denied'} LeaveReason
 */

/**
 * A protocol error as sent by the server, or raised by this client. Client-side codes start
 * with `client_` so they never collide with the server's.
 * @typedef {object} ProtocolError
 * @property {string} code Stable machine-readable code.
 * @property {string} message One human sentence.
 * @property {LeaveReason} [reason] Set when the server ended the session with `bye` before
 *   it was joined (e.g. `denied` from the lobby); `message` is then the moderator's words.
 */

/**
 * Messages from the server.
 * @typedef {{type: 'joined', v: number, room: string, id: string, name?: string, signed_in?: boolean, participants: ParticipantInfo[], settings?: MeetingSettings, role?: Role, permissions?: Permissions, room_state?: RoomState, lobby?: Knock[], limits?: ClientLimits, e2ee?: E2eeJoined, ice?: {servers: RTCIceServer[], transport_policy: 'all' | 'relay'}}} JoinedMessage
 * @typedef {{type: 'lobby', message: string}} LobbyMessage
 * @typedef {{type: 'knock', knock: Knock}} KnockMessage
 * @typedef {{type: 'knock_withdrawn', participant: string}} KnockWithdrawnMessage
 * @typedef {{type: 'room_updated', room_state: RoomState}} RoomUpdatedMessage
 * @typedef {{type: 'self_updated', role: Role, permissions: Permissions}} SelfUpdatedMessage
 * @typedef {{type: 'participant_joined', participant: ParticipantInfo}} ParticipantJoinedMessage
 * @typedef {{type: 'participant_updated', participant: ParticipantInfo}} ParticipantUpdatedMessage
 * @typedef {{type: 'participant_left', id: string, reason: LeaveReason}} ParticipantLeftMessage
 * @typedef {{type: 'offer', sdp: string, slots: Partial<Record<Source, string>>, tracks: Record<string, TrackInfo>}} OfferMessage
 * @typedef {{type: 'error', code: string, message: string}} ErrorMessage
 * @typedef {{type: 'bye', reason: LeaveReason, message?: string}} ByeMessage
 * @typedef {{type: 'chat', from: string, text?: string, ciphertext?: string, private: boolean}} ChatRelayMessage
 * @typedef {CollabServerMessage | MlsServerMessage | JoinedMessage | ParticipantJoinedMessage | ParticipantUpdatedMessage | ParticipantLeftMessage | OfferMessage | ErrorMessage | ByeMessage | ChatRelayMessage | LobbyMessage | KnockMessage | KnockWithdrawnMessage | RoomUpdatedMessage | SelfUpdatedMessage} ServerMessage
 */

/**
 * Messages to the server.
 * @typedef {{type: 'join', v: number, room: string, name: string, password?: string, token?: string}} JoinMessage
 * @typedef {{type: 'answer', sdp: string}} AnswerMessage
 * @typedef {{type: 'publish', source: Source}} PublishMessage
 * @typedef {{type: 'unpublish', source: Source}} UnpublishMessage
 * @typedef {{type: 'leave'}} LeaveMessage
 * @typedef {{type: 'chat', text?: string, ciphertext?: string, to?: string}} ChatMessage
 * @typedef {{type: 'raise_hand', raised: boolean}} RaiseHandMessage
 * @typedef {{type: 'receive_video', enabled: boolean}} ReceiveVideoMessage
 * @typedef {JoinMessage | AnswerMessage | PublishMessage | UnpublishMessage | LeaveMessage | ChatMessage | RaiseHandMessage | ReceiveVideoMessage | ModeratorMessage | MlsClientMessage | CollabClientMessage} ClientMessage
 */

/**
 * A remote track the UI should show or play.
 * @typedef {object} RemoteTrack
 * @property {string} participant The publisher's ID.
 * @property {Source} source Which of their sources.
 * @property {string} mid The downstream m-line carrying it.
 * @property {MediaStreamTrack} track The received track.
 */

/**
 * Events a session dispatches, as `CustomEvent`s whose `detail` is given here. Subscribe with
 * `session.on(name, handler)`.
 * @typedef {object} SessionEventMap
 * @property {{id: string, room: string, name: string | null, signedIn: boolean, participants: ParticipantInfo[], settings: MeetingSettings, role: Role, permissions: Permissions, roomState: RoomState | null, lobby: Knock[], e2ee: E2eeJoined}} joined
 *   We are in; `pc` exists from now on. `name` is how the others see us (from a token or
 *   account it differs from the one we sent).
 * @property {{}} mediaconnected The media path (ICE and DTLS) connected, once per session:
 *   media can flow. Until then `mediaConnected` is false.
 * @property {{message: string}} lobby We wait in the lobby (before `joined`); the join is
 *   still under way.
 * @property {Knock} knock Moderators: someone waits in the lobby.
 * @property {{participant: string}} knockwithdrawn Moderators: someone no longer waits.
 * @property {{roomState: RoomState}} roomupdated The room's moderation state changed.
 * @property {{role: Role, permissions: Permissions}} permissions Our role or permissions
 *   changed (e.g. a moderator muted us).
 * @property {{participant: ParticipantInfo}} participantjoined Someone entered.
 * @property {{participant: ParticipantInfo}} participantupdated Someone's sources or hand changed.
 * @property {{participant: ParticipantInfo}} selfupdated How the others see us changed.
 * @property {{id: string, reason: LeaveReason}} participantleft Someone left.
 * @property {{from: string, text: string | null, ciphertext: string | null, private: boolean}} chat
 *   A chat message from someone else: `text` in a room without E2EE, else `ciphertext` (an
 *   MLS application message the page decrypts).
 * @property {MlsServerMessage} mls A message of the MLS delivery service, in the server's order.
 * @property {CollabServerMessage} collab A file offer, chunk or cancel, as the server sent it.
 * @property {RemoteTrack} trackadded Show or play this track in the participant's tile.
 * @property {RemoteTrack} trackremoved Stop showing or playing it.
 * @property {ProtocolError} error The server refused something, or negotiation failed.
 * @property {{reason: LeaveReason, message: string | null}} closed The session is over; no more
 *   events follow. With `disconnected` or `timeout` the connection was lost (see
 *   `isConnectionLoss`); `message` is a moderator's words (`removed`, `banned`, …).
 */

/** @typedef {'idle' | 'connecting' | 'joined' | 'closed'} SessionState */

/**
 * How long after a live video track is put on a sender its frames must have reached the E2EE
 * worker. Chromium can send a sender's video around a late RTCRtpScriptTransform, in
 * plaintext and without an error: this check catches that.
 */
export const E2EE_SELF_CHECK_MS = 2000;

/** How long `leave` waits for the server to close the socket before closing it itself. */
const LEAVE_CLOSE_GRACE_MS = 1000;

/**
 * How long ICE may stay `disconnected` before the session counts as lost. Browsers report
 * `disconnected` after a few seconds without consent responses and often recover from it;
 * `failed` (which can take half a minute) ends the session at once.
 */
export const ICE_DISCONNECTED_GRACE_MS = 5000;

/**
 * How long after `joined` the media path (ICE and DTLS) may take to connect before the
 * session counts as lost. A browser whose candidates never pair with ours (e.g. Firefox
 * without loopback candidates against a 127.0.0.1 server) may sit in `checking` for long.
 */
export const ICE_CONNECT_TIMEOUT_MS = 20_000;

/**
 * Whether a session that ended for `reason` ended because the connection was lost rather
 * than by a decision: the socket closed without a `bye`, ICE failed, or the server heard
 * nothing from us for too long (`timeout`, a network symptom). Such a session may be joined
 * again automatically. After our own `leave` or a `bye` for any other reason it must not be.
 * @param {LeaveReason} reason
 * @returns {boolean}
 */
export function isConnectionLoss(reason) {
  return reason === 'disconnected' || reason === 'timeout';
}

/**
 * Parse one text frame from the server. Returns null for anything that is not an object with
 * a string `type` (the server never sends such frames; a client must not crash on them).
 * @param {string} text
 * @returns {ServerMessage | null}
 */
export function parseServerMessage(text) {
  /** @type {unknown} */
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  if (typeof (/** @type {{type?: unknown}} */ (value).type) !== 'string') return null;
  return /** @type {ServerMessage} */ (value);
}

/**
 * The WebSocket URL of the server that served `location`.
 * @param {Location | URL} location
 * @returns {string}
 */
export function signallingUrl(location) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

/**
 * One participant's connection to one room: the WebSocket, the RTCPeerConnection and the
 * negotiation between them.
 */
export class ConclaveSession extends EventTarget {
  /** @type {string} */
  #url;
  /** @type {WebSocket | null} */
  #ws = null;
  /** @type {SessionState} */
  #state = 'idle';
  /** @type {RTCPeerConnection | null} */
  #pc = null;
  /** @type {string | null} */
  #id = null;
  /** @type {string | null} */
  #room = null;
  /** @type {MeetingSettings} */
  #settings = {};
  /** @type {Partial<ClientLimits>} */
  #limits = {};
  /** @type {Role} */
  #role = 'participant';
  /** @type {Permissions} */
  #permissions = allPermissions(true);
  /** @type {RoomState | null} */
  #roomState = null;
  /** @type {JoinMessage | null} The join sent, for `retryJoin`. */
  #joinMessage = null;
  /** @type {Map<string, Knock>} Who waits in the lobby (moderators only). */
  #knocks = new Map();
  /** @type {Map<string, ParticipantInfo>} Everyone else in the room, by ID. */
  #participants = new Map();
  /** @type {Map<Source, MediaStreamTrack>} Local tracks the user wants to send. */
  #localTracks = new Map();
  /** @type {Map<Source, string>} Upstream slot mids from the latest offer. */
  #slots = new Map();
  /** @type {Set<Source>} Sources the server was told we publish. */
  #announced = new Set();
  /** @type {Record<string, TrackInfo>} Downstream mids from the latest offer. */
  #trackMap = {};
  /** @type {Map<string, RemoteTrack>} Remote tracks handed to the UI, by `participant/source`. */
  #remote = new Map();
  /** Serializes offers and source changes: each runs after the previous one settled. */
  #queue = Promise.resolve();
  /** @type {ReturnType<typeof setTimeout> | undefined} Running while ICE is `disconnected`. */
  #iceTimer;
  /** @type {ReturnType<typeof setTimeout> | undefined} Running until the media path connects. */
  #connectTimer;
  /** Whether the media path (ICE and DTLS) has been connected in this session. */
  #mediaConnected = false;
  /** @type {FrameCrypto | null} Media frame encryption, if given before joining. */
  #frameCrypto = null;
  /** Senders whose encryption self-check is scheduled or failed. @type {WeakSet<RTCRtpSender>} */
  #selfChecked = new WeakSet();

  /**
   * @param {string} url WebSocket URL, e.g. from `signallingUrl(location)`.
   */
  constructor(url) {
    super();
    this.#url = url;
  }

  /** The connection state. */
  get state() {
    return this.#state;
  }

  /** The peer connection; exists once `joined` fired (closed when the session ends). */
  get pc() {
    return this.#pc;
  }

  /**
   * Whether the media path (ICE and DTLS) connected in this session: media can flow. A
   * session that ended before it did never had media (see `mediaconnected`).
   */
  get mediaConnected() {
    return this.#mediaConnected;
  }

  /** Our participant ID once joined. */
  get id() {
    return this.#id;
  }

  /** The room joined. */
  get room() {
    return this.#room;
  }

  /** The meeting settings from `joined`. @returns {MeetingSettings} */
  get settings() {
    return { ...this.#settings };
  }

  /** Our role. @returns {Role} */
  get role() {
    return this.#role;
  }

  /** What we may do now. @returns {Permissions} */
  get permissions() {
    return { ...this.#permissions };
  }

  /** The room's moderation state, once joined. @returns {RoomState | null} */
  get roomState() {
    return this.#roomState;
  }

  /** Who waits in the lobby (moderators only). @returns {Knock[]} */
  get knocks() {
    return [...this.#knocks.values()];
  }

  /** Everyone else in the room. @returns {ParticipantInfo[]} */
  get participants() {
    return [...this.#participants.values()];
  }

  /** What each downstream mid carries, as of the latest offer. @returns {Record<string, TrackInfo>} */
  get trackMap() {
    return { ...this.#trackMap };
  }

  /** Upstream slot mids, as of the latest offer. @returns {Partial<Record<Source, string>>} */
  get slots() {
    return Object.fromEntries(this.#slots);
  }

  /**
   * Call `handler` with the detail of every `name` event.
   * @template {keyof SessionEventMap} K
   * @param {K} name
   * @param {(detail: SessionEventMap[K]) => void} handler
   */
  on(name, handler) {
    this.addEventListener(name, (event) => {
      handler(/** @type {CustomEvent<SessionEventMap[K]>} */ (event).detail);
    });
  }

  /**
   * Encrypt every media frame we send and decrypt every frame we receive with `fc` (E2EE).
   * Only before `join`: the peer connection is made with it. Without it nothing changes.
   * @param {FrameCrypto} fc
   */
  setFrameCrypto(fc) {
    if (this.#state !== 'idle') throw new Error(`setFrameCrypto must come before join (state ${this.#state})`);
    this.#frameCrypto = fc;
  }

  /** The frame encryption given with `setFrameCrypto`, if any. */
  get frameCrypto() {
    return this.#frameCrypto;
  }

  /**
   * Connect and join `room` as `name`. Resolves with the `joined` message; rejects with a
   * ProtocolError if the server refuses the join or the connection fails first. While the
   * server keeps us in its lobby, `lobby` fires and the promise stays pending until a
   * moderator admits (resolves) or denies (rejects with `reason` `denied`), or `leave`.
   * @param {string} room
   * @param {string} name
   * @param {JoinOptions} [options]
   * @returns {Promise<JoinedMessage>}
   */
  join(room, name, options = {}) {
    if (this.#state !== 'idle') {
      return Promise.reject(clientError('client_state', `cannot join in state ${this.#state}`));
    }
    this.#state = 'connecting';
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.#url);
      this.#ws = ws;
      let settled = false;
      /** @param {ProtocolError} err */
      const fail = (err) => {
        if (settled) return;
        settled = true;
        this.#teardown();
        reject(err);
      };
      ws.addEventListener('open', () => {
        /** @type {JoinMessage} */
        const msg = { type: 'join', v: PROTOCOL_VERSION, room, name };
        if (options.password) msg.password = options.password;
        if (options.token) msg.token = options.token;
        this.#joinMessage = msg;
        this.#send(msg);
      });
      ws.addEventListener('message', (event) => {
        if (typeof event.data !== 'string') return;
        const msg = parseServerMessage(event.data);
        if (!msg) {
          console.warn('conclave: ignoring a malformed server frame');
          return;
        }
        if (!settled) {
          if (msg.type === 'joined') {
            settled = true;
            this.#onJoined(msg);
            resolve(msg);
            return;
          }
          if (msg.type === 'error') {
            fail({ code: msg.code, message: msg.message });
            ws.close(1000);
            return;
          }
          if (msg.type === 'bye') {
            fail({ code: `bye_${msg.reason}`, message: msg.message ?? '', reason: msg.reason });
            return;
          }
          if (msg.type === 'lobby') {
            this.#emit('lobby', { message: typeof msg.message === 'string' ? msg.message : '' });
            return;
          }
        }
        this.#onMessage(msg);
      });
      ws.addEventListener('close', (event) => {
        if (!settled) {
          fail(
            clientError(
              'client_disconnected',
              `the connection closed before joining (code ${event.code})`,
            ),
          );
          return;
        }
        this.#finish('disconnected');
      });
      ws.addEventListener('error', () => {
        // A `close` event always follows; it reports the failure.
      });
    });
  }

  /**
   * While waiting in the lobby: ask again with other options (e.g. the room password). The
   * answer settles the pending `join` as before.
   * @param {JoinOptions} options
   * @returns {boolean} Whether it was sent.
   */
  retryJoin(options) {
    if (this.#state !== 'connecting' || !this.#joinMessage) return false;
    /** @type {JoinMessage} */
    const msg = { ...this.#joinMessage };
    delete msg.password;
    if (options.password) msg.password = options.password;
    if (options.token) msg.token = options.token;
    return this.#send(msg);
  }

  /**
   * Send `track` on the upstream slot of `source` (null stops sending) and tell the server.
   * The caller owns the track and stops it. Changes are applied in order with offers.
   * @param {Source} source
   * @param {MediaStreamTrack | null} track
   * @returns {Promise<void>}
   */
  setSource(source, track) {
    if (track) this.#localTracks.set(source, track);
    else this.#localTracks.delete(source);
    return this.#enqueue(async () => {
      if (this.#state !== 'joined') return;
      const transceiver = this.#slotTransceiver(source);
      if (!transceiver) return; // No offer yet: the first offer attaches the track.
      const wanted = this.#localTracks.get(source) ?? null;
      if (transceiver.sender.track !== wanted) await transceiver.sender.replaceTrack(wanted);
      this.#scheduleSelfCheck(transceiver.sender);
      this.#syncAnnouncements();
    });
  }

  /**
   * Send a chat message to everyone else, or to participant `to` only. The server does not
   * echo it: the caller shows its own message.
   * @param {string} text
   * @param {string} [to]
   * @returns {boolean} Whether it was sent.
   */
  sendChat(text, to) {
    if (this.#state !== 'joined') return false;
    /** @type {ChatMessage} */
    const msg = { type: 'chat', text };
    if (to) msg.to = to;
    return this.#send(msg);
  }

  /**
   * Send an end-to-end encrypted chat message (an MLS application message, base64).
   * @param {string} ciphertext
   * @param {string} [to]
   * @returns {boolean} Whether it was sent.
   */
  sendEncryptedChat(ciphertext, to) {
    if (this.#state !== 'joined') return false;
    /** @type {ChatMessage} */
    const msg = { type: 'chat', ciphertext };
    if (to) msg.to = to;
    return this.#send(msg);
  }

  /**
   * Send a collaboration message (a file offer, chunk or cancel) as it is.
   * @param {CollabClientMessage} msg
   * @returns {boolean} Whether it was sent.
   */
  sendCollab(msg) {
    if (this.#state !== 'joined') return false;
    return this.#send(msg);
  }

  /** Bytes queued on the socket and not yet sent (senders of large data wait for it). */
  get bufferedAmount() {
    return this.#ws?.bufferedAmount ?? 0;
  }

  /** The limits from `joined` (empty before). @returns {Partial<ClientLimits>} */
  get limits() {
    return this.#limits;
  }

  /**
   * Send a message to the MLS delivery service (`mls_group`, `mls_commit`).
   * @param {MlsClientMessage} msg
   * @returns {boolean} Whether it was sent.
   */
  sendMls(msg) {
    if (this.#state !== 'joined') return false;
    return this.#send(msg);
  }

  /**
   * Raise or lower the hand. Everyone, we included, gets `participant_updated`.
   * @param {boolean} raised
   * @returns {boolean} Whether it was sent.
   */
  raiseHand(raised) {
    if (this.#state !== 'joined') return false;
    return this.#send({ type: 'raise_hand', raised });
  }

  /**
   * Stop (false) or resume (true) receiving video, camera and screen (audio-only mode).
   * @param {boolean} enabled
   * @returns {boolean} Whether it was sent.
   */
  setReceiveVideo(enabled) {
    if (this.#state !== 'joined') return false;
    return this.#send({ type: 'receive_video', enabled });
  }

  /**
   * Send a moderator action. The server refuses it with `forbidden` (an `error` event) if we
   * are not a moderator (any more).
   * @param {ModeratorMessage} msg
   * @returns {boolean} Whether it was sent.
   */
  moderate(msg) {
    if (this.#state !== 'joined') return false;
    return this.#send(msg);
  }

  /** Leave the room and close everything. Idempotent. */
  leave() {
    if (this.#state === 'closed' || this.#state === 'idle') return;
    if (this.#state === 'connecting') {
      // Waiting (e.g. in the lobby): say `leave` so our knock goes, then close; the pending
      // join rejects with `client_disconnected` when the socket closes.
      const ws = this.#ws;
      if (ws && ws.readyState === WebSocket.OPEN) this.#send({ type: 'leave' });
      ws?.close(1000);
      return;
    }
    const ws = this.#ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      this.#send({ type: 'leave' });
      // The server closes the socket after `leave`; close it ourselves if it does not.
      setTimeout(() => ws.close(1000), LEAVE_CLOSE_GRACE_MS);
    } else {
      ws?.close(1000);
    }
    this.#finish('left');
  }

  /**
   * @param {JoinedMessage} msg
   */
  #onJoined(msg) {
    this.#state = 'joined';
    this.#id = msg.id;
    this.#room = msg.room;
    this.#settings = msg.settings ?? {};
    this.#limits = msg.limits ?? {};
    this.#role = msg.role ?? 'participant';
    this.#permissions = msg.permissions ?? allPermissions(true);
    this.#roomState = msg.room_state ?? null;
    this.#knocks = new Map((msg.lobby ?? []).map((k) => [k.participant, k]));
    for (const p of msg.participants) this.#participants.set(p.id, p);
    // Only this server's own STUN/TURN, with the short-lived credential from `joined`.
    const pc = new RTCPeerConnection({
      iceServers: msg.ice?.servers ?? [],
      iceTransportPolicy: msg.ice?.transport_policy ?? 'all',
      bundlePolicy: 'max-bundle',
      ...(this.#frameCrypto?.rtcConfig() ?? {}),
    });
    this.#pc = pc;
    pc.addEventListener('iceconnectionstatechange', () => this.#onIceState(pc));
    pc.addEventListener('connectionstatechange', () => this.#onConnectionState(pc));
    this.#connectTimer = setTimeout(() => {
      this.#connectTimer = undefined;
      if (pc === this.#pc && !this.#mediaConnected) this.#lose(`media did not connect within ${ICE_CONNECT_TIMEOUT_MS} ms`);
    }, ICE_CONNECT_TIMEOUT_MS);
    this.#emit('joined', {
      id: msg.id,
      room: msg.room,
      name: typeof msg.name === 'string' ? msg.name : null,
      signedIn: msg.signed_in === true,
      participants: msg.participants,
      settings: this.#settings,
      role: this.#role,
      permissions: this.permissions,
      roomState: this.#roomState,
      lobby: this.knocks,
      e2ee: msg.e2ee ?? { mode: 'off', epoch: null, group_info: null },
    });
  }

  /**
   * Watch the media path: ICE `failed`, or `disconnected` for longer than
   * ICE_DISCONNECTED_GRACE_MS, ends the session as lost even while the socket is open.
   * @param {RTCPeerConnection} pc
   */
  #onIceState(pc) {
    if (pc !== this.#pc || this.#state !== 'joined') return;
    const state = pc.iceConnectionState;
    if (state === 'failed') {
      this.#lose('ICE failed');
    } else if (state === 'disconnected') {
      if (this.#iceTimer === undefined) {
        this.#iceTimer = setTimeout(() => {
          this.#iceTimer = undefined;
          if (pc === this.#pc && pc.iceConnectionState === 'disconnected') {
            this.#lose(`ICE disconnected for ${ICE_DISCONNECTED_GRACE_MS} ms`);
          }
        }, ICE_DISCONNECTED_GRACE_MS);
      }
    } else {
      clearTimeout(this.#iceTimer);
      this.#iceTimer = undefined;
    }
  }

  /**
   * The first time ICE and DTLS are both up, say so: media can flow from now on.
   * @param {RTCPeerConnection} pc
   */
  #onConnectionState(pc) {
    if (pc !== this.#pc || this.#state !== 'joined' || this.#mediaConnected) return;
    if (pc.connectionState !== 'connected') return;
    this.#mediaConnected = true;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#emit('mediaconnected', {});
  }

  /**
   * The media path is gone while the socket may still be open: say `leave` (so the server
   * releases us at once instead of after its timeout), close, and end as `disconnected`.
   * @param {string} why
   */
  #lose(why) {
    console.warn(`conclave: connection lost (${why})`);
    const ws = this.#ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      this.#send({ type: 'leave' });
      setTimeout(() => ws.close(1000), LEAVE_CLOSE_GRACE_MS);
    }
    this.#finish('disconnected');
  }

  /**
   * @param {ServerMessage} msg
   */
  #onMessage(msg) {
    if (this.#state !== 'joined') return;
    switch (msg.type) {
      case 'participant_joined':
        this.#participants.set(msg.participant.id, msg.participant);
        this.#emit('participantjoined', { participant: msg.participant });
        break;
      case 'participant_updated':
        if (msg.participant.id === this.#id) {
          this.#emit('selfupdated', { participant: msg.participant });
          break;
        }
        this.#participants.set(msg.participant.id, msg.participant);
        this.#emit('participantupdated', { participant: msg.participant });
        break;
      case 'participant_left':
        this.#participants.delete(msg.id);
        this.#emit('participantleft', { id: msg.id, reason: msg.reason });
        break;
      case 'offer':
        this.#enqueue(() => this.#answer(msg)).catch((e) => {
          console.error('conclave: negotiation failed', e);
          this.#emit('error', clientError('client_negotiation', describe(e)));
        });
        break;
      case 'chat': {
        const text = typeof msg.text === 'string' ? msg.text : null;
        const ciphertext = typeof msg.ciphertext === 'string' ? msg.ciphertext : null;
        if (typeof msg.from !== 'string' || (text === null) === (ciphertext === null)) break;
        this.#emit('chat', { from: msg.from, text, ciphertext, private: msg.private === true });
        break;
      }
      case 'file_offer':
      case 'file_chunk':
      case 'file_cancel':
        this.#emit('collab', msg);
        break;
      case 'mls_accepted':
      case 'mls_rejected':
      case 'mls_commit':
      case 'mls_reset':
        this.#emit('mls', msg);
        break;
      case 'error':
        this.#emit('error', { code: msg.code, message: msg.message });
        break;
      case 'bye':
        this.#finish(msg.reason, msg.message ?? null);
        break;
      case 'knock':
        this.#knocks.set(msg.knock.participant, msg.knock);
        this.#emit('knock', msg.knock);
        break;
      case 'knock_withdrawn':
        this.#knocks.delete(msg.participant);
        this.#emit('knockwithdrawn', { participant: msg.participant });
        break;
      case 'room_updated':
        this.#roomState = msg.room_state;
        this.#emit('roomupdated', { roomState: msg.room_state });
        break;
      case 'self_updated': {
        this.#role = msg.role;
        this.#permissions = msg.permissions;
        if (msg.role !== 'moderator') this.#knocks.clear();
        // Sources we may no longer send stop at once (the server drops them anyway).
        for (const [source, permission] of /** @type {const} */ ([['microphone', 'unmute'], ['camera', 'camera'], ['screen', 'screen']])) {
          if (!msg.permissions[permission] && this.#localTracks.has(source)) this.setSource(source, null);
        }
        this.#emit('permissions', { role: msg.role, permissions: this.permissions });
        break;
      }
      case 'lobby':
        break;
      case 'joined':
        console.warn('conclave: ignoring a second joined message');
        break;
      default:
        console.warn('conclave: ignoring an unknown message type', /** @type {{type: string}} */ (msg).type);
    }
  }

  /**
   * Answer one offer: apply it, attach local tracks to the upstream slots, send the answer,
   * then hand new or vanished remote tracks to the UI.
   * @param {OfferMessage} msg
   */
  async #answer(msg) {
    const pc = this.#pc;
    if (!pc || this.#state !== 'joined') return;
    await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
    // In the same task as the transceivers appeared: no await before this (see
    // E2EE_SELF_CHECK_MS for what a late script transform does).
    if (this.#frameCrypto) this.#protectTransceivers(pc, this.#frameCrypto, msg.tracks ?? {});
    this.#slots = new Map();
    for (const source of SOURCES) {
      const mid = msg.slots[source];
      if (typeof mid === 'string') this.#slots.set(source, mid);
    }
    for (const source of this.#slots.keys()) {
      const transceiver = this.#slotTransceiver(source);
      if (!transceiver || transceiver.currentDirection === 'stopped') {
        console.warn(`conclave: the offer names slot ${source} but has no usable m-line`);
        continue;
      }
      transceiver.direction = 'sendonly';
      const wanted = this.#localTracks.get(source) ?? null;
      if (transceiver.sender.track !== wanted) await transceiver.sender.replaceTrack(wanted);
    }
    await pc.setLocalDescription();
    const answer = pc.localDescription;
    if (!answer || this.#state !== 'joined') return;
    if (this.#frameCrypto) {
      const bad = forbiddenVideoCodecs(answer.sdp);
      if (bad.length > 0) throw new Error(`E2EE: the answer offers video codecs ${bad.join(', ')} (VP8 only)`);
    }
    this.#send({ type: 'answer', sdp: answer.sdp });
    this.#trackMap = msg.tracks ?? {};
    this.#reconcileRemoteTracks();
    this.#syncAnnouncements();
    for (const source of this.#slots.keys()) {
      const transceiver = this.#slotTransceiver(source);
      if (transceiver) this.#scheduleSelfCheck(transceiver.sender);
    }
  }

  /**
   * Attach the frame transforms to every transceiver that has none yet, and allow only VP8
   * (with rtx/red/ulpfec) for video. Tell every receiver who publishes what it receives, from
   * this offer's `tracks` (null for a mid it does not list: an upstream slot, or a stopped
   * track): the worker decodes a frame only if its KID's leaf belongs to that participant in
   * the MLS group, so a server that labels one member's track as another's gets nothing
   * shown. Synchronous: it must run in the task in which setRemoteDescription created the
   * transceivers, so that no frame reaches a receiver before its publisher is set.
   * @param {RTCPeerConnection} pc
   * @param {FrameCrypto} fc
   * @param {Record<string, TrackInfo>} tracks
   */
  #protectTransceivers(pc, fc, tracks) {
    /** @type {RTCRtpCodec[] | null} */
    let videoCodecs = null;
    for (const t of pc.getTransceivers()) {
      if (t.currentDirection === 'stopped') continue;
      const kind = t.receiver.track.kind;
      if (kind !== 'audio' && kind !== 'video') continue;
      fc.attachSender(t.sender, kind);
      fc.attachReceiver(t.receiver, kind);
      const info = t.mid !== null && Object.hasOwn(tracks, t.mid) ? tracks[t.mid] : undefined;
      fc.setPublisher(t.receiver, typeof info?.participant === 'string' && info.participant !== '' ? info.participant : null);
      if (kind === 'video') {
        videoCodecs ??= e2eeVideoCodecs();
        t.setCodecPreferences(videoCodecs);
      }
    }
  }

  /**
   * E2EE self-check: E2EE_SELF_CHECK_MS after a sender got a live video track, its frames
   * must have reached the worker. If the sender encoded frames the worker never saw, they
   * left unencrypted: stop the sender and emit `error` with code `e2ee_not_encrypting`.
   * (Frames the worker dropped for lack of a key count as seen: nothing leaked.)
   * @param {RTCRtpSender} sender
   */
  #scheduleSelfCheck(sender) {
    const fc = this.#frameCrypto;
    const track = sender.track;
    if (!fc || !track || track.kind !== 'video' || track.readyState !== 'live') return;
    if (this.#selfChecked.has(sender)) return;
    this.#selfChecked.add(sender);
    const pc = this.#pc;
    let tries = 0;
    const check = async () => {
      if (this.#state !== 'joined' || pc !== this.#pc) return;
      const seen = await fc.framesSeen(sender).catch(() => null);
      let encoded = 0;
      const report = await sender.getStats().catch(() => null);
      report?.forEach((s) => {
        if (s.type === 'outbound-rtp') encoded += s.framesEncoded ?? 0;
      });
      if (seen === null || (seen === 0 && encoded > 0)) {
        // Stop for good: forget the source, so that no later offer puts the track back.
        for (const source of SOURCES) {
          if (this.#slotTransceiver(source)?.sender === sender) this.#localTracks.delete(source);
        }
        await sender.replaceTrack(null).catch(() => {});
        this.#syncAnnouncements();
        this.#selfChecked.delete(sender);
        this.#emit('error', clientError('e2ee_not_encrypting', `video was encoded (${encoded} frames) but not encrypted; sending stopped`));
        return;
      }
      if (seen === 0 && ++tries < 10) {
        setTimeout(check, E2EE_SELF_CHECK_MS); // nothing encoded yet: look again
        return;
      }
      this.#selfChecked.delete(sender); // passed: a later track gets its own check
    };
    setTimeout(check, E2EE_SELF_CHECK_MS);
  }

  /**
   * Compare the downstream tracks of the latest offer with those handed to the UI, and emit
   * `trackremoved` / `trackadded` for the differences. A mid that is no longer listed, or
   * whose transceiver was stopped, loses its tile media.
   */
  #reconcileRemoteTracks() {
    const pc = this.#pc;
    if (!pc) return;
    const transceivers = pc.getTransceivers();
    /** @type {Map<string, RemoteTrack>} */
    const live = new Map();
    for (const [mid, info] of Object.entries(this.#trackMap)) {
      const transceiver = transceivers.find((t) => t.mid === mid);
      if (!transceiver || transceiver.currentDirection === 'stopped') continue;
      if (transceiver.currentDirection === 'inactive' || transceiver.currentDirection === 'sendonly') continue;
      live.set(`${info.participant}/${info.source}`, {
        participant: info.participant,
        source: info.source,
        mid,
        track: transceiver.receiver.track,
      });
    }
    for (const [key, old] of this.#remote) {
      const now = live.get(key);
      if (!now || now.track !== old.track || now.mid !== old.mid) this.#emit('trackremoved', old);
    }
    for (const [key, now] of live) {
      const old = this.#remote.get(key);
      if (!old || now.track !== old.track || now.mid !== old.mid) this.#emit('trackadded', now);
    }
    this.#remote = live;
  }

  /** Tell the server about every source whose sending state changed and has a slot. */
  #syncAnnouncements() {
    for (const source of SOURCES) {
      if (!this.#slotTransceiver(source)) continue;
      const sending = this.#localTracks.has(source);
      if (sending && !this.#announced.has(source)) {
        this.#send({ type: 'publish', source });
        this.#announced.add(source);
      } else if (!sending && this.#announced.has(source)) {
        this.#send({ type: 'unpublish', source });
        this.#announced.delete(source);
      }
    }
  }

  /**
   * The transceiver of the upstream slot for `source`, if the server assigned one.
   * @param {Source} source
   * @returns {RTCRtpTransceiver | undefined}
   */
  #slotTransceiver(source) {
    const mid = this.#slots.get(source);
    if (mid === undefined || !this.#pc) return undefined;
    return this.#pc.getTransceivers().find((t) => t.mid === mid);
  }

  /**
   * Run `task` after every earlier task settled.
   * @template T
   * @param {() => Promise<T>} task
   * @returns {Promise<T>}
   */
  #enqueue(task) {
    const run = this.#queue.then(task);
    this.#queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * @param {ClientMessage} msg
   * @returns {boolean}
   */
  #send(msg) {
    const ws = this.#ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  /**
   * End the session once: close the peer connection and tell the UI.
   * @param {LeaveReason} reason
   * @param {string | null} [message] A moderator's words.
   */
  #finish(reason, message = null) {
    if (this.#state === 'closed') return;
    const wasJoined = this.#state === 'joined';
    this.#teardown();
    if (wasJoined) this.#emit('closed', { reason, message });
  }

  #teardown() {
    this.#state = 'closed';
    clearTimeout(this.#iceTimer);
    this.#iceTimer = undefined;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    for (const remote of this.#remote.values()) this.#emit('trackremoved', remote);
    this.#remote.clear();
    this.#pc?.close();
    const ws = this.#ws;
    if (ws && ws.readyState === WebSocket.CONNECTING) ws.close(1000);
  }

  /**
   * @template {keyof SessionEventMap} K
   * @param {K} name
   * @param {SessionEventMap[K]} detail
   */
  #emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }
}

/**
 * Every permission set to `value`.
 * @param {boolean} value
 * @returns {Permissions}
 */
export function allPermissions(value) {
  return { unmute: value, camera: value, screen: value, chat: value, files: value, record: value };
}

/**
 * The permission that governs sending `source`.
 * @param {Source} source
 * @returns {Permission}
 */
export function permissionFor(source) {
  return source === 'microphone' ? 'unmute' : source;
}

/**
 * @param {string} code
 * @param {string} message
 * @returns {ProtocolError}
 */
function clientError(code, message) {
  return { code, message };
}

/**
 * @param {unknown} e
 * @returns {string}
 */
function describe(e) {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}
