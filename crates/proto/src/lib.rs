//! Conclave signalling protocol, version 1.
//!
//! One WebSocket per participant carries JSON text frames. Every message is an object with a
//! `type` field. The server is the only SDP offerer (see `docs/architecture.md`); the client
//! only ever answers. Every message here is documented with an example in `docs/protocol.md`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

mod error;
mod ids;

pub use error::{ErrorCode, ProtocolError};
pub use ids::{ParticipantId, RoomId, RoomIdError};

/// The protocol version this crate speaks. `join` carries it; a mismatch is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// A media source a participant can publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Audio from the microphone.
    Microphone,
    /// Video from the camera.
    Camera,
    /// A shared screen or window (video, at most `settings.screen_share_fps` frames/s).
    Screen,
}

impl Source {
    /// Every source, in the order their upstream slots appear in the first offer.
    pub const ALL: [Source; 3] = [Source::Microphone, Source::Camera, Source::Screen];

    /// Whether this source carries audio (otherwise video).
    pub fn is_audio(self) -> bool {
        matches!(self, Source::Microphone)
    }
}

/// Meeting settings from the server's configuration that every client applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingSettings {
    /// Highest camera video the client sends, in pixels (e.g. 240, 360, 720).
    pub max_video_height: u32,
    /// Frame-rate cap for screen sharing.
    pub screen_share_fps: u32,
    /// Join in audio-only mode (no camera offered) by default.
    pub audio_only: bool,
    /// Camera video reaches each participant from at most this many others: those who spoke
    /// most recently (join order until someone speaks). 0 means no limit. Screen shares and
    /// audio are always forwarded.
    #[serde(default)]
    pub last_n: u32,
}

impl Default for MeetingSettings {
    fn default() -> Self {
        MeetingSettings {
            max_video_height: 720,
            screen_share_fps: 5,
            audio_only: false,
            last_n: 0,
        }
    }
}

/// Messages from the client to the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Enter a room. Must be the first message; exactly once per connection.
    Join {
        /// Protocol version the client speaks; must equal [`PROTOCOL_VERSION`].
        v: u32,
        /// Room to join (created on first join).
        room: String,
        /// Display name shown to the others.
        name: String,
    },
    /// The client's SDP answer to the server's latest `offer`.
    Answer {
        /// SDP text.
        sdp: String,
    },
    /// The client now sends media on the upstream slot of `source`.
    Publish {
        /// Which source starts.
        source: Source,
    },
    /// The client stopped sending media on `source`.
    Unpublish {
        /// Which source stops.
        source: Source,
    },
    /// Leave the room; the server closes the connection afterwards.
    Leave {},
    /// A chat message to the room, or with `to` to one participant only. The server relays
    /// it and never stores it.
    Chat {
        /// The message (1 to `limits.max_chat_chars` characters).
        text: String,
        /// Addressee of a private message; absent for the whole room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<ParticipantId>,
    },
    /// Raise or lower one's hand.
    RaiseHand {
        /// Whether the hand is up.
        raised: bool,
    },
    /// Stop (`false`) or resume (`true`) receiving all video, camera and screen, e.g. for an
    /// audio-only mode. Audio keeps flowing. Initially `true`.
    ReceiveVideo {
        /// Whether video is forwarded to this participant.
        enabled: bool,
    },
}

impl ClientMessage {
    /// The `type` string of this message, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Join { .. } => "join",
            ClientMessage::Answer { .. } => "answer",
            ClientMessage::Publish { .. } => "publish",
            ClientMessage::Unpublish { .. } => "unpublish",
            ClientMessage::Leave {} => "leave",
            ClientMessage::Chat { .. } => "chat",
            ClientMessage::RaiseHand { .. } => "raise_hand",
            ClientMessage::ReceiveVideo { .. } => "receive_video",
        }
    }
}

/// A participant as the others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// Server-assigned identifier, unique within the server's lifetime.
    pub id: ParticipantId,
    /// Display name.
    pub name: String,
    /// Sources this participant currently publishes.
    pub sources: Vec<Source>,
    /// Whether their hand is raised.
    #[serde(default)]
    pub hand_raised: bool,
}

/// What one downstream m-line (by `mid`) carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// The publishing participant.
    pub participant: ParticipantId,
    /// Which of their sources.
    pub source: Source,
}

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// They said `leave`.
    Left,
    /// Their WebSocket closed without `leave`.
    Disconnected,
    /// Nothing was heard from them (signalling or media) for the configured timeout.
    Timeout,
    /// The server removed them after a protocol error it cannot recover from.
    Error,
}

/// Messages from the server to the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Answer to `join`: you are in.
    Joined {
        /// Protocol version of the server.
        v: u32,
        /// The room joined.
        room: RoomId,
        /// Your participant ID.
        id: ParticipantId,
        /// Everyone else already in the room.
        participants: Vec<ParticipantInfo>,
        /// Settings the client applies (bandwidth, screen sharing).
        settings: MeetingSettings,
    },
    /// Someone entered the room.
    ParticipantJoined {
        /// Who.
        participant: ParticipantInfo,
    },
    /// Someone's published sources changed.
    ParticipantUpdated {
        /// Their new state.
        participant: ParticipantInfo,
    },
    /// Someone left the room.
    ParticipantLeft {
        /// Who.
        id: ParticipantId,
        /// Why.
        reason: LeaveReason,
    },
    /// A new SDP offer; the client must answer with `answer` before anything else changes.
    Offer {
        /// SDP text.
        sdp: String,
        /// Upstream m-lines: attach the local track of each source to the transceiver with
        /// this mid and set it to `sendonly`.
        slots: BTreeMap<Source, String>,
        /// Downstream m-lines: what each receiving mid carries. Mids not listed are unused.
        tracks: BTreeMap<String, TrackInfo>,
    },
    /// A chat message relayed from another participant.
    Chat {
        /// The sender.
        from: ParticipantId,
        /// The message.
        text: String,
        /// Whether it was sent to you alone.
        private: bool,
    },
    /// A request failed. Fatal errors are followed by the server closing the socket.
    Error(ProtocolError),
    /// The server ends this participant's session (the socket closes next).
    Bye {
        /// Why.
        reason: LeaveReason,
    },
}

impl ServerMessage {
    /// Build an `error` message.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error(ProtocolError::new(code, message))
    }
}

/// Parse one client text frame. Distinguishes malformed JSON from a well-formed message of
/// an unknown type and from a known type with bad fields, so each gets its own error code.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ProtocolError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ProtocolError::new(ErrorCode::BadJson, format!("not valid JSON: {e}")))?;
    let Some(obj) = value.as_object() else {
        return Err(ProtocolError::new(
            ErrorCode::BadJson,
            "a message must be a JSON object",
        ));
    };
    let Some(kind) = obj.get("type").and_then(|t| t.as_str()) else {
        return Err(ProtocolError::new(
            ErrorCode::BadMessage,
            "a message needs a string field \"type\"",
        ));
    };
    const KNOWN: [&str; 8] = [
        "join",
        "answer",
        "publish",
        "unpublish",
        "leave",
        "chat",
        "raise_hand",
        "receive_video",
    ];
    let Some(kind) = KNOWN.iter().copied().find(|k| *k == kind) else {
        let mut shown: String = kind.chars().take(40).collect();
        if shown.len() < kind.len() {
            shown.push('…');
        }
        return Err(ProtocolError::new(
            ErrorCode::UnknownType,
            format!("unknown message type \"{shown}\""),
        ));
    };
    serde_json::from_value(value).map_err(|e| {
        ProtocolError::new(
            ErrorCode::BadMessage,
            format!("bad \"{kind}\" message: {e}"),
        )
    })
}

#[cfg(test)]
mod tests;
