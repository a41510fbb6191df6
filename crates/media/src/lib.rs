//! Conclave's SFU media plane on str0m.
//!
//! One UDP port carries every participant's ICE, DTLS-SRTP, RTP and RTCP. Each participant
//! has one str0m [`str0m::Rtc`] in RTP mode: packets are forwarded as they arrive (no
//! depacketisation), str0m answers NACKs from its send buffer (RTX), produces RTCP, and
//! reports keyframe requests that we pass to the publisher.
//!
//! The plane runs as shards, one thread each, with every room pinned to one shard; a shard
//! owns all its state, so there is no lock anywhere in the packet path. The signalling side
//! talks to it only through [`MediaPlane::command`] and the event sink. How the shards share
//! the port is described in `sockets.rs` and `docs/architecture.md`.

mod batch_io;
mod client;
mod plane;
mod sockets;
mod speakers;

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use conclave_proto::{ParticipantId, ProtocolError, RoomId, Source, TrackInfo};
use crossbeam_channel::Sender;

pub use conclave_room::MediaCommand;

/// Most media threads.
pub const MAX_THREADS: usize = 64;

/// Decides whether a first datagram from an address may start a media session (relay-only:
/// only this server's TURN relays). Called once per new address, never per packet.
#[derive(Clone)]
pub struct SourceFilter(pub Arc<dyn Fn(SocketAddr) -> bool + Send + Sync>);

impl std::fmt::Debug for SourceFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SourceFilter")
    }
}

/// Media plane settings.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Address the UDP sockets bind to (port 0 picks one).
    pub bind: SocketAddr,
    /// The IP announced in ICE candidates (the public address behind 1:1 NAT).
    pub announce_ip: IpAddr,
    /// A participant from whom no UDP datagram arrives for this long is removed.
    pub participant_timeout: Duration,
    /// How far back a subscriber's NACK can reach: sent video packets are kept this long
    /// (at most 1024 per stream) for retransmission.
    pub nack_history: Duration,
    /// Media threads (shards); rooms are pinned to one each. 1..=64.
    pub threads: usize,
    /// Last-N: each subscriber gets camera video from at most this many publishers, those
    /// who spoke most recently. 0 means no limit.
    pub last_n: usize,
    /// When set, only addresses it accepts may make first contact (`[network] relay_only`).
    pub accept_source: Option<SourceFilter>,
    /// Offer H.264 besides VP8. Off under end-to-end encryption: only VP8 keeps the bytes
    /// the SFU reads in the clear (the client also prefers VP8 then).
    pub h264: bool,
}
/// Something the media plane tells the signalling side.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// Send this offer to the participant.
    Offer {
        /// Who.
        participant: ParticipantId,
        /// SDP text.
        sdp: String,
        /// Upstream slots.
        slots: BTreeMap<Source, String>,
        /// Downstream mids and what they carry.
        tracks: BTreeMap<String, TrackInfo>,
    },
    /// A request of the participant failed. With `fatal`, its session cannot go on and the
    /// signalling side must end it.
    Error {
        /// Who.
        participant: ParticipantId,
        /// What went wrong.
        error: ProtocolError,
        /// Whether the participant must be removed.
        fatal: bool,
    },
    /// Nothing was heard from the participant for the configured timeout (or its ICE/DTLS
    /// session died). The media side has already released it.
    Gone {
        /// Who.
        participant: ParticipantId,
    },
}

/// Counters of one participant, for tests and monitoring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParticipantStats {
    /// Who.
    pub id: Option<ParticipantId>,
    /// RTP packets received from it.
    pub rtp_in: u64,
    /// RTP packets forwarded to it.
    pub rtp_out: u64,
    /// Downstream m-lines currently open or being negotiated.
    pub subscriptions: usize,
    /// Whether ICE+DTLS are up.
    pub connected: bool,
    /// Round-trip time to it, from RTCP (str0m's peer stats, every few seconds).
    pub rtt: Option<Duration>,
    /// Loss of what it sends us, in thousandths, over the last stats interval.
    pub ingress_loss_permille: Option<u32>,
    /// Loss of what we send it, in thousandths, as its receiver reports say.
    pub egress_loss_permille: Option<u32>,
}

/// A consistent view of the media plane's state.
#[derive(Debug, Clone, Default)]
pub struct MediaSnapshot {
    /// One entry per participant the plane holds.
    pub participants: Vec<ParticipantStats>,
    /// Remote transport addresses still mapped to some participant.
    pub mapped_addresses: usize,
    /// Entries in the forwarding table (published tracks with at least one subscriber).
    pub forwarding_entries: usize,
    /// Sockets connected to one participant address each.
    pub connected_sockets: usize,
    /// Participants held by each media thread.
    pub shard_participants: Vec<usize>,
    /// UDP datagrams handed to the kernel.
    pub datagrams_sent: u64,
    /// UDP datagrams dropped on sending (full send buffer, unreachable destination).
    pub datagrams_dropped: u64,
    /// `sendmmsg` calls that carried them.
    pub send_calls: u64,
    /// Bytes of the datagrams handed to the kernel.
    pub bytes_sent: u64,
    /// RTP packets received from publishers, since start.
    pub rtp_received: u64,
    /// RTP packets forwarded to subscribers, since start.
    pub rtp_forwarded: u64,
}

impl MediaSnapshot {
    /// The stats of one participant, if the plane still holds it.
    pub fn get(&self, id: ParticipantId) -> Option<&ParticipantStats> {
        self.participants.iter().find(|p| p.id == Some(id))
    }
}

struct Shard {
    commands: Sender<plane::Command>,
    waker: Arc<mio::Waker>,
    thread: Option<JoinHandle<()>>,
}

impl Shard {
    fn send(&self, c: plane::Command) -> bool {
        let ok = self.commands.send(c).is_ok();
        let _ = self.waker.wake();
        ok
    }
}

/// Handle to the running media plane. Dropping it stops its threads.
pub struct MediaPlane {
    shards: Vec<Shard>,
    /// Which shard holds each participant. Touched per signalling command, never per packet.
    owner: Mutex<HashMap<ParticipantId, usize>>,
    local_addr: SocketAddr,
}

/// Where media events go. Called on the media threads; must not block.
pub type EventSink = Arc<dyn Fn(MediaEvent) + Send + Sync>;

/// The shard a room is pinned to.
pub fn shard_for_room(room: &RoomId, shards: usize) -> usize {
    let mut h = DefaultHasher::new();
    room.hash(&mut h);
    (h.finish() % shards.max(1) as u64) as usize
}

impl MediaPlane {
    /// Bind one socket per shard on the media port (`SO_REUSEPORT`) and start the threads.
    pub fn start(config: MediaConfig, events: EventSink) -> std::io::Result<MediaPlane> {
        let n = config.threads.clamp(1, MAX_THREADS);
        let first = sockets::reuseport_socket(config.bind)?;
        let local_addr = first.local_addr()?;
        let mut listeners = vec![first];
        for _ in 1..n {
            listeners.push(sockets::reuseport_socket(local_addr)?);
        }
        let announce = SocketAddr::new(config.announce_ip, local_addr.port());
        let mut parts = Vec::new();
        let mut links = Vec::new();
        for l in listeners {
            let (socks, waker) = sockets::Sockets::new(l)?;
            let waker = Arc::new(waker);
            let (htx, hrx) = crossbeam_channel::bounded(1024);
            links.push(plane::ShardLink {
                handoff: htx,
                waker: waker.clone(),
            });
            parts.push((socks, waker, hrx));
        }
        let links = Arc::new(links);
        let mut shards = Vec::new();
        for (i, (socks, waker, hrx)) in parts.into_iter().enumerate() {
            let (tx, rx) = crossbeam_channel::unbounded();
            let p = plane::Plane::new(
                i,
                socks,
                links.clone(),
                hrx,
                announce,
                config.clone(),
                rx,
                events.clone(),
            );
            let thread = std::thread::Builder::new()
                .name(format!("conclave-media-{i}"))
                .spawn(move || p.run())?;
            shards.push(Shard {
                commands: tx,
                waker,
                thread: Some(thread),
            });
        }
        Ok(MediaPlane {
            shards,
            owner: Mutex::new(HashMap::new()),
            local_addr,
        })
    }

    /// The bound UDP address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Hand a room-core decision to the shard that holds the participant it concerns.
    pub fn command(&self, cmd: MediaCommand) {
        let mut owner = self.owner.lock().unwrap_or_else(|e| e.into_inner());
        let shard = match &cmd {
            MediaCommand::AddParticipant { participant, room } => {
                let s = shard_for_room(room, self.shards.len());
                owner.insert(*participant, s);
                Some(s)
            }
            MediaCommand::RemoveParticipant { participant } => owner.remove(participant),
            MediaCommand::Subscribe { subscriber, .. }
            | MediaCommand::Unsubscribe { subscriber, .. } => owner.get(subscriber).copied(),
            MediaCommand::SetPublishing { publisher, .. } => owner.get(publisher).copied(),
            MediaCommand::Answer { participant, .. }
            | MediaCommand::SetReceiveVideo { participant, .. } => owner.get(participant).copied(),
        };
        drop(owner);
        if let Some(s) = shard.and_then(|s| self.shards.get(s)) {
            s.send(plane::Command::Room(cmd));
        }
    }

    /// A snapshot of every shard's state (waits at most one second per shard).
    pub fn snapshot(&self) -> Option<MediaSnapshot> {
        let mut all = MediaSnapshot::default();
        for s in &self.shards {
            let (tx, rx) = crossbeam_channel::bounded(1);
            if !s.send(plane::Command::Snapshot(tx)) {
                return None;
            }
            let one = rx.recv_timeout(Duration::from_secs(1)).ok()?;
            all.participants.extend(one.participants);
            all.mapped_addresses += one.mapped_addresses;
            all.forwarding_entries += one.forwarding_entries;
            all.connected_sockets += one.connected_sockets;
            all.shard_participants.extend(one.shard_participants);
            all.datagrams_sent += one.datagrams_sent;
            all.datagrams_dropped += one.datagrams_dropped;
            all.send_calls += one.send_calls;
            all.bytes_sent += one.bytes_sent;
            all.rtp_received += one.rtp_received;
            all.rtp_forwarded += one.rtp_forwarded;
        }
        all.participants.sort_by_key(|p| p.id);
        Some(all)
    }
}

impl Drop for MediaPlane {
    fn drop(&mut self) {
        for s in &self.shards {
            s.send(plane::Command::Stop);
        }
        for s in &mut self.shards {
            if let Some(t) = s.thread.take() {
                let _ = t.join();
            }
        }
    }
}
