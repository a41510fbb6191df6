//! The TURN service's IO edge on tokio: UDP, TCP and TLS listeners, streams handed over by
//! the HTTPS port's demultiplexer, relay sockets, and one task that owns the [`TurnCore`].
//!
//! Every client datagram, stream frame and relayed datagram goes through that one task (a
//! bounded queue: under a flood the excess is dropped at the queue, the task never blocks on
//! a socket). Control messages (grants, revocations, streams opening) have their own
//! unbounded queue so that a flood cannot delay them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::auth::{Credentials, IceCredential};
use crate::core::{ClientId, Now, Output, TurnConfig, TurnCore, TurnStats};
use crate::stun;

/// The service's settings.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The core's limits and allowed peers.
    pub core: TurnConfig,
    /// IP relay sockets bind to for IPv4 peers (the media plane's own address), and for IPv6.
    pub relay_ip_v4: Option<IpAddr>,
    /// See `relay_ip_v4`.
    pub relay_ip_v6: Option<IpAddr>,
    /// Open TCP/TLS connections at most.
    pub max_streams: usize,
    /// A stream that sends nothing for this long is closed.
    pub stream_idle: Duration,
    /// A TLS handshake must finish within this.
    pub handshake_timeout: Duration,
}

/// Sockets to serve on (already bound, so tests can use port 0).
#[derive(Default)]
pub struct Listeners {
    /// STUN/TURN over UDP.
    pub udp: Option<std::net::UdpSocket>,
    /// TURN over TCP.
    pub tcp: Option<std::net::TcpListener>,
    /// TURN over TLS, with the acceptor.
    pub tls: Option<(std::net::TcpListener, TlsAcceptor)>,
}

/// Client datagrams and frames waiting for the core at most; more are dropped.
const DATA_QUEUE: usize = 8192;
/// Frames waiting to be written to one stream at most; more are dropped.
const STREAM_QUEUE: usize = 512;

enum Data {
    Client {
        client: ClientId,
        addr: SocketAddr,
        data: Vec<u8>,
    },
    Peer {
        relay: SocketAddr,
        from: SocketAddr,
        data: Vec<u8>,
    },
}

enum Ctl {
    Grant(String, String),
    Revoke(String),
    StreamOpened(u64, mpsc::Sender<Vec<u8>>),
    StreamClosed(u64),
    Stats(oneshot::Sender<TurnStats>),
}

/// A handle on the running service. Cloning is cheap; the service stops when the tasks
/// returned by [`Turn::start`] are aborted.
#[derive(Clone)]
pub struct Turn {
    ctl: mpsc::UnboundedSender<Ctl>,
    data: mpsc::Sender<Data>,
    creds: Credentials,
    relays: Arc<RwLock<HashSet<SocketAddr>>>,
    next_stream: Arc<AtomicU64>,
    streams: Arc<AtomicUsize>,
    config: Arc<ServiceConfig>,
}

impl std::fmt::Debug for Turn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Turn").finish_non_exhaustive()
    }
}

fn now() -> Now {
    Now {
        mono: Instant::now(),
        unix: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
}

impl Turn {
    /// Start serving on `listeners`. Must run inside a tokio runtime.
    pub fn start(
        config: ServiceConfig,
        creds: Credentials,
        listeners: Listeners,
    ) -> io::Result<(Turn, Vec<JoinHandle<()>>)> {
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (data_tx, data_rx) = mpsc::channel(DATA_QUEUE);
        let turn = Turn {
            ctl: ctl_tx,
            data: data_tx,
            creds: creds.clone(),
            relays: Arc::new(RwLock::new(HashSet::new())),
            next_stream: Arc::new(AtomicU64::new(1)),
            streams: Arc::new(AtomicUsize::new(0)),
            config: Arc::new(config.clone()),
        };
        let mut tasks = Vec::new();
        let udp = match listeners.udp {
            Some(s) => {
                s.set_nonblocking(true)?;
                let s = Arc::new(UdpSocket::from_std(s)?);
                tasks.push(tokio::spawn(udp_listener(s.clone(), turn.data.clone())));
                Some(s)
            }
            None => None,
        };
        if let Some(l) = listeners.tcp {
            l.set_nonblocking(true)?;
            let l = TcpListener::from_std(l)?;
            tasks.push(tokio::spawn(tcp_listener(l, None, turn.clone())));
        }
        if let Some((l, acceptor)) = listeners.tls {
            l.set_nonblocking(true)?;
            let l = TcpListener::from_std(l)?;
            tasks.push(tokio::spawn(tcp_listener(l, Some(acceptor), turn.clone())));
        }
        let core = TurnCore::new(config.core.clone(), creds);
        tasks.push(tokio::spawn(run(core, ctl_rx, data_rx, udp, turn.clone())));
        Ok((turn, tasks))
    }

    /// A credential for `grant` (a participant session), valid for `ttl`, accepted until
    /// [`Turn::revoke`].
    pub fn issue(&self, grant: &str, ttl: Duration) -> IceCredential {
        let c = self.creds.mint(grant, now().unix + ttl.as_secs());
        let _ = self
            .ctl
            .send(Ctl::Grant(grant.to_owned(), c.username.clone()));
        c
    }

    /// End a grant: its credential stops working and its allocations are released.
    pub fn revoke(&self, grant: &str) {
        let _ = self.ctl.send(Ctl::Revoke(grant.to_owned()));
    }

    /// Whether `addr` is one of our relay sockets (the media plane's relay-only check).
    pub fn is_relay(&self, addr: SocketAddr) -> bool {
        self.relays
            .read()
            .map(|s| s.contains(&addr))
            .unwrap_or(false)
    }

    /// Counters.
    pub async fn stats(&self) -> Option<TurnStats> {
        let (tx, rx) = oneshot::channel();
        self.ctl.send(Ctl::Stats(tx)).ok()?;
        rx.await.ok()
    }

    /// Serve TURN on an accepted stream (TCP, or TLS after the handshake): used by the
    /// listeners here and by the HTTPS port's demultiplexer.
    pub fn serve_stream<S>(&self, stream: S, peer: SocketAddr)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if self.streams.fetch_add(1, Ordering::SeqCst) >= self.config.max_streams {
            self.streams.fetch_sub(1, Ordering::SeqCst);
            tracing::debug!("TURN: too many streams, closing");
            return;
        }
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let turn = self.clone();
        tokio::spawn(async move {
            stream_task(stream, peer, id, &turn).await;
            let _ = turn.ctl.send(Ctl::StreamClosed(id));
            turn.streams.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn udp_listener(socket: Arc<UdpSocket>, data: mpsc::Sender<Data>) {
    let mut buf = vec![0u8; stun::MAX_MESSAGE_LEN + 1];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) if n <= stun::MAX_MESSAGE_LEN => {
                // A full queue drops the datagram, as a congested network would.
                let _ = data.try_send(Data::Client {
                    client: ClientId::Udp(from),
                    addr: from,
                    data: buf[..n].to_vec(),
                });
            }
            Ok(_) => {} // Oversized: not ours.
            Err(e) => {
                tracing::debug!("TURN UDP receive: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn tcp_listener(listener: TcpListener, tls: Option<TlsAcceptor>, turn: Turn) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("TURN accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        match &tls {
            None => turn.serve_stream(tcp, peer),
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let turn = turn.clone();
                tokio::spawn(async move {
                    let limit = turn.config.handshake_timeout;
                    match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => turn.serve_stream(s, peer),
                        Ok(Err(e)) => tracing::debug!("TURN TLS handshake: {e}"),
                        Err(_) => tracing::debug!("TURN TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// One stream: frames in (to the core), frames out (from the core), until either side ends,
/// the stream breaks TURN framing, or it idles.
async fn stream_task<S>(stream: S, peer: SocketAddr, id: u64, turn: &Turn)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, mut out_rx) = mpsc::channel(STREAM_QUEUE);
    if turn.ctl.send(Ctl::StreamOpened(id, out_tx)).is_err() {
        return;
    }
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf: Vec<u8> = Vec::with_capacity(2 * stun::MAX_MESSAGE_LEN);
    let mut chunk = vec![0u8; stun::MAX_MESSAGE_LEN];
    let idle = turn.config.stream_idle;
    loop {
        tokio::select! {
            read = tokio::time::timeout(idle, rd.read(&mut chunk)) => {
                let n = match read {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Err(_) => {
                        tracing::debug!("TURN stream idle, closing");
                        break;
                    }
                    Ok(Ok(n)) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                loop {
                    match stun::frame_len(&buf) {
                        Ok(Some(len)) => {
                            let frame: Vec<u8> = buf.drain(..len).collect();
                            let msg = Data::Client { client: ClientId::Stream(id), addr: peer, data: frame };
                            // Streams wait for the core (TCP pushes back on the sender).
                            if turn.data.send(msg).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!("TURN stream: {e}, closing");
                            let _ = wr.shutdown().await;
                            return;
                        }
                    }
                }
            }
            out = out_rx.recv() => match out {
                Some(frame) => {
                    if wr.write_all(&frame).await.is_err() {
                        break;
                    }
                }
                None => break, // The core closed us (grant revoked).
            }
        }
    }
    let _ = wr.shutdown().await;
}

/// The task that owns the core.
async fn run(
    mut core: TurnCore,
    mut ctl: mpsc::UnboundedReceiver<Ctl>,
    mut data: mpsc::Receiver<Data>,
    udp: Option<Arc<UdpSocket>>,
    turn: Turn,
) {
    let mut io = Io {
        udp,
        streams: HashMap::new(),
        relays: HashMap::new(),
        turn,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let out = tokio::select! {
            biased;
            c = ctl.recv() => match c {
                None => break,
                Some(Ctl::Grant(g, u)) => { core.grant(&g, &u); Vec::new() }
                Some(Ctl::Revoke(g)) => core.revoke(&g),
                Some(Ctl::StreamOpened(id, tx)) => { io.streams.insert(id, tx); Vec::new() }
                Some(Ctl::StreamClosed(id)) => {
                    io.streams.remove(&id);
                    core.client_closed(ClientId::Stream(id))
                }
                Some(Ctl::Stats(reply)) => { let _ = reply.send(core.stats()); Vec::new() }
            },
            _ = tick.tick() => core.tick(now()),
            d = data.recv() => match d {
                None => break,
                Some(Data::Client { client, addr, data }) => core.from_client(now(), client, addr, &data),
                Some(Data::Peer { relay, from, data }) => core.from_peer(now(), relay, from, &data),
            },
        };
        io.execute(&mut core, out);
    }
}

struct Io {
    udp: Option<Arc<UdpSocket>>,
    streams: HashMap<u64, mpsc::Sender<Vec<u8>>>,
    relays: HashMap<SocketAddr, (Arc<UdpSocket>, JoinHandle<()>)>,
    turn: Turn,
}

impl Io {
    fn execute(&mut self, core: &mut TurnCore, out: Vec<Output>) {
        let mut queue: VecDeque<Output> = out.into();
        while let Some(o) = queue.pop_front() {
            match o {
                Output::ToClient {
                    client: ClientId::Udp(addr),
                    data,
                } => {
                    if let Some(s) = &self.udp {
                        let _ = s.try_send_to(&data, addr);
                    }
                }
                Output::ToClient {
                    client: ClientId::Stream(id),
                    data,
                } => {
                    if let Some(tx) = self.streams.get(&id) {
                        let _ = tx.try_send(data);
                    }
                }
                Output::ToPeer { relay, peer, data } => {
                    if let Some((s, _)) = self.relays.get(&relay) {
                        let _ = s.try_send_to(&data, peer);
                    }
                }
                Output::OpenRelay { client, ipv6, even } => {
                    let opened = self.open_relay(ipv6, even);
                    queue.extend(core.relay_opened(now(), client, opened));
                }
                Output::CloseRelay { relay } => {
                    if let Some((_, task)) = self.relays.remove(&relay) {
                        task.abort();
                    }
                    if let Ok(mut set) = self.turn.relays.write() {
                        set.remove(&relay);
                    }
                }
                Output::CloseClient {
                    client: ClientId::Stream(id),
                } => {
                    // Dropping the sender ends the stream's task.
                    self.streams.remove(&id);
                }
                Output::CloseClient { .. } => {}
            }
        }
    }

    fn open_relay(&mut self, ipv6: bool, even: bool) -> Result<SocketAddr, String> {
        let ip = if ipv6 {
            self.turn.config.relay_ip_v6
        } else {
            self.turn.config.relay_ip_v4
        }
        .ok_or_else(|| "no relay address for this family".to_owned())?;
        // The kernel picks the port; for EVEN-PORT ask again until it is even (each try has
        // an even chance).
        let mut tries = 0;
        let std = loop {
            let s = std::net::UdpSocket::bind((ip, 0)).map_err(|e| e.to_string())?;
            let port = s.local_addr().map_err(|e| e.to_string())?.port();
            tries += 1;
            if !even || port % 2 == 0 {
                break s;
            }
            if tries == 16 {
                return Err("no even port found".into());
            }
        };
        std.set_nonblocking(true).map_err(|e| e.to_string())?;
        let socket = Arc::new(UdpSocket::from_std(std).map_err(|e| e.to_string())?);
        let addr = socket.local_addr().map_err(|e| e.to_string())?;
        let reader = tokio::spawn(relay_reader(socket.clone(), addr, self.turn.data.clone()));
        self.relays.insert(addr, (socket, reader));
        if let Ok(mut set) = self.turn.relays.write() {
            set.insert(addr);
        }
        Ok(addr)
    }
}

async fn relay_reader(socket: Arc<UdpSocket>, relay: SocketAddr, data: mpsc::Sender<Data>) {
    let mut buf = vec![0u8; 65536];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) if n <= stun::MAX_MESSAGE_LEN - 36 => {
                let _ = data.try_send(Data::Peer {
                    relay,
                    from,
                    data: buf[..n].to_vec(),
                });
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}
