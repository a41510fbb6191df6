//! Passkeys over real HTTPS with a software authenticator (P-256 on aws-lc-rs): what the
//! server refuses. A good assertion signs in once; the same assertion again (used
//! challenge), another origin, another site's RP ID hash, a missing user-verified flag, a
//! counter that does not move, a signature by another key, and a registration without a
//! session are each refused.

use crate::common;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::{https, start};
use conclave_store::{OffsetDateTime, Store, StoreOptions};
use serde_json::{Value, json};

const PASSWORD: &str = "violet staple orbit canyon";
const JSON: (&str, &str) = ("content-type", "application/json");
/// DER prefix of a P-256 SubjectPublicKeyInfo; the 65-byte point follows.
const P256_SPKI: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

struct Authenticator {
    key: EcdsaKeyPair,
    id: Vec<u8>,
    count: u32,
}

impl Authenticator {
    fn new() -> Authenticator {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .unwrap();
        Authenticator {
            key: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap(),
            id: (0..32).collect(),
            count: 0,
        }
    }

    fn spki(&self) -> Vec<u8> {
        [&P256_SPKI[..], self.key.public_key().as_ref()].concat()
    }

    fn auth_data(&self, rp_id: &str, flags: u8, attested: bool) -> Vec<u8> {
        let mut d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, rp_id.as_bytes())
            .as_ref()
            .to_vec();
        d.push(flags);
        d.extend_from_slice(&self.count.to_be_bytes());
        if attested {
            d.extend_from_slice(&[0; 16]);
            d.extend_from_slice(&(self.id.len() as u16).to_be_bytes());
            d.extend_from_slice(&self.id);
            d.extend_from_slice(&[0xa0]); // a stand-in COSE key: the SPKI is sent separately
        }
        d
    }

    fn sign(&self, auth: &[u8], client: &[u8]) -> Vec<u8> {
        let mut m = auth.to_vec();
        m.extend_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, client).as_ref());
        self.key
            .sign(&SystemRandom::new(), &m)
            .unwrap()
            .as_ref()
            .to_vec()
    }
}

fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
    json!({"type": kind, "challenge": challenge, "origin": origin})
        .to_string()
        .into_bytes()
}

async fn post(url: &str, path: &str, cookie: Option<&str>, body: &Value) -> common::HttpReply {
    let mut h = vec![JSON];
    if let Some(c) = cookie {
        h.push(("cookie", c));
    }
    https(url, "POST", path, &h, &body.to_string()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_every_bent_passkey() {
    // More free failures than this test makes: the throttle is the sign-in tests' subject.
    let srv = start(|c| {
        c.attempts.free_failures = 50;
        c.attempts.lockout_after_failures = 100;
    })
    .await;
    let store = Store::open(&srv.dir, StoreOptions::default()).unwrap();
    store
        .add_account("hanna", "Hanna Host", PASSWORD, OffsetDateTime::now_utc())
        .unwrap();
    let url = srv.url.clone();
    let host = url.strip_prefix("https://").unwrap().to_owned();
    let origin = format!("https://{host}");
    let rp_id = host.split(':').next().unwrap().to_owned();

    // Registration needs a full session.
    let r = post(&url, "/api/account/passkeys/options", None, &json!({})).await;
    assert_eq!(r.status, 401, "{r:?}");
    let r = post(
        &url,
        "/api/session",
        None,
        &json!({"username": "hanna", "password": PASSWORD}),
    )
    .await;
    let cookie = r.cookie("conclave_session").unwrap();

    let mut a = Authenticator::new();
    let register = |a: &Authenticator, challenge: &str, flags: u8| {
        let client = client_data("webauthn.create", challenge, &origin);
        json!({
            "id": B64.encode(&a.id),
            "clientDataJson": B64.encode(&client),
            "authenticatorData": B64.encode(a.auth_data(&rp_id, flags, true)),
            "publicKey": B64.encode(a.spki()),
            "publicKeyAlgorithm": -7,
            "name": "test key",
        })
    };
    let options = post(
        &url,
        "/api/account/passkeys/options",
        Some(&cookie),
        &json!({}),
    )
    .await;
    assert_eq!(options.status, 200, "{options:?}");
    let o: Value = serde_json::from_str(&options.body).unwrap();
    assert_eq!(o["rp"]["id"], rp_id.as_str());
    let challenge = o["challenge"].as_str().unwrap().to_owned();
    // Without user verification: refused (and the challenge is spent).
    let r = post(
        &url,
        "/api/account/passkeys",
        Some(&cookie),
        &register(&a, &challenge, 0x41),
    )
    .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("not verified"), "{}", r.body);
    let r = post(
        &url,
        "/api/account/passkeys",
        Some(&cookie),
        &register(&a, &challenge, 0x45),
    )
    .await;
    assert!(
        r.body.contains("challenge"),
        "a spent challenge: {}",
        r.body
    );
    let options = post(
        &url,
        "/api/account/passkeys/options",
        Some(&cookie),
        &json!({}),
    )
    .await;
    let o: Value = serde_json::from_str(&options.body).unwrap();
    let r = post(
        &url,
        "/api/account/passkeys",
        Some(&cookie),
        &register(&a, o["challenge"].as_str().unwrap(), 0x45),
    )
    .await;
    assert_eq!(r.status, 201, "{r:?}");

    // Sign-in: a fresh challenge each time.
    let challenge = || async {
        let r = post(&url, "/api/session/passkey/options", None, &json!({})).await;
        assert_eq!(r.status, 200, "{r:?}");
        let o: Value = serde_json::from_str(&r.body).unwrap();
        o["challenge"].as_str().unwrap().to_owned()
    };
    let assertion =
        |a: &Authenticator, challenge: &str, origin: &str, rp: &str, flags: u8| -> Value {
            let client = client_data("webauthn.get", challenge, origin);
            let auth = a.auth_data(rp, flags, false);
            json!({
                "id": B64.encode(&a.id),
                "clientDataJson": B64.encode(&client),
                "authenticatorData": B64.encode(&auth),
                "signature": B64.encode(a.sign(&auth, &client)),
                "userHandle": B64.encode(1i64.to_be_bytes()),
            })
        };
    a.count = 1;
    let good = assertion(&a, &challenge().await, &origin, &rp_id, 0x05);
    let r = post(&url, "/api/session/passkey", None, &good).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.cookie("conclave_session").is_some());
    // The same assertion again: its challenge is spent.
    let r = post(&url, "/api/session/passkey", None, &good).await;
    assert_eq!(r.status, 401, "{r:?}");
    // Another origin, another site, no user verification, the same counter, another key.
    a.count = 2;
    let bent = [
        assertion(&a, &challenge().await, "https://evil.example", &rp_id, 0x05),
        assertion(&a, &challenge().await, &origin, "evil.example", 0x05),
        assertion(&a, &challenge().await, &origin, &rp_id, 0x01),
    ];
    for b in &bent {
        let r = post(&url, "/api/session/passkey", None, b).await;
        assert_eq!(r.status, 401, "{b} -> {r:?}");
    }
    a.count = 1;
    let r = post(
        &url,
        "/api/session/passkey",
        None,
        &assertion(&a, &challenge().await, &origin, &rp_id, 0x05),
    )
    .await;
    assert_eq!(r.status, 401, "a counter that did not move: {r:?}");
    let mut other = Authenticator::new();
    other.count = 9;
    let r = post(
        &url,
        "/api/session/passkey",
        None,
        &assertion(&other, &challenge().await, &origin, &rp_id, 0x05),
    )
    .await;
    assert_eq!(r.status, 401, "another key: {r:?}");
    // And a good one still works after all that.
    a.count = 10;
    let r = post(
        &url,
        "/api/session/passkey",
        None,
        &assertion(&a, &challenge().await, &origin, &rp_id, 0x05),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    // Bodies that are not WebAuthn's get 400 with a reason, and change nothing.
    let raw = |path: &'static str, body: String| {
        let cookie = cookie.clone();
        let url = url.clone();
        async move { https(&url, "POST", path, &[JSON, ("cookie", &cookie)], &body).await }
    };
    let mut unknown = good.clone();
    unknown["extra"] = json!(1);
    for body in [
        "not json {".to_owned(),
        "{}".to_owned(),
        "[]".to_owned(),
        unknown.to_string(),
        json!({"id": 5, "clientDataJson": "", "authenticatorData": "", "signature": ""})
            .to_string(),
    ] {
        for path in ["/api/session/passkey", "/api/account/passkeys"] {
            let r = raw(path, body.clone()).await;
            assert_eq!(r.status, 400, "{path} {body} -> {r:?}");
            assert!(
                r.body.contains("bad_request"),
                "{path} {body} -> {}",
                r.body
            );
        }
    }
    let mut bad_b64 = register(&a, "never-issued", 0x45);
    bad_b64["clientDataJson"] = json!("not base64url!");
    let r = raw("/api/account/passkeys", bad_b64.to_string()).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("malformed"), "{}", r.body);
    let mut bad_b64 = good.clone();
    bad_b64["signature"] = json!("*/*");
    let r = raw("/api/session/passkey", bad_b64.to_string()).await;
    assert_eq!(
        r.status, 401,
        "a malformed assertion is a failed attempt: {r:?}"
    );
    let id = store.account("hanna").unwrap().unwrap().id;
    assert_eq!(
        store.passkeys(id).unwrap().len(),
        1,
        "nothing was added or lost"
    );
    // Removing it: only from this origin, only with a session, once.
    let path = format!("/api/account/passkeys/{}", B64.encode(&a.id));
    let evil = https(
        &url,
        "DELETE",
        &path,
        &[("cookie", &cookie), ("origin", "https://evil.example")],
        "",
    )
    .await;
    assert_eq!(evil.status, 403, "{evil:?}");
    assert_eq!(https(&url, "DELETE", &path, &[], "").await.status, 401);
    let r = https(&url, "DELETE", &path, &[("cookie", &cookie)], "").await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = https(&url, "DELETE", &path, &[("cookie", &cookie)], "").await;
    assert_eq!(r.status, 404, "{r:?}");
    a.count = 11;
    let r = post(
        &url,
        "/api/session/passkey",
        None,
        &assertion(&a, &challenge().await, &origin, &rp_id, 0x05),
    )
    .await;
    assert_eq!(r.status, 401, "a removed passkey: {r:?}");
    // The audit log names why each was refused.
    let audit = String::from_utf8(
        std::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
            .args(["audit-log", "export", "--data-dir"])
            .arg(&srv.dir)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for why in [
        "passkey: unknown, used or expired challenge",
        "passkey: signed for origin",
        "passkey: authenticator data is for another site",
        "passkey: the user was not verified",
        "passkey: signature counter did not increase",
        "passkey: bad signature",
    ] {
        assert!(audit.contains(why), "{why} not in {audit}");
    }
}
