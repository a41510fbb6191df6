//! The admin REST API: room reservations. `Authorization: Bearer <admin key>` on every call.
//!
//! - `GET /api/rooms`: every reservation.
//! - `POST /api/rooms` (JSON): reserve a room; `room` may be omitted (a random ID is made).
//! - `DELETE /api/rooms/{room}`: delete a reservation.
//!
//! The store keeps reservations across restarts; the room core gets each as
//! [`Input::Reserve`] (times converted to its clock) and closes the room at the window's end.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use conclave_proto::RoomId;
use conclave_room::Input;
use conclave_store::{OffsetDateTime, Reservation, Store};
use serde::Deserialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;

use crate::conference::ToConference;

/// What the admin API needs.
#[derive(Clone)]
pub struct AdminApi {
    /// The admin key; `None`: the API is off.
    pub key: Option<Arc<str>>,
    /// Where reservations live.
    pub store: Arc<Store>,
    /// The conference task.
    pub conf: mpsc::UnboundedSender<ToConference>,
    /// Base URL for links.
    pub base_url: String,
    /// The audit log.
    pub recorder: crate::records::Recorder,
}

/// Longest reservation window.
const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);
/// Longest owner label.
const MAX_OWNER_CHARS: usize = 128;

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": code, "message": message.into()})),
    )
        .into_response()
}

fn bad(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", message)
}

impl AdminApi {
    /// `None` when the request carries the admin key; else the refusal. Every call with
    /// the API on goes to the audit log, accepted or refused.
    fn authorize(
        &self,
        headers: &HeaderMap,
        call: &str,
        peer: Option<axum::Extension<crate::http::PeerAddr>>,
    ) -> Option<Response> {
        let Some(key) = &self.key else {
            return Some(error(
                StatusCode::NOT_FOUND,
                "api_off",
                "the admin API is off (set api.admin_key_file)",
            ));
        };
        let ok = conclave_room::access::secrets_equal(crate::http::bearer(headers), key);
        self.recorder.audit(crate::records::AuditEntry {
            kind: if ok { "admin.api" } else { "admin.api_refused" },
            actor: "admin-api".into(),
            addr: peer.map(|p| p.0.0.ip().to_canonical()),
            detail: call.to_owned(),
            ..Default::default()
        });
        if ok {
            None
        } else {
            Some(error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid admin key is required (Authorization: Bearer <key>)",
            ))
        }
    }
}

/// Tell the room core about a reservation.
pub fn announce(conf: &mpsc::UnboundedSender<ToConference>, r: &Reservation) {
    let Ok(room) = RoomId::parse(&r.room) else {
        return;
    };
    let now_wall = SystemTime::now();
    let now = Instant::now();
    let at = |t: OffsetDateTime| {
        let t = SystemTime::from(t);
        now + t.duration_since(now_wall).unwrap_or(Duration::ZERO)
    };
    let _ = conf.send(ToConference::Input(Input::Reserve(
        room,
        conclave_room::Reservation {
            opens: at(r.opens_at),
            closes: at(r.closes_at),
            password: r.password.clone(),
            lobby: r.lobby,
        },
    )));
}

fn to_json(r: &Reservation, base_url: &str) -> serde_json::Value {
    json!({
        "room": r.room,
        "owner": r.owner,
        "opens_at": r.opens_at.format(&Rfc3339).unwrap_or_default(),
        "closes_at": r.closes_at.format(&Rfc3339).unwrap_or_default(),
        "password_set": r.password.is_some(),
        "lobby": r.lobby,
        "link": format!("{base_url}/r/{}", r.room),
    })
}

/// `POST /api/rooms` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewReservation {
    room: Option<String>,
    owner: String,
    opens_at: String,
    closes_at: String,
    #[serde(default)]
    password: Option<String>,
    #[serde(default = "yes")]
    lobby: bool,
}

fn yes() -> bool {
    true
}

/// `GET /api/rooms`.
pub async fn list(
    State(api): State<AdminApi>,
    peer: Option<axum::Extension<crate::http::PeerAddr>>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = api.authorize(&headers, "GET /api/rooms", peer) {
        return r;
    }
    let store = api.store.clone();
    match tokio::task::spawn_blocking(move || store.list_reservations()).await {
        Ok(Ok(list)) => Json(
            list.iter()
                .map(|r| to_json(r, &api.base_url))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the database failed",
        ),
    }
}

/// `POST /api/rooms`.
pub async fn create(
    State(api): State<AdminApi>,
    peer: Option<axum::Extension<crate::http::PeerAddr>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = api.authorize(&headers, "POST /api/rooms", peer) {
        return r;
    }
    let req: NewReservation = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("bad reservation: {e}")),
    };
    let room = match req.room {
        Some(r) => match RoomId::parse(&r) {
            Ok(id) => id.as_str().to_owned(),
            Err(e) => return bad(format!("room: {e}")),
        },
        None => random_room_id(),
    };
    let owner = req.owner.trim().to_owned();
    if owner.is_empty()
        || owner.chars().count() > MAX_OWNER_CHARS
        || owner.chars().any(char::is_control)
    {
        return bad(format!(
            "owner: 1 to {MAX_OWNER_CHARS} characters, no control characters"
        ));
    }
    let parse = |v: &str| OffsetDateTime::parse(v, &Rfc3339).ok();
    let Some(opens_at) = parse(&req.opens_at) else {
        return bad("opens_at: an RFC 3339 time like 2026-11-22T10:00:00Z");
    };
    let Some(closes_at) = parse(&req.closes_at) else {
        return bad("closes_at: an RFC 3339 time like 2026-11-22T10:00:00Z");
    };
    let now = OffsetDateTime::now_utc();
    if closes_at <= opens_at || closes_at <= now {
        return bad("closes_at must be after opens_at and in the future");
    }
    if closes_at - opens_at > MAX_WINDOW {
        return bad("a reservation lasts at most 366 days");
    }
    if let Some(pw) = &req.password
        && let Err(m) = conclave_room::access::check_room_password(pw, 1)
    {
        return bad(format!("password: {m}"));
    }
    let r = Reservation {
        room,
        owner,
        opens_at,
        closes_at,
        password: req.password,
        lobby: req.lobby,
    };
    let store = api.store.clone();
    let stored = r.clone();
    match tokio::task::spawn_blocking(move || store.add_reservation(&stored, now)).await {
        Ok(Ok(())) => {
            announce(&api.conf, &r);
            (StatusCode::CREATED, Json(to_json(&r, &api.base_url))).into_response()
        }
        Ok(Err(conclave_store::Error::ReservationExists(room))) => error(
            StatusCode::CONFLICT,
            "exists",
            format!("room {room} is already reserved"),
        ),
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the database failed",
        ),
    }
}

/// `DELETE /api/rooms/{room}`.
pub async fn delete(
    State(api): State<AdminApi>,
    peer: Option<axum::Extension<crate::http::PeerAddr>>,
    headers: HeaderMap,
    Path(room): Path<String>,
) -> Response {
    if let Some(r) = api.authorize(&headers, "DELETE /api/rooms/{room}", peer) {
        return r;
    }
    let Ok(id) = RoomId::parse(&room) else {
        return bad("not a room ID");
    };
    let store = api.store.clone();
    let key = id.as_str().to_owned();
    match tokio::task::spawn_blocking(move || store.remove_reservation(&key)).await {
        Ok(Ok(true)) => {
            let _ = api.conf.send(ToConference::Input(Input::Unreserve(id)));
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Ok(false)) => error(StatusCode::NOT_FOUND, "not_found", "no such reservation"),
        _ => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the database failed",
        ),
    }
}

/// 22 random base64url characters (132 bits), like the web client makes.
fn random_room_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..22)
        .map(|_| ALPHABET[usize::from(rand::random::<u8>() & 63)] as char)
        .collect()
}
