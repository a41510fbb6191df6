//! The built-in TURN server against an independent client (coturn's `turnutils_uclient`,
//! installed by the test command): valid credentials from `joined` allocate; expired,
//! forged, missing and revoked ones are refused; relays reach only the media address; and
//! malformed STUN/TURN floods leave a running meeting alone.

use crate::common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use conclave_load::TestParticipant;
use conclave_proto::Source;
use conclave_proto::{ClientMessage, IceServer, IceTransportPolicy, ServerMessage};
use conclave_turn::stun::{Builder, Class, Message, attr, method};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

const UCLIENT: &str = "turnutils_uclient";

/// The TURN server entry of a `joined`.
fn turn_entry(m: &ServerMessage) -> IceServer {
    let ServerMessage::Joined { ice: Some(ice), .. } = m else {
        panic!("expected joined with ice, got {m:?}");
    };
    ice.servers
        .iter()
        .find(|s| s.username.is_some())
        .cloned()
        .expect("joined carries a TURN server with a credential")
}

/// Run `turnutils_uclient` against our UDP (or TCP with `tcp`) listener; its output.
fn uclient(server: SocketAddr, user: &str, pass: &str, peer: SocketAddr, tcp: bool) -> String {
    uclient_with(server, user, pass, peer, if tcp { &["-t"] } else { &[] })
}

/// `turnutils_uclient` with more `flags` (e.g. `-t -S`: TCP with TLS).
fn uclient_with(
    server: SocketAddr,
    user: &str,
    pass: &str,
    peer: SocketAddr,
    flags: &[&str],
) -> String {
    let mut cmd = Command::new(UCLIENT);
    cmd.args(flags);
    if !user.is_empty() {
        cmd.args(["-u", user, "-w", pass]);
    }
    cmd.args(["-v", "-c", "-n", "3", "-m", "1", "-z", "5"])
        .args(["-e", &peer.ip().to_string(), "-r", &peer.port().to_string()])
        .args(["-p", &server.port().to_string(), &server.ip().to_string()]);
    let out = run_bounded(cmd, Duration::from_secs(20));
    println!("--- uclient ({user}) peer {peer} ---\n{out}");
    out
}

/// Run a command with a deadline (uclient waits for echoes that our media plane never
/// sends); everything it printed.
fn run_bounded(mut cmd: Command, limit: Duration) -> String {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{UCLIENT} must be installed (Debian coturn): {e}"));
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    out
}

/// Whether uclient got a relay address (its allocation succeeded).
fn allocated(out: &str) -> bool {
    out.contains("Received relay addr")
}

/// Whether the server answered uclient's Allocate but gave no relay (uclient retries a 401
/// without printing it).
fn refused(out: &str) -> bool {
    !allocated(out) && out.contains("allocate response received")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_independent_turn_client_allocates_with_our_credentials_only() {
    let t = common::start(|_| {}).await;
    let addrs = t.server.turn_addrs();
    let (udp, tcp) = (addrs.udp.expect("TURN UDP"), addrs.tcp.expect("TURN TCP"));
    let https = t.server.https_addr();
    let media = t.server.media_addr();
    let (mut s, joined) = common::join_raw_message(&t.url, "Alice").await;
    let ServerMessage::Joined { ice: Some(ice), .. } = &joined else {
        panic!("{joined:?}");
    };
    assert_eq!(ice.transport_policy, IceTransportPolicy::All);
    let ice_servers = &ice.servers;
    // Only our own servers: STUN, TURN on UDP, TURN over TLS and TCP on the HTTPS port (TCP
    // 3478 and the TLS port listen too, for clients configured by hand).
    let urls: Vec<&str> = ice_servers
        .iter()
        .flat_map(|s| &s.urls)
        .map(String::as_str)
        .collect();
    let udp_port = udp.port();
    let expected = [
        format!("stun:127.0.0.1:{udp_port}"),
        format!("turn:127.0.0.1:{udp_port}?transport=udp"),
        format!("turns:127.0.0.1:{}?transport=tcp", https.port()),
        format!("turn:127.0.0.1:{}?transport=tcp", https.port()),
    ];
    assert_eq!(urls, expected);
    let entry = turn_entry(&joined);
    let (user, pass) = (entry.username.unwrap(), entry.credential.unwrap());

    // Valid: UDP, TCP, and plain TCP on the HTTPS port (first-bytes demultiplexing).
    assert!(
        allocated(&uclient(udp, &user, &pass, media, false)),
        "UDP allocation"
    );
    assert!(
        allocated(&uclient(tcp, &user, &pass, media, true)),
        "TCP allocation"
    );
    assert!(
        allocated(&uclient(https, &user, &pass, media, true)),
        "TCP allocation on the HTTPS port"
    );
    // TURN over TLS on its own port and on the HTTPS port (uclient checks no certificate).
    let tls = addrs.tls.expect("TURN TLS");
    for (server, what) in [(tls, "TLS port"), (https, "HTTPS port")] {
        let out = uclient_with(server, &user, &pass, media, &["-t", "-S"]);
        assert!(allocated(&out), "TLS allocation on the {what}: {out}");
    }
    // The HTTPS port still serves HTTPS.
    assert_eq!(common::https(&t.url, "GET", "/", &[], "").await.status, 200);

    // Forged password, and no credentials at all.
    let out = uclient(udp, &user, "Zm9yZ2Vk", media, false);
    assert!(refused(&out), "forged: {out}");
    let out = uclient(udp, "", "", media, false);
    assert!(refused(&out), "missing: {out}");
    // A username changed to a later expiry does not match its password.
    let (_, grant) = user.split_once(':').unwrap();
    let out = uclient(udp, &format!("9999999999:{grant}"), &pass, media, false);
    assert!(refused(&out), "altered: {out}");

    // A relay to anything but the media address is refused.
    for other in ["127.0.0.1:22", "10.1.2.3:10000", "192.168.0.1:443"] {
        let out = uclient(udp, &user, &pass, other.parse().unwrap(), false);
        assert!(out.contains("error 403"), "relay to {other}: {out}");
    }

    // After leaving, the credential is dead.
    s.send(&ClientMessage::Leave {}).await.unwrap();
    drop(s);
    let stats = t.server.turn_stats().await.unwrap();
    assert!(stats.refused > 0, "{stats:?}");
    let mut out = String::new();
    for _ in 0..20 {
        out = uclient(udp, &user, &pass, media, false);
        if refused(&out) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused(&out), "after leave: {out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_credential_opens_no_allocation() {
    let t = common::start(|c| c.turn.credential_ttl_secs = 5).await;
    let udp = t.server.turn_addrs().udp.unwrap();
    let (_s, joined) = common::join_raw_message(&t.url, "Alice").await;
    let entry = turn_entry(&joined);
    let (user, pass) = (entry.username.unwrap(), entry.credential.unwrap());
    let media = t.server.media_addr();
    assert!(allocated(&uclient(udp, &user, &pass, media, false)));
    tokio::time::sleep(Duration::from_secs(6)).await;
    let out = uclient(udp, &user, &pass, media, false);
    assert!(refused(&out), "expired: {out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn relay_only_is_announced_and_direct_media_is_refused() {
    let t = common::start(|c| c.network.relay_only = true).await;
    let (_s, joined) = common::join_raw_message(&t.url, "Alice").await;
    let ServerMessage::Joined { ice, .. } = &joined else {
        panic!("expected joined, got {joined:?}")
    };
    let ice = ice.as_ref().expect("joined carries ICE settings");
    assert_eq!(ice.transport_policy, IceTransportPolicy::Relay);
    // A headless participant that talks to the media port directly never connects.
    let p = TestParticipant::join(&t.url, common::ROOM, "Direct")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !p.connected(),
        "a direct media path was accepted under relay_only"
    );
    assert_eq!(p.datagrams_received(), 0);
}

/// A Binding request on UDP; whether a success came back.
async fn binding_answers(udp: SocketAddr) -> bool {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let req = Builder::new(Class::Request, method::BINDING, [7; 12]).fingerprint();
    s.send_to(&req, udp).await.unwrap();
    let mut buf = [0u8; 1500];
    match tokio::time::timeout(Duration::from_secs(2), s.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Message::parse(&buf[..n]).is_ok_and(|m| {
            m.class == Class::Success && m.xor_address(attr::XOR_MAPPED_ADDRESS).is_some()
        }),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_stun_and_floods_leave_a_running_meeting_alone() {
    let t = common::start(|_| {}).await;
    let addrs = t.server.turn_addrs();
    let (udp, tcp) = (addrs.udp.unwrap(), addrs.tcp.unwrap());
    let https = t.server.https_addr();
    let a = TestParticipant::join(&t.url, common::ROOM, "Ada")
        .await
        .unwrap();
    let b = TestParticipant::join(&t.url, common::ROOM, "Bob")
        .await
        .unwrap();
    for p in [&a, &b] {
        p.publish(Source::Microphone);
        p.publish(Source::Camera);
    }
    common::eventually("media flows", Duration::from_secs(20), || {
        a.received()
            .get(&(b.id, Source::Camera))
            .copied()
            .unwrap_or(0)
            > 20
    })
    .await;
    assert!(binding_answers(udp).await);

    // Hostile input of every kind, for a few seconds.
    let good = Builder::new(Class::Request, method::ALLOCATE, [1; 12])
        .u32(attr::REQUESTED_TRANSPORT, 17 << 24)
        .attr(attr::USERNAME, b"1:2")
        .attr(attr::REALM, b"conclave")
        .attr(attr::NONCE, b"00-00")
        .integrity(b"0123456789abcdef")
        .fingerprint();
    let mut datagrams: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
    let mut wrong_len = good.clone();
    wrong_len[2..4].copy_from_slice(&0xFFF0u16.to_be_bytes());
    datagrams.push(wrong_len);
    datagrams.push(
        Builder::new(Class::Request, method::ALLOCATE, [2; 12])
            .attr(0x7777, b"unknown")
            .fingerprint(),
    );
    datagrams.push(vec![0x40, 0x00, 0xFF, 0xFF, 1, 2, 3]); // ChannelData claiming 64 KB
    datagrams.push(vec![0xFF; 1400]);
    datagrams.push(Vec::new());
    let flood = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut sent = 0u64;
    let mut streams = Vec::new();
    while tokio::time::Instant::now() < deadline {
        for d in &datagrams {
            let _ = flood.send_to(d, udp).await;
            let _ = flood.send_to(d, t.server.media_addr()).await;
            sent += 2;
        }
        // Streams: garbage, a huge length, half a message left hanging.
        if streams.len() < 60 {
            for (target, bytes) in [
                (tcp, vec![0x00, 0x03, 0xFF, 0xFF]),
                (tcp, vec![0x9A; 64]),
                (https, good[..10].to_vec()),
                (https, b"\x00\x01\x00\x00garbage".to_vec()),
            ] {
                if let Ok(mut c) = TcpStream::connect(target).await {
                    let _ = c.write_all(&bytes).await;
                    streams.push(c);
                }
            }
        }
        tokio::task::yield_now().await;
    }
    println!(
        "sent {sent} hostile datagrams and opened {} hostile streams",
        streams.len()
    );

    // Still answering, and the meeting still flows.
    assert!(binding_answers(udp).await, "TURN UDP stopped answering");
    let before = a
        .received()
        .get(&(b.id, Source::Camera))
        .copied()
        .unwrap_or(0);
    common::eventually("media keeps flowing", Duration::from_secs(10), || {
        a.received()
            .get(&(b.id, Source::Camera))
            .copied()
            .unwrap_or(0)
            > before + 20
    })
    .await;
    assert_eq!(common::https(&t.url, "GET", "/", &[], "").await.status, 200);
    let stats = t.server.turn_stats().await.unwrap();
    assert_eq!(stats.allocations, 0, "{stats:?}");
}
