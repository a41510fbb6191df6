//! The `[tokens]` configuration section and its validation.
//!
//! `validate` is pure (it reads no files); reading key files happens when a
//! [`crate::TokenVerifier`] or [`crate::TokenMinter`] is built, and those errors name the key too.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

/// Smallest HS256 secret accepted: RFC 7518 section 3.2 requires a key at least as long as the
/// hash output (256 bits).
pub const MIN_SECRET_BYTES: usize = 32;

/// The signature algorithms Conclave accepts. Exactly one is configured; every other `alg`
/// (including `none`) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TokenAlgorithm {
    /// HMAC with SHA-256 and a shared secret (Jitsi's `app_secret`).
    #[default]
    HS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256; RSA keys of at least 2048 bits.
    RS256,
    /// ECDSA on P-256 with SHA-256.
    ES256,
}

impl TokenAlgorithm {
    /// The name used in the JWT `alg` header.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAlgorithm::HS256 => "HS256",
            TokenAlgorithm::RS256 => "RS256",
            TokenAlgorithm::ES256 => "ES256",
        }
    }

    pub(crate) fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            TokenAlgorithm::HS256 => jsonwebtoken::Algorithm::HS256,
            TokenAlgorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            TokenAlgorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        }
    }
}

impl fmt::Display for TokenAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A shared secret from the config file. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `[tokens]`: signed join tokens (JWT) compatible with the tokens Jitsi Meet accepts, so an
/// existing token issuer can be reused. Off by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// Accept join tokens (`?jwt=` in the room link). Default: false.
    pub enabled: bool,
    /// The one signature algorithm accepted: "HS256" (shared secret), "RS256" or "ES256"
    /// (public key). Tokens with any other `alg`, including "none", are refused. Default: "HS256".
    pub algorithm: TokenAlgorithm,
    /// HS256 shared secret, at least 32 bytes (Jitsi's `app_secret`). Prefer `secret_file`:
    /// a secret in the config file ends up in backups and diffs.
    pub secret: Option<Secret>,
    /// File holding the HS256 shared secret (at least 32 bytes; one trailing newline is
    /// ignored). Keep it readable only by the server's user.
    pub secret_file: Option<PathBuf>,
    /// RS256/ES256: PEM file with the issuer's public key ("PUBLIC KEY", or "RSA PUBLIC KEY"
    /// for RS256). Use exactly one of `public_key_file`, `jwks_file`, `jwks_url`.
    pub public_key_file: Option<PathBuf>,
    /// RS256/ES256: PKCS#8 PEM private key ("PRIVATE KEY"; "RSA PRIVATE KEY" also works for
    /// RS256) used only by `conclave token` to mint invite links. Not needed to verify.
    pub private_key_file: Option<PathBuf>,
    /// `kid` header written into minted tokens, so a verifier with a JWKS of several keys
    /// picks the right one. Only with `private_key_file`.
    pub key_id: Option<String>,
    /// RS256/ES256: JSON Web Key Set file (RFC 7517); the token's `kid` header selects the key.
    /// Keys of another type, curve or `alg`, and keys with `"use": "enc"`, are ignored.
    pub jwks_file: Option<PathBuf>,
    /// RS256/ES256: https URL of a JSON Web Key Set, fetched at start and every
    /// `jwks_refresh_secs`, and again when a token names an unknown `kid` (at most once per
    /// `jwks_min_refetch_secs`).
    /// On a failed refresh the last good key set stays in use.
    pub jwks_url: Option<String>,
    /// PEM file of CA certificates trusted for `jwks_url` instead of the system's roots
    /// (for an issuer with a private CA).
    pub jwks_ca_file: Option<PathBuf>,
    /// Seconds between refreshes of `jwks_url` (60 to 86400). Default: 3600.
    pub jwks_refresh_secs: u64,
    /// Shortest time in seconds between two fetches of `jwks_url` caused by tokens with an
    /// unknown `kid` (1 to 3600), so such tokens cannot make the server hammer the key
    /// server. Default: 60.
    pub jwks_min_refetch_secs: u64,
    /// Seconds one fetch of `jwks_url` may take in total: connect, TLS, request and body
    /// (1 to 60). Default: 10.
    pub jwks_timeout_secs: u64,
    /// Largest `jwks_url` response body accepted, in bytes (1024 to 1048576). Default: 65536.
    pub jwks_max_bytes: usize,
    /// Accepted `aud` values: a string or a list; a token must carry one of them (Jitsi's
    /// `app_id` / `asap_accepted_audiences`). Required when enabled; "*" is not accepted.
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Accepted `iss` values: a string or a list (Jitsi's `asap_accepted_issuers`). Required
    /// when enabled; "*" is not accepted. Minted tokens use the first.
    #[serde(deserialize_with = "one_or_many")]
    pub issuer: Vec<String>,
    /// Clock-skew allowance in seconds for `exp`, `nbf` and `iat` (0 to 300). Default: 30.
    pub leeway_secs: u64,
    /// Longest token accepted, in bytes, checked before anything is parsed (256 to 65536).
    /// Default: 8192.
    pub max_token_bytes: usize,
    /// Longest lifetime `conclave token --ttl` may give a token, in seconds (60 to 31536000).
    /// Default: 2592000 (30 days).
    pub max_mint_ttl_secs: u64,
    /// Also remove a participant from the meeting when their token expires. Default: false
    /// (expiry is checked when joining only, as in Jitsi).
    pub enforce_expiry_during_meeting: bool,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            enabled: false,
            algorithm: TokenAlgorithm::HS256,
            secret: None,
            secret_file: None,
            public_key_file: None,
            private_key_file: None,
            key_id: None,
            jwks_file: None,
            jwks_url: None,
            jwks_ca_file: None,
            jwks_refresh_secs: 3600,
            jwks_min_refetch_secs: 60,
            jwks_timeout_secs: 10,
            jwks_max_bytes: 65536,
            audience: Vec::new(),
            issuer: Vec::new(),
            leeway_secs: 30,
            max_token_bytes: 8192,
            max_mint_ttl_secs: 30 * 24 * 3600,
            enforce_expiry_during_meeting: false,
        }
    }
}

/// A `[tokens]` setting that cannot work. Every variant names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is missing, out of range or conflicts with another key.
    #[error("tokens.{key}: {reason}")]
    Invalid {
        /// The offending key, without the `tokens.` prefix.
        key: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A file named by a key cannot be read.
    #[error("tokens.{key}: cannot read {}: {source}", path.display())]
    Read {
        /// The key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file (or URL) was read but holds no usable key.
    #[error("tokens.{key}: {location}: {reason}")]
    BadKey {
        /// The key naming the file or URL.
        key: &'static str,
        /// The file or URL.
        location: String,
        /// What is wrong with its content.
        reason: String,
    },
}

pub(crate) fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

fn check_range<T: PartialOrd + fmt::Display + Copy>(
    key: &'static str,
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(invalid(
            key,
            format!("{value} is out of range ({min} to {max})"),
        ));
    }
    Ok(())
}

fn check_allow_list(key: &'static str, values: &[String]) -> Result<(), ConfigError> {
    if values.is_empty() {
        return Err(invalid(
            key,
            "required when tokens are enabled: list the values your token issuer puts in the \
             claim (Jitsi: app_id)",
        ));
    }
    for v in values {
        if v.trim().is_empty() {
            return Err(invalid(key, "an empty value is not allowed"));
        }
        if v == "*" {
            return Err(invalid(
                key,
                "\"*\" (accept anything) is not allowed; list the values your issuer uses",
            ));
        }
    }
    Ok(())
}

impl TokenConfig {
    /// Check ranges always, and key material, audience and issuer when `enabled`. Reads no
    /// files.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("leeway_secs", self.leeway_secs, 0, 300)?;
        check_range("max_token_bytes", self.max_token_bytes, 256, 65536)?;
        check_range("jwks_refresh_secs", self.jwks_refresh_secs, 60, 86400)?;
        check_range("jwks_min_refetch_secs", self.jwks_min_refetch_secs, 1, 3600)?;
        check_range("jwks_timeout_secs", self.jwks_timeout_secs, 1, 60)?;
        check_range("jwks_max_bytes", self.jwks_max_bytes, 1024, 1 << 20)?;
        check_range("max_mint_ttl_secs", self.max_mint_ttl_secs, 60, 31_536_000)?;
        if !self.enabled {
            return Ok(());
        }
        check_allow_list("audience", &self.audience)?;
        check_allow_list("issuer", &self.issuer)?;
        match self.algorithm {
            TokenAlgorithm::HS256 => self.validate_hs256()?,
            TokenAlgorithm::RS256 | TokenAlgorithm::ES256 => self.validate_public_key()?,
        }
        if let Some(kid) = &self.key_id {
            if self.private_key_file.is_none() {
                return Err(invalid(
                    "key_id",
                    "only used with private_key_file (it is written into minted tokens)",
                ));
            }
            if kid.is_empty() || kid.len() > 256 {
                return Err(invalid("key_id", "must have 1 to 256 characters"));
            }
        }
        if self.jwks_ca_file.is_some() && self.jwks_url.is_none() {
            return Err(invalid("jwks_ca_file", "only used with jwks_url"));
        }
        if let Some(url) = &self.jwks_url {
            crate::jwks_fetch::HttpsUrl::parse(url)
                .map_err(|reason| invalid("jwks_url", reason))?;
        }
        Ok(())
    }

    fn validate_hs256(&self) -> Result<(), ConfigError> {
        for (key, set) in [
            ("public_key_file", self.public_key_file.is_some()),
            ("private_key_file", self.private_key_file.is_some()),
            ("jwks_file", self.jwks_file.is_some()),
            ("jwks_url", self.jwks_url.is_some()),
        ] {
            if set {
                return Err(invalid(
                    key,
                    "only used with algorithm RS256 or ES256; HS256 uses secret_file",
                ));
            }
        }
        match (&self.secret, &self.secret_file) {
            (Some(_), Some(_)) => Err(invalid(
                "secret",
                "set either secret or secret_file, not both (prefer secret_file)",
            )),
            (None, None) => Err(invalid(
                "secret_file",
                "algorithm HS256 needs a shared secret: set secret_file (or secret)",
            )),
            (Some(secret), None) => check_secret_strength("secret", secret.0.as_bytes()),
            (None, Some(_)) => Ok(()),
        }
    }

    fn validate_public_key(&self) -> Result<(), ConfigError> {
        let alg = self.algorithm;
        if self.secret.is_some() {
            return Err(invalid(
                "secret",
                format!("a shared secret is only used with HS256, not {alg}"),
            ));
        }
        if self.secret_file.is_some() {
            return Err(invalid(
                "secret_file",
                format!("a shared secret is only used with HS256, not {alg}"),
            ));
        }
        let sources = [
            self.public_key_file.is_some(),
            self.jwks_file.is_some(),
            self.jwks_url.is_some(),
        ];
        match sources.iter().filter(|s| **s).count() {
            1 => Ok(()),
            0 => Err(invalid(
                "public_key_file",
                format!("algorithm {alg} needs one of public_key_file, jwks_file or jwks_url"),
            )),
            _ => Err(invalid(
                "public_key_file",
                "set only one of public_key_file, jwks_file and jwks_url",
            )),
        }
    }
}

pub(crate) fn check_secret_strength(key: &'static str, secret: &[u8]) -> Result<(), ConfigError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(invalid(
            key,
            format!(
                "the HS256 secret has {} bytes; at least {MIN_SECRET_BYTES} are required \
                 (e.g. `openssl rand -hex 32`)",
                secret.len()
            ),
        ));
    }
    Ok(())
}

/// `audience = "a"` or `audience = ["a", "b"]`.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}
