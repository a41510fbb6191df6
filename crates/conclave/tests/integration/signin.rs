//! Sign-in over real HTTPS with a real SQLite file: session cookie, CSRF defences, the
//! account's identity on the WebSocket, sign-out, throttled guessing, and `user list`
//! showing the last login.

use crate::common;

use std::time::Duration;

use common::{ROOM, https, start};
use conclave_proto::{ClientMessage, Role, ServerMessage};
use conclave_store::{OffsetDateTime, Store, StoreOptions};

const PASSWORD: &str = "violet staple orbit canyon";
const JSON: (&str, &str) = ("content-type", "application/json");

fn creds(user: &str, password: &str) -> String {
    serde_json::json!({"username": user, "password": password}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_joins_as_the_account_and_sign_out_ends_the_session() {
    let srv = start(|c| c.access.mode = conclave::config::AccessModeConfig::Hosts).await;
    let store = Store::open(&srv.dir, StoreOptions::default()).unwrap();
    store
        .add_account("hanna", "Hanna Host", PASSWORD, OffsetDateTime::now_utc())
        .unwrap();

    // CSRF defences: not JSON, or from another origin: refused before any password check.
    let r = https(
        &srv.url,
        "POST",
        "/api/session",
        &[("content-type", "application/x-www-form-urlencoded")],
        "username=hanna",
    )
    .await;
    assert_eq!(r.status, 415, "{r:?}");
    let r = https(
        &srv.url,
        "POST",
        "/api/session",
        &[JSON, ("origin", "https://evil.example")],
        &creds("hanna", PASSWORD),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = https(&srv.url, "POST", "/api/session", &[JSON], "{not json").await;
    assert_eq!(r.status, 400, "{r:?}");

    // Wrong password and unknown user: the same answer.
    let wrong = https(
        &srv.url,
        "POST",
        "/api/session",
        &[JSON],
        &creds("hanna", "not the password"),
    )
    .await;
    let unknown = https(
        &srv.url,
        "POST",
        "/api/session",
        &[JSON],
        &creds("nobody", PASSWORD),
    )
    .await;
    assert_eq!((wrong.status, &wrong.body), (unknown.status, &unknown.body));
    assert_eq!(wrong.status, 401);

    let r = https(
        &srv.url,
        "POST",
        "/api/session",
        &[JSON],
        &creds("hanna", PASSWORD),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let set = r
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    let cookie = r.cookie("conclave_session").unwrap();
    let me = https(&srv.url, "GET", "/api/session", &[("cookie", &cookie)], "").await;
    assert_eq!(me.status, 200);
    assert!(me.body.contains("Hanna Host"), "{}", me.body);

    // The WebSocket with the cookie is the account: a host (moderator) whose name is the
    // account's, with the "signed in" badge for others.
    let mut ws = conclave_load::connect_with_cookie(&srv.url, &cookie)
        .await
        .unwrap();
    ws.send(&ClientMessage::Join {
        v: 1,
        room: ROOM.into(),
        name: "whatever".into(),
        password: None,
        token: None,
    })
    .await
    .unwrap();
    let m = ws
        .recv_until(Duration::from_secs(10), |m| {
            matches!(m, ServerMessage::Joined { .. })
        })
        .await
        .unwrap();
    assert!(
        matches!(
            m,
            ServerMessage::Joined {
                role: Role::Moderator,
                ..
            }
        ),
        "{m:?}"
    );
    // A guest (no cookie) waits for admission in hosts mode and is shown the host's name.
    let mut guest = conclave_load::connect(&srv.url).await.unwrap();
    guest
        .send(&ClientMessage::Join {
            v: 1,
            room: ROOM.into(),
            name: "Gast".into(),
            password: None,
            token: None,
        })
        .await
        .unwrap();
    let m = guest
        .recv_until(Duration::from_secs(10), |m| {
            !matches!(m, ServerMessage::Offer { .. })
        })
        .await
        .unwrap();
    assert!(matches!(m, ServerMessage::Lobby { .. }), "{m:?}");
    let knock = ws
        .recv_until(Duration::from_secs(10), |m| {
            matches!(m, ServerMessage::Knock { .. })
        })
        .await
        .unwrap();
    let ServerMessage::Knock { knock } = knock else {
        unreachable!()
    };
    ws.send(&ClientMessage::Admit {
        participant: knock.participant,
    })
    .await
    .unwrap();
    let m = guest
        .recv_until(Duration::from_secs(10), |m| {
            matches!(m, ServerMessage::Joined { .. })
        })
        .await
        .unwrap();
    let ServerMessage::Joined {
        participants, role, ..
    } = m
    else {
        unreachable!()
    };
    assert_eq!(role, Role::Guest);
    assert_eq!(participants[0].name, "Hanna Host");
    assert!(participants[0].signed_in);

    // `conclave user list` shows the last login.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args(["user", "list", "--json", "--data-dir"])
        .arg(&srv.dir)
        .env_remove("CONCLAVE_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hanna = list
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "hanna")
        .unwrap();
    assert!(hanna["last_login_at"].is_string(), "{hanna}");

    // Sign out: the cookie is cleared and the session no longer works.
    let r = https(
        &srv.url,
        "DELETE",
        "/api/session",
        &[("cookie", &cookie)],
        "",
    )
    .await;
    assert_eq!(r.status, 204);
    assert!(
        r.headers
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let me = https(&srv.url, "GET", "/api/session", &[("cookie", &cookie)], "").await;
    assert_eq!(me.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_at_sign_in_is_throttled() {
    let srv = start(|_| {}).await;
    let store = Store::open(&srv.dir, StoreOptions::default()).unwrap();
    store
        .add_account("bob", "Bob", PASSWORD, OffsetDateTime::now_utc())
        .unwrap();
    let mut statuses = Vec::new();
    for i in 0..8 {
        let r = https(
            &srv.url,
            "POST",
            "/api/session",
            &[JSON],
            &creds("bob", &format!("guess {i}")),
        )
        .await;
        statuses.push(r.status);
        if r.status == 429 {
            assert!(r.headers.get("retry-after").is_some());
            assert!(r.body.contains("too_many_attempts"), "{}", r.body);
        }
    }
    // Five free guesses, then a wait: the sixth fails, the seventh comes too early.
    assert_eq!(&statuses[..6], &[401; 6]);
    assert_eq!(statuses[6], 429, "{statuses:?}");
    // The right password is refused too while waiting.
    let r = https(
        &srv.url,
        "POST",
        "/api/session",
        &[JSON],
        &creds("bob", PASSWORD),
    )
    .await;
    assert_eq!(r.status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_settings_tell_a_page_the_meeting_defaults_and_access_mode() {
    let srv = start(|c| {
        c.access.mode = conclave::config::AccessModeConfig::Hosts;
        c.meeting.audio_only = true;
    })
    .await;
    let r = https(&srv.url, "GET", "/api/settings", &[], "").await;
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["access_mode"], "hosts");
    assert_eq!(v["settings"]["audio_only"], true);
    assert_eq!(v["tokens"], false);
}

/// RFC 4648 base32 (no padding) to bytes.
fn unbase32(s: &str) -> Vec<u8> {
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {s}"),
        };
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Join `ROOM` over a raw WebSocket with `cookie` and return the first answer that is not an
/// offer.
async fn join_with(url: &str, cookie: &str) -> ServerMessage {
    let mut ws = conclave_load::connect_with_cookie(url, cookie)
        .await
        .unwrap();
    ws.send(&ClientMessage::Join {
        v: 1,
        room: ROOM.into(),
        name: "whoever".into(),
        password: None,
        token: None,
    })
    .await
    .unwrap();
    ws.recv_until(Duration::from_secs(10), |m| {
        !matches!(m, ServerMessage::Offer { .. })
    })
    .await
    .unwrap()
}

/// `mfa = "moderators"` over raw HTTPS and WebSockets: the password alone gives a half
/// session that joins as an anonymous guest (lobby), cannot use the code endpoint, and only
/// sets up an app; the app's code gives a new full session (the half one is dead) that joins
/// as moderator; code guessing is throttled like password guessing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_session_is_no_account_until_the_second_factor() {
    let srv = start(|c| {
        c.access.mode = conclave::config::AccessModeConfig::Hosts;
        c.accounts.mfa = conclave::config::MfaPolicy::Moderators;
    })
    .await;
    let store = Store::open(&srv.dir, StoreOptions::default()).unwrap();
    store
        .add_account("hanna", "Hanna Host", PASSWORD, OffsetDateTime::now_utc())
        .unwrap();
    let post = |path: &'static str, cookie: String, body: String| {
        let url = srv.url.clone();
        async move { https(&url, "POST", path, &[JSON, ("cookie", &cookie)], &body).await }
    };

    let r = https(
        &srv.url,
        "POST",
        "/api/session",
        &[JSON],
        &creds("hanna", PASSWORD),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("\"next\":\"enrol\""), "{}", r.body);
    assert!(
        r.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=600"),
        "{r:?}"
    );
    let half = r.cookie("conclave_session").unwrap();
    let me = https(&srv.url, "GET", "/api/session", &[("cookie", &half)], "").await;
    assert_eq!(me.status, 401);
    assert!(me.body.contains("\"next\":\"enrol\""), "{}", me.body);
    // The half session is nobody on the WebSocket: a guest who waits.
    let m = join_with(&srv.url, &half).await;
    assert!(matches!(m, ServerMessage::Lobby { .. }), "{m:?}");
    // It cannot skip the set-up through the code endpoint.
    let r = post(
        "/api/session/second-factor",
        half.clone(),
        r#"{"code":"123456"}"#.into(),
    )
    .await;
    assert_eq!(r.status, 409, "{r:?}");
    // Set-up from another origin is refused; from ours it gives the secret.
    let r = https(
        &srv.url,
        "POST",
        "/api/account/totp",
        &[JSON, ("cookie", &half), ("origin", "https://evil.example")],
        "{}",
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = post("/api/account/totp", half.clone(), "{}".into()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let secret = unbase32(v["secret"].as_str().unwrap());
    assert_eq!(secret.len(), 20);
    let code_at = |offset: i64| {
        let t = OffsetDateTime::now_utc() + time::Duration::seconds(offset);
        format!(
            "{:06}",
            conclave_store::hotp(&secret, conclave_store::totp_step(t) as u64, 6)
        )
    };
    let r = post(
        "/api/account/totp/confirm",
        half.clone(),
        serde_json::json!({"code": code_at(0)}).to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["recovery_codes"].as_array().unwrap().len(), 10);
    let full = r.cookie("conclave_session").unwrap();
    assert_ne!(full, half);
    let me = https(&srv.url, "GET", "/api/session", &[("cookie", &half)], "").await;
    assert!(
        me.body.contains("signed_out"),
        "the half token is dead: {me:?}"
    );
    let m = join_with(&srv.url, &full).await;
    assert!(
        matches!(
            m,
            ServerMessage::Joined {
                role: Role::Moderator,
                ..
            }
        ),
        "{m:?}"
    );
    // No second app; and the policy keeps this one.
    let r = post("/api/account/totp", full.clone(), "{}".into()).await;
    assert_eq!(r.status, 409, "{r:?}");
    let r = https(
        &srv.url,
        "DELETE",
        "/api/account/totp",
        &[JSON, ("cookie", &full)],
        &serde_json::json!({"code": code_at(30)}).to_string(),
    )
    .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("mfa_required"), "{}", r.body);

    // The next sign-in waits for a code; guessing it is throttled as passwords are.
    let r = https(
        &srv.url,
        "POST",
        "/api/session",
        &[JSON],
        &creds("hanna", PASSWORD),
    )
    .await;
    assert!(r.body.contains("\"next\":\"second_factor\""), "{}", r.body);
    let half = r.cookie("conclave_session").unwrap();
    // Wrong for sure: none of the codes of the window (a step either side, with room for a
    // step change during the test).
    let window: Vec<String> = [-60, -30, 0, 30, 60].map(code_at).to_vec();
    let guesses = (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .filter(|g| !window.contains(g));
    let mut statuses = Vec::new();
    for guess in guesses.take(7) {
        let r = post(
            "/api/session/second-factor",
            half.clone(),
            serde_json::json!({ "code": guess }).to_string(),
        )
        .await;
        statuses.push(r.status);
    }
    assert_eq!(&statuses[..6], &[401; 6], "{statuses:?}");
    assert_eq!(statuses[6], 429, "{statuses:?}");
    // Malformed bodies are named, not guessed.
    let r = post(
        "/api/session/second-factor",
        half,
        r#"{"code":"1","recovery_code":"2"}"#.into(),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
}

/// `POST /api/account/identity`: the server binds a signed-in account to an account key, with
/// a signature anyone can check against `/api/settings`' `identity_key`; every other request
/// is refused before anything is signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_binds_an_account_key_only_for_a_signed_in_account() {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let srv = start(|_| {}).await;
    let store = Store::open(&srv.dir, StoreOptions::default()).unwrap();
    store
        .add_account("hanna", "Hanna Host", PASSWORD, OffsetDateTime::now_utc())
        .unwrap();
    let settings: serde_json::Value =
        serde_json::from_str(&https(&srv.url, "GET", "/api/settings", &[], "").await.body).unwrap();
    let server_key = B64
        .decode(settings["identity_key"].as_str().unwrap())
        .unwrap();
    assert_eq!(server_key.len(), 32);
    let key = B64.encode([7u8; 32]);
    let body = serde_json::json!({ "key": key }).to_string();

    let r = https(&srv.url, "POST", "/api/account/identity", &[JSON], &body).await;
    assert_eq!(r.status, 401, "no session: {r:?}");
    let r = https(
        &srv.url,
        "POST",
        "/api/session",
        &[JSON],
        &creds("hanna", PASSWORD),
    )
    .await;
    let cookie = r.cookie("conclave_session").unwrap();
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut h = vec![JSON, ("cookie", cookie.as_str())];
        h.extend_from_slice(extra);
        h
    };
    let r = https(
        &srv.url,
        "POST",
        "/api/account/identity",
        &with(&[("origin", "https://evil.example")]),
        &body,
    )
    .await;
    assert_eq!(r.status, 403, "another origin: {r:?}");
    for (bad, code) in [
        ("not json".to_owned(), "bad_request"),
        ("{}".to_owned(), "bad_request"),
        (
            serde_json::json!({"key": key, "extra": 1}).to_string(),
            "bad_request",
        ),
        (
            serde_json::json!({"key": B64.encode([7u8; 31])}).to_string(),
            "bad_key",
        ),
        (serde_json::json!({"key": "a+b/"}).to_string(), "bad_key"),
    ] {
        let r = https(&srv.url, "POST", "/api/account/identity", &with(&[]), &bad).await;
        assert_eq!(r.status, 400, "{bad}: {r:?}");
        assert!(r.body.contains(code), "{bad}: {}", r.body);
    }

    let r = https(&srv.url, "POST", "/api/account/identity", &with(&[]), &body).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let payload = B64.decode(v["payload"].as_str().unwrap()).unwrap();
    let sig = B64.decode(v["sig"].as_str().unwrap()).unwrap();
    // What web/e2ee/binding.js checks: Ed25519 over two length-prefixed fields.
    let mut msg = Vec::new();
    for f in [&b"conclave-binding-v1"[..], &payload] {
        msg.extend_from_slice(&(f.len() as u32).to_be_bytes());
        msg.extend_from_slice(f);
    }
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &server_key)
        .verify(&msg, &sig)
        .expect("the binding verifies with the published key");
    let b: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let id = store.account("hanna").unwrap().unwrap().id.0;
    assert_eq!(b["v"], 1);
    assert_eq!(b["account"], id);
    assert_eq!(b["username"], "hanna");
    assert_eq!(b["name"], "Hanna Host");
    assert_eq!(b["source"], "local");
    assert_eq!(b["key"], key.as_str());
    assert_eq!(b["origin"], srv.url.as_str());
    assert_eq!(
        b["exp"].as_i64().unwrap() - b["iat"].as_i64().unwrap(),
        24 * 3600
    );
    // The key file is private and stays the key across restarts.
    let path = srv.dir.join(conclave::identity::IDENTITY_KEY_FILE);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = conclave::identity::BindingKey::load_or_create(&path).unwrap();
    assert_eq!(
        again.public_b64(),
        settings["identity_key"].as_str().unwrap()
    );
    std::fs::write(&path, b"not a key").unwrap();
    let e = conclave::identity::BindingKey::load_or_create(&path)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("is not an Ed25519 PKCS#8 key"), "{e}");
}
