//! Reading the payload of a token whose signature has been checked: registered claims
//! (`iss`, `aud`, `exp`, `nbf`, `iat`, `sub`) and Jitsi's (`room`, `context.user`,
//! `moderator`, `lobby_bypass`). Pure: `now` comes in, nothing is read from a clock.

use serde_json::{Map, Value};

use crate::error::{TokenError, quote};
use crate::identity::{RoomScope, TokenIdentity};
use crate::time::system_time;

/// What the payload is checked against.
pub(crate) struct ClaimPolicy<'a> {
    pub audience: &'a [String],
    pub issuer: &'a [String],
    pub leeway_secs: u64,
}

/// Check the claims of a verified payload at `now` (Unix seconds) and extract the identity.
pub(crate) fn identity_from_claims(
    claims: &Map<String, Value>,
    policy: &ClaimPolicy<'_>,
    now: u64,
) -> Result<TokenIdentity, TokenError> {
    let issuer = required_string(claims, "iss")?;
    if !policy.issuer.contains(&issuer) {
        return Err(TokenError::WrongIssuer(quote(&issuer)));
    }
    check_audience(claims.get("aud"), policy.audience)?;

    let exp = numeric_date(claims, "exp")?.ok_or(TokenError::MissingClaim("exp"))?;
    if now > exp.saturating_add(policy.leeway_secs) {
        return Err(TokenError::Expired(exp));
    }
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && nbf > now.saturating_add(policy.leeway_secs)
    {
        return Err(TokenError::NotYetValid(nbf));
    }
    let iat = numeric_date(claims, "iat")?;
    if let Some(iat) = iat
        && iat > now.saturating_add(policy.leeway_secs)
    {
        return Err(TokenError::NotYetValid(iat));
    }

    let room = match required_string(claims, "room")?.as_str() {
        "" => {
            return Err(TokenError::InvalidClaim {
                claim: "room",
                reason: "is empty",
            });
        }
        "*" => RoomScope::Any,
        r => RoomScope::Room(r.to_string()),
    };
    let subject = optional_string(claims.get("sub"), "sub")?;

    let user = context_user(claims)?;
    let field = |name: &str, path: &'static str| match user {
        Some(u) => optional_string(u.get(name), path),
        None => Ok(None),
    };
    let user_id = field("id", "context.user.id")?;
    let name = field("name", "context.user.name")?;
    let email = field("email", "context.user.email")?;
    let avatar = field("avatar", "context.user.avatar")?;

    let mut moderator = flag(claims.get("moderator"), "moderator")?;
    let mut lobby_bypass = false;
    if let Some(u) = user {
        moderator |= flag(u.get("moderator"), "context.user.moderator")?;
        moderator |= affiliation_is_moderator(u.get("affiliation"))?;
        lobby_bypass = flag(u.get("lobby_bypass"), "context.user.lobby_bypass")?;
    }

    Ok(TokenIdentity {
        issuer,
        subject,
        user_id,
        name,
        email,
        avatar,
        moderator,
        lobby_bypass,
        room,
        issued_at: iat.map(system_time),
        expires_at: system_time(exp),
    })
}

fn required_string(claims: &Map<String, Value>, name: &'static str) -> Result<String, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Err(TokenError::MissingClaim(name)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(TokenError::InvalidClaim {
            claim: name,
            reason: "is not a string",
        }),
    }
}

/// A string claim; absent, null and "" all mean "not given".
fn optional_string(
    value: Option<&Value>,
    path: &'static str,
) -> Result<Option<String>, TokenError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(TokenError::InvalidClaim {
            claim: path,
            reason: "is not a string",
        }),
    }
}

/// `aud` is a string or an array of strings (RFC 7519 section 4.1.3); one must be accepted.
fn check_audience(aud: Option<&Value>, accepted: &[String]) -> Result<(), TokenError> {
    let values: Vec<&str> = match aud {
        None | Some(Value::Null) => return Err(TokenError::MissingClaim("aud")),
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => {
            let mut v = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => v.push(s.as_str()),
                    _ => {
                        return Err(TokenError::InvalidClaim {
                            claim: "aud",
                            reason: "holds something that is not a string",
                        });
                    }
                }
            }
            v
        }
        Some(_) => {
            return Err(TokenError::InvalidClaim {
                claim: "aud",
                reason: "is neither a string nor a list of strings",
            });
        }
    };
    if values.iter().any(|v| accepted.iter().any(|a| a == v)) {
        return Ok(());
    }
    let shown: Vec<String> = values.iter().take(4).map(|v| quote(v)).collect();
    Err(TokenError::WrongAudience(if shown.is_empty() {
        "[] (empty list)".to_string()
    } else {
        shown.join(", ")
    }))
}

/// A NumericDate claim: seconds since the epoch, integer or fractional (truncated).
fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<u64>, TokenError> {
    let invalid = |reason| TokenError::InvalidClaim {
        claim: name,
        reason,
    };
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                Ok(Some(u))
            } else if n.as_i64().is_some() {
                Err(invalid("is before 1970"))
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => {
                        Ok(Some(f as u64))
                    }
                    _ => Err(invalid("is not a usable time")),
                }
            }
        }
        Some(_) => Err(invalid("is not a number of seconds since 1970")),
    }
}

fn context_user(claims: &Map<String, Value>) -> Result<Option<&Map<String, Value>>, TokenError> {
    let context = match claims.get("context") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(c)) => c,
        Some(_) => {
            return Err(TokenError::InvalidClaim {
                claim: "context",
                reason: "is not an object",
            });
        }
    };
    match context.get("user") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(u)) => Ok(Some(u)),
        Some(_) => Err(TokenError::InvalidClaim {
            claim: "context.user",
            reason: "is not an object",
        }),
    }
}

/// A yes/no claim as issuers write it: true/false, "true"/"false" (Jitsi as a service writes
/// strings), or 1/0. Absent or null means no.
fn flag(value: Option<&Value>, path: &'static str) -> Result<bool, TokenError> {
    let invalid = TokenError::InvalidClaim {
        claim: path,
        reason: "is not true/false, \"true\"/\"false\" or 1/0",
    };
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") || s.is_empty() => Ok(false),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(1) => Ok(true),
            Some(0) => Ok(false),
            _ => Err(invalid),
        },
        Some(_) => Err(invalid),
    }
}

/// `context.user.affiliation` as read by the jitsi-contrib `token_affiliation` plugin.
fn affiliation_is_moderator(value: Option<&Value>) -> Result<bool, TokenError> {
    match value {
        None | Some(Value::Null) => Ok(false),
        Some(Value::String(s)) => Ok(matches!(s.as_str(), "owner" | "moderator" | "teacher")),
        Some(_) => Err(TokenError::InvalidClaim {
            claim: "context.user.affiliation",
            reason: "is not a string",
        }),
    }
}
