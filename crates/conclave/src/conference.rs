//! The conference task: owns the [`RoomCore`], runs its effects, relays media events.
//!
//! One task, one queue: every input to the room core is serialized here, so the core needs no
//! lock. This is the signalling path, never the packet path.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use conclave_media::{MediaEvent, MediaPlane};
use conclave_proto::{ClientMessage, ErrorCode, LeaveReason, ProtocolError, ServerMessage};
use conclave_room::{ConnId, Effect, Identity, Input, MediaCommand, Peer, RoomCore};
use tokio::sync::{mpsc, oneshot};

use crate::turn::IceServers;

/// What a WebSocket task is told to do.
#[derive(Debug)]
pub enum Outbound {
    /// Send this message.
    Message(Box<ServerMessage>),
    /// Close the socket.
    Close,
}

/// Room core counters, for tests and monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreStats {
    /// Open rooms.
    pub rooms: usize,
    /// Joined participants.
    pub participants: usize,
    /// Open signalling connections.
    pub connections: usize,
    /// Rooms with an E2EE group.
    pub e2ee_rooms: usize,
    /// MLS epochs accepted since start.
    pub mls_epochs: u64,
}

/// Messages into the conference task.
pub enum ToConference {
    /// A socket opened; the reply says whether it may stay (connection limit).
    Open {
        conn: ConnId,
        peer: Peer,
        tx: mpsc::UnboundedSender<Outbound>,
        reply: oneshot::Sender<bool>,
    },
    /// An input for the room core.
    Input(Input),
    /// An event from the media plane.
    Media(MediaEvent),
    /// Report counters.
    Stats(oneshot::Sender<CoreStats>),
}

/// Verifies an invitation token (signature, expiry, audience, issuer) and says who it names
/// and when it expires; the room core then decides what that identity may do.
pub type TokenCheck = Arc<dyn Fn(&str) -> Result<(Identity, SystemTime), String> + Send + Sync>;

/// Token checking for the conference task.
#[derive(Clone)]
pub struct Tokens {
    /// The verifier.
    pub check: TokenCheck,
    /// End the session of a participant whose token expires during the meeting.
    pub enforce_expiry: bool,
}

/// Where the conference task reports to besides the room core's connections.
#[derive(Clone)]
pub struct Edges {
    /// The connection and audit logs.
    pub recorder: crate::records::Recorder,
    /// Monitoring counters.
    pub counters: crate::metrics::Counters,
}

/// What effects are carried out with.
struct Out<'a> {
    media: &'a MediaPlane,
    ice: Option<&'a IceServers>,
    recorder: &'a crate::records::Recorder,
}

/// Run the conference task until every sender is gone.
pub async fn run(
    mut core: RoomCore,
    tokens: Option<Tokens>,
    max_connections: usize,
    media: Arc<MediaPlane>,
    ice: Option<Arc<IceServers>>,
    edges: Edges,
    mut rx: mpsc::UnboundedReceiver<ToConference>,
) {
    let ice = ice.as_deref();
    let out = Out {
        media: &media,
        ice,
        recorder: &edges.recorder,
    };
    let mut conns: HashMap<ConnId, mpsc::UnboundedSender<Outbound>> = HashMap::new();
    // Client addresses, for the audit records of token use.
    let mut addrs: HashMap<ConnId, std::net::IpAddr> = HashMap::new();
    // Sessions whose token expires during the meeting (only with `enforce_expiry`).
    let mut expiries: HashMap<ConnId, SystemTime> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let msg = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => break,
            },
            _ = tick.tick() => {
                // Reserved rooms whose window ended close themselves.
                let effects = core.handle(Instant::now(), Input::Tick);
                run_effects(&conns, &out, effects);
                let wall = SystemTime::now();
                let expired: Vec<ConnId> =
                    expiries.iter().filter(|(_, t)| **t <= wall).map(|(c, _)| *c).collect();
                for c in expired {
                    expiries.remove(&c);
                    let bye = ServerMessage::Bye {
                        reason: LeaveReason::Removed,
                        message: Some("your invitation expired".into()),
                    };
                    send(&conns, c, Outbound::Message(Box::new(bye)));
                    send(&conns, c, Outbound::Close);
                    let effects = core.handle(Instant::now(), Input::Closed(c, LeaveReason::Removed));
                    run_effects(&conns, &out, effects);
                }
                continue;
            }
        };
        let now = Instant::now();
        let effects = match msg {
            ToConference::Open {
                conn,
                peer,
                tx,
                reply,
            } => {
                if conns.len() >= max_connections || conns.contains_key(&conn) {
                    let _ = reply.send(false);
                    continue;
                }
                conns.insert(conn, tx);
                addrs.insert(conn, peer.addr);
                let _ = reply.send(true);
                core.handle(now, Input::Connected(conn, peer))
            }
            ToConference::Input(input) => {
                let closed = match &input {
                    Input::Closed(c, _) => Some(*c),
                    _ => None,
                };
                let token_join = TokenJoin {
                    tokens: tokens.as_ref(),
                    edges: &edges,
                    addrs: &addrs,
                };
                let effects = match token_join.join(&mut core, now, &input, &mut expiries) {
                    Some(effects) => effects,
                    None => core.handle(now, input),
                };
                if let Some(c) = closed {
                    conns.remove(&c);
                    addrs.remove(&c);
                    expiries.remove(&c);
                }
                effects
            }
            ToConference::Media(event) => media_event(&mut core, &conns, now, event),
            ToConference::Stats(reply) => {
                let _ = reply.send(CoreStats {
                    rooms: core.room_count(),
                    participants: core.participant_count(),
                    connections: core.connection_count(),
                    e2ee_rooms: core.e2ee_room_count(),
                    mls_epochs: core.mls_epoch_count(),
                });
                continue;
            }
        };
        run_effects(&conns, &out, effects);
    }
}

fn run_effects(
    conns: &HashMap<ConnId, mpsc::UnboundedSender<Outbound>>,
    out: &Out<'_>,
    effects: Vec<Effect>,
) {
    let (media, ice) = (out.media, out.ice);
    for effect in effects {
        match effect {
            Effect::Send(c, mut m) => {
                // Only an admitted participant gets TURN credentials: `joined`, never `lobby`.
                if let Some(ice) = ice {
                    ice.fill(&mut m);
                }
                send(conns, c, Outbound::Message(Box::new(m)))
            }
            Effect::Close(c) => send(conns, c, Outbound::Close),
            Effect::Media(cmd) => {
                // The session is over (left, removed, timed out): so is its relay.
                if let (Some(ice), MediaCommand::RemoveParticipant { participant }) = (ice, &cmd) {
                    ice.revoke(*participant);
                }
                media.command(cmd)
            }
            Effect::Log(record) => out.recorder.record(crate::records::Entry::Room(record)),
        }
    }
}

/// What a `join` with a token is checked and recorded with.
struct TokenJoin<'a> {
    tokens: Option<&'a Tokens>,
    edges: &'a Edges,
    addrs: &'a HashMap<ConnId, std::net::IpAddr>,
}

impl TokenJoin<'_> {
    /// A `join` that carries a token: verify it here (cryptography stays out of the core)
    /// and tell the core who the connection is before the `join` itself. A bad token refuses
    /// the join with `invalid_token`. Both outcomes go to the audit log. `None` for every
    /// other input.
    fn join(
        &self,
        core: &mut RoomCore,
        now: Instant,
        input: &Input,
        expiries: &mut HashMap<ConnId, SystemTime>,
    ) -> Option<Vec<Effect>> {
        let Input::Message(
            conn,
            ClientMessage::Join {
                token: Some(token),
                room,
                ..
            },
        ) = input
        else {
            return None;
        };
        let conn = *conn;
        let verdict = match self.tokens {
            None => Err("this server does not accept invitation tokens".to_owned()),
            Some(t) => (t.check)(token),
        };
        let audit = |kind, actor: String, detail: String| {
            self.edges.recorder.audit(crate::records::AuditEntry {
                kind,
                actor,
                room: Some(room.as_str().to_owned()),
                addr: self.addrs.get(&conn).copied(),
                detail,
                ..Default::default()
            });
        };
        match verdict {
            Ok((identity, expires)) => {
                if self.tokens.is_some_and(|t| t.enforce_expiry) {
                    expiries.insert(conn, expires);
                }
                audit(
                    "token.used",
                    identity.log_label(conclave_proto::ParticipantId(conn.0)),
                    String::new(),
                );
                let mut effects = core.handle(now, Input::Identified(conn, identity));
                effects.extend(core.handle(now, input.clone()));
                Some(effects)
            }
            Err(why) => {
                self.edges.counters.token_refused.inc();
                audit("token.refused", "unknown".into(), why.clone());
                Some(core.handle(
                    now,
                    Input::Malformed(conn, ProtocolError::new(ErrorCode::InvalidToken, why)),
                ))
            }
        }
    }
}

fn send(conns: &HashMap<ConnId, mpsc::UnboundedSender<Outbound>>, c: ConnId, o: Outbound) {
    if let Some(tx) = conns.get(&c) {
        // Fails only when the socket task already ended; its Closed input is on the way.
        let _ = tx.send(o);
    }
}

fn media_event(
    core: &mut RoomCore,
    conns: &HashMap<ConnId, mpsc::UnboundedSender<Outbound>>,
    now: Instant,
    event: MediaEvent,
) -> Vec<Effect> {
    match event {
        MediaEvent::Offer {
            participant,
            sdp,
            slots,
            tracks,
        } => {
            let msg = ServerMessage::Offer { sdp, slots, tracks };
            send(
                conns,
                ConnId(participant.0),
                Outbound::Message(Box::new(msg)),
            );
            Vec::new()
        }
        MediaEvent::Error {
            participant,
            error,
            fatal,
        } => {
            let c = ConnId(participant.0);
            send(
                conns,
                c,
                Outbound::Message(Box::new(ServerMessage::Error(error))),
            );
            if fatal {
                end(core, conns, now, c, LeaveReason::Error)
            } else {
                Vec::new()
            }
        }
        MediaEvent::Gone { participant } => end(
            core,
            conns,
            now,
            ConnId(participant.0),
            LeaveReason::Timeout,
        ),
    }
}

/// End a participant's session from the server side: say why, close, tell the core.
fn end(
    core: &mut RoomCore,
    conns: &HashMap<ConnId, mpsc::UnboundedSender<Outbound>>,
    now: Instant,
    c: ConnId,
    reason: LeaveReason,
) -> Vec<Effect> {
    send(
        conns,
        c,
        Outbound::Message(Box::new(ServerMessage::Bye {
            reason,
            message: None,
        })),
    );
    send(conns, c, Outbound::Close);
    core.handle(now, Input::Closed(c, reason))
}
