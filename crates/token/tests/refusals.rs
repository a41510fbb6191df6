//! Every refusal, produced by a crafted token, with the message an operator reads.

mod common;

use common::*;
use conclave_token::{TokenAlgorithm, TokenError, TokenVerifier, check_room};
use serde_json::{Value, json};

struct Hs {
    secret: String,
    verifier: TokenVerifier,
}

impl Hs {
    fn new() -> Hs {
        let secret = random_secret();
        let verifier = TokenVerifier::from_config(&hs256_config(&secret)).unwrap();
        Hs { secret, verifier }
    }

    fn check(&self, payload: &Value) -> Result<conclave_token::TokenIdentity, TokenError> {
        self.verifier.verify(&hs256(&self.secret, payload), now())
    }

    fn check_at(
        &self,
        payload: &Value,
        t: u64,
    ) -> Result<conclave_token::TokenIdentity, TokenError> {
        self.verifier.verify(&hs256(&self.secret, payload), at(t))
    }
}

fn with(mut p: Value, key: &str, v: Value) -> Value {
    p[key] = v;
    p
}

fn without(mut p: Value, key: &str) -> Value {
    p.as_object_mut().unwrap().remove(key);
    p
}

#[test]
fn expired() {
    let hs = Hs::new();
    let p = with(jitsi_payload(), "exp", json!(NOW - 3600));
    let err = hs.check(&p).unwrap_err();
    assert_eq!(err, TokenError::Expired(NOW - 3600));
    assert_eq!(err.to_string(), "token expired at 2025-12-31T23:00:00Z");
}

#[test]
fn not_yet_valid() {
    let hs = Hs::new();
    let p = with(jitsi_payload(), "nbf", json!(NOW + 600));
    let err = hs.check(&p).unwrap_err();
    assert_eq!(err, TokenError::NotYetValid(NOW + 600));
    assert_eq!(
        err.to_string(),
        "token is not valid before 2026-01-01T00:10:00Z"
    );
    // Issued in the future (beyond the leeway) is refused the same way.
    let p = with(jitsi_payload(), "iat", json!(NOW + 600));
    assert_eq!(
        hs.check(&p).unwrap_err(),
        TokenError::NotYetValid(NOW + 600)
    );
}

#[test]
fn leeway_allows_small_clock_skew_only() {
    let hs = Hs::new();
    let exp = with(jitsi_payload(), "exp", json!(NOW));
    assert!(
        hs.check_at(&exp, NOW + 30).is_ok(),
        "30 s after exp: inside the leeway"
    );
    assert_eq!(
        hs.check_at(&exp, NOW + 31).unwrap_err(),
        TokenError::Expired(NOW)
    );
    let nbf = with(jitsi_payload(), "nbf", json!(NOW + 30));
    assert!(hs.check(&nbf).is_ok(), "nbf 30 s ahead: inside the leeway");
    let nbf = with(jitsi_payload(), "nbf", json!(NOW + 31));
    assert_eq!(
        hs.check(&nbf).unwrap_err(),
        TokenError::NotYetValid(NOW + 31)
    );

    let mut config = hs256_config(&hs.secret);
    config.leeway_secs = 0;
    let strict = TokenVerifier::from_config(&config).unwrap();
    assert_eq!(
        strict
            .verify(&hs256(&hs.secret, &exp), at(NOW + 1))
            .unwrap_err(),
        TokenError::Expired(NOW)
    );
    config.leeway_secs = 120;
    let lenient = TokenVerifier::from_config(&config).unwrap();
    assert!(
        lenient
            .verify(&hs256(&hs.secret, &exp), at(NOW + 120))
            .is_ok()
    );
}

#[test]
fn identity_expiry_during_the_meeting() {
    let hs = Hs::new();
    let id = hs.check(&jitsi_payload()).unwrap();
    let leeway = hs.verifier.leeway();
    assert!(!id.is_expired(at(NOW + 3600 + 30), leeway));
    assert!(id.is_expired(at(NOW + 3600 + 31), leeway));
    assert_eq!(id.remaining(now()).as_secs(), 3600);
    assert_eq!(id.remaining(at(NOW + 9999)).as_secs(), 0);
    assert!(!hs.verifier.enforce_expiry_during_meeting());
}

#[test]
fn wrong_audience() {
    let hs = Hs::new();
    let err = hs
        .check(&with(jitsi_payload(), "aud", json!("other")))
        .unwrap_err();
    assert_eq!(err, TokenError::WrongAudience("\"other\"".into()));
    assert_eq!(
        err.to_string(),
        "token audience \"other\" is not accepted (tokens.audience)"
    );
    let err = hs
        .check(&with(jitsi_payload(), "aud", json!([])))
        .unwrap_err();
    assert!(matches!(err, TokenError::WrongAudience(_)), "{err}");
    let err = hs
        .check(&with(jitsi_payload(), "aud", json!(["a", 1])))
        .unwrap_err();
    assert!(
        matches!(err, TokenError::InvalidClaim { claim: "aud", .. }),
        "{err}"
    );
}

#[test]
fn wrong_issuer() {
    let hs = Hs::new();
    let err = hs
        .check(&with(jitsi_payload(), "iss", json!("mallory")))
        .unwrap_err();
    assert_eq!(err, TokenError::WrongIssuer("\"mallory\"".into()));
    assert!(err.to_string().contains("tokens.issuer"), "{err}");
}

#[test]
fn wrong_room() {
    let hs = Hs::new();
    let id = hs.check(&jitsi_payload()).unwrap();
    let err = check_room(&id, "OtherRoomOtherRoom42").unwrap_err();
    assert_eq!(
        err.to_string(),
        "token is for room \"RoomRoomRoomRoom1234\", not \"OtherRoomOtherRoom42\""
    );
    // Room IDs are case-sensitive: Jitsi's lower-casing is not copied.
    assert!(check_room(&id, "roomroomroomroom1234").is_err());
}

#[test]
fn missing_claims() {
    let hs = Hs::new();
    for claim in ["exp", "iss", "aud", "room"] {
        let err = hs.check(&without(jitsi_payload(), claim)).unwrap_err();
        assert_eq!(err, TokenError::MissingClaim(claim));
        assert_eq!(err.to_string(), format!("token has no {claim:?} claim"));
    }
}

#[test]
fn invalid_claim_types() {
    let hs = Hs::new();
    let cases = [
        ("exp", json!("tomorrow"), "exp"),
        ("exp", json!(-5), "exp"),
        ("nbf", json!(true), "nbf"),
        ("iss", json!(42), "iss"),
        ("room", json!(["a"]), "room"),
        ("room", json!(""), "room"),
        ("sub", json!({"a": 1}), "sub"),
        ("context", json!("x"), "context"),
        ("moderator", json!("maybe"), "moderator"),
    ];
    for (key, value, claim) in cases {
        let err = hs
            .check(&with(jitsi_payload(), key, value.clone()))
            .unwrap_err();
        assert!(
            matches!(err, TokenError::InvalidClaim { claim: c, .. } if c == claim),
            "{key}={value}: {err}"
        );
    }
    let mut p = jitsi_payload();
    p["context"]["user"]["name"] = json!(12);
    assert_eq!(
        hs.check(&p).unwrap_err().to_string(),
        "token claim \"context.user.name\" is not a string"
    );
}

#[test]
fn tampered_signature_and_payload() {
    let hs = Hs::new();
    let token = hs256(&hs.secret, &jitsi_payload());
    let (msg, sig) = token.rsplit_once('.').unwrap();
    // Flip one signature bit (in the first character, which carries full 6 bits).
    let first = sig.as_bytes()[0];
    let flipped = if first == b'A' { 'B' } else { 'A' };
    let bad = format!("{msg}.{flipped}{}", &sig[1..]);
    assert_eq!(
        hs.verifier.verify(&bad, now()).unwrap_err(),
        TokenError::BadSignature
    );

    // Same signature, payload changed to make the holder a moderator.
    let (h, _) = msg.split_once('.').unwrap();
    let forged = with(jitsi_payload(), "moderator", json!(true));
    let forged = format!("{h}.{}.{sig}", b64url(forged.to_string().as_bytes()));
    let err = hs.verifier.verify(&forged, now()).unwrap_err();
    assert_eq!(err, TokenError::BadSignature);
    assert_eq!(
        err.to_string(),
        "token signature is not valid for the configured key"
    );

    // Signed with another secret.
    let other = hs256(&random_secret(), &jitsi_payload());
    assert_eq!(
        hs.verifier.verify(&other, now()).unwrap_err(),
        TokenError::BadSignature
    );
}

#[test]
fn alg_none_is_refused() {
    let hs = Hs::new();
    for alg in ["none", "None", "NONE", ""] {
        let header = json!({"alg": alg, "typ": "JWT"});
        for sig in [vec![], b"x".to_vec()] {
            let token = craft(&header, &jitsi_payload(), |_| sig.clone());
            let err = hs.verifier.verify(&token, now()).unwrap_err();
            assert_eq!(
                err,
                TokenError::UnsupportedAlgorithm(format!("{alg:?}"), "HS256"),
                "alg {alg:?}"
            );
        }
    }
    let token = craft(&json!({"alg": "none"}), &jitsi_payload(), |_| vec![]);
    assert_eq!(
        hs.verifier.verify(&token, now()).unwrap_err().to_string(),
        "token algorithm \"none\" is not accepted; the server is configured for HS256"
    );
}

#[test]
fn other_algorithms_are_refused_even_when_correctly_signed() {
    let hs = Hs::new();
    // A valid ES256 token presented to an HS256 server.
    let key = TestKey::ec();
    let token = key.token(&json!({"alg": "ES256"}), &jitsi_payload());
    assert_eq!(
        hs.verifier.verify(&token, now()).unwrap_err(),
        TokenError::UnsupportedAlgorithm("\"ES256\"".into(), "HS256")
    );
    // HS512 with the right secret is still not HS256.
    let token = craft(&json!({"alg": "HS512"}), &jitsi_payload(), |m| {
        let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA512, hs.secret.as_bytes());
        aws_lc_rs::hmac::sign(&k, m).as_ref().to_vec()
    });
    assert!(matches!(
        hs.verifier.verify(&token, now()).unwrap_err(),
        TokenError::UnsupportedAlgorithm(..)
    ));
}

/// The classic confusion attack: the server holds an RSA public key; the attacker signs an
/// HS256 token using that public key (which is public) as the HMAC secret.
#[test]
fn alg_confusion_hs256_with_the_public_key_is_refused() {
    let dir = TempDir::new();
    for key in [TestKey::rsa(), TestKey::ec()] {
        let config = pem_config(&key, &dir);
        let verifier = TokenVerifier::from_config(&config).unwrap();
        let forged = craft(&json!({"alg": "HS256"}), &jitsi_payload(), |m| {
            hmac_sha256(key.public_pem.as_bytes(), m)
        });
        assert_eq!(
            verifier.verify(&forged, now()).unwrap_err(),
            TokenError::UnsupportedAlgorithm("\"HS256\"".into(), config.algorithm.as_str())
        );
    }
    // And an RS256 server does not take ES256 (or the reverse).
    let rsa = TestKey::rsa();
    let verifier = TokenVerifier::from_config(&pem_config(&rsa, &dir)).unwrap();
    let ec_token = TestKey::ec().token(&json!({"alg": "ES256"}), &jitsi_payload());
    assert!(matches!(
        verifier.verify(&ec_token, now()).unwrap_err(),
        TokenError::UnsupportedAlgorithm(..)
    ));
}

#[test]
fn wrong_key_of_the_right_type() {
    let dir = TempDir::new();
    for (a, b) in [
        (TestKey::rsa(), TestKey::rsa()),
        (TestKey::ec(), TestKey::ec()),
    ] {
        let verifier = TokenVerifier::from_config(&pem_config(&a, &dir)).unwrap();
        let header = json!({"alg": a.alg.as_str()});
        assert!(
            verifier
                .verify(&a.token(&header, &jitsi_payload()), now())
                .is_ok()
        );
        assert_eq!(
            verifier
                .verify(&b.token(&header, &jitsi_payload()), now())
                .unwrap_err(),
            TokenError::BadSignature
        );
    }
}

#[test]
fn oversize_token_is_refused_before_parsing() {
    let hs = Hs::new();
    let garbage = "x".repeat(8193);
    let err = hs.verifier.verify(&garbage, now()).unwrap_err();
    assert_eq!(
        err,
        TokenError::TooLong {
            len: 8193,
            max: 8192
        }
    );
    assert_eq!(
        err.to_string(),
        "token is 8193 bytes long; the limit is 8192 (tokens.max_token_bytes)"
    );
    // A genuine, correctly signed token over the limit is refused too.
    let mut p = jitsi_payload();
    p["context"]["user"]["name"] = json!("n".repeat(9000));
    assert!(matches!(
        hs.check(&p).unwrap_err(),
        TokenError::TooLong { .. }
    ));
}

#[test]
fn garbage_is_malformed() {
    let hs = Hs::new();
    let header = b64url(br#"{"alg":"HS256"}"#);
    let payload = b64url(jitsi_payload().to_string().as_bytes());
    let cases: Vec<String> = vec![
        "".into(),
        "garbage".into(),
        "a.b".into(),
        "a.b.c.d".into(),
        "....".into(),
        "\u{0}\u{1}.\u{2}.\u{3}".into(),
        "%%%.%%%.%%%".into(),
        format!("{}.{payload}.sig", b64url(b"not json")),
        format!("{}.{payload}.sig", b64url(b"[1,2]")),
        format!("{}.{payload}.sig", b64url(br#"{"alg":5}"#)),
        format!("{}.{payload}.sig", b64url(br#"{"typ":"JWT"}"#)),
        format!("{header}=.{payload}.sig"),
        format!("{header}.{payload}."),
        format!("{header}.{payload}.***"),
        format!(
            "{}.{payload}.sig",
            b64url(br#"{"alg":"HS256","crit":["exp"]}"#)
        ),
    ];
    for token in cases {
        let err = hs.verifier.verify(&token, now()).unwrap_err();
        assert!(matches!(err, TokenError::Malformed(_)), "{token:?}: {err}");
        assert!(err.to_string().starts_with("malformed token: "), "{err}");
    }
    // Correctly signed, but the payload is not a JSON object.
    let token = craft(&json!({"alg": "HS256"}), &json!([1, 2, 3]), |m| {
        hmac_sha256(hs.secret.as_bytes(), m)
    });
    assert_eq!(
        hs.verifier.verify(&token, now()).unwrap_err(),
        TokenError::Malformed("the payload is not a JSON object")
    );
}

#[test]
fn client_text_in_messages_is_escaped_and_short() {
    let hs = Hs::new();
    let evil = format!("evil\n\u{1b}[31m{}", "x".repeat(500));
    let err = hs
        .check(&with(jitsi_payload(), "iss", json!(evil)))
        .unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains('\n') && !msg.contains('\u{1b}'), "{msg}");
    assert!(msg.len() < 200, "{msg}");
}

#[test]
fn unknown_key_and_missing_kid() {
    let dir = TempDir::new();
    let (a, b) = (TestKey::rsa(), TestKey::rsa());
    let jwks = json!({"keys": [a.jwk_with_kid("a"), b.jwk_with_kid("b")]});
    let config = conclave_token::TokenConfig {
        jwks_file: Some(dir.write("jwks.json", jwks.to_string())),
        ..base_config(TokenAlgorithm::RS256)
    };
    let verifier = TokenVerifier::from_config(&config).unwrap();
    let err = verifier
        .verify(
            &a.token(&json!({"alg": "RS256", "kid": "c"}), &jitsi_payload()),
            now(),
        )
        .unwrap_err();
    assert_eq!(err, TokenError::UnknownKey(Some("c".into())));
    assert_eq!(
        err.to_string(),
        "no configured key has key id \"c\" (the token's kid header)"
    );
    let err = verifier
        .verify(&a.token(&json!({"alg": "RS256"}), &jitsi_payload()), now())
        .unwrap_err();
    assert_eq!(err, TokenError::UnknownKey(None));
    // A kid naming the other key: the signature does not match it.
    let err = verifier
        .verify(
            &a.token(&json!({"alg": "RS256", "kid": "b"}), &jitsi_payload()),
            now(),
        )
        .unwrap_err();
    assert_eq!(err, TokenError::BadSignature);
}

/// Hostile input beside the parser: every single-character change of a valid token is
/// refused (never accepted, never a panic), and so is every prefix.
#[test]
fn every_one_character_change_is_refused() {
    let hs = Hs::new();
    let token = hs256(&hs.secret, &jitsi_payload());
    hs.verifier
        .verify(&token, now())
        .expect("the original verifies");
    let bytes = token.as_bytes();
    let mut checked = 0;
    for i in 0..bytes.len() {
        for replacement in [b'A', b'z', b'0', b'-', b'.', b'='] {
            if bytes[i] == replacement {
                continue;
            }
            let mut changed = bytes.to_vec();
            changed[i] = replacement;
            let changed = String::from_utf8(changed).unwrap();
            assert!(
                hs.verifier.verify(&changed, now()).is_err(),
                "position {i} -> {:?} was accepted",
                replacement as char
            );
            checked += 1;
        }
    }
    for end in 0..bytes.len() {
        assert!(
            hs.verifier.verify(&token[..end], now()).is_err(),
            "prefix {end}"
        );
    }
    assert!(checked > 1000, "{checked}");
}
