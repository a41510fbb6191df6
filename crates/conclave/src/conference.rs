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

/// Run the conference task until every sender is gone.
pub async fn run(
    mut core: RoomCore,
    tokens: Option<Tokens>,
    max_connections: usize,
    media: Arc<MediaPlane>,
    ice: Option<Arc<IceServers>>,
    mut rx: mpsc::UnboundedReceiver<ToConference>,
) {
    let ice = ice.as_deref();
    let mut conns: HashMap<ConnId, mpsc::UnboundedSender<Outbound>> = HashMap::new();
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
                run_effects(&conns, &media, ice, effects);
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
                    run_effects(&conns, &media, ice, effects);
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
                let _ = reply.send(true);
                core.handle(now, Input::Connected(conn, peer))
            }
            ToConference::Input(input) => {
                let closed = match &input {
                    Input::Closed(c, _) => Some(*c),
                    _ => None,
                };
                let effects =
                    match join_with_token(&mut core, now, tokens.as_ref(), &input, &mut expiries) {
                        Some(effects) => effects,
                        None => core.handle(now, input),
                    };
                if let Some(c) = closed {
                    conns.remove(&c);
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
                });
                continue;
            }
        };
        run_effects(&conns, &media, ice, effects);
    }
}

fn run_effects(
    conns: &HashMap<ConnId, mpsc::UnboundedSender<Outbound>>,
    media: &MediaPlane,
    ice: Option<&IceServers>,
    effects: Vec<Effect>,
) {
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
        }
    }
}

/// A `join` that carries a token: verify it here (cryptography stays out of the core) and
/// tell the core who the connection is before the `join` itself. A bad token refuses the
/// join with `invalid_token`. `None` for every other input.
fn join_with_token(
    core: &mut RoomCore,
    now: Instant,
    tokens: Option<&Tokens>,
    input: &Input,
    expiries: &mut HashMap<ConnId, SystemTime>,
) -> Option<Vec<Effect>> {
    let Input::Message(
        conn,
        ClientMessage::Join {
            token: Some(token), ..
        },
    ) = input
    else {
        return None;
    };
    let conn = *conn;
    let verdict = match tokens {
        None => Err("this server does not accept invitation tokens".to_owned()),
        Some(t) => (t.check)(token),
    };
    match verdict {
        Ok((identity, expires)) => {
            if tokens.is_some_and(|t| t.enforce_expiry) {
                expiries.insert(conn, expires);
            }
            let mut effects = core.handle(now, Input::Identified(conn, identity));
            effects.extend(core.handle(now, input.clone()));
            Some(effects)
        }
        Err(why) => Some(core.handle(
            now,
            Input::Malformed(conn, ProtocolError::new(ErrorCode::InvalidToken, why)),
        )),
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
