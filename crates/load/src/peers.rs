//! Load participants for each kind of server, behind one small interface.
//!
//! Conclave: one peer connection, the server offers ([`TestParticipant`]). Janus videoroom:
//! one publisher connection (we offer) and one subscriber connection (Janus offers) per
//! participant, each its own str0m `Rtc` and UDP socket, signalled over Janus's HTTP API.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use conclave_proto::Source;

use crate::TestParticipant;
use crate::janus::JanusSession;
use crate::media::{Command, MediaHandle, Profile};
use crate::probe::ReceiverStats;

/// One load participant.
pub enum Peer {
    /// On Conclave.
    Conclave(TestParticipant),
    /// On Janus.
    Janus(JanusPeer),
}

/// A participant on Janus: its session and its two media connections.
pub struct JanusPeer {
    // Field order matters for drop: media first, then the session (which destroys itself).
    publisher: MediaHandle,
    subscriber: Option<MediaHandle>,
    session: JanusSession,
    feed: u64,
    room: u64,
}

impl Peer {
    /// Start sending audio and video.
    pub fn publish_all(&self) {
        for s in [Source::Microphone, Source::Camera] {
            match self {
                Peer::Conclave(p) => p.publish(s),
                Peer::Janus(j) => j.publisher.publish(s, true),
            }
        }
    }

    /// What this participant received.
    pub fn stats(&self) -> ReceiverStats {
        match self {
            Peer::Conclave(p) => p.stats(),
            Peer::Janus(j) => j.subscriber.as_ref().map(|s| s.stats()).unwrap_or_default(),
        }
    }

    /// Start a fresh measurement window.
    pub fn reset_stats(&self) {
        match self {
            Peer::Conclave(p) => p.reset_stats(),
            Peer::Janus(j) => {
                if let Some(s) = &j.subscriber {
                    s.reset_stats();
                }
            }
        }
    }

    /// RTP packets sent.
    pub fn sent(&self) -> u64 {
        match self {
            Peer::Conclave(p) => p.sent(),
            Peer::Janus(j) => j.publisher.sent(),
        }
    }

    /// Stop all sending.
    pub fn silence(&self) {
        match self {
            Peer::Conclave(p) => p.silence(),
            Peer::Janus(j) => {
                j.publisher.silence();
                if let Some(s) = &j.subscriber {
                    s.silence();
                }
            }
        }
    }
}

/// Join one Janus room with `names.len()` participants: everyone publishes, then everyone
/// subscribes to all the others. Blocking (Janus's HTTP API); call from a blocking thread.
pub fn join_janus_room(
    url: &str,
    room: u64,
    names: &[(String, u32)],
    profile: Profile,
    timeout: Duration,
) -> Result<Vec<Peer>> {
    let mut peers = Vec::new();
    for (name, tag) in names {
        let session = JanusSession::create(url).context("Janus create session")?;
        let handle = session.attach_videoroom()?;
        session.ensure_room(handle, room, u32::try_from(names.len()).unwrap_or(u32::MAX))?;
        let publisher = MediaHandle::start(None, profile, *tag)?;
        let offer = publisher.request(Command::CreatePublishOffer)?;
        let (feed, answer) = session.publish(handle, room, name, &offer)?;
        publisher.request(|tx| Command::AcceptAnswer(answer, tx))?;
        peers.push(JanusPeer {
            publisher,
            subscriber: None,
            session,
            feed,
            room,
        });
    }
    let deadline = Instant::now() + timeout;
    while !peers.iter().all(|p| p.publisher.connected()) {
        if Instant::now() > deadline {
            bail!("Janus publishers did not connect within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let feeds: Vec<u64> = peers.iter().map(|p| p.feed).collect();
    for (i, p) in peers.iter_mut().enumerate() {
        let others: Vec<u64> = feeds
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, f)| *f)
            .collect();
        let handle = p.session.attach_videoroom()?;
        let subscriber = MediaHandle::start(None, profile, names[i].1)?;
        let (offer, _mids) = p
            .session
            .subscribe_when_ready(handle, p.room, &others, timeout)?;
        let answer = subscriber.request(|tx| Command::AcceptOffer(offer, tx))?;
        p.session.start(handle, p.room, &answer)?;
        p.subscriber = Some(subscriber);
    }
    Ok(peers.into_iter().map(Peer::Janus).collect())
}
