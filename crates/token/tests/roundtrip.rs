//! Minting and verifying with each algorithm, and invite links.

mod common;

use std::time::Duration;

use common::*;
use conclave_token::{
    LinkError, MintError, MintRequest, RoomScope, TokenError, TokenMinter, TokenVerifier,
    check_room, invite_link, mint,
};
use serde_json::json;

const ROOM: &str = "RoomRoomRoomRoom1234";

fn request() -> MintRequest {
    MintRequest {
        room: ROOM.into(),
        name: "Jane Doe".into(),
        user_id: Some("jane".into()),
        subject: None,
        email: Some("jane@example.org".into()),
        moderator: true,
        lobby_bypass: true,
        ttl: Duration::from_secs(3600),
    }
}

fn round_trip(config: &conclave_token::TokenConfig) {
    let token = mint(config, &request(), now()).expect("mint");
    let id = TokenVerifier::from_config(config)
        .expect("verifier")
        .verify(&token, now())
        .expect("verify");
    assert_eq!(id.issuer, "my_client");
    assert_eq!(id.subject.as_deref(), Some("*"));
    assert_eq!(id.user_id.as_deref(), Some("jane"));
    assert_eq!(id.name.as_deref(), Some("Jane Doe"));
    assert_eq!(id.email.as_deref(), Some("jane@example.org"));
    assert!(id.moderator);
    assert!(id.lobby_bypass);
    assert_eq!(id.room, RoomScope::Room(ROOM.into()));
    assert_eq!(id.expires_at, at(NOW + 3600));
    assert_eq!(id.issued_at, Some(now()));
    check_room(&id, ROOM).unwrap();
    assert!(matches!(
        check_room(&id, "OtherRoomOtherRoom99"),
        Err(TokenError::WrongRoom { .. })
    ));
}

#[test]
fn hs256_round_trip() {
    round_trip(&hs256_config(&random_secret()));
}

#[test]
fn hs256_round_trip_with_secret_file() {
    let dir = TempDir::new();
    let secret = random_secret();
    let mut config = base_config(conclave_token::TokenAlgorithm::HS256);
    // A trailing newline, as `openssl rand -hex 32 > file` leaves, is not part of the secret.
    config.secret_file = Some(dir.write("secret", format!("{secret}\n")));
    round_trip(&config);
    let token = hs256(&secret, &jitsi_payload());
    TokenVerifier::from_config(&config)
        .unwrap()
        .verify(&token, now())
        .expect("a token signed with the file's secret verifies");
}

#[test]
fn rs256_round_trip() {
    let dir = TempDir::new();
    round_trip(&pem_config(&TestKey::rsa(), &dir));
}

#[test]
fn es256_round_trip() {
    let dir = TempDir::new();
    round_trip(&pem_config(&TestKey::ec(), &dir));
}

/// Tokens signed by aws-lc-rs directly (not by our minting code) verify too.
#[test]
fn independently_signed_tokens_verify() {
    let dir = TempDir::new();
    for key in [TestKey::rsa(), TestKey::ec()] {
        let config = pem_config(&key, &dir);
        let header = json!({"alg": config.algorithm.as_str(), "typ": "JWT"});
        let token = key.token(&header, &jitsi_payload());
        let id = TokenVerifier::from_config(&config)
            .unwrap()
            .verify(&token, now())
            .unwrap_or_else(|e| panic!("{}: {e}", config.algorithm));
        assert_eq!(id.name.as_deref(), Some("Jane Doe"));
    }
}

#[test]
fn minted_token_has_jitsis_shape() {
    let secret = random_secret();
    let mut req = request();
    req.user_id = None;
    req.moderator = false;
    let token = mint(&hs256_config(&secret), &req, now()).unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], "my_client");
    assert_eq!(claims["aud"], "jitsi");
    assert_eq!(claims["sub"], "*");
    assert_eq!(claims["room"], ROOM);
    assert_eq!(claims["exp"], NOW + 3600);
    assert_eq!(claims["nbf"], NOW);
    assert_eq!(claims["context"]["user"]["name"], "Jane Doe");
    assert_eq!(claims["context"]["user"]["moderator"], false);
    assert_eq!(claims["context"]["user"]["lobby_bypass"], true);
    let id = claims["context"]["user"]["id"].as_str().unwrap();
    assert_eq!(id.len(), 32, "random 128-bit id: {id}");
}

#[test]
fn minted_token_carries_the_configured_kid() {
    let dir = TempDir::new();
    let key = TestKey::ec();
    let mut config = pem_config(&key, &dir);
    config.key_id = Some("issuer-2026".into());
    let token = mint(&config, &request(), now()).unwrap();
    let header = token.split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], "issuer-2026");
    assert_eq!(header["alg"], "ES256");
}

#[test]
fn wildcard_room_admits_every_room() {
    let config = hs256_config(&random_secret());
    let mut req = request();
    req.room = "*".into();
    let token = mint(&config, &req, now()).unwrap();
    let id = TokenVerifier::from_config(&config)
        .unwrap()
        .verify(&token, now())
        .unwrap();
    assert_eq!(id.room, RoomScope::Any);
    check_room(&id, ROOM).unwrap();
    check_room(&id, "AnotherRoomAnotherRoom").unwrap();
}

#[test]
fn mint_refuses_bad_requests() {
    let minter = TokenMinter::from_config(&hs256_config(&random_secret())).unwrap();
    let field = |req: MintRequest| match minter.mint(&req, now()) {
        Err(MintError::InvalidRequest { field, .. }) => field,
        other => panic!("expected InvalidRequest, got {other:?}"),
    };
    assert_eq!(
        field(MintRequest {
            room: "short".into(),
            ..request()
        }),
        "room"
    );
    assert_eq!(
        field(MintRequest {
            room: "a/b".repeat(8),
            ..request()
        }),
        "room"
    );
    assert_eq!(
        field(MintRequest {
            name: "  ".into(),
            ..request()
        }),
        "name"
    );
    assert_eq!(
        field(MintRequest {
            name: "a\nb".into(),
            ..request()
        }),
        "name"
    );
    assert_eq!(
        field(MintRequest {
            email: Some("x\u{7}".into()),
            ..request()
        }),
        "email"
    );
    assert_eq!(
        field(MintRequest {
            ttl: Duration::ZERO,
            ..request()
        }),
        "ttl"
    );
    assert_eq!(
        field(MintRequest {
            ttl: Duration::from_secs(31 * 24 * 3600),
            ..request()
        }),
        "ttl"
    );
    // A name so long the token would exceed max_token_bytes: refused, not handed out.
    let long = MintRequest {
        name: "x".repeat(9000),
        ..request()
    };
    assert!(matches!(
        minter.mint(&long, now()),
        Err(MintError::TooLong { .. })
    ));
}

#[test]
fn minting_needs_tokens_enabled_and_a_private_key() {
    let mut config = hs256_config(&random_secret());
    config.enabled = false;
    let err = mint(&config, &request(), now()).unwrap_err();
    assert!(err.to_string().contains("tokens.enabled"), "{err}");

    let dir = TempDir::new();
    let mut config = pem_config(&TestKey::rsa(), &dir);
    config.private_key_file = None;
    let err = mint(&config, &request(), now()).unwrap_err();
    assert!(
        err.to_string().starts_with("tokens.private_key_file"),
        "{err}"
    );
}

#[test]
fn invite_links() {
    let token = mint(&hs256_config(&random_secret()), &request(), now()).unwrap();
    assert_eq!(
        invite_link("https://meet.example.org/", ROOM, &token).unwrap(),
        format!("https://meet.example.org/r/{ROOM}?jwt={token}")
    );
    assert_eq!(
        invite_link("https://meet.example.org:8443/conclave", ROOM, "a.b.c").unwrap(),
        format!("https://meet.example.org:8443/conclave/r/{ROOM}?jwt=a.b.c")
    );
    for base in [
        "http://meet.example.org",
        "https://",
        "https://meet.example.org/?x=1",
        "https://meet.example.org/#frag",
        "https://user@meet.example.org",
        "https://meet example.org",
        "meet.example.org",
    ] {
        assert!(
            matches!(invite_link(base, ROOM, &token), Err(LinkError::BaseUrl(_))),
            "{base}"
        );
    }
    assert!(matches!(
        invite_link("https://meet.example.org", "*", &token),
        Err(LinkError::Room(_))
    ));
    assert_eq!(
        invite_link("https://meet.example.org", ROOM, "a.b.c&x=<y>"),
        Err(LinkError::Token)
    );
}
