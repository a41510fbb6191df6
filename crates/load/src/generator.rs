//! The load generator: N rooms × P participants, each publishing audio and video and
//! subscribing to everyone else in its room, measured per subscriber.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::peers::{Peer, join_janus_room};
use crate::probe::{ReceiverStats, now_nanos, quantile};
use crate::{Profile, TestParticipant};

/// Longest run the generator accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// Most participants one run may create.
pub const MAX_PARTICIPANTS: usize = 2000;

/// Which server to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Conclave at `https://host:port`.
    Conclave(String),
    /// Janus's HTTP API at `http://host:port/janus`.
    Janus(String),
}

impl Target {
    /// The URL.
    pub fn url(&self) -> &str {
        match self {
            Target::Conclave(u) | Target::Janus(u) => u,
        }
    }

    /// A short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Conclave(_) => "conclave",
            Target::Janus(_) => "janus",
        }
    }
}

/// One run's settings.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server.
    pub target: Target,
    /// Rooms.
    pub rooms: usize,
    /// Participants per room.
    pub participants: usize,
    /// Measurement window (after setup).
    pub duration: Duration,
    /// What each participant sends.
    pub profile: Profile,
    /// How long joining and the first media may take.
    pub setup_timeout: Duration,
    /// The server's process ID, to measure its CPU time and memory over the window.
    pub server_pid: Option<u32>,
}

impl LoadConfig {
    /// Check bounds and that the target is on loopback.
    pub fn validate(&self) -> Result<()> {
        if self.rooms == 0 || self.participants < 2 {
            bail!("need at least 1 room and 2 participants per room");
        }
        let total = self.rooms.saturating_mul(self.participants);
        if total > MAX_PARTICIPANTS {
            bail!("{total} participants is more than the limit of {MAX_PARTICIPANTS}");
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            bail!(
                "duration must be between 1 s and {} s",
                MAX_DURATION.as_secs()
            );
        }
        check_loopback(self.target.url())
    }
}

/// Refuse any URL whose host is not a loopback address.
pub fn check_loopback(url: &str) -> Result<()> {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .context("the URL needs a scheme, e.g. https://127.0.0.1:8443")?;
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let ok = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !ok {
        bail!("the load generator only targets loopback addresses, not {host:?}");
    }
    Ok(())
}

/// Latency quantiles in microseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_us: u32,
    /// 99th percentile.
    pub p99_us: u32,
    /// Maximum.
    pub max_us: u32,
}

/// The result of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `conclave` or `janus`.
    pub target: String,
    /// Rooms.
    pub rooms: usize,
    /// Participants per room.
    pub participants_per_room: usize,
    /// Measurement window, seconds.
    pub duration_secs: f64,
    /// RTP packets the participants sent in the window.
    pub sent_packets: u64,
    /// Probe packets received by all subscribers.
    pub received_packets: u64,
    /// Packets the subscribers should have received (by sequence ranges).
    pub expected_packets: u64,
    /// Missing packets.
    pub lost_packets: u64,
    /// lost / expected.
    pub loss_ratio: f64,
    /// Subscriber × publisher × source streams that should flow.
    pub streams_expected: usize,
    /// Of those, streams that delivered nothing in the window.
    pub streams_missing: usize,
    /// One-way forwarding latency (sender to receiver, through the server).
    pub latency: Latency,
    /// Mean RFC 3550 jitter over streams, milliseconds.
    pub jitter_ms_mean: f64,
    /// Received packets per second.
    pub received_pps: f64,
    /// Server CPU seconds (all threads) spent in the window, when its PID was given.
    pub server_cpu_secs: Option<f64>,
    /// Forwarded packets (received + lost) per server CPU second.
    pub forwarded_per_cpu_sec: Option<f64>,
    /// Server resident memory before the participants joined and at the window's end, KiB.
    pub server_rss_kib: Option<(u64, u64)>,
    /// Memory growth per connected participant, KiB.
    pub rss_per_participant_kib: Option<f64>,
}

/// CPU time (user + system) of process `pid`, all threads including exited ones, from
/// `/proc/<pid>/stat`. Resolution is one clock tick: USER_HZ, 100 on Linux.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Resident memory of `pid` in KiB.
pub fn process_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Progress once a second.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Seconds into the window.
    pub elapsed: Duration,
    /// Packets received so far in the window.
    pub received: u64,
    /// Packets sent so far in the window.
    pub sent: u64,
}

/// Room names the generator uses: unguessable-looking, fixed per index.
pub fn room_name(run: u64, room: usize) -> String {
    format!("load{run:012x}r{room:06}")
}

/// Run the load: join everyone, wait until every stream flows, measure for the window.
pub async fn run(cfg: &LoadConfig, mut progress: impl FnMut(&Progress)) -> Result<Report> {
    cfg.validate()?;
    let rss_before = cfg.server_pid.and_then(process_rss_kib);
    let run_id: u64 =
        (u64::from(std::process::id()) << 20) ^ (now_nanos(Instant::now()) & 0xf_ffff);
    let mut peers: Vec<Vec<Peer>> = Vec::new();
    let mut tag = 0u32;
    for r in 0..cfg.rooms {
        let mut names = Vec::new();
        for i in 0..cfg.participants {
            tag += 1;
            names.push((format!("load-{r}-{i}"), tag));
        }
        let joined = match &cfg.target {
            Target::Conclave(url) => {
                let room = room_name(run_id, r);
                let joins = names
                    .iter()
                    .map(|(name, t)| TestParticipant::join_with(url, &room, name, cfg.profile, *t));
                futures_util::future::try_join_all(joins)
                    .await
                    .context("joining")?
                    .into_iter()
                    .map(Peer::Conclave)
                    .collect()
            }
            Target::Janus(url) => {
                let (url, profile, timeout) = (url.clone(), cfg.profile, cfg.setup_timeout);
                // Janus room numbers: distinct per run and room.
                let room = (run_id & 0xffff_ffff) * 1000 + r as u64;
                tokio::task::spawn_blocking(move || {
                    join_janus_room(&url, room, &names, profile, timeout)
                })
                .await
                .context("Janus setup thread")??
            }
        };
        peers.push(joined);
    }
    for p in peers.iter().flatten() {
        p.publish_all();
    }
    // Setup: every subscriber hears every publisher's both sources.
    let streams_expected = cfg.rooms * cfg.participants * (cfg.participants - 1) * 2;
    let deadline = Instant::now() + cfg.setup_timeout;
    loop {
        let flowing: usize = peers
            .iter()
            .flatten()
            .map(|p| {
                p.stats()
                    .streams
                    .values()
                    .filter(|s| s.received > 0)
                    .count()
            })
            .sum();
        if flowing >= streams_expected {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "setup timed out: {flowing} of {streams_expected} streams flowing after {:?}",
                cfg.setup_timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Measurement window.
    for p in peers.iter().flatten() {
        p.reset_stats();
    }
    let sent_at_start: u64 = peers.iter().flatten().map(|p| p.sent()).sum();
    let cpu_at_start = cfg.server_pid.and_then(process_cpu);
    let start = Instant::now();
    while start.elapsed() < cfg.duration {
        tokio::time::sleep(Duration::from_secs(1).min(cfg.duration)).await;
        let received = peers
            .iter()
            .flatten()
            .map(|p| p.stats().streams.values().map(|s| s.received).sum::<u64>())
            .sum();
        let sent = peers.iter().flatten().map(|p| p.sent()).sum::<u64>() - sent_at_start;
        progress(&Progress {
            elapsed: start.elapsed(),
            received,
            sent,
        });
    }
    let sent = peers.iter().flatten().map(|p| p.sent()).sum::<u64>() - sent_at_start;
    let cpu_at_end = cfg.server_pid.and_then(process_cpu);
    let rss_after = cfg.server_pid.and_then(process_rss_kib);
    for p in peers.iter().flatten() {
        p.silence();
    }
    let window = start.elapsed();
    // Let in-flight packets land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all: Vec<ReceiverStats> = peers.iter().flatten().map(|p| p.stats()).collect();
    let mut report = summarize(cfg, &all, sent, window, streams_expected);
    if let (Some(a), Some(b)) = (cpu_at_start, cpu_at_end) {
        let cpu = b.saturating_sub(a).as_secs_f64();
        report.server_cpu_secs = Some(cpu);
        report.forwarded_per_cpu_sec =
            (cpu > 0.0).then(|| (report.received_packets + report.lost_packets) as f64 / cpu);
    }
    if let (Some(a), Some(b)) = (rss_before, rss_after) {
        report.server_rss_kib = Some((a, b));
        let n = (cfg.rooms * cfg.participants) as f64;
        report.rss_per_participant_kib = Some(b.saturating_sub(a) as f64 / n);
    }
    Ok(report)
}

/// Combine receivers' measurements into a report.
pub fn summarize(
    cfg: &LoadConfig,
    all: &[ReceiverStats],
    sent: u64,
    window: Duration,
    streams_expected: usize,
) -> Report {
    let mut lat: Vec<u32> = Vec::new();
    let (mut received, mut expected, mut jitter_sum, mut streams) = (0u64, 0u64, 0f64, 0usize);
    for r in all {
        lat.extend_from_slice(&r.latencies_us);
        for s in r.streams.values() {
            received += s.received;
            expected += s.expected();
            jitter_sum += s.jitter_nanos;
            streams += 1;
        }
    }
    lat.sort_unstable();
    let lost = expected.saturating_sub(received);
    Report {
        target: cfg.target.name().into(),
        rooms: cfg.rooms,
        participants_per_room: cfg.participants,
        duration_secs: window.as_secs_f64(),
        sent_packets: sent,
        received_packets: received,
        expected_packets: expected,
        lost_packets: lost,
        loss_ratio: if expected == 0 {
            0.0
        } else {
            lost as f64 / expected as f64
        },
        streams_expected,
        streams_missing: streams_expected.saturating_sub(streams),
        latency: Latency {
            p50_us: quantile(&lat, 0.5),
            p99_us: quantile(&lat, 0.99),
            max_us: lat.last().copied().unwrap_or(0),
        },
        jitter_ms_mean: if streams == 0 {
            0.0
        } else {
            jitter_sum / streams as f64 / 1e6
        },
        received_pps: received as f64 / window.as_secs_f64().max(1e-9),
        server_cpu_secs: None,
        forwarded_per_cpu_sec: None,
        server_rss_kib: None,
        rss_per_participant_kib: None,
    }
}

impl Report {
    /// A human-readable summary.
    pub fn table(&self) -> String {
        let mut t = self.base_table();
        if let (Some(cpu), Some(per)) = (self.server_cpu_secs, self.forwarded_per_cpu_sec) {
            t.push_str(&format!(
                "server CPU        {cpu:.2} s ({:.0} % of one core), {per:.0} forwarded packets per CPU second\n",
                cpu / self.duration_secs * 100.0
            ));
        }
        if let (Some((a, b)), Some(per)) = (self.server_rss_kib, self.rss_per_participant_kib) {
            t.push_str(&format!(
                "server memory     {a} KiB -> {b} KiB, {per:.0} KiB per participant\n"
            ));
        }
        t
    }

    fn base_table(&self) -> String {
        format!(
            "target            {}\n\
             rooms × people    {} × {}\n\
             window            {:.1} s\n\
             sent packets      {}\n\
             received packets  {} ({:.0}/s)\n\
             lost              {} of {} ({:.4} %)\n\
             streams missing   {} of {}\n\
             latency p50/p99   {:.2} / {:.2} ms (max {:.2})\n\
             jitter (mean)     {:.3} ms\n",
            self.target,
            self.rooms,
            self.participants_per_room,
            self.duration_secs,
            self.sent_packets,
            self.received_packets,
            self.received_pps,
            self.lost_packets,
            self.expected_packets,
            self.loss_ratio * 100.0,
            self.streams_missing,
            self.streams_expected,
            f64::from(self.latency.p50_us) / 1000.0,
            f64::from(self.latency.p99_us) / 1000.0,
            f64::from(self.latency.max_us) / 1000.0,
            self.jitter_ms_mean,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(url: &str) -> LoadConfig {
        LoadConfig {
            target: Target::Conclave(url.into()),
            rooms: 1,
            participants: 2,
            duration: Duration::from_secs(1),
            profile: Profile::default(),
            setup_timeout: Duration::from_secs(5),
            server_pid: None,
        }
    }

    #[test]
    fn only_loopback_targets() {
        for ok in [
            "https://127.0.0.1:8443",
            "https://127.5.0.1:1/",
            "https://localhost:8443",
            "https://[::1]:8443",
            "http://127.0.0.1:8088/janus",
        ] {
            assert!(check_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://10.0.0.1:8443",
            "https://example.org",
            "https://[2001:db8::1]:443",
            "127.0.0.1:8443",
        ] {
            assert!(check_loopback(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bounds_are_checked() {
        assert!(cfg("https://127.0.0.1:1").validate().is_ok());
        let mut c = cfg("https://127.0.0.1:1");
        c.duration = Duration::from_secs(601);
        assert!(c.validate().is_err());
        let mut c = cfg("https://127.0.0.1:1");
        c.participants = 1;
        assert!(c.validate().is_err());
        let mut c = cfg("https://127.0.0.1:1");
        c.rooms = 1000;
        c.participants = 3;
        assert!(c.validate().is_err());
    }

    #[test]
    fn profile_splits_frames_into_packets() {
        let p = Profile::default();
        // 500 kbit/s at 30 fps: 2083 bytes a frame, two packets.
        assert_eq!(p.frame_packets(), vec![1042, 1042]);
        let p = Profile {
            video_kbps: 2000,
            ..Profile::default()
        };
        let sizes = p.frame_packets();
        assert!(sizes.iter().all(|s| *s <= 1200));
        assert_eq!(sizes.len(), 7);
    }

    #[test]
    fn summary_counts_missing_streams_and_loss() {
        let mut r = ReceiverStats::default();
        for seq in [0u32, 1, 3] {
            r.record(
                crate::probe::Probe {
                    tag: 1,
                    source: conclave_proto::Source::Camera,
                    seq,
                    sent_nanos: 0,
                },
                2_000_000,
            );
        }
        let rep = summarize(
            &cfg("https://127.0.0.1:1"),
            &[r],
            10,
            Duration::from_secs(1),
            4,
        );
        assert_eq!(rep.received_packets, 3);
        assert_eq!(rep.expected_packets, 4);
        assert_eq!(rep.lost_packets, 1);
        assert_eq!(rep.streams_missing, 3);
        assert_eq!(rep.latency.p50_us, 2000);
        assert!(rep.table().contains("25.0000 %"));
    }

    #[test]
    fn reads_its_own_cpu_and_memory() {
        let me = std::process::id();
        let a = process_cpu(me).unwrap();
        // Burn at least 50 ms of CPU (several clock ticks).
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
        }
        let b = process_cpu(me).unwrap();
        assert!(b > a, "{a:?} {b:?}");
        assert!(process_rss_kib(me).unwrap() > 100);
        assert!(process_cpu(u32::MAX).is_none());
    }
}
