//! Chat and raised hands over raw WebSockets: room messages reach everyone else, private
//! messages only their addressee; nothing about chat is kept by the server.

use crate::common;

use std::time::Duration;

use common::{join_raw, start};
use conclave_load::RawSocket;
use conclave_proto::{ClientMessage, E2eeMode, ErrorCode, ParticipantId, ServerMessage};

const T: Duration = Duration::from_secs(10);

fn is_chat(m: &ServerMessage) -> bool {
    matches!(m, ServerMessage::Chat { .. })
}

/// No chat message arrives within half a second.
async fn no_chat(s: &mut RawSocket) {
    let r = s.recv_until(Duration::from_millis(500), is_chat).await;
    assert!(r.is_err(), "unexpected chat: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_chat_reaches_everyone_and_private_chat_only_its_addressee() {
    // Plain-text chat exists only where end-to-end encryption is off (e2ee.rs covers
    // the encrypted form and the refusal of `text` by default).
    let srv = start(|c| c.meeting.e2ee = E2eeMode::Off).await;
    let (mut a, a_id) = join_raw(&srv.url, "Ada").await;
    let (mut b, _) = join_raw(&srv.url, "Bob").await;
    let (mut c, c_id) = join_raw(&srv.url, "Cy").await;

    a.send(&ClientMessage::Chat {
        text: Some("hello all".into()),
        ciphertext: None,
        to: None,
    })
    .await
    .unwrap();
    for s in [&mut b, &mut c] {
        let m = s.recv_until(T, is_chat).await.unwrap();
        assert_eq!(
            m,
            ServerMessage::Chat {
                from: a_id,
                text: Some("hello all".into()),
                ciphertext: None,
                private: false
            }
        );
    }
    no_chat(&mut a).await;

    a.send(&ClientMessage::Chat {
        text: Some("just for Cy".into()),
        ciphertext: None,
        to: Some(c_id),
    })
    .await
    .unwrap();
    let m = c.recv_until(T, is_chat).await.unwrap();
    assert_eq!(
        m,
        ServerMessage::Chat {
            from: a_id,
            text: Some("just for Cy".into()),
            ciphertext: None,
            private: true
        }
    );
    no_chat(&mut b).await;

    // A private message to someone not in the room is refused.
    a.send(&ClientMessage::Chat {
        text: Some("anyone?".into()),
        ciphertext: None,
        to: Some(ParticipantId(42)),
    })
    .await
    .unwrap();
    let m = a
        .recv_until(T, |m| matches!(m, ServerMessage::Error(_)))
        .await
        .unwrap();
    assert!(matches!(m, ServerMessage::Error(e) if e.code == ErrorCode::UnknownParticipant));
    no_chat(&mut b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raised_hand_is_visible_to_the_others() {
    let srv = start(|_| {}).await;
    let (mut a, a_id) = join_raw(&srv.url, "Ada").await;
    let (mut b, _) = join_raw(&srv.url, "Bob").await;
    a.send(&ClientMessage::RaiseHand { raised: true })
        .await
        .unwrap();
    let m = b
        .recv_until(T, |m| {
            matches!(m, ServerMessage::ParticipantUpdated { participant } if participant.hand_raised)
        })
        .await
        .unwrap();
    assert!(
        matches!(m, ServerMessage::ParticipantUpdated { participant } if participant.id == a_id)
    );
}
