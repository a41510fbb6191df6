//! The server as the MLS delivery service, over raw WebSockets: it orders commits (one per
//! epoch, first come wins), keeps the latest GroupInfo for newcomers, relays encrypted chat
//! verbatim, and refuses what would weaken end-to-end encryption (plain-text chat, H.264).
//! A moderator can reset the group (`mls_reset`); messages for the old group are refused.
//! The MLS content itself is opaque here: the browser tests and tests/web check the crypto.

use crate::common;

use std::time::Duration;

use common::{ROOM, join_raw_message, start};
use conclave_load::RawSocket;
use conclave_proto::{ClientMessage, E2eeMode, E2eeState, ErrorCode, ParticipantId, ServerMessage};

const T: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(400);

/// Join `ROOM` as `name`; the socket, the participant ID and `joined.e2ee`.
async fn join(url: &str, name: &str) -> (RawSocket, ParticipantId, E2eeState) {
    match join_raw_message(url, name).await {
        (s, ServerMessage::Joined { id, e2ee, .. }) => (s, id, e2ee),
        (_, m) => panic!("expected joined, got {m:?}"),
    }
}

/// Create the room's group (GroupInfo "R0kw", base64 of "GI0") and see it accepted at epoch 0.
async fn create_group(s: &mut RawSocket) {
    s.send(&ClientMessage::MlsGroup {
        group_info: "R0kw".into(),
        generation: 0,
    })
    .await
    .unwrap();
    assert_eq!(
        next_mls(s).await,
        ServerMessage::MlsAccepted {
            epoch: 0,
            generation: 0
        }
    );
}

fn is_mls(m: &ServerMessage) -> bool {
    matches!(
        m,
        ServerMessage::MlsAccepted { .. }
            | ServerMessage::MlsRejected { .. }
            | ServerMessage::MlsCommit { .. }
            | ServerMessage::MlsReset { .. }
            | ServerMessage::Error(_)
    )
}

async fn next_mls(s: &mut RawSocket) -> ServerMessage {
    s.recv_until(T, is_mls).await.unwrap()
}

async fn nothing_mls(s: &mut RawSocket, who: &str) {
    let r = s.recv_until(QUIET, is_mls).await;
    assert!(r.is_err(), "{who} was told {r:?}");
}

/// A commit for generation 0 (the room's first group).
fn commit(epoch: u64, commit: &str, group_info: &str) -> ClientMessage {
    commit_for(0, epoch, commit, group_info)
}

fn commit_for(generation: u64, epoch: u64, commit: &str, group_info: &str) -> ClientMessage {
    ClientMessage::MlsCommit {
        epoch,
        commit: commit.into(),
        group_info: group_info.into(),
        generation,
    }
}

fn error_code(m: &ServerMessage) -> Option<ErrorCode> {
    match m {
        ServerMessage::Error(e) => Some(e.code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_orders_one_commit_per_epoch_and_hands_newcomers_the_latest_group_info() {
    let srv = start(|_| {}).await;
    let (mut a, _, e2ee) = join(&srv.url, "Ada").await;
    assert_eq!(
        e2ee,
        E2eeState {
            mode: E2eeMode::Required,
            epoch: None,
            group_info: None,
            generation: 0
        },
        "E2EE is on by default and a new room has no group"
    );

    // A commit before any group exists loses, and says there is none.
    a.send(&commit(0, "AAAA", "AAAA")).await.unwrap();
    assert_eq!(
        next_mls(&mut a).await,
        ServerMessage::MlsRejected {
            epoch: None,
            group_info: None,
            generation: 0
        }
    );
    create_group(&mut a).await;

    // The newcomer learns epoch 0 and its GroupInfo; a second group is refused.
    let (mut b, b_id, e2ee) = join(&srv.url, "Bob").await;
    assert_eq!(
        (e2ee.epoch, e2ee.group_info.as_deref()),
        (Some(0), Some("R0kw"))
    );
    b.send(&ClientMessage::MlsGroup {
        group_info: "b3RoZXI=".into(),
        generation: 0,
    })
    .await
    .unwrap();
    assert_eq!(
        next_mls(&mut b).await,
        ServerMessage::MlsRejected {
            epoch: Some(0),
            group_info: Some("R0kw".into()),
            generation: 0
        }
    );

    // Bob's external commit from epoch 0 wins; Ada gets it relayed, Bob is told to apply it.
    b.send(&commit(0, "Q0IwMQ==", "R0kx")).await.unwrap();
    assert_eq!(
        next_mls(&mut b).await,
        ServerMessage::MlsAccepted {
            epoch: 1,
            generation: 0
        }
    );
    assert_eq!(
        next_mls(&mut a).await,
        ServerMessage::MlsCommit {
            epoch: 0,
            commit: "Q0IwMQ==".into(),
            from: b_id
        }
    );

    // A late commit for epoch 0 loses and gets the current state to retry from.
    let (mut c, _, e2ee) = join(&srv.url, "Cy").await;
    assert_eq!(
        (e2ee.epoch, e2ee.group_info.as_deref()),
        (Some(1), Some("R0kx"))
    );
    c.send(&commit(0, "c3RhbGU=", "c3RhbGU=")).await.unwrap();
    assert_eq!(
        next_mls(&mut c).await,
        ServerMessage::MlsRejected {
            epoch: Some(1),
            group_info: Some("R0kx".into()),
            generation: 0
        }
    );
    nothing_mls(&mut a, "Ada (a losing commit)").await;
    nothing_mls(&mut b, "Bob (a losing commit)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_commits_for_one_epoch_exactly_one_wins() {
    let srv = start(|_| {}).await;
    let (mut a, _, _) = join(&srv.url, "Ada").await;
    create_group(&mut a).await;
    let mut racers = Vec::new();
    for name in ["R1", "R2", "R3", "R4"] {
        racers.push(join(&srv.url, name).await.0);
    }
    // All four send for epoch 0 without waiting for an answer: the server sees them in
    // some order and must accept exactly one.
    for (s, gi) in racers
        .iter_mut()
        .zip(["R0kxMA==", "R0kxMQ==", "R0kxMg==", "R0kxMw=="])
    {
        s.send(&commit(0, "Q0lU", gi)).await.unwrap();
    }
    let mut accepted = 0;
    let mut rejected = 0;
    for s in racers.iter_mut() {
        // A racer may first see the winner's relayed commit; its own answer follows.
        loop {
            match next_mls(s).await {
                ServerMessage::MlsAccepted { epoch, .. } => {
                    assert_eq!(epoch, 1);
                    accepted += 1;
                    break;
                }
                ServerMessage::MlsRejected {
                    epoch, group_info, ..
                } => {
                    assert_eq!(epoch, Some(1));
                    assert!(group_info.is_some_and(|g| g.starts_with("R0kx")));
                    rejected += 1;
                    break;
                }
                ServerMessage::MlsCommit { epoch: 0, .. } => continue,
                m => panic!("unexpected {m:?}"),
            }
        }
    }
    assert_eq!((accepted, rejected), (1, 3));
    // Ada sees exactly one commit for epoch 0.
    assert!(matches!(
        next_mls(&mut a).await,
        ServerMessage::MlsCommit { epoch: 0, .. }
    ));
    nothing_mls(&mut a, "Ada (only one commit may win)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_is_relayed_only_as_ciphertext_and_bad_mls_input_changes_nothing() {
    let srv = start(|c| c.limits.max_mls_chars = 1024).await;
    let (mut a, a_id, _) = join(&srv.url, "Ada").await;
    let (mut b, _, _) = join(&srv.url, "Bob").await;

    // Plain text is refused under E2EE (the default); nobody hears it.
    a.send(&ClientMessage::Chat {
        text: Some("the secret plan".into()),
        ciphertext: None,
        to: None,
    })
    .await
    .unwrap();
    assert_eq!(
        error_code(&next_mls(&mut a).await),
        Some(ErrorCode::InvalidE2ee)
    );
    let heard = b
        .recv_until(QUIET, |m| matches!(m, ServerMessage::Chat { .. }))
        .await;
    assert!(heard.is_err(), "plain text reached Bob: {heard:?}");

    // Ciphertext is relayed byte for byte.
    let ct = "AAEAAgMEBQYHCAkKCwwNDg8Q";
    a.send(&ClientMessage::Chat {
        text: None,
        ciphertext: Some(ct.into()),
        to: None,
    })
    .await
    .unwrap();
    let m = b
        .recv_until(T, |m| matches!(m, ServerMessage::Chat { .. }))
        .await
        .unwrap();
    assert_eq!(
        m,
        ServerMessage::Chat {
            from: a_id,
            text: None,
            ciphertext: Some(ct.into()),
            private: false
        }
    );

    // Malformed or oversized MLS fields: a specific error, the group is not created.
    let too_long = "A".repeat(1028);
    for (bad, why) in [
        ("", "empty"),
        ("abc", "not a multiple of 4"),
        ("ab!d", "not base64"),
        ("A===", "too much padding"),
        (too_long.as_str(), "too long"),
    ] {
        a.send(&ClientMessage::MlsGroup {
            group_info: bad.into(),
            generation: 0,
        })
        .await
        .unwrap();
        let m = next_mls(&mut a).await;
        assert_eq!(error_code(&m), Some(ErrorCode::InvalidE2ee), "{why}: {m:?}");
    }
    for (text, ct) in [(Some("x"), Some("eA==")), (None, None)] {
        a.send(&ClientMessage::Chat {
            text: text.map(Into::into),
            ciphertext: ct.map(Into::into),
            to: None,
        })
        .await
        .unwrap();
        assert_eq!(
            error_code(&next_mls(&mut a).await),
            Some(ErrorCode::InvalidChat)
        );
    }
    a.send_text(
        r#"{"type":"mls_commit","epoch":-1,"commit":"AAAA","group_info":"AAAA","generation":0}"#,
    )
    .await
    .unwrap();
    assert_eq!(
        error_code(&next_mls(&mut a).await),
        Some(ErrorCode::BadMessage)
    );
    let (_c, _, e2ee) = join(&srv.url, "Cy").await;
    assert_eq!(e2ee.epoch, None, "no bad message may have created a group");
    nothing_mls(&mut b, "Bob (bad input)").await;
}

/// A participant's garbage commit wins an epoch (the server cannot tell); a non-moderator
/// cannot reset the group, a moderator can: everyone hears it in order, the next `mls_group`
/// creates the new group, newcomers get it, and the old group's messages cannot win the new
/// group's epochs (which start again at 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moderator_resets_the_group_and_the_old_groups_commits_are_refused() {
    let srv = start(|_| {}).await;
    let (mut ada, ada_id, _) = join(&srv.url, "Ada").await; // first in an open room: moderator
    create_group(&mut ada).await;
    let (mut bob, bob_id, _) = join(&srv.url, "Bob").await;
    bob.send(&commit(0, "Qm9i", "R0kx")).await.unwrap();
    assert!(matches!(
        next_mls(&mut bob).await,
        ServerMessage::MlsAccepted { epoch: 1, .. }
    ));
    let (mut cy, cy_id, _) = join(&srv.url, "Cy").await;
    // Cy's "external commit" and its GroupInfo are garbage: they win epoch 1 all the same.
    let garbage = "Z2FyYmFnZQ==";
    cy.send(&commit(1, garbage, garbage)).await.unwrap();
    assert!(matches!(
        next_mls(&mut cy).await,
        ServerMessage::MlsAccepted { epoch: 2, .. }
    ));
    let relayed = |epoch, commit: &str, from| ServerMessage::MlsCommit {
        epoch,
        commit: commit.into(),
        from,
    };
    assert_eq!(next_mls(&mut ada).await, relayed(0, "Qm9i", bob_id));
    for s in [&mut ada, &mut bob] {
        assert_eq!(next_mls(s).await, relayed(1, garbage, cy_id));
    }

    // Bob is no moderator: `forbidden`, and nothing changes.
    bob.send(&ClientMessage::MlsReset {}).await.unwrap();
    assert_eq!(
        error_code(&next_mls(&mut bob).await),
        Some(ErrorCode::Forbidden)
    );
    nothing_mls(&mut ada, "Ada (a refused reset)").await;
    nothing_mls(&mut cy, "Cy (a refused reset)").await;
    let (mut dee, _, e2ee) = join(&srv.url, "Dee").await;
    assert_eq!(
        (e2ee.epoch, e2ee.group_info.as_deref(), e2ee.generation),
        (Some(2), Some(garbage), 0),
        "the refused reset changed nothing"
    );

    // Ada resets: everyone, Ada included, is told who did it and the new generation.
    ada.send(&ClientMessage::MlsReset {}).await.unwrap();
    let reset = ServerMessage::MlsReset {
        by: ada_id,
        generation: 1,
    };
    for (s, who) in [
        (&mut ada, "Ada"),
        (&mut bob, "Bob"),
        (&mut cy, "Cy"),
        (&mut dee, "Dee"),
    ] {
        assert_eq!(next_mls(s).await, reset, "{who}");
    }
    let stale = ServerMessage::MlsRejected {
        epoch: None,
        group_info: None,
        generation: 0,
    };
    // Cy repeats its garbage for the old group: refused, with nothing to retry from.
    cy.send(&commit(2, garbage, garbage)).await.unwrap();
    assert_eq!(next_mls(&mut cy).await, stale);

    // The first `mls_group` of generation 1 creates the new group at epoch 0; the next one
    // is answered with it (the client then joins by external commit).
    bob.send(&ClientMessage::MlsGroup {
        group_info: "R0kgbmV3".into(),
        generation: 1,
    })
    .await
    .unwrap();
    assert_eq!(
        next_mls(&mut bob).await,
        ServerMessage::MlsAccepted {
            epoch: 0,
            generation: 1
        }
    );
    ada.send(&ClientMessage::MlsGroup {
        group_info: "YWRh".into(),
        generation: 1,
    })
    .await
    .unwrap();
    assert_eq!(
        next_mls(&mut ada).await,
        ServerMessage::MlsRejected {
            epoch: Some(0),
            group_info: Some("R0kgbmV3".into()),
            generation: 1
        }
    );

    // A commit of the old group from its epoch 0 (e.g. one still on its way at the reset)
    // names the new group's epoch, but not its generation: refused, relayed to nobody.
    dee.send(&commit(0, "b2xk", "b2xk")).await.unwrap();
    assert_eq!(next_mls(&mut dee).await, stale);
    // ... and a generation that does not exist yet is bad input.
    dee.send(&commit_for(2, 0, "b2xk", "b2xk")).await.unwrap();
    assert_eq!(
        error_code(&next_mls(&mut dee).await),
        Some(ErrorCode::InvalidE2ee)
    );
    for (s, who) in [(&mut ada, "Ada"), (&mut bob, "Bob"), (&mut cy, "Cy")] {
        nothing_mls(s, &format!("{who} (commits for another generation)")).await;
    }

    // Ada's external commit into the new group wins epoch 0 of generation 1.
    ada.send(&commit_for(1, 0, "QWRh", "R0kgbmV3IDE="))
        .await
        .unwrap();
    assert_eq!(
        next_mls(&mut ada).await,
        ServerMessage::MlsAccepted {
            epoch: 1,
            generation: 1
        }
    );
    for s in [&mut bob, &mut cy, &mut dee] {
        assert_eq!(next_mls(s).await, relayed(0, "QWRh", ada_id));
    }

    // A newcomer gets the new group's GroupInfo and generation.
    let (_eve, _, e2ee) = join(&srv.url, "Eve").await;
    assert_eq!(
        e2ee,
        E2eeState {
            mode: E2eeMode::Required,
            epoch: Some(1),
            group_info: Some("R0kgbmV3IDE=".into()),
            generation: 1
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_e2ee_off_mls_is_refused_and_plain_chat_flows() {
    let srv = start(|c| c.meeting.e2ee = E2eeMode::Off).await;
    let (mut a, _, e2ee) = join(&srv.url, "Ada").await;
    assert_eq!(e2ee.mode, E2eeMode::Off);
    a.send(&ClientMessage::MlsGroup {
        group_info: "R0kw".into(),
        generation: 0,
    })
    .await
    .unwrap();
    assert_eq!(
        error_code(&next_mls(&mut a).await),
        Some(ErrorCode::E2eeOff)
    );
    a.send(&ClientMessage::Chat {
        text: None,
        ciphertext: Some("eA==".into()),
        to: None,
    })
    .await
    .unwrap();
    assert_eq!(
        error_code(&next_mls(&mut a).await),
        Some(ErrorCode::E2eeOff)
    );
}

/// The offer's video codecs: no H.264 under E2EE (its packetisation needs the NAL headers
/// that frame encryption hides), H.264 besides VP8 without.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_is_offered_only_without_e2ee() {
    for (mode, h264) in [(E2eeMode::Required, false), (E2eeMode::Off, true)] {
        let srv = start(|c| c.meeting.e2ee = mode).await;
        let mut s = conclave_load::connect(&srv.url).await.unwrap();
        s.send(&ClientMessage::Join {
            v: 1,
            room: ROOM.into(),
            name: "Ada".into(),
            password: None,
            token: None,
        })
        .await
        .unwrap();
        let sdp = match s
            .recv_until(T, |m| matches!(m, ServerMessage::Offer { .. }))
            .await
            .unwrap()
        {
            ServerMessage::Offer { sdp, .. } => sdp,
            _ => unreachable!(),
        };
        assert!(sdp.contains("VP8/90000"), "{sdp}");
        assert_eq!(sdp.contains("H264/90000"), h264, "{mode:?}: {sdp}");
    }
}
