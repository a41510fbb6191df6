//! Protocol errors: a stable machine-readable code plus a sentence for humans.

use serde::{Deserialize, Serialize};

/// Stable error codes. Clients branch on these; the strings never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not a JSON object.
    BadJson,
    /// Valid JSON, but a known message with missing, extra or ill-typed fields.
    BadMessage,
    /// Valid JSON object whose `type` the server does not know.
    UnknownType,
    /// The frame exceeds `limits.max_message_bytes`. Fatal: the socket closes.
    MessageTooLarge,
    /// A binary frame; the protocol is text only.
    BinaryFrame,
    /// A message other than `join` before `join`.
    NotJoined,
    /// A second `join` on the same connection.
    AlreadyJoined,
    /// `join` with a protocol version the server does not speak.
    UnsupportedVersion,
    /// The room ID does not match the required form.
    InvalidRoom,
    /// The display name is empty, too long or has control characters.
    InvalidName,
    /// The SDP answer could not be parsed or does not fit the offer.
    InvalidSdp,
    /// A chat message that is empty or longer than `limits.max_chat_chars`.
    InvalidChat,
    /// A file message (`file_offer`, `file_chunk`, `file_cancel`) that is malformed, too
    /// large, out of order, or for a transfer that does not exist (or is not yours).
    InvalidFile,
    /// An E2EE message (`mls_group`, `mls_commit`, encrypted chat) that is malformed or too
    /// large, or plain-text chat in a room that requires end-to-end encryption.
    InvalidE2ee,
    /// An E2EE message where the server's `[meeting] e2ee` is `off`.
    E2eeOff,
    /// A private message to someone who is not in the room.
    UnknownParticipant,
    /// An `answer` when no offer is outstanding.
    NoOfferPending,
    /// The room has `limits.max_participants_per_room` participants.
    RoomFull,
    /// The server has `limits.max_rooms` rooms or `limits.max_participants` participants.
    ServerFull,
    /// The client sends faster than `limits.messages_per_second`.
    RateLimited,
    /// Your role or the room's permissions do not allow this request. Nothing changed.
    Forbidden,
    /// The room needs a password (only said where it does not reveal that a room exists).
    PasswordRequired,
    /// The password is wrong (or, for a guest in `hosts`/`closed` mode, the room does not
    /// exist: the answers are the same on purpose).
    WrongPassword,
    /// Too many attempts (joins or failed passwords) from this address or at this room; the
    /// message says when to try again.
    TooManyAttempts,
    /// You were banned from this room.
    Banned,
    /// The room is locked.
    RoomLocked,
    /// This server or room requires signing in.
    SignInRequired,
    /// The token is invalid, expired or not for this room; the message says which.
    InvalidToken,
    /// A new room password does not meet the policy.
    InvalidPassword,
    /// The room is reserved and its window has not begun; the message says when it opens.
    NotOpenYet,
    /// The server failed; the message says what.
    Internal,
}

impl ErrorCode {
    /// Whether the server closes the connection after sending this error.
    pub fn is_fatal(self) -> bool {
        matches!(self, ErrorCode::MessageTooLarge | ErrorCode::Internal)
    }
}

/// An error as sent on the wire: `{"type":"error","code":"...","message":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolError {
    /// Stable code.
    pub code: ErrorCode,
    /// One human sentence.
    pub message: String,
}

impl ProtocolError {
    /// Build an error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for ProtocolError {}
