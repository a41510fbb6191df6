//! What goes in and out of the room core: inputs from the edges, effects for them, media
//! commands, log records, and the policy it is built with.

use super::*;

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

/// A signalling connection, named by the edge. When the connection joins, its participant ID
/// is the same number, so the edge chooses it at random.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl ConnId {
    pub(crate) fn participant(self) -> ParticipantId {
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
