//! The admin REST API for room reservations over real HTTPS, with the room core closing the
//! reserved room at the end of its window.

use crate::common;

use std::time::Duration;

use common::{ROOM, https, start};
use conclave_load::connect;
use conclave_proto::{ClientMessage, ErrorCode, LeaveReason, ServerMessage};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const KEY: &str = "test-admin-key-0123456789abcdef-0123";

fn at(offset_secs: i64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::seconds(offset_secs))
        .format(&Rfc3339)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_is_off_without_a_key() {
    let srv = start(|_| {}).await;
    let r = https(
        &srv.url,
        "GET",
        "/api/rooms",
        &[("authorization", &format!("Bearer {KEY}"))],
        "",
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("api_off"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_room_takes_its_settings_and_closes_itself() {
    let key_dir = std::env::temp_dir().join(format!("conclave-api-key-{}", std::process::id()));
    std::fs::create_dir_all(&key_dir).unwrap();
    let key_file = key_dir.join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let kf = key_file.clone();
    let srv = start(move |c| c.api.admin_key_file = Some(kf)).await;
    let auth = format!("Bearer {KEY}");
    let h = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];

    let wrong = https(
        &srv.url,
        "GET",
        "/api/rooms",
        &[("authorization", "Bearer nope")],
        "",
    )
    .await;
    assert_eq!(wrong.status, 401);
    for (body, says) in [
        (
            serde_json::json!({"owner":"ada","opens_at":"yesterday","closes_at":at(60)}),
            "opens_at",
        ),
        (
            serde_json::json!({"owner":"ada","opens_at":at(60),"closes_at":at(30)}),
            "after",
        ),
        (
            serde_json::json!({"room":"bad room","owner":"ada","opens_at":at(0),"closes_at":at(60)}),
            "room",
        ),
        (
            serde_json::json!({"owner":"","opens_at":at(0),"closes_at":at(60)}),
            "owner",
        ),
        (
            serde_json::json!({"owner":"ada","opens_at":at(0),"closes_at":at(60),"extra":1}),
            "unknown field",
        ),
    ] {
        let r = https(&srv.url, "POST", "/api/rooms", &h, &body.to_string()).await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert!(r.body.contains(says), "{body}: {}", r.body);
    }

    let body = serde_json::json!({
        "room": ROOM, "owner": "ada", "opens_at": at(-5), "closes_at": at(4),
        "password": "reserved pass", "lobby": false,
    });
    let r = https(&srv.url, "POST", "/api/rooms", &h, &body.to_string()).await;
    assert_eq!(r.status, 201, "{r:?}");
    let created: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(created["link"], format!("{}/r/{ROOM}", srv.url));
    assert_eq!(created["password_set"], true);
    assert!(
        !r.body.contains("reserved pass"),
        "the password is never echoed"
    );
    let dup = https(&srv.url, "POST", "/api/rooms", &h, &body.to_string()).await;
    assert_eq!(dup.status, 409);
    let list = https(&srv.url, "GET", "/api/rooms", &h, "").await;
    assert!(list.body.contains(ROOM), "{}", list.body);

    // The room has the reservation's password; with it, people get in.
    let join = |password: Option<&str>| ClientMessage::Join {
        v: 1,
        room: ROOM.into(),
        name: "Ada".into(),
        password: password.map(str::to_owned),
        token: None,
    };
    let mut s = connect(&srv.url).await.unwrap();
    s.send(&join(None)).await.unwrap();
    let m = s.recv_timeout(Duration::from_secs(5)).await.unwrap();
    // The first person in an open-mode room moderates it, and moderators need no password.
    assert!(matches!(m, ServerMessage::Joined { .. }), "{m:?}");
    let mut g = connect(&srv.url).await.unwrap();
    g.send(&join(None)).await.unwrap();
    let m = g.recv_timeout(Duration::from_secs(5)).await.unwrap();
    assert!(
        matches!(&m, ServerMessage::Error(e) if e.code == ErrorCode::PasswordRequired),
        "{m:?}"
    );
    g.send(&join(Some("reserved pass"))).await.unwrap();
    let m = g
        .recv_until(Duration::from_secs(5), |m| {
            !matches!(m, ServerMessage::Offer { .. })
        })
        .await
        .unwrap();
    assert!(matches!(m, ServerMessage::Joined { .. }), "{m:?}");

    // At the end of the window everyone is told the meeting ended.
    for sock in [&mut s, &mut g] {
        let m = sock
            .recv_until(Duration::from_secs(15), |m| {
                matches!(m, ServerMessage::Bye { .. })
            })
            .await
            .unwrap();
        assert!(
            matches!(
                m,
                ServerMessage::Bye {
                    reason: LeaveReason::Ended,
                    ..
                }
            ),
            "{m:?}"
        );
    }
    let r = https(&srv.url, "DELETE", &format!("/api/rooms/{ROOM}"), &h, "").await;
    assert_eq!(r.status, 204);
    let r = https(&srv.url, "DELETE", &format!("/api/rooms/{ROOM}"), &h, "").await;
    assert_eq!(r.status, 404);
    let _ = std::fs::remove_dir_all(&key_dir);
}
