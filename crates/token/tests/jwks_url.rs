//! Fetching the key set from an https URL, against a real TLS server on 127.0.0.1 with a
//! certificate generated at test time: key selection, caching, rotation, and every bound
//! (size, timeout, status, trust, content).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use conclave_token::{JwksFetchError, TokenAlgorithm, TokenConfig, TokenError, TokenVerifier};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[derive(Default)]
struct State {
    status: u16,
    body: Vec<u8>,
    send_length: bool,
    hang: bool,
    requests: usize,
}

struct Server {
    port: u16,
    ca_pem: String,
    state: Arc<Mutex<State>>,
}

impl Server {
    async fn start(body: &Value) -> Server {
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            status: 200,
            body: body.to_string().into_bytes(),
            send_length: true,
            ..State::default()
        }));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16384 {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let (status, body, send_length, hang) = {
                        let mut s = state.lock().unwrap();
                        s.requests += 1;
                        (s.status, s.body.clone(), s.send_length, s.hang)
                    };
                    if hang {
                        tokio::time::sleep(Duration::from_secs(600)).await;
                        return;
                    }
                    let mut head = format!("HTTP/1.1 {status} Test\r\nConnection: close\r\n");
                    if send_length {
                        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
                    }
                    head.push_str("\r\n");
                    let _ = tls.write_all(head.as_bytes()).await;
                    let _ = tls.write_all(&body).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Server {
            port,
            ca_pem: ck.cert.pem(),
            state,
        }
    }

    fn config(&self, dir: &TempDir, alg: TokenAlgorithm) -> TokenConfig {
        TokenConfig {
            jwks_url: Some(format!(
                "https://127.0.0.1:{}/.well-known/jwks.json",
                self.port
            )),
            jwks_ca_file: Some(dir.write("ca.pem", &self.ca_pem)),
            ..base_config(alg)
        }
    }

    fn requests(&self) -> usize {
        self.state.lock().unwrap().requests
    }

    fn set(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap());
    }
}

fn token(key: &TestKey, kid: &str) -> String {
    key.token(
        &json!({"alg": key.alg.as_str(), "kid": kid}),
        &jitsi_payload(),
    )
}

#[tokio::test]
async fn fetches_once_selects_by_kid_and_caches() {
    let (a, b) = (TestKey::rsa(), TestKey::rsa());
    let server = Server::start(&json!({"keys": [a.jwk_with_kid("a"), b.jwk_with_kid("b")]})).await;
    let dir = TempDir::new();
    let verifier = TokenVerifier::from_config(&server.config(&dir, TokenAlgorithm::RS256)).unwrap();

    // Nothing fetched yet: the plain verify says so, without touching the network.
    assert_eq!(
        verifier.verify(&token(&a, "a"), now()).unwrap_err(),
        TokenError::KeysUnavailable
    );
    assert_eq!(server.requests(), 0);

    // The join-time path fetches the set once.
    verifier
        .verify_refreshing(&token(&a, "a"), now())
        .await
        .unwrap();
    assert_eq!(server.requests(), 1);
    verifier
        .verify_refreshing(&token(&b, "b"), now())
        .await
        .unwrap();
    verifier.verify(&token(&a, "a"), now()).unwrap();
    assert_eq!(server.requests(), 1, "keys are cached");

    // Unknown kids do not make the server fetch again within jwks_min_refetch_secs.
    for i in 0..20 {
        let err = verifier
            .verify_refreshing(&token(&a, &format!("random-{i}")), now())
            .await
            .unwrap_err();
        assert!(matches!(err, TokenError::UnknownKey(Some(_))), "{err}");
    }
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_on_unknown_kid() {
    let (old, new) = (TestKey::ec(), TestKey::ec());
    let server = Server::start(&json!({"keys": [old.jwk_with_kid("old")]})).await;
    let dir = TempDir::new();
    let mut config = server.config(&dir, TokenAlgorithm::ES256);
    config.jwks_min_refetch_secs = 1;
    let verifier = TokenVerifier::from_config(&config).unwrap();
    assert_eq!(verifier.refresh_jwks().await.unwrap(), 1);
    verifier.verify(&token(&old, "old"), now()).unwrap();

    // The issuer publishes a new key and starts signing with it.
    server.set(|s| {
        s.body = json!({"keys": [old.jwk_with_kid("old"), new.jwk_with_kid("new")]})
            .to_string()
            .into_bytes()
    });
    // Wait out the minimum refetch interval (1 s here), then the unknown kid triggers a fetch.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    verifier
        .verify_refreshing(&token(&new, "new"), now())
        .await
        .unwrap();
    assert_eq!(server.requests(), 2);
    verifier.verify(&token(&old, "old"), now()).unwrap();
}

#[tokio::test]
async fn failures_keep_the_last_good_key_set() {
    let key = TestKey::rsa();
    let server = Server::start(&json!({"keys": [key.jwk_with_kid("k")]})).await;
    let dir = TempDir::new();
    let verifier = TokenVerifier::from_config(&server.config(&dir, TokenAlgorithm::RS256)).unwrap();
    verifier.refresh_jwks().await.unwrap();

    server.set(|s| s.status = 500);
    let err = verifier.refresh_jwks().await.unwrap_err();
    assert_eq!(err, JwksFetchError::Status(500));
    assert_eq!(
        err.to_string(),
        "tokens.jwks_url answered with HTTP status 500, expected 200"
    );
    server.set(|s| s.status = 302);
    assert_eq!(
        verifier.refresh_jwks().await.unwrap_err(),
        JwksFetchError::Status(302)
    );

    server.set(|s| {
        s.status = 200;
        s.body = b"<html>not a key set</html>".to_vec();
    });
    let err = verifier.refresh_jwks().await.unwrap_err();
    assert!(matches!(err, JwksFetchError::Invalid(_)), "{err}");

    // A key set with no RS256 key is refused too, rather than locking everyone out.
    server.set(|s| {
        s.body = json!({"keys": [TestKey::ec().jwk_with_kid("k")]})
            .to_string()
            .into_bytes()
    });
    assert!(matches!(
        verifier.refresh_jwks().await.unwrap_err(),
        JwksFetchError::Invalid(_)
    ));

    verifier
        .verify(&token(&key, "k"), now())
        .expect("old keys still in use");
}

#[tokio::test]
async fn oversize_bodies_are_refused() {
    let key = TestKey::ec();
    let mut keys = vec![key.jwk_with_kid("k")];
    keys.extend((0..40).map(|i| json!({"kty": "oct", "kid": format!("pad{i}"), "k": "AAAA"})));
    let big = json!({ "keys": keys });
    assert!(big.to_string().len() > 1024);
    let server = Server::start(&big).await;
    let dir = TempDir::new();
    let mut config = server.config(&dir, TokenAlgorithm::ES256);
    config.jwks_max_bytes = 1024;
    let verifier = TokenVerifier::from_config(&config).unwrap();

    // Declared too large by Content-Length.
    assert_eq!(
        verifier.refresh_jwks().await.unwrap_err(),
        JwksFetchError::TooLarge(1024)
    );
    // No Content-Length: cut off while reading.
    server.set(|s| s.send_length = false);
    let err = verifier.refresh_jwks().await.unwrap_err();
    assert_eq!(err, JwksFetchError::TooLarge(1024));
    assert_eq!(
        err.to_string(),
        "tokens.jwks_url sent more than 1024 bytes (tokens.jwks_max_bytes)"
    );
    assert_eq!(
        verifier.verify(&token(&key, "k"), now()).unwrap_err(),
        TokenError::KeysUnavailable
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let server = Server::start(&json!({"keys": []})).await;
    server.set(|s| s.hang = true);
    let dir = TempDir::new();
    let mut config = server.config(&dir, TokenAlgorithm::RS256);
    config.jwks_timeout_secs = 1;
    let verifier = TokenVerifier::from_config(&config).unwrap();
    let err = verifier.refresh_jwks().await.unwrap_err();
    assert_eq!(err, JwksFetchError::Timeout(1));
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let server = Server::start(&json!({"keys": [TestKey::rsa().jwk_with_kid("k")]})).await;
    let dir = TempDir::new();
    let mut config = server.config(&dir, TokenAlgorithm::RS256);
    let other_ca = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    config.jwks_ca_file = Some(dir.write("other-ca.pem", other_ca.cert.pem()));
    let verifier = TokenVerifier::from_config(&config).unwrap();
    let err = verifier.refresh_jwks().await.unwrap_err();
    assert!(matches!(err, JwksFetchError::Tls(_)), "{err}");
    assert_eq!(
        server.requests(),
        0,
        "no request is sent over an untrusted connection"
    );
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = TempDir::new();
    let ca = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let config = TokenConfig {
        jwks_url: Some(format!("https://127.0.0.1:{port}/jwks")),
        jwks_ca_file: Some(dir.write("ca.pem", ca.cert.pem())),
        ..base_config(TokenAlgorithm::RS256)
    };
    let verifier = TokenVerifier::from_config(&config).unwrap();
    let err = verifier.refresh_jwks().await.unwrap_err();
    assert!(matches!(err, JwksFetchError::Connect(_)), "{err}");
}

#[tokio::test]
async fn the_refresh_loop_loads_keys() {
    let key = TestKey::rsa();
    let server = Server::start(&json!({"keys": [key.jwk_with_kid("k")]})).await;
    let dir = TempDir::new();
    let verifier = TokenVerifier::from_config(&server.config(&dir, TokenAlgorithm::RS256)).unwrap();
    let task = tokio::spawn(verifier.clone().run_jwks_refresh());
    let mut ok = false;
    for _ in 0..100 {
        if verifier.verify(&token(&key, "k"), now()).is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    assert!(ok, "the refresh loop fetched the key set within 5 s");
}

#[test]
fn ca_file_problems_are_configuration_errors() {
    let dir = TempDir::new();
    let config = TokenConfig {
        jwks_url: Some("https://127.0.0.1:9/jwks".into()),
        jwks_ca_file: Some(dir.write("ca.pem", "no certificates here")),
        ..base_config(TokenAlgorithm::RS256)
    };
    let err = TokenVerifier::from_config(&config).unwrap_err().to_string();
    assert!(err.starts_with("tokens.jwks_ca_file: "), "{err}");
}
