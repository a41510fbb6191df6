//! Verifying a token: size, shape, algorithm, key, signature, then claims — in that order,
//! so nothing from the payload is trusted before the signature is checked.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::claims::{ClaimPolicy, identity_from_claims};
use crate::config::{ConfigError, TokenAlgorithm, TokenConfig, invalid};
use crate::error::{TokenError, quote};
use crate::identity::TokenIdentity;
use crate::jwks_fetch::{JwksFetchError, JwksFetcher};
use crate::keys::{self, KeySet};
use crate::time::unix_secs;

/// After a failed `jwks_url` fetch, the refresh loop tries again after this long (or after
/// `jwks_refresh_secs`, if shorter).
pub const JWKS_RETRY: Duration = Duration::from_secs(60);

/// Longest `kid` kept in an [`TokenError::UnknownKey`].
const KID_KEEP_CHARS: usize = 256;

/// Checks join tokens against a `[tokens]` configuration. Cheap to clone (shared state).
#[derive(Clone)]
pub struct TokenVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    algorithm: TokenAlgorithm,
    audience: Vec<String>,
    issuer: Vec<String>,
    leeway_secs: u64,
    max_token_bytes: usize,
    enforce_expiry_during_meeting: bool,
    keys: RwLock<Arc<KeySet>>,
    jwks: Option<JwksSource>,
}

struct JwksSource {
    fetcher: JwksFetcher,
    refresh: Duration,
    min_refetch: Duration,
    /// When the last fetch was started. Lock order: `refreshing` before this.
    last_attempt: Mutex<Option<Instant>>,
    /// Held while a fetch runs, so concurrent callers wait for it instead of fetching too.
    refreshing: tokio::sync::Mutex<()>,
}

/// The JOSE header members we read. Others (`typ`, `x5u`, `jku`, `jwk`, …) are ignored:
/// keys are never taken from the token itself.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("algorithm", &self.inner.algorithm)
            .field("audience", &self.inner.audience)
            .field("issuer", &self.inner.issuer)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Validate `config` and load its keys. A `jwks_url` is not fetched here: call
    /// [`TokenVerifier::refresh_jwks`] (or spawn [`TokenVerifier::run_jwks_refresh`]) before
    /// tokens can be verified.
    pub fn from_config(config: &TokenConfig) -> Result<TokenVerifier, ConfigError> {
        if !config.enabled {
            return Err(invalid("enabled", "tokens are disabled"));
        }
        config.validate()?;
        let alg = config.algorithm;
        let keys = match alg {
            TokenAlgorithm::HS256 => {
                KeySet::Single(DecodingKey::from_secret(&keys::load_secret(config)?))
            }
            TokenAlgorithm::RS256 | TokenAlgorithm::ES256 => {
                if let Some(path) = &config.public_key_file {
                    KeySet::Single(keys::load_public_pem("public_key_file", path, alg)?)
                } else if let Some(path) = &config.jwks_file {
                    let bytes = keys::read_file("jwks_file", path)?;
                    let set =
                        keys::parse_jwks(&bytes, alg).map_err(|reason| ConfigError::BadKey {
                            key: "jwks_file",
                            location: path.display().to_string(),
                            reason,
                        })?;
                    KeySet::Jwks(set)
                } else {
                    KeySet::NotYetFetched
                }
            }
        };
        let jwks = match &config.jwks_url {
            Some(url) => Some(JwksSource {
                fetcher: JwksFetcher::new(config, url)?,
                refresh: Duration::from_secs(config.jwks_refresh_secs),
                min_refetch: Duration::from_secs(config.jwks_min_refetch_secs),
                last_attempt: Mutex::new(None),
                refreshing: tokio::sync::Mutex::new(()),
            }),
            None => None,
        };
        Ok(TokenVerifier {
            inner: Arc::new(Inner {
                algorithm: alg,
                audience: config.audience.clone(),
                issuer: config.issuer.clone(),
                leeway_secs: config.leeway_secs,
                max_token_bytes: config.max_token_bytes,
                enforce_expiry_during_meeting: config.enforce_expiry_during_meeting,
                keys: RwLock::new(Arc::new(keys)),
                jwks,
            }),
        })
    }

    /// The configured clock-skew allowance.
    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.inner.leeway_secs)
    }

    /// Whether participants are removed when their token expires during a meeting.
    pub fn enforce_expiry_during_meeting(&self) -> bool {
        self.inner.enforce_expiry_during_meeting
    }

    /// Verify `token` at `now` with the keys held now. Never reads the clock or the network.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<TokenIdentity, TokenError> {
        let inner = &*self.inner;
        if token.len() > inner.max_token_bytes {
            return Err(TokenError::TooLong {
                len: token.len(),
                max: inner.max_token_bytes,
            });
        }
        let keys = Arc::clone(&inner.keys.read().unwrap_or_else(|e| e.into_inner()));
        let claims = verified_claims(token, inner.algorithm, &keys)?;
        let policy = ClaimPolicy {
            audience: &inner.audience,
            issuer: &inner.issuer,
            leeway_secs: inner.leeway_secs,
        };
        identity_from_claims(&claims, &policy, unix_secs(now))
    }

    /// [`TokenVerifier::verify`], but when the token names a key we do not hold (or no key
    /// set has been fetched yet) and `jwks_url` is configured, fetch the key set once — at
    /// most once per `jwks_min_refetch_secs` — and try again. Use this at join time.
    pub async fn verify_refreshing(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Result<TokenIdentity, TokenError> {
        match self.verify(token, now) {
            Err(TokenError::UnknownKey(_) | TokenError::KeysUnavailable)
                if self.inner.jwks.is_some() =>
            {
                if let Err(e) = self.refresh_if_allowed().await {
                    tracing::warn!("token key set refresh for an unknown kid failed: {e}");
                }
                self.verify(token, now)
            }
            other => other,
        }
    }

    async fn refresh_if_allowed(&self) -> Result<(), JwksFetchError> {
        let Some(jwks) = &self.inner.jwks else {
            return Ok(());
        };
        let _running = jwks.refreshing.lock().await;
        let recent = jwks
            .last_attempt
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() < jwks.min_refetch);
        if recent {
            return Ok(());
        }
        self.fetch_and_swap(jwks).await.map(|_| ())
    }

    /// Fetch `jwks_url` now and replace the key set; returns the number of usable keys. On
    /// error the previous key set stays in use. Does nothing (returns 0) without `jwks_url`.
    pub async fn refresh_jwks(&self) -> Result<usize, JwksFetchError> {
        let Some(jwks) = &self.inner.jwks else {
            return Ok(0);
        };
        let _running = jwks.refreshing.lock().await;
        self.fetch_and_swap(jwks).await
    }

    async fn fetch_and_swap(&self, jwks: &JwksSource) -> Result<usize, JwksFetchError> {
        *jwks.last_attempt.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        let body = jwks.fetcher.fetch().await?;
        let set = keys::parse_jwks(&body, self.inner.algorithm).map_err(JwksFetchError::Invalid)?;
        let n = set.len();
        *self.inner.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(KeySet::Jwks(set));
        Ok(n)
    }

    /// Keep the `jwks_url` key set fresh: fetch now, then every `jwks_refresh_secs` (after a
    /// failure, again after [`JWKS_RETRY`]). Never returns; spawn it. Returns at once without
    /// `jwks_url`.
    pub async fn run_jwks_refresh(self) {
        let Some(jwks) = &self.inner.jwks else {
            return;
        };
        loop {
            let wait = match self.refresh_jwks().await {
                Ok(n) => {
                    tracing::debug!(keys = n, "token key set refreshed");
                    jwks.refresh
                }
                Err(e) => {
                    tracing::warn!("token key set refresh failed: {e}");
                    jwks.refresh.min(JWKS_RETRY)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// The claims of a JWS whose header names exactly `alg` (no `none`, no other algorithm, no
/// critical extensions) and whose signature verifies with one of `keys` (by `kid`). Claims
/// are not checked here.
pub(crate) fn verified_claims(
    token: &str,
    alg: TokenAlgorithm,
    keys: &KeySet,
) -> Result<Map<String, Value>, TokenError> {
    let mut parts = token.split('.');
    let (Some(h64), Some(p64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "a JWT has three base64url parts separated by dots",
        ));
    };
    let header_json = b64(h64).ok_or(TokenError::Malformed("the header is not base64url"))?;
    let header: RawHeader = serde_json::from_slice(&header_json).map_err(|_| {
        TokenError::Malformed("the header is not a JSON object with a string \"alg\"")
    })?;
    if header.alg != alg.as_str() {
        return Err(TokenError::UnsupportedAlgorithm(
            quote(&header.alg),
            alg.as_str(),
        ));
    }
    if header.crit.is_some() {
        return Err(TokenError::Malformed(
            "the header lists critical extensions (crit), which are not supported",
        ));
    }
    if s64.is_empty() {
        return Err(TokenError::Malformed("the signature part is empty"));
    }
    let key = select_key(keys, header.kid.as_deref())?;
    let signed = &token[..h64.len() + 1 + p64.len()];
    match jsonwebtoken::crypto::verify(s64, signed.as_bytes(), key, alg.jwt()) {
        Ok(true) => {}
        Ok(false) => return Err(TokenError::BadSignature),
        Err(e) => {
            return Err(match e.kind() {
                jsonwebtoken::errors::ErrorKind::Base64(_) => {
                    TokenError::Malformed("the signature is not base64url")
                }
                _ => TokenError::BadSignature,
            });
        }
    }
    let payload = b64(p64).ok_or(TokenError::Malformed("the payload is not base64url"))?;
    let claims: Map<String, Value> = serde_json::from_slice(&payload)
        .map_err(|_| TokenError::Malformed("the payload is not a JSON object"))?;
    Ok(claims)
}

fn b64(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(part).ok()
}

fn select_key<'a>(keys: &'a KeySet, kid: Option<&str>) -> Result<&'a DecodingKey, TokenError> {
    match keys {
        KeySet::Single(key) => Ok(key),
        KeySet::NotYetFetched => Err(TokenError::KeysUnavailable),
        KeySet::Jwks(set) => match kid {
            Some(kid) => set
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .map(|k| &k.key)
                .ok_or_else(|| {
                    TokenError::UnknownKey(Some(kid.chars().take(KID_KEEP_CHARS).collect()))
                }),
            None if set.len() == 1 => Ok(&set[0].key),
            None => Err(TokenError::UnknownKey(None)),
        },
    }
}
