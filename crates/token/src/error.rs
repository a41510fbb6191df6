//! Why a token was refused. Each message says what an operator needs to look at; values taken
//! from the token are quoted, escaped and cut short, because they come from the client.

use crate::time::Rfc3339;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than `max_token_bytes`; nothing was parsed.
    #[error("token is {len} bytes long; the limit is {max} (tokens.max_token_bytes)")]
    TooLong {
        /// Length of the presented token.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// Not a JWT in compact form, or a part is not valid base64url/JSON.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header names an algorithm other than the configured one (this includes `none`).
    /// Holds the quoted `alg` and the configured algorithm.
    #[error("token algorithm {0} is not accepted; the server is configured for {1}")]
    UnsupportedAlgorithm(String, &'static str),
    /// No configured key has the token's `kid`, or the token has no `kid` and the key set
    /// holds several keys.
    #[error("{}", unknown_key_message(.0))]
    UnknownKey(Option<String>),
    /// `jwks_url` is configured but no key set has been fetched successfully yet.
    #[error("no verification keys yet: the key set from tokens.jwks_url has not been fetched")]
    KeysUnavailable,
    /// The signature does not match the header and payload under the configured key.
    #[error("token signature is not valid for the configured key")]
    BadSignature,
    /// `exp` (plus leeway) is in the past.
    #[error("token expired at {}", Rfc3339(*.0))]
    Expired(u64),
    /// `nbf` or `iat` (minus leeway) is in the future.
    #[error("token is not valid before {}", Rfc3339(*.0))]
    NotYetValid(u64),
    /// `aud` holds none of the configured audiences.
    #[error("token audience {0} is not accepted (tokens.audience)")]
    WrongAudience(String),
    /// `iss` is not one of the configured issuers.
    #[error("token issuer {0} is not accepted (tokens.issuer)")]
    WrongIssuer(String),
    /// The token is for another room.
    #[error("token is for room {token_room}, not {room:?}")]
    WrongRoom {
        /// The token's `room` claim, quoted.
        token_room: String,
        /// The room being joined.
        room: String,
    },
    /// A claim the server requires is absent.
    #[error("token has no {0:?} claim")]
    MissingClaim(&'static str),
    /// A claim is present but has the wrong type or an unusable value.
    #[error("token claim {claim:?} {reason}")]
    InvalidClaim {
        /// The claim's path, e.g. `context.user.name`.
        claim: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

fn unknown_key_message(kid: &Option<String>) -> String {
    match kid {
        Some(kid) => format!(
            "no configured key has key id {} (the token's kid header)",
            quote(kid)
        ),
        None => "token has no kid header and the key set holds several keys".to_string(),
    }
}

/// Longest piece of client-supplied text copied into an error message.
const QUOTE_MAX_CHARS: usize = 64;

/// Quote client-supplied text for an error message: escaped (no control characters reach a
/// log line) and cut to [`QUOTE_MAX_CHARS`].
pub(crate) fn quote(s: &str) -> String {
    if s.chars().count() > QUOTE_MAX_CHARS {
        let cut: String = s.chars().take(QUOTE_MAX_CHARS).collect();
        format!("{cut:?}…")
    } else {
        format!("{s:?}")
    }
}
