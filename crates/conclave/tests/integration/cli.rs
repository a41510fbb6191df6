//! The `conclave` binary itself: embedded defaults, the ready line, config errors, help.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_conclave"))
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("conclave-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn serve_prints_the_url_and_creates_data_dir_and_certificate() {
    let dir = tmp("serve");
    let mut child = bin()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--media-port",
            "0",
            "--data-dir",
        ])
        .arg(&dir)
        .env("CONCLAVE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("a ready line within 20 s");
    assert!(line.contains("listening on https://127.0.0.1:"), "{line}");
    let port: u16 = line
        .split("https://127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|p| p.parse().ok())
        .expect("a port in the ready line");
    assert_ne!(port, 0);
    assert!(dir.join("tls/self-signed-cert.pem").exists());
    assert!(dir.join("tls/self-signed-key.pem").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_config_keys_are_named_and_refused() {
    let dir = tmp("badcfg");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("c.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nmedia_prot = 5\n").unwrap();
    let start = Instant::now();
    let out = bin()
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(start.elapsed() < Duration::from_secs(20));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("media_prot"), "{err}");

    let out = bin()
        .args(["serve"])
        .env("CONCLAVE_LIMITS__MAX_ROOMZ", "3")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_roomz"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_describes_every_flag() {
    let out = bin().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("serve"), "{text}");
    let out = bin().args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--listen",
        "--data-dir",
        "--media-port",
        "--media-bind-ip",
        "--media-threads",
        "--public-ip",
        "--participant-timeout-secs",
        "--log",
    ] {
        assert!(text.contains(flag), "{flag} missing from serve --help");
    }
}

#[test]
fn config_example_prints_the_documented_file() {
    let out = bin().arg("config-example").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[limits]") && text.contains("max_message_bytes"));
}

#[test]
fn config_check_exit_codes_are_ok_warnings_errors() {
    let dir = tmp("check");
    std::fs::create_dir_all(&dir).unwrap();
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conclave.example.toml");
    let packaged =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/conclave.toml");
    let loose = dir.join("loose.toml");
    std::fs::write(&loose, "[meeting]\ne2ee = \"off\"\n").unwrap();
    let wrong = dir.join("wrong.toml");
    std::fs::write(&wrong, "[limits]\nmax_roomz = 5\n").unwrap();
    let cases = [
        (example.as_path(), 0, "ok"),
        // The package cannot know the domain: the certificate is the one thing to set.
        (packaged.as_path(), 1, "warning: tls:"),
        (loose.as_path(), 1, "meeting.e2ee"),
        (wrong.as_path(), 2, "did you mean limits.max_rooms"),
    ];
    for (file, code, text) in cases {
        let out = bin()
            .args(["config", "check", "--config"])
            .arg(file)
            .env_remove("CONCLAVE_CONFIG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}: {stdout}",
            file.display()
        );
        assert!(stdout.contains(text), "{}: {stdout}", file.display());
    }
    let out = bin()
        .args(["config", "check", "--since", "0.1.0", "--config"])
        .arg(&example)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("notice: tls.acme: new in 0.2.0"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The record settings and commands refuse bad input with an error that names it, and
/// change nothing: a retention of 0 (which would delete every row at once), a time that is
/// not RFC 3339, a pseudonym mode that does not exist, a metrics key that is too short.
#[test]
fn record_settings_and_commands_name_bad_input() {
    let dir = tmp("badrecords");
    std::fs::create_dir_all(&dir).unwrap();
    let refused = |toml: &str, want: &str| {
        let cfg = dir.join("c.toml");
        std::fs::write(&cfg, format!("data_dir = {:?}\n{toml}", dir.join("data"))).unwrap();
        let out = bin()
            .args(["serve", "--config"])
            .arg(&cfg)
            .env_remove("CONCLAVE_CONFIG")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{toml}: started");
        assert!(err.contains(want), "{toml}: {err}");
        // Settings and key-file errors are refused before anything is written or bound
        // (so a port in use elsewhere cannot hide them).
        assert!(
            !dir.join("data").exists(),
            "{toml}: the data dir was created"
        );
    };
    refused("[privacy]\nretention_days = 0\n", "privacy.retention_days");
    refused("[audit]\nretention_days = 0\n", "audit.retention_days");
    refused("[privacy]\npseudonymise_addresses = \"rot13\"\n", "rot13");
    let short = dir.join("short.key");
    std::fs::write(&short, "abc\n").unwrap();
    refused(
        &format!("[metrics]\nkey_file = {short:?}\n"),
        "metrics.key_file",
    );

    for args in [
        &["connections", "list", "--since", "yesterday"][..],
        &["audit-log", "export", "--since", "2026-13-01"][..],
    ] {
        let out = bin()
            .args(args)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env_remove("CONCLAVE_CONFIG")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains("RFC 3339"), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
