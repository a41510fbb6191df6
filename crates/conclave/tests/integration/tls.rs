//! TLS as deployed: the BSI TR-02102-2 policy checked by an independent scanner (Debian's
//! testssl.sh) on the HTTPS and TURN-TLS ports, certificate files reloaded without a restart,
//! the port-80 listener, and the security headers.

use crate::common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{TestServer, https, start};

/// TLS 1.3 and 1.2 suites TR-02102-2 recommends (IANA names). testssl reports each offered one.
const ALLOWED_SUITES: [&str; 10] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_AES_128_CCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CCM",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    // Listed by the TR for completeness; rustls offers neither CCM nor these.
    "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8",
];

/// Groups TR-02102-2 recommends, as testssl names them.
const ALLOWED_GROUPS: [&str; 8] = [
    "prime256v1",
    "secp384r1",
    "secp521r1",
    "brainpoolP256r1",
    "brainpoolP384r1",
    "brainpoolP512r1",
    "ffdhe3072",
    "ffdhe4096",
];

/// Run testssl against `addr` with `flags`; its JSON findings as (id, finding).
fn testssl(addr: SocketAddr, flags: &[&str]) -> Vec<(String, String)> {
    let json = std::env::temp_dir().join(format!(
        "conclave-testssl-{}-{}.json",
        std::process::id(),
        addr.port()
    ));
    let _ = std::fs::remove_file(&json);
    let out = Command::new("testssl")
        .args(["--quiet", "--color", "0", "--warnings", "off", "--jsonfile"])
        .arg(&json)
        .args(flags)
        .arg(addr.to_string())
        .output()
        .unwrap_or_else(|e| panic!("testssl must be installed (Debian testssl.sh): {e}"));
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "testssl wrote no JSON ({e}); it printed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let _ = std::fs::remove_file(&json);
    let v: serde_json::Value = serde_json::from_str(&text).expect("testssl JSON");
    v.as_array()
        .expect("a JSON array of findings")
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap_or_default().to_owned(),
                f["finding"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn finding<'a>(findings: &'a [(String, String)], id: &str) -> &'a str {
    findings
        .iter()
        .find(|(i, _)| i == id)
        .map(|(_, f)| f.as_str())
        .unwrap_or_else(|| panic!("testssl reported no {id}: {findings:?}"))
}

/// Everything testssl can see on `addr` is BSI-recommended, and the expected set is offered.
fn assert_bsi_policy(addr: SocketAddr, what: &str) {
    // Sockets mode: testssl's own ClientHellos, which can still speak SSLv2/SSLv3 (the
    // system OpenSSL cannot).
    let sockets = testssl(addr, &["--protocols"]);
    for old in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        let f = finding(&sockets, old);
        assert!(f.starts_with("not offered"), "{what}: {old}: {f}");
    }
    // Native mode: OpenSSL's ClientHellos (with extended master secret, as every browser
    // sends), every cipher suite OpenSSL knows, and every curve.
    let native = testssl(
        addr,
        &["--ssl-native", "--protocols", "--each-cipher", "--fs"],
    );
    for v in ["TLS1_2", "TLS1_3"] {
        let f = finding(&native, v);
        assert!(f.starts_with("offered"), "{what}: {v}: {f}");
    }
    for old in ["TLS1", "TLS1_1"] {
        let f = finding(&native, old);
        assert!(f.starts_with("not offered"), "{what}: {old}: {f}");
    }
    let suites: BTreeSet<String> = native
        .iter()
        .filter(|(id, _)| id.starts_with("cipher_x"))
        .filter_map(|(_, f)| f.split_whitespace().last().map(str::to_owned))
        .collect();
    println!("{what}: suites offered: {suites:?}");
    for s in &suites {
        assert!(
            ALLOWED_SUITES.contains(&s.as_str()),
            "{what} offers {s}, which TR-02102-2 does not recommend"
        );
    }
    for s in [
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ] {
        assert!(suites.contains(s), "{what} does not offer {s}: {suites:?}");
    }
    let groups: BTreeSet<&str> = finding(&native, "PFS_ECDHE_curves")
        .split_whitespace()
        .collect();
    println!("{what}: groups offered: {groups:?}");
    assert!(!groups.is_empty(), "{what}: no ECDHE group found");
    for g in &groups {
        assert!(
            ALLOWED_GROUPS.contains(g),
            "{what} offers group {g}, which TR-02102-2 does not recommend"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn testssl_sees_only_bsi_protocols_suites_and_groups_on_https_and_turn_tls() {
    let t = start(|_| {}).await;
    let https_addr = t.server.https_addr();
    let turn_tls = t.server.turn_addrs().tls.expect("TURN TLS listener");
    let (a, b) = tokio::join!(
        tokio::task::spawn_blocking(move || assert_bsi_policy(https_addr, "HTTPS")),
        tokio::task::spawn_blocking(move || assert_bsi_policy(turn_tls, "TURN-TLS")),
    );
    a.unwrap();
    b.unwrap();
}

/// `openssl s_client` with `args` against `addr`: whether a handshake completed.
fn openssl_handshakes(addr: SocketAddr, args: &[&str]) -> bool {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
        ])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl must be installed");
    let _ = child.stdin.take().unwrap().write_all(b"Q\n");
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // A completed handshake prints the negotiated cipher; a refused one "Cipher is (NONE)" or
    // nothing.
    text.contains("New, TLS") && !text.contains("Cipher is (NONE)")
}

#[tokio::test(flavor = "multi_thread")]
async fn x25519_chacha20_and_tls11_are_refused_and_p256_aes_gcm_works() {
    let t = start(|_| {}).await;
    let addr = t.server.https_addr();
    tokio::task::spawn_blocking(move || {
        assert!(openssl_handshakes(addr, &["-groups", "P-256"]), "P-256");
        assert!(openssl_handshakes(addr, &["-groups", "P-384"]), "P-384");
        assert!(!openssl_handshakes(addr, &["-groups", "X25519"]), "X25519");
        assert!(!openssl_handshakes(addr, &["-groups", "X448"]), "X448");
        assert!(
            !openssl_handshakes(addr, &["-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256"]),
            "ChaCha20 (TLS 1.3)"
        );
        assert!(
            !openssl_handshakes(
                addr,
                &["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"]
            ),
            "ChaCha20 (TLS 1.2)"
        );
        assert!(
            !openssl_handshakes(addr, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256"]),
            "CBC"
        );
        assert!(
            !openssl_handshakes(addr, &["-tls1_2", "-cipher", "AES128-GCM-SHA256"]),
            "RSA key exchange"
        );
        assert!(!openssl_handshakes(addr, &["-tls1_1"]), "TLS 1.1");
        assert!(
            !openssl_handshakes(addr, &["-tls1_2", "-no_ems"]),
            "TLS 1.2 without extended master secret"
        );
        assert!(openssl_handshakes(addr, &["-tls1_2"]), "TLS 1.2");
    })
    .await
    .unwrap();
}

/// The leaf certificate `addr` presents now (DER).
async fn presented(addr: SocketAddr) -> Vec<u8> {
    let tls = conclave_load::insecure_tls_config().unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let s = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .unwrap();
    s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn write_cert(dir: &std::path::Path, name: &str) -> Vec<u8> {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).unwrap();
    ck.cert.der().to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn certificate_files_are_reloaded_without_restart_and_bad_ones_are_ignored() {
    let certs = std::env::temp_dir().join(format!("conclave-reload-{}", std::process::id()));
    std::fs::create_dir_all(&certs).unwrap();
    let first = write_cert(&certs, "first.example.org");
    let (c, k) = (certs.join("cert.pem"), certs.join("key.pem"));
    let t: TestServer = start(|cfg| {
        cfg.tls.cert = Some(c.clone());
        cfg.tls.key = Some(k.clone());
        cfg.tls.reload_check_secs = 1;
    })
    .await;
    let addr = t.server.https_addr();
    assert_eq!(presented(addr).await, first);
    // A half-written pair (a certificate whose key is not there yet) changes nothing.
    let other = rcgen::generate_simple_self_signed(vec!["x.example.org".to_owned()]).unwrap();
    std::fs::write(&c, other.cert.pem()).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(presented(addr).await, first, "a mismatched pair was loaded");
    let second = write_cert(&certs, "second.example.org");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while presented(addr).await != second {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // TURN-TLS presents the same certificate.
    let turn = t.server.turn_addrs().tls.unwrap();
    assert_eq!(presented(turn).await, second);
    let _ = std::fs::remove_dir_all(&certs);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ed25519_key_is_refused_with_the_reason() {
    let certs = std::env::temp_dir().join(format!("conclave-ed-{}", std::process::id()));
    std::fs::create_dir_all(&certs).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["ed.example.org".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(certs.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(certs.join("key.pem"), key.serialize_pem()).unwrap();
    let mut config = conclave::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        media_port: 0,
        data_dir: certs.join("data"),
        ..Default::default()
    };
    config.turn.enabled = false;
    config.tls.cert = Some(certs.join("cert.pem"));
    config.tls.key = Some(certs.join("key.pem"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = match conclave::Server::start(config, listener).await {
        Ok(_) => panic!("an Ed25519 certificate was accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("TR-02102-2") && err.contains("ECDSA"), "{err}");
    let _ = std::fs::remove_dir_all(&certs);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_carries_the_security_headers() {
    let t = start(|_| {}).await;
    for path in [
        "/",
        "/r/someroom-123",
        "/app.js",
        "/healthz",
        "/nonexistent",
    ] {
        let r = https(&t.url, "GET", path, &[], "").await;
        let h = |name: &str| {
            r.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{path}: no {name}"))
                .to_owned()
        };
        assert!(h("strict-transport-security").contains("max-age=31536000"));
        assert!(h("content-security-policy").contains("default-src 'self'"));
        assert!(
            h("content-security-policy").contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(h("x-content-type-options"), "nosniff");
        assert_eq!(h("referrer-policy"), "no-referrer");
        assert_eq!(h("cross-origin-opener-policy"), "same-origin");
        assert_eq!(h("cross-origin-resource-policy"), "same-origin");
        let pp = h("permissions-policy");
        assert!(
            pp.contains("camera=(self)") && pp.contains("geolocation=()"),
            "{pp}"
        );
    }
}

/// A raw HTTP/1.1 request on plain TCP; the response head and body.
async fn plain(addr: SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn port_80_only_redirects_to_https_and_answers_acme() {
    let t = start(|c| c.http_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let http = t.server.http_addr().expect("http listener");
    let port = t.server.https_addr().port();
    let r = plain(
        http,
        "GET /r/room-1?x=1 HTTP/1.1\r\nHost: meet.example.org\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 308"), "{r}");
    let location = format!("location: https://meet.example.org:{port}/r/room-1?x=1");
    assert!(r.to_ascii_lowercase().contains(&location), "{r}");
    // Nothing else is served over plain HTTP: not the client, not the API.
    for path in ["/", "/app.js", "/api/settings", "/ws"] {
        let r = plain(
            http,
            &format!("GET {path} HTTP/1.1\r\nHost: h.example.org\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 308"), "{path}: {r}");
    }
    // A Host that is not a host name gets no redirect to somewhere else.
    let r = plain(
        http,
        "GET / HTTP/1.1\r\nHost: evil.example/x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let r = plain(
        http,
        "GET /.well-known/acme-challenge/unknown HTTP/1.1\r\nHost: h.example.org\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
}
