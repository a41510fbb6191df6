//! What the server keeps: the connection log (retention at start and on schedule), the audit
//! log (events from every edge, `conclave audit-log verify` naming tampered records), the
//! privacy promise (a whole meeting leaves no name, chat text or client address outside the
//! connection log, in any log line or any file), and metrics that are never public.

use crate::common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use common::{ROOM, eventually, https, join_raw};
use conclave::config::Config;
use conclave::records::{Entry, Recorder, Schedule};
use conclave_proto::{ClientMessage, ServerMessage, Source};
use conclave_room::{ConnId, LogRecord};
use conclave_store::{ConnectionFilter, OffsetDateTime, Store, StoreOptions};

const T: Duration = Duration::from_secs(10);

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("conclave-records-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_conclave"))
}

#[test]
fn connection_log_rows_are_deleted_on_schedule_on_a_simulated_clock() {
    let dir = tmp("schedule");
    let config = Config {
        data_dir: dir.clone(),
        ..Config::default()
    };
    let store = Arc::new(Store::open(&dir, StoreOptions::default()).unwrap());
    let t0 = OffsetDateTime::now_utc().unix_timestamp();
    let clock = Arc::new(AtomicI64::new(t0));
    let c = clock.clone();
    let schedule = Schedule {
        now: Arc::new(move || {
            OffsetDateTime::from_unix_timestamp(c.load(Ordering::SeqCst)).unwrap()
        }),
        every: Duration::from_millis(50),
    };
    let recorder = Recorder::start(&config, store.clone(), schedule).unwrap();
    recorder.record(Entry::Room(LogRecord::Entered {
        conn: ConnId(1),
        room: conclave_proto::RoomId::parse(ROOM).unwrap(),
        addr: "192.0.2.10".parse().unwrap(),
    }));
    recorder.record(Entry::Room(LogRecord::Left { conn: ConnId(1) }));
    assert!(recorder.flush(T));
    let rows = store
        .list_connections(&ConnectionFilter::default())
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].address, "192.0.2.10");
    assert!(rows[0].left_at.is_some());
    // Rooms are stored hashed by default.
    assert!(rows[0].room.starts_with('k') && !rows[0].room.contains(ROOM));

    // 13 days later the row stays; 15 days later the hourly run (here every 50 ms) deletes it.
    clock.store(t0 + 13 * 86_400, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        store
            .list_connections(&ConnectionFilter::default())
            .unwrap()
            .len(),
        1
    );
    clock.store(t0 + 15 * 86_400, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + T;
    while !store
        .list_connections(&ConnectionFilter::default())
        .unwrap()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the row older than 14 days stayed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn old_rows_are_deleted_at_start_and_open_ones_closed() {
    let dir = tmp("start");
    let now = OffsetDateTime::now_utc();
    {
        let store = Store::open(&dir, StoreOptions::default()).unwrap();
        store
            .log_join("192.0.2.1", "old", now - time::Duration::days(20))
            .unwrap();
        store
            .log_join("192.0.2.2", "recent", now - time::Duration::days(2))
            .unwrap();
    }
    let d = dir.clone();
    let s = common::start(move |c| c.data_dir = d).await;
    assert!(s.server.flush_records());
    let store = Store::open(&dir, StoreOptions::default()).unwrap();
    let rows = store
        .list_connections(&ConnectionFilter::default())
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].room, "recent");
    // The session the "previous run" left open ends at this start.
    assert!(rows[0].left_at.is_some());
    drop(s);
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A whole meeting (join, chat, moderation, leave) through the real binary, then every log
/// line and every byte of every file in the data directory searched for the participants'
/// names, the chat text and the client address. The address may appear only in the
/// connection log table.
#[tokio::test]
async fn a_meeting_leaves_no_names_chat_or_addresses_outside_the_connection_log() {
    let dir = tmp("privacy");
    let data = dir.join("data");
    let cfg = dir.join("conclave.toml");
    // The server listens on 127.0.0.2, so the clients' address (127.0.0.1) is not also
    // the server's own. E2EE off: the server sees the chat text in clear, and still must
    // not keep it.
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.2:0\"\nmedia_port = 0\ndata_dir = {data:?}\nlog = \"debug\"\n\
             log_format = \"json\"\n[meeting]\ne2ee = \"off\"\n[turn]\nenabled = false\n"
        ),
    )
    .unwrap();
    let log_path = dir.join("server.log");
    let mut child = bin()
        .args(["serve", "--config"])
        .arg(&cfg)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut text = String::new();
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            if let Some(line) = text.lines().find(|l| l.contains("listening on")) {
                let _ = tx.send(line.to_owned());
                // Stop reading: the server's later ready lines then meet a closed pipe,
                // which must not panic it (a panic message would be a non-JSON log line).
                break;
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("ready line");
    let port = line
        .split("https://127.0.0.2:")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .unwrap()
        .to_owned();
    let url = format!("https://127.0.0.2:{port}");

    const HOST: &str = "Zebulon Quaxworth";
    const GUEST: &str = "Xanthippe Yarborough";
    const CHAT: &str = "the quarterly numbers are 4711";
    let (mut host, _host_id) = join_raw(&url, HOST).await;
    let (mut guest, guest_id) = join_raw(&url, GUEST).await;
    host.recv_until(T, |m| matches!(m, ServerMessage::ParticipantJoined { .. }))
        .await
        .unwrap();
    guest
        .send(&ClientMessage::Chat {
            text: Some(CHAT.into()),
            ciphertext: None,
            to: None,
        })
        .await
        .unwrap();
    let m = host
        .recv_until(T, |m| matches!(m, ServerMessage::Chat { .. }))
        .await
        .unwrap();
    assert!(matches!(m, ServerMessage::Chat { .. }));
    host.send(&ClientMessage::Mute {
        participant: guest_id,
        source: Source::Microphone,
    })
    .await
    .unwrap();
    host.send(&ClientMessage::Remove {
        participant: guest_id,
        message: Some("bye for now".into()),
    })
    .await
    .unwrap();
    guest
        .recv_until(T, |m| matches!(m, ServerMessage::Bye { .. }))
        .await
        .unwrap();
    host.send(&ClientMessage::Leave {}).await.unwrap();
    let _ = host
        .recv_until(Duration::from_secs(3), |m| {
            matches!(m, ServerMessage::Bye { .. })
        })
        .await;
    drop((host, guest));
    tokio::time::sleep(Duration::from_millis(500)).await;
    // SIGINT: the server shuts down as on ctrl-c.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let stopped = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        child.try_wait().ok().flatten().is_some()
    });
    if !stopped {
        let _ = child.kill();
    }
    let _ = child.wait();

    let log = std::fs::read(&log_path).unwrap();
    assert!(log.len() > 100, "the server logged almost nothing");
    for needle in [HOST, GUEST, CHAT, "bye for now", "127.0.0.1"] {
        assert!(
            !contains(&log, needle),
            "the log holds {needle:?}:\n{}",
            String::from_utf8_lossy(&log)
        );
    }
    // Every line is one JSON object.
    for l in String::from_utf8_lossy(&log).lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(l).is_ok(),
            "not JSON: {l}"
        );
    }
    let data_files = files(&data);
    assert!(data_files.iter().any(|f| f.ends_with("conclave.db")));
    for f in &data_files {
        let bytes = std::fs::read(f).unwrap();
        for needle in [HOST, GUEST, CHAT, "bye for now"] {
            assert!(
                !contains(&bytes, needle),
                "{} holds {needle:?}",
                f.display()
            );
        }
        let is_db = f
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("conclave.db"));
        if !is_db {
            assert!(
                !contains(&bytes, "127.0.0.1"),
                "{} holds the address",
                f.display()
            );
        }
    }
    // In the database: the address only in the connection log, once per session.
    let db = rusqlite::Connection::open(data.join("conclave.db")).unwrap();
    let tables: Vec<String> = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut hits = Vec::new();
    for t in &tables {
        let cols: Vec<String> = db
            .prepare(&format!("SELECT name FROM pragma_table_info('{t}')"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for c in cols {
            let n: i64 = db
                .query_row(
                    &format!("SELECT count(*) FROM {t} WHERE CAST({c} AS BLOB) LIKE '%127.0.0.1%'"),
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            if n > 0 {
                hits.push(format!("{t}.{c}"));
            }
        }
    }
    assert_eq!(hits, vec!["connection_log.address".to_owned()]);
    let sessions: i64 = db
        .query_row(
            "SELECT count(*) FROM connection_log WHERE left_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(sessions, 2);
    // And the moderation is in the audit log, naming no one by name.
    let kinds: Vec<String> = db
        .prepare("SELECT kind FROM audit_log ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for k in [
        "server.start",
        "config.loosened",
        "moderation.mute",
        "moderation.remove",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn audit_kinds(dir: &Path) -> Vec<(String, String, String)> {
    let db = rusqlite::Connection::open(dir.join("conclave.db")).unwrap();
    db.prepare("SELECT kind, actor, detail FROM audit_log ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn security_events_from_every_edge_reach_the_audit_log_and_verify_names_tampering() {
    let dir = tmp("audit");
    let key = dir.join("admin.key");
    std::fs::write(&key, "k".repeat(40)).unwrap();
    {
        let store = Store::open(&dir.join("data"), StoreOptions::default());
        drop(store);
    }
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    // An account, made with the command line (its audit record comes from that process).
    let out = bin()
        .args([
            "user",
            "add",
            "alice",
            "--name",
            "Alice A",
            "--password-stdin",
            "--data-dir",
        ])
        .arg(&data)
        .env_remove("CONCLAVE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"correct horse battery\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let (d, k) = (data.clone(), key.clone());
    let s = common::start(move |c| {
        c.data_dir = d;
        c.api.admin_key_file = Some(k);
    })
    .await;
    let json = [
        ("content-type", "application/json"),
        ("origin", s.url.as_str()),
    ];
    let sign_in = async |body: &str| https(&s.url, "POST", "/api/session", &json, body).await;
    let r = sign_in(r#"{"username":"alice","password":"wrong one here"}"#).await;
    assert_eq!(r.status, 401);
    let r = sign_in(r#"{"username":"nobody","password":"wrong one here"}"#).await;
    assert_eq!(r.status, 401);
    let r = sign_in(r#"{"username":"alice","password":"correct horse battery"}"#).await;
    assert_eq!(r.status, 200);
    let r = https(
        &s.url,
        "GET",
        "/api/rooms",
        &[("authorization", "Bearer not-the-key")],
        "",
    )
    .await;
    assert_eq!(r.status, 401);
    let r = https(
        &s.url,
        "GET",
        "/api/rooms",
        &[("authorization", &format!("Bearer {}", "k".repeat(40)))],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let (mut m, _) = join_raw(&s.url, "Mod").await;
    let (_g, gid) = join_raw(&s.url, "Guest").await;
    m.send(&ClientMessage::SetRole {
        participant: gid,
        role: conclave_proto::Role::Moderator,
    })
    .await
    .unwrap();
    m.send(&ClientMessage::Lock { locked: true }).await.unwrap();
    m.recv_until(T, |x| matches!(x, ServerMessage::RoomUpdated { .. }))
        .await
        .unwrap();
    eventually("the records", T, || s.server.flush_records()).await;
    let kinds = audit_kinds(&data);
    let has = |kind: &str, actor: &str| kinds.iter().any(|(k, a, _)| k == kind && a == actor);
    assert!(has("account.add", "cli"), "{kinds:?}");
    assert!(has("signin.failure", "account:alice"), "{kinds:?}");
    // A name that is not an account is not written down (it may be a mistyped password).
    assert!(has("signin.failure", "unknown"), "{kinds:?}");
    assert!(
        !kinds
            .iter()
            .any(|(_, a, d)| a.contains("nobody") || d.contains("nobody"))
    );
    assert!(has("signin.success", "account:alice"), "{kinds:?}");
    assert!(has("admin.api_refused", "admin-api"), "{kinds:?}");
    assert!(has("admin.api", "admin-api"), "{kinds:?}");
    assert!(
        kinds.iter().any(|(k, a, d)| k == "moderation.set_role"
            && a.starts_with("guest:")
            && d == "role=moderator"),
        "{kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .any(|(k, _, d)| k == "moderation.lock" && d == "locked=true"),
        "{kinds:?}"
    );
    drop(m);
    drop(s);

    let verify = |data: &Path| {
        let out = bin()
            .args(["audit-log", "verify", "--data-dir"])
            .arg(data)
            .env_remove("CONCLAVE_CONFIG")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = verify(&data);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("intact"), "{text}");

    // Tamper with the database directly: change record 2, delete record 4, insert one.
    let db = rusqlite::Connection::open(data.join("conclave.db")).unwrap();
    db.execute(
        "UPDATE audit_log SET actor = 'account:mallory' WHERE seq = 2",
        [],
    )
    .unwrap();
    db.execute("DELETE FROM audit_log WHERE seq = 4", [])
        .unwrap();
    db.execute(
        "INSERT INTO audit_log SELECT seq, at, kind, 'account:mallory', target, room, address, detail, prev, randomblob(32) FROM audit_log WHERE seq = 6",
        [],
    )
    .unwrap();
    drop(db);
    let (code, text) = verify(&data);
    assert_eq!(code, Some(1), "{text}");
    for line in [
        "record 2: changed",
        "record 4: removed",
        "record 6: inserted",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }

    // Export: JSON lines and RFC 5424.
    let out = bin()
        .args([
            "audit-log",
            "export",
            "--format",
            "syslog",
            "--hostname",
            "meet1",
            "--data-dir",
        ])
        .arg(&data)
        .env_remove("CONCLAVE_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("<85>1 ") && first.contains(" meet1 conclave - "),
        "{first}"
    );
    assert!(first.contains("[conclave@32473 seq=\"1\""), "{first}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("<84>1 ") && l.contains("signin.failure")),
        "{text}"
    );
    let out = bin()
        .args(["audit-log", "export", "--data-dir"])
        .arg(&data)
        .env_remove("CONCLAVE_CONFIG")
        .output()
        .unwrap();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(
            v["seq"].is_i64() && v["mac"].as_str().unwrap().len() == 64,
            "{l}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn metrics_are_never_public_and_carry_the_counts() {
    // Default: no /metrics at all.
    let s = common::start(|_| {}).await;
    assert_eq!(https(&s.url, "GET", "/metrics", &[], "").await.status, 404);
    let r = https(&s.url, "GET", "/readyz", &[], "").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));
    drop(s);

    let dir = tmp("metrics");
    let key = dir.join("metrics.key");
    std::fs::write(&key, format!("{}\n", "m".repeat(32))).unwrap();
    let k = key.clone();
    let s = common::start(move |c| {
        c.metrics.key_file = Some(k);
        c.metrics.http_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let r = https(&s.url, "GET", "/metrics", &[], "").await;
    assert_eq!(r.status, 401);
    let r = https(
        &s.url,
        "GET",
        "/metrics",
        &[("authorization", "Bearer wrong")],
        "",
    )
    .await;
    assert_eq!(r.status, 401);
    let (_a, _) = join_raw(&s.url, "A").await;
    let (_b, _) = join_raw(&s.url, "B").await;
    let bearer = format!("Bearer {}", "m".repeat(32));
    let r = https(&s.url, "GET", "/metrics", &[("authorization", &bearer)], "").await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        r.headers
    );
    for line in [
        "conclave_rooms 1",
        "conclave_participants 2",
        "conclave_connections 2",
        "conclave_signin_failure_total 0",
        "conclave_media_participants 2",
        "# TYPE conclave_process_resident_memory_bytes gauge",
        "# TYPE conclave_media_datagrams_sent counter",
        "conclave_turn_allocations 0",
    ] {
        assert!(
            r.body.lines().any(|l| l == line || l.starts_with(line)),
            "{line:?} missing:\n{}",
            r.body
        );
    }
    // The separate listener: plain HTTP, no key.
    let addr = s.server.metrics_addr().unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    tokio::time::timeout(T, tcp.read_to_string(&mut body))
        .await
        .unwrap()
        .unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("conclave_participants 2"), "{body}");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

// Multi-threaded: the test calls the binary synchronously while the server answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conclave_audit_finds_loosened_settings_open_secrets_and_checks_a_live_server() {
    let dir = tmp("deploy-audit");
    let data = dir.join("data");
    let d = data.clone();
    let s = common::start(move |c| c.data_dir = d).await;
    assert!(s.server.flush_records());
    // A secret anyone can read, a loosened config, an account that never expires.
    let key = dir.join("admin.key");
    std::fs::write(&key, "a".repeat(40)).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {data:?}\n[meeting]\ne2ee = \"off\"\n[privacy]\nretention_days = 90\n[api]\nadmin_key_file = {key:?}\n"
        ),
    )
    .unwrap();
    let store = Store::open(&data, StoreOptions::default()).unwrap();
    store
        .add_account(
            "olduser",
            "Old User",
            "correct horse battery",
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    drop(store);
    let out = bin()
        .args(["audit", "--json", "--config"])
        .arg(&cfg)
        .arg("--url")
        .arg(&s.url)
        .env_remove("CONCLAVE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let findings: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<(&str, &str)> = findings
        .iter()
        .map(|f| (f["id"].as_str().unwrap(), f["severity"].as_str().unwrap()))
        .collect();
    for want in [
        ("config.e2ee", "high"),
        ("config.retention", "medium"),
        ("config.access_mode", "low"),
        ("files.secret_mode", "high"),
        ("accounts.no_expiry", "low"),
        ("accounts.no_second_factor", "low"),
        // The test server's self-signed certificate, seen from outside.
        ("live.untrusted", "high"),
        ("live.metrics_public", "info"),
        ("live.admin_public", "info"),
        ("tls.validity", "info"),
    ] {
        assert!(ids.contains(&want), "{want:?} missing from {ids:?}");
    }
    // Every security header arrives.
    assert!(!ids.iter().any(|(id, _)| *id == "live.header"), "{ids:?}");
    // Text output and the defaults: a local trial with nothing loosened has no HIGH finding
    // but the open access mode (low).
    let out = bin()
        .args(["audit", "--data-dir"])
        .arg(&data)
        .env_remove("CONCLAVE_CONFIG")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("[LOW] config.access_mode"), "{text}");
    assert!(!text.contains("[HIGH]"), "{text}");
    // A hardened deployment: only accounts open rooms, the secret is private, a data
    // directory of its own (0700, as the server creates it) with a certificate and no account
    // to age: nothing above info, exit 0.
    let hard_data = dir.join("hardened");
    conclave::create_private_dir(&hard_data).unwrap();
    drop(Store::open(&hard_data, StoreOptions::default()).unwrap());
    // The certificate the running server made (self-signed is fine on loopback).
    conclave::create_private_dir(&hard_data.join("tls")).unwrap();
    for f in ["self-signed-cert.pem", "self-signed-key.pem"] {
        std::fs::copy(data.join("tls").join(f), hard_data.join("tls").join(f)).unwrap();
    }
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let hard = dir.join("hardened.toml");
    std::fs::write(
        &hard,
        format!(
            "data_dir = {hard_data:?}\n[access]\nmode = \"hosts\"\n[api]\nadmin_key_file = {key:?}\n"
        ),
    )
    .unwrap();
    let out = bin()
        .args(["audit", "--json", "--config"])
        .arg(&hard)
        .env_remove("CONCLAVE_CONFIG")
        .output()
        .unwrap();
    let findings: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let above_info: Vec<_> = findings
        .iter()
        .filter(|f| f["severity"] != "info")
        .collect();
    assert!(above_info.is_empty(), "{above_info:#?}");
    assert_eq!(out.status.code(), Some(0), "{findings:#?}");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}
