//! `conclave user ...` against a real database in a temporary data directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use conclave_store::{OffsetDateTime, Store, StoreOptions};

const PW: &str = "violet tractor umbrella";

/// A fresh data directory, removed on drop.
struct DataDir(PathBuf);

impl DataDir {
    fn new(name: &str) -> DataDir {
        let d = std::env::temp_dir().join(format!("conclave-users-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        DataDir(d)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run `conclave user <args> --data-dir <dir>` with `stdin` piped in (or no stdin at all).
fn user(dir: &DataDir, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_conclave"));
    cmd.arg("user")
        .args(args)
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("CONCLAVE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        // The command may exit before reading (e.g. an unknown user); ignore a broken pipe.
        let _ = pipe.write_all(input.as_bytes());
    }
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "expected success, got {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails cleanly (exit 1, no panic) with a message containing `want`.
fn fails(out: &Output, want: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains(want), "expected {want:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn add(dir: &DataDir, name: &str, display: &str) -> Output {
    user(
        dir,
        &["add", name, "--name", display, "--password-stdin"],
        Some(&format!("{PW}\n")),
    )
}

/// The list as JSON.
fn list(dir: &DataDir) -> Vec<serde_json::Value> {
    let out = ok(&user(dir, &["list", "--json"], None));
    serde_json::from_str(&out).unwrap()
}

fn row<'a>(list: &'a [serde_json::Value], username: &str) -> &'a serde_json::Value {
    list.iter()
        .find(|u| u["username"] == username)
        .unwrap_or_else(|| panic!("{username} not in {list:?}"))
}

#[test]
fn add_then_list_shows_the_account_and_never_logged_in() {
    let dir = DataDir::new("add");
    let out = ok(&add(&dir, "Alice", "  Alice Example "));
    assert!(
        out.contains("added user alice (Alice Example, moderator)"),
        "{out}"
    );
    assert!(dir.path().join("conclave.db").exists());

    let table = ok(&user(&dir, &["list"], None));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    for col in [
        "USERNAME",
        "DISPLAY NAME",
        "STATUS",
        "CREATED",
        "LAST LOGIN",
        "EXPIRES",
    ] {
        assert!(lines[0].contains(col), "{table}");
    }
    assert!(lines[1].starts_with("alice  "), "{table}");
    assert!(lines[1].contains("Alice Example"), "{table}");
    assert!(lines[1].contains("active"), "{table}");
    assert!(lines[1].contains("never"), "{table}");

    let list = list(&dir);
    assert_eq!(list.len(), 1);
    let alice = row(&list, "alice");
    assert_eq!(alice["display_name"], "Alice Example");
    assert_eq!(alice["status"], "active");
    assert!(alice["last_login_at"].is_null());
    assert!(alice["expires_at"].is_null());
    let created = alice["created_at"].as_str().unwrap();
    let created =
        OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339).unwrap();
    assert!((OffsetDateTime::now_utc() - created).whole_minutes().abs() < 10);

    // A sign-in recorded by the server shows up as the last login.
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let login = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let acc = store.verify_login("alice", PW, login).unwrap();
    store.record_login(acc.id, login).unwrap();
    drop(store);
    let list = self::list(&dir);
    assert_eq!(row(&list, "alice")["last_login_at"], "2027-01-15T08:00:00Z");
    let table = ok(&user(&dir, &["list"], None));
    assert!(table.contains("2027-01-15T08:00:00Z"), "{table}");

    // Second add of the same name, any case.
    fails(&add(&dir, "ALICE", "Other"), "already exists");
}

#[test]
fn bad_input_is_refused_with_the_reason() {
    let dir = DataDir::new("bad");
    let try_pw = |pw: &str| {
        user(
            &dir,
            &["add", "carol", "--name", "Carol", "--password-stdin"],
            Some(&format!("{pw}\n")),
        )
    };
    fails(&try_pw("short"), "too short: at least 12 characters");
    fails(&try_pw("Password1234"), "too common");
    fails(&try_pw("qwertzuiop123"), "too common");
    fails(&try_pw(&"x".repeat(1025)), "too long: at most 1024 bytes");
    fails(&try_pw(""), "too short");
    fails(
        &user(
            &dir,
            &["add", "carol.example", "--name", "C", "--password-stdin"],
            Some("Carol.Example\n"),
        ),
        "same as the username",
    );
    fails(&add(&dir, "bad name", "X"), "username contains ' '");
    fails(&add(&dir, "dave", "   "), "display name is empty");
    fails(&add(&dir, "dave", "a\u{7}b"), "control character");
    // No terminal and no --password-stdin.
    fails(
        &user(&dir, &["add", "erin", "--name", "Erin"], None),
        "--password-stdin",
    );
    assert!(list(&dir).is_empty(), "nothing was added");
    assert_eq!(ok(&user(&dir, &["list"], None)).trim(), "no users");

    // The configured minimum applies.
    let out = {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_conclave"));
        cmd.args([
            "user",
            "add",
            "frank",
            "--name",
            "Frank",
            "--password-stdin",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("CONCLAVE_ACCOUNTS__PASSWORD_MIN_CHARS", "30")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{PW}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    fails(&out, "at least 30 characters");
}

#[test]
fn disable_enable_expire_remove_show_in_the_list() {
    let dir = DataDir::new("state");
    ok(&add(&dir, "alice", "Alice"));
    ok(&add(&dir, "bob", "Bob"));
    let status = |name: &str| row(&list(&dir), name)["status"].clone();

    let out = ok(&user(&dir, &["disable", "alice"], None));
    assert!(out.contains("disabled alice"), "{out}");
    assert_eq!(status("alice"), "disabled");
    assert_eq!(status("bob"), "active");
    ok(&user(&dir, &["enable", "Alice"], None));
    assert_eq!(status("alice"), "active");

    let out = ok(&user(&dir, &["expire", "alice"], None));
    assert!(out.contains("alice expired at"), "{out}");
    assert_eq!(status("alice"), "expired");
    let out = ok(&user(&dir, &["enable", "alice"], None));
    assert!(out.contains("still cannot sign in"), "{out}");

    ok(&user(
        &dir,
        &["expire", "alice", "--at", "2999-12-31T18:00:00+01:00"],
        None,
    ));
    let list = list(&dir);
    assert_eq!(row(&list, "alice")["status"], "active");
    assert_eq!(row(&list, "alice")["expires_at"], "2999-12-31T17:00:00Z");
    assert!(ok(&user(&dir, &["list"], None)).contains("2999-12-31T17:00:00Z"));
    ok(&user(
        &dir,
        &["expire", "alice", "--at", "2000-01-01T00:00:00Z"],
        None,
    ));
    assert_eq!(status("alice"), "expired");
    ok(&user(&dir, &["expire", "alice", "--at", "never"], None));
    assert!(row(&self::list(&dir), "alice")["expires_at"].is_null());
    fails(
        &user(&dir, &["expire", "alice", "--at", "tomorrow"], None),
        "is not a time",
    );

    // A changed password works, the old one no longer does.
    let new_pw = "another quite long passphrase";
    ok(&user(
        &dir,
        &["passwd", "alice", "--password-stdin"],
        Some(&format!("{new_pw}\n")),
    ));
    fails(
        &user(
            &dir,
            &["passwd", "alice", "--password-stdin"],
            Some("short\n"),
        ),
        "too short",
    );
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let now = OffsetDateTime::now_utc();
    assert!(store.verify_login("alice", PW, now).is_err());
    assert!(store.verify_login("alice", new_pw, now).is_ok());
    drop(store);

    let out = ok(&user(&dir, &["remove", "alice"], None));
    assert!(out.contains("removed alice"), "{out}");
    let list = self::list(&dir);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["username"], "bob");
}

#[test]
fn unknown_users_are_errors() {
    let dir = DataDir::new("unknown");
    for args in [
        &["disable", "nobody"][..],
        &["enable", "nobody"],
        &["remove", "nobody"],
        &["expire", "nobody"],
        &["expire", "nobody", "--at", "never"],
    ] {
        fails(&user(&dir, args, None), "no user \"nobody\"");
    }
    fails(
        &user(&dir, &["passwd", "nobody", "--password-stdin"], Some(PW)),
        "no user \"nobody\"",
    );
    fails(
        &user(&dir, &["disable", "no body"], None),
        "username contains",
    );
}

#[test]
fn a_broken_database_is_a_clear_error() {
    let dir = DataDir::new("broken");
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(dir.path().join("conclave.db"), vec![0x42u8; 4096]).unwrap();
    fails(&user(&dir, &["list"], None), "cannot open database");
}

#[test]
fn help_lists_every_user_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args(["user", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "add",
        "list",
        "passwd",
        "disable",
        "enable",
        "expire",
        "remove",
        "role",
        "reset-factors",
        "--data-dir",
        "--config",
    ] {
        assert!(
            text.contains(cmd),
            "{cmd} missing from user --help:\n{text}"
        );
    }
}

#[test]
fn roles_and_factor_resets_are_named_and_listed() {
    let dir = DataDir::new("roles");
    ok(&user(
        &dir,
        &[
            "add",
            "pia",
            "--name",
            "Pia",
            "--password-stdin",
            "--role",
            "member",
        ],
        Some(&format!("{PW}\n")),
    ));
    fails(
        &user(
            &dir,
            &[
                "add",
                "max",
                "--name",
                "Max",
                "--password-stdin",
                "--role",
                "admin",
            ],
            Some(&format!("{PW}\n")),
        ),
        "\"admin\"",
    );
    let l = list(&dir);
    assert_eq!(row(&l, "pia")["role"], "member");
    assert_eq!(row(&l, "pia")["totp"], false);
    assert!(
        l.iter().all(|u| u["username"] != "max"),
        "nothing added: {l:?}"
    );
    ok(&user(&dir, &["role", "pia", "moderator"], None));
    assert_eq!(row(&list(&dir), "pia")["role"], "moderator");
    fails(&user(&dir, &["role", "pia", "owner"], None), "\"owner\"");
    fails(
        &user(&dir, &["role", "nobody", "member"], None),
        "no user \"nobody\"",
    );
    let out = ok(&user(&dir, &["reset-factors", "pia"], None));
    assert!(out.contains("had no second factor"), "{out}");
    fails(
        &user(&dir, &["reset-factors", "nobody"], None),
        "no user \"nobody\"",
    );
    let table = ok(&user(&dir, &["list"], None));
    assert!(table.contains("ROLE") && table.contains("2FA"), "{table}");
}
