//! [`RoomCore`]: rooms, participants, published sources, and who receives what.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use conclave_proto::{
    ClientLimits, ClientMessage, E2eeMode, E2eeState, ErrorCode, Knock, LeaveReason,
    PROTOCOL_VERSION, ParticipantId, ParticipantInfo, Permissions, ProtocolError, Role, RoomId,
    RoomState, ServerMessage, Source,
};

use crate::access::{
    AccessMode, Action, BanKey, Identity, ModAction, authorize, check_room_password,
    effective_permissions, role_at_join, secrets_equal,
};
use crate::throttle::{Throttle, ThrottleConfig, describe_wait};
use crate::{Limits, MeetingSettings, TokenBucket};

/// Who is at the other end of a connection, as the edge established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The client's IP address (rate limits and throttles are per address).
    pub addr: IpAddr,
    /// Who they are.
    pub identity: Identity,
}

impl Peer {
    /// An anonymous peer at `addr`.
    pub fn anonymous(addr: IpAddr) -> Peer {
        Peer {
            addr,
            identity: Identity::anonymous(),
        }
    }
}

impl Default for Peer {
    fn default() -> Self {
        Peer::anonymous(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }
}

/// Access policy of the server (`[access]` and `[security]` in the config file).
#[derive(Debug, Clone, PartialEq)]
pub struct AccessPolicy {
    /// Who may open rooms and who must sign in.
    pub mode: AccessMode,
    /// In `hosts` mode, new rooms start with the lobby on (guests knock).
    pub lobby_for_guests: bool,
    /// Initial permissions of participants in a new room.
    pub participant: Permissions,
    /// Initial permissions of guests in a new room.
    pub guest: Permissions,
    /// Shortest room password a moderator may set.
    pub room_password_min_chars: usize,
    /// Backoff and lockout for failed room passwords, per address and per room.
    pub throttle: ThrottleConfig,
    /// Sustained joins per minute from one address of rooms that are not open (opening a
    /// room, or waiting for one that does not exist): this bounds room-ID probing. Joins of
    /// open rooms are not counted.
    pub new_rooms_per_minute_per_address: f64,
    /// Such joins one address may make in a burst.
    pub new_room_burst_per_address: f64,
}

impl Default for AccessPolicy {
    fn default() -> Self {
        AccessPolicy {
            mode: AccessMode::Open,
            lobby_for_guests: true,
            participant: Permissions::default(),
            guest: Permissions::default(),
            room_password_min_chars: 8,
            throttle: ThrottleConfig::default(),
            new_rooms_per_minute_per_address: 30.0,
            new_room_burst_per_address: 20.0,
        }
    }
}

/// Most addresses whose join rate is tracked at once (oldest dropped first).
const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// What a guest is told while waiting, whatever the reason (no host yet, lobby, password,
/// lock): the same words, so that a prober cannot tell the cases apart.
const WAIT_MESSAGE: &str = "Please wait: a moderator will let you in. If you have the room \
password, you can enter it instead.";

/// A signalling connection, named by the edge. When the connection joins, its participant ID
/// is the same number, so the edge chooses it at random.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl ConnId {
    fn participant(self) -> ParticipantId {
        ParticipantId(self.0)
    }
}

/// Something that happened at an edge.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A WebSocket connection opened, from this peer.
    Connected(ConnId, Peer),
    /// The edge verified a token the connection presented: it is now this identity (sent
    /// just before the `join` that carried the token).
    Identified(ConnId, Identity),
    /// A parsed message arrived.
    Message(ConnId, ClientMessage),
    /// A frame arrived that could not be parsed; the core decides what the client hears
    /// (rate limiting applies to garbage too).
    Malformed(ConnId, ProtocolError),
    /// The connection is gone (socket closed, timed out, or a fatal error at the edge).
    Closed(ConnId, LeaveReason),
    /// A room is reserved (or its reservation changed): nobody enters before `opens`, the
    /// meeting ends for everyone at `closes`, and the room starts with this password and
    /// lobby setting.
    Reserve(RoomId, Reservation),
    /// A reservation was deleted; the room (if open) goes on as an ordinary room.
    Unreserve(RoomId),
    /// Time passes: reserved rooms whose window ended close.
    Tick,
}

/// A room reservation as the core sees it (times already on the core's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// No one gets in before this.
    pub opens: Instant,
    /// Everyone gets `bye` `ended` at this time.
    pub closes: Instant,
    /// The room password, if any.
    pub password: Option<String>,
    /// Whether guests wait in the lobby.
    pub lobby: bool,
}

/// What the media plane must do. The core decides; the media plane obeys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaCommand {
    /// Create the participant's peer connection with one upstream slot per [`Source`] and
    /// send it the first offer.
    AddParticipant {
        /// Who.
        participant: ParticipantId,
        /// Their room (the media plane keeps a room's participants together).
        room: RoomId,
    },
    /// Tear down the participant's peer connection and free everything it holds.
    RemoveParticipant {
        /// Who.
        participant: ParticipantId,
    },
    /// Start forwarding `publisher`'s `source` to `subscriber` (negotiates an m-line).
    Subscribe {
        /// Receiver.
        subscriber: ParticipantId,
        /// Sender.
        publisher: ParticipantId,
        /// Which of the sender's sources.
        source: Source,
    },
    /// Stop forwarding `publisher`'s `source` to `subscriber` and stop its m-line.
    Unsubscribe {
        /// Receiver.
        subscriber: ParticipantId,
        /// Sender.
        publisher: ParticipantId,
        /// Which of the sender's sources.
        source: Source,
    },
    /// Accept packets from `publisher` on the slot of `source` (or, with `allowed: false`,
    /// drop them at the packet level).
    SetPublishing {
        /// Sender.
        publisher: ParticipantId,
        /// Which source.
        source: Source,
        /// Whether its packets are forwarded.
        allowed: bool,
    },
    /// Forward video (camera and screen) to `participant`, or with `enabled: false` stop
    /// (its audio keeps flowing). On resume the publishers are asked for key frames.
    SetReceiveVideo {
        /// The receiver.
        participant: ParticipantId,
        /// Whether it receives video.
        enabled: bool,
    },
    /// The participant's SDP answer to its outstanding offer.
    Answer {
        /// Who answers.
        participant: ParticipantId,
        /// SDP text.
        sdp: String,
    },
}

/// An instruction to the edges.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send a message on a connection.
    Send(ConnId, ServerMessage),
    /// Close a connection (after the messages sent before this effect).
    Close(ConnId),
    /// Tell the media plane.
    Media(MediaCommand),
    /// Write to the operator's connection log or audit log.
    Log(LogRecord),
}

/// A fact for the operator's logs. It carries identities, addresses and actions, never a
/// display name or anything a participant said or sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogRecord {
    /// A participant entered a room (connection log).
    Entered {
        /// Its connection.
        conn: ConnId,
        /// The room.
        room: RoomId,
        /// The client address.
        addr: IpAddr,
    },
    /// The participant of `conn` left its room, for any reason (connection log).
    Left {
        /// Its connection.
        conn: ConnId,
    },
    /// A moderator action was carried out (audit log).
    Moderated {
        /// The room.
        room: RoomId,
        /// Who (see [`Identity::log_label`]).
        actor: String,
        /// From where.
        addr: IpAddr,
        /// What.
        action: ModAction,
        /// To whom, labelled like `actor` (empty for room-wide actions).
        target: String,
        /// The action's arguments that matter (source, role, on/off); never message texts
        /// or passwords.
        detail: String,
    },
}

#[derive(Debug)]
struct Conn {
    bucket: TokenBucket,
    /// When we last told this connection it is rate limited (to not answer every dropped
    /// message with an error).
    last_rate_error: Option<Instant>,
    room: Option<RoomId>,
    /// The room whose lobby this connection waits in.
    waiting: Option<RoomId>,
    peer: Peer,
}

#[derive(Debug)]
struct Participant {
    name: String,
    sources: BTreeSet<Source>,
    hand_raised: bool,
    role: Role,
    signed_in: bool,
    /// Sources a moderator stopped; publishing them is refused until `allow`.
    denied: BTreeSet<Source>,
    ban_key: Option<BanKey>,
    /// Whether video is forwarded to this participant (`receive_video`).
    receive_video: bool,
}

#[derive(Debug)]
struct Waiter {
    name: String,
    signed_in: bool,
}

#[derive(Debug)]
struct Room {
    /// Ordered by join so lists are stable.
    participants: BTreeMap<ParticipantId, Participant>,
    join_order: Vec<ParticipantId>,
    state: RoomState,
    password: Option<String>,
    /// Who waits to be let in, in arrival order of their (increasing) IDs... by ID.
    lobby: BTreeMap<ParticipantId, Waiter>,
    bans: BTreeSet<BanKey>,
    /// The MLS group this room's clients share (E2EE): the server only orders commits and
    /// keeps the latest GroupInfo. `None` until a client creates the group, and again after
    /// a moderator's `mls_reset`.
    mls: Option<MlsState>,
    /// How many times a moderator reset the group. MLS messages name the generation they are
    /// for: after a reset the epochs start again at 0, and without it a commit for the old
    /// group that was still on its way could win the same epoch number of the new one.
    mls_generation: u64,
}

/// What the server keeps of a room's MLS group: never a key, only what orders commits and
/// lets newcomers join by external commit.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MlsState {
    epoch: u64,
    group_info: String,
}

impl Room {
    fn new(access: &AccessPolicy) -> Room {
        Room {
            participants: BTreeMap::new(),
            join_order: Vec::new(),
            state: RoomState {
                locked: false,
                lobby: access.mode != AccessMode::Open && access.lobby_for_guests,
                password_set: false,
                participant: access.participant,
                guest: access.guest,
            },
            password: None,
            lobby: BTreeMap::new(),
            bans: BTreeSet::new(),
            mls: None,
            mls_generation: 0,
        }
    }

    fn info(&self, id: ParticipantId) -> Option<ParticipantInfo> {
        self.participants.get(&id).map(|p| ParticipantInfo {
            id,
            name: p.name.clone(),
            sources: p.sources.iter().copied().collect(),
            hand_raised: p.hand_raised,
            role: p.role,
            signed_in: p.signed_in,
            denied: p.denied.iter().copied().collect(),
        })
    }

    fn moderators(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        self.join_order
            .iter()
            .copied()
            .filter(|id| self.participants[id].role == Role::Moderator)
    }

    fn has_moderator(&self) -> bool {
        self.moderators().next().is_some()
    }

    fn knocks(&self) -> Vec<Knock> {
        self.lobby
            .iter()
            .map(|(id, w)| Knock {
                participant: *id,
                name: w.name.clone(),
                signed_in: w.signed_in,
            })
            .collect()
    }

    fn permissions_of(&self, id: ParticipantId) -> Permissions {
        let p = &self.participants[&id];
        effective_permissions(p.role, &p.denied, &self.state)
    }

    /// The MLS delivery-service state, as `joined.e2ee` carries it.
    fn e2ee(&self, mode: E2eeMode) -> E2eeState {
        E2eeState {
            mode,
            epoch: self.mls.as_ref().map(|m| m.epoch),
            group_info: self.mls.as_ref().map(|m| m.group_info.clone()),
            generation: self.mls_generation,
        }
    }

    fn is_empty(&self) -> bool {
        self.participants.is_empty() && self.lobby.is_empty()
    }
}

/// How a `join` ends.
enum Admission {
    Enter(Role),
    Wait,
}

/// The whole conference state of one server.
#[derive(Debug)]
pub struct RoomCore {
    limits: Limits,
    settings: MeetingSettings,
    access: AccessPolicy,
    conns: HashMap<ConnId, Conn>,
    rooms: HashMap<RoomId, Room>,
    participants: usize,
    joins_by_addr: HashMap<IpAddr, TokenBucket>,
    passwords_by_addr: Throttle<IpAddr>,
    passwords_by_room: Throttle<RoomId>,
    reservations: HashMap<RoomId, Reservation>,
    /// MLS epochs the delivery service accepted (groups created and commits), since start.
    mls_epochs: u64,
}

impl RoomCore {
    /// An empty server.
    pub fn new(limits: Limits) -> Self {
        Self::with_settings(limits, MeetingSettings::default())
    }

    /// An empty server whose clients get `settings` on join.
    pub fn with_settings(limits: Limits, settings: MeetingSettings) -> Self {
        Self::with_access(limits, settings, AccessPolicy::default())
    }

    /// An empty server with an access policy.
    pub fn with_access(limits: Limits, settings: MeetingSettings, access: AccessPolicy) -> Self {
        RoomCore {
            limits,
            settings,
            passwords_by_addr: Throttle::new(access.throttle.clone()),
            passwords_by_room: Throttle::new(access.throttle.clone()),
            access,
            conns: HashMap::new(),
            rooms: HashMap::new(),
            participants: 0,
            joins_by_addr: HashMap::new(),
            reservations: HashMap::new(),
            mls_epochs: 0,
        }
    }

    /// Reserved rooms.
    pub fn reservation_count(&self) -> usize {
        self.reservations.len()
    }

    /// The room's moderation state, if the room exists.
    pub fn room_state(&self, room: &RoomId) -> Option<RoomState> {
        self.rooms.get(room).map(|r| r.state.clone())
    }

    /// Who waits in a room's lobby.
    pub fn room_lobby(&self, room: &RoomId) -> Option<Vec<Knock>> {
        self.rooms.get(room).map(Room::knocks)
    }

    /// Number of open rooms.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Number of joined participants.
    pub fn participant_count(&self) -> usize {
        self.participants
    }

    /// Number of open connections (joined or not).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// MLS epochs accepted since start (each new group and each commit is one).
    pub fn mls_epoch_count(&self) -> u64 {
        self.mls_epochs
    }

    /// Rooms whose E2EE group exists right now.
    pub fn e2ee_room_count(&self) -> usize {
        self.rooms.values().filter(|r| r.mls.is_some()).count()
    }

    /// The room's E2EE state as a newcomer would get it (`joined.e2ee`), if the room exists.
    pub fn room_e2ee(&self, room: &RoomId) -> Option<E2eeState> {
        Some(self.rooms.get(room)?.e2ee(self.settings.e2ee))
    }

    /// Participants of a room in join order, if it exists.
    pub fn room_participants(&self, room: &RoomId) -> Option<Vec<ParticipantInfo>> {
        let r = self.rooms.get(room)?;
        Some(r.join_order.iter().filter_map(|id| r.info(*id)).collect())
    }

    /// Feed one input; returns what the edges must do, in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Effect> {
        let mut out = Vec::new();
        match input {
            Input::Connected(conn, peer) => {
                let bucket = TokenBucket::new(
                    self.limits.messages_per_second,
                    self.limits.message_burst,
                    now,
                );
                self.conns.insert(
                    conn,
                    Conn {
                        bucket,
                        last_rate_error: None,
                        room: None,
                        waiting: None,
                        peer,
                    },
                );
            }
            Input::Identified(conn, identity) => {
                if let Some(c) = self.conns.get_mut(&conn)
                    && c.room.is_none()
                {
                    c.peer.identity = identity;
                }
            }
            Input::Message(conn, msg) => {
                // Answers are exempt: the server sends at most one offer at a time, so their
                // number is bounded by the server itself, and dropping one would break the
                // session. An answer without an outstanding offer is refused before parsing.
                let exempt = matches!(msg, ClientMessage::Answer { .. });
                if exempt || self.admit(now, conn, &mut out) {
                    self.on_message(now, conn, msg, &mut out);
                }
            }
            Input::Malformed(conn, err) => {
                if self.admit(now, conn, &mut out) {
                    out.push(Effect::Send(conn, ServerMessage::Error(err)));
                }
            }
            Input::Closed(conn, reason) => {
                self.withdraw(conn, &mut out);
                self.leave(conn, reason, &mut out);
                self.conns.remove(&conn);
            }
            Input::Reserve(room, r) => {
                if let Some(open) = self.rooms.get_mut(&room) {
                    // Applies to an open room too: the operator changed the reservation.
                    open.state.password_set = r.password.is_some();
                    open.password = r.password.clone();
                    open.state.lobby = r.lobby;
                    self.broadcast_room_state(&room, &mut out);
                }
                self.reservations.insert(room, r);
            }
            Input::Unreserve(room) => {
                self.reservations.remove(&room);
            }
            Input::Tick => {
                let ended: Vec<RoomId> = self
                    .reservations
                    .iter()
                    .filter(|(_, r)| r.closes <= now)
                    .map(|(id, _)| id.clone())
                    .collect();
                for room in ended {
                    self.reservations.remove(&room);
                    self.end_meeting(&room, &mut out);
                }
            }
        }
        out
    }

    /// Rate limiting: whether this connection's message may be processed.
    fn admit(&mut self, now: Instant, conn: ConnId, out: &mut Vec<Effect>) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            // Unknown connection: the edge raced a close. Nothing to do.
            return false;
        };
        if c.bucket.try_take(now) {
            return true;
        }
        let quiet = c
            .last_rate_error
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1));
        if !quiet {
            c.last_rate_error = Some(now);
            out.push(Effect::Send(
                conn,
                ServerMessage::error(
                    ErrorCode::RateLimited,
                    format!(
                        "more than {} messages per second; this message was dropped",
                        self.limits.messages_per_second
                    ),
                ),
            ));
        }
        false
    }

    fn on_message(
        &mut self,
        now: Instant,
        conn: ConnId,
        msg: ClientMessage,
        out: &mut Vec<Effect>,
    ) {
        let joined = self.conns.get(&conn).and_then(|c| c.room.clone());
        match (msg, joined) {
            (
                ClientMessage::Join {
                    v,
                    room,
                    name,
                    password,
                    token: _,
                },
                None,
            ) => self.join(now, conn, v, &room, &name, password.as_deref(), out),
            (ClientMessage::Join { .. }, Some(_)) => out.push(Effect::Send(
                conn,
                ServerMessage::error(
                    ErrorCode::AlreadyJoined,
                    "this connection has already joined a room",
                ),
            )),
            (other, None) => out.push(Effect::Send(
                conn,
                ServerMessage::error(
                    ErrorCode::NotJoined,
                    format!("\"{}\" is only allowed after \"join\"", other.kind()),
                ),
            )),
            (ClientMessage::Answer { sdp }, Some(_)) => {
                out.push(Effect::Media(MediaCommand::Answer {
                    participant: conn.participant(),
                    sdp,
                }))
            }
            (ClientMessage::Publish { source }, Some(room)) => {
                if self.allowed(conn, &room, Action::Publish(source), out) {
                    self.set_source(conn, &room, source, true, out)
                }
            }
            (ClientMessage::Unpublish { source }, Some(room)) => {
                self.set_source(conn, &room, source, false, out)
            }
            (
                ClientMessage::Chat {
                    text,
                    ciphertext,
                    to,
                },
                Some(room),
            ) => {
                if self.allowed(conn, &room, Action::Chat, out) {
                    self.chat(conn, &room, text, ciphertext, to, out)
                }
            }
            (
                ClientMessage::MlsGroup {
                    group_info,
                    generation,
                },
                Some(room),
            ) => self.mls(conn, &room, generation, None, group_info, out),
            (
                ClientMessage::MlsCommit {
                    epoch,
                    commit,
                    group_info,
                    generation,
                },
                Some(room),
            ) => self.mls(
                conn,
                &room,
                generation,
                Some((epoch, commit)),
                group_info,
                out,
            ),
            (ClientMessage::RaiseHand { raised }, Some(room)) => {
                self.raise_hand(conn, &room, raised, out)
            }
            (ClientMessage::ReceiveVideo { enabled }, Some(room)) => {
                self.receive_video(conn, &room, enabled, out)
            }
            (ClientMessage::Leave {}, Some(_)) => {
                self.leave(conn, LeaveReason::Left, out);
                out.push(Effect::Send(
                    conn,
                    ServerMessage::Bye {
                        reason: LeaveReason::Left,
                        message: None,
                    },
                ));
                out.push(Effect::Close(conn));
            }
            (m, Some(room)) => self.moderate(conn, &room, m, out),
        }
    }

    /// Ask the access rules; on refusal tell the client `forbidden`.
    fn allowed(
        &self,
        conn: ConnId,
        room_id: &RoomId,
        action: Action,
        out: &mut Vec<Effect>,
    ) -> bool {
        let Some(room) = self.rooms.get(room_id) else {
            return false;
        };
        let Some(p) = room.participants.get(&conn.participant()) else {
            return false;
        };
        match authorize(p.role, &p.denied, &room.state, action) {
            Ok(()) => true,
            Err(e) => {
                out.push(Effect::Send(conn, ServerMessage::Error(e)));
                false
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn join(
        &mut self,
        now: Instant,
        conn: ConnId,
        v: u32,
        room: &str,
        name: &str,
        password: Option<&str>,
        out: &mut Vec<Effect>,
    ) {
        let err = |code, msg: String| Effect::Send(conn, ServerMessage::error(code, msg));
        if v != PROTOCOL_VERSION {
            out.push(err(
                ErrorCode::UnsupportedVersion,
                format!("this server speaks protocol version {PROTOCOL_VERSION}, not {v}"),
            ));
            return;
        }
        let room_id = match RoomId::parse(room) {
            Ok(r) => r,
            Err(e) => return out.push(err(ErrorCode::InvalidRoom, e.to_string())),
        };
        let Some(peer) = self.conns.get(&conn).map(|c| c.peer.clone()) else {
            return;
        };
        // Probing room IDs means joining rooms that do not exist; joining one that does is
        // what a class behind one school NAT does at 9:00, and is not limited here.
        if !self.rooms.contains_key(&room_id) && !self.new_room_allowed(now, peer.addr) {
            return out.push(err(
                ErrorCode::TooManyAttempts,
                format!(
                    "more than {} joins of rooms that are not open, per minute, from your address; wait a minute",
                    self.access.new_rooms_per_minute_per_address
                ),
            ));
        }
        if let Identity::Token {
            room: Some(for_room),
            ..
        } = &peer.identity
            && *for_room != room_id
        {
            return out.push(err(
                ErrorCode::InvalidToken,
                "this invitation is for another room".into(),
            ));
        }
        if self.access.mode == AccessMode::Closed && !peer.identity.signed_in() {
            return out.push(err(
                ErrorCode::SignInRequired,
                "this server requires signing in (an account or an invitation link)".into(),
            ));
        }
        let name = match validate_name(
            peer.identity.fixed_name().unwrap_or(name),
            self.limits.max_name_chars,
        ) {
            Ok(n) => n,
            Err(m) => return out.push(err(ErrorCode::InvalidName, m)),
        };
        // A second `join` from the lobby (e.g. now with the password) starts over.
        self.withdraw(conn, out);

        let ban_key = peer.identity.ban_key();
        if let (Some(r), Some(k)) = (self.rooms.get(&room_id), &ban_key)
            && r.bans.contains(k)
        {
            return out.push(err(
                ErrorCode::Banned,
                "a moderator removed you from this meeting; you cannot rejoin it".into(),
            ));
        }
        if self.participants >= self.limits.max_participants {
            return out.push(err(
                ErrorCode::ServerFull,
                format!(
                    "the server has its maximum of {} participants",
                    self.limits.max_participants
                ),
            ));
        }
        match self.rooms.get(&room_id) {
            None if self.rooms.len() >= self.limits.max_rooms => {
                return out.push(err(
                    ErrorCode::ServerFull,
                    format!(
                        "the server has its maximum of {} rooms",
                        self.limits.max_rooms
                    ),
                ));
            }
            Some(r) if r.participants.len() >= self.limits.max_participants_per_room => {
                return out.push(err(
                    ErrorCode::RoomFull,
                    format!(
                        "the room has its maximum of {} participants",
                        self.limits.max_participants_per_room
                    ),
                ));
            }
            _ => {}
        }

        match self.admission(now, &peer, &room_id, password) {
            Err(e) => out.push(Effect::Send(conn, ServerMessage::Error(e))),
            Ok(Admission::Enter(role)) => {
                self.open_room(&room_id);
                self.enter(conn, &room_id, name, role, out);
            }
            Ok(Admission::Wait) => {
                self.open_room(&room_id);
                let Some(room) = self.rooms.get_mut(&room_id) else {
                    return;
                };
                let me = conn.participant();
                let signed_in = peer.identity.signed_in();
                room.lobby.insert(
                    me,
                    Waiter {
                        name: name.clone(),
                        signed_in,
                    },
                );
                let knock = Knock {
                    participant: me,
                    name,
                    signed_in,
                };
                for m in room.moderators() {
                    out.push(Effect::Send(
                        ConnId(m.0),
                        ServerMessage::Knock {
                            knock: knock.clone(),
                        },
                    ));
                }
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.waiting = Some(room_id);
                }
                out.push(Effect::Send(
                    conn,
                    ServerMessage::Lobby {
                        message: WAIT_MESSAGE.into(),
                    },
                ));
            }
        }
    }

    /// Create the room if it is not open yet, with its reservation's settings.
    fn open_room(&mut self, room_id: &RoomId) {
        if self.rooms.contains_key(room_id) {
            return;
        }
        let mut room = Room::new(&self.access);
        if let Some(r) = self.reservations.get(room_id) {
            room.password = r.password.clone();
            room.state.password_set = r.password.is_some();
            room.state.lobby = r.lobby;
        }
        self.rooms.insert(room_id.clone(), room);
    }

    /// Whether `peer` may enter `room_id` now, must wait in the lobby, or is refused. Only
    /// reads state, except for the password throttles.
    fn admission(
        &mut self,
        now: Instant,
        peer: &Peer,
        room_id: &RoomId,
        password: Option<&str>,
    ) -> Result<Admission, ProtocolError> {
        let room = self.rooms.get(room_id);
        let first = room.is_none_or(|r| r.participants.is_empty());
        let role = role_at_join(self.access.mode, &peer.identity, first);
        // Guests of `hosts`/`closed` servers get the same answers for a room that does not
        // exist (yet) and for one that is protected, so room IDs cannot be probed.
        let uniform = self.access.mode != AccessMode::Open && !peer.identity.signed_in();
        if let Some(r) = self.reservations.get(room_id)
            && now < r.opens
        {
            if uniform {
                return Ok(Admission::Wait);
            }
            return Err(ProtocolError::new(
                ErrorCode::NotOpenYet,
                format!(
                    "this meeting is reserved and opens in {}",
                    describe_wait(r.opens - now)
                ),
            ));
        }
        if role == Role::Moderator {
            return Ok(Admission::Enter(role));
        }
        let mut password_ok = false;
        if let Some(given) = password.filter(|p| !p.is_empty()) {
            let wait = [
                self.passwords_by_addr.check(now, &peer.addr),
                self.passwords_by_room.check(now, room_id),
            ]
            .into_iter()
            .filter_map(Result::err)
            .max();
            if let Some(wait) = wait {
                return Err(ProtocolError::new(
                    ErrorCode::TooManyAttempts,
                    format!(
                        "too many wrong passwords; try again in {}",
                        describe_wait(wait)
                    ),
                ));
            }
            let right = room
                .and_then(|r| r.password.as_deref())
                .is_some_and(|p| secrets_equal(p, given));
            if !right {
                self.passwords_by_addr.fail(now, &peer.addr);
                self.passwords_by_room.fail(now, room_id);
                return Err(ProtocolError::new(
                    ErrorCode::WrongPassword,
                    "the password is not right",
                ));
            }
            password_ok = true;
        }
        let Some(room) = self.rooms.get(room_id) else {
            // Only moderators open rooms in `hosts`/`closed` mode; in `open` mode the first
            // joiner is a moderator and returned above.
            return Ok(Admission::Wait);
        };
        if room.password.is_some() && !password_ok && !peer.identity.bypasses_password() {
            if uniform {
                return Ok(Admission::Wait);
            }
            return Err(ProtocolError::new(
                ErrorCode::PasswordRequired,
                "this room needs a password",
            ));
        }
        if room.state.locked {
            if uniform || room.state.lobby {
                return Ok(Admission::Wait);
            }
            return Err(ProtocolError::new(
                ErrorCode::RoomLocked,
                "a moderator locked this room",
            ));
        }
        if self.access.mode != AccessMode::Open && !room.has_moderator() {
            return Ok(Admission::Wait);
        }
        if room.state.lobby && !password_ok && !peer.identity.bypasses_lobby() {
            return Ok(Admission::Wait);
        }
        Ok(Admission::Enter(role))
    }

    fn new_room_allowed(&mut self, now: Instant, addr: IpAddr) -> bool {
        if !self.joins_by_addr.contains_key(&addr)
            && self.joins_by_addr.len() >= MAX_TRACKED_ADDRESSES
        {
            // Buckets refill in at most a minute or two; full ones carry no information.
            let burst = self.access.new_room_burst_per_address;
            let rate = self.access.new_rooms_per_minute_per_address / 60.0;
            self.joins_by_addr
                .retain(|_, b| !b.is_full(now, rate, burst));
            if self.joins_by_addr.len() >= MAX_TRACKED_ADDRESSES {
                self.joins_by_addr.clear();
            }
        }
        let bucket = self.joins_by_addr.entry(addr).or_insert_with(|| {
            TokenBucket::new(
                self.access.new_rooms_per_minute_per_address / 60.0,
                self.access.new_room_burst_per_address,
                now,
            )
        });
        bucket.try_take(now)
    }

    /// Put `conn` into the room (already created) with `role`.
    fn enter(
        &mut self,
        conn: ConnId,
        room_id: &RoomId,
        name: String,
        role: Role,
        out: &mut Vec<Effect>,
    ) {
        let Some(peer) = self.conns.get(&conn).map(|c| c.peer.clone()) else {
            return;
        };
        let me = conn.participant();
        let Some(r) = self.rooms.get_mut(room_id) else {
            return;
        };
        let others: Vec<ParticipantInfo> =
            r.join_order.iter().filter_map(|id| r.info(*id)).collect();
        r.participants.insert(
            me,
            Participant {
                name,
                sources: BTreeSet::new(),
                hand_raised: false,
                role,
                signed_in: peer.identity.signed_in(),
                denied: BTreeSet::new(),
                ban_key: peer.identity.ban_key(),
                receive_video: true,
            },
        );
        r.join_order.push(me);
        self.participants += 1;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.room = Some(room_id.clone());
            c.waiting = None;
        }
        let my_info = r.info(me).expect("just inserted");

        out.push(Effect::Send(
            conn,
            ServerMessage::Joined {
                v: PROTOCOL_VERSION,
                room: room_id.clone(),
                id: me,
                name: my_info.name.clone(),
                signed_in: my_info.signed_in,
                participants: others.clone(),
                settings: self.settings.clone(),
                role,
                permissions: r.permissions_of(me),
                room_state: r.state.clone(),
                lobby: if role == Role::Moderator {
                    r.knocks()
                } else {
                    Vec::new()
                },
                limits: ClientLimits {
                    max_name_chars: self.limits.max_name_chars,
                    max_chat_chars: self.limits.max_chat_chars,
                },
                e2ee: r.e2ee(self.settings.e2ee),
                // The edge fills this in: credentials are minted outside the core.
                ice: None,
            },
        ));
        out.push(Effect::Log(LogRecord::Entered {
            conn,
            room: room_id.clone(),
            addr: peer.addr,
        }));
        out.push(Effect::Media(MediaCommand::AddParticipant {
            participant: me,
            room: room_id.clone(),
        }));
        for other in &others {
            out.push(Effect::Send(
                ConnId(other.id.0),
                ServerMessage::ParticipantJoined {
                    participant: my_info.clone(),
                },
            ));
            for &source in &other.sources {
                out.push(Effect::Media(MediaCommand::Subscribe {
                    subscriber: me,
                    publisher: other.id,
                    source,
                }));
            }
        }
        // A host arrived in a room where people wait without a lobby (they waited for a
        // host): let them in.
        if role == Role::Moderator && !r.state.lobby && !r.state.locked && !r.lobby.is_empty() {
            let waiting: Vec<ParticipantId> = r.lobby.keys().copied().collect();
            for w in waiting {
                self.admit_waiter(room_id, w, out);
            }
        }
    }

    /// Take `conn` out of the lobby it waits in, if any, and tell the moderators.
    fn withdraw(&mut self, conn: ConnId, out: &mut Vec<Effect>) {
        let Some(room_id) = self.conns.get_mut(&conn).and_then(|c| c.waiting.take()) else {
            return;
        };
        let me = conn.participant();
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        if room.lobby.remove(&me).is_some() {
            for m in room.moderators() {
                out.push(Effect::Send(
                    ConnId(m.0),
                    ServerMessage::KnockWithdrawn { participant: me },
                ));
            }
        }
        if room.is_empty() {
            self.rooms.remove(&room_id);
        }
    }

    /// Let a waiter in (admit, or lobby turned off).
    fn admit_waiter(&mut self, room_id: &RoomId, who: ParticipantId, out: &mut Vec<Effect>) {
        let conn = ConnId(who.0);
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(w) = room.lobby.remove(&who) else {
            return;
        };
        for m in room.moderators() {
            out.push(Effect::Send(
                ConnId(m.0),
                ServerMessage::KnockWithdrawn { participant: who },
            ));
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.waiting = None;
        if self.participants >= self.limits.max_participants
            || room.participants.len() >= self.limits.max_participants_per_room
        {
            out.push(Effect::Send(
                conn,
                ServerMessage::error(ErrorCode::RoomFull, "the room is full"),
            ));
            if room.is_empty() {
                self.rooms.remove(room_id);
            }
            return;
        }
        let role = role_at_join(self.access.mode, &c.peer.identity, false);
        self.enter(conn, room_id, w.name, role, out);
    }

    /// A moderator action (or a client message that needs one).
    fn moderate(
        &mut self,
        conn: ConnId,
        room_id: &RoomId,
        msg: ClientMessage,
        out: &mut Vec<Effect>,
    ) {
        let action = match &msg {
            ClientMessage::Mute { .. } => ModAction::Mute,
            ClientMessage::MuteAll { .. } => ModAction::MuteAll,
            ClientMessage::Allow { .. } => ModAction::Allow,
            ClientMessage::Remove { .. } => ModAction::Remove,
            ClientMessage::Ban { .. } => ModAction::Ban,
            ClientMessage::Lock { .. } => ModAction::Lock,
            ClientMessage::EndMeeting {} => ModAction::EndMeeting,
            ClientMessage::SetRole { .. } => ModAction::SetRole,
            ClientMessage::SetPassword { .. } => ModAction::SetPassword,
            ClientMessage::SetLobby { .. } => ModAction::SetLobby,
            ClientMessage::SetPermissions { .. } => ModAction::SetPermissions,
            ClientMessage::Admit { .. } => ModAction::Admit,
            ClientMessage::Deny { .. } => ModAction::Deny,
            ClientMessage::MlsReset {} => ModAction::MlsReset,
            // Every other message is handled in `on_message`.
            _ => return,
        };
        if !self.allowed(conn, room_id, Action::Moderate(action), out) {
            return;
        }
        let me = conn.participant();
        let err = |code, m: String| Effect::Send(conn, ServerMessage::error(code, m));
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        // Targets must be other participants of this room (or, for admit/deny, waiters).
        let target = match &msg {
            ClientMessage::Mute { participant, .. }
            | ClientMessage::Allow { participant, .. }
            | ClientMessage::Remove { participant, .. }
            | ClientMessage::Ban { participant, .. }
            | ClientMessage::SetRole { participant, .. } => Some(*participant),
            _ => None,
        };
        if let Some(t) = target
            && (t == me || !room.participants.contains_key(&t))
        {
            return out.push(err(
                ErrorCode::UnknownParticipant,
                format!("{t} is not another participant of this room"),
            ));
        }
        // Audited once carried out: not when the action itself refuses (a bad password,
        // an unknown waiter, E2EE off).
        let record = self.moderation_record(conn, room_id, action, &msg);
        let before = out.len();
        self.carry_out(conn, room_id, msg, out);
        let refused = out[before..]
            .iter()
            .any(|e| matches!(e, Effect::Send(c, ServerMessage::Error(_)) if *c == conn));
        if !refused {
            out.push(Effect::Log(record));
        }
    }

    /// A moderator action that is allowed and whose target exists.
    fn carry_out(
        &mut self,
        conn: ConnId,
        room_id: &RoomId,
        msg: ClientMessage,
        out: &mut Vec<Effect>,
    ) {
        let err = |code, m: String| Effect::Send(conn, ServerMessage::error(code, m));
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        match msg {
            ClientMessage::Mute {
                participant,
                source,
            } => {
                self.deny_source(room_id, participant, source, out);
            }
            ClientMessage::MuteAll { source } => {
                let targets: Vec<ParticipantId> = room
                    .join_order
                    .iter()
                    .copied()
                    .filter(|id| room.participants[id].role != Role::Moderator)
                    .collect();
                for t in targets {
                    self.deny_source(room_id, t, source, out);
                }
            }
            ClientMessage::Allow {
                participant,
                source,
            } => {
                let p = room.participants.get_mut(&participant).expect("checked");
                if p.denied.remove(&source) {
                    self.send_self_updated(room_id, participant, out);
                    self.broadcast_info(room_id, participant, out);
                }
            }
            ClientMessage::Remove {
                participant,
                message,
            } => {
                self.expel(ConnId(participant.0), LeaveReason::Removed, message, out);
            }
            ClientMessage::Ban {
                participant,
                message,
            } => {
                if let Some(k) = room.participants[&participant].ban_key.clone() {
                    room.bans.insert(k);
                }
                self.expel(ConnId(participant.0), LeaveReason::Banned, message, out);
            }
            ClientMessage::Lock { locked } if room.state.locked != locked => {
                room.state.locked = locked;
                self.broadcast_room_state(room_id, out);
            }
            ClientMessage::EndMeeting {} => self.end_meeting(room_id, out),
            ClientMessage::SetRole { participant, role } => {
                let p = room.participants.get_mut(&participant).expect("checked");
                if p.role == role {
                    return;
                }
                p.role = role;
                let knocks = room.knocks();
                if role == Role::Moderator {
                    for knock in knocks {
                        out.push(Effect::Send(
                            ConnId(participant.0),
                            ServerMessage::Knock { knock },
                        ));
                    }
                }
                self.enforce_permissions(room_id, out);
                self.send_self_updated(room_id, participant, out);
                self.broadcast_info(room_id, participant, out);
            }
            ClientMessage::SetPassword { password } => {
                if let Some(pw) = &password
                    && let Err(m) = check_room_password(pw, self.access.room_password_min_chars)
                {
                    return out.push(err(ErrorCode::InvalidPassword, m));
                }
                room.state.password_set = password.is_some();
                room.password = password;
                self.broadcast_room_state(room_id, out);
            }
            ClientMessage::SetLobby { enabled } => {
                if room.state.lobby == enabled {
                    return;
                }
                room.state.lobby = enabled;
                let waiting: Vec<ParticipantId> = room.lobby.keys().copied().collect();
                self.broadcast_room_state(room_id, out);
                if !enabled {
                    for w in waiting {
                        self.admit_waiter(room_id, w, out);
                    }
                }
            }
            ClientMessage::SetPermissions { role, permissions } => {
                match role {
                    Role::Participant => room.state.participant = permissions,
                    Role::Guest => room.state.guest = permissions,
                    Role::Moderator => {
                        return out.push(err(
                            ErrorCode::BadMessage,
                            "moderators may always do everything; set \"participant\" or \"guest\""
                                .into(),
                        ));
                    }
                }
                let ids: Vec<ParticipantId> = room.join_order.clone();
                self.enforce_permissions(room_id, out);
                for id in ids {
                    if self.rooms[room_id].participants[&id].role == role {
                        self.send_self_updated(room_id, id, out);
                    }
                }
                self.broadcast_room_state(room_id, out);
            }
            ClientMessage::Admit { participant } => {
                if !room.lobby.contains_key(&participant) {
                    return out.push(err(
                        ErrorCode::UnknownParticipant,
                        format!("{participant} is not waiting in the lobby"),
                    ));
                }
                self.admit_waiter(room_id, participant, out);
            }
            ClientMessage::Deny {
                participant,
                message,
            } => {
                if !room.lobby.contains_key(&participant) {
                    return out.push(err(
                        ErrorCode::UnknownParticipant,
                        format!("{participant} is not waiting in the lobby"),
                    ));
                }
                self.turn_away(room_id, participant, LeaveReason::Denied, message, out);
            }
            ClientMessage::MlsReset {} => self.mls_reset(conn, room_id, out),
            _ => {}
        }
    }

    /// The audit record of a moderator action `conn` is allowed to take.
    fn moderation_record(
        &self,
        conn: ConnId,
        room_id: &RoomId,
        action: ModAction,
        msg: &ClientMessage,
    ) -> LogRecord {
        let label = |c: ConnId| {
            self.conns.get(&c).map_or_else(
                || format!("participant:{}", c.participant()),
                |c2| c2.peer.identity.log_label(c.participant()),
            )
        };
        let (target, detail) = match msg {
            ClientMessage::Mute {
                participant,
                source,
            }
            | ClientMessage::Allow {
                participant,
                source,
            } => (
                label(ConnId(participant.0)),
                format!("source={}", debug_lower(source)),
            ),
            ClientMessage::MuteAll { source } => {
                (String::new(), format!("source={}", debug_lower(source)))
            }
            ClientMessage::Remove { participant, .. }
            | ClientMessage::Ban { participant, .. }
            | ClientMessage::Admit { participant }
            | ClientMessage::Deny { participant, .. } => {
                (label(ConnId(participant.0)), String::new())
            }
            ClientMessage::SetRole { participant, role } => (
                label(ConnId(participant.0)),
                format!("role={}", debug_lower(role)),
            ),
            ClientMessage::Lock { locked } => (String::new(), format!("locked={locked}")),
            ClientMessage::SetLobby { enabled } => (String::new(), format!("lobby={enabled}")),
            ClientMessage::SetPassword { password } => (
                String::new(),
                if password.is_some() {
                    "password=set"
                } else {
                    "password=removed"
                }
                .into(),
            ),
            ClientMessage::SetPermissions { role, permissions } => (
                String::new(),
                format!(
                    "role={} allowed={}",
                    debug_lower(role),
                    allowed_list(permissions)
                ),
            ),
            _ => (String::new(), String::new()),
        };
        let addr = self
            .conns
            .get(&conn)
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.peer.addr);
        LogRecord::Moderated {
            room: room_id.clone(),
            actor: label(conn),
            addr,
            action,
            target,
            detail,
        }
    }

    /// End the meeting for everyone in the room and everyone waiting; the room closes.
    fn end_meeting(&mut self, room_id: &RoomId, out: &mut Vec<Effect>) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let everyone: Vec<ParticipantId> = room.join_order.clone();
        let waiting: Vec<ParticipantId> = room.lobby.keys().copied().collect();
        for w in waiting {
            self.turn_away(room_id, w, LeaveReason::Ended, None, out);
        }
        for p in everyone {
            self.expel(ConnId(p.0), LeaveReason::Ended, None, out);
        }
    }

    /// Stop `who`'s `source` and keep it stopped (hard mute).
    fn deny_source(
        &mut self,
        room_id: &RoomId,
        who: ParticipantId,
        source: Source,
        out: &mut Vec<Effect>,
    ) {
        let Some(p) = self
            .rooms
            .get_mut(room_id)
            .and_then(|r| r.participants.get_mut(&who))
        else {
            return;
        };
        let newly = p.denied.insert(source);
        // Packet level first: whatever the client does, its RTP on this slot is dropped.
        out.push(Effect::Media(MediaCommand::SetPublishing {
            publisher: who,
            source,
            allowed: false,
        }));
        self.set_source(ConnId(who.0), room_id, source, false, out);
        if newly {
            self.send_self_updated(room_id, who, out);
            // every moderator's page learns it (offers "allow"), whoever stopped it
            self.broadcast_info(room_id, who, out);
        }
    }

    /// After a permission or role change: stop every source someone may no longer send.
    fn enforce_permissions(&mut self, room_id: &RoomId, out: &mut Vec<Effect>) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let mut stop = Vec::new();
        for id in &room.join_order {
            let allowed = room.permissions_of(*id);
            for s in &room.participants[id].sources {
                if !allowed.source(*s) {
                    stop.push((*id, *s));
                }
            }
        }
        for (id, s) in stop {
            self.set_source(ConnId(id.0), room_id, s, false, out);
        }
    }

    fn send_self_updated(&self, room_id: &RoomId, who: ParticipantId, out: &mut Vec<Effect>) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let Some(p) = room.participants.get(&who) else {
            return;
        };
        out.push(Effect::Send(
            ConnId(who.0),
            ServerMessage::SelfUpdated {
                role: p.role,
                permissions: room.permissions_of(who),
            },
        ));
    }

    fn broadcast_info(&self, room_id: &RoomId, who: ParticipantId, out: &mut Vec<Effect>) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let Some(info) = room.info(who) else {
            return;
        };
        for &id in &room.join_order {
            out.push(Effect::Send(
                ConnId(id.0),
                ServerMessage::ParticipantUpdated {
                    participant: info.clone(),
                },
            ));
        }
    }

    fn broadcast_room_state(&self, room_id: &RoomId, out: &mut Vec<Effect>) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        for &id in &room.join_order {
            out.push(Effect::Send(
                ConnId(id.0),
                ServerMessage::RoomUpdated {
                    room_state: room.state.clone(),
                },
            ));
        }
    }

    /// End a participant's session for a moderation reason: `bye`, close, and leave.
    fn expel(
        &mut self,
        conn: ConnId,
        reason: LeaveReason,
        message: Option<String>,
        out: &mut Vec<Effect>,
    ) {
        let message = message.map(|m| truncate_chars(&m, self.limits.max_chat_chars));
        self.leave(conn, reason, out);
        out.push(Effect::Send(conn, ServerMessage::Bye { reason, message }));
        out.push(Effect::Close(conn));
    }

    /// Send a waiter away from the lobby.
    fn turn_away(
        &mut self,
        room_id: &RoomId,
        who: ParticipantId,
        reason: LeaveReason,
        message: Option<String>,
        out: &mut Vec<Effect>,
    ) {
        let conn = ConnId(who.0);
        let message = message.map(|m| truncate_chars(&m, self.limits.max_chat_chars));
        if self.conns.get(&conn).and_then(|c| c.waiting.as_ref()) != Some(room_id) {
            return;
        }
        self.withdraw(conn, out);
        out.push(Effect::Send(conn, ServerMessage::Bye { reason, message }));
        out.push(Effect::Close(conn));
    }

    fn set_source(
        &mut self,
        conn: ConnId,
        room_id: &RoomId,
        source: Source,
        on: bool,
        out: &mut Vec<Effect>,
    ) {
        let me = conn.participant();
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(p) = room.participants.get_mut(&me) else {
            return;
        };
        let changed = if on {
            p.sources.insert(source)
        } else {
            p.sources.remove(&source)
        };
        if !changed {
            // Idempotent: publishing twice is not an error.
            return;
        }
        out.push(Effect::Media(MediaCommand::SetPublishing {
            publisher: me,
            source,
            allowed: on,
        }));
        let info = room.info(me).expect("present");
        for &other in room.join_order.iter().filter(|id| **id != me) {
            out.push(Effect::Media(if on {
                MediaCommand::Subscribe {
                    subscriber: other,
                    publisher: me,
                    source,
                }
            } else {
                MediaCommand::Unsubscribe {
                    subscriber: other,
                    publisher: me,
                    source,
                }
            }));
            out.push(Effect::Send(
                ConnId(other.0),
                ServerMessage::ParticipantUpdated {
                    participant: info.clone(),
                },
            ));
        }
    }

    /// Relay a chat message: to everyone else in the room, or to one addressee. Nothing is
    /// kept.
    #[allow(clippy::too_many_arguments)]
    fn chat(
        &mut self,
        conn: ConnId,
        room_id: &RoomId,
        text: Option<String>,
        ciphertext: Option<String>,
        to: Option<ParticipantId>,
        out: &mut Vec<Effect>,
    ) {
        let me = conn.participant();
        let refuse = |out: &mut Vec<Effect>, code: ErrorCode, message: String| {
            out.push(Effect::Send(conn, ServerMessage::error(code, message)));
        };
        let e2ee = self.settings.e2ee == E2eeMode::Required;
        match (&text, &ciphertext) {
            (Some(_), Some(_)) | (None, None) => {
                return refuse(
                    out,
                    ErrorCode::InvalidChat,
                    "a chat message has exactly one of `text` and `ciphertext`".into(),
                );
            }
            (Some(_), None) if e2ee => {
                return refuse(
                    out,
                    ErrorCode::InvalidE2ee,
                    "this server requires end-to-end encryption: send chat as `ciphertext`, \
                     never as `text`"
                        .into(),
                );
            }
            (None, Some(_)) if !e2ee => {
                return refuse(
                    out,
                    ErrorCode::E2eeOff,
                    "end-to-end encryption is off on this server: send chat as `text`".into(),
                );
            }
            (Some(text), None) => {
                let n = text.chars().count();
                if text.trim().is_empty() || n > self.limits.max_chat_chars {
                    return refuse(
                        out,
                        ErrorCode::InvalidChat,
                        format!(
                            "a chat message has 1 to {} characters, this one has {n}",
                            self.limits.max_chat_chars
                        ),
                    );
                }
            }
            (None, Some(c)) => {
                let max = self.limits.max_chat_ciphertext_chars();
                if let Err(why) = check_base64(c, max) {
                    return refuse(
                        out,
                        ErrorCode::InvalidE2ee,
                        format!("chat `ciphertext` {why}"),
                    );
                }
            }
        }
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let message = |private| ServerMessage::Chat {
            from: me,
            text: text.clone(),
            ciphertext: ciphertext.clone(),
            private,
        };
        match to {
            Some(addressee) if addressee == me || !room.participants.contains_key(&addressee) => {
                refuse(
                    out,
                    ErrorCode::UnknownParticipant,
                    format!("{addressee} is not another participant of this room"),
                );
            }
            Some(addressee) => out.push(Effect::Send(ConnId(addressee.0), message(true))),
            None => {
                for &other in room.join_order.iter().filter(|id| **id != me) {
                    out.push(Effect::Send(ConnId(other.0), message(false)));
                }
            }
        }
    }

    /// The MLS delivery service: `mls_group` (no `epoch`) creates the group, `mls_commit`
    /// advances it by one epoch. First come wins; the loser gets the current state back.
    /// Nothing here reads MLS: the clients verify every commit themselves. `commit` is the
    /// epoch it is made from and the commit (`mls_commit`); `None` for `mls_group`.
    fn mls(
        &mut self,
        conn: ConnId,
        room_id: &RoomId,
        generation: u64,
        commit: Option<(u64, String)>,
        group_info: String,
        out: &mut Vec<Effect>,
    ) {
        let me = conn.participant();
        let refuse = |out: &mut Vec<Effect>, code: ErrorCode, message: String| {
            out.push(Effect::Send(conn, ServerMessage::error(code, message)));
        };
        if self.settings.e2ee == E2eeMode::Off {
            return refuse(
                out,
                ErrorCode::E2eeOff,
                "end-to-end encryption is off on this server; MLS messages are not relayed".into(),
            );
        }
        let max = self.limits.max_mls_chars;
        for (field, value) in [
            ("commit", commit.as_ref().map(|(_, c)| c.as_str())),
            ("group_info", Some(&*group_info)),
        ] {
            if let Some(value) = value
                && let Err(why) = check_base64(value, max)
            {
                return refuse(out, ErrorCode::InvalidE2ee, format!("`{field}` {why}"));
            }
        }
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        if generation > room.mls_generation {
            return refuse(
                out,
                ErrorCode::InvalidE2ee,
                format!(
                    "`generation` {generation} does not exist yet; the room's E2EE group is at \
                     generation {}",
                    room.mls_generation
                ),
            );
        }
        if generation < room.mls_generation {
            // For a group a moderator has reset since: it must not win an epoch of the new
            // group. The sender got `mls_reset` before this answer.
            out.push(Effect::Send(
                conn,
                ServerMessage::MlsRejected {
                    epoch: None,
                    group_info: None,
                    generation,
                },
            ));
            return;
        }
        let accepted = match (&room.mls, &commit) {
            (None, None) => Some(0),
            (Some(state), Some((e, _))) if state.epoch == *e => e.checked_add(1),
            _ => None,
        };
        let Some(new_epoch) = accepted else {
            out.push(Effect::Send(
                conn,
                ServerMessage::MlsRejected {
                    epoch: room.mls.as_ref().map(|m| m.epoch),
                    group_info: room.mls.as_ref().map(|m| m.group_info.clone()),
                    generation,
                },
            ));
            return;
        };
        room.mls = Some(MlsState {
            epoch: new_epoch,
            group_info,
        });
        self.mls_epochs += 1;
        if let Some((epoch, commit)) = commit {
            for &other in room.join_order.iter().filter(|id| **id != me) {
                out.push(Effect::Send(
                    ConnId(other.0),
                    ServerMessage::MlsCommit {
                        epoch,
                        commit: commit.clone(),
                        from: me,
                    },
                ));
            }
        }
        out.push(Effect::Send(
            conn,
            ServerMessage::MlsAccepted {
                epoch: new_epoch,
                generation,
            },
        ));
    }

    /// A moderator's `mls_reset` (already authorized): forget the group and start a new
    /// generation. Everyone, the moderator included, hears it in order with the other
    /// messages, so a client knows that every MLS message after it on its socket is about the
    /// new generation.
    fn mls_reset(&mut self, conn: ConnId, room_id: &RoomId, out: &mut Vec<Effect>) {
        if self.settings.e2ee == E2eeMode::Off {
            return out.push(Effect::Send(
                conn,
                ServerMessage::error(
                    ErrorCode::E2eeOff,
                    "end-to-end encryption is off on this server; there is no group to reset",
                ),
            ));
        }
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        room.mls = None;
        room.mls_generation = room.mls_generation.saturating_add(1);
        let generation = room.mls_generation;
        for &id in &room.join_order {
            out.push(Effect::Send(
                ConnId(id.0),
                ServerMessage::MlsReset {
                    by: conn.participant(),
                    generation,
                },
            ));
        }
    }

    fn raise_hand(&mut self, conn: ConnId, room_id: &RoomId, raised: bool, out: &mut Vec<Effect>) {
        let me = conn.participant();
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(p) = room.participants.get_mut(&me) else {
            return;
        };
        if p.hand_raised == raised {
            return;
        }
        p.hand_raised = raised;
        let info = room.info(me).expect("present");
        // Everyone, including the sender, sees the new state.
        for &id in &room.join_order {
            out.push(Effect::Send(
                ConnId(id.0),
                ServerMessage::ParticipantUpdated {
                    participant: info.clone(),
                },
            ));
        }
    }

    /// Start or stop forwarding video to the sender. Only the sender's own state changes;
    /// repeating the current state changes nothing.
    fn receive_video(
        &mut self,
        conn: ConnId,
        room_id: &RoomId,
        enabled: bool,
        out: &mut Vec<Effect>,
    ) {
        let me = conn.participant();
        let Some(p) = self
            .rooms
            .get_mut(room_id)
            .and_then(|r| r.participants.get_mut(&me))
        else {
            return;
        };
        if p.receive_video == enabled {
            return;
        }
        p.receive_video = enabled;
        out.push(Effect::Media(MediaCommand::SetReceiveVideo {
            participant: me,
            enabled,
        }));
    }

    fn leave(&mut self, conn: ConnId, reason: LeaveReason, out: &mut Vec<Effect>) {
        let Some(room_id) = self.conns.get_mut(&conn).and_then(|c| c.room.take()) else {
            return;
        };
        let me = conn.participant();
        let Some(room) = self.rooms.get_mut(&room_id) else {
            return;
        };
        let Some(p) = room.participants.remove(&me) else {
            return;
        };
        room.join_order.retain(|id| *id != me);
        self.participants -= 1;
        for &other in &room.join_order {
            for &source in &p.sources {
                out.push(Effect::Media(MediaCommand::Unsubscribe {
                    subscriber: other,
                    publisher: me,
                    source,
                }));
            }
            out.push(Effect::Send(
                ConnId(other.0),
                ServerMessage::ParticipantLeft { id: me, reason },
            ));
        }
        out.push(Effect::Media(MediaCommand::RemoveParticipant {
            participant: me,
        }));
        out.push(Effect::Log(LogRecord::Left { conn }));
        if room.is_empty() {
            self.rooms.remove(&room_id);
        }
    }
}

/// `Camera` as `camera`, for log details.
fn debug_lower(v: &impl std::fmt::Debug) -> String {
    format!("{v:?}").to_lowercase()
}

/// The permissions that are on, comma-separated.
fn allowed_list(p: &conclave_proto::Permissions) -> String {
    let all = [
        ("unmute", p.unmute),
        ("camera", p.camera),
        ("screen", p.screen),
        ("chat", p.chat),
        ("files", p.files),
        ("record", p.record),
    ];
    let on: Vec<&str> = all.iter().filter(|(_, v)| *v).map(|(k, _)| *k).collect();
    on.join(",")
}

/// Trim and check a display name: 1..=max characters, no control characters.
fn validate_name(name: &str, max: usize) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("a display name is required".into());
    }
    let n = name.chars().count();
    if n > max {
        return Err(format!(
            "a display name has at most {max} characters, this one has {n}"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("a display name must not contain control characters".into());
    }
    Ok(name.to_owned())
}

/// At most `max` characters of `s`.
fn truncate_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Whether `value` is non-empty standard base64 (with padding) of at most `max` characters;
/// the reason when not.
fn check_base64(value: &str, max: usize) -> Result<(), String> {
    let n = value.len();
    if n == 0 || n > max {
        return Err(format!(
            "has 1 to {max} base64 characters, this one has {n}"
        ));
    }
    if !n.is_multiple_of(4) {
        return Err(format!(
            "is not base64: {n} characters is not a multiple of 4"
        ));
    }
    let body = value.trim_end_matches('=');
    if n - body.len() > 2 {
        return Err("is not base64: too much padding".into());
    }
    if let Some(bad) = body
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '+' || *c == '/'))
    {
        return Err(format!("is not base64: it contains {bad:?}"));
    }
    Ok(())
}
