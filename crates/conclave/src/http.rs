//! HTTP routes: the embedded web client, the WebSocket endpoint, health. Every response
//! carries the security headers (strict CSP: no third-party origin can be contacted).

use axum::Extension;
use axum::Router;
use axum::extract::{Path, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rust_embed::RustEmbed;
use tokio::sync::mpsc;

use conclave_room::{Identity, Peer};

use crate::conference::ToConference;
use crate::rooms_api::{self, AdminApi};
use crate::signin::{self, SignIn};
use crate::ws::{self, SocketLimits};

/// The browser client, embedded at build time (read from disk in debug builds).
#[derive(RustEmbed)]
#[folder = "../../web/"]
#[exclude = "*.json"]
#[exclude = "*.d.ts"]
struct WebAssets;

/// Content-Security-Policy for every response: only this origin, no inline code.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; \
base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

#[derive(Clone)]
struct AppState {
    conf: mpsc::UnboundedSender<ToConference>,
    limits: SocketLimits,
    signin: SignIn,
    admin: AdminApi,
    public: PublicSettings,
    monitor: crate::metrics::Monitor,
}

/// What any page may know before joining: the meeting settings and how people get in.
#[derive(Clone, serde::Serialize)]
pub struct PublicSettings {
    /// The `[meeting]` settings (also sent in `joined`).
    pub settings: conclave_proto::MeetingSettings,
    /// `open`, `hosts` or `closed`.
    pub access_mode: String,
    /// Whether invitation tokens are accepted.
    pub tokens: bool,
    /// The public key (Ed25519, base64url) that signs account bindings of E2EE identities.
    pub identity_key: String,
    /// The `[[oidc]]` sign-in buttons: `[{name, label}]`.
    pub oidc: Vec<serde_json::Value>,
}

impl axum::extract::FromRef<AppState> for AdminApi {
    fn from_ref(s: &AppState) -> AdminApi {
        s.admin.clone()
    }
}

impl axum::extract::FromRef<AppState> for SignIn {
    fn from_ref(s: &AppState) -> SignIn {
        s.signin.clone()
    }
}

/// Largest body of an API request.
const MAX_API_BODY: usize = 8 * 1024;

/// Build the router.
pub fn router(
    conf: mpsc::UnboundedSender<ToConference>,
    limits: SocketLimits,
    signin: SignIn,
    admin: AdminApi,
    public: PublicSettings,
    monitor: crate::metrics::Monitor,
) -> Router {
    Router::new()
        .route("/ws", get(websocket))
        .route(
            "/api/session",
            get(signin::whoami)
                .post(signin::sign_in)
                .delete(signin::sign_out)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_API_BODY)),
        )
        .route(
            "/api/session/second-factor",
            axum::routing::post(crate::second_factor::second_factor)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_API_BODY)),
        )
        .route("/api/account/factors", get(crate::second_factor::factors))
        .route(
            "/api/account/passkeys/options",
            axum::routing::post(crate::passkey::registration_options),
        )
        .route(
            "/api/account/passkeys",
            axum::routing::post(crate::passkey::register)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_API_BODY)),
        )
        .route(
            "/api/account/passkeys/{id}",
            axum::routing::delete(crate::passkey::remove),
        )
        .route(
            "/api/account/identity",
            axum::routing::post(crate::identity::bind)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_API_BODY)),
        )
        .route(
            "/api/session/passkey/options",
            axum::routing::post(crate::passkey::sign_in_options),
        )
        .route(
            "/api/session/passkey",
            axum::routing::post(crate::passkey::sign_in)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_API_BODY)),
        )
        .route(
            "/api/account/totp",
            axum::routing::post(crate::second_factor::begin_totp)
                .delete(crate::second_factor::remove_totp)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_API_BODY)),
        )
        .route(
            "/api/account/totp/confirm",
            axum::routing::post(crate::second_factor::confirm_totp)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_API_BODY)),
        )
        .route(
            "/api/account/recovery-codes",
            axum::routing::post(crate::second_factor::new_recovery_codes)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_API_BODY)),
        )
        .route(
            "/api/rooms",
            get(rooms_api::list)
                .post(rooms_api::create)
                .layer(axum::extract::DefaultBodyLimit::max(MAX_API_BODY)),
        )
        .route(
            "/api/rooms/{room}",
            axum::routing::delete(rooms_api::delete),
        )
        .route("/api/oidc/{name}/start", get(crate::oidc::start))
        .route("/api/oidc/{name}/callback", get(crate::oidc::callback))
        .route("/api/settings", get(public_settings))
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(
                |State(s): State<AppState>| async move { crate::metrics::readyz(&s.monitor).await },
            ),
        )
        .route(
            "/metrics",
            get(|State(s): State<AppState>, headers: HeaderMap| async move {
                crate::metrics::https_metrics(&s.monitor, &headers).await
            }),
        )
        .route("/", get(index))
        .route("/r/{room}", get(room_page))
        .route("/{*path}", get(asset))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(AppState {
            conf,
            limits,
            signin,
            admin,
            public,
            monitor,
        })
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "permissions-policy",
        HeaderValue::from_static(PERMISSIONS_POLICY),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    );
    res
}

/// Permissions-Policy for every response: capture, full screen and picture-in-picture for this
/// origin (a meeting needs them), every other powerful feature denied.
pub const PERMISSIONS_POLICY: &str = "camera=(self), microphone=(self), \
display-capture=(self), fullscreen=(self), picture-in-picture=(self), autoplay=(self), \
geolocation=(), payment=(), usb=(), serial=(), hid=(), bluetooth=(), midi=(), \
accelerometer=(), gyroscope=(), magnetometer=(), screen-wake-lock=(), \
publickey-credentials-get=(self), publickey-credentials-create=(self)";

async fn public_settings(State(st): State<AppState>) -> axum::Json<PublicSettings> {
    axum::Json(st.public)
}

/// The TCP peer of a request, put in by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// The bearer token of an `Authorization: Bearer <token>` header ("" without one).
pub fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
}

/// Name of the cookie that lets a ban of an anonymous guest hold (random, no personal data).
pub const GUEST_COOKIE: &str = "conclave_guest";

/// The value of cookie `name`, if the request has it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether a request's `Origin` (if any) is this server (`Host`, or the URI's authority over
/// HTTP/2). Browsers always send `Origin` on WebSocket upgrades; other clients (tools, tests)
/// send none and are not riding on anybody's cookies.
pub fn same_origin(headers: &HeaderMap, uri: &axum::http::Uri) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    origin
        .to_str()
        .ok()
        .and_then(|o| o.strip_prefix("https://"))
        .is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host))
}

/// A guest key is 32 lowercase hex digits (128 random bits); anything else is ignored.
fn guest_key(headers: &HeaderMap) -> Option<String> {
    cookie(headers, GUEST_COOKIE)
        .filter(|v| {
            v.len() == 32
                && v.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .map(str::to_owned)
}

async fn websocket(
    State(st): State<AppState>,
    peer: Option<Extension<PeerAddr>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !same_origin(&headers, &uri) {
        // Cross-site WebSocket hijacking: a page elsewhere must not ride on our cookies.
        return (
            StatusCode::FORBIDDEN,
            "WebSocket connections are accepted from this server's own pages only\n",
        )
            .into_response();
    }
    let addr = peer.map_or(
        std::net::Ipv4Addr::LOCALHOST.into(),
        |Extension(PeerAddr(a))| a.ip().to_canonical(),
    );
    // A valid session cookie makes the connection the account's; anything else is a guest.
    let guest = guest_key(&headers);
    let signin = st.signin.clone();
    let account = tokio::task::spawn_blocking(move || signin.account_for(&headers))
        .await
        .ok()
        .flatten();
    let identity = match account {
        Some(a) => Identity::Account {
            moderator: a.role == conclave_store::AccountRole::Moderator,
            username: a.username,
            name: a.display_name,
        },
        None => Identity::Anonymous { guest_key: guest },
    };
    let peer = Peer { addr, identity };
    // The transport limit is generous; the exact limit (with its error code) is checked in
    // `ws::serve` so the client learns why it was cut off.
    let hard = st.limits.max_message_bytes.saturating_mul(4);
    upgrade
        .max_message_size(hard)
        .max_frame_size(hard)
        .on_upgrade(move |socket| ws::serve(socket, peer, st.conf, st.limits))
}

async fn index(headers: HeaderMap) -> Response {
    with_guest_cookie(&headers, serve_file("index.html"))
}

async fn room_page(Path(_room): Path<String>, headers: HeaderMap) -> Response {
    // The page reads the room ID from its URL; the server validates it on join.
    with_guest_cookie(&headers, serve_file("index.html"))
}

/// Give a browser without one a random guest key (HttpOnly, Secure, SameSite=Strict): bans
/// of anonymous guests refer to it. It carries nothing about the person.
fn with_guest_cookie(headers: &HeaderMap, mut res: Response) -> Response {
    if guest_key(headers).is_none() {
        let key: [u8; 16] = rand::random();
        let value: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let cookie = format!(
            "{GUEST_COOKIE}={value}; Path=/; Max-Age=31536000; HttpOnly; Secure; SameSite=Strict"
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

async fn asset(Path(path): Path<String>) -> Response {
    serve_file(&path)
}

fn serve_file(path: &str) -> Response {
    match WebAssets::get(path) {
        Some(file) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            let cache = if path.ends_with(".html") {
                "no-store"
            } else {
                "no-cache"
            };
            (
                [
                    (header::CONTENT_TYPE, mime.as_ref().to_owned()),
                    (header::CACHE_CONTROL, cache.to_owned()),
                ],
                file.data.into_owned(),
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::WebAssets;

    #[test]
    fn vendored_modules_are_served_but_not_type_declarations_or_json() {
        for path in [
            "vendor/ts-mls/index.js",
            "vendor/hpke-core/mod.js",
            "vendor/noble-hashes/sha2.js",
            "vendor/MANIFEST.txt",
            "e2ee/group.js",
        ] {
            assert!(WebAssets::get(path).is_some(), "{path} is not embedded");
        }
        for path in ["vendor/ts-mls/index.d.ts", "tsconfig.json"] {
            assert!(WebAssets::get(path).is_none(), "{path} is embedded");
        }
    }
}
