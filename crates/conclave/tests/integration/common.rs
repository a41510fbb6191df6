//! Shared helpers: an in-process server on ports 0 with a fresh data directory.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use conclave::Server;
use conclave::config::Config;

pub const ROOM: &str = "integrationroom-0001";

pub struct TestServer {
    pub server: Server,
    pub url: String,
    pub dir: PathBuf,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn start(tweak: impl FnOnce(&mut Config)) -> TestServer {
    let dir = std::env::temp_dir().join(format!(
        "conclave-test-{}-{:x}",
        std::process::id(),
        rand_u64()
    ));
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        media_port: 0,
        data_dir: dir.clone(),
        ..Config::default()
    };
    // Tests run in parallel: every TURN port is picked by the kernel.
    config.turn.udp_port = conclave::turn::Port::On(0);
    config.turn.tcp_port = conclave::turn::Port::On(0);
    config.turn.tls_port = conclave::turn::Port::On(0);
    tweak(&mut config);
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let server = Server::start(config, listener).await.unwrap();
    let url = format!("https://{}", server.https_addr());
    TestServer { server, url, dir }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

/// Poll `f` every 50 ms until it is true or `t` passes.
pub async fn eventually(what: &str, t: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + t;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {t:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A response from [`https`].
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl HttpReply {
    /// The `name=value` part of the first `Set-Cookie` for `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .find(|kv| kv.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }
}

/// One HTTPS/1.1 request to the test server (self-signed certificate accepted).
pub async fn https(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpReply {
    use http_body_util::BodyExt;
    let authority = base.strip_prefix("https://").unwrap().to_owned();
    let tls = conclave_load::insecure_tls_config().unwrap();
    let tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
        .connect(name, tcp)
        .await
        .unwrap();
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", &authority);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.to_owned(),
        )))
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    HttpReply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Join `ROOM` as `name` over a raw WebSocket; the socket and the participant ID.
pub async fn join_raw(
    url: &str,
    name: &str,
) -> (conclave_load::RawSocket, conclave_proto::ParticipantId) {
    match join_raw_message(url, name).await {
        (s, conclave_proto::ServerMessage::Joined { id, .. }) => (s, id),
        (_, m) => panic!("expected joined, got {m:?}"),
    }
}

/// Join `ROOM` as `name` over a raw WebSocket; the socket and the server's first answer
/// that is not an offer (`joined`, or an error).
pub async fn join_raw_message(
    url: &str,
    name: &str,
) -> (conclave_load::RawSocket, conclave_proto::ServerMessage) {
    use conclave_proto::{ClientMessage, ServerMessage};
    let mut s = conclave_load::connect(url).await.unwrap();
    s.send(&ClientMessage::Join {
        v: 1,
        room: ROOM.into(),
        name: name.into(),
        password: None,
        token: None,
    })
    .await
    .unwrap();
    let m = s
        .recv_until(Duration::from_secs(10), |m| {
            !matches!(m, ServerMessage::Offer { .. })
        })
        .await
        .unwrap();
    (s, m)
}
