//! One WebSocket connection: frames in, parsed inputs to the conference task, messages out.
//! This edge translates; it decides nothing except frame-level limits.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use conclave_proto::{ErrorCode, LeaveReason, ProtocolError, ServerMessage, parse_client_message};
use conclave_room::{ConnId, Input, Peer};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use crate::conference::{Outbound, ToConference};

/// WebSocket close code for "message too big" (RFC 6455).
const CLOSE_TOO_BIG: u16 = 1009;
/// WebSocket close code for "try again later" (server full).
const CLOSE_TRY_AGAIN: u16 = 1013;

/// How long a closing socket waits for the peer's close frame before dropping TCP.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// After our close frame: read (and discard) until the peer's close frame, its end of the
/// stream, or [`CLOSE_LINGER`]. Dropping the socket while the peer's frames (a pong, its
/// close reply) sit unread makes the kernel answer with a TCP reset, and a reset can discard
/// our last messages (the `bye` saying why) before the peer has read them (RFC 6455 §7.1.1:
/// the server closes TCP after the close handshake).
async fn linger<S>(stream: &mut S)
where
    S: futures_util::Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(f)) = stream.next().await {
            if matches!(f, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Per-connection settings.
#[derive(Debug, Clone, Copy)]
pub struct SocketLimits {
    /// Largest text frame accepted.
    pub max_message_bytes: usize,
    /// Silence after which the connection is dropped.
    pub idle_timeout: Duration,
}

fn text(m: &ServerMessage) -> Message {
    // Serializing our own message types cannot fail (no maps with non-string keys).
    Message::Text(Utf8Bytes::from(
        serde_json::to_string(m).expect("server messages serialize"),
    ))
}

/// Serve one socket until it closes.
pub async fn serve(
    socket: WebSocket,
    peer: Peer,
    conf: mpsc::UnboundedSender<ToConference>,
    limits: SocketLimits,
) {
    let conn = ConnId(rand::random());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (reply_tx, reply_rx) = oneshot::channel();
    let (mut sink, mut stream) = socket.split();
    if conf
        .send(ToConference::Open {
            conn,
            peer,
            tx,
            reply: reply_tx,
        })
        .is_err()
        || !reply_rx.await.unwrap_or(false)
    {
        let m = ServerMessage::error(ErrorCode::ServerFull, "the server has too many connections");
        let _ = sink.send(text(&m)).await;
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: CLOSE_TRY_AGAIN,
                reason: "server full".into(),
            })))
            .await;
        linger(&mut stream).await;
        return;
    }

    let mut last_heard = Instant::now();
    let mut ping = tokio::time::interval((limits.idle_timeout / 3).min(Duration::from_secs(5)));
    // Set where we send our close frame; the handshake then finishes in `linger`.
    let mut we_closed = true;
    let reason = loop {
        tokio::select! {
            frame = stream.next() => {
                let frame = match frame {
                    None | Some(Err(_)) => {
                        we_closed = false;
                        break LeaveReason::Disconnected;
                    }
                    Some(Ok(f)) => f,
                };
                last_heard = Instant::now();
                let input = match frame {
                    Message::Text(t) if t.len() > limits.max_message_bytes => {
                        let m = ServerMessage::error(
                            ErrorCode::MessageTooLarge,
                            format!(
                                "a message may have at most {} bytes, this one has {}",
                                limits.max_message_bytes,
                                t.len()
                            ),
                        );
                        let _ = sink.send(text(&m)).await;
                        let _ = sink.send(Message::Close(Some(CloseFrame {
                            code: CLOSE_TOO_BIG,
                            reason: "message too large".into(),
                        }))).await;
                        break LeaveReason::Error;
                    }
                    Message::Text(t) => match parse_client_message(t.as_str()) {
                        Ok(m) => Input::Message(conn, m),
                        Err(e) => Input::Malformed(conn, e),
                    },
                    Message::Binary(_) => Input::Malformed(
                        conn,
                        ProtocolError::new(ErrorCode::BinaryFrame, "binary frames are not part of the protocol; send JSON text"),
                    ),
                    Message::Close(_) => {
                        we_closed = false;
                        break LeaveReason::Disconnected;
                    }
                    Message::Ping(_) | Message::Pong(_) => continue,
                };
                if conf.send(ToConference::Input(input)).is_err() {
                    let _ = sink.send(Message::Close(None)).await;
                    break LeaveReason::Error;
                }
            }
            out = rx.recv() => match out {
                Some(Outbound::Message(m)) => {
                    if sink.send(text(&m)).await.is_err() {
                        we_closed = false;
                        break LeaveReason::Disconnected;
                    }
                }
                Some(Outbound::Close) | None => {
                    let _ = sink.send(Message::Close(None)).await;
                    break LeaveReason::Left;
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > limits.idle_timeout {
                    let m = ServerMessage::Bye { reason: LeaveReason::Timeout, message: None };
                    let _ = sink.send(text(&m)).await;
                    let _ = sink.send(Message::Close(None)).await;
                    break LeaveReason::Timeout;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    we_closed = false;
                    break LeaveReason::Disconnected;
                }
            }
        }
    };
    // If the core already ended this session (leave, media timeout) this is a no-op there.
    let _ = conf.send(ToConference::Input(Input::Closed(conn, reason)));
    if we_closed {
        linger(&mut stream).await;
    }
}
