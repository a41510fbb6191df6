//! What a verified token says about its holder.

use std::time::{Duration, SystemTime};

use crate::error::{TokenError, quote};

/// Which rooms a token admits to (the `room` claim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomScope {
    /// `"room": "*"`: every room of this server.
    Any,
    /// Exactly this room ID. Compared byte for byte: Conclave room IDs are case-sensitive
    /// (Jitsi lower-cases room names; a token for `AbC` does not admit to `abc` here).
    Room(String),
}

/// A token that passed every check, as plain data for the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    /// `iss`: who issued the token (one of the configured issuers).
    pub issuer: String,
    /// `sub`. In Jitsi tokens this is the tenant or domain (often `"*"`), not the user: do
    /// not use it to tell users apart; see [`TokenIdentity::ban_key`].
    pub subject: Option<String>,
    /// `context.user.id`: the issuer's identifier for the user.
    pub user_id: Option<String>,
    /// `context.user.name`: display name (read-only in the meeting, R15).
    pub name: Option<String>,
    /// `context.user.email`.
    pub email: Option<String>,
    /// `context.user.avatar`: a URL. The web client never loads it (no third-party
    /// requests); carried for completeness.
    pub avatar: Option<String>,
    /// Join as moderator: `context.user.moderator` (true or "true"), top-level `moderator`,
    /// or `context.user.affiliation` of "owner", "moderator" or "teacher".
    pub moderator: bool,
    /// Skip the lobby: `context.user.lobby_bypass` (true, "true" or 1), as in the
    /// jitsi-contrib `token_lobby_bypass` plugin.
    pub lobby_bypass: bool,
    /// The `room` claim.
    pub room: RoomScope,
    /// `iat`, if present.
    pub issued_at: Option<SystemTime>,
    /// `exp` (always present: tokens without it are refused).
    pub expires_at: SystemTime,
}

impl TokenIdentity {
    /// A stable key for banning this token holder: issuer and `context.user.id`, or issuer
    /// and e-mail when there is no id. `None` when the token carries neither; ban that
    /// participant by session instead.
    pub fn ban_key(&self) -> Option<String> {
        let who = match (&self.user_id, &self.email) {
            (Some(id), _) => format!("id:{id}"),
            (None, Some(email)) => format!("email:{email}"),
            (None, None) => return None,
        };
        Some(format!("{}\u{1f}{who}", self.issuer))
    }

    /// Whether the token has expired at `now`, allowing `leeway` of clock skew. For
    /// `enforce_expiry_during_meeting`.
    pub fn is_expired(&self, now: SystemTime, leeway: Duration) -> bool {
        now > self.expires_at + leeway
    }

    /// Time left until the token expires (without leeway); zero once expired.
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_at
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    }
}

/// Check that `identity` admits to `room_id`: the `room` claim is `"*"` or exactly `room_id`.
pub fn check_room(identity: &TokenIdentity, room_id: &str) -> Result<(), TokenError> {
    match &identity.room {
        RoomScope::Any => Ok(()),
        RoomScope::Room(r) if r == room_id => Ok(()),
        RoomScope::Room(r) => Err(TokenError::WrongRoom {
            token_room: quote(r),
            room: room_id.to_string(),
        }),
    }
}
