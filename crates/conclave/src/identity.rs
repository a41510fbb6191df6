//! Bindings of account keys for E2EE identities (docs/architecture.md, "Identities bound to
//! accounts"; docs/security.md, "Identities bound to accounts").
//!
//! A signed-in page makes an Ed25519 *account key* in the browser and sends its public half
//! here; the server answers with a short-lived binding `{account, username, name, source,
//! key, origin, iat, exp}` signed with its own binding key. The page puts the binding into its
//! MLS leaf together with the account key's signature over the leaf, and other members check
//! both (web/e2ee/binding.js). The server never sees an MLS key and holds no account key.

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use serde_json::json;

use crate::second_factor::{full_view, no_session};
use crate::signin::{SignIn, error, state_change_allowed};

/// The binding key's file in the data directory (PKCS#8, 0600, made at first start).
pub const IDENTITY_KEY_FILE: &str = "identity.key";
/// Domain separation of what the binding key signs (the same string in web/e2ee/binding.js).
pub const BINDING_CONTEXT: &[u8] = b"conclave-binding-v1";
/// How long a binding is valid; pages renew it at every join.
pub const BINDING_SECS: i64 = 24 * 3600;

/// The server's Ed25519 binding key.
pub struct BindingKey {
    pair: Ed25519KeyPair,
}

impl BindingKey {
    /// Read `path`, or make a key there when it does not exist.
    pub fn load_or_create(path: &Path) -> anyhow::Result<BindingKey> {
        use anyhow::Context;
        let pkcs8 = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|_| anyhow::anyhow!("cannot make an Ed25519 key"))?;
                crate::tls::write_private(path, doc.as_ref())?;
                doc.as_ref().to_vec()
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|e| anyhow::anyhow!("{} is not an Ed25519 PKCS#8 key: {e}", path.display()))?;
        Ok(BindingKey { pair })
    }

    /// The public key, base64url (32 bytes), as `/api/settings` publishes it.
    pub fn public_b64(&self) -> String {
        B64.encode(self.pair.public_key().as_ref())
    }

    /// Sign a binding payload: Ed25519 over `field(BINDING_CONTEXT) || field(payload)`, each
    /// field a u32 big-endian length and its bytes.
    pub fn sign(&self, payload: &[u8]) -> Vec<u8> {
        self.pair.sign(&binding_message(payload)).as_ref().to_vec()
    }
}

/// The bytes a binding signature covers.
pub fn binding_message(payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(8 + BINDING_CONTEXT.len() + payload.len());
    for f in [BINDING_CONTEXT, payload] {
        m.extend_from_slice(&u32::try_from(f.len()).unwrap_or(u32::MAX).to_be_bytes());
        m.extend_from_slice(f);
    }
    m
}

/// `POST /api/account/identity` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityRequest {
    /// The account key's public half: 32 bytes of Ed25519, base64url.
    key: String,
}

/// `POST /api/account/identity`: bind the signed-in account to an account key for `exp`.
pub async fn bind(
    State(si): State<SignIn>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = state_change_allowed(&headers, &uri) {
        return r;
    }
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase)
    else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "no Host header");
    };
    let Ok(req) = serde_json::from_slice::<IdentityRequest>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected {\"key\": base64url of a 32-byte Ed25519 public key}",
        );
    };
    let Some(key) = B64.decode(&req.key).ok().filter(|k| k.len() == 32) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_key",
            "key must be base64url of a 32-byte Ed25519 public key",
        );
    };
    let Some(v) = full_view(&si, headers).await else {
        return no_session();
    };
    let now = conclave_store::OffsetDateTime::now_utc().unix_timestamp();
    let a = &v.account;
    let payload = json!({
        "v": 1,
        "origin": format!("https://{host}"),
        "account": a.id.0,
        "username": a.username,
        "name": a.display_name,
        "source": a.source,
        "key": B64.encode(&key),
        "iat": now,
        "exp": now + BINDING_SECS,
    })
    .to_string();
    let sig = si.binding.sign(payload.as_bytes());
    Json(json!({
        "payload": B64.encode(payload.as_bytes()),
        "sig": B64.encode(sig),
        "exp": now + BINDING_SECS,
    }))
    .into_response()
}
