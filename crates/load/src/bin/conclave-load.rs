//! `conclave-load`: put N rooms × P participants of synthetic audio and video on a server on
//! this machine and report loss, latency and jitter per subscriber.

use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use conclave_load::Profile;
use conclave_load::generator::{self, LoadConfig, Target};

/// Load generator for Conclave (and, for comparison, Janus). Loopback targets only.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Conclave server URL (https://127.0.0.1:PORT).
    #[arg(long, conflicts_with = "janus")]
    url: Option<String>,
    /// Janus HTTP API URL (http://127.0.0.1:8088/janus) instead of Conclave.
    #[arg(long)]
    janus: Option<String>,
    /// Rooms.
    #[arg(long, default_value_t = 2)]
    rooms: usize,
    /// Participants per room; each publishes audio and video and receives all others.
    #[arg(long, default_value_t = 3)]
    participants: usize,
    /// Measurement window in seconds (after setup), at most 600.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds joining and first media may take.
    #[arg(long, default_value_t = 30)]
    setup_timeout: u64,
    /// Video bitrate per publisher, kbit/s.
    #[arg(long, default_value_t = 500)]
    video_kbps: u32,
    /// Video frames per second.
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Largest video packet payload, bytes.
    #[arg(long, default_value_t = 1200)]
    packet_size: usize,
    /// Audio packets per second.
    #[arg(long, default_value_t = 50)]
    audio_pps: u32,
    /// PID of the server process: measure its CPU time and memory over the window.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print the report as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let target = match (a.url, a.janus) {
        (Some(u), None) => Target::Conclave(u),
        (None, Some(j)) => Target::Janus(j),
        _ => anyhow::bail!("give --url (Conclave) or --janus (Janus)"),
    };
    let cfg = LoadConfig {
        target,
        rooms: a.rooms,
        participants: a.participants,
        duration: Duration::from_secs(a.duration),
        profile: Profile {
            video_kbps: a.video_kbps,
            fps: a.fps,
            packet_size: a.packet_size,
            audio_pps: a.audio_pps,
            ..Profile::default()
        },
        setup_timeout: Duration::from_secs(a.setup_timeout),
        server_pid: a.server_pid,
    };
    cfg.validate()?;
    eprintln!(
        "loading {} with {} rooms × {} participants for {} s",
        cfg.target.url(),
        cfg.rooms,
        cfg.participants,
        a.duration
    );
    let report = generator::run(&cfg, |p| {
        eprintln!(
            "  {:>5.1} s  sent {:>9}  received {:>10}",
            p.elapsed.as_secs_f64(),
            p.sent,
            p.received
        );
    })
    .await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
