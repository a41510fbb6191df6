//! Moderation over the real wire: a guest's forbidden requests over a raw WebSocket, a
//! hard mute checked at the packet level with real UDP media, and every moderator learning
//! of a mute another moderator made.

use crate::common;

use std::time::Duration;

use common::{ROOM, eventually, join_raw, start};
use conclave_load::TestParticipant;
use conclave_proto::{
    ClientMessage, ErrorCode, ParticipantId, Permissions, Role, ServerMessage, Source,
};

const T: Duration = Duration::from_secs(10);

/// Every moderator action, aimed at `target` (a participant) or at the lobby.
fn every_moderator_action(target: ParticipantId) -> Vec<ClientMessage> {
    vec![
        ClientMessage::Mute {
            participant: target,
            source: Source::Microphone,
        },
        ClientMessage::MuteAll {
            source: Source::Microphone,
        },
        ClientMessage::Allow {
            participant: target,
            source: Source::Camera,
        },
        ClientMessage::Remove {
            participant: target,
            message: None,
        },
        ClientMessage::Ban {
            participant: target,
            message: None,
        },
        ClientMessage::Lock { locked: true },
        ClientMessage::EndMeeting {},
        ClientMessage::SetRole {
            participant: target,
            role: Role::Moderator,
        },
        ClientMessage::SetPassword {
            password: Some("a fine password".into()),
        },
        ClientMessage::SetLobby { enabled: true },
        ClientMessage::SetPermissions {
            role: Role::Guest,
            permissions: Permissions::ALL,
        },
        ClientMessage::Admit {
            participant: ParticipantId(1),
        },
        ClientMessage::Deny {
            participant: ParticipantId(1),
            message: None,
        },
        ClientMessage::MlsReset {},
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_gets_forbidden_for_every_moderator_action_and_nothing_changes() {
    let srv = start(|_| {}).await;
    let (mut host, _) = join_raw(&srv.url, "Host").await;
    let (mut other, other_id) = join_raw(&srv.url, "Other").await;
    let (mut g, gid) = join_raw(&srv.url, "Guest").await;
    // The host makes the third person a guest (in `hosts` mode, anyone not signed in is one).
    host.send(&ClientMessage::SetRole {
        participant: gid,
        role: Role::Guest,
    })
    .await
    .unwrap();
    let m = g
        .recv_until(T, |m| matches!(m, ServerMessage::SelfUpdated { .. }))
        .await
        .unwrap();
    assert!(
        matches!(
            m,
            ServerMessage::SelfUpdated {
                role: Role::Guest,
                ..
            }
        ),
        "{m:?}"
    );
    // Drain what everyone got so far.
    for s in [&mut host, &mut other, &mut g] {
        s.recv_until(T, |m| matches!(m, ServerMessage::ParticipantUpdated { participant } if participant.role == Role::Guest))
            .await
            .unwrap();
    }
    let before = srv.server.core_stats().await.unwrap();

    let actions = every_moderator_action(other_id);
    assert_eq!(actions.len(), conclave_room::access::ModAction::ALL.len());
    for action in actions {
        g.send(&action).await.unwrap();
        // (The raw socket never answers the server's SDP offer; skip it.)
        let m = g
            .recv_until(T, |m| !matches!(m, ServerMessage::Offer { .. }))
            .await
            .unwrap();
        match m {
            ServerMessage::Error(e) => {
                assert_eq!(e.code, ErrorCode::Forbidden, "{action:?}: {e:?}");
                assert!(e.message.contains("moderators only"), "{}", e.message);
            }
            other => panic!("{action:?}: expected forbidden, got {other:?}"),
        }
    }
    // Nothing changed: the others heard nothing, everyone is still in, and the room works.
    for s in [&mut host, &mut other] {
        let heard = s
            .recv_until(Duration::from_millis(500), |m| {
                !matches!(m, ServerMessage::Offer { .. })
            })
            .await;
        assert!(heard.is_err(), "someone was told something: {heard:?}");
    }
    assert_eq!(srv.server.core_stats().await.unwrap(), before);
    g.send(&ClientMessage::Chat {
        text: None,
        ciphertext: Some("c3RpbGwgaGVyZQ==".into()),
        to: None,
    })
    .await
    .unwrap();
    let m = host
        .recv_until(T, |m| matches!(m, ServerMessage::Chat { .. }))
        .await
        .unwrap();
    assert!(matches!(m, ServerMessage::Chat { from, .. } if from == gid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_hard_mute_the_muted_participants_rtp_is_not_forwarded() {
    let srv = start(|_| {}).await;
    let host = TestParticipant::join(&srv.url, ROOM, "Host").await.unwrap();
    let muted = TestParticipant::join(&srv.url, ROOM, "Muted")
        .await
        .unwrap();
    let listener = TestParticipant::join(&srv.url, ROOM, "Listener")
        .await
        .unwrap();
    muted.publish(Source::Microphone);
    muted.publish(Source::Camera);
    let from = |s| (muted.id, s);
    eventually("the listener hears the participant", T, || {
        listener
            .received()
            .get(&from(Source::Microphone))
            .copied()
            .unwrap_or(0)
            > 20
    })
    .await;

    host.send(ClientMessage::Mute {
        participant: muted.id,
        source: Source::Microphone,
    });
    eventually("the muted one is told", T, || {
        muted.observed().messages.iter().any(
            |m| matches!(m, ServerMessage::SelfUpdated { permissions, .. } if !permissions.unmute),
        )
    })
    .await;
    // A modified client ignores the mute: its media keeps sending audio, and it even asks
    // to publish again (refused).
    muted.send(ClientMessage::Publish {
        source: Source::Microphone,
    });
    eventually("the republish is refused", T, || {
        muted
            .observed()
            .messages
            .iter()
            .any(|m| matches!(m, ServerMessage::Error(e) if e.code == ErrorCode::Forbidden))
    })
    .await;
    // Let packets in flight arrive, then count.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let audio_before = listener
        .received()
        .get(&from(Source::Microphone))
        .copied()
        .unwrap_or(0);
    let video_before = listener
        .received()
        .get(&from(Source::Camera))
        .copied()
        .unwrap_or(0);
    let sent_before = muted.sent();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let audio_after = listener
        .received()
        .get(&from(Source::Microphone))
        .copied()
        .unwrap_or(0);
    let video_after = listener
        .received()
        .get(&from(Source::Camera))
        .copied()
        .unwrap_or(0);
    assert!(
        muted.sent() > sent_before + 50,
        "the muted client kept sending"
    );
    assert_eq!(audio_after, audio_before, "muted audio was forwarded");
    assert!(
        video_after > video_before + 20,
        "video must still flow: {video_before} -> {video_after}"
    );
    // The host lifts the mute and the participant publishes again: audio flows.
    host.send(ClientMessage::Allow {
        participant: muted.id,
        source: Source::Microphone,
    });
    eventually("allowed again", T, || {
        muted.observed().messages.iter().any(
            |m| matches!(m, ServerMessage::SelfUpdated { permissions, .. } if permissions.unmute),
        )
    })
    .await;
    muted.publish(Source::Microphone);
    eventually("audio flows again", T, || {
        listener
            .received()
            .get(&from(Source::Microphone))
            .copied()
            .unwrap_or(0)
            > audio_after + 20
    })
    .await;
}

/// A second moderator learns of a mute (and its lifting) by the first: the muted
/// participant's `participant_updated` carries `denied`, so every moderator's page can offer
/// "allow", whoever stopped the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_moderator_learns_of_a_mute_and_of_its_lifting() {
    let srv = start(|_| {}).await;
    let host = TestParticipant::join(&srv.url, ROOM, "Host").await.unwrap();
    let second = TestParticipant::join(&srv.url, ROOM, "Second")
        .await
        .unwrap();
    let muted = TestParticipant::join(&srv.url, ROOM, "Muted")
        .await
        .unwrap();
    host.send(ClientMessage::SetRole {
        participant: second.id,
        role: Role::Moderator,
    });
    eventually("the second one is a moderator", T, || {
        second.observed().messages.iter().any(
            |m| matches!(m, ServerMessage::SelfUpdated { role, .. } if *role == Role::Moderator),
        )
    })
    .await;
    let denied_seen_by_second =
        |want: &[Source]| last_denied(&second, muted.id).as_deref() == Some(want);
    host.send(ClientMessage::Mute {
        participant: muted.id,
        source: Source::Microphone,
    });
    eventually("the second moderator sees the microphone denied", T, || {
        denied_seen_by_second(&[Source::Microphone])
    })
    .await;
    host.send(ClientMessage::MuteAll {
        source: Source::Camera,
    });
    eventually("... and after mute-all the camera too", T, || {
        denied_seen_by_second(&[Source::Microphone, Source::Camera])
    })
    .await;
    // the second moderator lifts the first one's mute
    second.send(ClientMessage::Allow {
        participant: muted.id,
        source: Source::Microphone,
    });
    eventually("the host sees the microphone allowed again", T, || {
        last_denied(&host, muted.id).as_deref() == Some(&[Source::Camera][..])
    })
    .await;
}

/// The `denied` sources of `who` in the last `participant_updated` about them that `p` got.
fn last_denied(p: &TestParticipant, who: ParticipantId) -> Option<Vec<Source>> {
    p.observed().messages.iter().rev().find_map(|m| match m {
        ServerMessage::ParticipantUpdated { participant } if participant.id == who => {
            Some(participant.denied.clone())
        }
        _ => None,
    })
}

/// A page on another origin must not open a WebSocket that rides on our cookies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_from_another_origin_are_refused() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let srv = start(|_| {}).await;
    let host = srv.url.strip_prefix("https://").unwrap().to_owned();
    let tls = conclave_load::insecure_tls_config().unwrap();
    let attempt = |origin: String| {
        let tls = tls.clone();
        let url = format!("wss://{host}/ws");
        async move {
            let mut req = url.into_client_request().unwrap();
            req.headers_mut().insert("origin", origin.parse().unwrap());
            tokio_tungstenite::connect_async_tls_with_config(
                req,
                None,
                false,
                Some(tokio_tungstenite::Connector::Rustls(std::sync::Arc::new(
                    tls,
                ))),
            )
            .await
        }
    };
    match attempt("https://evil.example".into()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 403)
        }
        other => panic!("a foreign origin was let in: {:?}", other.map(|_| ())),
    }
    assert!(
        attempt(format!("https://{host}")).await.is_ok(),
        "our own origin must work"
    );
}
