//! A headless Conclave participant: joins over the real WebSocket protocol, answers the
//! server's offers with str0m (as a client, over real UDP), publishes synthetic Opus-sized
//! audio (50 packets/s) and VP8-shaped video (30 frames/s), and counts what it receives per
//! publisher and source. Used by the integration tests and (later) the load generator.

pub mod generator;
pub mod janus;
pub mod media;
pub mod peers;
pub mod probe;
pub mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use conclave_proto::{ClientMessage, ParticipantId, ServerMessage, Source};
use tokio::sync::mpsc;

pub use media::{Profile, ReceiveCounters};
pub use probe::ReceiverStats;
pub use wire::{RawSocket, connect, connect_with_cookie, insecure_tls_config};

/// What a participant has seen.
#[derive(Debug, Default, Clone)]
pub struct Observed {
    /// Every server message in arrival order.
    pub messages: Vec<ServerMessage>,
    /// Participants currently in the room (not counting ourselves).
    pub others: BTreeMap<ParticipantId, String>,
}

/// A running headless participant.
pub struct TestParticipant {
    /// Our participant ID.
    pub id: ParticipantId,
    ws_out: mpsc::UnboundedSender<ClientMessage>,
    observed: Arc<Mutex<Observed>>,
    media: media::MediaHandle,
    ws_task: tokio::task::JoinHandle<()>,
}

impl TestParticipant {
    /// Connect to `https://host:port`, join `room` as `name`, and start the media session
    /// with the default [`Profile`].
    pub async fn join(base: &str, room: &str, name: &str) -> Result<TestParticipant> {
        Self::join_with(base, room, name, Profile::default(), 0).await
    }

    /// Like [`TestParticipant::join`], with a send profile and a probe tag.
    pub async fn join_with(
        base: &str,
        room: &str,
        name: &str,
        profile: Profile,
        tag: u32,
    ) -> Result<TestParticipant> {
        let mut sock = connect(base).await?;
        sock.send(&ClientMessage::Join {
            v: conclave_proto::PROTOCOL_VERSION,
            room: room.into(),
            name: name.into(),
            password: None,
            token: None,
        })
        .await?;
        let joined = sock.recv_timeout(Duration::from_secs(10)).await?;
        let (id, participants) = match &joined {
            ServerMessage::Joined {
                id, participants, ..
            } => (*id, participants.clone()),
            other => bail!("expected joined, got {other:?}"),
        };
        let observed = Arc::new(Mutex::new(Observed {
            messages: vec![joined],
            others: participants.into_iter().map(|p| (p.id, p.name)).collect(),
        }));
        let (ws_out, mut ws_out_rx) = mpsc::unbounded_channel::<ClientMessage>();
        let media = media::MediaHandle::start(Some(ws_out.clone()), profile, tag)?;
        let obs = observed.clone();
        let media_cmd = media.commands();
        let ws_task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    out = ws_out_rx.recv() => match out {
                        Some(m) => if sock.send(&m).await.is_err() { break },
                        None => break,
                    },
                    msg = sock.recv() => match msg {
                        Ok(Some(m)) => {
                            if let ServerMessage::Offer { .. } = &m {
                                let _ = media_cmd.send(media::Command::ConclaveOffer(Box::new(m.clone())));
                            }
                            let mut o = obs.lock().expect("observer lock");
                            match &m {
                                ServerMessage::ParticipantJoined { participant } => {
                                    o.others.insert(participant.id, participant.name.clone());
                                }
                                ServerMessage::ParticipantLeft { id, .. } => {
                                    o.others.remove(id);
                                }
                                _ => {}
                            }
                            o.messages.push(m);
                        }
                        Ok(None) | Err(_) => break,
                    },
                }
            }
        });
        Ok(TestParticipant {
            id,
            ws_out,
            observed,
            media,
            ws_task,
        })
    }

    /// Start sending synthetic media on `source` and tell the server.
    pub fn publish(&self, source: Source) {
        self.media.publish(source, true);
        let _ = self.ws_out.send(ClientMessage::Publish { source });
    }

    /// Stop sending on `source` and tell the server.
    pub fn unpublish(&self, source: Source) {
        self.media.publish(source, false);
        let _ = self.ws_out.send(ClientMessage::Unpublish { source });
    }

    /// Send a raw protocol message.
    pub fn send(&self, m: ClientMessage) {
        let _ = self.ws_out.send(m);
    }

    /// Packets received so far, by publisher and source.
    pub fn received(&self) -> ReceiveCounters {
        self.media.received()
    }

    /// Probe measurements since the last [`TestParticipant::reset_stats`].
    pub fn stats(&self) -> ReceiverStats {
        self.media.stats()
    }

    /// Start a fresh measurement window.
    pub fn reset_stats(&self) {
        self.media.reset_stats();
    }

    /// RTP packets we sent.
    pub fn sent(&self) -> u64 {
        self.media.sent()
    }

    /// Put this RFC 6464 audio level (dBov: 0 loudest, -127 silence) on our audio packets
    /// from now on, as a browser does; `None` sends none. -20 reads as speech.
    pub fn set_audio_level(&self, level: Option<i8>) {
        self.media.set_audio_level(level);
    }

    /// Key frame requests (PLI/FIR) the server sent us for what we publish.
    pub fn keyframe_requests(&self) -> u64 {
        self.media.keyframe_requests()
    }

    /// Stop sending anything, keep the signalling connection.
    pub fn silence(&self) {
        self.media.silence();
    }

    /// Total packets that reached our UDP socket (any sender, any content).
    pub fn datagrams_received(&self) -> u64 {
        self.media.datagrams()
    }

    /// A copy of what we have seen on the signalling channel.
    pub fn observed(&self) -> Observed {
        self.observed.lock().expect("observer lock").clone()
    }

    /// Our UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.media.local_addr()
    }

    /// Whether ICE+DTLS are up.
    pub fn connected(&self) -> bool {
        self.media.connected()
    }

    /// Say `leave`, but keep the UDP socket open and counting (to prove nothing more arrives).
    pub fn leave(&self) {
        let _ = self.ws_out.send(ClientMessage::Leave {});
        self.media.silence();
    }

    /// Vanish from the media plane without a word: stop sending and reading UDP entirely,
    /// while the WebSocket stays open.
    pub fn vanish(&self) {
        self.media.silence();
        self.media.deafen();
    }

    /// Wait until `f` holds, polling; fails after `timeout` with `what`.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&TestParticipant) -> bool,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while !f(self) {
            if tokio::time::Instant::now() > deadline {
                bail!("timed out after {timeout:?} waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }
}

impl Drop for TestParticipant {
    fn drop(&mut self) {
        self.ws_task.abort();
    }
}

/// Parse `https://host:port` into `wss://host:port/ws`.
pub fn ws_url(base: &str) -> Result<String> {
    let rest = base
        .strip_prefix("https://")
        .context("the server URL must start with https://")?;
    Ok(format!("wss://{}/ws", rest.trim_end_matches('/')))
}
