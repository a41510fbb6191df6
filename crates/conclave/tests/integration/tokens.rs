//! Invitation tokens end to end: a real server with `[tokens]` on, tokens minted with the
//! configured secret, joins over a raw WebSocket; and the `conclave token` command.

use crate::common;

use std::time::{Duration, SystemTime};

use common::{ROOM, start};
use conclave::config::Config;
use conclave_load::connect;
use conclave_proto::{ClientMessage, ErrorCode, LeaveReason, Role, ServerMessage};
use conclave_token::{MintRequest, Secret, TokenConfig, mint};

const T: Duration = Duration::from_secs(10);
const SECRET: &str = "0123456789abcdef0123456789abcdef-test-only";

fn token_config(enforce_expiry: bool) -> TokenConfig {
    TokenConfig {
        enabled: true,
        secret: Some(Secret(SECRET.into())),
        audience: vec!["conclave".into()],
        issuer: vec!["test-issuer".into()],
        leeway_secs: 0,
        enforce_expiry_during_meeting: enforce_expiry,
        ..TokenConfig::default()
    }
}

fn token(room: &str, name: &str, moderator: bool, ttl: Duration) -> String {
    token_with(room, name, moderator, moderator, ttl)
}

fn token_with(
    room: &str,
    name: &str,
    moderator: bool,
    lobby_bypass: bool,
    ttl: Duration,
) -> String {
    mint(
        &token_config(false),
        &MintRequest {
            room: room.into(),
            name: name.into(),
            user_id: None,
            subject: None,
            email: None,
            moderator,
            lobby_bypass,
            ttl,
        },
        SystemTime::now(),
    )
    .unwrap()
}

async fn join_with(
    url: &str,
    name: &str,
    token: Option<String>,
) -> (conclave_load::RawSocket, ServerMessage) {
    let mut s = connect(url).await.unwrap();
    s.send(&ClientMessage::Join {
        v: 1,
        room: ROOM.into(),
        name: name.into(),
        password: None,
        token,
    })
    .await
    .unwrap();
    let m = s
        .recv_until(T, |m| !matches!(m, ServerMessage::Offer { .. }))
        .await
        .unwrap();
    (s, m)
}

fn set_tokens(enforce: bool) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        c.tokens = token_config(enforce);
        c.access.mode = conclave::config::AccessModeConfig::Closed;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_joins_as_the_named_user_and_bad_tokens_are_refused() {
    let srv = start(set_tokens(false)).await;
    // Closed mode: without a token, no entry.
    let (_s, m) = join_with(&srv.url, "Nobody", None).await;
    assert!(
        matches!(&m, ServerMessage::Error(e) if e.code == ErrorCode::SignInRequired),
        "{m:?}"
    );

    let (_host, m) = join_with(
        &srv.url,
        "ignored",
        Some(token(ROOM, "Hanna Host", true, Duration::from_secs(3600))),
    )
    .await;
    match m {
        ServerMessage::Joined { role, id, .. } => {
            assert_eq!(role, Role::Moderator);
            // A token holder without lobby_bypass knocks (the lobby is on for new rooms in
            // closed mode); with it, walks in.
            let (_w, m) = join_with(
                &srv.url,
                "w",
                Some(token_with(
                    ROOM,
                    "Wanda",
                    false,
                    false,
                    Duration::from_secs(3600),
                )),
            )
            .await;
            assert!(matches!(m, ServerMessage::Lobby { .. }), "{m:?}");
            let (_p, m) = join_with(
                &srv.url,
                "also ignored",
                Some(token_with(
                    ROOM,
                    "Paul",
                    false,
                    true,
                    Duration::from_secs(3600),
                )),
            )
            .await;
            let ServerMessage::Joined {
                participants, role, ..
            } = m
            else {
                panic!("{m:?}")
            };
            assert_eq!(role, Role::Participant);
            // The others see the token's name, with the "signed in" badge.
            assert_eq!(participants.len(), 1);
            assert_eq!(participants[0].id, id);
            assert_eq!(participants[0].name, "Hanna Host");
            assert!(participants[0].signed_in);
        }
        other => panic!("{other:?}"),
    }

    let other_room = token("anotherroomanother", "Eve", true, Duration::from_secs(3600));
    let forged = {
        let t = token(ROOM, "Eve", true, Duration::from_secs(3600));
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        parts[2] = parts[2].chars().rev().collect();
        parts.join(".")
    };
    for (bad, says) in [
        (other_room, "room"),
        (forged, "signature"),
        ("not a token".to_owned(), ""),
    ] {
        let (_s, m) = join_with(&srv.url, "Eve", Some(bad)).await;
        match m {
            ServerMessage::Error(e) => {
                assert_eq!(e.code, ErrorCode::InvalidToken);
                assert!(e.message.contains(says), "{}", e.message);
            }
            other => panic!("expected invalid_token, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_ends_the_session_when_enforced() {
    let srv = start(set_tokens(true)).await;
    let (mut s, m) = join_with(
        &srv.url,
        "x",
        Some(token(ROOM, "Short", true, Duration::from_secs(2))),
    )
    .await;
    assert!(matches!(m, ServerMessage::Joined { .. }), "{m:?}");
    let m = s
        .recv_until(T, |m| matches!(m, ServerMessage::Bye { .. }))
        .await
        .unwrap();
    assert!(
        matches!(&m, ServerMessage::Bye { reason: LeaveReason::Removed, message: Some(t) } if t.contains("expired")),
        "{m:?}"
    );
    assert!(s.closed_within(T).await);
}

#[test]
fn the_token_command_prints_an_invite_link() {
    let dir = std::env::temp_dir().join(format!("conclave-token-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "public_url = \"https://meet.example.org\"\n[tokens]\nenabled = true\nsecret_file = \"{}\"\naudience = \"conclave\"\nissuer = \"test-issuer\"\n",
            secret.display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
            .arg("token")
            .arg("--config")
            .arg(&cfg)
            .args(args)
            .env_remove("CONCLAVE_CONFIG")
            .output()
            .unwrap()
    };
    let out = run(&[
        "--room",
        ROOM,
        "--name",
        "Ada",
        "--moderator",
        "--ttl",
        "1h",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = String::from_utf8(out.stdout).unwrap();
    let prefix = format!("https://meet.example.org/r/{ROOM}?jwt=");
    assert!(link.trim().starts_with(&prefix), "{link}");
    // The token in it verifies with the same configuration and names Ada as moderator.
    let verifier = conclave_token::TokenVerifier::from_config(&token_config(false)).unwrap();
    let id = verifier
        .verify(
            link.trim().strip_prefix(&prefix).unwrap(),
            SystemTime::now(),
        )
        .unwrap();
    assert_eq!(id.name.as_deref(), Some("Ada"));
    assert!(id.moderator);
    // Bad input: a clear error, non-zero exit.
    for (args, says) in [
        (vec!["--room", "short", "--name", "Ada"], "room"),
        (vec!["--room", ROOM, "--name", "Ada", "--ttl", "1w"], "unit"),
    ] {
        let out = run(&args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
