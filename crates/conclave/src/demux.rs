//! The HTTPS port carries three protocols, told apart by their first bytes so that a client
//! that can reach only TCP 443 still gets media:
//!
//! - `0x16` (a TLS handshake record): TLS. After the handshake, ALPN `stun.turn` (RFC 7443)
//!   means TURN over TLS; without ALPN the first decrypted bytes decide: STUN starts with
//!   `0x00` or `0x01` (a TURN client always begins with a request), HTTP with a letter;
//! - `0x00` / `0x01`: STUN — TURN over plain TCP;
//! - anything else: closed.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the first byte of a connection (or of its decrypted stream) starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// A TLS handshake.
    Tls,
    /// A STUN message (TURN).
    Stun,
    /// Something else (HTTP inside TLS; garbage outside).
    Other,
}

/// Classify a first byte.
pub fn opening(first: u8) -> Opening {
    match first {
        0x16 => Opening::Tls,
        0x00 | 0x01 => Opening::Stun,
        _ => Opening::Other,
    }
}

/// A stream whose first bytes were already read: they are read again first.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `prefix` comes before whatever `inner` still has.
    pub fn new(prefix: Vec<u8>, inner: S) -> Prefixed<S> {
        Prefixed {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = (self.prefix.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn first_bytes() {
        assert_eq!(opening(0x16), Opening::Tls);
        assert_eq!(opening(0x00), Opening::Stun);
        assert_eq!(opening(0x01), Opening::Stun);
        for b in [b'G', b'P', b'H', 0x40, 0x80, 0xFF] {
            assert_eq!(opening(b), Opening::Other, "{b:#x}");
        }
    }

    #[tokio::test]
    async fn the_prefix_is_read_again_first() {
        let inner: &[u8] = b" world";
        let mut s = Prefixed::new(b"hello".to_vec(), inner);
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }
}
