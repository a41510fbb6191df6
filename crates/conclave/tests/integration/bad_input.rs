//! Hostile and broken input over a raw WebSocket: each gets its documented error code, the
//! connection is handled on purpose, and a meeting on the same server carries on.

use crate::common;

use std::time::Duration;

use common::{ROOM, TestServer, eventually, start};
use conclave_load::{RawSocket, TestParticipant, connect};
use conclave_proto::{ClientMessage, ErrorCode, ServerMessage, Source};

const T: Duration = Duration::from_secs(10);

/// A two-person meeting that must keep going while someone misbehaves.
struct Meeting {
    a: TestParticipant,
    b: TestParticipant,
}

impl Meeting {
    async fn start(srv: &TestServer) -> Meeting {
        let a = TestParticipant::join(&srv.url, ROOM, "A").await.unwrap();
        let b = TestParticipant::join(&srv.url, ROOM, "B").await.unwrap();
        for p in [&a, &b] {
            p.publish(Source::Microphone);
            p.publish(Source::Camera);
        }
        let m = Meeting { a, b };
        m.assert_flowing().await;
        m
    }

    /// Both keep receiving each other's media.
    async fn assert_flowing(&self) {
        for (p, q) in [(&self.a, &self.b), (&self.b, &self.a)] {
            let key = (q.id, Source::Camera);
            let base = p.received().get(&key).copied().unwrap_or(0);
            eventually("media keeps flowing", T, || {
                p.received().get(&key).copied().unwrap_or(0) > base + 10
            })
            .await;
        }
    }
}

async fn expect_error(sock: &mut RawSocket, code: ErrorCode) -> String {
    match sock.recv_timeout(T).await.unwrap() {
        ServerMessage::Error(e) => {
            assert_eq!(e.code, code, "{}", e.message);
            assert!(!e.message.is_empty());
            e.message
        }
        other => panic!("expected error {code:?}, got {other:?}"),
    }
}

/// The socket is still usable: a join on it succeeds.
async fn assert_still_open_and_can_join(sock: &mut RawSocket) {
    sock.send(&ClientMessage::Join {
        v: 1,
        room: "anotherroom-0000001".into(),
        name: "Recovered".into(),
        password: None,
        token: None,
    })
    .await
    .unwrap();
    let m = sock.recv_timeout(T).await.unwrap();
    assert!(matches!(m, ServerMessage::Joined { .. }), "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_answered_and_the_connection_stays() {
    let srv = start(|_| {}).await;
    let meeting = Meeting::start(&srv).await;
    let mut s = connect(&srv.url).await.unwrap();
    for garbage in ["{not json", "", "[]", "42", "\"join\""] {
        s.send_text(garbage).await.unwrap();
        expect_error(&mut s, ErrorCode::BadJson).await;
    }
    s.send_text(r#"{"type":"join","v":1}"#).await.unwrap();
    expect_error(&mut s, ErrorCode::BadMessage).await;
    s.send_binary(vec![0, 1, 2]).await.unwrap();
    expect_error(&mut s, ErrorCode::BinaryFrame).await;
    assert_still_open_and_can_join(&mut s).await;
    meeting.assert_flowing().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_message_types_are_named() {
    let srv = start(|_| {}).await;
    let meeting = Meeting::start(&srv).await;
    let mut s = connect(&srv.url).await.unwrap();
    s.send_text(r#"{"type":"become_admin"}"#).await.unwrap();
    let msg = expect_error(&mut s, ErrorCode::UnknownType).await;
    assert!(msg.contains("become_admin"), "{msg}");
    assert_still_open_and_can_join(&mut s).await;
    meeting.assert_flowing().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_close_the_connection() {
    let srv = start(|c| c.limits.max_message_bytes = 32768).await;
    let meeting = Meeting::start(&srv).await;
    let mut s = connect(&srv.url).await.unwrap();
    let big = format!(
        r#"{{"type":"join","v":1,"room":"{ROOM}","name":"{}"}}"#,
        "x".repeat(40_000)
    );
    s.send_text(&big).await.unwrap();
    let msg = expect_error(&mut s, ErrorCode::MessageTooLarge).await;
    assert!(msg.contains("32768"), "{msg}");
    assert!(s.closed_within(T).await, "connection should be closed");
    // Just under the limit is fine.
    let mut s2 = connect(&srv.url).await.unwrap();
    s2.send_text(&format!(
        r#"{{"type":"leave","pad":"{}"}}"#,
        "y".repeat(30_000)
    ))
    .await
    .unwrap();
    expect_error(&mut s2, ErrorCode::BadMessage).await;
    meeting.assert_flowing().await;
    let stats = srv.server.core_stats().await.unwrap();
    assert_eq!(stats.participants, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_before_join_are_refused() {
    let srv = start(|_| {}).await;
    let meeting = Meeting::start(&srv).await;
    let mut s = connect(&srv.url).await.unwrap();
    for m in [
        ClientMessage::Answer { sdp: "v=0".into() },
        ClientMessage::Publish {
            source: Source::Camera,
        },
        ClientMessage::Unpublish {
            source: Source::Camera,
        },
        ClientMessage::Leave {},
    ] {
        s.send(&m).await.unwrap();
        expect_error(&mut s, ErrorCode::NotJoined).await;
    }
    assert_still_open_and_can_join(&mut s).await;
    meeting.assert_flowing().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdp_garbage_is_refused_without_breaking_the_session() {
    let srv = start(|_| {}).await;
    let meeting = Meeting::start(&srv).await;
    let mut s = connect(&srv.url).await.unwrap();
    s.send(&ClientMessage::Join {
        v: 1,
        room: ROOM.into(),
        name: "Garbage".into(),
        password: None,
        token: None,
    })
    .await
    .unwrap();
    s.recv_until(T, |m| matches!(m, ServerMessage::Offer { .. }))
        .await
        .unwrap();
    for sdp in ["", "v=0\r\nthis is not sdp", &"a=x\r\n".repeat(1000)] {
        s.send(&ClientMessage::Answer { sdp: sdp.into() })
            .await
            .unwrap();
        let m = s
            .recv_until(T, |m| matches!(m, ServerMessage::Error(_)))
            .await
            .unwrap();
        let ServerMessage::Error(e) = m else {
            unreachable!()
        };
        assert_eq!(e.code, ErrorCode::InvalidSdp, "{}", e.message);
    }
    // The participant is still in the room: the others see it.
    eventually("garbage participant listed", T, || {
        meeting.a.observed().others.len() == 2
    })
    .await;
    meeting.assert_flowing().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_are_rate_limited() {
    let srv = start(|c| {
        c.limits.messages_per_second = 5.0;
        c.limits.message_burst = 5.0;
    })
    .await;
    let meeting = Meeting::start(&srv).await;
    let mut s = connect(&srv.url).await.unwrap();
    for _ in 0..50 {
        s.send_text(r#"{"type":"nonsense"}"#).await.unwrap();
    }
    let mut codes = Vec::new();
    while let Ok(Ok(Some(ServerMessage::Error(e)))) =
        tokio::time::timeout(Duration::from_millis(500), s.recv()).await
    {
        codes.push(e.code);
    }
    let unknown = codes
        .iter()
        .filter(|c| **c == ErrorCode::UnknownType)
        .count();
    let limited = codes
        .iter()
        .filter(|c| **c == ErrorCode::RateLimited)
        .count();
    assert!(unknown <= 6, "{codes:?}");
    assert!(limited >= 1, "{codes:?}");
    meeting.assert_flowing().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_receive_video_messages_are_refused_by_name() {
    let srv = start(|_| {}).await;
    let meeting = Meeting::start(&srv).await;
    let mut s = connect(&srv.url).await.unwrap();
    // Before join: not joined.
    s.send_text(r#"{"type":"receive_video","enabled":false}"#)
        .await
        .unwrap();
    expect_error(&mut s, ErrorCode::NotJoined).await;
    s.send(&ClientMessage::Join {
        v: 1,
        room: ROOM.into(),
        name: "Picky".into(),
        password: None,
        token: None,
    })
    .await
    .unwrap();
    s.recv_until(T, |m| matches!(m, ServerMessage::Joined { .. }))
        .await
        .unwrap();
    for bad in [
        r#"{"type":"receive_video"}"#,
        r#"{"type":"receive_video","enabled":"false"}"#,
        r#"{"type":"receive_video","enabled":0}"#,
        r#"{"type":"receive_video","enabled":null}"#,
        r#"{"type":"receive_video","enabled":[true]}"#,
        r#"{"type":"receive_video","enabled":true,"camera":false}"#,
    ] {
        s.send_text(bad).await.unwrap();
        let m = s
            .recv_until(T, |m| matches!(m, ServerMessage::Error(_)))
            .await
            .unwrap();
        let ServerMessage::Error(e) = m else {
            unreachable!()
        };
        assert_eq!(e.code, ErrorCode::BadMessage, "{bad}: {}", e.message);
        assert!(e.message.contains("receive_video"), "{bad}: {}", e.message);
    }
    // Still in the room, and a correct message is taken without complaint.
    s.send_text(r#"{"type":"receive_video","enabled":false}"#)
        .await
        .unwrap();
    s.send_text(r#"{"type":"raise_hand","raised":true}"#)
        .await
        .unwrap();
    let m = s
        .recv_until(T, |m| {
            matches!(
                m,
                ServerMessage::Error(_) | ServerMessage::ParticipantUpdated { .. }
            )
        })
        .await
        .unwrap();
    assert!(
        matches!(m, ServerMessage::ParticipantUpdated { .. }),
        "{m:?}"
    );
    meeting.assert_flowing().await;
}
