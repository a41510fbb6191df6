//! The TURN core on simulated time: the credential rules, the relay restriction, limits,
//! lifetimes and hostile input.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::auth::Credentials;
use crate::core::{ClientId, Now, Output, TurnConfig, TurnCore};
use crate::stun::{self, Builder, Class, Message, attr, method};

const MEDIA: &str = "127.0.0.1:10000";
const RELAY: &str = "127.0.0.1:40000";
const CLIENT: &str = "127.0.0.1:50000";

struct World {
    core: TurnCore,
    creds: Credentials,
    now: Now,
    tx: u8,
}

impl World {
    fn new() -> World {
        let creds = Credentials::from_secrets("conclave", b"secret", b"nonce");
        let config = TurnConfig {
            peers: vec![(MEDIA.parse().unwrap(), MEDIA.parse().unwrap())],
            max_allocations_per_grant: 2,
            ..TurnConfig::default()
        };
        World {
            core: TurnCore::new(config, creds.clone()),
            creds,
            now: Now {
                mono: Instant::now(),
                unix: 1_000_000,
            },
            tx: 0,
        }
    }

    fn next_tx(&mut self) -> [u8; 12] {
        self.tx += 1;
        [self.tx; 12]
    }

    fn advance(&mut self, d: Duration) {
        self.now.mono += d;
        self.now.unix += d.as_secs();
    }

    /// Grant `id` and return its (username, password).
    fn granted(&mut self, id: &str) -> (String, String) {
        let c = self.creds.mint(id, self.now.unix + 600);
        self.core.grant(id, &c.username);
        (c.username, c.password)
    }

    fn send(&mut self, client: ClientId, data: &[u8]) -> Vec<Output> {
        let addr = match client {
            ClientId::Udp(a) => a,
            ClientId::Stream(_) => CLIENT.parse().unwrap(),
        };
        self.core.from_client(self.now, client, addr, data)
    }

    /// A request with the long-term credential of `user` (nonce from a first 401).
    fn request(
        &mut self,
        client: ClientId,
        m: u16,
        user: Option<(&str, &str)>,
        build: impl Fn(&mut Builder),
    ) -> Message<'static> {
        let tx = self.next_tx();
        let mut b = Builder::new(Class::Request, m, tx);
        build(&mut b);
        let Some((username, password)) = user else {
            return only_reply(self.send(client, &b.fingerprint()));
        };
        // First without credentials: the 401 carries the nonce.
        let first = only_reply(self.send(client, &b.clone().fingerprint()));
        assert_eq!(error_code(&first), Some(401));
        let nonce = first.text(attr::NONCE).expect("401 has a NONCE").to_owned();
        let realm = first.text(attr::REALM).expect("401 has a REALM").to_owned();
        let tx = self.next_tx();
        let mut b = Builder::new(Class::Request, m, tx);
        build(&mut b);
        b.attr(attr::USERNAME, username.as_bytes())
            .attr(attr::REALM, realm.as_bytes())
            .attr(attr::NONCE, nonce.as_bytes());
        b.integrity(&key(username, &realm, password));
        let out = self.send(client, &b.fingerprint());
        self.finish_open(client, out)
    }

    /// Complete an OpenRelay with a relay socket address.
    fn finish_open(&mut self, client: ClientId, out: Vec<Output>) -> Message<'static> {
        match out.as_slice() {
            [Output::OpenRelay { client: c, .. }] => {
                assert_eq!(*c, client);
                let relay: SocketAddr = RELAY.parse().unwrap();
                let relay = SocketAddr::new(relay.ip(), relay.port() + u16::from(self.tx));
                only_reply(self.core.relay_opened(self.now, client, Ok(relay)))
            }
            // A released allocation's CloseRelay may come with the reply.
            _ => only_reply(
                out.into_iter()
                    .filter(|o| !matches!(o, Output::CloseRelay { .. }))
                    .collect(),
            ),
        }
    }

    fn allocate(&mut self, client: ClientId, user: (&str, &str)) -> Message<'static> {
        self.request(client, method::ALLOCATE, Some(user), |b| {
            b.u32(attr::REQUESTED_TRANSPORT, 17 << 24);
        })
    }
}

fn key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    use md5::{Digest, Md5};
    Md5::digest(format!("{username}:{realm}:{password}").as_bytes()).into()
}

fn only_reply(out: Vec<Output>) -> Message<'static> {
    match out.as_slice() {
        [Output::ToClient { data, .. }] => {
            let leaked: &'static [u8] = Box::leak(data.clone().into_boxed_slice());
            Message::parse(leaked).expect("replies parse")
        }
        other => panic!("expected one reply, got {other:?}"),
    }
}

fn error_code(m: &Message) -> Option<u16> {
    if m.class != Class::Error {
        return None;
    }
    m.get(attr::ERROR_CODE)
        .map(|v| u16::from(v[2]) * 100 + u16::from(v[3]))
}

fn udp(port: u16) -> ClientId {
    ClientId::Udp(SocketAddr::new("127.0.0.1".parse().unwrap(), port))
}

#[test]
fn binding_answers_the_mapped_address_without_credentials() {
    let mut w = World::new();
    let m = w.request(udp(5000), method::BINDING, None, |_| {});
    assert_eq!(m.class, Class::Success);
    assert_eq!(
        m.xor_address(attr::XOR_MAPPED_ADDRESS),
        Some(Ok("127.0.0.1:5000".parse().unwrap()))
    );
}

#[test]
fn a_granted_credential_allocates_and_the_reply_is_authenticated() {
    let mut w = World::new();
    let (u, p) = w.granted("p1");
    let m = w.allocate(udp(5000), (&u, &p));
    assert_eq!(m.class, Class::Success, "{:?}", error_code(&m));
    assert!(m.verify_integrity(&key(&u, "conclave", &p)));
    assert!(matches!(
        m.xor_address(attr::XOR_RELAYED_ADDRESS),
        Some(Ok(_))
    ));
    assert_eq!(m.u32(attr::LIFETIME), Some(600));
    assert_eq!(w.core.stats().allocations, 1);
}

#[test]
fn missing_forged_expired_revoked_and_ungranted_credentials_are_refused() {
    let mut w = World::new();
    let (u, p) = w.granted("p1");
    // Forged password.
    assert_eq!(
        error_code(&w.allocate(udp(5000), (&u, "forged"))),
        Some(401)
    );
    // A credential for a grant the server never made (password computed correctly: a
    // leaked secret alone is not enough while the participant is not admitted).
    let c = w.creds.mint("p2", w.now.unix + 600);
    assert_eq!(
        error_code(&w.allocate(udp(5001), (&c.username, &c.password))),
        Some(401)
    );
    // A different expiry than the one granted.
    let other = w.creds.mint("p1", w.now.unix + 900);
    assert_eq!(
        error_code(&w.allocate(udp(5002), (&other.username, &other.password))),
        Some(401)
    );
    // Revoked (the participant left).
    w.core.revoke("p1");
    assert_eq!(error_code(&w.allocate(udp(5003), (&u, &p))), Some(401));
    // Expired.
    let (u, p) = w.granted("p3");
    w.advance(Duration::from_secs(601));
    assert_eq!(error_code(&w.allocate(udp(5004), (&u, &p))), Some(401));
    assert_eq!(w.core.stats().allocations, 0);
}

#[test]
fn revoking_releases_the_allocations_and_closes_streams() {
    let mut w = World::new();
    let (u, p) = w.granted("p1");
    assert_eq!(w.allocate(udp(5000), (&u, &p)).class, Class::Success);
    assert_eq!(
        w.allocate(ClientId::Stream(7), (&u, &p)).class,
        Class::Success
    );
    let out = w.core.revoke("p1");
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, Output::CloseRelay { .. }))
            .count(),
        2
    );
    assert!(out.contains(&Output::CloseClient {
        client: ClientId::Stream(7)
    }));
    assert_eq!(w.core.stats().allocations, 0);
}

#[test]
fn a_stale_nonce_gets_438_with_a_fresh_one() {
    let mut w = World::new();
    let (u, p) = w.granted("p1");
    let nonce = w
        .creds
        .nonce("127.0.0.1:5000".parse().unwrap(), w.now.unix - 1);
    let mut b = Builder::new(Class::Request, method::ALLOCATE, [9; 12]);
    b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
        .attr(attr::USERNAME, u.as_bytes())
        .attr(attr::REALM, b"conclave")
        .attr(attr::NONCE, nonce.as_bytes())
        .integrity(&key(&u, "conclave", &p));
    let m = only_reply(w.send(udp(5000), &b.fingerprint()));
    assert_eq!(error_code(&m), Some(438));
    assert!(m.text(attr::NONCE).is_some_and(|n| n != nonce));
}

#[test]
fn relays_reach_only_the_media_address() {
    let mut w = World::new();
    let (u, p) = w.granted("p1");
    let c = udp(5000);
    assert_eq!(w.allocate(c, (&u, &p)).class, Class::Success);
    for forbidden in [
        "10.0.0.1:10000",
        "192.168.1.1:80",
        "8.8.8.8:53",
        "127.0.0.2:10000",
    ] {
        let peer: SocketAddr = forbidden.parse().unwrap();
        let m = w.request(c, method::CREATE_PERMISSION, Some((&u, &p)), |b| {
            b.xor_address(attr::XOR_PEER_ADDRESS, peer);
        });
        assert_eq!(error_code(&m), Some(403), "permission for {peer}");
        let m = w.request(c, method::CHANNEL_BIND, Some((&u, &p)), |b| {
            b.u32(attr::CHANNEL_NUMBER, 0x4001 << 16)
                .xor_address(attr::XOR_PEER_ADDRESS, peer);
        });
        assert_eq!(error_code(&m), Some(403), "channel to {peer}");
    }
    // Another port on the media IP: a permission is per IP (RFC), but nothing is ever sent
    // to a port other than the media port.
    let other_port: SocketAddr = "127.0.0.1:22".parse().unwrap();
    let m = w.request(c, method::CREATE_PERMISSION, Some((&u, &p)), |b| {
        b.xor_address(attr::XOR_PEER_ADDRESS, other_port);
    });
    assert_eq!(m.class, Class::Success);
    let send = Builder::new(Class::Indication, method::SEND, [3; 12])
        .xor_address(attr::XOR_PEER_ADDRESS, other_port)
        .attr(attr::DATA, b"ssh?")
        .fingerprint();
    assert!(w.send(c, &send).is_empty());
    let m = w.request(c, method::CHANNEL_BIND, Some((&u, &p)), |b| {
        b.u32(attr::CHANNEL_NUMBER, 0x4002 << 16)
            .xor_address(attr::XOR_PEER_ADDRESS, other_port);
    });
    assert_eq!(error_code(&m), Some(403));
    // The media address itself works, by Send and by channel, both directions.
    let media: SocketAddr = MEDIA.parse().unwrap();
    let send = Builder::new(Class::Indication, method::SEND, [4; 12])
        .xor_address(attr::XOR_PEER_ADDRESS, media)
        .attr(attr::DATA, b"stun")
        .fingerprint();
    let out = w.send(c, &send);
    let [Output::ToPeer { relay, peer, data }] = out.as_slice() else {
        panic!("{out:?}");
    };
    assert_eq!((*peer, data.as_slice()), (media, &b"stun"[..]));
    let relay = *relay;
    let m = w.request(c, method::CHANNEL_BIND, Some((&u, &p)), |b| {
        b.u32(attr::CHANNEL_NUMBER, 0x4003 << 16)
            .xor_address(attr::XOR_PEER_ADDRESS, media);
    });
    assert_eq!(m.class, Class::Success);
    let out = w.send(c, &stun::channel_data(0x4003, b"rtp", false));
    assert!(matches!(out.as_slice(), [Output::ToPeer { peer, .. }] if *peer == media));
    let back = w.core.from_peer(w.now, relay, media, b"answer");
    assert_eq!(
        back,
        vec![Output::ToClient {
            client: c,
            data: stun::channel_data(0x4003, b"answer", false)
        }]
    );
    // Anyone else sending to the relay address is dropped.
    assert!(
        w.core
            .from_peer(w.now, relay, "127.0.0.1:9999".parse().unwrap(), b"x")
            .is_empty()
    );
}

#[test]
fn data_from_the_media_plane_needs_a_permission() {
    let mut w = World::new();
    let (u, p) = w.granted("p1");
    let c = udp(5000);
    let m = w.allocate(c, (&u, &p));
    let Some(Ok(relay)) = m.xor_address(attr::XOR_RELAYED_ADDRESS) else {
        panic!()
    };
    let media: SocketAddr = MEDIA.parse().unwrap();
    assert!(w.core.from_peer(w.now, relay, media, b"x").is_empty());
    w.request(c, method::CREATE_PERMISSION, Some((&u, &p)), |b| {
        b.xor_address(attr::XOR_PEER_ADDRESS, media);
    });
    let out = w.core.from_peer(w.now, relay, media, b"hello");
    let [Output::ToClient { data, .. }] = out.as_slice() else {
        panic!("{out:?}")
    };
    let ind = Message::parse(data).unwrap();
    assert_eq!((ind.class, ind.method), (Class::Indication, method::DATA));
    assert_eq!(ind.get(attr::DATA), Some(&b"hello"[..]));
    // Permissions expire after 5 minutes.
    w.advance(Duration::from_secs(301));
    w.core.tick(w.now);
    assert!(w.core.from_peer(w.now, relay, media, b"x").is_empty());
}

#[test]
fn limits_quota_transport_family_and_mismatch() {
    let mut w = World::new();
    let (u, p) = w.granted("p1");
    assert_eq!(w.allocate(udp(5000), (&u, &p)).class, Class::Success);
    // Same 5-tuple, new transaction: 437.
    assert_eq!(error_code(&w.allocate(udp(5000), (&u, &p))), Some(437));
    assert_eq!(w.allocate(udp(5001), (&u, &p)).class, Class::Success);
    // Two per grant in this config.
    assert_eq!(error_code(&w.allocate(udp(5002), (&u, &p))), Some(486));
    let (u2, p2) = w.granted("p2");
    let tcp = w.request(udp(5003), method::ALLOCATE, Some((&u2, &p2)), |b| {
        b.u32(attr::REQUESTED_TRANSPORT, 6 << 24);
    });
    assert_eq!(error_code(&tcp), Some(442));
    let none = w.request(udp(5003), method::ALLOCATE, Some((&u2, &p2)), |_| {});
    assert_eq!(error_code(&none), Some(400));
    let v6 = w.request(udp(5003), method::ALLOCATE, Some((&u2, &p2)), |b| {
        b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
            .u32(attr::REQUESTED_ADDRESS_FAMILY, 0x02 << 24);
    });
    assert_eq!(error_code(&v6), Some(440));
    // Unknown comprehension-required attribute: 420 listing it.
    let m = w.request(udp(5003), method::ALLOCATE, None, |b| {
        b.attr(attr::RESERVATION_TOKEN, &[0; 8]);
    });
    assert_eq!(error_code(&m), Some(420));
    assert_eq!(m.get(attr::UNKNOWN_ATTRIBUTES), Some(&[0x00, 0x22][..]));
    // EVEN-PORT: granted without reservation, refused with.
    let out = {
        let (u, p) = (u2.clone(), p2.clone());
        w.request(udp(5004), method::ALLOCATE, Some((&u, &p)), |b| {
            b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
                .attr(attr::EVEN_PORT, &[0x80]);
        })
    };
    assert_eq!(error_code(&out), Some(508));
}

#[test]
fn lifetimes_refresh_and_expire() {
    let mut w = World::new();
    let (u, p) = w.granted("p1");
    let c = udp(5000);
    let m = w.request(c, method::ALLOCATE, Some((&u, &p)), |b| {
        b.u32(attr::REQUESTED_TRANSPORT, 17 << 24)
            .u32(attr::LIFETIME, 100_000);
    });
    assert_eq!(m.u32(attr::LIFETIME), Some(3600), "clamped to max_lifetime");
    w.advance(Duration::from_secs(3599));
    assert!(w.core.tick(w.now).is_empty());
    let m = w.request(c, method::REFRESH, Some((&u, &p)), |b| {
        b.u32(attr::LIFETIME, 60);
    });
    assert_eq!(m.u32(attr::LIFETIME), Some(60));
    w.advance(Duration::from_secs(61));
    assert!(matches!(
        w.core.tick(w.now).as_slice(),
        [Output::CloseRelay { .. }]
    ));
    assert_eq!(w.core.stats().allocations, 0);
    // Refresh with 0 deletes at once.
    let (u, p) = w.granted("p9");
    w.allocate(c, (&u, &p));
    let m = w.request(c, method::REFRESH, Some((&u, &p)), |b| {
        b.u32(attr::LIFETIME, 0);
    });
    assert_eq!(m.class, Class::Success);
    assert_eq!(w.core.stats().allocations, 0);
}

#[test]
fn bandwidth_is_limited_per_allocation() {
    let creds = Credentials::from_secrets("conclave", b"secret", b"nonce");
    let mut w = World::new();
    w.core = TurnCore::new(
        TurnConfig {
            peers: vec![(MEDIA.parse().unwrap(), MEDIA.parse().unwrap())],
            bytes_per_second: 10_000,
            ..TurnConfig::default()
        },
        creds,
    );
    let (u, p) = w.granted("p1");
    let c = udp(5000);
    w.allocate(c, (&u, &p));
    let media: SocketAddr = MEDIA.parse().unwrap();
    w.request(c, method::CHANNEL_BIND, Some((&u, &p)), |b| {
        b.u32(attr::CHANNEL_NUMBER, 0x4000 << 16)
            .xor_address(attr::XOR_PEER_ADDRESS, media);
    });
    let packet = stun::channel_data(0x4000, &[0u8; 1000], false);
    let sent = (0..50).filter(|_| !w.send(c, &packet).is_empty()).count();
    assert_eq!(sent, 10, "one second of burst at 10 kB/s");
    w.advance(Duration::from_secs(1));
    let sent = (0..50).filter(|_| !w.send(c, &packet).is_empty()).count();
    assert_eq!(sent, 10);
}

#[test]
fn garbage_truncations_and_floods_get_errors_or_silence() {
    let mut w = World::new();
    let (u, p) = w.granted("p1");
    let c = udp(5000);
    w.allocate(c, (&u, &p));
    let good = Builder::new(Class::Request, method::ALLOCATE, [1; 12])
        .u32(attr::REQUESTED_TRANSPORT, 17 << 24)
        .attr(attr::USERNAME, u.as_bytes())
        .fingerprint();
    for n in 0..good.len() {
        let out = w.send(udp(6000), &good[..n]);
        assert!(out.is_empty(), "truncated to {n}: {out:?}");
    }
    let mut x: u64 = 88172645463325252;
    for i in 0..50_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 200) as usize;
        let mut data: Vec<u8> = (0..len).map(|j| (x >> (j % 56)) as u8).collect();
        if i % 2 == 0 && data.len() >= 20 {
            // A valid-looking header with random attributes.
            data[0] = 0;
            data[1] = ((x >> 3) as u8 & 0x1F) | 0x02; // never Binding
            data[2..4].copy_from_slice(&((len as u16 - 20) & !3).to_be_bytes());
            data[4..8].copy_from_slice(&stun::MAGIC_COOKIE.to_be_bytes());
        }
        for o in w.send(c, &data) {
            if let Output::ToClient { data, .. } = o {
                let m = Message::parse(&data).expect("every reply is valid STUN");
                assert_eq!(m.class, Class::Error, "garbage never succeeds");
            }
        }
    }
    // The allocation is still there and still works.
    assert_eq!(w.core.stats().allocations, 1);
}
