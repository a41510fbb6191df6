//! A small load-generator run against the in-process server: 2 rooms × 3 participants for a
//! few seconds, every stream delivered, nothing lost.

use crate::common;

use std::time::Duration;

use common::start;
use conclave_load::Profile;
use conclave_load::generator::{self, LoadConfig, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_load_run_delivers_every_stream_without_loss() {
    let srv = start(|_| {}).await;
    let cfg = LoadConfig {
        target: Target::Conclave(srv.url.clone()),
        rooms: 2,
        participants: 3,
        duration: Duration::from_secs(3),
        profile: Profile::default(),
        setup_timeout: Duration::from_secs(20),
        server_pid: Some(std::process::id()),
    };
    let mut ticks = 0;
    let report = generator::run(&cfg, |_| ticks += 1).await.unwrap();
    println!("{}", report.table());
    assert!(ticks >= 2, "progress is reported every second");
    assert_eq!(report.streams_expected, 2 * 3 * 2 * 2);
    assert_eq!(report.streams_missing, 0);
    assert!(report.received_packets > 1000, "{report:?}");
    assert_eq!(report.lost_packets, 0, "{report:?}");
    // Every packet sent reaches the two others in its room (give or take those in flight at
    // the window's edges).
    let ratio = report.received_packets as f64 / (2.0 * report.sent_packets as f64);
    assert!((0.95..=1.05).contains(&ratio), "{ratio}: {report:?}");
    // The server runs in this process: its CPU time and memory were measured.
    assert!(report.server_cpu_secs.unwrap() > 0.0);
    assert!(report.forwarded_per_cpu_sec.unwrap() > 0.0);
    assert!(report.server_rss_kib.is_some());
    // The JSON form carries the same numbers.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["lost_packets"], 0);
    assert_eq!(json["target"], "conclave");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generator_refuses_remote_targets_and_unbounded_runs() {
    let mut cfg = LoadConfig {
        target: Target::Conclave("https://192.0.2.1:8443".into()),
        rooms: 1,
        participants: 2,
        duration: Duration::from_secs(1),
        profile: Profile::default(),
        setup_timeout: Duration::from_secs(1),
        server_pid: None,
    };
    let e = generator::run(&cfg, |_| {}).await.unwrap_err();
    assert!(e.to_string().contains("loopback"), "{e}");
    cfg.target = Target::Conclave("https://127.0.0.1:9".into());
    cfg.duration = Duration::from_secs(3600);
    let e = generator::run(&cfg, |_| {}).await.unwrap_err();
    assert!(e.to_string().contains("duration"), "{e}");
}
