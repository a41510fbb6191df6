//! Identifiers on the wire.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Minimum room ID length: 16 base64url characters carry 96 bits.
pub const ROOM_ID_MIN_LEN: usize = 16;
/// Maximum room ID length.
pub const ROOM_ID_MAX_LEN: usize = 64;

/// A room identifier: 16 to 64 characters from `A-Z a-z 0-9 _ -`. The minimum length makes
/// room IDs unguessable when they are random (the web client makes 22 characters, 132 bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomId(String);

/// Why a string is not a room ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomIdError {
    /// Fewer than [`ROOM_ID_MIN_LEN`] or more than [`ROOM_ID_MAX_LEN`] characters.
    Length(usize),
    /// A character outside `A-Z a-z 0-9 _ -`.
    Character,
}

impl fmt::Display for RoomIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomIdError::Length(n) => write!(
                f,
                "a room ID has {ROOM_ID_MIN_LEN} to {ROOM_ID_MAX_LEN} characters, this one has {n}"
            ),
            RoomIdError::Character => {
                write!(f, "a room ID may only contain A-Z, a-z, 0-9, '_' and '-'")
            }
        }
    }
}

impl RoomId {
    /// Validate and wrap a room ID.
    pub fn parse(s: &str) -> Result<RoomId, RoomIdError> {
        let n = s.chars().count();
        if !(ROOM_ID_MIN_LEN..=ROOM_ID_MAX_LEN).contains(&n) {
            return Err(RoomIdError::Length(n));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(RoomIdError::Character);
        }
        Ok(RoomId(s.to_owned()))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A participant identifier assigned by the server (16 hex digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(pub u64);

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for ParticipantId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ParticipantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() != 16 {
            return Err(serde::de::Error::custom(
                "a participant ID has 16 hex digits",
            ));
        }
        u64::from_str_radix(&s, 16)
            .map(ParticipantId)
            .map_err(|_| serde::de::Error::custom("a participant ID has 16 hex digits"))
    }
}
