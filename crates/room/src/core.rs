//! [`RoomCore`]: rooms, participants, published sources, and who receives what.
//!
//! This file holds the state and the dispatch of messages; each concern is a module below:
//! [`admission`] (join, lobby, leave), [`moderation`], [`media`] (sources, video
//! selection, hands), [`chat`], [`files`], [`e2ee`] (MLS delivery), and [`io`] (inputs and
//! effects).

mod admission;
mod chat;
mod e2ee;
mod files;
mod io;
mod media;
mod moderation;

pub use io::*;

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

/// Most addresses whose join rate is tracked at once (oldest dropped first).
const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// What a guest is told while waiting, whatever the reason (no host yet, lobby, password,
/// lock): the same words, so that a prober cannot tell the cases apart.
const WAIT_MESSAGE: &str = "Please wait: a moderator will let you in. If you have the room \
password, you can enter it instead.";

#[derive(Debug)]
struct Conn {
    bucket: TokenBucket,
    /// File bytes this connection may send (`limits.file_bytes_per_second`).
    file_bucket: TokenBucket,
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
    /// File transfers under way, by the sender's transfer ID.
    files: BTreeMap<String, files::Transfer>,
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
            files: BTreeMap::new(),
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
                let file_rate = self.limits.file_bytes_per_second as f64;
                let file_bucket = TokenBucket::new(file_rate, 2.0 * file_rate, now);
                self.conns.insert(
                    conn,
                    Conn {
                        bucket,
                        file_bucket,
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
                // File chunks are limited by bytes, not messages; one over the byte rate
                // counts as a message (so a flood of them is limited twice) and is refused.
                if let ClientMessage::FileChunk { file, data, .. } = &msg
                    && !self.take_file_bytes(now, conn, data.len())
                {
                    if self.admit(now, conn, &mut out) {
                        self.file_over_rate(conn, file, &mut out);
                    }
                    return out;
                }
                // Answers are exempt: the server sends at most one offer at a time, so their
                // number is bounded by the server itself, and dropping one would break the
                // session. An answer without an outstanding offer is refused before parsing.
                let exempt = matches!(
                    msg,
                    ClientMessage::Answer { .. } | ClientMessage::FileChunk { .. }
                );
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
            (
                ClientMessage::FileOffer {
                    file,
                    size,
                    text,
                    ciphertext,
                    to,
                },
                Some(room),
            ) => {
                if self.allowed(conn, &room, Action::ShareFile, out) {
                    self.file_offer(conn, &room, file, size, text, ciphertext, to, out)
                }
            }
            (
                ClientMessage::FileChunk {
                    file,
                    seq,
                    data,
                    last,
                },
                Some(room),
            ) => self.file_chunk(conn, &room, file, seq, data, last, out),
            (ClientMessage::FileCancel { file }, Some(room)) => {
                self.file_cancel(conn, &room, &file, out)
            }
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
