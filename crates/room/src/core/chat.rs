//! Plain-text chat (rooms without end-to-end encryption) and its limits.

use super::*;

impl RoomCore {
    /// Relay a chat message: to everyone else in the room, or to one addressee. Nothing is
    /// kept.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn chat(
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
}
