//! Invitation tokens at the edge: turn a verified JWT into the room core's [`Identity`], and
//! mint invite links for `conclave token`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use conclave_proto::RoomId;
use conclave_room::Identity;
use conclave_token::{
    MintRequest, RoomScope, TokenIdentity, TokenMinter, TokenVerifier, invite_link,
};

use crate::conference::{TokenCheck, Tokens};
use crate::config::Config;

/// The check the conference task runs on a `join` that carries a token: signature, expiry,
/// audience and issuer here; room scope, role and lobby rules in the room core.
pub fn tokens(verifier: TokenVerifier) -> Tokens {
    let enforce_expiry = verifier.enforce_expiry_during_meeting();
    let check: TokenCheck = Arc::new(move |token: &str| {
        let id = verifier
            .verify(token, SystemTime::now())
            .map_err(|e| e.to_string())?;
        Ok((identity(&id)?, id.expires_at + verifier.leeway()))
    });
    Tokens {
        check,
        enforce_expiry,
    }
}

/// The room core's view of a verified token.
pub fn identity(id: &TokenIdentity) -> Result<Identity, String> {
    let room = match &id.room {
        RoomScope::Any => None,
        RoomScope::Room(r) => Some(
            RoomId::parse(r)
                .map_err(|e| format!("the token's room \"{r}\" is not a room ID: {e}"))?,
        ),
    };
    Ok(Identity::Token {
        // Jitsi's `sub` is the tenant, shared by all users: bans hold on to issuer + user.
        subject: id
            .ban_key()
            .unwrap_or_else(|| format!("{}|{}", id.issuer, id.subject.as_deref().unwrap_or(""))),
        name: id.name.clone(),
        room,
        moderator: id.moderator,
        lobby_bypass: id.lobby_bypass,
    })
}

/// Parse a lifetime like `90s`, `30m`, `1h`, `7d` (a bare number is seconds).
pub fn parse_ttl(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("\"{s}\" is not a lifetime like 30m, 1h or 7d"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => bail!("unknown unit \"{other}\" in \"{s}\": use s, m, h or d"),
    };
    if n == 0 {
        bail!("a token lifetime must be more than 0");
    }
    Ok(Duration::from_secs(n.saturating_mul(unit_secs)))
}

/// What `conclave token` was asked for.
pub struct InviteRequest {
    /// Room ID (or `*`).
    pub room: String,
    /// Display name.
    pub name: String,
    /// Moderator.
    pub moderator: bool,
    /// Skip the lobby.
    pub lobby_bypass: bool,
    /// Lifetime.
    pub ttl: Duration,
    /// E-mail claim.
    pub email: Option<String>,
    /// User id claim (random when absent).
    pub user_id: Option<String>,
}

/// Mint a token with the configured key and return the invite link.
pub fn invite(config: &Config, req: InviteRequest) -> Result<String> {
    if req.room != "*" {
        RoomId::parse(&req.room).map_err(|e| anyhow::anyhow!("--room: {e}"))?;
    }
    if !config.tokens.enabled {
        bail!("tokens are off: set [tokens] enabled = true (with a key) in the configuration");
    }
    let minter = TokenMinter::from_config(&config.tokens)?;
    let token = minter.mint(
        &MintRequest {
            room: req.room.clone(),
            name: req.name,
            user_id: req.user_id,
            subject: None,
            email: req.email,
            moderator: req.moderator,
            lobby_bypass: req.lobby_bypass,
            ttl: req.ttl,
        },
        SystemTime::now(),
    )?;
    let room = if req.room == "*" { "" } else { &req.room };
    if room.is_empty() {
        // A token for every room has no single link; print the token itself.
        return Ok(token);
    }
    Ok(invite_link(&config.base_url(), room, &token)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_ttl("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_ttl("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_ttl("7d").unwrap(), Duration::from_secs(7 * 86_400));
        for bad in ["", "h", "1w", "0", "-1h", "1.5h"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
