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
        let max = self.limits.max_chat_ciphertext_chars();
        if let Err(e) = self.check_sealed(text.as_deref(), ciphertext.as_deref(), max, "chat") {
            return out.push(Effect::Send(conn, ServerMessage::Error(e)));
        }
        if let Some(text) = &text {
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

    /// What chat and file offers have in common: exactly one of `text` (rooms without E2EE)
    /// and `ciphertext` (an MLS application message of at most `max` base64 characters, in
    /// rooms with E2EE).
    pub(super) fn check_sealed(
        &self,
        text: Option<&str>,
        ciphertext: Option<&str>,
        max: usize,
        what: &str,
    ) -> Result<(), ProtocolError> {
        let e2ee = self.settings.e2ee == E2eeMode::Required;
        let (code, message) = match (text, ciphertext) {
            (Some(_), Some(_)) | (None, None) => (
                if what == "chat" {
                    ErrorCode::InvalidChat
                } else {
                    ErrorCode::InvalidFile
                },
                format!("a {what} message has exactly one of `text` and `ciphertext`"),
            ),
            (Some(_), None) if e2ee => (
                ErrorCode::InvalidE2ee,
                format!(
                    "this server requires end-to-end encryption: send the {what} as \
                     `ciphertext`, never as `text`"
                ),
            ),
            (None, Some(_)) if !e2ee => (
                ErrorCode::E2eeOff,
                format!("end-to-end encryption is off on this server: send the {what} as `text`"),
            ),
            (Some(_), None) => return Ok(()),
            (None, Some(c)) => match check_base64(c, max) {
                Ok(()) => return Ok(()),
                Err(why) => (ErrorCode::InvalidE2ee, format!("{what} `ciphertext` {why}")),
            },
        };
        Err(ProtocolError::new(code, message))
    }
}
