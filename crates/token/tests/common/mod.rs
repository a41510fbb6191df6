//! Test helpers: keys generated at test time (nothing committed), an independent token signer
//! that uses aws-lc-rs directly (not the crate's minting code), and temporary directories.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use conclave_token::{Secret, TokenAlgorithm, TokenConfig};
use serde_json::{Value, json};

/// A fixed "now" for tests: 2026-01-01T00:00:00Z.
pub const NOW: u64 = 1_767_225_600;

pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

pub fn now() -> SystemTime {
    at(NOW)
}

/// 40 random bytes as hex: a secret of the kind `openssl rand -hex` gives.
pub fn random_secret() -> String {
    let mut b = [0u8; 20];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A key pair generated now, with everything a test needs.
pub struct TestKey {
    pub alg: TokenAlgorithm,
    pub private_pem: String,
    pub public_pem: String,
    signer: Signer,
    /// The public key as a JWK without `kid`.
    pub jwk: Value,
}

enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl TestKey {
    pub fn rsa() -> TestKey {
        let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp).unwrap();
        let spki = kp.public_key().as_der().unwrap();
        let private_pem = pem("PRIVATE KEY", pkcs8.as_ref());
        let public_pem = pem("PUBLIC KEY", spki.as_ref());
        let ek = jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap();
        let jwk =
            jsonwebtoken::jwk::Jwk::from_encoding_key(&ek, jsonwebtoken::Algorithm::RS256).unwrap();
        let jwk = serde_json::to_value(jwk).unwrap();
        let jwk = json!({"kty": "RSA", "n": jwk["n"], "e": jwk["e"]});
        let signer = RsaKeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        TestKey {
            alg: TokenAlgorithm::RS256,
            private_pem,
            public_pem,
            signer: Signer::Rsa(signer),
            jwk,
        }
    }

    pub fn ec() -> TestKey {
        let kp = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let pkcs8 = kp.to_pkcs8v1().unwrap();
        let spki = kp.public_key().as_der().unwrap();
        let point = kp.public_key().as_ref().to_vec();
        assert_eq!(point.len(), 65, "uncompressed P-256 point");
        let jwk = json!({
            "kty": "EC", "crv": "P-256",
            "x": b64url(&point[1..33]), "y": b64url(&point[33..]),
        });
        TestKey {
            alg: TokenAlgorithm::ES256,
            private_pem: pem("PRIVATE KEY", pkcs8.as_ref()),
            public_pem: pem("PUBLIC KEY", spki.as_ref()),
            signer: Signer::Ec(kp),
            jwk,
        }
    }

    pub fn jwk_with_kid(&self, kid: &str) -> Value {
        let mut j = self.jwk.clone();
        j["kid"] = json!(kid);
        j
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.signer {
            Signer::Rsa(kp) => {
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig)
                    .unwrap();
                sig
            }
            Signer::Ec(kp) => kp
                .sign(&SystemRandom::new(), message)
                .unwrap()
                .as_ref()
                .to_vec(),
        }
    }

    /// A token signed by this key, with the given header and payload JSON.
    pub fn token(&self, header: &Value, payload: &Value) -> String {
        craft(header, payload, |m| self.sign(m))
    }
}

/// header.payload.signature with any header, any payload and any signer.
pub fn craft(header: &Value, payload: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let msg = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(payload.to_string().as_bytes())
    );
    let sig = sign(msg.as_bytes());
    format!("{msg}.{}", b64url(&sig))
}

pub fn hmac_sha256(secret: &[u8], message: &[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    aws_lc_rs::hmac::sign(&key, message).as_ref().to_vec()
}

/// An HS256 token signed with `secret`.
pub fn hs256(secret: &str, payload: &Value) -> String {
    craft(&json!({"alg": "HS256", "typ": "JWT"}), payload, |m| {
        hmac_sha256(secret.as_bytes(), m)
    })
}

/// A payload in Jitsi's shape that the standard test config accepts at [`NOW`].
pub fn jitsi_payload() -> Value {
    json!({
        "iss": "my_client",
        "aud": "jitsi",
        "sub": "meet.example.org",
        "room": "RoomRoomRoomRoom1234",
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 3600,
        "context": {
            "user": {
                "id": "abcd:a1b2c3-d4e5f6",
                "name": "Jane Doe",
                "email": "jane@example.org",
                "avatar": "https://example.org/jane.png"
            },
            "group": "a123-123-456-789"
        }
    })
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "conclave-token-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Enabled config with issuer "my_client" and audience "jitsi" and no key source yet.
pub fn base_config(alg: TokenAlgorithm) -> TokenConfig {
    TokenConfig {
        enabled: true,
        algorithm: alg,
        audience: vec!["jitsi".into()],
        issuer: vec!["my_client".into()],
        ..TokenConfig::default()
    }
}

pub fn hs256_config(secret: &str) -> TokenConfig {
    TokenConfig {
        secret: Some(Secret(secret.to_string())),
        ..base_config(TokenAlgorithm::HS256)
    }
}

/// Config with the key's public PEM (and private PEM for minting) written to `dir`.
pub fn pem_config(key: &TestKey, dir: &TempDir) -> TokenConfig {
    TokenConfig {
        public_key_file: Some(dir.write("public.pem", &key.public_pem)),
        private_key_file: Some(dir.write("private.pem", &key.private_pem)),
        ..base_config(key.alg)
    }
}
