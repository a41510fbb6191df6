//! Which video reaches whom: last-N by most recent speaker, and `receive_video`. The server
//! in-process on ports 0, headless participants over real UDP on loopback.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{ROOM, eventually, start};
use conclave_load::{ReceiveCounters, TestParticipant};
use conclave_proto::{ClientMessage, ParticipantId, ServerMessage, Source};

const T: Duration = Duration::from_secs(20);
/// Time for packets already in flight (and a command) to land before a quiet window starts.
const SETTLE: Duration = Duration::from_millis(500);
/// A window in which a stream that flows delivers dozens of packets.
const WINDOW: Duration = Duration::from_millis(1500);

/// Join one after another (so join order is known) and publish microphone and camera.
async fn join_in_order(url: &str, names: &[&str]) -> Vec<TestParticipant> {
    let mut ps = Vec::new();
    for name in names {
        let p = TestParticipant::join(url, ROOM, name).await.unwrap();
        p.publish(Source::Microphone);
        p.publish(Source::Camera);
        ps.push(p);
    }
    ps
}

fn count(r: &ReceiveCounters, from: ParticipantId, s: Source) -> u64 {
    r.get(&(from, s)).copied().unwrap_or(0)
}

/// Packets `p` receives during one window, per publisher and source.
async fn window(ps: &[&TestParticipant]) -> Vec<ReceiveCounters> {
    tokio::time::sleep(SETTLE).await;
    let before: Vec<_> = ps.iter().map(|p| p.received()).collect();
    tokio::time::sleep(WINDOW).await;
    ps.iter()
        .zip(before)
        .map(|(p, b)| {
            p.received()
                .into_iter()
                .map(|(k, v)| (k, v - b.get(&k).copied().unwrap_or(0)))
                .collect()
        })
        .collect()
}

/// Whose camera video `p` got in a window, and that audio came from all `others`.
fn check_window(
    what: &str,
    got: &ReceiveCounters,
    others: &[ParticipantId],
    video_from: &BTreeSet<ParticipantId>,
) {
    for o in others {
        let audio = count(got, *o, Source::Microphone);
        assert!(audio > 20, "{what}: audio from {o}: {audio} packets");
        let video = count(got, *o, Source::Camera);
        if video_from.contains(o) {
            assert!(video > 20, "{what}: video from {o}: {video} packets");
        } else {
            assert_eq!(video, 0, "{what}: video from {o} is outside the last-N set");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_n_forwards_camera_video_of_the_latest_speakers_only() {
    let srv = start(|c| c.meeting.last_n = 2).await;
    let ps = join_in_order(&srv.url, &["A", "B", "C", "D"]).await;
    let ids: Vec<ParticipantId> = ps.iter().map(|p| p.id).collect();
    let (a, b, c, d) = (ids[0], ids[1], ids[2], ids[3]);

    // Clients are told, and the SDP negotiates the audio level extension browsers send.
    for p in &ps {
        assert!(matches!(&p.observed().messages[0],
            ServerMessage::Joined { settings, .. } if settings.last_n == 2));
        eventually("an offer with the audio level extension", T, || {
            p.observed().messages.iter().any(|m| {
                matches!(m,
                ServerMessage::Offer { sdp, .. }
                if sdp.contains("urn:ietf:params:rtp-hdrext:ssrc-audio-level"))
            })
        })
        .await;
    }

    // Nobody has spoken: join order. Everyone gets the first two others who publish a camera.
    let expect = |me: ParticipantId, order: &[ParticipantId]| -> BTreeSet<ParticipantId> {
        order.iter().copied().filter(|p| *p != me).take(2).collect()
    };
    for (p, me) in ps.iter().zip(&ids) {
        for v in expect(*me, &ids) {
            eventually("first video", T, || {
                count(&p.received(), v, Source::Camera) >= 30
            })
            .await;
        }
    }
    let refs: Vec<&TestParticipant> = ps.iter().collect();
    let got = window(&refs).await;
    for (i, me) in ids.iter().enumerate() {
        let others: Vec<_> = ids.iter().copied().filter(|o| o != me).collect();
        check_window("join order", &got[i], &others, &expect(*me, &ids));
    }
    // Exactly two videos and three audio streams for the last to join.
    assert_eq!(expect(d, &ids), [a, b].into());

    // D speaks: it moves to the front. C now gets D and A (B drops out), and D is asked
    // for a key frame so its new subscribers can decode at once.
    let keyframes_before = ps[3].keyframe_requests();
    ps[3].set_audio_level(Some(-20));
    let order = [d, a, b, c];
    eventually("C gets D's video", T, || {
        count(&ps[2].received(), d, Source::Camera) >= 30
    })
    .await;
    assert!(
        ps[3].keyframe_requests() > keyframes_before,
        "entering a last-N set asks for a key frame"
    );
    // D stops talking; the order stays.
    ps[3].set_audio_level(Some(-127));
    let got = window(&refs).await;
    for (i, me) in ids.iter().enumerate() {
        let others: Vec<_> = ids.iter().copied().filter(|o| o != me).collect();
        check_window("after D spoke", &got[i], &others, &expect(*me, &order));
    }
    assert_eq!(expect(c, &order), [d, a].into());

    // Background noise (quieter than speech) does not reorder: B at -60 dBov stays out of
    // C's set.
    ps[1].set_audio_level(Some(-60));
    let got = window(&[&ps[2]]).await;
    assert_eq!(count(&got[0], b, Source::Camera), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_video_off_stops_all_video_and_on_resumes_it_with_key_frames() {
    let srv = start(|_| {}).await;
    let ps = join_in_order(&srv.url, &["Viewer", "B", "C"]).await;
    ps[1].publish(Source::Screen);
    let (viewer, b, c) = (&ps[0], ps[1].id, ps[2].id);
    let videos = [
        (b, Source::Camera),
        (b, Source::Screen),
        (c, Source::Camera),
    ];
    for (from, s) in videos {
        eventually("video flows", T, || {
            count(&viewer.received(), from, s) >= 30
        })
        .await;
    }

    viewer.send(ClientMessage::ReceiveVideo { enabled: false });
    let got = window(&[viewer, &ps[1]]).await;
    for (from, s) in videos {
        assert_eq!(
            count(&got[0], from, s),
            0,
            "{s:?} from {from} after receive_video false"
        );
    }
    for from in [b, c] {
        let audio = count(&got[0], from, Source::Microphone);
        assert!(audio > 20, "audio from {from} keeps flowing: {audio}");
    }
    // Only the viewer's choice: B still gets the viewer's video.
    assert!(count(&got[1], viewer.id, Source::Camera) > 20);

    let keyframes: Vec<u64> = ps.iter().map(|p| p.keyframe_requests()).collect();
    viewer.send(ClientMessage::ReceiveVideo { enabled: true });
    let base = viewer.received();
    for (from, s) in videos {
        eventually("video resumes", T, || {
            count(&viewer.received(), from, s) > count(&base, from, s) + 20
        })
        .await;
    }
    // The publishers were asked for key frames so the viewer can decode at once.
    for i in [1, 2] {
        assert!(
            ps[i].keyframe_requests() > keyframes[i],
            "key frame from {}",
            ps[i].id
        );
    }
}
