//! The participant's media thread: a str0m client `Rtc` in RTP mode on its own UDP socket.
//!
//! It answers offers (Conclave: the server offers) or makes one (Janus: publishers offer),
//! sends synthetic audio and video with a probe header, and measures what it receives.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use conclave_proto::{ClientMessage, ParticipantId, ServerMessage, Source, TrackInfo};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::sync::mpsc::UnboundedSender;

use crate::probe::{Probe, ReceiverStats, now_nanos};

/// Packets received, by publisher and source (attributed through the signalled mid map).
pub type ReceiveCounters = BTreeMap<(ParticipantId, Source), u64>;

/// What a participant sends while a source is on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Video bitrate in kbit/s (payload bytes).
    pub video_kbps: u32,
    /// Video frames per second.
    pub fps: u32,
    /// Largest video packet payload in bytes; frames are split into packets of at most this.
    pub packet_size: usize,
    /// Audio packets per second.
    pub audio_pps: u32,
    /// Audio payload bytes.
    pub audio_size: usize,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            video_kbps: 500,
            fps: 30,
            packet_size: 1200,
            audio_pps: 50,
            audio_size: 100,
        }
    }
}

impl Profile {
    /// Video payload sizes of one frame.
    pub fn frame_packets(&self) -> Vec<usize> {
        let fps = self.fps.max(1);
        let bytes = (self.video_kbps as usize * 1000 / 8 / fps as usize).max(1);
        let size = self.packet_size.max(crate::probe::HEADER_LEN);
        let n = bytes.div_ceil(size);
        let each = bytes.div_ceil(n).max(crate::probe::HEADER_LEN);
        vec![each; n]
    }
}

/// Commands to the media thread.
pub enum Command {
    /// A Conclave offer; the answer goes out on the WebSocket.
    ConclaveOffer(Box<ServerMessage>),
    /// Answer a raw SDP offer (Janus subscriber); the reply is the answer SDP.
    AcceptOffer(String, mpsc::Sender<Result<String>>),
    /// Make an offer with one send-only audio and one send-only video line (Janus publisher).
    CreatePublishOffer(mpsc::Sender<Result<String>>),
    /// Apply the answer to our offer.
    AcceptAnswer(String, mpsc::Sender<Result<()>>),
    Publish(Source, bool),
    /// Put this RFC 6464 audio level (dBov, 0 loudest, -127 silence) on every audio packet
    /// from now on, or none.
    AudioLevel(Option<i8>),
    ResetStats,
    Silence,
    Deafen,
    Stop,
}

struct Shared {
    counters: Mutex<ReceiveCounters>,
    stats: Mutex<ReceiverStats>,
    sent: AtomicU64,
    datagrams: AtomicU64,
    keyframe_requests: AtomicU64,
    connected: AtomicBool,
}

/// Handle to the media thread.
pub struct MediaHandle {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl MediaHandle {
    /// Bind a UDP socket on loopback and start the thread. `ws_out` receives the answers to
    /// Conclave offers; `tag` goes into every probe header.
    pub fn start(
        ws_out: Option<UnboundedSender<ClientMessage>>,
        profile: Profile,
        tag: u32,
    ) -> Result<MediaHandle> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let local_addr = socket.local_addr()?;
        let shared = Arc::new(Shared {
            counters: Mutex::new(BTreeMap::new()),
            stats: Mutex::new(ReceiverStats::default()),
            sent: AtomicU64::new(0),
            datagrams: AtomicU64::new(0),
            keyframe_requests: AtomicU64::new(0),
            connected: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("participant-media".into())
            .spawn(move || Session::new(socket, s, ws_out, profile, tag).run(rx))?;
        Ok(MediaHandle {
            tx,
            shared,
            local_addr,
            thread: Some(thread),
        })
    }

    /// A sender for commands.
    pub fn commands(&self) -> mpsc::Sender<Command> {
        self.tx.clone()
    }
    /// Turn a source on or off.
    pub fn publish(&self, source: Source, on: bool) {
        let _ = self.tx.send(Command::Publish(source, on));
    }
    /// Send this audio level on every audio packet from now on (`None`: no level).
    pub fn set_audio_level(&self, level: Option<i8>) {
        let _ = self.tx.send(Command::AudioLevel(level));
    }
    /// Key frame requests (PLI/FIR) received for what we publish.
    pub fn keyframe_requests(&self) -> u64 {
        self.shared.keyframe_requests.load(Ordering::Relaxed)
    }
    /// Stop sending anything (media, RTCP, STUN) but keep counting datagrams.
    pub fn silence(&self) {
        let _ = self.tx.send(Command::Silence);
    }
    /// Stop reading the socket.
    pub fn deafen(&self) {
        let _ = self.tx.send(Command::Deafen);
    }
    /// Start a fresh measurement window.
    pub fn reset_stats(&self) {
        let _ = self.tx.send(Command::ResetStats);
    }
    /// Run a request that replies on a channel, waiting at most 10 s.
    pub fn request<T>(&self, make: impl FnOnce(mpsc::Sender<Result<T>>) -> Command) -> Result<T> {
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(make(tx))
            .map_err(|_| anyhow!("media thread gone"))?;
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|_| anyhow!("media thread did not answer within 10 s"))?
    }
    /// Packets received per publisher and source (mid-attributed).
    pub fn received(&self) -> ReceiveCounters {
        self.shared.counters.lock().expect("counter lock").clone()
    }
    /// Probe measurements since the last reset.
    pub fn stats(&self) -> ReceiverStats {
        self.shared.stats.lock().expect("stats lock").clone()
    }
    /// RTP packets sent.
    pub fn sent(&self) -> u64 {
        self.shared.sent.load(Ordering::Relaxed)
    }
    /// Datagrams that reached the socket.
    pub fn datagrams(&self) -> u64 {
        self.shared.datagrams.load(Ordering::Relaxed)
    }
    /// Whether ICE+DTLS are up.
    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }
    /// The UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MediaHandle {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One synthetic outgoing stream. Sequence numbers and timestamps continue across pauses,
/// as a browser's do for one sender.
struct Outgoing {
    rtp_seq: u64,
    probe_seq: u32,
    time: u32,
    next: Instant,
    on: bool,
}

struct Session {
    socket: UdpSocket,
    local: SocketAddr,
    rtc: Rtc,
    shared: Arc<Shared>,
    ws_out: Option<UnboundedSender<ClientMessage>>,
    profile: Profile,
    tag: u32,
    pending: Option<SdpPendingOffer>,
    slots: BTreeMap<Source, Mid>,
    tracks: BTreeMap<Mid, TrackInfo>,
    sending: BTreeMap<Source, Outgoing>,
    audio_level: Option<i8>,
    silent: bool,
    deaf: bool,
}

impl Session {
    fn new(
        socket: UdpSocket,
        shared: Arc<Shared>,
        ws_out: Option<UnboundedSender<ClientMessage>>,
        profile: Profile,
        tag: u32,
    ) -> Self {
        let local = socket.local_addr().expect("bound socket has an address");
        let mut rtc = RtcConfig::new()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(Instant::now());
        // Invariant: a concrete loopback address is a valid host candidate.
        rtc.add_local_candidate(Candidate::host(local, "udp").expect("host candidate"));
        Session {
            socket,
            local,
            rtc,
            shared,
            ws_out,
            profile,
            tag,
            pending: None,
            slots: BTreeMap::new(),
            tracks: BTreeMap::new(),
            sending: BTreeMap::new(),
            audio_level: None,
            silent: false,
            deaf: false,
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; 2048];
        let mut next_timeout = Instant::now();
        loop {
            loop {
                match rx.try_recv() {
                    Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => return,
                    Ok(c) => self.on_command(c),
                    Err(mpsc::TryRecvError::Empty) => break,
                }
            }
            let now = Instant::now();
            if !self.silent {
                self.send_due(now);
                if next_timeout <= now {
                    let _ = self.rtc.handle_input(Input::Timeout(now));
                }
                next_timeout = self.poll();
            }
            let wake = self
                .sending
                .values()
                .filter(|o| o.on)
                .map(|o| o.next)
                .chain(std::iter::once(next_timeout))
                .min()
                .unwrap_or(now);
            let wait = wake
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_micros(500), Duration::from_millis(10));
            let _ = self.socket.set_read_timeout(Some(wait));
            if self.deaf {
                std::thread::sleep(wait);
                continue;
            }
            // Drain everything that is waiting before sending again.
            let mut first = true;
            loop {
                if !first {
                    let _ = self.socket.set_nonblocking(true);
                }
                let r = self.socket.recv_from(&mut buf);
                if !first {
                    let _ = self.socket.set_nonblocking(false);
                }
                first = false;
                let Ok((n, source)) = r else { break };
                self.shared.datagrams.fetch_add(1, Ordering::Relaxed);
                if self.silent {
                    continue;
                }
                let Ok(contents) = buf[..n].try_into() else {
                    continue;
                };
                let input = Input::Receive(
                    Instant::now(),
                    Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: self.local,
                        contents,
                    },
                );
                let _ = self.rtc.handle_input(input);
                next_timeout = self.poll();
            }
        }
    }

    fn on_command(&mut self, c: Command) {
        match c {
            Command::ConclaveOffer(m) => self.on_conclave_offer(*m),
            Command::AcceptOffer(sdp, reply) => {
                let r = SdpOffer::from_sdp_string(&sdp)
                    .map_err(|e| anyhow!("bad offer: {e}"))
                    .and_then(|o| {
                        self.rtc
                            .sdp_api()
                            .accept_offer(o)
                            .map_err(|e| anyhow!("cannot accept offer: {e}"))
                    })
                    .map(|a| a.to_sdp_string());
                let _ = reply.send(r);
            }
            Command::CreatePublishOffer(reply) => {
                let mut change = self.rtc.sdp_api();
                let a = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
                let v = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
                let r = match change.apply() {
                    Some((offer, pending)) => {
                        self.pending = Some(pending);
                        self.slots.insert(Source::Microphone, a);
                        self.slots.insert(Source::Camera, v);
                        Ok(offer.to_sdp_string())
                    }
                    None => Err(anyhow!("no changes to offer")),
                };
                let _ = reply.send(r);
            }
            Command::AcceptAnswer(sdp, reply) => {
                let r = match self.pending.take() {
                    None => Err(anyhow!("no offer pending")),
                    Some(p) => SdpAnswer::from_sdp_string(&sdp)
                        .map_err(|e| anyhow!("bad answer: {e}"))
                        .and_then(|a| {
                            self.rtc
                                .sdp_api()
                                .accept_answer(p, a)
                                .map_err(|e| anyhow!("cannot accept answer: {e}"))
                        }),
                };
                let _ = reply.send(r);
            }
            Command::Publish(s, on) => {
                let o = self.sending.entry(s).or_insert(Outgoing {
                    rtp_seq: 1000,
                    probe_seq: 0,
                    time: 0,
                    next: Instant::now(),
                    on: false,
                });
                o.on = on;
                o.next = Instant::now();
            }
            Command::AudioLevel(level) => self.audio_level = level,
            Command::ResetStats => {
                *self.shared.stats.lock().expect("stats lock") = ReceiverStats::default();
            }
            Command::Silence => self.silent = true,
            Command::Deafen => self.deaf = true,
            Command::Stop => {}
        }
    }

    fn on_conclave_offer(&mut self, m: ServerMessage) {
        let ServerMessage::Offer { sdp, slots, tracks } = m else {
            return;
        };
        let Ok(offer) = SdpOffer::from_sdp_string(&sdp) else {
            return;
        };
        let answer = match self.rtc.sdp_api().accept_offer(offer) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("cannot accept offer: {e}");
                return;
            }
        };
        self.slots = slots
            .into_iter()
            .map(|(s, m)| (s, Mid::from(m.as_str())))
            .collect();
        self.tracks = tracks
            .into_iter()
            .map(|(m, t)| (Mid::from(m.as_str()), t))
            .collect();
        if let Some(ws) = &self.ws_out {
            let _ = ws.send(ClientMessage::Answer {
                sdp: answer.to_sdp_string(),
            });
        }
    }

    fn payload_type(&self, mid: Mid, codec: Codec) -> Option<str0m::format::PayloadParams> {
        let media = self.rtc.media(mid)?;
        media.remote_pts().iter().find_map(|pt| {
            self.rtc
                .codec_config()
                .find(|p| p.pt() == *pt && p.spec().codec == codec)
                .copied()
        })
    }

    fn send_due(&mut self, now: Instant) {
        let due: Vec<Source> = self
            .sending
            .iter()
            .filter(|(_, o)| o.on && o.next <= now)
            .map(|(s, _)| *s)
            .collect();
        for source in due {
            let Some(mid) = self.slots.get(&source).copied() else {
                continue;
            };
            let codec = if source.is_audio() {
                Codec::Opus
            } else {
                Codec::Vp8
            };
            let Some(pt) = self.payload_type(mid, codec).map(|p| p.pt()) else {
                continue;
            };
            let (sizes, step, interval) = if source.is_audio() {
                let pps = self.profile.audio_pps.max(1);
                (
                    vec![self.profile.audio_size],
                    48_000 / pps,
                    Duration::from_secs(1) / pps,
                )
            } else {
                let fps = self.profile.fps.max(1);
                (
                    self.profile.frame_packets(),
                    90_000 / fps,
                    Duration::from_secs(1) / fps,
                )
            };
            let tag = self.tag;
            let o = self.sending.get_mut(&source).expect("listed above");
            let time = o.time;
            let mut packets = Vec::with_capacity(sizes.len());
            for (i, size) in sizes.iter().enumerate() {
                let probe = Probe {
                    tag,
                    source,
                    seq: o.probe_seq,
                    sent_nanos: now_nanos(Instant::now()),
                };
                packets.push((
                    SeqNo::from(o.rtp_seq),
                    i + 1 == sizes.len(),
                    probe.payload(*size),
                ));
                o.rtp_seq += 1;
                o.probe_seq = o.probe_seq.wrapping_add(1);
            }
            o.time = o.time.wrapping_add(step);
            o.next += interval;
            if o.next < now {
                o.next = now + interval;
            }
            let n = packets.len() as u64;
            let mut api = self.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(mid, None) else {
                continue;
            };
            let mut ext = ExtensionValues::default();
            if let Some(level) = self.audio_level.filter(|_| source.is_audio()) {
                // str0m writes the extension only with both parts; the V bit as a simple VAD.
                ext.audio_level = Some(level);
                ext.voice_activity = Some(level > -127);
            }
            for (seq, marker, payload) in packets {
                tx.write_rtp(
                    RtpWrite::new(pt, seq, time, now, payload)
                        .marker(marker)
                        .nackable(!source.is_audio())
                        .ext_vals(ext.clone()),
                );
            }
            // str0m's send queue releases what it saw at its last timeout: advance its clock
            // now, or the packets wait for the next timeout.
            let _ = self.rtc.handle_input(Input::Timeout(now));
            self.shared.sent.fetch_add(n, Ordering::Relaxed);
            // Flush after each stream so a frame's packets leave together.
            self.poll();
        }
    }

    /// Drain output; returns the next timeout.
    fn poll(&mut self) -> Instant {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return t,
                Ok(Output::Transmit(t)) => {
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(Event::KeyframeRequest(_))) => {
                    self.shared
                        .keyframe_requests
                        .fetch_add(1, Ordering::Relaxed);
                }
                Ok(Output::Event(Event::Connected)) => {
                    self.shared.connected.store(true, Ordering::Relaxed);
                }
                Ok(Output::Event(Event::RtpPacket(pkt))) => {
                    let arrival = now_nanos(Instant::now());
                    if let Some(probe) = Probe::parse(&pkt.payload) {
                        self.shared
                            .stats
                            .lock()
                            .expect("stats lock")
                            .record(probe, arrival);
                    }
                    let mid = self
                        .rtc
                        .direct_api()
                        .stream_rx(&pkt.header.ssrc)
                        .map(|s| s.mid());
                    if let Some(t) = mid.and_then(|m| self.tracks.get(&m)) {
                        *self
                            .shared
                            .counters
                            .lock()
                            .expect("counter lock")
                            .entry((t.participant, t.source))
                            .or_default() += 1;
                    }
                }
                Ok(Output::Event(_)) => {}
                Err(e) => {
                    tracing::warn!("participant rtc failed: {e}");
                    return Instant::now() + Duration::from_millis(10);
                }
            }
        }
    }
}
