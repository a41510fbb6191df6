//! OpenID Connect ID-token validation against real keys (RSA 2048 and P-256 from aws-lc-rs):
//! the good token passes; a wrong `iss`, `aud` or `nonce`, an expired or future token, no
//! `sub`, `alg: none`, HS256 signed with the provider's public key, another key, and a
//! second audience without `azp` are each refused with their own error.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use conclave_token::{
    IdTokenError, IdTokenExpect, IdTokenKeys, TokenAlgorithm, TokenError, verify_id_token,
};
use serde_json::{Value, json};

const ISS: &str = "https://idp.example.org/realms/staff";
const CLIENT: &str = "conclave";
const NONCE: &str = "n-0S6_WzA2Mj";

fn expect() -> IdTokenExpect<'static> {
    IdTokenExpect {
        issuer: ISS,
        client_id: CLIENT,
        nonce: NONCE,
        leeway_secs: 30,
        max_age_secs: 600,
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

fn claims(now: SystemTime) -> Value {
    json!({
        "iss": ISS, "aud": CLIENT, "sub": "248289761001", "nonce": NONCE,
        "iat": unix(now) - 5, "exp": unix(now) + 300,
        "preferred_username": "alice", "name": "Alice Adler", "groups": ["conclave-moderators"],
    })
}

fn keys(key: &TestKey) -> IdTokenKeys {
    let jwks = json!({"keys": [key.jwk_with_kid("k1")]});
    IdTokenKeys::from_jwks(jwks.to_string().as_bytes(), key.alg).unwrap()
}

fn header(key: &TestKey) -> Value {
    json!({"alg": key.alg.as_str(), "typ": "JWT", "kid": "k1"})
}

fn check(
    key: &TestKey,
    token: &str,
    now: SystemTime,
) -> Result<serde_json::Map<String, Value>, IdTokenError> {
    verify_id_token(token, &keys(key), &expect(), now)
}

/// The claims with `edit` applied, signed by `key`.
fn signed(key: &TestKey, now: SystemTime, edit: impl FnOnce(&mut Value)) -> String {
    let mut c = claims(now);
    edit(&mut c);
    key.token(&header(key), &c)
}

#[test]
fn a_good_id_token_passes_with_either_algorithm() {
    let now = SystemTime::now();
    for key in [TestKey::rsa(), TestKey::ec()] {
        let c = check(&key, &signed(&key, now, |_| {}), now).unwrap();
        assert_eq!(c["sub"], "248289761001");
        assert_eq!(c["groups"][0], "conclave-moderators");
        // Several audiences are fine when azp names us.
        let t = signed(&key, now, |c| {
            c["aud"] = json!([CLIENT, "other"]);
            c["azp"] = json!(CLIENT);
        });
        check(&key, &t, now).unwrap();
    }
}

/// A change to the claims, and the error it must give.
type Edit = Box<dyn FnOnce(&mut Value)>;
type Want = fn(&IdTokenError) -> bool;

#[test]
fn every_bent_claim_is_refused_with_its_own_error() {
    let now = SystemTime::now();
    let key = TestKey::rsa();
    let cases: Vec<(&str, Edit, Want)> = vec![
        (
            "wrong iss",
            Box::new(|c| c["iss"] = json!("https://evil.example")),
            |e| matches!(e, IdTokenError::Issuer(i) if i == "https://evil.example"),
        ),
        (
            "iss with a trailing slash",
            Box::new(|c| c["iss"] = json!(format!("{ISS}/"))),
            |e| matches!(e, IdTokenError::Issuer(_)),
        ),
        (
            "wrong aud",
            Box::new(|c| c["aud"] = json!("another-client")),
            |e| matches!(e, IdTokenError::Audience),
        ),
        (
            "two audiences, no azp",
            Box::new(|c| c["aud"] = json!([CLIENT, "other"])),
            |e| matches!(e, IdTokenError::Audience),
        ),
        (
            "azp of another client",
            Box::new(|c| c["azp"] = json!("other")),
            |e| matches!(e, IdTokenError::Audience),
        ),
        (
            "wrong nonce",
            Box::new(|c| c["nonce"] = json!("replayed-nonce")),
            |e| matches!(e, IdTokenError::Nonce),
        ),
        (
            "no nonce",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("nonce");
            }),
            |e| matches!(e, IdTokenError::Nonce),
        ),
        (
            "expired",
            Box::new(move |c| {
                c["iat"] = json!(unix(now) - 400);
                c["exp"] = json!(unix(now) - 31);
            }),
            |e| matches!(e, IdTokenError::Expired),
        ),
        (
            "no exp",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
            |e| matches!(e, IdTokenError::Expired),
        ),
        (
            "issued in the future",
            Box::new(move |c| c["iat"] = json!(unix(now) + 120)),
            |e| matches!(e, IdTokenError::IssuedAt),
        ),
        (
            "issued too long ago",
            Box::new(move |c| c["iat"] = json!(unix(now) - 3600)),
            |e| matches!(e, IdTokenError::IssuedAt),
        ),
        (
            "no sub",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
            |e| matches!(e, IdTokenError::Subject),
        ),
    ];
    for (what, edit, want) in cases {
        let err = check(&key, &signed(&key, now, edit), now).unwrap_err();
        assert!(want(&err), "{what}: got {err:?}");
    }
}

#[test]
fn forged_signatures_are_refused() {
    let now = SystemTime::now();
    for key in [TestKey::rsa(), TestKey::ec()] {
        let c = claims(now);
        // alg none, with and without a signature part.
        let none = craft(&json!({"alg": "none", "typ": "JWT"}), &c, |_| Vec::new());
        let err = check(&key, &none, now).unwrap_err();
        assert!(
            matches!(
                err,
                IdTokenError::Token(TokenError::UnsupportedAlgorithm(..))
            ),
            "alg none: {err:?}"
        );
        let none_sig = craft(&json!({"alg": "none"}), &c, |_| b"x".to_vec());
        assert!(check(&key, &none_sig, now).is_err());
        // HS256 keyed with the provider's public key (PEM and JWK forms): the classic
        // algorithm-confusion forgery.
        for secret in [
            key.public_pem.as_bytes().to_vec(),
            key.jwk.to_string().into_bytes(),
        ] {
            let hs = craft(
                &json!({"alg": "HS256", "typ": "JWT", "kid": "k1"}),
                &c,
                |m| hmac_sha256(&secret, m),
            );
            let err = check(&key, &hs, now).unwrap_err();
            assert!(
                matches!(
                    err,
                    IdTokenError::Token(TokenError::UnsupportedAlgorithm(..))
                ),
                "HS256 with the public key: {err:?}"
            );
        }
        // Signed by another key of the same type under the same kid.
        let other = if key.alg == TokenAlgorithm::RS256 {
            TestKey::rsa()
        } else {
            TestKey::ec()
        };
        let err = check(&key, &other.token(&header(&key), &c), now).unwrap_err();
        assert!(
            matches!(err, IdTokenError::Token(TokenError::BadSignature)),
            "another key: {err:?}"
        );
        // A payload changed after signing.
        let good = signed(&key, now, |_| {});
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut changed = c.clone();
        changed["sub"] = json!("someone-else");
        parts[1] = b64url(changed.to_string().as_bytes());
        let err = check(&key, &parts.join("."), now).unwrap_err();
        assert!(
            matches!(err, IdTokenError::Token(TokenError::BadSignature)),
            "{err:?}"
        );
    }
    // An HS256 key set is refused outright, and an oversized token is not parsed.
    assert!(IdTokenKeys::from_jwks(b"{\"keys\":[]}", TokenAlgorithm::HS256).is_err());
    let key = TestKey::ec();
    let huge = "a".repeat(conclave_token::MAX_ID_TOKEN_BYTES + 1);
    assert!(matches!(
        check(&key, &huge, now + Duration::ZERO),
        Err(IdTokenError::Token(TokenError::TooLong { .. }))
    ));
}
