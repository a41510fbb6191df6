//! [`RoomCore`]: rooms, participants, published sources, and who receives what.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use conclave_proto::{
    ClientMessage, ErrorCode, LeaveReason, PROTOCOL_VERSION, ParticipantId, ParticipantInfo,
    ProtocolError, RoomId, ServerMessage, Source,
};

use crate::{Limits, MeetingSettings, TokenBucket};

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
    /// A WebSocket connection opened.
    Connected(ConnId),
    /// A parsed message arrived.
    Message(ConnId, ClientMessage),
    /// A frame arrived that could not be parsed; the core decides what the client hears
    /// (rate limiting applies to garbage too).
    Malformed(ConnId, ProtocolError),
    /// The connection is gone (socket closed, timed out, or a fatal error at the edge).
    Closed(ConnId, LeaveReason),
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
}

#[derive(Debug)]
struct Conn {
    bucket: TokenBucket,
    /// When we last told this connection it is rate limited (to not answer every dropped
    /// message with an error).
    last_rate_error: Option<Instant>,
    room: Option<RoomId>,
}

#[derive(Debug)]
struct Participant {
    name: String,
    sources: BTreeSet<Source>,
    hand_raised: bool,
    /// Whether video is forwarded to this participant (`receive_video`).
    receive_video: bool,
}

#[derive(Debug, Default)]
struct Room {
    /// Ordered by join so lists are stable.
    participants: BTreeMap<ParticipantId, Participant>,
    join_order: Vec<ParticipantId>,
}

impl Room {
    fn info(&self, id: ParticipantId) -> Option<ParticipantInfo> {
        self.participants.get(&id).map(|p| ParticipantInfo {
            id,
            name: p.name.clone(),
            sources: p.sources.iter().copied().collect(),
            hand_raised: p.hand_raised,
        })
    }
}

/// The whole conference state of one server.
#[derive(Debug)]
pub struct RoomCore {
    limits: Limits,
    settings: MeetingSettings,
    conns: HashMap<ConnId, Conn>,
    rooms: HashMap<RoomId, Room>,
    participants: usize,
}

impl RoomCore {
    /// An empty server.
    pub fn new(limits: Limits) -> Self {
        Self::with_settings(limits, MeetingSettings::default())
    }

    /// An empty server whose clients get `settings` on join.
    pub fn with_settings(limits: Limits, settings: MeetingSettings) -> Self {
        RoomCore {
            limits,
            settings,
            conns: HashMap::new(),
            rooms: HashMap::new(),
            participants: 0,
        }
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

    /// Participants of a room in join order, if it exists.
    pub fn room_participants(&self, room: &RoomId) -> Option<Vec<ParticipantInfo>> {
        let r = self.rooms.get(room)?;
        Some(r.join_order.iter().filter_map(|id| r.info(*id)).collect())
    }

    /// Feed one input; returns what the edges must do, in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Effect> {
        let mut out = Vec::new();
        match input {
            Input::Connected(conn) => {
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
                    },
                );
            }
            Input::Message(conn, msg) => {
                // Answers are exempt: the server sends at most one offer at a time, so their
                // number is bounded by the server itself, and dropping one would break the
                // session. An answer without an outstanding offer is refused before parsing.
                let exempt = matches!(msg, ClientMessage::Answer { .. });
                if exempt || self.admit(now, conn, &mut out) {
                    self.on_message(conn, msg, &mut out);
                }
            }
            Input::Malformed(conn, err) => {
                if self.admit(now, conn, &mut out) {
                    out.push(Effect::Send(conn, ServerMessage::Error(err)));
                }
            }
            Input::Closed(conn, reason) => {
                self.leave(conn, reason, &mut out);
                self.conns.remove(&conn);
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

    fn on_message(&mut self, conn: ConnId, msg: ClientMessage, out: &mut Vec<Effect>) {
        let joined = self.conns.get(&conn).and_then(|c| c.room.clone());
        match (msg, joined) {
            (ClientMessage::Join { v, room, name }, None) => self.join(conn, v, &room, &name, out),
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
                self.set_source(conn, &room, source, true, out)
            }
            (ClientMessage::Unpublish { source }, Some(room)) => {
                self.set_source(conn, &room, source, false, out)
            }
            (ClientMessage::Chat { text, to }, Some(room)) => self.chat(conn, &room, text, to, out),
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
                    },
                ));
                out.push(Effect::Close(conn));
            }
        }
    }

    fn join(&mut self, conn: ConnId, v: u32, room: &str, name: &str, out: &mut Vec<Effect>) {
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
        let name = match validate_name(name, self.limits.max_name_chars) {
            Ok(n) => n,
            Err(m) => return out.push(err(ErrorCode::InvalidName, m)),
        };
        if self.participants >= self.limits.max_participants {
            return out.push(err(
                ErrorCode::ServerFull,
                format!(
                    "the server has its maximum of {} participants",
                    self.limits.max_participants
                ),
            ));
        }
        let existing = self.rooms.get(&room_id);
        match existing {
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

        let me = conn.participant();
        let r = self.rooms.entry(room_id.clone()).or_default();
        let others: Vec<ParticipantInfo> =
            r.join_order.iter().filter_map(|id| r.info(*id)).collect();
        r.participants.insert(
            me,
            Participant {
                name,
                sources: BTreeSet::new(),
                hand_raised: false,
                receive_video: true,
            },
        );
        r.join_order.push(me);
        self.participants += 1;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.room = Some(room_id.clone());
        }
        let my_info = r.info(me).expect("just inserted");

        out.push(Effect::Send(
            conn,
            ServerMessage::Joined {
                v: PROTOCOL_VERSION,
                room: room_id.clone(),
                id: me,
                participants: others.clone(),
                settings: self.settings.clone(),
            },
        ));
        out.push(Effect::Media(MediaCommand::AddParticipant {
            participant: me,
            room: room_id,
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
    fn chat(
        &mut self,
        conn: ConnId,
        room_id: &RoomId,
        text: String,
        to: Option<ParticipantId>,
        out: &mut Vec<Effect>,
    ) {
        let me = conn.participant();
        let n = text.chars().count();
        if text.trim().is_empty() || n > self.limits.max_chat_chars {
            out.push(Effect::Send(
                conn,
                ServerMessage::error(
                    ErrorCode::InvalidChat,
                    format!(
                        "a chat message has 1 to {} characters, this one has {n}",
                        self.limits.max_chat_chars
                    ),
                ),
            ));
            return;
        }
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        match to {
            Some(addressee) if addressee == me || !room.participants.contains_key(&addressee) => {
                out.push(Effect::Send(
                    conn,
                    ServerMessage::error(
                        ErrorCode::UnknownParticipant,
                        format!("{addressee} is not another participant of this room"),
                    ),
                ));
            }
            Some(addressee) => out.push(Effect::Send(
                ConnId(addressee.0),
                ServerMessage::Chat {
                    from: me,
                    text,
                    private: true,
                },
            )),
            None => {
                for &other in room.join_order.iter().filter(|id| **id != me) {
                    out.push(Effect::Send(
                        ConnId(other.0),
                        ServerMessage::Chat {
                            from: me,
                            text: text.clone(),
                            private: false,
                        },
                    ));
                }
            }
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
        if room.participants.is_empty() {
            self.rooms.remove(&room_id);
        }
    }
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
