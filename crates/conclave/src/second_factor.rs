//! Second factors over HTTP: the code after the password, setting up an authenticator app,
//! recovery codes (docs/protocol.md, "HTTP: second factor").
//!
//! What a session is worth is decided in one place, [`standing`]: a session signed in with a
//! second factor is full; a password-only session is full only when the account has no
//! second factor and the `[accounts] mfa` policy does not demand one. Otherwise it is a half
//! session, which can do exactly one thing: give the code ([`Standing::SecondFactor`]) or set
//! up an app ([`Standing::Enrol`]); a half session of an account that already has a factor
//! can never add another (the password alone must not be enough to replace a lost phone).
//! Every code attempt goes through the sign-in throttle and the audit log.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use conclave_store::{Account, AccountRole, FactorError, Factors, SessionFactor};
use serde::Deserialize;
use serde_json::json;

use crate::config::MfaPolicy;
use crate::signin::{SessionView, SignIn, error, peer_ip, state_change_allowed};

/// What a session is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Signed in.
    Full,
    /// Password given; the code from the app (or a recovery code) is next.
    SecondFactor,
    /// Password given; the policy wants an app set up first.
    Enrol,
}

impl Standing {
    /// The API's name for what comes next: `second_factor` or `enrol`.
    pub fn next(self) -> &'static str {
        match self {
            Standing::Full => "none",
            Standing::SecondFactor => "second_factor",
            Standing::Enrol => "enrol",
        }
    }
}

/// The one rule: what a session signed in with `factor` is worth for an account with `role`
/// and `factors` under `policy`.
pub fn standing(
    policy: MfaPolicy,
    role: AccountRole,
    factor: SessionFactor,
    factors: Factors,
) -> Standing {
    if factor.is_second() || policy == MfaPolicy::Off {
        Standing::Full
    } else if factors.any() {
        Standing::SecondFactor
    } else if policy.requires(role) {
        Standing::Enrol
    } else {
        Standing::Full
    }
}

/// Body of the code endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    /// Six digits from the app.
    #[serde(default)]
    code: Option<String>,
    /// A recovery code (second-factor endpoint only).
    #[serde(default)]
    recovery_code: Option<String>,
}

const BODY_HINT: &str = "expected {\"code\": \"123456\"} or {\"recovery_code\": \"xxxxx-xxxxx\"}";

/// The body, if it holds exactly one code of a sane length.
fn parse(body: &[u8]) -> Option<CodeBody> {
    let b: CodeBody = serde_json::from_slice(body).ok()?;
    let long = |v: &Option<String>| v.as_ref().is_some_and(|s| s.len() > 64);
    if b.code.is_some() == b.recovery_code.is_some() || long(&b.code) || long(&b.recovery_code) {
        return None;
    }
    Some(b)
}

pub(crate) fn no_session() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "signed_out",
        "sign in with your user name and password first",
    )
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!("second factor: {e}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the account database failed",
    )
}

fn invalid_code() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "invalid_code",
        "wrong code, or a code that was already used: wait for the next code in your app",
    )
}

/// Run a blocking store call.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// The session of the request, if any.
pub(crate) async fn view(si: &SignIn, headers: HeaderMap) -> Option<SessionView> {
    let si = si.clone();
    blocking(move || si.session_for(&headers)).await.flatten()
}

/// The session behind the cookie if it is full (a half session waiting for its second
/// factor is none).
pub(crate) async fn full_view(si: &SignIn, headers: HeaderMap) -> Option<SessionView> {
    view(si, headers)
        .await
        .filter(|v| v.standing == Standing::Full)
}

pub(crate) fn actor(a: &Account) -> String {
    format!("account:{}", a.username)
}

/// `POST /api/session/second-factor`: the code after the password.
pub async fn second_factor(
    State(si): State<SignIn>,
    peer: Option<axum::Extension<crate::http::PeerAddr>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = state_change_allowed(&headers, &uri) {
        return r;
    }
    let Some(body) = parse(&body) else {
        return error(StatusCode::BAD_REQUEST, "bad_request", BODY_HINT);
    };
    let addr = peer_ip(peer);
    let Some(v) = view(&si, headers).await else {
        return no_session();
    };
    if v.standing != Standing::SecondFactor {
        return error(
            StatusCode::CONFLICT,
            "no_second_factor_due",
            "this session does not wait for a second factor",
        );
    }
    if let Some(r) = si.throttled(addr, &v.account.username) {
        return r;
    }
    let (store, key) = (si.store.clone(), si.factor_key.clone());
    let (id, token) = (v.account.id, v.token.clone());
    let outcome = blocking(move || {
        let now = conclave_store::OffsetDateTime::now_utc();
        let (factor, left) = match (&body.code, &body.recovery_code) {
            (Some(code), _) => {
                store.verify_totp(&key, id, code, now)?;
                (SessionFactor::Totp, None)
            }
            (None, Some(code)) => (
                SessionFactor::Recovery,
                Some(store.use_recovery_code(id, code, now)?),
            ),
            (None, None) => return Err(FactorError::WrongCode),
        };
        store.record_login(id, now)?;
        let session = store.upgrade_session(&token, factor, now)?;
        Ok((factor, left, session))
    })
    .await;
    match outcome {
        Some(Ok((factor, left, Some(session)))) => {
            si.edges.counters.signin_success.inc();
            let detail = match left {
                Some(n) => format!("password and recovery code ({n} left)"),
                None => format!("password and {}", factor.as_str()),
            };
            si.audit("signin.success", actor(&v.account), addr, detail);
            si.signed_in(&v.account, &session.token)
        }
        Some(Ok((_, _, None))) => no_session(),
        Some(Err(FactorError::Store(e))) => internal(e),
        Some(Err(why)) => {
            si.failed(
                addr,
                &v.account.username,
                actor(&v.account),
                why.to_string(),
            );
            invalid_code()
        }
        None => internal("task failed"),
    }
}

/// `GET /api/account/factors`.
pub async fn factors(State(si): State<SignIn>, headers: HeaderMap) -> Response {
    let Some(v) = view(&si, headers).await else {
        return no_session();
    };
    if v.standing == Standing::SecondFactor {
        return no_session();
    }
    let store = si.store.clone();
    let id = v.account.id;
    let Some(Ok(keys)) = blocking(move || store.passkeys(id)).await else {
        return internal("listing passkeys failed");
    };
    Json(json!({
        "mfa": si.mfa.as_str(),
        "required": si.mfa.requires(v.account.role),
        "totp": v.factors.totp,
        "recovery_codes_left": v.factors.recovery_codes_left,
        "passkeys": v.factors.passkeys,
        "passkey_list": crate::passkey::describe(&keys),
    }))
    .into_response()
}

/// A session that may change its factors: a full one, or a half one that must enrol.
async fn manager(
    si: &SignIn,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
) -> Result<SessionView, Response> {
    if let Some(r) = state_change_allowed(headers, uri) {
        return Err(r);
    }
    if si.mfa == MfaPolicy::Off {
        return Err(error(
            StatusCode::FORBIDDEN,
            "mfa_off",
            "this server does not use second factors ([accounts] mfa = \"off\")",
        ));
    }
    match view(si, headers.clone()).await {
        Some(v) if v.standing != Standing::SecondFactor => Ok(v),
        _ => Err(no_session()),
    }
}

/// The QR code of `text` as rows of '0' and '1' (the page draws it on a canvas; no image is
/// made on the server).
fn qr_rows(text: &str) -> Option<Vec<String>> {
    let qr = qrcodegen::QrCode::encode_text(text, qrcodegen::QrCodeEcc::Medium).ok()?;
    let n = qr.size();
    Some(
        (0..n)
            .map(|y| {
                (0..n)
                    .map(|x| if qr.get_module(x, y) { '1' } else { '0' })
                    .collect()
            })
            .collect(),
    )
}

/// `POST /api/account/totp`: start setting up an app.
pub async fn begin_totp(
    State(si): State<SignIn>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let v = match manager(&si, &headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (store, key, issuer) = (si.store.clone(), si.factor_key.clone(), si.issuer.clone());
    let account = v.account.clone();
    let outcome = blocking(move || {
        store.begin_totp(
            &key,
            &account,
            &issuer,
            conclave_store::OffsetDateTime::now_utc(),
        )
    })
    .await;
    match outcome {
        Some(Ok(e)) => {
            let mut r = Json(json!({
                "secret": e.secret,
                "uri": e.uri,
                "qr": qr_rows(&e.uri),
                "digits": conclave_store::TOTP_DIGITS,
                "period": conclave_store::TOTP_STEP_SECS,
            }))
            .into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, "no-store".parse().expect("ASCII"));
            r
        }
        Some(Err(FactorError::AlreadyEnrolled)) => error(
            StatusCode::CONFLICT,
            "already_enrolled",
            "an authenticator app is already set up; remove it first",
        ),
        Some(Err(e)) => internal(e),
        None => internal("task failed"),
    }
}

/// `POST /api/account/totp/confirm`: the first code from the app finishes setting it up; the
/// answer holds the recovery codes (once) and a full session.
pub async fn confirm_totp(
    State(si): State<SignIn>,
    peer: Option<axum::Extension<crate::http::PeerAddr>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Response {
    let v = match manager(&si, &headers, &uri).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(CodeBody {
        code: Some(code),
        recovery_code: None,
    }) = parse(&body)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected {\"code\": \"123456\"}",
        );
    };
    let addr = peer_ip(peer);
    if let Some(r) = si.throttled(addr, &v.account.username) {
        return r;
    }
    let (store, key) = (si.store.clone(), si.factor_key.clone());
    let (id, token) = (v.account.id, v.token.clone());
    let outcome = blocking(move || {
        let now = conclave_store::OffsetDateTime::now_utc();
        let codes = store.confirm_totp(&key, id, &code, now)?;
        store.record_login(id, now)?;
        let session = store.upgrade_session(&token, SessionFactor::Totp, now)?;
        Ok::<_, FactorError>((codes, session))
    })
    .await;
    match outcome {
        Some(Ok((codes, Some(session)))) => {
            si.audit(
                "account.totp_enrolled",
                actor(&v.account),
                addr,
                format!("{} recovery codes issued", codes.len()),
            );
            let mut r = si.signed_in(&v.account, &session.token);
            let cookie = r.headers_mut().remove(header::SET_COOKIE);
            let mut r = Json(json!({
                "username": v.account.username,
                "name": v.account.display_name,
                "role": v.account.role.as_str(),
                "recovery_codes": codes,
            }))
            .into_response();
            if let Some(c) = cookie {
                r.headers_mut().insert(header::SET_COOKIE, c);
            }
            r.headers_mut()
                .insert(header::CACHE_CONTROL, "no-store".parse().expect("ASCII"));
            r
        }
        Some(Ok((_, None))) => no_session(),
        Some(Err(FactorError::Store(e))) => internal(e),
        Some(Err(FactorError::NoTotp | FactorError::AlreadyEnrolled)) => error(
            StatusCode::CONFLICT,
            "no_enrolment",
            "no authenticator app is being set up: start again",
        ),
        Some(Err(why)) => {
            si.failed(
                addr,
                &v.account.username,
                actor(&v.account),
                why.to_string(),
            );
            invalid_code()
        }
        None => internal("task failed"),
    }
}

/// What a full session may do with a current code: remove the app, or get new recovery
/// codes.
enum WithCode {
    Remove,
    NewRecoveryCodes,
}

async fn with_code(
    si: SignIn,
    peer: Option<axum::Extension<crate::http::PeerAddr>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
    what: WithCode,
) -> Response {
    let v = match manager(&si, &headers, &uri).await {
        Ok(v) if v.standing == Standing::Full => v,
        Ok(_) => return no_session(),
        Err(r) => return r,
    };
    let Some(CodeBody {
        code: Some(code),
        recovery_code: None,
    }) = parse(&body)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected {\"code\": \"123456\"}",
        );
    };
    if matches!(what, WithCode::Remove) && si.mfa.requires(v.account.role) {
        return error(
            StatusCode::FORBIDDEN,
            "mfa_required",
            "this server requires an authenticator app for your account; an administrator \
             can reset it (conclave user reset-factors)",
        );
    }
    let addr = peer_ip(peer);
    if let Some(r) = si.throttled(addr, &v.account.username) {
        return r;
    }
    let (store, key) = (si.store.clone(), si.factor_key.clone());
    let id = v.account.id;
    let remove = matches!(what, WithCode::Remove);
    let outcome = blocking(move || {
        let now = conclave_store::OffsetDateTime::now_utc();
        store.verify_totp(&key, id, &code, now)?;
        if remove {
            store.reset_factors(id)?;
            Ok::<_, FactorError>(None)
        } else {
            Ok(Some(store.new_recovery_codes(id, now)?))
        }
    })
    .await;
    match outcome {
        Some(Ok(None)) => {
            si.audit(
                "account.totp_removed",
                actor(&v.account),
                addr,
                String::new(),
            );
            StatusCode::NO_CONTENT.into_response()
        }
        Some(Ok(Some(codes))) => {
            si.audit(
                "account.recovery_codes_renewed",
                actor(&v.account),
                addr,
                format!("{} recovery codes issued", codes.len()),
            );
            let mut r = Json(json!({ "recovery_codes": codes })).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, "no-store".parse().expect("ASCII"));
            r
        }
        Some(Err(FactorError::Store(e))) => internal(e),
        Some(Err(why)) => {
            si.failed(
                addr,
                &v.account.username,
                actor(&v.account),
                why.to_string(),
            );
            invalid_code()
        }
        None => internal("task failed"),
    }
}

/// `DELETE /api/account/totp` with `{"code"}`: remove the app (and the recovery codes).
pub async fn remove_totp(
    State(si): State<SignIn>,
    peer: Option<axum::Extension<crate::http::PeerAddr>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Response {
    with_code(si, peer, headers, uri, body, WithCode::Remove).await
}

/// `POST /api/account/recovery-codes` with `{"code"}`: new recovery codes.
pub async fn new_recovery_codes(
    State(si): State<SignIn>,
    peer: Option<axum::Extension<crate::http::PeerAddr>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> Response {
    with_code(si, peer, headers, uri, body, WithCode::NewRecoveryCodes).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standing_follows_the_policy() {
        use AccountRole::{Member, Moderator};
        use MfaPolicy::*;
        use SessionFactor::{Password, Recovery, Totp};
        use Standing::*;
        let none = Factors::default();
        let app = Factors {
            totp: true,
            recovery_codes_left: 10,
            passkeys: 0,
        };
        let cases = [
            // policy, role, session factor, factors -> standing
            (Off, Moderator, Password, app, Full),
            (Optional, Moderator, Password, none, Full),
            (Optional, Member, Password, app, SecondFactor),
            (Optional, Member, Totp, app, Full),
            (Moderators, Member, Password, none, Full),
            (Moderators, Moderator, Password, none, Enrol),
            (Moderators, Moderator, Password, app, SecondFactor),
            (Moderators, Moderator, Recovery, app, Full),
            (Required, Member, Password, none, Enrol),
            (Required, Member, Totp, app, Full),
        ];
        for (policy, role, factor, factors, want) in cases {
            assert_eq!(
                standing(policy, role, factor, factors),
                want,
                "{policy:?} {role:?} {factor:?} {factors:?}"
            );
        }
    }

    #[test]
    fn qr_code_of_an_otpauth_uri_is_square() {
        let rows =
            qr_rows("otpauth://totp/Conclave:ada?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert!(rows.len() >= 21);
        assert!(rows.iter().all(|r| r.len() == rows.len()));
    }
}
