//! OpenID Connect ID tokens (OpenID Connect Core 1.0, section 3.1.3.7): the signature with
//! the provider's JWKS under the one algorithm configured for it (never `none`, never an
//! HMAC made with the public key), then `iss` exactly, `aud` containing the client ID (and
//! `azp` when there are several audiences), `exp` and `iat` with the leeway, `nonce` exactly
//! the one sent with this sign-in, and a `sub`.

use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::keys::{KeySet, parse_jwks};
use crate::time::unix_secs;
use crate::verify::verified_claims;
use crate::{TokenAlgorithm, TokenError};

/// Longest ID token accepted.
pub const MAX_ID_TOKEN_BYTES: usize = 16 * 1024;

/// A provider's signing keys for one algorithm.
#[derive(Clone)]
pub struct IdTokenKeys {
    alg: TokenAlgorithm,
    keys: KeySet,
}

impl IdTokenKeys {
    /// The keys of a JWKS document usable with `alg` (RS256 or ES256).
    pub fn from_jwks(bytes: &[u8], alg: TokenAlgorithm) -> Result<IdTokenKeys, String> {
        if alg == TokenAlgorithm::HS256 {
            return Err(
                "ID tokens are checked with the provider's public keys: use RS256 or ES256".into(),
            );
        }
        Ok(IdTokenKeys {
            alg,
            keys: KeySet::Jwks(parse_jwks(bytes, alg)?),
        })
    }
}

/// What this sign-in expects of the ID token.
#[derive(Debug, Clone)]
pub struct IdTokenExpect<'a> {
    /// The provider's issuer identifier, compared exactly.
    pub issuer: &'a str,
    /// Our client ID at the provider.
    pub client_id: &'a str,
    /// The nonce sent in this sign-in's authorization request.
    pub nonce: &'a str,
    /// Seconds of clock skew allowed for `exp` and `iat`.
    pub leeway_secs: u64,
    /// Longest age of `iat` accepted, in seconds.
    pub max_age_secs: u64,
}

/// Why an ID token was refused.
#[derive(Debug, thiserror::Error)]
pub enum IdTokenError {
    /// Too long, malformed, wrong algorithm, unknown key or bad signature.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// `iss` is not the provider's.
    #[error("issuer {0:?} is not the provider's")]
    Issuer(String),
    /// `aud` does not contain our client ID, or `azp` names another client.
    #[error("the token is not for this client")]
    Audience,
    /// `nonce` is missing or not this sign-in's.
    #[error("nonce is missing or not this sign-in's")]
    Nonce,
    /// `exp` has passed (or is missing).
    #[error("the token has expired")]
    Expired,
    /// `iat` is missing, in the future, or too old.
    #[error("issued-at time is missing, in the future or too old")]
    IssuedAt,
    /// No `sub`.
    #[error("the token has no subject")]
    Subject,
}

/// Check an ID token; its claims when every check passes.
pub fn verify_id_token(
    token: &str,
    keys: &IdTokenKeys,
    expect: &IdTokenExpect<'_>,
    now: SystemTime,
) -> Result<Map<String, Value>, IdTokenError> {
    if token.len() > MAX_ID_TOKEN_BYTES {
        return Err(TokenError::TooLong {
            len: token.len(),
            max: MAX_ID_TOKEN_BYTES,
        }
        .into());
    }
    let claims = verified_claims(token, keys.alg, &keys.keys)?;
    let str_claim = |k: &str| claims.get(k).and_then(Value::as_str);
    let iss = str_claim("iss").unwrap_or("");
    if iss != expect.issuer {
        return Err(IdTokenError::Issuer(iss.chars().take(200).collect()));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expect.client_id) {
        return Err(IdTokenError::Audience);
    }
    if let Some(azp) = str_claim("azp") {
        if azp != expect.client_id {
            return Err(IdTokenError::Audience);
        }
    } else if audiences.len() > 1 {
        return Err(IdTokenError::Audience);
    }
    let now = unix_secs(now);
    let number = |k: &str| claims.get(k).and_then(Value::as_u64);
    match number("exp") {
        Some(exp) if exp.saturating_add(expect.leeway_secs) > now => {}
        _ => return Err(IdTokenError::Expired),
    }
    match number("iat") {
        Some(iat)
            if iat <= now.saturating_add(expect.leeway_secs)
                && now.saturating_sub(iat) <= expect.max_age_secs => {}
        _ => return Err(IdTokenError::IssuedAt),
    }
    if str_claim("nonce") != Some(expect.nonce) {
        return Err(IdTokenError::Nonce);
    }
    if str_claim("sub").is_none_or(str::is_empty) {
        return Err(IdTokenError::Subject);
    }
    Ok(claims)
}
