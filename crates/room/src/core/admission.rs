//! Joining and leaving: admission (hosts, lobby, passwords, locks, reservations), entering
//! a room, the lobby queue, and leaving or being sent away.

use super::*;

impl RoomCore {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn join(
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
    pub(super) fn open_room(&mut self, room_id: &RoomId) {
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
    pub(super) fn admission(
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

    pub(super) fn new_room_allowed(&mut self, now: Instant, addr: IpAddr) -> bool {
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
    pub(super) fn enter(
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
                    max_file_bytes: self.limits.max_file_bytes,
                    file_bytes_per_second: self.limits.file_bytes_per_second,
                    max_files_in_flight: self.limits.max_files_in_flight,
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
    pub(super) fn withdraw(&mut self, conn: ConnId, out: &mut Vec<Effect>) {
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
    pub(super) fn admit_waiter(
        &mut self,
        room_id: &RoomId,
        who: ParticipantId,
        out: &mut Vec<Effect>,
    ) {
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

    pub(super) fn leave(&mut self, conn: ConnId, reason: LeaveReason, out: &mut Vec<Effect>) {
        let Some(room_id) = self.conns.get_mut(&conn).and_then(|c| c.room.take()) else {
            return;
        };
        let me = conn.participant();
        self.files_on_leave(&room_id, me, out);
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

    /// End a participant's session for a moderation reason: `bye`, close, and leave.
    pub(super) fn expel(
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
    pub(super) fn turn_away(
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
}
