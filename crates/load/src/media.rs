//! The participant's media thread: a str0m client `Rtc` in RTP mode on its own UDP socket.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Result;
use conclave_proto::{ClientMessage, ParticipantId, ServerMessage, Source, TrackInfo};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::Mid;
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::sync::mpsc::UnboundedSender;

/// Packets received, by publisher and source.
pub type ReceiveCounters = BTreeMap<(ParticipantId, Source), u64>;

/// Commands to the media thread.
pub enum Command {
    Offer(ServerMessage),
    Publish(Source, bool),
    Silence,
    Deafen,
    Stop,
}

struct Shared {
    counters: Mutex<ReceiveCounters>,
    datagrams: AtomicU64,
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
    /// Bind a UDP socket on loopback and start the thread.
    pub fn start(ws_out: UnboundedSender<ClientMessage>) -> Result<MediaHandle> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let local_addr = socket.local_addr()?;
        let shared = Arc::new(Shared {
            counters: Mutex::new(BTreeMap::new()),
            datagrams: AtomicU64::new(0),
            connected: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel();
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("participant-media".into())
            .spawn(move || Session::new(socket, s, ws_out).run(rx))?;
        Ok(MediaHandle {
            tx,
            shared,
            local_addr,
            thread: Some(thread),
        })
    }

    pub fn commands(&self) -> mpsc::Sender<Command> {
        self.tx.clone()
    }
    pub fn publish(&self, source: Source, on: bool) {
        let _ = self.tx.send(Command::Publish(source, on));
    }
    pub fn silence(&self) {
        let _ = self.tx.send(Command::Silence);
    }
    pub fn deafen(&self) {
        let _ = self.tx.send(Command::Deafen);
    }
    pub fn received(&self) -> ReceiveCounters {
        self.shared.counters.lock().expect("counter lock").clone()
    }
    pub fn datagrams(&self) -> u64 {
        self.shared.datagrams.load(Ordering::Relaxed)
    }
    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }
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

/// One synthetic outgoing stream.
struct Outgoing {
    seq: u64,
    time: u32,
    next: Instant,
    on: bool,
}

struct Session {
    socket: UdpSocket,
    local: SocketAddr,
    rtc: Rtc,
    shared: Arc<Shared>,
    ws_out: UnboundedSender<ClientMessage>,
    slots: BTreeMap<Source, Mid>,
    tracks: BTreeMap<Mid, TrackInfo>,
    sending: BTreeMap<Source, Outgoing>,
    silent: bool,
    deaf: bool,
    frame: u64,
}

const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
const VIDEO_INTERVAL: Duration = Duration::from_micros(33_333);

impl Session {
    fn new(socket: UdpSocket, shared: Arc<Shared>, ws_out: UnboundedSender<ClientMessage>) -> Self {
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
            slots: BTreeMap::new(),
            tracks: BTreeMap::new(),
            sending: BTreeMap::new(),
            silent: false,
            deaf: false,
            frame: 0,
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Command>) {
        let mut buf = vec![0u8; 2048];
        let mut next_timeout = Instant::now();
        loop {
            loop {
                match rx.try_recv() {
                    Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => return,
                    Ok(Command::Offer(m)) => self.on_offer(m),
                    Ok(Command::Publish(s, on)) => {
                        // Sequence numbers and timestamps continue across pauses, as
                        // a browser's do for one sender.
                        let o = self.sending.entry(s).or_insert(Outgoing {
                            seq: 1000,
                            time: 0,
                            next: Instant::now(),
                            on: false,
                        });
                        o.on = on;
                        o.next = Instant::now();
                    }
                    Ok(Command::Silence) => self.silent = true,
                    Ok(Command::Deafen) => self.deaf = true,
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
                .map(|o| o.next)
                .chain(std::iter::once(next_timeout))
                .min()
                .unwrap_or(now);
            let wait = wake
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), Duration::from_millis(10));
            let _ = self.socket.set_read_timeout(Some(wait));
            if self.deaf {
                std::thread::sleep(wait);
                continue;
            }
            if let Ok((n, source)) = self.socket.recv_from(&mut buf) {
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

    fn on_offer(&mut self, m: ServerMessage) {
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
        let _ = self.ws_out.send(ClientMessage::Answer {
            sdp: answer.to_sdp_string(),
        });
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
            let Some(pt) = self.rtc.media(mid).and_then(|m| {
                m.remote_pts().iter().copied().find(|pt| {
                    self.rtc
                        .codec_config()
                        .find(|p| p.pt() == *pt && p.spec().codec == codec)
                        .is_some()
                })
            }) else {
                continue;
            };
            self.frame += 1;
            let stamp = u64::try_from(now.elapsed().as_nanos()).unwrap_or(0) ^ self.frame;
            let o = self.sending.get_mut(&source).expect("listed above");
            let (payload, step, interval) = if source.is_audio() {
                (vec![0xfc; 80], 960, AUDIO_INTERVAL)
            } else {
                // A VP8 payload descriptor (start of partition) and a key-frame-shaped header.
                let mut p = vec![0u8; 1000];
                p[0] = 0x10;
                p[1..9].copy_from_slice(&stamp.to_be_bytes());
                (p, 3000, VIDEO_INTERVAL)
            };
            let seq = SeqNo::from(o.seq);
            let time = o.time;
            o.seq += 1;
            o.time = o.time.wrapping_add(step);
            o.next += interval;
            if o.next < now {
                o.next = now + interval;
            }
            let mut api = self.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(mid, None) else {
                continue;
            };
            tx.write_rtp(
                RtpWrite::new(pt, seq, time, now, payload)
                    .marker(true)
                    .nackable(!source.is_audio()),
            );
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
                Ok(Output::Event(Event::Connected)) => {
                    self.shared.connected.store(true, Ordering::Relaxed);
                }
                Ok(Output::Event(Event::RtpPacket(pkt))) => {
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
