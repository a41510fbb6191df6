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
    /// The `[[ldap]]` directories, in the order they are asked.
    pub directories: Arc<Vec<crate::ldap::Directory>>,
    /// Open passkey ceremonies (challenges).
    pub passkeys: Arc<crate::passkey::Ceremonies>,
    /// Signs account bindings of E2EE identities.
    pub binding: Arc<crate::identity::BindingKey>,
    /// The `[[oidc]]` providers and their started sign-ins.
    pub oidc: Arc<crate::oidc::Oidc>,
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
        binding: Arc<crate::identity::BindingKey>,
        directories: Vec<crate::ldap::Directory>,
        edges: crate::conference::Edges,
    ) -> SignIn {
        SignIn {
            directories: Arc::new(directories),
            passkeys: Arc::default(),
            oidc: Arc::default(),
            binding,
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
        Some(self.too_many(wait))
    }

    /// `Some(429 response)` while the address is throttled (sign-ins that name no account
    /// before they succeed: OpenID Connect).
    pub fn throttled_address(&self, addr: IpAddr) -> Option<Response> {
        let wait = {
            let mut t = self.throttle.lock().expect("throttle lock");
            t.0.check(Instant::now(), &addr).err()?
        };
        Some(self.too_many(wait))
    }

    /// The 429 answer while throttled for `wait`.
    fn too_many(&self, wait: std::time::Duration) -> Response {
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
        r
    }

    /// Count a failed attempt against the address only, and audit it.
    pub fn failed_address(&self, addr: IpAddr, actor: String, why: String) {
        self.edges.counters.signin_failure.inc();
        self.audit("signin.failure", actor.clone(), addr, why);
        let mut t = self.throttle.lock().expect("throttle lock");
        t.0.fail(Instant::now(), &addr);
        let a = t.0.failures(&addr);
        drop(t);
        if a == self.lockout_after {
            self.audit("signin.lockout", actor, addr, "address locked out".into());
        }
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
    foreign_origin(headers, uri)
}

/// `Some(403)` when the browser names an origin that is not ours (for requests without a
/// body, such as DELETE).
pub fn foreign_origin(headers: &HeaderMap, uri: &axum::http::Uri) -> Option<Response> {
    (!crate::http::same_origin(headers, uri)).then(|| {
        error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "requests are accepted from this server's own pages only",
        )
    })
}

/// The `Set-Cookie` value of a session (or, with "" and 0, of its removal).
pub fn session_cookie(value: &str, max_age: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"
    ))
    .expect("cookie is ASCII")
}

/// `POST /api/session`. Local accounts check the password here; a name that is no local
/// account goes to the `[[ldap]]` directories in order (an account a directory created goes
/// back to that directory).
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
    let directories: Vec<usize> = if si.directories.is_empty() {
        Vec::new()
    } else {
        let store = si.store.clone();
        let name = user.clone();
        match tokio::task::spawn_blocking(move || store.account(&name)).await {
            Ok(Ok(Some(a))) if a.is_local() => Vec::new(),
            Ok(Ok(Some(a))) => si
                .directories
                .iter()
                .position(|d| d.source() == a.source)
                .into_iter()
                .collect(),
            Ok(Ok(None)) => (0..si.directories.len()).collect(),
            Ok(Err(e)) => return internal("sign-in", &e),
            Err(e) => return internal("sign-in task", &e),
        }
    };
    if !directories.is_empty() {
        return si
            .directory_sign_in(&directories, creds.username.trim(), &creds.password, addr)
            .await;
    }
    let store = si.store.clone();
    let mfa = si.mfa;
    let outcome = tokio::task::spawn_blocking(move || {
        let now = conclave_store::OffsetDateTime::now_utc();
        let account = store.verify_login(&creds.username, &creds.password, now)?;
        let (session, standing) = open_session(&store, mfa, &account, now)?;
        Ok::<_, LoginError>((account, session, standing))
    })
    .await;
    match outcome {
        Ok(Ok((account, session, standing))) => {
            si.session_response(&account, &session, standing, addr, "password")
        }
        Ok(Err(LoginError::Store(e))) => internal("sign-in", &e),
        Ok(Err(why)) => {
            // Unknown user, wrong password, disabled, expired: one answer for all. The audit
            // log names the account only when it exists (a typed name may be a password).
            let actor = match why {
                LoginError::UnknownUser => "unknown".to_owned(),
                _ => format!("account:{user}"),
            };
            si.failed(addr, &user, actor, why.to_string());
            invalid_credentials()
        }
        Err(e) => internal("sign-in task", &e),
    }
}

/// The one answer to every wrong user name, password or unusable account.
fn invalid_credentials() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "wrong user name or password, or the account cannot sign in",
    )
}

/// Log a server-side failure and answer 500.
fn internal(what: &str, e: &dyn std::fmt::Display) -> Response {
    tracing::error!("{what}: {e}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "sign-in failed on the server",
    )
}

/// The session of an account whose first factor was just checked: full, or a half session
/// when the policy wants a second factor.
fn open_session(
    store: &Store,
    mfa: crate::config::MfaPolicy,
    account: &conclave_store::Account,
    now: conclave_store::OffsetDateTime,
) -> Result<(conclave_store::NewSession, crate::second_factor::Standing), conclave_store::Error> {
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
    Ok((session, standing))
}

impl SignIn {
    /// The answer to a correct first factor (`via`: `password` or `ldap:NAME`).
    fn session_response(
        &self,
        account: &conclave_store::Account,
        session: &conclave_store::NewSession,
        standing: crate::second_factor::Standing,
        addr: IpAddr,
        via: &str,
    ) -> Response {
        if standing == crate::second_factor::Standing::Full {
            self.edges.counters.signin_success.inc();
            self.audit(
                "signin.success",
                format!("account:{}", account.username),
                addr,
                via.to_owned(),
            );
            return self.signed_in(account, &session.token);
        }
        // The first factor was right; the second factor is next.
        self.audit(
            "signin.password",
            format!("account:{}", account.username),
            addr,
            format!("{via}; second factor due: {}", standing.next()),
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

    /// Sign in through the directories at `which` (indexes into `directories`), in order:
    /// the first that accepts the name and password decides.
    async fn directory_sign_in(
        &self,
        which: &[usize],
        username: &str,
        password: &str,
        addr: IpAddr,
    ) -> Response {
        use crate::ldap::DirectoryError;
        let key = username.to_lowercase();
        let mut unavailable = None;
        for &i in which {
            let d = &self.directories[i];
            match d.authenticate(username, password).await {
                Ok(found) => return self.directory_user(i, found, &key, addr).await,
                Err(DirectoryError::Unavailable(e)) => {
                    tracing::warn!("ldap {}: {e}", d.config.name);
                    unavailable = Some(d.config.name.clone());
                }
                Err(_) => {}
            }
        }
        if let Some(name) = unavailable {
            self.audit(
                "signin.failure",
                "unknown".into(),
                addr,
                format!("directory {name} unavailable"),
            );
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "directory_unavailable",
                "the sign-in directory cannot be reached; try again later",
            );
        }
        self.failed(
            addr,
            &key,
            "unknown".into(),
            "the directory refused the user name or password".into(),
        );
        invalid_credentials()
    }

    /// A directory accepted the password: map the groups to a role and open the session.
    async fn directory_user(
        &self,
        i: usize,
        found: crate::ldap::DirectoryUser,
        username: &str,
        addr: IpAddr,
    ) -> Response {
        let d = &self.directories[i];
        let actor = format!("account:{username}");
        let Some(role) = d.role(&found) else {
            self.audit(
                "signin.failure",
                actor,
                addr,
                format!("{}: in none of the allowed groups", d.source()),
            );
            return error(
                StatusCode::FORBIDDEN,
                "not_allowed",
                "your directory account may not use this server: it is in none of the \
                 groups allowed to sign in",
            );
        };
        let who = conclave_store::ExternalIdentity {
            source: d.source(),
            subject: found.dn,
            username: username.to_owned(),
            display_name: found.display_name,
            role,
        };
        self.external_sign_in(who, addr).await
    }

    /// A directory or an OpenID provider vouched for `who`: create or update its account
    /// and open the session (a half session when a second factor is due).
    pub async fn external_sign_in(
        &self,
        who: conclave_store::ExternalIdentity,
        addr: IpAddr,
    ) -> Response {
        let actor = format!("account:{}", who.username);
        let source = who.source.clone();
        let store = self.store.clone();
        let mfa = self.mfa;
        let outcome = tokio::task::spawn_blocking(move || {
            let now = conclave_store::OffsetDateTime::now_utc();
            let account = store.external_account(&who, now)?;
            let (session, standing) = open_session(&store, mfa, &account, now)?;
            Ok::<_, conclave_store::ExternalError>((account, session, standing))
        })
        .await;
        match outcome {
            Ok(Ok((account, session, standing))) => {
                self.session_response(&account, &session, standing, addr, &source)
            }
            Ok(Err(conclave_store::ExternalError::Store(e))) => internal("sign-in", &e),
            Ok(Err(why)) => {
                self.audit("signin.failure", actor, addr, format!("{source}: {why}"));
                let message = match &why {
                    conclave_store::ExternalError::NameTaken { .. }
                    | conclave_store::ExternalError::Username(_) => {
                        "your user name from the sign-in directory or provider cannot be used \
                         here (it is taken by another account or breaks the user-name rules); \
                         ask the administrator"
                    }
                    _ => "this account is disabled or expired here; ask the administrator",
                };
                error(StatusCode::FORBIDDEN, "not_allowed", message)
            }
            Err(e) => internal("sign-in task", &e),
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

/// `DELETE /api/session`: 204, or 200 `{"logout": URL}` for an account from an OpenID
/// provider that offers RP-initiated logout.
pub async fn sign_out(
    State(si): State<SignIn>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    if let Some(r) = foreign_origin(&headers, &uri) {
        return r;
    }
    let mut source = None;
    if let Some(token) = crate::http::cookie(&headers, SESSION_COOKIE).map(str::to_owned) {
        let store = si.store.clone();
        source = tokio::task::spawn_blocking(move || {
            let now = conclave_store::OffsetDateTime::now_utc();
            let source = store
                .session(&token, now)
                .ok()
                .flatten()
                .map(|(a, _)| a.source);
            let _ = store.revoke_session(&token);
            source
        })
        .await
        .ok()
        .flatten();
    }
    // An account from an OpenID provider also ends the provider's session, if it offers
    // RP-initiated logout: the page goes there next.
    let logout = match source {
        Some(s) if s.starts_with("oidc:") => si.oidc.logout_url(&s).await,
        _ => None,
    };
    let mut r = match logout {
        Some(url) => Json(json!({ "logout": url })).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    };
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie("", 0));
    r
}
