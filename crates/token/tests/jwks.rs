//! JSON Web Key Sets from a file: selection by kid, and which keys are taken.

mod common;

use common::*;
use conclave_token::{ConfigError, TokenAlgorithm, TokenConfig, TokenError, TokenVerifier};
use serde_json::{Value, json};

fn jwks_config(alg: TokenAlgorithm, dir: &TempDir, jwks: &Value) -> TokenConfig {
    TokenConfig {
        jwks_file: Some(dir.write("jwks.json", jwks.to_string())),
        ..base_config(alg)
    }
}

fn load_err(alg: TokenAlgorithm, jwks: Value) -> String {
    let dir = TempDir::new();
    match TokenVerifier::from_config(&jwks_config(alg, &dir, &jwks)) {
        Err(
            e @ ConfigError::BadKey {
                key: "jwks_file", ..
            },
        ) => e.to_string(),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("key set {jwks} was accepted"),
    }
}

#[test]
fn two_rsa_keys_selected_by_kid() {
    let dir = TempDir::new();
    let (a, b) = (TestKey::rsa(), TestKey::rsa());
    let jwks = json!({"keys": [a.jwk_with_kid("2025"), b.jwk_with_kid("2026")]});
    let verifier =
        TokenVerifier::from_config(&jwks_config(TokenAlgorithm::RS256, &dir, &jwks)).unwrap();
    let mut p = jitsi_payload();
    p["context"]["user"]["name"] = json!("signed by a");
    let id = verifier
        .verify(&a.token(&json!({"alg": "RS256", "kid": "2025"}), &p), now())
        .unwrap();
    assert_eq!(id.name.as_deref(), Some("signed by a"));
    p["context"]["user"]["name"] = json!("signed by b");
    let id = verifier
        .verify(&b.token(&json!({"alg": "RS256", "kid": "2026"}), &p), now())
        .unwrap();
    assert_eq!(id.name.as_deref(), Some("signed by b"));
    // Swapped kids: each signature is checked against the other key and fails.
    assert_eq!(
        verifier
            .verify(&a.token(&json!({"alg": "RS256", "kid": "2026"}), &p), now())
            .unwrap_err(),
        TokenError::BadSignature
    );
}

#[test]
fn two_ec_keys_selected_by_kid_among_foreign_keys() {
    let dir = TempDir::new();
    let (a, b, rsa) = (TestKey::ec(), TestKey::ec(), TestKey::rsa());
    let mut enc = b.jwk_with_kid("enc");
    enc["use"] = json!("enc");
    let mut p384 = a.jwk_with_kid("p384");
    p384["crv"] = json!("P-384");
    let jwks = json!({"keys": [
        rsa.jwk_with_kid("rsa"),                // other type: ignored
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},  // symmetric: ignored
        {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        enc,                                    // encryption key: ignored
        p384,                                   // other curve: ignored
        "not an object",
        a.jwk_with_kid("a"),
        {"kid": "b", "alg": "ES256", "use": "sig", "kty": "EC", "crv": "P-256",
         "x": b.jwk["x"], "y": b.jwk["y"]},
    ]});
    let verifier =
        TokenVerifier::from_config(&jwks_config(TokenAlgorithm::ES256, &dir, &jwks)).unwrap();
    for (key, kid) in [(&a, "a"), (&b, "b")] {
        verifier
            .verify(
                &key.token(&json!({"alg": "ES256", "kid": kid}), &jitsi_payload()),
                now(),
            )
            .unwrap_or_else(|e| panic!("kid {kid}: {e}"));
    }
    for kid in ["rsa", "hmac", "enc", "p384"] {
        assert_eq!(
            verifier
                .verify(
                    &b.token(&json!({"alg": "ES256", "kid": kid}), &jitsi_payload()),
                    now()
                )
                .unwrap_err(),
            TokenError::UnknownKey(Some(kid.into())),
            "{kid}"
        );
    }
}

#[test]
fn single_key_without_kid_is_used_for_tokens_without_kid() {
    let dir = TempDir::new();
    let key = TestKey::rsa();
    let jwks = json!({"keys": [key.jwk.clone()]});
    let verifier =
        TokenVerifier::from_config(&jwks_config(TokenAlgorithm::RS256, &dir, &jwks)).unwrap();
    verifier
        .verify(
            &key.token(&json!({"alg": "RS256"}), &jitsi_payload()),
            now(),
        )
        .unwrap();
}

#[test]
fn unusable_key_sets_are_configuration_errors() {
    let rsa = TestKey::rsa();
    let ec = TestKey::ec();
    let msg = load_err(
        TokenAlgorithm::ES256,
        json!({"keys": [rsa.jwk_with_kid("r")]}),
    );
    assert!(msg.starts_with("tokens.jwks_file: "), "{msg}");
    assert!(msg.contains("holds no key usable for ES256"), "{msg}");

    let msg = load_err(TokenAlgorithm::RS256, json!([rsa.jwk]));
    assert!(msg.contains("is not a JSON Web Key Set"), "{msg}");

    let msg = load_err(
        TokenAlgorithm::RS256,
        json!({"keys": [rsa.jwk_with_kid("x"), rsa.jwk_with_kid("x")]}),
    );
    assert!(msg.contains("same kid"), "{msg}");

    let msg = load_err(
        TokenAlgorithm::ES256,
        json!({"keys": [ec.jwk.clone(), TestKey::ec().jwk]}),
    );
    assert!(msg.contains("not all have a kid"), "{msg}");

    // A 1024-bit modulus is refused (at least 2048 bits).
    let mut n = vec![0xc5u8; 128];
    n[127] |= 1;
    let weak = json!({"kty": "RSA", "kid": "weak", "n": b64url(&n), "e": "AQAB"});
    let msg = load_err(TokenAlgorithm::RS256, json!({"keys": [weak]}));
    assert!(msg.contains("1024 bits; at least 2048"), "{msg}");

    // Coordinates that are not a point on P-256.
    let bad = json!({"kty": "EC", "crv": "P-256", "kid": "bad",
                     "x": b64url(&[1u8; 32]), "y": b64url(&[2u8; 32])});
    let msg = load_err(TokenAlgorithm::ES256, json!({"keys": [bad]}));
    assert!(msg.contains("P-256"), "{msg}");

    let msg = load_err(
        TokenAlgorithm::RS256,
        json!({"keys": [{"kty": "RSA", "kid": "k", "e": "AQAB"}]}),
    );
    assert!(
        msg.contains("has no \\\"n\\\"") || msg.contains("has no \"n\""),
        "{msg}"
    );
}

#[test]
fn too_many_keys_are_refused() {
    let key = TestKey::ec();
    let keys: Vec<Value> = (0..=conclave_token::MAX_JWKS_KEYS)
        .map(|i| key.jwk_with_kid(&format!("k{i}")))
        .collect();
    let msg = load_err(TokenAlgorithm::ES256, json!({ "keys": keys }));
    assert!(msg.contains("more than 64"), "{msg}");
}
