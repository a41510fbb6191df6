//! A shard's sockets on the shared media port.
//!
//! Every shard has a listening socket bound to the media port with `SO_REUSEPORT` (first
//! contacts land on any of them, by the kernel's 4-tuple hash). Once a participant's address
//! is known, its shard opens a socket bound to the same port and `connect`ed to that
//! address; Linux delivers datagrams to the socket whose 4-tuple matches exactly, so from
//! then on that participant's packets arrive at its own shard. One epoll per shard waits on
//! all of them and on a waker for commands.
//!
//! Connected sockets only receive. Everything a shard sends leaves through its listening
//! socket in one `sendmmsg` per batch (see `batch_io.rs` and `docs/architecture.md`).

use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use socket2::{Domain, Protocol, Socket, Type};

use crate::batch_io::{self, RecvBatch, SendBatch, SendOutcome};

const LISTEN: Token = Token(0);
const WAKE: Token = Token(1);

/// Bind a non-blocking UDP socket with `SO_REUSEPORT` (only sockets of the same user can
/// join the group).
pub fn reuseport_socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    // Room for bursts: a video frame to many subscribers leaves at once.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Which socket is readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// The shard's listening socket.
    Listen,
    /// The socket connected to this remote address.
    Conn(SocketAddr),
    /// Commands or handed-over datagrams are waiting.
    Wake,
}

/// A shard's sockets and its epoll.
pub struct Sockets {
    poll: Poll,
    events: Events,
    listen: UdpSocket,
    bind: SocketAddr,
    conns: HashMap<SocketAddr, (Token, UdpSocket)>,
    tokens: HashMap<Token, SocketAddr>,
    next: usize,
}

impl Sockets {
    /// Take a bound listening socket; returns the sockets and a waker for other threads.
    pub fn new(listen: std::net::UdpSocket) -> io::Result<(Sockets, Waker)> {
        let bind = listen.local_addr()?;
        let poll = Poll::new()?;
        let mut listen = UdpSocket::from_std(listen);
        poll.registry()
            .register(&mut listen, LISTEN, Interest::READABLE)?;
        let waker = Waker::new(poll.registry(), WAKE)?;
        Ok((
            Sockets {
                poll,
                events: Events::with_capacity(256),
                listen,
                bind,
                conns: HashMap::new(),
                tokens: HashMap::new(),
                next: 2,
            },
            waker,
        ))
    }

    /// Wait at most `timeout` for readiness.
    pub fn wait(&mut self, timeout: Duration, out: &mut Vec<Ready>) {
        out.clear();
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            if e.kind() != ErrorKind::Interrupted {
                tracing::warn!("epoll: {e}");
            }
            return;
        }
        for ev in self.events.iter() {
            match ev.token() {
                LISTEN => out.push(Ready::Listen),
                WAKE => out.push(Ready::Wake),
                t => {
                    if let Some(a) = self.tokens.get(&t) {
                        out.push(Ready::Conn(*a));
                    }
                }
            }
        }
    }

    /// Receive a batch of datagrams from a socket that was reported readable. `Ok(n)` with
    /// `n` below [`RecvBatch::CAPACITY`] means it is drained; `WouldBlock` when it was empty
    /// (epoll here is edge-triggered: drain until then). The source of each datagram is read
    /// even on connected sockets: a datagram from another peer can land on a new socket in
    /// the instant between bind and connect.
    pub fn recv(&self, which: Ready, batch: &mut RecvBatch) -> io::Result<usize> {
        match which {
            Ready::Listen => batch.recv(&self.listen),
            Ready::Conn(a) => match self.conns.get(&a) {
                Some((_, s)) => batch.recv(s),
                None => Err(ErrorKind::WouldBlock.into()),
            },
            Ready::Wake => Err(ErrorKind::WouldBlock.into()),
        }
    }

    /// Send every queued datagram with as few system calls as possible: through the
    /// listening socket, which is bound to the same address and port as the connected ones,
    /// so the peer sees the same source; each message carries its own destination.
    pub fn send(&self, batch: &mut SendBatch) -> SendOutcome {
        batch.send(&self.listen)
    }

    /// Whether the kernel offers UDP GSO on our sockets.
    pub fn gso_supported(&self) -> bool {
        batch_io::gso_supported(&self.listen)
    }

    /// Open a socket on the media port connected to `remote`.
    pub fn connect(&mut self, remote: SocketAddr) -> io::Result<()> {
        if self.conns.contains_key(&remote) {
            return Ok(());
        }
        let s = reuseport_socket(self.bind)?;
        s.connect(remote)?;
        let mut s = UdpSocket::from_std(s);
        let token = Token(self.next);
        self.next += 1;
        self.poll
            .registry()
            .register(&mut s, token, Interest::READABLE)?;
        self.tokens.insert(token, remote);
        self.conns.insert(remote, (token, s));
        Ok(())
    }

    /// Close the socket connected to `remote`.
    pub fn disconnect(&mut self, remote: SocketAddr) {
        if let Some((token, mut s)) = self.conns.remove(&remote) {
            let _ = self.poll.registry().deregister(&mut s);
            self.tokens.remove(&token);
        }
    }

    /// Connected sockets open.
    pub fn connected(&self) -> usize {
        self.conns.len()
    }
}
