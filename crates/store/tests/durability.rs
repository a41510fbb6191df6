//! A `kill -9` at any moment loses no committed data.
//!
//! The test executable re-invokes itself as a writer process (selected by an environment
//! variable) that adds accounts and sessions in a loop on a real database file and prints
//! each one after its commit returned. The parent kills it with SIGKILL after a random short
//! time, reopens the database and checks that everything printed is there and that SQLite's
//! integrity check passes. Several rounds share one file, so later rounds also open (and
//! recover) a database whose writer was killed, sometimes while it was still being created
//! and migrated.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use conclave_store::{AuditEvent, AuditKey, OffsetDateTime, Store, StoreOptions};
use rand::Rng;

const CHILD_DIR: &str = "CONCLAVE_STORE_DURABILITY_DIR";
const CHILD_PREFIX: &str = "CONCLAVE_STORE_DURABILITY_PREFIX";
const PASSWORD: &str = "durable correct horse";
/// Output markers; libtest's own lines never contain them.
const ACCOUNT: &str = "@@committed-account ";
const SESSION: &str = "@@committed-session ";
const AUDIT: &str = "@@committed-audit ";

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("valid timestamp")
}

/// The writer. Does nothing unless started by `kill_9_loses_no_committed_data`.
#[test]
fn durability_writer() {
    let (Ok(dir), Ok(prefix)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_PREFIX)) else {
        return;
    };
    let store = Store::open(Path::new(&dir), StoreOptions::default()).unwrap();
    let key = AuditKey::load_or_create(&Path::new(&dir).join("audit.key"), &store).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Bounded, in case the parent died: at most 30 s or 10 000 accounts.
    for i in 0..10_000 {
        if Instant::now() > deadline {
            break;
        }
        let name = format!("{prefix}-{i}");
        let account = store
            .add_account(&name, "Durable Writer", PASSWORD, t0())
            .unwrap();
        println!("{ACCOUNT}{name}");
        // Sessions are cheap writes (no hashing), so many kills land in or near a commit.
        for _ in 0..5 {
            let session = store.create_session(account.id, t0()).unwrap();
            println!("{SESSION}{name} {}", session.token);
            // Audit records are appended in their own transactions, like the server does.
            let event = AuditEvent {
                kind: "signin.success".into(),
                actor: format!("account:{name}"),
                ..AuditEvent::default()
            };
            let seqs = store.audit_append(&key, t0(), &[event]).unwrap();
            println!("{AUDIT}{} {name}", seqs[0]);
        }
    }
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("conclave-durability-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn kill_9_loses_no_committed_data() {
    if std::env::var(CHILD_DIR).is_ok() {
        return;
    }
    let dir = temp_dir();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    let mut accounts: Vec<String> = Vec::new();
    let mut sessions: Vec<(String, String)> = Vec::new();
    let mut audited: Vec<(i64, String)> = Vec::new();
    for round in 0..8 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "durability_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, &dir)
            .env(CHILD_PREFIX, format!("r{round}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // Round 0 is killed early, often while the file is being created and migrated.
        let delay = if round == 0 {
            rng.random_range(0..40)
        } else {
            rng.random_range(40..1200)
        };
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        for line in rx.try_iter() {
            if let Some(i) = line.find(ACCOUNT) {
                accounts.push(line[i + ACCOUNT.len()..].to_owned());
            } else if let Some(i) = line.find(SESSION) {
                let (name, token) = line[i + SESSION.len()..].split_once(' ').unwrap();
                sessions.push((name.to_owned(), token.to_owned()));
            } else if let Some(i) = line.find(AUDIT) {
                let (seq, name) = line[i + AUDIT.len()..].split_once(' ').unwrap();
                audited.push((seq.parse().unwrap(), name.to_owned()));
            }
        }

        let store = Store::open(&dir, StoreOptions::default()).unwrap();
        assert_eq!(store.integrity_check().unwrap(), "ok", "round {round}");
        for name in &accounts {
            assert!(
                store.account(name).unwrap().is_some(),
                "round {round}: committed account {name} lost"
            );
        }
        for (name, token) in &sessions {
            let account = store.session_account(token, t0()).unwrap();
            assert_eq!(
                account.map(|a| a.username).as_deref(),
                Some(name.as_str()),
                "round {round}: committed session of {name} lost"
            );
        }
        // Round 0 may be killed before the key file exists; then there is no log yet.
        if let Ok(key) = AuditKey::load_or_create(&dir.join("audit.key"), &store) {
            let records = store.audit_records().unwrap();
            for (seq, name) in &audited {
                assert!(
                    records
                        .iter()
                        .any(|r| r.seq == *seq && r.event.actor == format!("account:{name}")),
                    "round {round}: committed audit record {seq} lost"
                );
            }
            let verdict = store.audit_verify(&key).unwrap();
            assert_eq!(
                verdict.problems,
                vec![],
                "round {round}: the chain is damaged"
            );
        }
        eprintln!(
            "round {round}: killed after {delay} ms; {} accounts, {} sessions and {} audit records committed so far, all present, the chain intact",
            accounts.len(),
            sessions.len(),
            audited.len()
        );
    }
    assert!(
        accounts.len() >= 5,
        "the writer committed too little to test anything ({} accounts)",
        accounts.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
