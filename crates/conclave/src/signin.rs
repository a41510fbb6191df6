//! Sign-in over HTTP: `POST /api/session` (sign in), `GET /api/session` (who am I),
//! `DELETE /api/session` (sign out). The session is an HttpOnly, Secure, SameSite=Strict
//! cookie; requests that change state must be JSON from this origin (no cross-site form can
//! send them). Password guesses are throttled per address and per account name.

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
}

impl SignIn {
    /// Sign-in on `store` with the `[attempts]` throttle.
    pub fn new(
        store: Arc<Store>,
        throttle: ThrottleConfig,
        session_secs: u64,
        edges: crate::conference::Edges,
    ) -> SignIn {
        SignIn {
            store,
            lockout_after: throttle.lockout_after,
            edges,
            throttle: Arc::new(Mutex::new((
                Throttle::new(throttle.clone()),
                Throttle::new(throttle),
            ))),
            session_secs,
        }
    }

    /// The account behind a session cookie, if it is valid (blocking: call off the runtime).
    pub fn account_for(&self, headers: &HeaderMap) -> Option<conclave_store::Account> {
        let token = crate::http::cookie(headers, SESSION_COOKIE)?;
        if token.len() != conclave_store::TOKEN_CHARS {
            return None;
        }
        self.store
            .session_account(token, conclave_store::OffsetDateTime::now_utc())
            .ok()
            .flatten()
    }
}

/// `POST /api/session` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: String,
    password: String,
}

#[derive(Debug, Serialize)]
struct Me {
    username: String,
    name: String,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
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

fn session_cookie(value: &str, max_age: u64) -> HeaderValue {
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
    let addr = peer.map_or(IpAddr::from([127, 0, 0, 1]), |p| p.0.0.ip().to_canonical());
    let user = creds.username.trim().to_lowercase();
    let now = Instant::now();
    {
        let mut t = si.throttle.lock().expect("throttle lock");
        let wait = [t.0.check(now, &addr), t.1.check(now, &user)]
            .into_iter()
            .filter_map(Result::err)
            .max();
        if let Some(wait) = wait {
            si.edges.counters.signin_throttled.inc();
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
            return r;
        }
    }
    let store = si.store.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let now = conclave_store::OffsetDateTime::now_utc();
        let account = store.verify_login(&creds.username, &creds.password, now)?;
        store
            .record_login(account.id, now)
            .map_err(LoginError::Store)?;
        let session = store
            .create_session(account.id, now)
            .map_err(LoginError::Store)?;
        Ok::<_, LoginError>((account, session))
    })
    .await;
    let audit = |kind, actor: String, detail: String| {
        si.edges.recorder.audit(crate::records::AuditEntry {
            kind,
            actor,
            addr: Some(addr),
            detail,
            ..Default::default()
        });
    };
    match outcome {
        Ok(Ok((account, session))) => {
            si.edges.counters.signin_success.inc();
            audit(
                "signin.success",
                format!("account:{}", account.username),
                String::new(),
            );
            let mut r = Json(Me {
                username: account.username,
                name: account.display_name,
            })
            .into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                session_cookie(&session.token, si.session_secs),
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
            si.edges.counters.signin_failure.inc();
            let actor = match why {
                LoginError::UnknownUser => "unknown".to_owned(),
                _ => format!("account:{user}"),
            };
            audit("signin.failure", actor.clone(), why.to_string());
            let mut t = si.throttle.lock().expect("throttle lock");
            t.0.fail(now, &addr);
            t.1.fail(now, &user);
            if t.0.failures(&addr) == si.lockout_after {
                audit("signin.lockout", actor.clone(), "address locked out".into());
            }
            if t.1.failures(&user) == si.lockout_after {
                audit("signin.lockout", actor, "account name locked out".into());
            }
            drop(t);
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

/// `GET /api/session`.
pub async fn whoami(State(si): State<SignIn>, headers: HeaderMap) -> Response {
    let account = tokio::task::spawn_blocking(move || si.account_for(&headers))
        .await
        .ok()
        .flatten();
    match account {
        Some(a) => Json(Me {
            username: a.username,
            name: a.display_name,
        })
        .into_response(),
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
