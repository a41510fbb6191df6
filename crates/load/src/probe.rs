//! The synthetic payload and what a receiver measures from it.
//!
//! Every packet a load participant sends carries, after one codec byte, a probe header:
//! publisher tag (u32), source (u8), stream sequence number (u32), and the send time in
//! nanoseconds since the process's epoch (u64), all big-endian. The receiver needs no
//! signalling to attribute packets, so the same measurement works for any SFU that forwards
//! payloads unchanged (Conclave, Janus).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

use conclave_proto::Source;

/// Bytes of codec byte plus probe header.
pub const HEADER_LEN: usize = 1 + 4 + 1 + 4 + 8;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process's measurement epoch (shared by all participants in it).
pub fn now_nanos(now: Instant) -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(now.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// A decoded probe header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Who sent it.
    pub tag: u32,
    /// Which source.
    pub source: Source,
    /// Per-stream sequence number, from 0.
    pub seq: u32,
    /// Send time, nanoseconds since the epoch.
    pub sent_nanos: u64,
}

fn source_byte(s: Source) -> u8 {
    match s {
        Source::Microphone => 0,
        Source::Camera => 1,
        Source::Screen => 2,
    }
}

impl Probe {
    /// Write a payload of `len` bytes (at least [`HEADER_LEN`]).
    pub fn payload(&self, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len.max(HEADER_LEN)];
        // Video: a VP8 payload descriptor, start of partition. Audio: an Opus TOC byte.
        p[0] = if self.source.is_audio() { 0xfc } else { 0x10 };
        p[1..5].copy_from_slice(&self.tag.to_be_bytes());
        p[5] = source_byte(self.source);
        p[6..10].copy_from_slice(&self.seq.to_be_bytes());
        p[10..18].copy_from_slice(&self.sent_nanos.to_be_bytes());
        p
    }

    /// Read a payload written by [`Probe::payload`]; `None` for anything else.
    pub fn parse(p: &[u8]) -> Option<Probe> {
        if p.len() < HEADER_LEN {
            return None;
        }
        let source = match p[5] {
            0 => Source::Microphone,
            1 => Source::Camera,
            2 => Source::Screen,
            _ => return None,
        };
        Some(Probe {
            tag: u32::from_be_bytes(p[1..5].try_into().ok()?),
            source,
            seq: u32::from_be_bytes(p[6..10].try_into().ok()?),
            sent_nanos: u64::from_be_bytes(p[10..18].try_into().ok()?),
        })
    }
}

/// What one receiver measured of one incoming stream.
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    /// Packets received (duplicates included).
    pub received: u64,
    /// Lowest and highest sequence numbers seen.
    pub first_seq: Option<u32>,
    /// Highest sequence number seen.
    pub max_seq: u32,
    /// RFC 3550 interarrival jitter estimate, in nanoseconds.
    pub jitter_nanos: f64,
    last_transit: Option<i64>,
}

impl StreamStats {
    /// Packets the sender sent between the first and the last one we saw.
    pub fn expected(&self) -> u64 {
        match self.first_seq {
            Some(f) => u64::from(self.max_seq.saturating_sub(f)) + 1,
            None => 0,
        }
    }

    /// Packets missing between the first and the last one we saw.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }
}

/// All of one receiver's measurements.
#[derive(Debug, Clone, Default)]
pub struct ReceiverStats {
    /// Per (publisher tag, source).
    pub streams: HashMap<(u32, Source), StreamStats>,
    /// One-way forwarding latency of every packet, in microseconds.
    pub latencies_us: Vec<u32>,
}

impl ReceiverStats {
    /// Account one received payload at `arrival_nanos`.
    pub fn record(&mut self, probe: Probe, arrival_nanos: u64) {
        let s = self.streams.entry((probe.tag, probe.source)).or_default();
        s.received += 1;
        match s.first_seq {
            None => {
                s.first_seq = Some(probe.seq);
                s.max_seq = probe.seq;
            }
            Some(f) => {
                // A packet from before the window began (reordering) moves the start back.
                if probe.seq < f {
                    s.first_seq = Some(probe.seq);
                }
                s.max_seq = s.max_seq.max(probe.seq);
            }
        }
        let transit = arrival_nanos as i64 - probe.sent_nanos as i64;
        if let Some(last) = s.last_transit {
            let d = (transit - last).unsigned_abs() as f64;
            s.jitter_nanos += (d - s.jitter_nanos) / 16.0;
        }
        s.last_transit = Some(transit);
        let us = arrival_nanos.saturating_sub(probe.sent_nanos) / 1000;
        self.latencies_us
            .push(u32::try_from(us).unwrap_or(u32::MAX));
    }
}

/// The `q` quantile (0..=1) of `sorted`, or 0 for an empty slice.
pub fn quantile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    sorted[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_garbage_is_refused() {
        let p = Probe {
            tag: 7,
            source: Source::Camera,
            seq: 42,
            sent_nanos: 123_456_789,
        };
        let bytes = p.payload(1200);
        assert_eq!(bytes.len(), 1200);
        assert_eq!(bytes[0], 0x10);
        assert_eq!(Probe::parse(&bytes), Some(p));
        assert_eq!(Probe::parse(&bytes[..10]), None);
        let mut bad = bytes.clone();
        bad[5] = 9;
        assert_eq!(Probe::parse(&bad), None);
        // Too short a length still gets a whole header.
        assert_eq!(p.payload(3).len(), HEADER_LEN);
    }

    #[test]
    fn loss_counts_gaps_inside_the_window() {
        let mut r = ReceiverStats::default();
        for seq in [10, 11, 13, 14, 17] {
            let p = Probe {
                tag: 1,
                source: Source::Microphone,
                seq,
                sent_nanos: 1_000,
            };
            r.record(p, 2_000);
        }
        let s = &r.streams[&(1, Source::Microphone)];
        assert_eq!(s.expected(), 8);
        assert_eq!(s.received, 5);
        assert_eq!(s.lost(), 3);
        assert_eq!(r.latencies_us, vec![1; 5]);
    }

    #[test]
    fn jitter_follows_transit_variation() {
        let mut r = ReceiverStats::default();
        let mk = |seq, sent| Probe {
            tag: 1,
            source: Source::Camera,
            seq,
            sent_nanos: sent,
        };
        // Constant transit: no jitter.
        for i in 0..10u64 {
            r.record(mk(i as u32, i * 1000), i * 1000 + 500);
        }
        assert_eq!(r.streams[&(1, Source::Camera)].jitter_nanos, 0.0);
        // Alternating transit of 500 and 1500 ns: jitter grows toward 1000.
        for i in 10..200u64 {
            let extra = if i % 2 == 0 { 500 } else { 1500 };
            r.record(mk(i as u32, i * 1000), i * 1000 + extra);
        }
        let j = r.streams[&(1, Source::Camera)].jitter_nanos;
        assert!((900.0..=1000.0).contains(&j), "{j}");
    }

    #[test]
    fn quantiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 51);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&v, 1.0), 100);
        assert_eq!(quantile(&[], 0.5), 0);
    }
}
