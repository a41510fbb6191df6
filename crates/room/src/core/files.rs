//! File transfers: offers, chunks, cancels. The server relays them and keeps, per transfer,
//! only who sends, who receives and how many bytes have passed; the content is encrypted by
//! the pages (docs/architecture.md, "Collaboration inside the encrypted meeting").

use conclave_proto::{FILE_CHUNK_BYTES, FileEnd};

use super::*;

/// A transfer under way in a room.
#[derive(Debug)]
pub(super) struct Transfer {
    from: ParticipantId,
    /// Fixed at the offer; a recipient who cancels or leaves is dropped.
    to: BTreeSet<ParticipantId>,
    size: u64,
    /// Plaintext bytes relayed so far (each chunk's bytes minus its 16-byte tag).
    sent: u64,
    next_seq: u32,
}

/// The AES-GCM tag each chunk carries.
const TAG_BYTES: u64 = 16;
/// What a chunk costs in the byte bucket at least, so that tiny chunks are limited too.
const MIN_CHUNK_COST: usize = 4096;

/// Whether a transfer ID is 16 to 64 characters of `A-Z a-z 0-9 _ -`.
fn valid_file_id(id: &str) -> bool {
    (16..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Bytes that valid base64 of `chars` characters (padding included) decodes to.
fn decoded_len(b64: &str) -> u64 {
    let pad = b64.len() - b64.trim_end_matches('=').len();
    (b64.len() / 4 * 3).saturating_sub(pad) as u64
}

impl RoomCore {
    /// Take a chunk's bytes from the connection's file-byte bucket.
    pub(super) fn take_file_bytes(&mut self, now: Instant, conn: ConnId, chars: usize) -> bool {
        let cost = chars.max(MIN_CHUNK_COST) as f64;
        self.conns
            .get_mut(&conn)
            .is_some_and(|c| c.file_bucket.try_take_n(now, cost))
    }

    /// A `file_offer` (the `files` permission is checked): register the transfer and relay
    /// the offer to the recipients.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn file_offer(
        &mut self,
        conn: ConnId,
        room_id: &RoomId,
        file: String,
        size: u64,
        text: Option<String>,
        ciphertext: Option<String>,
        to: Option<ParticipantId>,
        out: &mut Vec<Effect>,
    ) {
        let me = conn.participant();
        let refuse = |out: &mut Vec<Effect>, message: String| {
            out.push(Effect::Send(
                conn,
                ServerMessage::error(ErrorCode::InvalidFile, message),
            ));
        };
        let max = self.limits.max_file_bytes;
        if max == 0 {
            return out.push(Effect::Send(
                conn,
                ServerMessage::error(ErrorCode::Forbidden, "file sharing is off on this server"),
            ));
        }
        if !valid_file_id(&file) {
            return refuse(
                out,
                "`file` is 16 to 64 characters of A-Z, a-z, 0-9, _ and -".into(),
            );
        }
        if size == 0 || size > max {
            return refuse(
                out,
                format!("a file has 1 to {max} bytes; this one has {size}"),
            );
        }
        let limit = self.limits.max_chat_ciphertext_chars();
        if let Err(e) =
            self.check_sealed(text.as_deref(), ciphertext.as_deref(), limit, "file offer")
        {
            return out.push(Effect::Send(conn, ServerMessage::Error(e)));
        }
        if text
            .as_ref()
            .is_some_and(|t| t.is_empty() || t.len() > limit)
        {
            return refuse(out, format!("a file offer's `text` has 1 to {limit} bytes"));
        }
        let in_flight = self.limits.max_files_in_flight;
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        if room.files.contains_key(&file) {
            return refuse(
                out,
                format!("a transfer `{file}` is already under way in this room"),
            );
        }
        if room.files.values().filter(|t| t.from == me).count() >= in_flight {
            return refuse(
                out,
                format!(
                    "at most {in_flight} files may be sent at the same time; wait for one to finish"
                ),
            );
        }
        let recipients: BTreeSet<ParticipantId> = match to {
            Some(addressee) if addressee == me || !room.participants.contains_key(&addressee) => {
                return out.push(Effect::Send(
                    conn,
                    ServerMessage::error(
                        ErrorCode::UnknownParticipant,
                        format!("{addressee} is not another participant of this room"),
                    ),
                ));
            }
            Some(addressee) => BTreeSet::from([addressee]),
            None => room
                .join_order
                .iter()
                .copied()
                .filter(|id| *id != me)
                .collect(),
        };
        if recipients.is_empty() {
            return refuse(out, "nobody else is in the room to receive the file".into());
        }
        for &id in &recipients {
            out.push(Effect::Send(
                ConnId(id.0),
                ServerMessage::FileOffer {
                    from: me,
                    file: file.clone(),
                    size,
                    text: text.clone(),
                    ciphertext: ciphertext.clone(),
                    private: to.is_some(),
                },
            ));
        }
        room.files.insert(
            file,
            Transfer {
                from: me,
                to: recipients,
                size,
                sent: 0,
                next_seq: 0,
            },
        );
    }

    /// A `file_chunk` (its bytes already taken from the bucket): checked against the
    /// transfer and relayed. Any refusal of a chunk of a transfer of ours ends it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn file_chunk(
        &mut self,
        conn: ConnId,
        room_id: &RoomId,
        file: String,
        seq: u32,
        data: String,
        last: bool,
        out: &mut Vec<Effect>,
    ) {
        let me = conn.participant();
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let Some(t) = room.files.get(&file).filter(|t| t.from == me) else {
            return out.push(Effect::Send(
                conn,
                ServerMessage::error(
                    ErrorCode::InvalidFile,
                    format!(
                        "no transfer `{}` of yours is under way",
                        truncate_chars(&file, 64)
                    ),
                ),
            ));
        };
        let p = &room.participants[&me];
        if let Err(e) = authorize(p.role, &p.denied, &room.state, Action::ShareFile) {
            out.push(Effect::Send(conn, ServerMessage::Error(e)));
            return self.end_transfer(room_id, &file, me, FileEnd::Refused, out);
        }
        let max_chars = (FILE_CHUNK_BYTES + TAG_BYTES as usize).div_ceil(3) * 4;
        let problem = if seq != t.next_seq {
            Some(format!(
                "chunk {seq} of `{file}` out of order: expected {}",
                t.next_seq
            ))
        } else if let Err(why) = check_base64(&data, max_chars) {
            Some(format!("chunk `data` {why}"))
        } else {
            let bytes = decoded_len(&data);
            let plain = bytes.saturating_sub(TAG_BYTES);
            let sent = t.sent + plain;
            if bytes <= TAG_BYTES {
                Some("a chunk holds at least one byte besides its 16-byte tag".into())
            } else if sent > t.size {
                Some(format!(
                    "`{file}` is longer than the {} bytes offered",
                    t.size
                ))
            } else if last && sent != t.size {
                Some(format!(
                    "`{file}` ends after {sent} bytes, but {} were offered",
                    t.size
                ))
            } else {
                None
            }
        };
        if let Some(message) = problem {
            out.push(Effect::Send(
                conn,
                ServerMessage::error(ErrorCode::InvalidFile, message),
            ));
            return self.end_transfer(room_id, &file, me, FileEnd::Refused, out);
        }
        for &id in t.to.iter().filter(|id| room.participants.contains_key(id)) {
            out.push(Effect::Send(
                ConnId(id.0),
                ServerMessage::FileChunk {
                    from: me,
                    file: file.clone(),
                    seq,
                    data: data.clone(),
                    last,
                },
            ));
        }
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        if last {
            room.files.remove(&file);
        } else if let Some(t) = room.files.get_mut(&file) {
            t.sent += decoded_len(&data) - TAG_BYTES;
            t.next_seq += 1;
        }
    }

    /// A chunk over `limits.file_bytes_per_second` (already admitted as a message): refused,
    /// and the transfer, when it is ours, ends.
    pub(super) fn file_over_rate(&mut self, conn: ConnId, file: &str, out: &mut Vec<Effect>) {
        out.push(Effect::Send(
            conn,
            ServerMessage::error(
                ErrorCode::RateLimited,
                format!(
                    "files may be sent at {} bytes per second; the transfer was stopped",
                    self.limits.file_bytes_per_second
                ),
            ),
        ));
        let me = conn.participant();
        let Some(room_id) = self.conns.get(&conn).and_then(|c| c.room.clone()) else {
            return;
        };
        let ours = self
            .rooms
            .get(&room_id)
            .and_then(|r| r.files.get(file))
            .is_some_and(|t| t.from == me);
        if ours {
            self.end_transfer(&room_id, file, me, FileEnd::Refused, out);
        }
    }

    /// `file_cancel`: the sender ends the transfer; a recipient leaves it (and when the last
    /// one does, the sender hears so).
    pub(super) fn file_cancel(
        &mut self,
        conn: ConnId,
        room_id: &RoomId,
        file: &str,
        out: &mut Vec<Effect>,
    ) {
        let me = conn.participant();
        let Some(t) = self.rooms.get(room_id).and_then(|r| r.files.get(file)) else {
            return out.push(Effect::Send(
                conn,
                ServerMessage::error(
                    ErrorCode::InvalidFile,
                    format!("no transfer `{}` is under way", truncate_chars(file, 64)),
                ),
            ));
        };
        if t.from == me {
            self.end_transfer(room_id, file, me, FileEnd::Cancelled, out);
        } else if t.to.contains(&me) {
            self.leave_transfer(room_id, file, me, out);
        } else {
            out.push(Effect::Send(
                conn,
                ServerMessage::error(
                    ErrorCode::InvalidFile,
                    format!("transfer `{file}` is not for you"),
                ),
            ));
        }
    }

    /// Someone leaves the room: their transfers end, and they leave the ones to them.
    pub(super) fn files_on_leave(
        &mut self,
        room_id: &RoomId,
        who: ParticipantId,
        out: &mut Vec<Effect>,
    ) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let (own, theirs): (Vec<String>, Vec<String>) = {
            let own = room
                .files
                .iter()
                .filter(|(_, t)| t.from == who)
                .map(|(id, _)| id.clone())
                .collect();
            let theirs = room
                .files
                .iter()
                .filter(|(_, t)| t.to.contains(&who))
                .map(|(id, _)| id.clone())
                .collect();
            (own, theirs)
        };
        for file in own {
            self.end_transfer(room_id, &file, who, FileEnd::Left, out);
        }
        for file in theirs {
            self.leave_transfer(room_id, &file, who, out);
        }
    }

    /// A recipient is out of a transfer; the sender hears when nobody is left to receive it.
    fn leave_transfer(
        &mut self,
        room_id: &RoomId,
        file: &str,
        who: ParticipantId,
        out: &mut Vec<Effect>,
    ) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(t) = room.files.get_mut(file) else {
            return;
        };
        t.to.remove(&who);
        if t.to.iter().any(|id| room.participants.contains_key(id)) {
            return;
        }
        let from = t.from;
        room.files.remove(file);
        out.push(Effect::Send(
            ConnId(from.0),
            ServerMessage::FileCancel {
                file: file.to_owned(),
                by: who,
                reason: FileEnd::Cancelled,
            },
        ));
    }

    /// End a transfer for everyone in it: its recipients, and its sender unless the sender
    /// ended it or left.
    fn end_transfer(
        &mut self,
        room_id: &RoomId,
        file: &str,
        by: ParticipantId,
        reason: FileEnd,
        out: &mut Vec<Effect>,
    ) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        let Some(t) = room.files.remove(file) else {
            return;
        };
        let cancel = || ServerMessage::FileCancel {
            file: file.to_owned(),
            by,
            reason,
        };
        for &id in t.to.iter().filter(|id| room.participants.contains_key(id)) {
            out.push(Effect::Send(ConnId(id.0), cancel()));
        }
        if reason == FileEnd::Refused {
            out.push(Effect::Send(ConnId(t.from.0), cancel()));
        }
    }
}
