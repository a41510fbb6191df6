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
    dir: PathBuf,
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

/// Accepts any server certificate (the test server's is self-signed, on loopback).
#[derive(Debug)]
pub struct AcceptAny(pub std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
