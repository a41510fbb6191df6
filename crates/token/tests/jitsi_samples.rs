//! Tokens in the shapes Jitsi deployments issue, written after the published examples:
//! lib-jitsi-meet's doc/tokens.md, Jitsi as a Service (8x8 JaaS, RS256 with kid and string
//! flags), and the jitsi-contrib prosody plugins `token_affiliation` and `token_lobby_bypass`.

mod common;

use common::*;
use conclave_token::{RoomScope, TokenAlgorithm, TokenConfig, TokenError, TokenVerifier};
use serde_json::json;

fn verify_hs(payload: serde_json::Value) -> Result<conclave_token::TokenIdentity, TokenError> {
    let secret = random_secret();
    let token = hs256(&secret, &payload);
    TokenVerifier::from_config(&hs256_config(&secret))
        .unwrap()
        .verify(&token, now())
}

/// The example payload of lib-jitsi-meet's doc/tokens.md (dates moved to the test clock).
#[test]
fn lib_jitsi_meet_documented_example() {
    let id = verify_hs(json!({
        "context": {
            "user": {
                "avatar": "https:/gravatar.com/avatar/abc123",
                "name": "John Doe",
                "email": "jdoe@example.com",
                "id": "abcd:a1b2c3-d4e5f6-0abc1-23de-abcdef01fedcba"
            },
            "group": "a123-123-456-789"
        },
        "aud": "jitsi",
        "iss": "my_client",
        "sub": "meet.jit.si",
        "room": "*",
        "exp": NOW + 600
    }))
    .unwrap();
    assert_eq!(id.name.as_deref(), Some("John Doe"));
    assert_eq!(id.email.as_deref(), Some("jdoe@example.com"));
    assert_eq!(
        id.avatar.as_deref(),
        Some("https:/gravatar.com/avatar/abc123")
    );
    assert_eq!(
        id.user_id.as_deref(),
        Some("abcd:a1b2c3-d4e5f6-0abc1-23de-abcdef01fedcba")
    );
    assert_eq!(id.subject.as_deref(), Some("meet.jit.si"));
    assert_eq!(id.room, RoomScope::Any);
    assert!(!id.moderator);
    assert!(!id.lobby_bypass);
    assert_eq!(id.issued_at, None);
}

/// JaaS: RS256, a `kid` naming the key, `"moderator": "true"` as a string, features.
#[test]
fn jaas_style_rs256_token_with_string_moderator() {
    let dir = TempDir::new();
    let key = TestKey::rsa();
    let kid = "vpaas-magic-cookie-1fc542a3e4414a44b2611668195e2bfe/4f4910";
    let jwks = json!({"keys": [key.jwk_with_kid(kid)]});
    let config = TokenConfig {
        jwks_file: Some(dir.write("jwks.json", jwks.to_string())),
        audience: vec!["jitsi".into()],
        issuer: vec!["chat".into()],
        ..base_config(TokenAlgorithm::RS256)
    };
    let header = json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
    let mut payload = json!({
        "aud": "jitsi",
        "iss": "chat",
        "iat": NOW - 5,
        "exp": NOW + 7200,
        "nbf": NOW - 10,
        "sub": "vpaas-magic-cookie-1fc542a3e4414a44b2611668195e2bfe",
        "context": {
            "features": {
                "livestreaming": "true", "recording": "false",
                "outbound-call": "false", "transcription": "false"
            },
            "user": {
                "hidden-from-recorder": false,
                "moderator": "true",
                "name": "Ana",
                "id": "google-oauth2|1234567890",
                "avatar": "",
                "email": "ana@example.org"
            }
        },
        "room": "*"
    });
    let verifier = TokenVerifier::from_config(&config).unwrap();
    let id = verifier
        .verify(&key.token(&header, &payload), now())
        .unwrap();
    assert!(id.moderator, "\"moderator\": \"true\" makes a moderator");
    assert_eq!(id.avatar, None, "an empty avatar is no avatar");

    payload["context"]["user"]["moderator"] = json!("false");
    let id = verifier
        .verify(&key.token(&header, &payload), now())
        .unwrap();
    assert!(!id.moderator);
}

/// jitsi-contrib token_lobby_bypass: `context.user.lobby_bypass: true`.
#[test]
fn contrib_lobby_bypass_sample() {
    let id = verify_hs(json!({
        "room": "myRoomNameIsLongEnough",
        "context": {
            "user": {
                "name": "myname",
                "email": "myname@mydomain.com",
                "lobby_bypass": true
            }
        },
        "aud": "jitsi",
        "iss": "my_client",
        "sub": "meet.mydomain.com",
        "iat": NOW - 60,
        "exp": NOW + 120
    }))
    .unwrap();
    assert!(id.lobby_bypass);
    assert!(!id.moderator);
    assert_eq!(id.room, RoomScope::Room("myRoomNameIsLongEnough".into()));
    assert_eq!(id.issued_at, Some(at(NOW - 60)));
}

/// jitsi-contrib token_affiliation: `affiliation` of owner/moderator/teacher means moderator;
/// `member` does not. Also the `moderator` flag in every spelling issuers use.
#[test]
fn moderator_spellings() {
    let with_user = |user: serde_json::Value| {
        let mut p = jitsi_payload();
        p["context"]["user"] = user;
        verify_hs(p).unwrap().moderator
    };
    assert!(with_user(json!({"name": "a", "affiliation": "owner"})));
    assert!(with_user(json!({"name": "a", "affiliation": "moderator"})));
    assert!(with_user(json!({"name": "a", "affiliation": "teacher"})));
    assert!(!with_user(json!({"name": "a", "affiliation": "member"})));
    assert!(with_user(json!({"name": "a", "moderator": true})));
    assert!(with_user(json!({"name": "a", "moderator": "TRUE"})));
    assert!(with_user(json!({"name": "a", "moderator": 1})));
    assert!(!with_user(json!({"name": "a", "moderator": false})));
    assert!(!with_user(json!({"name": "a", "moderator": null})));

    // Top-level `moderator`, as the token_moderation plugin reads it.
    let mut p = jitsi_payload();
    p["moderator"] = json!(true);
    assert!(verify_hs(p).unwrap().moderator);
}

#[test]
fn lobby_bypass_spellings() {
    for (value, expected) in [
        (json!(true), true),
        (json!("true"), true),
        (json!(1), true),
        (json!(false), false),
        (json!("false"), false),
        (json!(0), false),
    ] {
        let mut p = jitsi_payload();
        p["context"]["user"]["lobby_bypass"] = value.clone();
        assert_eq!(verify_hs(p).unwrap().lobby_bypass, expected, "{value}");
    }
    for value in [json!("yes"), json!(2), json!([true]), json!({"x": 1})] {
        let mut p = jitsi_payload();
        p["context"]["user"]["lobby_bypass"] = value.clone();
        assert_eq!(
            verify_hs(p).unwrap_err(),
            TokenError::InvalidClaim {
                claim: "context.user.lobby_bypass",
                reason: "is not true/false, \"true\"/\"false\" or 1/0"
            },
            "{value}"
        );
    }
}

/// A token without any `context` is fine: the holder picks a name in the pre-join page.
#[test]
fn token_without_context() {
    let mut p = jitsi_payload();
    p.as_object_mut().unwrap().remove("context");
    let id = verify_hs(p).unwrap();
    assert_eq!((&id.name, &id.user_id, &id.email), (&None, &None, &None));
    assert!(!id.moderator && !id.lobby_bypass);
    assert_eq!(id.ban_key(), None);
}

/// `aud` may be a list (RFC 7519); fractional times are accepted (NumericDate).
#[test]
fn audience_list_and_fractional_dates() {
    let mut p = jitsi_payload();
    p["aud"] = json!(["other-service", "jitsi"]);
    p["exp"] = json!(NOW as f64 + 100.75);
    let id = verify_hs(p).unwrap();
    assert_eq!(id.expires_at, at(NOW + 100));
}

#[test]
fn ban_key_is_issuer_and_user_not_sub() {
    let id = verify_hs(jitsi_payload()).unwrap();
    assert_eq!(
        id.ban_key().as_deref(),
        Some("my_client\u{1f}id:abcd:a1b2c3-d4e5f6")
    );
    let mut p = jitsi_payload();
    p["context"]["user"].as_object_mut().unwrap().remove("id");
    assert_eq!(
        verify_hs(p).unwrap().ban_key().as_deref(),
        Some("my_client\u{1f}email:jane@example.org")
    );
}
