//! One participant's peer connection and its negotiation state.
//!
//! Negotiation rule: the server is the only offerer, and at most one offer is outstanding per
//! participant. Changes that arrive while an offer is out wait in `subs` (state `ToOpen` /
//! `ToStop`) and go into the next offer once the answer is in. Glare cannot happen.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Instant;

use conclave_proto::{ErrorCode, ParticipantId, ProtocolError, RoomId, Source, TrackInfo};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid};
use str0m::{Candidate, Rtc, RtcConfig};

use crate::ParticipantStats;
use crate::speakers::SpeechDetector;

/// State of one downstream m-line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubState {
    /// Wanted; goes into the next offer.
    ToOpen,
    /// In the outstanding offer.
    Negotiating(Mid),
    /// Answered; packets flow.
    Open(Mid),
    /// To be stopped in the next offer.
    ToStop(Mid),
    /// Its stop is in the outstanding offer.
    NegotiatingStop(Mid),
}

/// A downstream subscription: `publisher`'s `source` sent to this client.
#[derive(Debug, Clone)]
pub struct Sub {
    pub publisher: ParticipantId,
    pub source: Source,
    pub state: SubState,
    /// Unsubscribed while negotiating: stop it as soon as the answer is in.
    pub cancelled: bool,
    /// Outgoing sequence numbers of this line.
    pub seq: SeqRewrite,
}

/// Sequence numbers of one downstream line. The plane skips packets on purpose (last-N,
/// `receive_video` off); the receiver must not take that for loss and NACK it, so after a
/// skip the numbering continues where it stopped. Without skips the publisher's numbers pass
/// unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct SeqRewrite {
    /// Subtracted (wrapping) from the publisher's extended sequence number.
    offset: u64,
    /// The last number sent.
    last: Option<u64>,
    skipped: bool,
}

impl SeqRewrite {
    /// A packet of the publisher is not sent on this line.
    pub fn skip(&mut self) {
        self.skipped = true;
    }

    /// The number to send the publisher's packet `seq` with.
    pub fn map(&mut self, seq: u64) -> u64 {
        if self.skipped {
            self.skipped = false;
            if let Some(last) = self.last {
                self.offset = seq.wrapping_sub(last.wrapping_add(1));
            }
        }
        let out = seq.wrapping_sub(self.offset);
        // Reordered older packets keep their (lower) number but do not move `last` back.
        if self.last.is_none_or(|l| out.wrapping_sub(l) as i64 > 0) {
            self.last = Some(out);
        }
        out
    }
}

/// An offer ready to send.
pub struct OfferOut {
    pub sdp: String,
    pub slots: BTreeMap<Source, String>,
    pub tracks: BTreeMap<String, TrackInfo>,
}

/// One participant in the media plane.
pub struct Client {
    pub id: ParticipantId,
    /// The room, for last-N.
    pub room: RoomId,
    pub rtc: Rtc,
    /// Upstream m-line per source (fixed after the first offer).
    pub slots: BTreeMap<Source, Mid>,
    /// Sources whose packets are forwarded (the room core's decision).
    pub allowed: BTreeSet<Source>,
    pub subs: Vec<Sub>,
    pending: Option<SdpPendingOffer>,
    /// Remote addresses this client has used (to unmap them on removal).
    pub addrs: BTreeSet<SocketAddr>,
    pub last_heard: Instant,
    pub next_timeout: Instant,
    pub stats: ParticipantStats,
    /// Offers made so far; the SDP session version (RFC 3264 §8 wants it to grow).
    offers: u64,
    /// Written to since the plane last advanced and drained it.
    pub dirty: bool,
    /// Whether video is forwarded to this client (`receive_video`).
    pub receive_video: bool,
    /// With last-N: the publishers whose camera video this client gets. `None`: everyone's.
    pub camera_from: Option<BTreeSet<ParticipantId>>,
    /// Whether this client, as a publisher, is speaking (from its audio levels).
    pub speech: SpeechDetector,
}

impl Client {
    /// A new peer connection: ICE-lite on the shared socket, RTP mode, Opus + VP8, and
    /// H.264 when `h264` (not under end-to-end encryption).
    /// Its ICE ufrag starts with the owning shard's number (two digits), so whichever shard
    /// a first STUN request lands on can hand it to the right one.
    pub fn new(
        id: ParticipantId,
        room: RoomId,
        shard: usize,
        announce: SocketAddr,
        h264: bool,
        now: Instant,
    ) -> Client {
        let mut rtc = RtcConfig::new()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(h264)
            // Peer stats (RTT, loss) for monitoring.
            .set_stats_interval(Some(std::time::Duration::from_secs(5)))
            .build(now);
        // Before the candidate: candidates carry the ufrag they were made with.
        let mut creds = rtc.direct_api().local_ice_credentials();
        creds.ufrag = format!("{:02}{}", shard % 100, creds.ufrag);
        rtc.direct_api().set_local_ice_credentials(creds);
        // Invariant: a host candidate with a concrete IP and port is always valid.
        let candidate = Candidate::host(announce, "udp").expect("host candidate");
        rtc.add_local_candidate(candidate);
        Client {
            id,
            room,
            rtc,
            slots: BTreeMap::new(),
            allowed: BTreeSet::new(),
            subs: Vec::new(),
            pending: None,
            addrs: BTreeSet::new(),
            last_heard: now,
            next_timeout: now,
            offers: 0,
            dirty: false,
            receive_video: true,
            camera_from: None,
            speech: SpeechDetector::default(),
            stats: ParticipantStats {
                id: Some(id),
                ..ParticipantStats::default()
            },
        }
    }

    /// The source whose upstream slot is `mid`.
    pub fn source_of_slot(&self, mid: Mid) -> Option<Source> {
        self.slots.iter().find(|(_, m)| **m == mid).map(|(s, _)| *s)
    }

    /// The open downstream mid for `publisher`'s `source`.
    pub fn open_mid(&self, publisher: ParticipantId, source: Source) -> Option<Mid> {
        self.subs.iter().find_map(|s| match s.state {
            SubState::Open(m) if s.publisher == publisher && s.source == source => Some(m),
            _ => None,
        })
    }

    /// The open downstream subscription to `publisher`'s `source`.
    pub fn open_sub_mut(&mut self, publisher: ParticipantId, source: Source) -> Option<&mut Sub> {
        self.subs.iter_mut().find(|s| {
            s.publisher == publisher && s.source == source && matches!(s.state, SubState::Open(_))
        })
    }

    /// Whether `publisher`'s `source` is video this client gets now (`receive_video`, last-N).
    /// Audio always passes.
    pub fn wants(&self, publisher: ParticipantId, source: Source) -> bool {
        match source {
            Source::Microphone => true,
            Source::Screen => self.receive_video,
            Source::Camera => {
                self.receive_video
                    && self
                        .camera_from
                        .as_ref()
                        .is_none_or(|set| set.contains(&publisher))
            }
        }
    }

    /// The subscription carried on downstream `mid`.
    pub fn sub_by_mid(&self, mid: Mid) -> Option<&Sub> {
        self.subs.iter().find(|s| match s.state {
            SubState::Negotiating(m) | SubState::Open(m) => m == mid,
            _ => false,
        })
    }

    /// Want `publisher`'s `source`.
    pub fn subscribe(&mut self, publisher: ParticipantId, source: Source) {
        // A line whose stop is already in the outstanding offer cannot be revived: it is
        // dropped when the answer comes, and a new line is negotiated next to it.
        if let Some(s) = self.subs.iter_mut().find(|s| {
            s.publisher == publisher
                && s.source == source
                && !matches!(s.state, SubState::NegotiatingStop(_))
        }) {
            // Re-subscribed while a stop or cancel was queued: keep the line.
            s.cancelled = false;
            if let SubState::ToStop(m) = s.state {
                s.state = SubState::Open(m);
            }
            return;
        }
        self.subs.push(Sub {
            publisher,
            source,
            state: SubState::ToOpen,
            cancelled: false,
            seq: SeqRewrite::default(),
        });
    }

    /// Stop wanting `publisher`'s `source`.
    pub fn unsubscribe(&mut self, publisher: ParticipantId, source: Source) {
        let Some(i) = self.subs.iter().position(|s| {
            s.publisher == publisher
                && s.source == source
                && !matches!(s.state, SubState::NegotiatingStop(_))
        }) else {
            return;
        };
        match self.subs[i].state {
            SubState::ToOpen => {
                self.subs.remove(i);
            }
            SubState::Negotiating(_) => self.subs[i].cancelled = true,
            SubState::Open(m) => self.subs[i].state = SubState::ToStop(m),
            SubState::ToStop(_) | SubState::NegotiatingStop(_) => {}
        }
    }

    /// If no offer is outstanding and something changed, make the next offer.
    pub fn next_offer(&mut self) -> Option<OfferOut> {
        if self.pending.is_some() {
            return None;
        }
        let first = self.slots.is_empty();
        let mut change = self.rtc.sdp_api();
        if first {
            for source in Source::ALL {
                let kind = if source.is_audio() {
                    MediaKind::Audio
                } else {
                    MediaKind::Video
                };
                let mid = change.add_media(kind, Direction::RecvOnly, None, None, None);
                self.slots.insert(source, mid);
            }
        }
        for sub in &mut self.subs {
            match sub.state {
                SubState::ToOpen => {
                    let kind = if sub.source.is_audio() {
                        MediaKind::Audio
                    } else {
                        MediaKind::Video
                    };
                    let stream = sub.publisher.to_string();
                    let track = format!("{}-{}", sub.publisher, source_name(sub.source));
                    let mid = change.add_media(
                        kind,
                        Direction::SendOnly,
                        Some(stream),
                        Some(track),
                        None,
                    );
                    sub.state = SubState::Negotiating(mid);
                }
                SubState::ToStop(mid) => {
                    change.stop_media(mid);
                    sub.state = SubState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        if !change.has_changes() {
            return None;
        }
        let (offer, pending) = change.apply()?;
        self.pending = Some(pending);
        self.stats.subscriptions = self.live_subs();
        self.offers += 1;
        Some(OfferOut {
            sdp: with_session_version(&offer.to_sdp_string(), self.offers),
            slots: self
                .slots
                .iter()
                .map(|(s, m)| (*s, m.to_string()))
                .collect(),
            tracks: self
                .subs
                .iter()
                .filter_map(|s| match s.state {
                    SubState::Negotiating(m) | SubState::Open(m) => Some((
                        m.to_string(),
                        TrackInfo {
                            participant: s.publisher,
                            source: s.source,
                        },
                    )),
                    _ => None,
                })
                .collect(),
        })
    }

    /// Apply the client's answer. Returns the subscriptions that just opened (so the
    /// publisher can be asked for a keyframe). `Err((error, fatal))` on bad input.
    pub fn accept_answer(
        &mut self,
        sdp: &str,
    ) -> Result<Vec<(ParticipantId, Source)>, (ProtocolError, bool)> {
        if self.pending.is_none() {
            return Err((
                ProtocolError::new(
                    ErrorCode::NoOfferPending,
                    "there is no outstanding offer to answer",
                ),
                false,
            ));
        }
        // Parse first: garbage is refused without touching the negotiation, so the client
        // may send a correct answer afterwards.
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| {
            (
                ProtocolError::new(
                    ErrorCode::InvalidSdp,
                    format!("the answer is not valid SDP: {e}"),
                ),
                false,
            )
        })?;
        let pending = self.pending.take().expect("checked above");
        if let Err(e) = self.rtc.sdp_api().accept_answer(pending, answer) {
            // The offer is consumed; the session's state is unknown now: fatal.
            return Err((
                ProtocolError::new(
                    ErrorCode::InvalidSdp,
                    format!("the answer does not fit the offer: {e}"),
                ),
                true,
            ));
        }
        let mut opened = Vec::new();
        for sub in &mut self.subs {
            match sub.state {
                SubState::Negotiating(m) if sub.cancelled => {
                    sub.state = SubState::ToStop(m);
                    sub.cancelled = false;
                }
                SubState::Negotiating(m) => {
                    sub.state = SubState::Open(m);
                    opened.push((sub.publisher, sub.source));
                }
                _ => {}
            }
        }
        self.subs
            .retain(|s| !matches!(s.state, SubState::NegotiatingStop(_)));
        self.stats.subscriptions = self.live_subs();
        Ok(opened)
    }

    fn live_subs(&self) -> usize {
        self.subs
            .iter()
            .filter(|s| matches!(s.state, SubState::Negotiating(_) | SubState::Open(_)))
            .count()
    }
}

/// The wire name of a source.
pub fn source_name(s: Source) -> &'static str {
    match s {
        Source::Microphone => "microphone",
        Source::Camera => "camera",
        Source::Screen => "screen",
    }
}

/// Set the session version (third field of the `o=` line) of an SDP text. str0m keeps it
/// constant; RFC 3264 §8 requires it to increase with every changed offer.
pub fn with_session_version(sdp: &str, version: u64) -> String {
    let mut out = String::with_capacity(sdp.len() + 8);
    for line in sdp.split_inclusive('\n') {
        if let Some(rest) = line.strip_prefix("o=") {
            let mut fields: Vec<&str> = rest.split(' ').collect();
            if fields.len() >= 6 {
                let v = version.to_string();
                fields[2] = &v;
                out.push_str("o=");
                out.push_str(&fields.join(" "));
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_version_is_rewritten() {
        let sdp = "v=0\r\no=str0m-0.25.0 3861684981457113165 2 IN IP4 0.0.0.0\r\ns=-\r\n";
        assert_eq!(
            with_session_version(sdp, 7),
            "v=0\r\no=str0m-0.25.0 3861684981457113165 7 IN IP4 0.0.0.0\r\ns=-\r\n"
        );
    }

    #[test]
    fn offers_carry_growing_session_versions() {
        let now = Instant::now();
        let room = RoomId::parse("clientroom-000001").unwrap();
        let mut c = Client::new(
            ParticipantId(1),
            room,
            3,
            "127.0.0.1:10000".parse().unwrap(),
            true,
            now,
        );
        let first = c.next_offer().expect("first offer");
        assert!(first.sdp.contains(" 1 IN IP4"), "{}", first.sdp);
        assert_eq!(first.slots.len(), 3);
        // The ufrag names the shard.
        assert!(first.sdp.contains("a=ice-ufrag:03"), "{}", first.sdp);
        // No second offer while the first is outstanding.
        c.subscribe(ParticipantId(2), Source::Camera);
        assert!(c.next_offer().is_none());
    }

    #[test]
    fn sequence_numbers_continue_across_skips() {
        let mut r = SeqRewrite::default();
        // Nothing skipped: the publisher's numbers pass unchanged.
        assert_eq!(
            (1000..1005).map(|s| r.map(s)).collect::<Vec<_>>(),
            vec![1000, 1001, 1002, 1003, 1004]
        );
        // 50 packets skipped: numbering resumes at 1005.
        for _ in 1005..1055 {
            r.skip();
        }
        assert_eq!(r.map(1055), 1005);
        assert_eq!(r.map(1056), 1006);
        // A real loss on the way in stays a gap the receiver can NACK.
        assert_eq!(r.map(1058), 1008);
        // A reordered packet keeps its place.
        assert_eq!(r.map(1057), 1007);
        assert_eq!(r.map(1059), 1009);
        // Skipping before anything was sent: the first packet keeps its number.
        let mut r = SeqRewrite::default();
        r.skip();
        assert_eq!(r.map(7), 7);
    }
}
