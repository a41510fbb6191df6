//! Monitoring: Prometheus `/metrics` (never public by default), `/healthz` and `/readyz`.
//!
//! `/metrics` is served on a listener of its own (`[metrics] http_listen`, meant for loopback or
//! a monitoring network) and/or on the HTTPS port to requests that carry the bearer key of
//! `[metrics] key_file`. Without either it does not exist. Values are read when scraped: the
//! room core's counts from the conference task, the media plane's and TURN's counters, the
//! process's CPU time and memory from /proc; the sign-in counters live here. The text is
//! written by `prometheus-client` (OpenMetrics), never by hand.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use conclave_media::MediaPlane;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::conference::{CoreStats, ToConference};

/// `[metrics]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Plain-HTTP address that serves only `/metrics` (and `/healthz`, `/readyz`), without a
    /// key, e.g. "127.0.0.1:9464". Keep it on loopback or a monitoring network. Default: off.
    pub http_listen: Option<SocketAddr>,
    /// File holding a bearer key (at least 32 characters): `/metrics` on the HTTPS port
    /// answers requests with `Authorization: Bearer <key>`. Default: off.
    pub key_file: Option<PathBuf>,
}

impl MetricsConfig {
    /// Refuse what cannot work.
    pub fn validate(&self) -> Result<()> {
        if let Some(a) = self.http_listen
            && a.port() == 0
            && !a.ip().is_loopback()
        {
            bail!("metrics.http_listen: port 0 is for tests on loopback only");
        }
        Ok(())
    }

    /// The bearer key, if configured.
    pub fn key(&self) -> Result<Option<String>> {
        self.key_file
            .as_deref()
            .map(|p| crate::config::read_key_file(p, "metrics.key_file"))
            .transpose()
    }
}

/// Counters the edges increase.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Sign-ins that succeeded.
    pub signin_success: Counter,
    /// Sign-ins refused (wrong name or password, disabled, expired).
    pub signin_failure: Counter,
    /// Sign-ins refused because of the backoff or lockout.
    pub signin_throttled: Counter,
    /// Joins with an invalid token.
    pub token_refused: Counter,
}

/// What `/metrics` and `/readyz` read.
#[derive(Clone)]
pub struct Monitor {
    /// The conference task.
    pub conf: mpsc::UnboundedSender<ToConference>,
    /// The media plane.
    pub media: Arc<MediaPlane>,
    /// TURN, when on.
    pub turn: Option<conclave_turn::Turn>,
    /// The database.
    pub store: Arc<conclave_store::Store>,
    /// The edges' counters.
    pub counters: Counters,
    /// The HTTPS port's bearer key.
    pub key: Option<Arc<str>>,
}

impl Monitor {
    async fn core(&self) -> Option<CoreStats> {
        let (tx, rx) = oneshot::channel();
        self.conf.send(ToConference::Stats(tx)).ok()?;
        tokio::time::timeout(Duration::from_secs(2), rx)
            .await
            .ok()?
            .ok()
    }

    async fn media(&self) -> Option<conclave_media::MediaSnapshot> {
        let m = self.media.clone();
        tokio::task::spawn_blocking(move || m.snapshot())
            .await
            .ok()
            .flatten()
    }

    /// The OpenMetrics text.
    pub async fn render(&self) -> String {
        let core = self.core().await;
        let media = self.media().await;
        let turn = match &self.turn {
            Some(t) => t.stats().await,
            None => None,
        };
        let mut r = Registry::with_prefix("conclave");
        let gauge = |r: &mut Registry, name: &str, help: &str, v: i64| {
            r.register(name, help, ConstGauge::new(v));
        };
        let counter = |r: &mut Registry, name: &str, help: &str, v: u64| {
            r.register(name, help, ConstCounter::new(v));
        };
        let n = |v: usize| i64::try_from(v).unwrap_or(i64::MAX);
        if let Some(c) = core {
            gauge(&mut r, "rooms", "Open rooms", n(c.rooms));
            gauge(
                &mut r,
                "participants",
                "Participants in rooms",
                n(c.participants),
            );
            gauge(
                &mut r,
                "connections",
                "Open signalling connections",
                n(c.connections),
            );
            gauge(
                &mut r,
                "e2ee_rooms",
                "Rooms with an end-to-end encryption group",
                n(c.e2ee_rooms),
            );
            counter(
                &mut r,
                "e2ee_epochs",
                "MLS epochs the delivery service accepted",
                c.mls_epochs,
            );
        }
        if let Some(m) = &media {
            let connected = m.participants.iter().filter(|p| p.connected).count();
            gauge(
                &mut r,
                "media_participants",
                "Participants the media plane holds",
                n(m.participants.len()),
            );
            gauge(
                &mut r,
                "media_connected",
                "Participants with ICE and DTLS up",
                n(connected),
            );
            gauge(
                &mut r,
                "media_forwarding_entries",
                "Published tracks with at least one subscriber",
                n(m.forwarding_entries),
            );
            counter(
                &mut r,
                "media_datagrams_sent",
                "UDP datagrams handed to the kernel",
                m.datagrams_sent,
            );
            counter(
                &mut r,
                "media_datagrams_dropped",
                "UDP datagrams dropped on sending",
                m.datagrams_dropped,
            );
            counter(
                &mut r,
                "media_bytes_sent",
                "UDP payload bytes handed to the kernel",
                m.bytes_sent,
            );
            counter(
                &mut r,
                "media_rtp_received",
                "RTP packets received from publishers",
                m.rtp_received,
            );
            counter(
                &mut r,
                "media_rtp_forwarded",
                "RTP packets forwarded to subscribers",
                m.rtp_forwarded,
            );
            let max_of = |f: &dyn Fn(&conclave_media::ParticipantStats) -> Option<f64>| {
                m.participants
                    .iter()
                    .filter_map(f)
                    .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))))
            };
            let rtt = max_of(&|p| p.rtt.map(|d| d.as_secs_f64()));
            let loss_in = max_of(&|p| p.ingress_loss_permille.map(|v| f64::from(v) / 1000.0));
            let loss_out = max_of(&|p| p.egress_loss_permille.map(|v| f64::from(v) / 1000.0));
            if let Some(v) = rtt {
                r.register_with_unit(
                    "media_rtt_max",
                    "Highest round-trip time to a participant the SFU measured",
                    Unit::Seconds,
                    ConstGauge::new(v),
                );
            }
            if let Some(v) = loss_in {
                r.register(
                    "media_ingress_loss_ratio_max",
                    "Highest loss fraction of what a participant sends the SFU",
                    ConstGauge::new(v),
                );
            }
            if let Some(v) = loss_out {
                r.register(
                    "media_egress_loss_ratio_max",
                    "Highest loss fraction of what the SFU sends a participant",
                    ConstGauge::new(v),
                );
            }
        }
        if let Some(t) = turn {
            gauge(
                &mut r,
                "turn_allocations",
                "Live TURN allocations",
                n(t.allocations),
            );
            counter(&mut r, "turn_relayed", "Packets TURN relayed", t.relayed);
            counter(&mut r, "turn_dropped", "Packets TURN dropped", t.dropped);
            counter(&mut r, "turn_refused", "TURN requests refused", t.refused);
        }
        let c = &self.counters;
        r.register(
            "signin_success",
            "Sign-ins that succeeded",
            c.signin_success.clone(),
        );
        r.register(
            "signin_failure",
            "Sign-ins refused for wrong credentials or an unusable account",
            c.signin_failure.clone(),
        );
        r.register(
            "signin_throttled",
            "Sign-ins refused by backoff or lockout",
            c.signin_throttled.clone(),
        );
        r.register(
            "token_refused",
            "Joins with an invalid token",
            c.token_refused.clone(),
        );
        let p = process();
        r.register_with_unit(
            "process_cpu",
            "CPU time used",
            Unit::Seconds,
            ConstCounter::new(p.cpu_secs),
        );
        r.register_with_unit(
            "process_resident_memory",
            "Resident memory",
            Unit::Bytes,
            ConstGauge::new(p.rss_bytes),
        );
        gauge(&mut r, "process_threads", "Threads", p.threads);
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &r).is_err() {
            out.clear();
        }
        out
    }

    /// Whether the server can take meetings: the conference task and the media plane answer
    /// and the database can be read. The reasons when not.
    pub async fn ready(&self) -> Result<(), Vec<&'static str>> {
        let mut why = Vec::new();
        if self.core().await.is_none() {
            why.push("the conference task does not answer");
        }
        if self.media().await.is_none() {
            why.push("the media plane does not answer");
        }
        let s = self.store.clone();
        let db = tokio::task::spawn_blocking(move || s.schema_version()).await;
        if !matches!(db, Ok(Ok(_))) {
            why.push("the database cannot be read");
        }
        if why.is_empty() { Ok(()) } else { Err(why) }
    }
}

/// OpenMetrics' content type.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `/metrics` on the HTTPS port: only with the bearer key; 404 when no key is configured
/// (the endpoint does not exist for the public).
pub async fn https_metrics(m: &Monitor, headers: &HeaderMap) -> Response {
    let Some(key) = &m.key else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !conclave_room::access::secrets_equal(crate::http::bearer(headers), key) {
        let mut r = (StatusCode::UNAUTHORIZED, "metrics need the bearer key\n").into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    metrics_response(m).await
}

async fn metrics_response(m: &Monitor) -> Response {
    let mut r = m.render().await.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    r
}

/// `/readyz`: 200 "ready", or 503 with the reasons.
pub async fn readyz(m: &Monitor) -> Response {
    match m.ready().await {
        Ok(()) => "ready\n".into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", why.join("; ")),
        )
            .into_response(),
    }
}

/// Serve `/metrics`, `/healthz` and `/readyz` over plain HTTP on `listener` (the
/// `[metrics] http_listen` address).
pub async fn serve(listener: tokio::net::TcpListener, m: Monitor) {
    use axum::routing::get;
    let m1 = m.clone();
    let m2 = m;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = m1.clone();
                async move { metrics_response(&m).await }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let m = m2.clone();
                async move { readyz(&m).await }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("metrics listener: {e}");
    }
}

struct ProcessStats {
    cpu_secs: f64,
    rss_bytes: i64,
    threads: i64,
}

/// CPU time, resident memory and threads of this process, from /proc (zeros elsewhere).
fn process() -> ProcessStats {
    let mut p = ProcessStats {
        cpu_secs: 0.0,
        rss_bytes: 0,
        threads: 0,
    };
    // /proc/self/stat: the second field is "(comm)" and may hold spaces; count after ')'.
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
        && let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r)
    {
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After the comm: state is index 0, utime 11, stime 12, num_threads 17, rss 21.
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        // SAFETY: sysconf only reads a configuration value.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1);
        p.cpu_secs = (num(11) + num(12)) as f64 / ticks as f64;
        p.threads = num(17);
        p.rss_bytes = num(21).saturating_mul(page);
    }
    p
}
