//! The MLS delivery service: group creation, commit ordering, external joins, reset.

use super::*;

impl RoomCore {
    /// The MLS delivery service: `mls_group` (no `epoch`) creates the group, `mls_commit`
    /// advances it by one epoch. First come wins; the loser gets the current state back.
    /// Nothing here reads MLS: the clients verify every commit themselves. `commit` is the
    /// epoch it is made from and the commit (`mls_commit`); `None` for `mls_group`.
    pub(super) fn mls(
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
    pub(super) fn mls_reset(&mut self, conn: ConnId, room_id: &RoomId, out: &mut Vec<Effect>) {
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
}
