//! Conclave: confidential video meetings in one binary. This crate wires the pieces: config,
//! TLS, HTTP/WebSocket edge, the conference task around the room core, and the media plane.

pub mod acme;
pub mod audit_live;
pub mod conference;
pub mod config;
pub mod config_check;
pub mod demux;
pub mod deployment_audit;
pub mod http;
pub mod identity;
pub mod invite;
pub mod ldap;
pub mod metrics;
pub mod oidc;
pub mod passkey;
pub mod plain_http;
pub mod records;
pub mod rooms_api;
pub mod second_factor;
pub mod signin;
pub mod tls;
pub mod turn;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use conclave_media::{MediaConfig, MediaPlane, MediaSnapshot};
use conclave_room::RoomCore;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tower::Service;

use crate::conference::{CoreStats, ToConference};
use crate::config::Config;
use crate::ws::SocketLimits;

/// What [`Server::preflight`] read.
pub struct Preflight {
    /// The metrics bearer key, if one is configured.
    pub metrics_key: Option<String>,
    /// The `[[ldap]]` directories, ready to connect.
    pub directories: Vec<ldap::Directory>,
    /// The `[[oidc]]` providers, their secrets read.
    pub providers: Vec<oidc::Provider>,
}

/// A running server. Dropping it stops everything (its [`Tasks`] abort on drop).
pub struct Server {
    https_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    certs: Arc<tls::CertResolver>,
    turn: Option<conclave_turn::Turn>,
    turn_addrs: turn::TurnAddrs,
    media: Arc<MediaPlane>,
    conf: mpsc::UnboundedSender<ToConference>,
    recorder: records::Recorder,
    metrics_addr: Option<SocketAddr>,
    /// Held only to be dropped with the server.
    _tasks: Tasks,
}

/// Background tasks, aborted when dropped: by [`Server`]'s drop, or by a `start` that fails
/// half way (so a failed start leaves no listener or ACME client running).
#[derive(Default)]
struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    fn push(&mut self, t: JoinHandle<()>) {
        self.0.push(t);
    }

    fn extend(&mut self, ts: impl IntoIterator<Item = JoinHandle<()>>) {
        self.0.extend(ts);
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl Server {
    /// What `start` checks before it creates a file or binds a socket (`serve` calls it
    /// before binding the HTTPS port): key files that must exist and be long enough, and
    /// the CA files of the `[[ldap]]` directories, the client secrets of the `[[oidc]]`
    /// providers.
    pub fn preflight(config: &Config) -> Result<Preflight> {
        let metrics_key = config.metrics.key()?;
        let directories = config
            .ldap
            .iter()
            .map(|c| ldap::Directory::new(c.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)?;
        let providers = config
            .oidc
            .iter()
            .map(|c| oidc::Provider::new(c.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)?;
        Ok(Preflight {
            metrics_key,
            directories,
            providers,
        })
    }

    /// Start on an already bound listener (so tests can bind port 0). Creates the data
    /// directory and the self-signed certificate when needed.
    pub async fn start(config: Config, listener: TcpListener) -> Result<Server> {
        // Key files are read before anything is created or bound, so a bad one is named
        // and nothing changes.
        let Preflight {
            metrics_key,
            directories,
            providers,
        } = Self::preflight(&config)?;
        create_private_dir(&config.data_dir).with_context(|| {
            format!("cannot create data directory {}", config.data_dir.display())
        })?;
        let store = conclave_store::Store::open(&config.data_dir, config.accounts.store_options())
            .with_context(|| {
                format!(
                    "cannot open the account database in {}",
                    config.data_dir.display()
                )
            })?;
        let store = Arc::new(store);
        let recorder = if config.privacy.connection_log || config.audit.enabled {
            records::Recorder::start(&config, store.clone(), records::Schedule::default())?
        } else {
            records::Recorder::disabled()
        };
        recorder.audit(records::AuditEntry {
            kind: "server.start",
            actor: "server".into(),
            detail: format!("conclave {}", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        });
        for f in config_check::loosened(&config) {
            recorder.audit(records::AuditEntry {
                kind: "config.loosened",
                actor: "server".into(),
                target: f.key.clone(),
                detail: f.message.clone(),
                ..Default::default()
            });
        }
        let edges = conference::Edges {
            recorder: recorder.clone(),
            counters: metrics::Counters::default(),
        };
        let tls_setup = tls::setup(&config)?;
        let tls_config = tls_setup.config.clone();
        let https_addr = listener.local_addr()?;
        let mut tasks = Tasks::default();
        if let tls::CertSource::Files { cert, key } = &tls_setup.source {
            tasks.push(tokio::spawn(tls::watch_files(
                tls_setup.resolver.clone(),
                cert.clone(),
                key.clone(),
                Duration::from_secs(config.tls.reload_check_secs),
            )));
        }
        let acme_http = acme::Http01Tokens::default();
        if tls_setup.source == tls::CertSource::Acme {
            tasks.push(tokio::spawn(acme::run(
                config.clone(),
                tls_setup.resolver.clone(),
                acme_http.clone(),
            )));
        }
        let mut http_redirect = None;
        if let Some(addr) = config.http_listen {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (http_listen)"))?;
            http_redirect = Some(l.local_addr()?);
            tasks.push(tokio::spawn(plain_http::serve(
                l,
                https_addr.port(),
                config.public_url.clone(),
                acme_http.clone(),
            )));
        }
        // Filled once the TURN server runs (it needs the media plane's address first).
        let relays: Arc<std::sync::OnceLock<conclave_turn::Turn>> = Arc::default();
        let accept_source = config.network.relay_only.then(|| {
            let relays = relays.clone();
            conclave_media::SourceFilter(Arc::new(move |a| {
                relays.get().is_some_and(|t| t.is_relay(a))
            }))
        });

        let (conf_tx, conf_rx) = mpsc::unbounded_channel();
        let events_tx = conf_tx.clone();
        let media = MediaPlane::start(
            MediaConfig {
                bind: config.media_bind(),
                announce_ip: config.announce_ip(),
                participant_timeout: Duration::from_secs(config.participant_timeout_secs),
                nack_history: Duration::from_millis(config.nack_history_ms),
                threads: config.media_thread_count(),
                last_n: config.meeting.last_n as usize,
                h264: config.meeting.e2ee == conclave_proto::E2eeMode::Off,
                accept_source,
            },
            Arc::new(move |e| {
                let _ = events_tx.send(ToConference::Media(e));
            }),
        )
        .with_context(|| format!("cannot bind media UDP socket {}", config.media_bind()))?;
        let media = Arc::new(media);
        let turn = turn::start(
            &config,
            &tls_config,
            media.local_addr(),
            config.announce_ip(),
            https_addr.port(),
        )?;
        let (turn_handle, ice, turn_addrs) = match turn {
            Some(t) => {
                let _ = relays.set(t.turn.clone());
                tasks.extend(t.tasks);
                tracing::info!(
                    udp = ?t.addrs.udp, tcp = ?t.addrs.tcp, tls = ?t.addrs.tls,
                    on_https_port = config.turn.on_https_port, "TURN server"
                );
                (Some(t.turn), Some(t.ice), t.addrs)
            }
            None => (None, None, turn::TurnAddrs::default()),
        };
        let https_turn = turn_handle.clone().filter(|_| config.turn.on_https_port);
        let tls = {
            let mut c = (*tls_config).clone();
            if https_turn.is_some() {
                c.alpn_protocols.push(turn::TURN_ALPN.to_vec());
            }
            if config.tls.acme.enabled()
                && config.tls.acme.challenge == config::AcmeChallenge::TlsAlpn01
            {
                c.alpn_protocols.push(tls::ACME_TLS_ALPN.to_vec());
            }
            TlsAcceptor::from(Arc::new(c))
        };

        let core = RoomCore::with_access(
            config.limits.core(),
            config.meeting.settings(),
            config.access_policy(),
        );
        let tokens = if config.tokens.enabled {
            let verifier = conclave_token::TokenVerifier::from_config(&config.tokens)
                .context("cannot use the [tokens] configuration")?;
            if config.tokens.jwks_url.is_some() {
                tasks.push(tokio::spawn(verifier.clone().run_jwks_refresh()));
            }
            Some(invite::tokens(verifier))
        } else {
            None
        };
        let conference = tokio::spawn(conference::run(
            core,
            tokens,
            config.limits.max_connections,
            media.clone(),
            ice,
            edges.clone(),
            conf_rx,
        ));
        let limits = SocketLimits {
            max_message_bytes: config.limits.max_message_bytes,
            idle_timeout: Duration::from_secs(config.participant_timeout_secs),
        };
        // Reservations survive restarts: the ended ones go, the others reach the room core.
        let reservations = store
            .purge_ended_reservations(conclave_store::OffsetDateTime::now_utc())
            .and_then(|_| store.list_reservations())
            .context("cannot read room reservations")?;
        for r in &reservations {
            rooms_api::announce(&conf_tx, r);
        }
        // Links and redirect URIs: the real port when listening on port 0.
        let base_url = match &config.public_url {
            Some(_) => config.base_url(),
            None => format!("https://{https_addr}"),
        };
        let admin = rooms_api::AdminApi {
            key: config.api.admin_key()?.map(Into::into),
            store: store.clone(),
            conf: conf_tx.clone(),
            recorder: recorder.clone(),
            base_url: base_url.clone(),
        };
        // Expired sign-in sessions are refused anyway; this keeps the table from growing.
        let purge_store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(3600));
            loop {
                every.tick().await;
                let s = purge_store.clone();
                let purged = tokio::task::spawn_blocking(move || {
                    s.purge_expired_sessions(conclave_store::OffsetDateTime::now_utc())
                })
                .await;
                if let Ok(Err(e)) = purged {
                    tracing::warn!("purging expired sessions: {e}");
                }
            }
        }));
        let monitor = metrics::Monitor {
            conf: conf_tx.clone(),
            media: media.clone(),
            turn: turn_handle.clone(),
            store: store.clone(),
            counters: edges.counters.clone(),
            key: metrics_key.map(Into::into),
        };
        let mut metrics_addr = None;
        if let Some(addr) = config.metrics.http_listen {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (metrics.http_listen)"))?;
            metrics_addr = Some(l.local_addr()?);
            tasks.push(tokio::spawn(metrics::serve(l, monitor.clone())));
        }
        let factor_key = conclave_store::FactorKey::load_or_create(
            &config.data_dir.join(conclave_store::FACTORS_KEY_FILE),
            &store,
        )?;
        let binding = std::sync::Arc::new(identity::BindingKey::load_or_create(
            &config.data_dir.join(identity::IDENTITY_KEY_FILE),
        )?);
        let mut signin = signin::SignIn::new(
            store,
            config.attempts.throttle(),
            &config.accounts,
            factor_key,
            binding.clone(),
            directories,
            edges,
        );
        signin.oidc = Arc::new(oidc::Oidc::new(providers, base_url));
        let oidc_buttons = signin.oidc.buttons();
        let public = http::PublicSettings {
            settings: config.meeting.settings(),
            access_mode: config.access_policy().mode.to_string(),
            tokens: config.tokens.enabled,
            identity_key: binding.public_b64(),
            oidc: oidc_buttons,
        };
        let app = http::router(conf_tx.clone(), limits, signin, admin, public, monitor);
        let accept = tokio::spawn(accept_loop(listener, tls, app, https_turn));
        Ok(Server {
            https_addr,
            http_addr: http_redirect,
            certs: tls_setup.resolver,
            turn: turn_handle,
            turn_addrs,
            media,
            conf: conf_tx,
            recorder,
            metrics_addr,
            _tasks: {
                tasks.extend([conference, accept]);
                tasks
            },
        })
    }

    /// The HTTPS address with the real port.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// The plain-HTTP (redirect, ACME HTTP-01) address with the real port, if configured.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The metrics listener's address with the real port, if configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Wait until the connection and audit log entries so far are written.
    pub fn flush_records(&self) -> bool {
        self.recorder.flush(Duration::from_secs(10))
    }

    /// The certificate presented now (DER of the leaf).
    pub fn certificate(&self) -> Vec<u8> {
        self.certs
            .current()
            .cert
            .first()
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default()
    }

    /// The media UDP address with the real port.
    pub fn media_addr(&self) -> SocketAddr {
        self.media.local_addr()
    }

    /// The TURN listeners' addresses (all `None` when TURN is off).
    pub fn turn_addrs(&self) -> turn::TurnAddrs {
        self.turn_addrs
    }

    /// TURN counters (`None` when TURN is off).
    pub async fn turn_stats(&self) -> Option<conclave_turn::TurnStats> {
        self.turn.as_ref()?.stats().await
    }

    /// What the media plane holds right now.
    pub fn media_snapshot(&self) -> Option<MediaSnapshot> {
        self.media.snapshot()
    }

    /// Room core counters.
    pub async fn core_stats(&self) -> Option<CoreStats> {
        let (tx, rx) = oneshot::channel();
        self.conf.send(ToConference::Stats(tx)).ok()?;
        rx.await.ok()
    }
}

/// Create `dir` (and missing parents) with mode 0700: the data directory holds keys and
/// the database. An existing directory keeps its mode (`conclave audit` reports a loose one).
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

async fn accept_loop(
    listener: TcpListener,
    tls: TlsAcceptor,
    app: axum::Router,
    turn: Option<conclave_turn::Turn>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let tls = tls.clone();
        let app = app.clone();
        let turn = turn.clone();
        tokio::spawn(async move {
            serve_https_port(tcp, peer, tls, app, turn).await;
        });
    }
}

/// One connection to the HTTPS port: HTTPS, or TURN over TLS or TCP (see [`demux`]).
async fn serve_https_port(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: TlsAcceptor,
    app: axum::Router,
    turn: Option<conclave_turn::Turn>,
) {
    use demux::Opening;
    use tokio::io::AsyncReadExt;
    const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);
    // Browsers may open a connection ahead of use and send nothing for a while.
    const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
    if let Some(turn) = &turn {
        let mut first = [0u8; 1];
        match tokio::time::timeout(FIRST_BYTES_TIMEOUT, tcp.peek(&mut first)).await {
            Ok(Ok(1)) => {}
            _ => return,
        }
        match demux::opening(first[0]) {
            Opening::Tls => {}
            Opening::Stun => {
                let _ = tcp.set_nodelay(true);
                turn.serve_stream(tcp, peer);
                return;
            }
            Opening::Other => {
                tracing::debug!("neither TLS nor STUN on the HTTPS port");
                return;
            }
        }
    }
    let mut stream = match tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!("TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            return;
        }
    };
    if stream.get_ref().1.alpn_protocol() == Some(tls::ACME_TLS_ALPN) {
        // TLS-ALPN-01: the CA has seen the challenge certificate; nothing else is spoken.
        return;
    }
    let mut prefix = Vec::new();
    if let Some(turn) = &turn {
        if stream.get_ref().1.alpn_protocol() == Some(turn::TURN_ALPN) {
            turn.serve_stream(stream, peer);
            return;
        }
        let mut buf = vec![0u8; 4096];
        let n = match tokio::time::timeout(FIRST_REQUEST_TIMEOUT, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return,
        };
        buf.truncate(n);
        if demux::opening(buf[0]) == Opening::Stun {
            let _ = stream.get_ref().0.set_nodelay(true);
            turn.serve_stream(demux::Prefixed::new(buf, stream), peer);
            return;
        }
        prefix = buf;
    }
    let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
        req.extensions_mut().insert(http::PeerAddr(peer));
        app.clone().call(req)
    });
    if let Err(e) = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(demux::Prefixed::new(prefix, stream)), service)
        .await
    {
        tracing::debug!("http connection: {e}");
    }
}
