//! Minting tokens in Jitsi's shape (for `conclave token`) and building invite links.

use std::time::{Duration, SystemTime};

use conclave_proto::RoomId;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use crate::config::{ConfigError, TokenAlgorithm, TokenConfig, invalid};
use crate::keys;
use crate::time::unix_secs;
use crate::verify::TokenVerifier;

/// What to put into a minted token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    /// A room ID, or `"*"` for every room.
    pub room: String,
    /// Display name (`context.user.name`); shown read-only in the meeting.
    pub name: String,
    /// `context.user.id`; a random 128-bit hex id when `None`, so the holder can be banned.
    pub user_id: Option<String>,
    /// `sub`; `"*"` when `None` (Jitsi uses the tenant or domain here).
    pub subject: Option<String>,
    /// `context.user.email`.
    pub email: Option<String>,
    /// Join as moderator (`context.user.moderator`).
    pub moderator: bool,
    /// Skip the lobby (`context.user.lobby_bypass`).
    pub lobby_bypass: bool,
    /// Lifetime: `exp` = now + ttl. At least 1 s and at most `max_mint_ttl_secs`.
    pub ttl: Duration,
}

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// The `[tokens]` configuration cannot mint (disabled, no key, unreadable key …).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A request field is unusable.
    #[error("{field}: {reason}")]
    InvalidRequest {
        /// The field (`room`, `name`, `ttl`, …).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The token would be longer than `max_token_bytes`, so the server would refuse it.
    #[error("the token would be {len} bytes; tokens.max_token_bytes is {max}")]
    TooLong {
        /// Length of the token.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The crypto library refused to sign.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Signs tokens with the configured secret or private key.
pub struct TokenMinter {
    algorithm: TokenAlgorithm,
    key: EncodingKey,
    key_id: Option<String>,
    issuer: String,
    audience: String,
    max_ttl: Duration,
    max_token_bytes: usize,
}

impl std::fmt::Debug for TokenMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenMinter")
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl TokenMinter {
    /// Load the signing key. For RS256/ES256 this needs `private_key_file`; when the public
    /// key is configured as a file too, a probe token proves the two belong together.
    pub fn from_config(config: &TokenConfig) -> Result<TokenMinter, ConfigError> {
        if !config.enabled {
            return Err(invalid("enabled", "tokens are disabled"));
        }
        config.validate()?;
        let key = match config.algorithm {
            TokenAlgorithm::HS256 => EncodingKey::from_secret(&keys::load_secret(config)?),
            alg => {
                let path = config.private_key_file.as_ref().ok_or_else(|| {
                    invalid(
                        "private_key_file",
                        format!("minting {alg} tokens needs the issuer's private key"),
                    )
                })?;
                keys::load_private_pem(path, alg)?
            }
        };
        let minter = TokenMinter {
            algorithm: config.algorithm,
            key,
            key_id: config.key_id.clone(),
            // validate() guarantees both lists are non-empty when enabled.
            issuer: config.issuer[0].clone(),
            audience: config.audience[0].clone(),
            max_ttl: Duration::from_secs(config.max_mint_ttl_secs),
            max_token_bytes: config.max_token_bytes,
        };
        minter.probe(config)?;
        Ok(minter)
    }

    /// Sign a probe token and, where the verification key is local, verify it: catches a
    /// private key that does not match the public key at start-up.
    fn probe(&self, config: &TokenConfig) -> Result<(), ConfigError> {
        let now = SystemTime::now();
        let request = MintRequest {
            room: "*".into(),
            name: "probe".into(),
            user_id: Some("probe".into()),
            subject: None,
            email: None,
            moderator: false,
            lobby_bypass: false,
            ttl: Duration::from_secs(60),
        };
        let key = match config.algorithm {
            TokenAlgorithm::HS256 => "secret_file",
            _ => "private_key_file",
        };
        let token = self.mint(&request, now).map_err(|e| ConfigError::BadKey {
            key,
            location: "signing key".into(),
            reason: e.to_string(),
        })?;
        if config.jwks_url.is_some() {
            return Ok(());
        }
        let verifier = TokenVerifier::from_config(config)?;
        match verifier.verify(&token, now) {
            Ok(_) => Ok(()),
            Err(e) => Err(invalid(
                key,
                format!(
                    "a token signed with this key does not verify with the configured public key ({e})"
                ),
            )),
        }
    }

    /// Sign a token for `request` at `now`.
    pub fn mint(&self, request: &MintRequest, now: SystemTime) -> Result<String, MintError> {
        let bad = |field, reason: String| MintError::InvalidRequest { field, reason };
        if request.room != "*" {
            RoomId::parse(&request.room).map_err(|e| bad("room", e.to_string()))?;
        }
        let name = request.name.trim();
        if name.is_empty() {
            return Err(bad("name", "must not be empty".into()));
        }
        for (field, value) in [
            ("name", Some(name)),
            ("user_id", request.user_id.as_deref()),
            ("subject", request.subject.as_deref()),
            ("email", request.email.as_deref()),
        ] {
            if let Some(v) = value
                && (v.is_empty() || v.chars().any(char::is_control))
            {
                return Err(bad(
                    field,
                    "must be non-empty, without control characters".into(),
                ));
            }
        }
        let ttl = request.ttl.as_secs();
        if ttl == 0 || request.ttl > self.max_ttl {
            return Err(bad(
                "ttl",
                format!(
                    "must be 1 s to {} s (tokens.max_mint_ttl_secs)",
                    self.max_ttl.as_secs()
                ),
            ));
        }
        let iat = unix_secs(now);
        let user_id = match &request.user_id {
            Some(id) => id.clone(),
            None => random_id().map_err(MintError::Signing)?,
        };
        let mut user = json!({
            "id": user_id,
            "name": name,
            "moderator": request.moderator,
            "lobby_bypass": request.lobby_bypass,
        });
        if let (Some(email), Value::Object(map)) = (&request.email, &mut user) {
            map.insert("email".into(), Value::String(email.clone()));
        }
        let claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": request.subject.as_deref().unwrap_or("*"),
            "room": request.room,
            "iat": iat,
            "nbf": iat,
            "exp": iat.saturating_add(ttl),
            "context": { "user": user },
        });
        let mut header = Header::new(self.algorithm.jwt());
        header.kid = self.key_id.clone();
        let token = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| MintError::Signing(e.to_string()))?;
        if token.len() > self.max_token_bytes {
            return Err(MintError::TooLong {
                len: token.len(),
                max: self.max_token_bytes,
            });
        }
        Ok(token)
    }
}

/// Load the signing key from `config` and mint one token. For many tokens build a
/// [`TokenMinter`] once.
pub fn mint(
    config: &TokenConfig,
    request: &MintRequest,
    now: SystemTime,
) -> Result<String, MintError> {
    TokenMinter::from_config(config)?.mint(request, now)
}

fn random_id() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "no randomness available".to_string())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Why an invite link could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The base URL is not `https://host[:port][/path]`.
    #[error("base URL {0:?} must look like https://meet.example.org (no query or fragment)")]
    BaseUrl(String),
    /// The room is not a room ID (a link needs one room, not "*").
    #[error("invite room: {0}")]
    Room(String),
    /// The token has characters a JWT never has.
    #[error("the token is not a compact JWT")]
    Token,
}

/// `https://<host>/r/<room>?jwt=<token>` from the server's public base URL.
pub fn invite_link(base_url: &str, room: &str, token: &str) -> Result<String, LinkError> {
    let base = base_url.trim_end_matches('/');
    let rest = base
        .strip_prefix("https://")
        .ok_or_else(|| LinkError::BaseUrl(base_url.to_string()))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty()
        || host.contains('@')
        || rest
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#'))
    {
        return Err(LinkError::BaseUrl(base_url.to_string()));
    }
    RoomId::parse(room).map_err(|e| LinkError::Room(e.to_string()))?;
    if token.is_empty()
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(LinkError::Token);
    }
    Ok(format!("{base}/r/{room}?jwt={token}"))
}
