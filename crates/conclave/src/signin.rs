//! Sign-in over HTTP: `POST /api/session` (sign in), `GET /api/session` (who am I),
//! `DELETE /api/session` (sign out). The session is an HttpOnly, Secure, SameSite=Strict
//! cookie; requests that change state must be JSON from this origin (no cross-site form can
//! send them). Password guesses are throttled per address and per account name.
//!
//! When a second factor is due (`[accounts] mfa`, see `second_factor.rs`), a correct password
//! gives a short "half session": it counts as signed out everywhere except the second-factor
//! endpoints, which replace it with a full session.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use conclave_room::{Throttle, ThrottleConfig};
use conclave_store::{LoginError, Store};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "conclave_session";

/// What sign-in needs.
#[derive(Clone)]
pub struct SignIn {
    /// The account database.
    pub store: Arc<Store>,
    /// Failed sign-ins per address and per account name.
    pub throttle: Arc<Mutex<(Throttle<IpAddr>, Throttle<String>)>>,
    /// Session lifetime in seconds (the cookie's Max-Age).
    pub session_secs: u64,
    /// The threshold at which a name or address is locked out (for the audit record).
    lockout_after: u32,
    /// Audit log and counters.
    pub edges: crate::conference::Edges,
    /// `[accounts] mfa`.
    pub mfa: crate::config::MfaPolicy,
    /// Seals TOTP secrets.
    pub factor_key: Arc<conclave_store::FactorKey>,
    /// `[accounts] totp_issuer`.
    pub issuer: String,
}

/// How long a half session lasts: time to open the app and type a code, or to enrol.
pub const HALF_SESSION_SECS: u64 = 600;

/// A valid session and what it is worth.
pub struct SessionView {
    /// The session token (from the cookie).
    pub token: String,
    /// Its account.
    pub account: conclave_store::Account,
    /// What the policy makes of it.
    pub standing: crate::second_factor::Standing,
    /// The account's second factors.
    pub factors: conclave_store::Factors,
}

impl SignIn {
    /// Sign-in on `store` with the `[attempts]` throttle.
    pub fn new(
        store: Arc<Store>,
        throttle: ThrottleConfig,
        accounts: &crate::config::AccountsConfig,
        factor_key: conclave_store::FactorKey,
        edges: crate::conference::Edges,
    ) -> SignIn {
        SignIn {
            store,
            mfa: accounts.mfa,
            factor_key: Arc::new(factor_key),
            issuer: accounts.totp_issuer.clone(),
            lockout_after: throttle.lockout_after,
            edges,
            throttle: Arc::new(Mutex::new((
                Throttle::new(throttle.clone()),
                Throttle::new(throttle),
            ))),
            session_secs: accounts.session_hours * 3600,
        }
    }

    /// The account behind a session cookie, if the session is valid and full (a half
    /// session waiting for its second factor gives `None`). Blocking: call off the runtime.
    pub fn account_for(&self, headers: &HeaderMap) -> Option<conclave_store::Account> {
        self.session_for(headers)
            .filter(|v| v.standing == crate::second_factor::Standing::Full)
            .map(|v| v.account)
    }

    /// The session behind the cookie, full or half. Blocking.
    pub fn session_for(&self, headers: &HeaderMap) -> Option<SessionView> {
        let token = crate::http::cookie(headers, SESSION_COOKIE)?;
        if token.len() != conclave_store::TOKEN_CHARS {
            return None;
        }
        let now = conclave_store::OffsetDateTime::now_utc();
        let (account, factor) = self.store.session(token, now).ok().flatten()?;
        let factors = self.store.factors(account.id).ok()?;
        Some(SessionView {
            token: token.to_owned(),
            standing: crate::second_factor::standing(self.mfa, account.role, factor, factors),
            account,
            factors,
        })
    }

    /// `Some(429 response)` while the address or the name is throttled.
    pub fn throttled(&self, addr: IpAddr, user: &str) -> Option<Response> {
        let now = Instant::now();
        let mut t = self.throttle.lock().expect("throttle lock");
        let wait = [t.0.check(now, &addr), t.1.check(now, &user.to_owned())]
            .into_iter()
            .filter_map(Result::err)
            .max()?;
        drop(t);
        self.edges.counters.signin_throttled.inc();
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            &format!(
                "too many failed sign-ins; try again in {}",
                conclave_room::throttle::describe_wait(wait)
            ),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        Some(r)
    }

    /// Count a failed attempt (password or second factor) against the address and the name,
    /// and audit it (and a lockout when it is reached).
    pub fn failed(&self, addr: IpAddr, user: &str, actor: String, why: String) {
        self.edges.counters.signin_failure.inc();
        self.audit("signin.failure", actor.clone(), addr, why);
        let now = Instant::now();
        let mut t = self.throttle.lock().expect("throttle lock");
        t.0.fail(now, &addr);
        t.1.fail(now, &user.to_owned());
        let (a, n) = (t.0.failures(&addr), t.1.failures(&user.to_owned()));
        drop(t);
        if a == self.lockout_after {
            self.audit(
                "signin.lockout",
                actor.clone(),
                addr,
                "address locked out".into(),
            );
        }
        if n == self.lockout_after {
            self.audit(
                "signin.lockout",
                actor,
                addr,
                "account name locked out".into(),
            );
        }
    }

    /// One audit record of a sign-in event.
    pub fn audit(&self, kind: &'static str, actor: String, addr: IpAddr, detail: String) {
        self.edges.recorder.audit(crate::records::AuditEntry {
            kind,
            actor,
            addr: Some(addr),
            detail,
            ..Default::default()
        });
    }

    /// The response of a full sign-in: who, and the session cookie.
    pub fn signed_in(&self, account: &conclave_store::Account, token: &str) -> Response {
        let mut r = Json(Me::of(account)).into_response();
        r.headers_mut()
            .insert(header::SET_COOKIE, session_cookie(token, self.session_secs));
        r
    }
}

/// `POST /api/session` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: String,
    password: String,
}

/// Who is signed in, as the API says it.
#[derive(Debug, Serialize)]
pub struct Me {
    username: String,
    name: String,
    /// `moderator` or `member`.
    role: &'static str,
}

impl Me {
    /// The API form of an account.
    pub fn of(a: &conclave_store::Account) -> Me {
        Me {
            username: a.username.clone(),
            name: a.display_name.clone(),
            role: a.role.as_str(),
        }
    }
}

/// A JSON error response `{"error": code, "message": message}`.
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": code, "message": message}))).into_response()
}

/// Requests that change state must say they are JSON (a cross-site form cannot) and, when
/// the browser names an origin, come from ours. `Some(refusal)` otherwise.
pub fn state_change_allowed(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<Response> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Some(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_request",
            "send JSON (Content-Type: application/json)",
        ));
    }
    if !crate::http::same_origin(headers, uri) {
        return Some(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "requests are accepted from this server's own pages only",
        ));
    }
    None
}

/// The `Set-Cookie` value of a session (or, with "" and 0, of its removal).
pub fn session_cookie(value: &str, max_age: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"
    ))
    .expect("cookie is ASCII")
}

/// `POST /api/session`.
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
    let Ok(creds) = serde_json::from_slice::<Credentials>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected {\"username\": \"…\", \"password\": \"…\"}",
        );
    };
    let addr = peer_ip(peer);
    let user = creds.username.trim().to_lowercase();
    if let Some(r) = si.throttled(addr, &user) {
        return r;
    }
    let store = si.store.clone();
    let mfa = si.mfa;
    let outcome = tokio::task::spawn_blocking(move || {
        let now = conclave_store::OffsetDateTime::now_utc();
        let account = store.verify_login(&creds.username, &creds.password, now)?;
        let factors = store.factors(account.id)?;
        let standing = crate::second_factor::standing(
            mfa,
            account.role,
            conclave_store::SessionFactor::Password,
            factors,
        );
        let session = if standing == crate::second_factor::Standing::Full {
            store.record_login(account.id, now)?;
            store.create_session(account.id, now)?
        } else {
            store.create_session_with(
                account.id,
                conclave_store::SessionFactor::Password,
                time::Duration::seconds(HALF_SESSION_SECS as i64),
                now,
            )?
        };
        Ok::<_, LoginError>((account, session, standing))
    })
    .await;
    match outcome {
        Ok(Ok((account, session, crate::second_factor::Standing::Full))) => {
            si.edges.counters.signin_success.inc();
            si.audit(
                "signin.success",
                format!("account:{}", account.username),
                addr,
                "password".into(),
            );
            si.signed_in(&account, &session.token)
        }
        Ok(Ok((account, session, standing))) => {
            // The password was right; the second factor is next.
            si.audit(
                "signin.password",
                format!("account:{}", account.username),
                addr,
                format!("second factor due: {}", standing.next()),
            );
            let mut r = Json(json!({
                "username": account.username,
                "name": account.display_name,
                "role": account.role.as_str(),
                "next": standing.next(),
            }))
            .into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                session_cookie(&session.token, HALF_SESSION_SECS),
            );
            r
        }
        Ok(Err(LoginError::Store(e))) => {
            tracing::error!("sign-in: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the account database failed",
            )
        }
        Ok(Err(why)) => {
            // Unknown user, wrong password, disabled, expired: one answer for all. The audit
            // log names the account only when it exists (a typed name may be a password).
            let actor = match why {
                LoginError::UnknownUser => "unknown".to_owned(),
                _ => format!("account:{user}"),
            };
            si.failed(addr, &user, actor, why.to_string());
            error(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "wrong user name or password, or the account cannot sign in",
            )
        }
        Err(e) => {
            tracing::error!("sign-in task: {e}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "sign-in failed",
            )
        }
    }
}

/// The client address of a request (loopback when the edge did not say).
pub fn peer_ip(peer: Option<axum::Extension<crate::http::PeerAddr>>) -> IpAddr {
    peer.map_or(IpAddr::from([127, 0, 0, 1]), |p| p.0.0.ip().to_canonical())
}

/// `GET /api/session`.
pub async fn whoami(State(si): State<SignIn>, headers: HeaderMap) -> Response {
    use crate::second_factor::Standing;
    let view = tokio::task::spawn_blocking(move || si.session_for(&headers))
        .await
        .ok()
        .flatten();
    match view {
        Some(v) if v.standing == Standing::Full => Json(Me::of(&v.account)).into_response(),
        Some(v) => {
            let mut r = Json(json!({
                "error": v.standing.next(),
                "message": match v.standing {
                    Standing::SecondFactor => "enter the code from your authenticator app",
                    _ => "set up an authenticator app to finish signing in",
                },
                "username": v.account.username,
                "name": v.account.display_name,
                "next": v.standing.next(),
            }))
            .into_response();
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
        None => error(StatusCode::UNAUTHORIZED, "signed_out", "not signed in"),
    }
}

/// `DELETE /api/session`.
pub async fn sign_out(
    State(si): State<SignIn>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    if !crate::http::same_origin(&headers, &uri) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "requests are accepted from this server's own pages only",
        );
    }
    if let Some(token) = crate::http::cookie(&headers, SESSION_COOKIE).map(str::to_owned) {
        let store = si.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.revoke_session(&token)).await;
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie("", 0));
    r
}
