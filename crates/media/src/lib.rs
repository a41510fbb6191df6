//! Conclave's SFU media plane on str0m.
//!
//! One UDP socket carries every participant's ICE, DTLS-SRTP, RTP and RTCP. Each participant
//! has one str0m [`str0m::Rtc`] in RTP mode: packets are forwarded as they arrive (no
//! depacketisation), str0m answers NACKs from its send buffer (RTX), produces RTCP, and
//! reports keyframe requests that we pass to the publisher.
//!
//! The plane runs on its own thread and owns all its state: there is no lock anywhere in the
//! packet path. The signalling side talks to it only through [`MediaPlane::command`] and the
//! event sink. Sharding across cores (issue 3) splits this state by room onto several such
//! threads; see `docs/architecture.md`.

mod client;
mod plane;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::thread::JoinHandle;
use std::time::Duration;

use conclave_proto::{ParticipantId, ProtocolError, Source, TrackInfo};
use crossbeam_channel::Sender;
use std::collections::BTreeMap;

pub use conclave_room::MediaCommand;

/// Media plane settings.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Address the UDP socket binds to (port 0 picks one).
    pub bind: SocketAddr,
    /// The IP announced in ICE candidates (the public address behind 1:1 NAT).
    pub announce_ip: IpAddr,
    /// A participant from whom no UDP datagram arrives for this long is removed.
    pub participant_timeout: Duration,
    /// How far back a subscriber's NACK can reach: sent video packets are kept this long
    /// (at most 1024 per stream) for retransmission.
    pub nack_history: Duration,
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
}

impl MediaSnapshot {
    /// The stats of one participant, if the plane still holds it.
    pub fn get(&self, id: ParticipantId) -> Option<&ParticipantStats> {
        self.participants.iter().find(|p| p.id == Some(id))
    }
}

/// Handle to the running media plane. Dropping it stops the thread.
pub struct MediaPlane {
    commands: Sender<plane::Command>,
    local_addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

/// Where media events go. Called on the media thread; must not block.
pub type EventSink = Box<dyn FnMut(MediaEvent) + Send>;

impl MediaPlane {
    /// Bind the UDP socket and start the media thread.
    pub fn start(config: MediaConfig, events: EventSink) -> std::io::Result<MediaPlane> {
        let socket = UdpSocket::bind(config.bind)?;
        let local_addr = socket.local_addr()?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let announce = SocketAddr::new(config.announce_ip, local_addr.port());
        let thread = std::thread::Builder::new()
            .name("conclave-media".into())
            .spawn(move || plane::Plane::new(socket, announce, config, rx, events).run())?;
        Ok(MediaPlane {
            commands: tx,
            local_addr,
            thread: Some(thread),
        })
    }

    /// The bound UDP address (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Hand a room-core decision to the media thread.
    pub fn command(&self, cmd: MediaCommand) {
        // A send only fails when the thread is gone, which happens only at shutdown.
        let _ = self.commands.send(plane::Command::Room(cmd));
    }

    /// A snapshot of the plane's state (waits for the media thread, at most one second).
    pub fn snapshot(&self) -> Option<MediaSnapshot> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.commands.send(plane::Command::Snapshot(tx)).ok()?;
        rx.recv_timeout(Duration::from_secs(1)).ok()
    }
}

impl Drop for MediaPlane {
    fn drop(&mut self) {
        let _ = self.commands.send(plane::Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
