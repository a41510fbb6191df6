//! Sign-in through OpenID Connect providers (`[[oidc]]`: Keycloak, Entra ID, any certified
//! OpenID Provider), authorization code flow with PKCE (RFC 7636, S256).
//!
//! `GET /api/oidc/NAME/start` keeps the state, nonce and PKCE verifier in memory (5 minutes,
//! single use) under a random key that also goes into a `SameSite=Lax` cookie, and redirects
//! to the provider. `GET /api/oidc/NAME/callback` takes them back by that cookie (so a link
//! someone else started is worth nothing in another browser), compares `state`, exchanges the
//! code at the token endpoint (client_secret_basic plus the verifier), checks the ID token
//! (`conclave_token::verify_id_token`: one pinned algorithm, `iss`, `aud`/`azp`, `nonce`,
//! `exp`, `iat`), maps its claims and groups to a role, and opens the session as
//! `[[ldap]]` does. Discovery and JWKS come over the same bounded HTTPS client as join-token
//! key sets: one timeout, a size limit, no redirects, certificates verified.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::digest::{SHA256, digest};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use conclave_token::{
    HttpsError, HttpsRequest, HttpsUrl, IdTokenExpect, IdTokenKeys, TokenAlgorithm, https_request,
    verify_id_token,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_rustls::TlsConnector;

use crate::signin::{SignIn, peer_ip};

/// Name of the cookie that ties a callback to the browser that started the sign-in.
pub const FLOW_COOKIE: &str = "conclave_oidc";
/// How long a started sign-in waits for its callback.
const FLOW_TTL: Duration = Duration::from_secs(300);
/// Started sign-ins kept at most (the oldest goes first).
const MAX_FLOWS: usize = 10_000;
/// Started sign-ins kept per address (IPv6 per /64); the address's oldest goes first.
const MAX_FLOWS_PER_NET: usize = 8;
/// Largest discovery document, JWKS or token response read.
const MAX_PROVIDER_BYTES: usize = 256 * 1024;
/// How long discovery and keys are used before they are fetched again.
const METADATA_TTL: Duration = Duration::from_secs(300);
/// Clock skew allowed for `exp` and `iat`.
const LEEWAY_SECS: u64 = 60;
/// Oldest `iat` accepted: the token was just issued for this callback.
const MAX_TOKEN_AGE_SECS: u64 = 600;

/// One `[[oidc]]` provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Short name (lowercase letters, digits, `-`): the URLs are `/api/oidc/NAME/…`, accounts
    /// from this provider have the source `oidc:NAME`.
    pub name: String,
    /// Text of the sign-in button. Default: "Sign in with NAME".
    #[serde(default)]
    pub label: Option<String>,
    /// The issuer identifier, exactly as the provider's discovery document and ID tokens say
    /// it (`https://…`; Keycloak: `https://HOST/realms/REALM`).
    pub issuer: String,
    /// Our client ID at the provider.
    pub client_id: String,
    /// File holding the client secret (confidential client, client_secret_basic).
    pub client_secret_file: PathBuf,
    /// PEM file of the CA certificates that sign the provider's certificate. Default: the
    /// system's CA certificates.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The one ID-token signature algorithm accepted: `RS256` or `ES256`.
    #[serde(default = "default_algorithm")]
    pub algorithm: TokenAlgorithm,
    /// Scopes asked for; must contain `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Claim that becomes the user name here.
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    /// Claim that becomes the display name (read-only here; falls back to the user name).
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
    /// Claim holding the groups or roles, as a dotted path (Keycloak realm roles:
    /// `realm_access.roles`). A list of strings or one string.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Groups whose members may sign in. Empty: everyone the provider signs in (and a
    /// moderator group's members always may).
    #[serde(default)]
    pub allowed_groups: Vec<String>,
    /// Groups whose members open rooms and moderate; everyone else allowed is a member.
    #[serde(default)]
    pub moderator_groups: Vec<String>,
    /// Seconds for each request to the provider (1 to 60).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_algorithm() -> TokenAlgorithm {
    TokenAlgorithm::RS256
}
fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "profile".into()]
}
fn default_username_claim() -> String {
    "preferred_username".into()
}
fn default_name_claim() -> String {
    "name".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_timeout_secs() -> u64 {
    5
}

/// Check every `[[oidc]]` entry.
pub fn validate(all: &[OidcConfig]) -> Result<(), String> {
    for (i, c) in all.iter().enumerate() {
        let at = format!("oidc[{i}] ({:?})", c.name);
        if !crate::ldap::valid_source_name(&c.name) {
            return Err(format!(
                "oidc[{i}].name must be 1 to 32 lowercase letters, digits or '-', not {:?}",
                c.name
            ));
        }
        if all[..i].iter().any(|o| o.name == c.name) {
            return Err(format!("{at}: another [[oidc]] has the same name"));
        }
        HttpsUrl::parse(&c.issuer).map_err(|e| format!("{at}: issuer {e}"))?;
        if c.issuer.ends_with('/') || c.issuer.contains(['?', '#']) {
            return Err(format!(
                "{at}: issuer must be the issuer identifier exactly, without a trailing '/', \
                 query or fragment"
            ));
        }
        if c.client_id.is_empty() || c.client_id.len() > 255 {
            return Err(format!("{at}: client_id must be 1 to 255 characters"));
        }
        if c.algorithm == TokenAlgorithm::HS256 {
            return Err(format!(
                "{at}: algorithm must be RS256 or ES256 (ID tokens are checked with the \
                 provider's public keys)"
            ));
        }
        if !c.scopes.iter().any(|s| s == "openid") {
            return Err(format!("{at}: scopes must contain \"openid\""));
        }
        if c.scopes.iter().any(|s| s.is_empty() || s.contains(' ')) {
            return Err(format!("{at}: each scope is one word"));
        }
        for (key, v) in [
            ("username_claim", &c.username_claim),
            ("name_claim", &c.name_claim),
            ("groups_claim", &c.groups_claim),
        ] {
            if v.is_empty() || v.split('.').any(str::is_empty) {
                return Err(format!("{at}: {key} must be a claim name or a dotted path"));
            }
        }
        if c.label
            .as_ref()
            .is_some_and(|l| l.trim().is_empty() || l.len() > 64)
        {
            return Err(format!("{at}: label must be 1 to 64 characters"));
        }
        if !(1..=60).contains(&c.timeout_secs) {
            return Err(format!("{at}: timeout_secs must be between 1 and 60"));
        }
    }
    Ok(())
}

/// What the provider's discovery document says, and its keys.
struct Metadata {
    authorization_endpoint: String,
    token_endpoint: HttpsUrl,
    end_session_endpoint: Option<String>,
    keys: IdTokenKeys,
    fetched: Instant,
}

/// One provider, ready to use.
pub struct Provider {
    /// Its configuration.
    pub config: OidcConfig,
    secret: String,
    tls: TlsConnector,
    metadata: tokio::sync::Mutex<Option<Arc<Metadata>>>,
}

/// Why talking to the provider failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Unreachable, slow, or answering something unusable.
    #[error("{0}")]
    Unavailable(String),
}

impl Provider {
    /// Read the client secret and the CA file (at start, so a bad one stops the start).
    pub fn new(config: OidcConfig) -> Result<Provider, String> {
        let at = format!("oidc {:?}", config.name);
        let secret = std::fs::read_to_string(&config.client_secret_file)
            .map_err(|e| {
                format!(
                    "{at}: cannot read client_secret_file {} ({e})",
                    config.client_secret_file.display()
                )
            })?
            .trim()
            .to_owned();
        if secret.is_empty() {
            return Err(format!(
                "{at}: client_secret_file {} is empty",
                config.client_secret_file.display()
            ));
        }
        let tls = conclave_token::client_tls(config.ca_file.as_deref())
            .map_err(|e| format!("{at}: {e}"))?;
        Ok(Provider {
            config,
            secret,
            tls: TlsConnector::from(Arc::new(tls)),
            metadata: tokio::sync::Mutex::new(None),
        })
    }

    /// The account source of this provider's users.
    pub fn source(&self) -> String {
        format!("oidc:{}", self.config.name)
    }

    /// The button text.
    pub fn label(&self) -> String {
        self.config
            .label
            .clone()
            .unwrap_or_else(|| format!("Sign in with {}", self.config.name))
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.timeout_secs)
    }

    async fn get(&self, what: &str, url: &HttpsUrl) -> Result<Value, ProviderError> {
        let request = HttpsRequest {
            url,
            accept: "application/json",
            authorization: None,
            form: None,
        };
        let answer = https_request(&self.tls, request, self.timeout(), MAX_PROVIDER_BYTES).await;
        json_answer(what, answer)
    }

    /// Discovery and keys, fetched again after [`METADATA_TTL`] (or when `fresh`).
    async fn metadata(&self, fresh: bool) -> Result<Arc<Metadata>, ProviderError> {
        let mut cached = self.metadata.lock().await;
        if let Some(m) = cached.as_ref()
            && !fresh
            && m.fetched.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        let bad = |e: String| ProviderError::Unavailable(format!("discovery: {e}"));
        let url = HttpsUrl::parse(&format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer
        ))
        .map_err(bad)?;
        let doc = self.get("discovery", &url).await?;
        let field = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned);
        // OpenID Connect Discovery 1.0, section 4.3: the issuer must be exactly ours.
        if field("issuer").as_deref() != Some(self.config.issuer.as_str()) {
            return Err(bad(format!(
                "the document names issuer {:?}, not {:?}",
                field("issuer").unwrap_or_default(),
                self.config.issuer
            )));
        }
        let https = |k: &str| -> Result<(String, HttpsUrl), ProviderError> {
            let v = field(k).ok_or_else(|| bad(format!("no {k}")))?;
            let url = HttpsUrl::parse(&v).map_err(|e| bad(format!("{k} {e}")))?;
            Ok((v, url))
        };
        let (authorization_endpoint, _) = https("authorization_endpoint")?;
        let (_, token_endpoint) = https("token_endpoint")?;
        let (_, jwks_uri) = https("jwks_uri")?;
        let end_session_endpoint = field("end_session_endpoint")
            .filter(|e| HttpsUrl::parse(e).is_ok() && !e.contains('#'));
        let request = HttpsRequest {
            url: &jwks_uri,
            accept: "application/jwk-set+json, application/json",
            authorization: None,
            form: None,
        };
        let jwks = https_request(&self.tls, request, self.timeout(), MAX_PROVIDER_BYTES)
            .await
            .map_err(|e| ProviderError::Unavailable(format!("jwks_uri: {e}")))?;
        if jwks.0 != 200 {
            return Err(ProviderError::Unavailable(format!(
                "jwks_uri answered HTTP {}",
                jwks.0
            )));
        }
        let keys = IdTokenKeys::from_jwks(&jwks.1, self.config.algorithm)
            .map_err(|e| ProviderError::Unavailable(format!("jwks_uri: {e}")))?;
        let m = Arc::new(Metadata {
            authorization_endpoint,
            token_endpoint,
            end_session_endpoint,
            keys,
            fetched: Instant::now(),
        });
        *cached = Some(m.clone());
        Ok(m)
    }

    /// Exchange `code` for the ID token.
    async fn exchange(
        &self,
        m: &Metadata,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<String, String> {
        let form = serde_urlencoded::to_string([
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .map_err(|e| e.to_string())?;
        // RFC 6749 section 2.3.1: both parts form-encoded before Basic.
        let user = serde_urlencoded::to_string([("", self.config.client_id.as_str())])
            .map_err(|e| e.to_string())?;
        let pass =
            serde_urlencoded::to_string([("", self.secret.as_str())]).map_err(|e| e.to_string())?;
        let basic = STANDARD.encode(format!("{}:{}", &user[1..], &pass[1..]));
        let request = HttpsRequest {
            url: &m.token_endpoint,
            accept: "application/json",
            authorization: Some(format!("Basic {basic}")),
            form: Some(form),
        };
        let answer = https_request(&self.tls, request, self.timeout(), MAX_PROVIDER_BYTES).await;
        let body = json_answer("token endpoint", answer).map_err(|e| e.to_string())?;
        body.get("id_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| "the token endpoint sent no id_token".into())
    }
}

/// The JSON of a 200 answer; the provider's `error` otherwise.
fn json_answer(
    what: &str,
    answer: Result<(u16, Vec<u8>), HttpsError>,
) -> Result<Value, ProviderError> {
    let (status, body) = answer.map_err(|e| ProviderError::Unavailable(format!("{what}: {e}")))?;
    let doc: Option<Value> = serde_json::from_slice(&body).ok();
    if status != 200 {
        let said = doc
            .as_ref()
            .and_then(|d| d.get("error"))
            .and_then(Value::as_str)
            .map(|e| format!(" ({})", e.chars().take(100).collect::<String>()))
            .unwrap_or_default();
        return Err(ProviderError::Unavailable(format!(
            "{what} answered HTTP {status}{said}"
        )));
    }
    doc.filter(Value::is_object)
        .ok_or_else(|| ProviderError::Unavailable(format!("{what} sent no JSON object")))
}

/// The value at a dotted `path` of the claims.
pub fn claim_at<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut v = claims.get(parts.next()?)?;
    for p in parts {
        v = v.get(p)?;
    }
    Some(v)
}

/// The groups a claim holds: a list of strings, or one string.
pub fn groups_in(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .take(1000)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// A started sign-in.
struct Flow {
    provider: usize,
    state: String,
    nonce: String,
    verifier: String,
    net: IpAddr,
    started: Instant,
}

/// The providers and the sign-ins started with them.
#[derive(Default)]
pub struct Oidc {
    /// The providers, as configured.
    pub providers: Vec<Provider>,
    /// `public_url` (or `https://listen`): the redirect URIs are `BASE/api/oidc/NAME/callback`.
    pub base_url: String,
    flows: Mutex<HashMap<String, Flow>>,
}

impl Oidc {
    /// The providers, for `base_url`.
    pub fn new(providers: Vec<Provider>, base_url: String) -> Oidc {
        Oidc {
            providers,
            base_url,
            flows: Mutex::default(),
        }
    }

    /// `[{name, label}]` for the sign-in buttons.
    pub fn buttons(&self) -> Vec<Value> {
        self.providers
            .iter()
            .map(|p| serde_json::json!({"name": p.config.name, "label": p.label()}))
            .collect()
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.providers.iter().position(|p| p.config.name == name)
    }

    fn redirect_uri(&self, p: &Provider) -> String {
        format!("{}/api/oidc/{}/callback", self.base_url, p.config.name)
    }

    /// Keep `flow` under a new key; drop expired flows, and the oldest beyond the caps.
    fn remember(&self, flow: Flow) -> String {
        let key = B64.encode(rand::random::<[u8; 32]>());
        let mut flows = self.flows.lock().expect("oidc flows lock");
        flows.retain(|_, f| f.started.elapsed() < FLOW_TTL);
        let oldest = |flows: &HashMap<String, Flow>, net: Option<IpAddr>| {
            flows
                .iter()
                .filter(|(_, f)| net.is_none_or(|n| f.net == n))
                .min_by_key(|(_, f)| f.started)
                .map(|(k, _)| k.clone())
        };
        while flows.values().filter(|f| f.net == flow.net).count() >= MAX_FLOWS_PER_NET {
            let Some(k) = oldest(&flows, Some(flow.net)) else {
                break;
            };
            flows.remove(&k);
        }
        while flows.len() >= MAX_FLOWS {
            let Some(k) = oldest(&flows, None) else { break };
            flows.remove(&k);
        }
        flows.insert(key.clone(), flow);
        key
    }

    /// The flow under `key`, taken (each is used once), if it has not expired.
    fn take(&self, key: &str) -> Option<Flow> {
        let mut flows = self.flows.lock().expect("oidc flows lock");
        flows.remove(key).filter(|f| f.started.elapsed() < FLOW_TTL)
    }

    /// Flows waiting for a callback (for tests).
    pub fn open_flows(&self) -> usize {
        self.flows.lock().expect("oidc flows lock").len()
    }

    /// Where signing out of `source`'s account also ends the provider's session, if the
    /// provider offers RP-initiated logout.
    pub async fn logout_url(&self, source: &str) -> Option<String> {
        let p = self.providers.iter().find(|p| p.source() == source)?;
        let m = p.metadata(false).await.ok()?;
        let end = m.end_session_endpoint.as_ref()?;
        let query = serde_urlencoded::to_string([
            ("client_id", p.config.client_id.as_str()),
            ("post_logout_redirect_uri", &format!("{}/", self.base_url)),
        ])
        .ok()?;
        let sep = if end.contains('?') { '&' } else { '?' };
        Some(format!("{end}{sep}{query}"))
    }
}

/// A random URL-safe string of 32 bytes.
fn random_b64() -> String {
    B64.encode(rand::random::<[u8; 32]>())
}

/// A small same-origin HTML page: `title`, `text` (escaped) and a link back to the start.
/// With `go_on`, the page moves on to `/` at once (a meta refresh: no script, so the CSP
/// stays as it is).
fn page(status: StatusCode, title: &str, text: &str, go_on: bool) -> Response {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let refresh = if go_on {
        r#"<meta http-equiv="refresh" content="0;url=/">"#
    } else {
        ""
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{}</title></head>\
         <body><main><h1>{}</h1><p id=\"oidc-message\">{}</p>\
         <p><a href=\"/\">Back to Conclave</a></p></main></body></html>",
        esc(title),
        esc(title),
        esc(text)
    );
    let mut r = (status, html).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn refused(status: StatusCode, text: &str) -> Response {
    page(status, "Sign-in failed", text, false)
}

fn flow_cookie(value: &str, max_age: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{FLOW_COOKIE}={value}; Path=/api/oidc/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Lax"
    ))
    .expect("cookie is ASCII")
}

/// `GET /api/oidc/{name}/start`: remember a new flow and send the browser to the provider.
pub async fn start(
    State(si): State<SignIn>,
    peer: Option<axum::Extension<crate::http::PeerAddr>>,
    Path(name): Path<String>,
) -> Response {
    let oidc = si.oidc.clone();
    let Some(i) = oidc.find(&name) else {
        return refused(
            StatusCode::NOT_FOUND,
            "There is no such sign-in provider here.",
        );
    };
    let addr = peer_ip(peer);
    if let Some(r) = si.throttled_address(addr) {
        return r;
    }
    let p = &oidc.providers[i];
    let m = match p.metadata(false).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!("oidc {}: {e}", p.config.name);
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "The sign-in provider cannot be reached; try again later.",
            );
        }
    };
    let verifier = random_b64();
    let challenge = B64.encode(digest(&SHA256, verifier.as_bytes()));
    let flow = Flow {
        provider: i,
        state: random_b64(),
        nonce: random_b64(),
        verifier,
        net: crate::passkey::net_of(addr),
        started: Instant::now(),
    };
    let scope = p.config.scopes.join(" ");
    let redirect_uri = oidc.redirect_uri(p);
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", p.config.client_id.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("scope", scope.as_str()),
        ("state", flow.state.as_str()),
        ("nonce", flow.nonce.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ])
    .unwrap_or_default();
    let sep = if m.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    let location = format!("{}{sep}{query}", m.authorization_endpoint);
    let key = oidc.remember(flow);
    let mut r = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(&location) {
        Ok(v) => r.headers_mut().insert(header::LOCATION, v),
        Err(_) => return refused(StatusCode::INTERNAL_SERVER_ERROR, "bad authorization URL"),
    };
    r.headers_mut()
        .insert(header::SET_COOKIE, flow_cookie(&key, FLOW_TTL.as_secs()));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The callback's query.
#[derive(Debug, Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /api/oidc/{name}/callback`: finish the flow the cookie names.
pub async fn callback(
    State(si): State<SignIn>,
    peer: Option<axum::Extension<crate::http::PeerAddr>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut r = finish(&si, peer_ip(peer), &name, &headers, query.as_deref()).await;
    r.headers_mut()
        .append(header::SET_COOKIE, flow_cookie("", 0));
    r
}

async fn finish(
    si: &SignIn,
    addr: IpAddr,
    name: &str,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Response {
    let oidc = si.oidc.clone();
    let Some(i) = oidc.find(name) else {
        return refused(
            StatusCode::NOT_FOUND,
            "There is no such sign-in provider here.",
        );
    };
    if let Some(r) = si.throttled_address(addr) {
        return r;
    }
    let p = &oidc.providers[i];
    let source = p.source();
    let fail = |why: String, text: &str| {
        si.failed_address(addr, "unknown".into(), format!("{source}: {why}"));
        refused(StatusCode::FORBIDDEN, text)
    };
    let Ok(q) = serde_urlencoded::from_str::<Callback>(query.unwrap_or("")) else {
        return fail(
            "malformed callback".into(),
            "The provider's answer is malformed.",
        );
    };
    let flow = crate::http::cookie(headers, FLOW_COOKIE).and_then(|k| oidc.take(k));
    let Some(flow) = flow else {
        return refused(
            StatusCode::BAD_REQUEST,
            "This sign-in has expired or was started in another browser. Start it again.",
        );
    };
    if flow.provider != i || q.state.as_deref() != Some(flow.state.as_str()) {
        return fail(
            "state does not match the sign-in started here".into(),
            "This answer does not belong to the sign-in started in this browser.",
        );
    }
    if let Some(e) = q.error {
        let e: String = e.chars().take(100).collect();
        si.audit(
            "signin.failure",
            "unknown".into(),
            addr,
            format!("{source}: the provider answered {e}"),
        );
        return refused(
            StatusCode::FORBIDDEN,
            &format!("The sign-in provider did not sign you in ({e})."),
        );
    }
    let Some(code) = q.code else {
        return fail("no code".into(), "The provider's answer has no code.");
    };
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::warn!("oidc {}: {e}", p.config.name);
        si.audit(
            "signin.failure",
            "unknown".into(),
            addr,
            format!("{source}: {e}"),
        );
        refused(
            StatusCode::BAD_GATEWAY,
            "The sign-in provider could not complete the sign-in; try again.",
        )
    };
    let m = match p.metadata(false).await {
        Ok(m) => m,
        Err(e) => return unavailable(&e),
    };
    let token = match p
        .exchange(&m, &code, &oidc.redirect_uri(p), &flow.verifier)
        .await
    {
        Ok(t) => t,
        Err(e) => return unavailable(&e),
    };
    let expect = IdTokenExpect {
        issuer: &p.config.issuer,
        client_id: &p.config.client_id,
        nonce: &flow.nonce,
        leeway_secs: LEEWAY_SECS,
        max_age_secs: MAX_TOKEN_AGE_SECS,
    };
    let mut checked = verify_id_token(&token, &m.keys, &expect, SystemTime::now());
    if matches!(checked, Err(conclave_token::IdTokenError::Token(_)))
        && m.fetched.elapsed() > Duration::from_secs(10)
    {
        // The provider may have rolled its keys since we fetched them.
        if let Ok(m) = p.metadata(true).await {
            checked = verify_id_token(&token, &m.keys, &expect, SystemTime::now());
        }
    }
    let claims = match checked {
        Ok(c) => c,
        Err(e) => {
            return fail(
                format!("ID token refused: {e}"),
                "The provider's ID token was refused.",
            );
        }
    };
    let who = match identity_of(p, &claims) {
        Ok(w) => w,
        Err(e) => return fail(e.clone(), &format!("The sign-in cannot be used here: {e}.")),
    };
    let Some(who) = who else {
        let user = claims_username(p, &claims).unwrap_or_default();
        si.audit(
            "signin.failure",
            format!("account:{user}"),
            addr,
            format!("{source}: in none of the allowed groups"),
        );
        return refused(
            StatusCode::FORBIDDEN,
            "Your account may not use this server: it is in none of the groups allowed to \
             sign in.",
        );
    };
    let response = si.external_sign_in(who, addr).await;
    if response.status() != StatusCode::OK {
        let text = "Your account cannot sign in here (disabled, expired, or its user name is \
                    taken by another account); ask the administrator.";
        return refused(response.status(), text);
    }
    let mut r = page(StatusCode::OK, "Signed in", "Signed in; continuing…", true);
    for c in response.headers().get_all(header::SET_COOKIE) {
        r.headers_mut().append(header::SET_COOKIE, c.clone());
    }
    r
}

fn claims_username(p: &Provider, claims: &Map<String, Value>) -> Option<String> {
    claim_at(claims, &p.config.username_claim)
        .and_then(Value::as_str)
        .map(|u| u.trim().to_lowercase())
}

/// The account the claims describe; `Ok(None)` when its groups do not allow it here.
fn identity_of(
    p: &Provider,
    claims: &Map<String, Value>,
) -> Result<Option<conclave_store::ExternalIdentity>, String> {
    let username = claims_username(p, claims)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| format!("the ID token has no {} claim", p.config.username_claim))?;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let display_name = claim_at(claims, &p.config.name_claim)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(&username)
        .to_owned();
    let groups = groups_in(claim_at(claims, &p.config.groups_claim));
    let role = crate::ldap::role_of(
        &groups,
        &p.config.allowed_groups,
        &p.config.moderator_groups,
    );
    Ok(role.map(|role| conclave_store::ExternalIdentity {
        source: p.source(),
        subject: sub,
        username,
        display_name,
        role,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(edit: &[(&str, &str)]) -> OidcConfig {
        let mut t: toml::Table = toml::from_str(
            r#"
            name = "kc"
            issuer = "https://id.example.org/realms/staff"
            client_id = "conclave"
            client_secret_file = "/etc/conclave/oidc-secret"
            "#,
        )
        .unwrap();
        for (k, v) in edit {
            t.insert(
                (*k).into(),
                toml::from_str::<toml::Table>(&format!("v = {v}")).unwrap()["v"].clone(),
            );
        }
        t.try_into().unwrap()
    }

    #[test]
    fn validate_refuses_each_bad_entry_by_name() {
        validate(&[entry(&[])]).unwrap();
        for (edit, says) in [
            (vec![("name", "\"KC\"")], "oidc[0].name must be"),
            (vec![("issuer", "\"http://id.example.org\"")], "https://"),
            (
                vec![("issuer", "\"https://id.example.org/\"")],
                "trailing '/'",
            ),
            (vec![("client_id", "\"\"")], "client_id"),
            (vec![("algorithm", "\"HS256\"")], "RS256 or ES256"),
            (vec![("scopes", "[\"profile\"]")], "openid"),
            (vec![("scopes", "[\"openid\", \"a b\"]")], "one word"),
            (vec![("groups_claim", "\"realm_access.\"")], "groups_claim"),
            (vec![("label", "\" \"")], "label"),
            (vec![("timeout_secs", "0")], "timeout_secs"),
        ] {
            let e = validate(&[entry(&edit)]).unwrap_err();
            assert!(e.contains(says), "{edit:?}: {e}");
        }
        let e = validate(&[entry(&[]), entry(&[])]).unwrap_err();
        assert!(e.contains("oidc[1]") && e.contains("same name"), "{e}");
    }

    #[test]
    fn claims_map_to_an_account_and_a_role_by_dotted_group_path() {
        let dir = std::env::temp_dir().join(format!("conclave-oidc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let mut c = entry(&[
            ("groups_claim", "\"realm_access.roles\""),
            ("allowed_groups", "[\"staff\"]"),
            ("moderator_groups", "[\"Conclave-Moderators\"]"),
        ]);
        c.client_secret_file = secret;
        let p = Provider::new(c).unwrap();
        let claims = |v: Value| v.as_object().unwrap().clone();
        let ada = claims(serde_json::json!({
            "sub": "s-1", "preferred_username": "Ada", "name": "Ada Lovelace",
            "realm_access": {"roles": ["staff", "conclave-moderators"]}
        }));
        let who = identity_of(&p, &ada).unwrap().unwrap();
        assert_eq!(
            (
                who.username.as_str(),
                who.display_name.as_str(),
                who.role,
                who.source.as_str(),
                who.subject.as_str()
            ),
            (
                "ada",
                "Ada Lovelace",
                conclave_store::AccountRole::Moderator,
                "oidc:kc",
                "s-1"
            )
        );
        let member = claims(serde_json::json!({
            "sub": "s-2", "preferred_username": "bo", "realm_access": {"roles": "staff"}
        }));
        let who = identity_of(&p, &member).unwrap().unwrap();
        assert_eq!(
            (who.role, who.display_name.as_str()),
            (conclave_store::AccountRole::Member, "bo")
        );
        let outsider = claims(serde_json::json!({
            "sub": "s-3", "preferred_username": "eve", "realm_access": {"roles": ["guests"]}
        }));
        assert!(identity_of(&p, &outsider).unwrap().is_none());
        let nameless =
            claims(serde_json::json!({"sub": "s-4", "realm_access": {"roles": ["staff"]}}));
        assert!(
            identity_of(&p, &nameless)
                .unwrap_err()
                .contains("preferred_username")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn flows_are_single_use_and_capped_per_address() {
        let o = Oidc::default();
        let flow = |net: [u8; 4]| Flow {
            provider: 0,
            state: "s".into(),
            nonce: "n".into(),
            verifier: "v".into(),
            net: IpAddr::from(net),
            started: Instant::now(),
        };
        let keys: Vec<String> = (0..20).map(|_| o.remember(flow([192, 0, 2, 1]))).collect();
        let other = o.remember(flow([192, 0, 2, 2]));
        assert_eq!(o.open_flows(), MAX_FLOWS_PER_NET + 1);
        assert!(
            o.take(&keys[0]).is_none(),
            "the address's oldest went first"
        );
        assert!(o.take(&keys[19]).is_some());
        assert!(o.take(&keys[19]).is_none(), "taken once");
        assert!(o.take(&other).is_some(), "another address keeps its flow");
    }
}
