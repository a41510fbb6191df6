//! Media-plane integration tests: the server in-process on ports 0, headless participants
//! (str0m clients) over real UDP on loopback.

use crate::common;

use std::time::Duration;

use common::{ROOM, eventually, start};
use conclave_load::TestParticipant;
use conclave_proto::{LeaveReason, ServerMessage, Source};

const T: Duration = Duration::from_secs(20);
/// What the test participants publish.
const AV: [Source; 2] = [Source::Microphone, Source::Camera];

async fn join_all(url: &str, names: &[&str]) -> Vec<TestParticipant> {
    let futs = names.iter().map(|n| TestParticipant::join(url, ROOM, n));
    futures_util::future::join_all(futs)
        .await
        .into_iter()
        .map(|r| r.expect("join"))
        .collect()
}

fn publish_all(ps: &[TestParticipant]) {
    for p in ps {
        p.publish(Source::Microphone);
        p.publish(Source::Camera);
    }
}

/// Wait until every participant receives at least `n` packets of both sources from every
/// other participant.
async fn all_receive_from_all(ps: &[TestParticipant], n: u64) {
    for p in ps {
        for q in ps.iter().filter(|q| q.id != p.id) {
            for s in AV {
                let what = format!("{} receiving {s:?} from {}", p.id, q.id);
                let key = (q.id, s);
                eventually(&what, T, || {
                    p.received().get(&key).copied().unwrap_or(0) >= n
                })
                .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_exchange_audio_and_video_and_a_leaver_is_released() {
    let srv = start(|_| {}).await;
    let mut ps = Vec::new();
    // One after another.
    for name in ["Ada", "Bob", "Cy"] {
        let p = TestParticipant::join(&srv.url, ROOM, name).await.unwrap();
        p.publish(Source::Microphone);
        p.publish(Source::Camera);
        ps.push(p);
    }
    all_receive_from_all(&ps, 30).await;

    let snap = srv.server.media_snapshot().unwrap();
    assert_eq!(snap.participants.len(), 3);
    // Two others × two sources each.
    assert!(
        snap.participants.iter().all(|p| p.subscriptions == 4),
        "{snap:?}"
    );
    // Sends are batched: one sendmmsg carries what a receive batch produced for several
    // subscribers (each packet here goes to two).
    assert!(
        snap.send_calls > 0 && snap.datagrams_sent > snap.send_calls,
        "{snap:?}"
    );

    let leaver = ps.pop().unwrap();
    let leaver_id = leaver.id;
    leaver.leave();
    for p in &ps {
        eventually("participant_left", T, || {
            p.observed().messages.iter().any(|m| {
                matches!(m, ServerMessage::ParticipantLeft { id, reason: LeaveReason::Left } if *id == leaver_id)
            })
        })
        .await;
    }
    // Released: the media plane holds nothing of it.
    eventually("media plane releases the leaver", T, || {
        let s = srv.server.media_snapshot().unwrap();
        s.get(leaver_id).is_none()
            && s.participants.len() == 2
            && s.participants.iter().all(|p| p.subscriptions == 2)
            && s.mapped_addresses == 2
            && s.connected_sockets == 2
            && s.forwarding_entries == 4
    })
    .await;
    let stats = srv.server.core_stats().await.unwrap();
    assert_eq!((stats.rooms, stats.participants), (1, 2));

    // Nothing more is forwarded to or from it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let to_leaver = leaver.datagrams_received();
    let from_leaver: Vec<u64> = ps
        .iter()
        .map(|p| {
            AV.iter()
                .map(|s| p.received().get(&(leaver_id, *s)).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let between: Vec<u64> = ps.iter().map(|p| p.received().values().sum()).collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        leaver.datagrams_received(),
        to_leaver,
        "datagrams reached the leaver"
    );
    for (i, p) in ps.iter().enumerate() {
        let now: u64 = AV
            .iter()
            .map(|s| p.received().get(&(leaver_id, *s)).copied().unwrap_or(0))
            .sum();
        assert_eq!(
            now, from_leaver[i],
            "packets from the leaver still forwarded"
        );
        // The two who stayed still hear each other.
        assert!(p.received().values().sum::<u64>() > between[i] + 20);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_joining_and_publishing_at_the_same_moment() {
    let srv = start(|_| {}).await;
    let ps = join_all(&srv.url, &["A", "B", "C", "D"]).await;
    publish_all(&ps);
    all_receive_from_all(&ps, 30).await;
    // Unpublish and republish at the same moment everywhere: renegotiation stays consistent.
    for p in &ps {
        p.unpublish(Source::Camera);
    }
    for p in &ps {
        p.publish(Source::Camera);
    }
    let before: Vec<_> = ps.iter().map(|p| p.received()).collect();
    for (i, p) in ps.iter().enumerate() {
        for q in ps.iter().filter(|q| q.id != p.id) {
            let key = (q.id, Source::Camera);
            let base = before[i].get(&key).copied().unwrap_or(0);
            eventually("video after republish", T, || {
                p.received().get(&key).copied().unwrap_or(0) > base + 20
            })
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_that_vanishes_is_removed_after_the_timeout() {
    let srv = start(|c| c.participant_timeout_secs = 2).await;
    let ps = join_all(&srv.url, &["Stays", "Vanishes"]).await;
    publish_all(&ps);
    all_receive_from_all(&ps, 20).await;
    let gone = ps[1].id;
    ps[1].vanish();
    eventually("timeout removal", T, || {
        ps[0].observed().messages.iter().any(|m| {
            matches!(m, ServerMessage::ParticipantLeft { id, reason: LeaveReason::Timeout } if *id == gone)
        })
    })
    .await;
    let s = srv.server.media_snapshot().unwrap();
    assert!(s.get(gone).is_none());
    assert_eq!(s.participants.len(), 1);
    assert_eq!(s.forwarding_entries, 0);
    // The vanished one's signalling was told why and closed.
    eventually("bye(timeout)", T, || {
        ps[1].observed().messages.iter().any(|m| {
            matches!(
                m,
                ServerMessage::Bye {
                    reason: LeaveReason::Timeout,
                    ..
                }
            )
        })
    })
    .await;
}

/// A participant whose signalling connection drops without `leave` (a crashed tab, a lost
/// network) is removed as soon as the socket is gone, long before any timeout: the others are
/// told `disconnected` and the media plane releases it. A browser that reconnects joins as a
/// new participant, so nothing of the old one may linger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_whose_socket_drops_is_removed_at_once() {
    let srv = start(|c| c.participant_timeout_secs = 600).await;
    let mut ps = join_all(&srv.url, &["Stays", "Drops"]).await;
    publish_all(&ps);
    all_receive_from_all(&ps, 20).await;
    let dropped = ps.pop().expect("two participants");
    let gone = dropped.id;
    // Dropping it aborts its socket task: the TCP connection goes without a close frame.
    drop(dropped);
    eventually("participant_left(disconnected)", T, || {
        ps[0].observed().messages.iter().any(|m| {
            matches!(m, ServerMessage::ParticipantLeft { id, reason: LeaveReason::Disconnected } if *id == gone)
        })
    })
    .await;
    eventually("media plane releases the dropped one", T, || {
        let s = srv.server.media_snapshot().unwrap();
        s.get(gone).is_none() && s.participants.len() == 1 && s.forwarding_entries == 0
    })
    .await;
    let stats = srv.server.core_stats().await.unwrap();
    assert_eq!((stats.rooms, stats.participants), (1, 1));
}

/// Rooms are pinned to media threads; participants of rooms on different threads all get
/// their media, whichever thread the kernel hands their first datagram to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_spread_over_media_threads_and_all_flow() {
    let srv = start(|c| c.media_threads = 2).await;
    // Pick two rooms that land on different threads.
    let rooms: Vec<String> = (0..100)
        .map(|i| format!("shardedroom-{i:06}"))
        .scan(std::collections::BTreeSet::new(), |seen, r| {
            let id = conclave_proto::RoomId::parse(&r).unwrap();
            Some(
                seen.insert(conclave_media::shard_for_room(&id, 2))
                    .then_some(r),
            )
        })
        .flatten()
        .take(2)
        .collect();
    assert_eq!(rooms.len(), 2);
    let mut groups = Vec::new();
    for room in &rooms {
        let mut ps = Vec::new();
        for name in ["A", "B", "C"] {
            let p = TestParticipant::join(&srv.url, room, name).await.unwrap();
            p.publish(Source::Microphone);
            p.publish(Source::Camera);
            ps.push(p);
        }
        groups.push(ps);
    }
    for ps in &groups {
        all_receive_from_all(ps, 20).await;
    }
    let snap = srv.server.media_snapshot().unwrap();
    assert_eq!(snap.shard_participants, vec![3, 3], "{snap:?}");
    assert_eq!(
        snap.connected_sockets, 6,
        "one connected socket per participant"
    );
    // Nothing crosses rooms.
    for (g, ps) in groups.iter().enumerate() {
        for p in ps {
            for other in &groups[1 - g] {
                assert!(p.received().keys().all(|(id, _)| *id != other.id));
            }
        }
    }
}
