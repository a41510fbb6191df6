//! One media shard: a thread that owns the participants of the rooms pinned to it, their
//! `Rtc`s, their sockets on the shared port, and the forwarding table between them.
//!
//! Lock rule: everything here is owned by the shard's thread. The only shared things are the
//! command channel (in), the hand-over channels for first contacts that landed on the wrong
//! shard (rare), and the event sink (out); none is touched per media packet.

use std::collections::{HashMap, HashSet};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use conclave_proto::{ParticipantId, RoomId, Source};
use conclave_room::MediaCommand;
use crossbeam_channel::{Receiver, Sender};
use mio::Waker;
use str0m::ice::StunMessage;
use str0m::media::KeyframeRequestKind;
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpPacket, RtpWrite};
use str0m::{Event, IceConnectionState, Input, Output};

use crate::batch_io::{RecvBatch, SendBatch};
use crate::client::Client;
use crate::sockets::Sockets;
use crate::speakers::SpeakerOrder;

mod commands;
mod video_selection;
use crate::{EventSink, MediaConfig, MediaEvent, MediaSnapshot};

/// Messages into the media thread.
pub enum Command {
    Room(MediaCommand),
    Snapshot(Sender<MediaSnapshot>),
    Stop,
}

/// Longest the loop sleeps when no timer is due (commands wake it at once).
const MAX_SLEEP: Duration = Duration::from_millis(50);
/// Most datagrams taken in one batch before forwarding.
const BATCH: usize = 64;
/// Most packets a video stream keeps for answering NACKs (also bounded by age).
const NACK_HISTORY_MAX_PACKETS: usize = 1024;
/// Drop queued resends when they exceed this share of a stream's traffic (str0m's default).
const RTX_RATIO_CAP: f32 = 0.15;
/// How often silent participants are looked for.
const LIVENESS_EVERY: Duration = Duration::from_millis(100);

/// Something one client produced that concerns another.
// Nearly every entry is a packet; boxing it would cost an allocation per packet.
#[allow(clippy::large_enum_variant)]
enum Propagate {
    Rtp(ParticipantId, Source, RtpPacket),
    Keyframe(ParticipantId, Source, KeyframeRequestKind),
    /// This publisher started speaking (last-N).
    SpeechStarted(ParticipantId),
}

/// How a shard reaches another: a bounded queue of handed-over datagrams and its waker.
pub struct ShardLink {
    pub handoff: Sender<(SocketAddr, Vec<u8>)>,
    pub waker: Arc<Waker>,
}

/// The shard that owns a STUN request's target: our ICE ufrags start with two digits naming
/// the shard (see `Client::new`).
fn stun_owner(data: &[u8]) -> Option<usize> {
    let stun = StunMessage::parse(data).ok()?;
    let (local, _) = stun.split_username()?;
    local.get(..2)?.parse().ok()
}

pub struct Plane {
    shard: usize,
    sockets: Sockets,
    links: Arc<Vec<ShardLink>>,
    handoff: Receiver<(SocketAddr, Vec<u8>)>,
    announce: SocketAddr,
    config: MediaConfig,
    commands: Receiver<Command>,
    events: EventSink,
    clients: HashMap<ParticipantId, Client>,
    by_addr: HashMap<SocketAddr, ParticipantId>,
    /// Forwarding table: published track → its subscribers.
    forwarding: HashMap<(ParticipantId, Source), HashSet<ParticipantId>>,
    /// Each room's speaker order, for last-N.
    rooms: HashMap<RoomId, SpeakerOrder>,
    queue: Vec<Propagate>,
    /// Clients written to since their last flush.
    dirty: Vec<ParticipantId>,
    /// The earliest `next_timeout` of any client (a lower bound).
    earliest: Instant,
    /// Datagrams produced since the last send; they leave together at the end of a batch.
    outbox: SendBatch,
    udp: UdpCounters,
}

/// Send-side counters of one shard.
#[derive(Debug, Default, Clone, Copy)]
struct UdpCounters {
    sent: u64,
    dropped: u64,
    calls: u64,
    bytes: u64,
    rtp_in: u64,
    rtp_out: u64,
}

impl Plane {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shard: usize,
        sockets: Sockets,
        links: Arc<Vec<ShardLink>>,
        handoff: Receiver<(SocketAddr, Vec<u8>)>,
        announce: SocketAddr,
        config: MediaConfig,
        commands: Receiver<Command>,
        events: EventSink,
    ) -> Plane {
        let gso = sockets.gso_supported();
        tracing::debug!(shard, gso, "media shard");
        Plane {
            shard,
            sockets,
            links,
            handoff,
            announce,
            config,
            commands,
            events,
            clients: HashMap::new(),
            by_addr: HashMap::new(),
            forwarding: HashMap::new(),
            rooms: HashMap::new(),
            queue: Vec::new(),
            dirty: Vec::new(),
            earliest: Instant::now(),
            outbox: SendBatch::new(gso),
            udp: UdpCounters::default(),
        }
    }

    pub fn run(mut self) {
        let mut batch = RecvBatch::new();
        let mut ready = Vec::new();
        let mut last_liveness = Instant::now();
        loop {
            loop {
                match self.commands.try_recv() {
                    Ok(Command::Stop) => return,
                    Ok(Command::Room(c)) => self.on_command(c),
                    Ok(Command::Snapshot(tx)) => {
                        let _ = tx.send(self.snapshot());
                    }
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => return,
                }
            }
            while let Ok((source, data)) = self.handoff.try_recv() {
                self.on_datagram(&data, source);
            }
            self.flush(Instant::now());

            let now = Instant::now();
            if now >= self.earliest {
                self.drive_timeouts(now);
            }
            if now.saturating_duration_since(last_liveness) >= LIVENESS_EVERY {
                self.check_liveness(now);
                last_liveness = now;
            }

            self.transmit();
            let wait = self
                .earliest
                .saturating_duration_since(Instant::now())
                .min(MAX_SLEEP);
            self.sockets.wait(wait, &mut ready);
            // Drain every readable socket (epoll is edge-triggered), forwarding each batch
            // of about BATCH datagrams: each subscriber's clock is advanced and its output
            // drained once per batch, not once per packet, and everything the batch produced
            // leaves in one sendmmsg.
            let mut taken = 0;
            for &r in &ready {
                let mut errors = 0;
                loop {
                    match self.sockets.recv(r, &mut batch) {
                        Ok(n) => {
                            for i in 0..n {
                                if let Some((data, source)) = batch.get(i) {
                                    self.on_datagram(data, source);
                                }
                            }
                            taken += n;
                            if taken >= BATCH {
                                self.flush(Instant::now());
                                taken = 0;
                            }
                            if n < RecvBatch::CAPACITY {
                                break; // drained; a later datagram raises a new edge
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) => {
                            // ICMP errors (e.g. port unreachable) surface here; harmless.
                            tracing::debug!("udp recv: {e}");
                            errors += 1;
                            if errors > 8 {
                                break;
                            }
                        }
                    }
                }
            }
            self.flush(Instant::now());
        }
    }

    fn on_datagram(&mut self, data: &[u8], source: SocketAddr) {
        let now = Instant::now();
        let Ok(contents) = data.try_into() else {
            return; // Not STUN/DTLS/RTP: ignore.
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.announce,
                contents,
            },
        );
        let id = match self.by_addr.get(&source) {
            Some(id) => *id,
            None => {
                // First datagram from this address: only STUN with one of our ufrags is
                // accepted. If it names another shard, that shard gets it.
                let Some(owner) = stun_owner(data) else {
                    tracing::debug!(
                        shard = self.shard,
                        "datagram from an unknown address that is not our STUN"
                    );
                    return;
                };
                if let Some(filter) = &self.config.accept_source
                    && !(filter.0)(source)
                {
                    tracing::debug!("first contact refused: relay-only, not our relay");
                    return;
                }
                tracing::debug!(shard = self.shard, owner, "first contact");
                if owner != self.shard {
                    if let Some(link) = self.links.get(owner)
                        && link.handoff.try_send((source, data.to_vec())).is_ok()
                    {
                        let _ = link.waker.wake();
                    }
                    return;
                }
                let Some(c) = self.clients.values().find(|c| c.rtc.accepts(&input)) else {
                    return;
                };
                let id = c.id;
                self.by_addr.insert(source, id);
                // From now on this address's datagrams come straight to this shard.
                if let Err(e) = self.sockets.connect(source) {
                    tracing::warn!(%source, "cannot open a connected socket: {e}");
                }
                id
            }
        };
        let Some(client) = self.clients.get_mut(&id) else {
            self.by_addr.remove(&source);
            return;
        };
        client.addrs.insert(source);
        client.last_heard = now;
        if let Err(e) = client.rtc.handle_input(input) {
            tracing::debug!(participant = %id, "rtc input: {e}");
        }
        self.poll(id);
    }

    /// Forward everything queued, then advance and drain every client that got packets, then
    /// send what they produced.
    fn flush(&mut self, now: Instant) {
        loop {
            self.propagate();
            if self.dirty.is_empty() {
                self.transmit();
                return;
            }
            for id in std::mem::take(&mut self.dirty) {
                if let Some(c) = self.clients.get_mut(&id) {
                    c.dirty = false;
                    // str0m's send queue releases what it saw at its last timeout: advance
                    // its clock now, or the packets wait for its next timeout (measured:
                    // ~8 ms median, ~12 ms p99 added latency).
                    let _ = c.rtc.handle_input(Input::Timeout(now));
                }
                self.poll(id);
            }
        }
    }

    fn drive_timeouts(&mut self, now: Instant) {
        let due: Vec<ParticipantId> = self
            .clients
            .values()
            .filter(|c| c.next_timeout <= now)
            .map(|c| c.id)
            .collect();
        for id in due {
            if let Some(c) = self.clients.get_mut(&id) {
                let _ = c.rtc.handle_input(Input::Timeout(now));
            }
            self.poll(id);
        }
        self.flush(now);
        self.earliest = self
            .clients
            .values()
            .map(|c| c.next_timeout)
            .min()
            .unwrap_or(now + MAX_SLEEP);
    }

    /// Remove participants that went silent or whose session died.
    fn check_liveness(&mut self, now: Instant) {
        let gone: Vec<ParticipantId> = self
            .clients
            .values()
            .filter(|c| {
                !c.rtc.is_alive()
                    || now.saturating_duration_since(c.last_heard) > self.config.participant_timeout
            })
            .map(|c| c.id)
            .collect();
        for id in gone {
            tracing::info!(participant = %id, "media timeout");
            self.remove(id);
            (self.events)(MediaEvent::Gone { participant: id });
        }
    }

    /// Drain one client's output: transmit datagrams, collect what concerns others.
    fn poll(&mut self, id: ParticipantId) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        loop {
            let out = match client.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    tracing::info!(participant = %id, "rtc failed: {e}");
                    client.rtc.disconnect();
                    client.next_timeout = Instant::now();
                    return;
                }
            };
            match out {
                Output::Timeout(t) => {
                    client.next_timeout = t;
                    self.earliest = self.earliest.min(t);
                    return;
                }
                Output::Transmit(t) => self.outbox.push(t.destination, t.contents.into()),
                Output::Event(e) => match e {
                    Event::Connected => client.stats.connected = true,
                    Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        client.stats.connected = false;
                    }
                    Event::PeerStats(ps) => {
                        let permille = |f: f32| (f.clamp(0.0, 1.0) * 1000.0).round() as u32;
                        client.stats.rtt = ps.rtt;
                        client.stats.ingress_loss_permille = ps.ingress_loss_fraction.map(permille);
                        client.stats.egress_loss_permille = ps.egress_loss_fraction.map(permille);
                    }
                    Event::RtpPacket(pkt) => {
                        client.stats.rtp_in += 1;
                        self.udp.rtp_in += 1;
                        let mid = client
                            .rtc
                            .direct_api()
                            .stream_rx(&pkt.header.ssrc)
                            .map(|s| s.mid());
                        let Some(source) = mid.and_then(|m| client.source_of_slot(m)) else {
                            continue;
                        };
                        // Packet-level enforcement: only what the room core allowed.
                        if client.allowed.contains(&source) {
                            if source.is_audio()
                                && self.config.last_n > 0
                                && let Some(level) = pkt.header.ext_vals.audio_level
                                && client.speech.on_level(level)
                            {
                                self.queue.push(Propagate::SpeechStarted(id));
                            }
                            self.queue.push(Propagate::Rtp(id, source, pkt));
                        }
                    }
                    Event::KeyframeRequest(req) => {
                        if let Some(sub) = client.sub_by_mid(req.mid) {
                            self.queue.push(Propagate::Keyframe(
                                sub.publisher,
                                sub.source,
                                req.kind,
                            ));
                        }
                    }
                    _ => {}
                },
            }
        }
    }

    /// Send the queued datagrams.
    fn transmit(&mut self) {
        if self.outbox.len() == 0 {
            return;
        }
        let bytes = self.outbox.bytes();
        let o = self.sockets.send(&mut self.outbox);
        // Bytes of the batch; a dropped datagram's bytes are counted too (rare, and counted
        // in `dropped`).
        self.udp.bytes += bytes as u64;
        self.udp.sent += o.sent as u64;
        self.udp.dropped += o.dropped as u64;
        self.udp.calls += o.calls as u64;
    }

    /// Deliver queued packets and keyframe requests to the clients they concern.
    fn propagate(&mut self) {
        while !self.queue.is_empty() {
            let batch = std::mem::take(&mut self.queue);
            for p in batch {
                match p {
                    Propagate::Rtp(publisher, source, pkt) => self.forward(publisher, source, &pkt),
                    Propagate::Keyframe(publisher, source, kind) => {
                        self.request_keyframe(publisher, source, kind)
                    }
                    Propagate::SpeechStarted(publisher) => self.on_speech(publisher),
                }
            }
        }
    }

    fn forward(&mut self, publisher: ParticipantId, source: Source, pkt: &RtpPacket) {
        let Some(subscribers) = self.forwarding.get(&(publisher, source)) else {
            return;
        };
        let subscribers: Vec<ParticipantId> = subscribers.iter().copied().collect();
        let video = !source.is_audio();
        for sub_id in subscribers {
            let Some(sub) = self.clients.get_mut(&sub_id) else {
                continue;
            };
            let Some(mid) = sub.open_mid(publisher, source) else {
                continue;
            };
            let pt = pkt.header.payload_type;
            // Only video the subscriber gets now (receive_video, last-N), and only codecs it
            // accepted on this m-line (H.264 may not be).
            let deliver = sub.wants(publisher, source)
                && sub
                    .rtc
                    .media(mid)
                    .is_some_and(|m| m.remote_pts().contains(&pt));
            let Some(line) = sub.open_sub_mut(publisher, source) else {
                continue;
            };
            if !deliver {
                line.seq.skip();
                continue;
            }
            let seq_no = line.seq.map(*pkt.seq_no).into();
            let mut api = sub.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(mid, None) else {
                continue;
            };
            let write = RtpWrite::new(
                pt,
                seq_no,
                pkt.header.timestamp,
                pkt.timestamp,
                pkt.payload.clone(),
            )
            .marker(pkt.header.marker)
            .nackable(video);
            tx.write_rtp(write);
            sub.stats.rtp_out += 1;
            self.udp.rtp_out += 1;
            if !sub.dirty {
                sub.dirty = true;
                self.dirty.push(sub_id);
            }
        }
    }

    fn request_keyframe(
        &mut self,
        publisher: ParticipantId,
        source: Source,
        kind: KeyframeRequestKind,
    ) {
        if source.is_audio() {
            return;
        }
        let Some(p) = self.clients.get_mut(&publisher) else {
            return;
        };
        let Some(mid) = p.slots.get(&source).copied() else {
            return;
        };
        if let Some(rx) = p.rtc.direct_api().stream_rx_by_mid(mid, None) {
            rx.request_keyframe(kind);
        }
        self.poll(publisher);
    }

    fn snapshot(&self) -> MediaSnapshot {
        let mut participants: Vec<_> = self.clients.values().map(|c| c.stats.clone()).collect();
        participants.sort_by_key(|p| p.id);
        MediaSnapshot {
            participants,
            mapped_addresses: self.by_addr.len(),
            forwarding_entries: self.forwarding.len(),
            connected_sockets: self.sockets.connected(),
            shard_participants: vec![self.clients.len()],
            datagrams_sent: self.udp.sent,
            datagrams_dropped: self.udp.dropped,
            send_calls: self.udp.calls,
            bytes_sent: self.udp.bytes,
            rtp_received: self.udp.rtp_in,
            rtp_forwarded: self.udp.rtp_out,
        }
    }
}
