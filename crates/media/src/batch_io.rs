//! Batched UDP system calls: `sendmmsg` with UDP GSO, and `recvmmsg`. Linux only.
//!
//! This is the only module of the media plane with `unsafe` code; every block states what it
//! relies on. The rest of the plane sees two safe types:
//! - [`SendBatch`]: datagrams queued during one receive batch, sent with one `sendmmsg` through
//!   the shard's unconnected socket, each message carrying its own destination. Runs of
//!   datagrams to the same destination with the same size (the last may be shorter) go out
//!   as one GSO message (`UDP_SEGMENT`): the kernel walks its send path once and splits the
//!   run into separate datagrams; the receiver sees ordinary datagrams.
//! - [`RecvBatch`]: reusable buffers for `recvmmsg`, up to [`RecvBatch::CAPACITY`]
//!   datagrams per call.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

use socket2::SockAddr;

/// Most segments in one GSO message (the kernel's `UDP_MAX_SEGMENTS` is 64 on older kernels).
const MAX_GSO_SEGMENTS: usize = 64;
/// Most payload bytes in one GSO message (a UDP datagram's length field is 16 bits).
const MAX_GSO_BYTES: usize = 65_000;
/// The kernel caps one `sendmmsg`/`recvmmsg` at `UIO_MAXIOV` messages.
const MAX_MESSAGES: usize = 1024;
/// Largest datagram [`RecvBatch`] takes; longer ones are dropped (none of ours is near it).
const RECV_BUF: usize = 2048;
/// Space for one `UDP_SEGMENT` control message (a `u16`), rounded as `CMSG_SPACE` does.
const CMSG_BUF: usize = 32;

/// What one [`SendBatch::send`] did, for counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendOutcome {
    /// Datagrams handed to the kernel.
    pub sent: usize,
    /// Datagrams dropped (full send buffer or a per-destination error).
    pub dropped: usize,
    /// Messages those datagrams went in (fewer than datagrams when GSO grouped some).
    pub messages: usize,
    /// `sendmmsg` calls made.
    pub calls: usize,
}

/// One message of a `sendmmsg`: `count` queued datagrams from `start`, all to one
/// destination; with `count > 1` a GSO message with segment size `segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Message {
    start: usize,
    count: usize,
    segment: usize,
}

/// Group queued datagrams into messages. A GSO run needs one destination, equal sizes for all
/// but the last segment, a last one no longer than the others, and stays within the
/// kernel's segment and byte limits. Only neighbours are grouped, so the order to each
/// destination is kept.
fn plan(packets: &[(SocketAddr, Vec<u8>)], gso: bool, out: &mut Vec<Message>) {
    out.clear();
    let mut i = 0;
    while i < packets.len() {
        let (dest, first) = (&packets[i].0, packets[i].1.len());
        let mut count = 1;
        let mut bytes = first;
        if gso && first > 0 {
            while let Some((d, p)) = packets.get(i + count) {
                let fits = d == dest
                    && p.len() <= first
                    && !p.is_empty()
                    && count < MAX_GSO_SEGMENTS
                    && bytes + p.len() <= MAX_GSO_BYTES;
                if !fits {
                    break;
                }
                count += 1;
                bytes += p.len();
                if p.len() < first {
                    break; // a shorter segment must be the last
                }
            }
        }
        out.push(Message {
            start: i,
            count,
            segment: first,
        });
        i += count;
    }
}

/// Datagrams queued for one `sendmmsg`, with the scratch space to build it (kept between
/// calls so a steady stream of batches allocates nothing here).
pub struct SendBatch {
    packets: Vec<(SocketAddr, Vec<u8>)>,
    gso: bool,
    messages: Vec<Message>,
    names: Vec<SockAddr>,
    scratch: Scratch,
}

/// The raw arrays handed to the kernel. They hold pointers into `SendBatch`'s vectors only
/// during [`SendBatch::send`] and are cleared before it returns.
#[derive(Default)]
struct Scratch {
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    cmsgs: Vec<[u64; CMSG_BUF / 8]>,
}

// SAFETY: `Scratch` is empty (no pointers) whenever `send` is not running, and `send` takes
// `&mut self`, so no pointer in it is ever seen by another thread.
unsafe impl Send for Scratch {}

impl SendBatch {
    /// An empty batch; `gso` says whether to try UDP GSO (see [`gso_supported`]).
    pub fn new(gso: bool) -> SendBatch {
        SendBatch {
            packets: Vec::new(),
            gso,
            messages: Vec::new(),
            names: Vec::new(),
            scratch: Scratch::default(),
        }
    }

    /// Queue a datagram.
    pub fn push(&mut self, dest: SocketAddr, data: Vec<u8>) {
        self.packets.push((dest, data));
    }

    /// Bytes queued.
    pub fn bytes(&self) -> usize {
        self.packets.iter().map(|(_, d)| d.len()).sum()
    }

    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether GSO is (still) in use.
    #[cfg(test)]
    pub fn gso(&self) -> bool {
        self.gso
    }

    /// Send everything queued through `socket` (unconnected; each message names its
    /// destination) and empty the batch. A full send buffer drops the rest of the batch, as
    /// a congested network would; an error for one message drops that message only. If a
    /// GSO message fails, GSO is turned off for this batch's socket from then on (some
    /// drivers refuse it with `EIO` or `EINVAL`) and its datagrams are sent one by one.
    pub fn send(&mut self, socket: &impl AsRawFd) -> SendOutcome {
        let mut outcome = SendOutcome::default();
        let fd = socket.as_raw_fd();
        let mut from = 0;
        while from < self.packets.len() {
            plan(&self.packets[from..], self.gso, &mut self.messages);
            for m in &mut self.messages {
                m.start += from;
            }
            match self.send_planned(fd, &mut outcome) {
                None => break,
                Some(retry_from) => {
                    tracing::info!("UDP GSO refused by the kernel; sending datagrams singly");
                    self.gso = false;
                    from = retry_from;
                }
            }
        }
        self.packets.clear();
        outcome
    }

    /// Send `self.messages`. Returns the first datagram to send again without GSO when a GSO
    /// message failed, else `None`.
    fn send_planned(&mut self, fd: RawFd, outcome: &mut SendOutcome) -> Option<usize> {
        let n = self.messages.len();
        self.names.clear();
        self.names.extend(
            self.messages
                .iter()
                .map(|m| SockAddr::from(self.packets[m.start].0)),
        );
        let s = &mut self.scratch;
        s.iovs.clear();
        s.hdrs.clear();
        s.cmsgs.clear();
        // Fill the arrays completely before taking pointers into them: no reallocation may
        // happen once a header points at an iovec, a name or a control buffer.
        s.iovs.reserve(self.packets.len());
        for (_, data) in &self.packets {
            s.iovs.push(libc::iovec {
                iov_base: data.as_ptr() as *mut libc::c_void,
                iov_len: data.len(),
            });
        }
        s.cmsgs.resize(n, [0; CMSG_BUF / 8]);
        for (i, m) in self.messages.iter().enumerate() {
            // SAFETY: mmsghdr is a plain C struct; all-zero is its "empty" value.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            let name = &self.names[i];
            h.msg_hdr.msg_name = name.as_ptr() as *mut libc::c_void;
            h.msg_hdr.msg_namelen = name.len();
            h.msg_hdr.msg_iov = s.iovs[m.start..].as_mut_ptr();
            h.msg_hdr.msg_iovlen = m.count as _;
            if m.count > 1 {
                let buf = &mut s.cmsgs[i];
                h.msg_hdr.msg_control = buf.as_mut_ptr() as *mut libc::c_void;
                // SAFETY: CMSG_SPACE only computes a size.
                h.msg_hdr.msg_controllen =
                    unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as _;
                debug_assert!(h.msg_hdr.msg_controllen as usize <= CMSG_BUF);
                // SAFETY: msg_control points at CMSG_BUF zeroed, 8-aligned bytes, enough for
                // one cmsghdr with a u16 (asserted above), so CMSG_FIRSTHDR is non-null and
                // its data area is inside the buffer.
                unsafe {
                    let c = libc::CMSG_FIRSTHDR(&h.msg_hdr);
                    (*c).cmsg_level = libc::SOL_UDP;
                    (*c).cmsg_type = libc::UDP_SEGMENT;
                    (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, m.segment as u16);
                }
            }
            s.hdrs.push(h);
        }

        let mut done = 0;
        let mut retry = None;
        while done < n {
            let chunk = (n - done).min(MAX_MESSAGES);
            // SAFETY: hdrs[done..done + chunk] are initialised headers whose pointers (names,
            // iovecs, payloads, control buffers) stay valid and unmoved for this call: all
            // live in vectors that are not touched until it returns.
            let r = unsafe { libc::sendmmsg(fd, s.hdrs[done..].as_mut_ptr(), chunk as u32, 0) };
            outcome.calls += 1;
            if r > 0 {
                let r = r as usize;
                outcome.messages += r;
                outcome.sent += self.messages[done..done + r]
                    .iter()
                    .map(|m| m.count)
                    .sum::<usize>();
                done += r;
                continue;
            }
            let e = io::Error::last_os_error();
            let m = self.messages[done];
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => {
                    // Send buffer full: drop the rest of this batch.
                    let rest: usize = self.messages[done..].iter().map(|m| m.count).sum();
                    tracing::debug!(dropped = rest, "udp send buffer full");
                    outcome.dropped += rest;
                    break;
                }
                _ if m.count > 1 => {
                    tracing::debug!(dest = %self.packets[m.start].0, "udp gso send: {e}");
                    retry = Some(m.start);
                    break;
                }
                _ => {
                    // One destination's trouble (e.g. unreachable): skip that datagram.
                    tracing::debug!(dest = %self.packets[m.start].0, "udp send: {e}");
                    outcome.dropped += 1;
                    done += 1;
                }
            }
        }
        s.hdrs.clear();
        s.iovs.clear();
        retry
    }
}

/// Whether this kernel offers UDP GSO on `socket` (Linux 4.18 and later).
pub fn gso_supported(socket: &impl AsRawFd) -> bool {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `v`, a c_int of that size.
    let r = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            &mut v as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    r == 0
}

/// Buffers for receiving up to [`RecvBatch::CAPACITY`] datagrams with one `recvmmsg`.
pub struct RecvBatch {
    bufs: Vec<u8>,
    names: Vec<libc::sockaddr_storage>,
    /// (length, source) of each datagram of the last call; `None` for a datagram that was
    /// truncated or came from an address family we do not speak.
    got: Vec<Option<(usize, SocketAddr)>>,
    scratch: Scratch,
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBatch {
    /// Datagrams taken per call.
    pub const CAPACITY: usize = 32;

    /// Allocate the buffers (64 KiB).
    pub fn new() -> RecvBatch {
        RecvBatch {
            bufs: vec![0; RECV_BUF * Self::CAPACITY],
            // SAFETY: sockaddr_storage is a plain C struct; all-zero is valid.
            names: vec![unsafe { zeroed() }; Self::CAPACITY],
            got: Vec::with_capacity(Self::CAPACITY),
            scratch: Scratch::default(),
        }
    }

    /// Receive what is waiting on non-blocking `socket`, at most [`RecvBatch::CAPACITY`]
    /// datagrams. `Ok(n)` with `n < CAPACITY` means the socket was drained at that moment.
    /// `WouldBlock` when nothing was waiting.
    pub fn recv(&mut self, socket: &impl AsRawFd) -> io::Result<usize> {
        let s = &mut self.scratch;
        s.iovs.clear();
        s.hdrs.clear();
        for chunk in self.bufs.chunks_exact_mut(RECV_BUF) {
            s.iovs.push(libc::iovec {
                iov_base: chunk.as_mut_ptr() as *mut libc::c_void,
                iov_len: RECV_BUF,
            });
        }
        for (i, name) in self.names.iter_mut().enumerate() {
            // SAFETY: mmsghdr is a plain C struct; all-zero is its "empty" value.
            let mut h: libc::mmsghdr = unsafe { zeroed() };
            h.msg_hdr.msg_name = name as *mut libc::sockaddr_storage as *mut libc::c_void;
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut s.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            s.hdrs.push(h);
        }
        // SAFETY: CAPACITY headers, each pointing at its own RECV_BUF-byte slice of `bufs`
        // and its own sockaddr_storage; none of these vectors is touched during the call.
        // A null timeout with MSG_DONTWAIT returns at once.
        let r = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                s.hdrs.as_mut_ptr(),
                Self::CAPACITY as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let result = if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            let n = r as usize;
            self.got.clear();
            for (h, name) in s.hdrs[..n].iter().zip(&self.names) {
                let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
                let len = h.msg_len as usize;
                let from = to_socket_addr(name, h.msg_hdr.msg_namelen);
                self.got.push(match from {
                    Some(a) if !truncated && len <= RECV_BUF => Some((len, a)),
                    _ => None,
                });
            }
            Ok(n)
        };
        s.hdrs.clear();
        s.iovs.clear();
        result
    }

    /// Datagram `i` of the last [`RecvBatch::recv`]: its bytes and source, or `None` if it
    /// was truncated or from an unknown address family.
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let (len, from) = (*self.got.get(i)?)?;
        let start = i * RECV_BUF;
        Some((&self.bufs[start..start + len], from))
    }
}

/// Read an IPv4 or IPv6 address the kernel wrote into `s`.
fn to_socket_addr(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match s.ss_family as libc::c_int {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and sockaddr_storage
            // is large and aligned enough for every sockaddr type.
            let a = unsafe { &*(s as *const libc::sockaddr_storage as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn a(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn sizes(v: &[(u16, usize)]) -> Vec<(SocketAddr, Vec<u8>)> {
        v.iter().map(|(p, n)| (a(*p), vec![0; *n])).collect()
    }

    fn runs(packets: &[(SocketAddr, Vec<u8>)], gso: bool) -> Vec<(usize, usize)> {
        let mut m = Vec::new();
        plan(packets, gso, &mut m);
        m.iter().map(|m| (m.start, m.count)).collect()
    }

    #[test]
    fn plan_groups_equal_neighbours_to_one_destination() {
        let p = sizes(&[
            (1, 1000),
            (1, 1000),
            (1, 600),
            (1, 1000),
            (2, 1000),
            (2, 1000),
        ]);
        assert_eq!(runs(&p, true), vec![(0, 3), (3, 1), (4, 2)]);
        // Without GSO every datagram is its own message.
        assert_eq!(runs(&p, false).len(), 6);
        // A longer datagram cannot follow shorter ones in a run.
        let p = sizes(&[(1, 500), (1, 1000)]);
        assert_eq!(runs(&p, true), vec![(0, 1), (1, 1)]);
        // Destinations interleaved: nothing to group, order kept.
        let p = sizes(&[(1, 100), (2, 100), (1, 100)]);
        assert_eq!(runs(&p, true), vec![(0, 1), (1, 1), (2, 1)]);
        // Limits: segments and bytes.
        let p = sizes(&[(1, 100); 70]);
        assert_eq!(runs(&p, true), vec![(0, 64), (64, 6)]);
        let p = sizes(&[(1, 1200); 60]);
        assert_eq!(runs(&p, true)[0], (0, MAX_GSO_BYTES / 1200));
        // Empty datagrams are never grouped.
        let p = sizes(&[(1, 0), (1, 0)]);
        assert_eq!(runs(&p, true), vec![(0, 1), (1, 1)]);
    }

    fn receiver() -> UdpSocket {
        let r = UdpSocket::bind("127.0.0.1:0").unwrap();
        r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        r
    }

    /// Over real loopback sockets: every datagram arrives whole and in order, at the right
    /// receiver, with and without GSO; and `RecvBatch` takes them in one call.
    #[test]
    fn batches_arrive_as_separate_datagrams() {
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.set_nonblocking(true).unwrap();
        let gso = gso_supported(&sender);
        // Linux has had UDP GSO since 4.18; this machine's kernel must offer it.
        assert!(gso, "UDP GSO not supported by this kernel");
        for use_gso in [false, gso] {
            let r1 = receiver();
            let r2 = receiver();
            let mut b = SendBatch::new(use_gso);
            let mut expect1 = Vec::new();
            let mut expect2 = Vec::new();
            for i in 0..10u8 {
                let (dest, expect, len) = if i % 4 == 3 {
                    (r2.local_addr().unwrap(), &mut expect2, 300)
                } else {
                    (
                        r1.local_addr().unwrap(),
                        &mut expect1,
                        if i == 9 { 700 } else { 1000 },
                    )
                };
                let data = vec![i; len];
                expect.push(data.clone());
                b.push(dest, data);
            }
            let out = b.send(&sender);
            assert_eq!((out.sent, out.dropped, out.calls), (10, 0, 1), "{out:?}");
            // With GSO the runs 0-2, 4-6 and 8-9 to the first receiver go as one message each.
            assert_eq!(out.messages, if use_gso { 5 } else { 10 }, "{out:?}");
            assert_eq!(b.len(), 0);
            assert_eq!(b.gso(), use_gso, "GSO stays on when it works");
            let mut buf = [0u8; 4096];
            for (r, expect) in [(&r1, &expect1), (&r2, &expect2)] {
                for e in expect {
                    let (n, from) = r.recv_from(&mut buf).unwrap();
                    assert_eq!(from, sender.local_addr().unwrap());
                    assert_eq!(&buf[..n], &e[..]);
                }
            }
        }

        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let mut batch = RecvBatch::new();
        assert_eq!(
            batch.recv(&rx).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        for i in 0..5u8 {
            sender
                .send_to(&vec![i; 100 + i as usize], rx.local_addr().unwrap())
                .unwrap();
        }
        // Loopback delivery is synchronous: all five are queued already.
        let n = batch.recv(&rx).unwrap();
        assert_eq!(n, 5);
        for i in 0..5 {
            let (data, from) = batch.get(i).unwrap();
            assert_eq!(from, sender.local_addr().unwrap());
            assert_eq!(data, &vec![i as u8; 100 + i][..]);
        }
        assert!(batch.get(5).is_none());
    }

    #[test]
    fn an_unreachable_destination_drops_only_its_datagram() {
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.set_nonblocking(true).unwrap();
        let r = receiver();
        let mut b = SendBatch::new(false);
        // An IPv6 destination on an IPv4 socket fails with EAFNOSUPPORT/EINVAL.
        b.push("[::1]:9".parse().unwrap(), vec![1; 10]);
        b.push(r.local_addr().unwrap(), vec![2; 10]);
        let out = b.send(&sender);
        assert_eq!((out.sent, out.dropped), (1, 1), "{out:?}");
        let mut buf = [0u8; 64];
        let (n, _) = r.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[2; 10]);
    }
}
