//! Moderator actions: who may do what to whom, carrying it out, and the log record of it.

use super::*;

impl RoomCore {
    /// A moderator action (or a client message that needs one).
    pub(super) fn moderate(
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
    pub(super) fn carry_out(
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
    pub(super) fn moderation_record(
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
    pub(super) fn end_meeting(&mut self, room_id: &RoomId, out: &mut Vec<Effect>) {
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
    pub(super) fn deny_source(
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
    pub(super) fn enforce_permissions(&mut self, room_id: &RoomId, out: &mut Vec<Effect>) {
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
}
