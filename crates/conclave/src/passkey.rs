//! Passkeys (WebAuthn Level 2) for local accounts: register one while signed in, then sign
//! in with it instead of the password. Verification is ours, on aws-lc-rs, for the subset a
//! passkey needs: attestation "none", user verification required, ES256 / EdDSA / RS256.
//!
//! What is checked (WebAuthn 7.1 and 7.2): the client data's type, the challenge (issued
//! here, single use, 5 minutes), the origin (this server's, from the request's Host) and no
//! cross-origin; the authenticator data's RP ID hash, the user-present and user-verified
//! flags; for sign-in the signature over authenticatorData || SHA-256(clientDataJSON) with
//! the registered key, the user handle, and a signature counter that must move forward.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{self, UnparsedPublicKey};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use conclave_store::{AccountId, OffsetDateTime, Passkey, SessionFactor};
use serde::Deserialize;
use serde_json::json;

use crate::second_factor::{actor, blocking, full_view, no_session};
use crate::signin::{SignIn, error, peer_ip, state_change_allowed};

/// How long a challenge stays valid.
const CHALLENGE_TTL: Duration = Duration::from_secs(300);
/// Open ceremonies at most (older ones are dropped first).
const MAX_CEREMONIES: usize = 10_000;
/// Open ceremonies per owner (an account registering, or an address network signing in):
/// asking for more drops that owner's oldest, so a flood from one place cannot push out
/// other people's challenges.
const MAX_CEREMONIES_PER_OWNER: usize = 8;
/// COSE algorithms we verify.
const ES256: i64 = -7;
const EDDSA: i64 = -8;
const RS256: i64 = -257;
/// Authenticator data flags.
const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_AT: u8 = 0x40;

/// What a challenge was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Register(AccountId),
    SignIn,
}

/// Who asked for a challenge, for the per-owner cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Account(AccountId),
    /// The address, IPv6 cut to its /64 (one subscriber's usual allocation).
    Net(IpAddr),
}

impl Owner {
    fn of(purpose: Purpose, from: IpAddr) -> Owner {
        match (purpose, from) {
            (Purpose::Register(id), _) => Owner::Account(id),
            (Purpose::SignIn, addr) => Owner::Net(net_of(addr)),
        }
    }
}

/// The network an address counts as for per-owner caps: IPv4 itself, IPv6 cut to its /64
/// (one subscriber's usual allocation).
pub fn net_of(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

/// Open ceremonies: challenge -> purpose, owner and deadline. Each challenge is taken once.
#[derive(Default)]
pub struct Ceremonies(Mutex<HashMap<[u8; 32], (Purpose, Owner, Instant)>>);

impl Ceremonies {
    fn issue(&self, purpose: Purpose, from: IpAddr) -> [u8; 32] {
        let challenge: [u8; 32] = rand::random();
        let owner = Owner::of(purpose, from);
        let now = Instant::now();
        let mut m = self.0.lock().expect("ceremonies lock");
        m.retain(|_, (_, _, until)| *until > now);
        let oldest = |m: &HashMap<[u8; 32], (Purpose, Owner, Instant)>, mine: bool| {
            m.iter()
                .filter(|(_, (_, o, _))| !mine || *o == owner)
                .min_by_key(|(_, (_, _, t))| *t)
                .map(|(k, _)| *k)
        };
        let own = m.values().filter(|(_, o, _)| *o == owner).count();
        if own >= MAX_CEREMONIES_PER_OWNER
            && let Some(k) = oldest(&m, true)
        {
            m.remove(&k);
        } else if m.len() >= MAX_CEREMONIES
            && let Some(k) = oldest(&m, false)
        {
            m.remove(&k);
        }
        m.insert(challenge, (purpose, owner, now + CHALLENGE_TTL));
        challenge
    }

    fn take(&self, challenge: &[u8], purpose: Purpose) -> bool {
        let Ok(key) = <[u8; 32]>::try_from(challenge) else {
            return false;
        };
        let mut m = self.0.lock().expect("ceremonies lock");
        match m.remove(&key) {
            Some((p, _, until)) => p == purpose && until > Instant::now(),
            None => false,
        }
    }
}

/// Why a passkey was refused (for the audit log; the client hears less).
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// A field is not base64url, or the JSON is not WebAuthn's.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The client data's type is not the ceremony's.
    #[error("client data type is not {0}")]
    WrongType(&'static str),
    /// The challenge was not issued here for this, was used, or expired.
    #[error("unknown, used or expired challenge")]
    Challenge,
    /// Signed for another origin, or in a cross-origin frame.
    #[error("signed for origin {0:?}")]
    Origin(String),
    /// The authenticator data is for another relying party.
    #[error("authenticator data is for another site")]
    RpId,
    /// The authenticator did not verify the user (PIN, biometric).
    #[error("the user was not verified by the authenticator")]
    NotVerified,
    /// The public key is not ES256, EdDSA or RS256, or does not match the algorithm.
    #[error("unsupported public key: {0}")]
    Key(String),
    /// No passkey with this ID.
    #[error("unknown passkey")]
    Unknown,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// The user handle is not the passkey's account.
    #[error("user handle does not match the passkey")]
    UserHandle,
    /// The account is disabled or expired.
    #[error("account is disabled or expired")]
    Disabled,
    /// The signature counter went backwards: a cloned authenticator.
    #[error("signature counter did not increase (cloned authenticator?)")]
    Counter,
}

fn b64(field: &'static str, v: &str) -> Result<Vec<u8>, PasskeyError> {
    B64.decode(v.trim_end_matches('='))
        .map_err(|_| PasskeyError::Malformed(field))
}

/// The relying-party ID and origin of a request: its Host without the port, and
/// `https://Host`.
fn rp_of(headers: &HeaderMap) -> Option<(String, String)> {
    let host = headers
        .get(header::HOST)?
        .to_str()
        .ok()?
        .to_ascii_lowercase();
    let id = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?.to_owned(),
        None => host.split(':').next()?.to_owned(),
    };
    Some((id, format!("https://{host}")))
}

/// Check the client data; the challenge it carries.
fn client_data(json: &[u8], kind: &'static str, origin: &str) -> Result<Vec<u8>, PasskeyError> {
    #[derive(Deserialize)]
    struct ClientData {
        #[serde(rename = "type")]
        kind: String,
        challenge: String,
        origin: String,
        #[serde(default, rename = "crossOrigin")]
        cross_origin: bool,
    }
    let c: ClientData =
        serde_json::from_slice(json).map_err(|_| PasskeyError::Malformed("clientDataJSON"))?;
    if c.kind != kind {
        return Err(PasskeyError::WrongType(kind));
    }
    if c.cross_origin || !c.origin.eq_ignore_ascii_case(origin) {
        return Err(PasskeyError::Origin(c.origin));
    }
    b64("challenge", &c.challenge)
}

/// The fixed part of authenticator data: flags and counter, after checking the RP ID hash
/// and that the user was present and verified.
fn auth_data(data: &[u8], rp_id: &str) -> Result<(u8, u32), PasskeyError> {
    if data.len() < 37 {
        return Err(PasskeyError::Malformed("authenticatorData"));
    }
    if data[..32] != *digest(&SHA256, rp_id.as_bytes()).as_ref() {
        return Err(PasskeyError::RpId);
    }
    let flags = data[32];
    if flags & FLAG_UP == 0 || flags & FLAG_UV == 0 {
        return Err(PasskeyError::NotVerified);
    }
    let count = u32::from_be_bytes([data[33], data[34], data[35], data[36]]);
    Ok((flags, count))
}

/// The key bytes aws-lc-rs verifies with, from a SubjectPublicKeyInfo of `alg`.
fn verify_key(spki: &[u8], alg: i64) -> Result<Vec<u8>, PasskeyError> {
    use x509_parser::prelude::FromDer;
    let (rest, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki)
        .map_err(|_| PasskeyError::Key("not a SubjectPublicKeyInfo".into()))?;
    if !rest.is_empty() {
        return Err(PasskeyError::Key("trailing bytes".into()));
    }
    let oid = info.algorithm.algorithm.to_id_string();
    let param = info
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    let key = info.subject_public_key.data.to_vec();
    let ok = match alg {
        ES256 => {
            oid == "1.2.840.10045.2.1"
                && param.as_deref() == Some("1.2.840.10045.3.1.7")
                && key.len() == 65
                && key[0] == 4
        }
        EDDSA => oid == "1.3.101.112" && key.len() == 32,
        RS256 => oid == "1.2.840.113549.1.1.1",
        _ => false,
    };
    if !ok {
        return Err(PasskeyError::Key(format!(
            "algorithm {alg} with key type {oid}"
        )));
    }
    Ok(key)
}

fn verify_signature(
    key: &Passkey,
    message: &[u8],
    signature_bytes: &[u8],
) -> Result<(), PasskeyError> {
    let raw = verify_key(&key.public_key, key.alg)?;
    let alg: &dyn signature::VerificationAlgorithm = match key.alg {
        ES256 => &signature::ECDSA_P256_SHA256_ASN1,
        EDDSA => &signature::ED25519,
        _ => &signature::RSA_PKCS1_2048_8192_SHA256,
    };
    UnparsedPublicKey::new(alg, raw)
        .verify(message, signature_bytes)
        .map_err(|_| PasskeyError::Signature)
}

/// `authenticatorData || SHA-256(clientDataJSON)`, what an assertion signs.
fn signed_message(auth: &[u8], client: &[u8]) -> Vec<u8> {
    let mut m = auth.to_vec();
    m.extend_from_slice(digest(&SHA256, client).as_ref());
    m
}

fn refused(why: &str) -> Response {
    error(StatusCode::UNAUTHORIZED, "passkey_refused", why)
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!("passkey: {e}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the account database failed",
    )
}

fn no_host() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "bad_request",
        "the request names no host",
    )
}

/// `POST /api/account/passkeys/options`: what `navigator.credentials.create` needs.
pub async fn registration_options(
    State(si): State<SignIn>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    if let Some(r) = state_change_allowed(&headers, &uri) {
        return r;
    }
    let Some((rp_id, _)) = rp_of(&headers) else {
        return no_host();
    };
    let Some(v) = full_view(&si, headers).await else {
        return no_session();
    };
    if !v.account.is_local() {
        return error(
            StatusCode::FORBIDDEN,
            "not_local",
            "accounts from a directory sign in with the directory's password",
        );
    }
    let store = si.store.clone();
    let id = v.account.id;
    let Some(Ok(existing)) = blocking(move || store.passkeys(id)).await else {
        return internal("listing passkeys failed");
    };
    if existing.len() >= conclave_store::MAX_PASSKEYS {
        return error(
            StatusCode::CONFLICT,
            "too_many_passkeys",
            &format!(
                "an account can have at most {} passkeys; remove one first",
                conclave_store::MAX_PASSKEYS
            ),
        );
    }
    // The account is the owner here; the address does not matter.
    let challenge = si
        .passkeys
        .issue(Purpose::Register(id), IpAddr::from([0, 0, 0, 0]));
    Json(json!({
        "challenge": B64.encode(challenge),
        "rp": {"id": rp_id, "name": si.issuer},
        "user": {
            "id": B64.encode(id.0.to_be_bytes()),
            "name": v.account.username,
            "displayName": v.account.display_name,
        },
        "algorithms": [ES256, EDDSA, RS256],
        "excludeCredentials": existing.iter().map(|k| B64.encode(&k.id)).collect::<Vec<_>>(),
        "timeoutMs": CHALLENGE_TTL.as_millis() as u64,
    }))
    .into_response()
}

/// `POST /api/account/passkeys` body: the parts of the new credential (base64url).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Registration {
    id: String,
    client_data_json: String,
    authenticator_data: String,
    public_key: String,
    public_key_algorithm: i64,
    #[serde(default)]
    name: Option<String>,
}

/// `POST /api/account/passkeys`: register the credential the browser created.
pub async fn register(
    State(si): State<SignIn>,
    peer: Option<axum::Extension<crate::http::PeerAddr>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = state_change_allowed(&headers, &uri) {
        return r;
    }
    let Some((rp_id, origin)) = rp_of(&headers) else {
        return no_host();
    };
    let Ok(reg) = serde_json::from_slice::<Registration>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected {\"id\", \"clientDataJson\", \"authenticatorData\", \"publicKey\", \
             \"publicKeyAlgorithm\", \"name\"?}",
        );
    };
    let addr = peer_ip(peer);
    let Some(v) = full_view(&si, headers).await else {
        return no_session();
    };
    let checked = (|| {
        let client = b64("clientDataJson", &reg.client_data_json)?;
        let challenge = client_data(&client, "webauthn.create", &origin)?;
        if !si
            .passkeys
            .take(&challenge, Purpose::Register(v.account.id))
        {
            return Err(PasskeyError::Challenge);
        }
        let auth = b64("authenticatorData", &reg.authenticator_data)?;
        let (flags, count) = auth_data(&auth, &rp_id)?;
        let id = b64("id", &reg.id)?;
        // Attested credential data: AAGUID (16), ID length (2), ID, COSE key.
        let at = auth.get(37 + 16..37 + 18);
        let id_ok = flags & FLAG_AT != 0
            && at.is_some_and(|n| {
                let n = usize::from(u16::from_be_bytes([n[0], n[1]]));
                auth.get(55..55 + n) == Some(id.as_slice())
            });
        if !id_ok || !(16..=1023).contains(&id.len()) {
            return Err(PasskeyError::Malformed("credential ID"));
        }
        let public_key = b64("publicKey", &reg.public_key)?;
        verify_key(&public_key, reg.public_key_algorithm)?;
        Ok(Passkey {
            id,
            account: v.account.id,
            public_key,
            alg: reg.public_key_algorithm,
            sign_count: count,
            name: reg
                .name
                .as_deref()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .unwrap_or("Passkey")
                .chars()
                .take(64)
                .collect(),
            created_at: OffsetDateTime::now_utc(),
            last_used_at: None,
        })
    })();
    let key = match checked {
        Ok(k) => k,
        Err(why) => {
            si.audit(
                "account.passkey_refused",
                actor(&v.account),
                addr,
                why.to_string(),
            );
            return error(
                StatusCode::BAD_REQUEST,
                "passkey_refused",
                &format!("the passkey was not registered: {why}"),
            );
        }
    };
    let store = si.store.clone();
    let name = key.name.clone();
    match blocking(move || store.add_passkey(&key)).await {
        Some(Ok(())) => {
            si.audit(
                "account.passkey_added",
                actor(&v.account),
                addr,
                name.clone(),
            );
            (StatusCode::CREATED, Json(json!({"name": name}))).into_response()
        }
        Some(Err(
            e @ (conclave_store::Error::PasskeyExists | conclave_store::Error::TooManyPasskeys(_)),
        )) => error(StatusCode::CONFLICT, "passkey_refused", &e.to_string()),
        Some(Err(e)) => internal(e),
        None => internal("task failed"),
    }
}

/// `POST /api/session/passkey/options`: a challenge for `navigator.credentials.get`.
pub async fn sign_in_options(
    State(si): State<SignIn>,
    peer: Option<axum::Extension<crate::http::PeerAddr>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    if let Some(r) = state_change_allowed(&headers, &uri) {
        return r;
    }
    let Some((rp_id, _)) = rp_of(&headers) else {
        return no_host();
    };
    let addr = peer_ip(peer);
    if let Some(r) = si.throttled(addr, &anonymous(addr)) {
        return r;
    }
    let challenge = si.passkeys.issue(Purpose::SignIn, addr);
    Json(json!({
        "challenge": B64.encode(challenge),
        "rpId": rp_id,
        "timeoutMs": CHALLENGE_TTL.as_millis() as u64,
    }))
    .into_response()
}

/// `POST /api/session/passkey` body: the assertion (base64url).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Assertion {
    id: String,
    client_data_json: String,
    authenticator_data: String,
    signature: String,
    #[serde(default)]
    user_handle: Option<String>,
}

/// `POST /api/session/passkey`: sign in with a passkey (a full session, no password).
pub async fn sign_in(
    State(si): State<SignIn>,
    peer: Option<axum::Extension<crate::http::PeerAddr>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = state_change_allowed(&headers, &uri) {
        return r;
    }
    let Some((rp_id, origin)) = rp_of(&headers) else {
        return no_host();
    };
    let Ok(a) = serde_json::from_slice::<Assertion>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected {\"id\", \"clientDataJson\", \"authenticatorData\", \"signature\", \
             \"userHandle\"?}",
        );
    };
    let addr = peer_ip(peer);
    // Guessing is throttled per address (no name is typed).
    if let Some(r) = si.throttled(addr, &anonymous(addr)) {
        return r;
    }
    let store = si.store.clone();
    let ceremonies = si.passkeys.clone();
    let outcome = blocking(move || check_assertion(&store, &ceremonies, &a, &rp_id, &origin))
        .await
        .unwrap_or(Err(Err("task failed".into())));
    match outcome {
        Ok(account) => {
            let store = si.store.clone();
            let id = account.id;
            let lifetime = time::Duration::seconds(si_session_secs(&si));
            let session = blocking(move || {
                let now = OffsetDateTime::now_utc();
                store.record_login(id, now)?;
                store.create_session_with(id, SessionFactor::Passkey, lifetime, now)
            })
            .await;
            match session {
                Some(Ok(s)) => {
                    si.edges.counters.signin_success.inc();
                    si.audit("signin.success", actor(&account), addr, "passkey".into());
                    si.signed_in(&account, &s.token)
                }
                Some(Err(e)) => internal(e),
                None => internal("task failed"),
            }
        }
        Err(Ok((who, why))) => {
            let name = who.clone().unwrap_or_else(|| anonymous(addr));
            si.failed(
                addr,
                &name,
                who.map_or("unknown".into(), |u| format!("account:{u}")),
                format!("passkey: {why}"),
            );
            refused("the passkey was not accepted")
        }
        Err(Err(e)) => internal(e),
    }
}

/// The throttle's "name" for passkey attempts that name no account: per address.
fn anonymous(addr: IpAddr) -> String {
    format!("passkey:{addr}")
}

fn si_session_secs(si: &SignIn) -> i64 {
    i64::try_from(si.session_secs).unwrap_or(i64::MAX)
}

type AssertionResult =
    Result<conclave_store::Account, Result<(Option<String>, PasskeyError), String>>;

/// Verify an assertion against the store (blocking). The account on success; else who it
/// claimed to be (if the passkey is known) and why, or a store failure.
fn check_assertion(
    store: &conclave_store::Store,
    ceremonies: &Ceremonies,
    a: &Assertion,
    rp_id: &str,
    origin: &str,
) -> AssertionResult {
    let fail = |who: Option<String>, why| Err(Ok((who, why)));
    let parts = (|| {
        let client = b64("clientDataJson", &a.client_data_json)?;
        let challenge = client_data(&client, "webauthn.get", origin)?;
        if !ceremonies.take(&challenge, Purpose::SignIn) {
            return Err(PasskeyError::Challenge);
        }
        let auth = b64("authenticatorData", &a.authenticator_data)?;
        let (_, count) = auth_data(&auth, rp_id)?;
        Ok((
            client,
            auth,
            count,
            b64("id", &a.id)?,
            b64("signature", &a.signature)?,
        ))
    })();
    let (client, auth, count, id, sig) = match parts {
        Ok(p) => p,
        Err(why) => return fail(None, why),
    };
    let key = match store.passkey(&id) {
        Ok(Some(k)) => k,
        Ok(None) => return fail(None, PasskeyError::Unknown),
        Err(e) => return Err(Err(e.to_string())),
    };
    let account = match store.account_by_id(key.account) {
        Ok(Some(acc)) => acc,
        Ok(None) => return fail(None, PasskeyError::Unknown),
        Err(e) => return Err(Err(e.to_string())),
    };
    let who = Some(account.username.clone());
    if let Err(why) = verify_signature(&key, &signed_message(&auth, &client), &sig) {
        return fail(who, why);
    }
    if let Some(h) = &a.user_handle {
        match b64("userHandle", h) {
            Ok(h) if h == key.account.0.to_be_bytes() => {}
            _ => return fail(who, PasskeyError::UserHandle),
        }
    }
    if !account.can_sign_in(OffsetDateTime::now_utc()) {
        return fail(who, PasskeyError::Disabled);
    }
    match store.use_passkey(&id, count, OffsetDateTime::now_utc()) {
        Ok(true) => Ok(account),
        Ok(false) => fail(who, PasskeyError::Counter),
        Err(e) => Err(Err(e.to_string())),
    }
}

/// `DELETE /api/account/passkeys/{id}`: remove one of the signed-in account's passkeys.
pub async fn remove(
    State(si): State<SignIn>,
    peer: Option<axum::Extension<crate::http::PeerAddr>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    if let Some(r) = crate::signin::foreign_origin(&headers, &uri) {
        return r;
    }
    let Ok(id) = b64("id", &id) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the passkey ID is not base64url",
        );
    };
    let Some(v) = full_view(&si, headers).await else {
        return no_session();
    };
    let store = si.store.clone();
    let account = v.account.id;
    match blocking(move || store.remove_passkey(account, &id)).await {
        Some(Ok(true)) => {
            si.audit(
                "account.passkey_removed",
                actor(&v.account),
                peer_ip(peer),
                String::new(),
            );
            StatusCode::NO_CONTENT.into_response()
        }
        Some(Ok(false)) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "this account has no such passkey",
        ),
        Some(Err(e)) => internal(e),
        None => internal("task failed"),
    }
}

/// The passkeys of the signed-in account, for `GET /api/account/factors`.
pub fn describe(keys: &[Passkey]) -> serde_json::Value {
    keys.iter()
        .map(|k| {
            json!({
                "id": B64.encode(&k.id),
                "name": k.name,
                "created_at": k.created_at.unix_timestamp(),
                "last_used_at": k.last_used_at.map(|t| t.unix_timestamp()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_from_one_network_drops_only_its_own_challenges() {
        let c = Ceremonies::default();
        let victim = c.issue(Purpose::SignIn, "192.0.2.7".parse().unwrap());
        let other6 = c.issue(Purpose::SignIn, "2001:db8:1::5".parse().unwrap());
        let first = c.issue(Purpose::SignIn, "2001:db8::1".parse().unwrap());
        let mut flood = Vec::new();
        for i in 0..200u16 {
            // Every address of one /64 counts as one owner.
            flood.push(c.issue(Purpose::SignIn, format!("2001:db8::{i:x}").parse().unwrap()));
        }
        assert!(
            !c.take(&first, Purpose::SignIn),
            "the flooder's oldest is dropped"
        );
        let open = flood.iter().filter(|k| c.take(*k, Purpose::SignIn)).count();
        assert_eq!(open, MAX_CEREMONIES_PER_OWNER);
        assert!(
            c.take(&victim, Purpose::SignIn),
            "another address keeps its challenge"
        );
        assert!(
            c.take(&other6, Purpose::SignIn),
            "another /64 keeps its challenge"
        );
        assert!(
            !c.take(&victim, Purpose::SignIn),
            "a challenge is taken once"
        );
    }

    #[test]
    fn a_challenge_is_only_for_its_purpose() {
        let c = Ceremonies::default();
        let id = AccountId(1);
        let reg = c.issue(Purpose::Register(id), IpAddr::from([0, 0, 0, 0]));
        assert!(!c.take(&reg, Purpose::SignIn));
        let reg = c.issue(Purpose::Register(id), IpAddr::from([0, 0, 0, 0]));
        assert!(!c.take(&reg, Purpose::Register(AccountId(2))));
        assert!(!c.take(&[0u8; 31], Purpose::SignIn), "wrong length");
    }
}
