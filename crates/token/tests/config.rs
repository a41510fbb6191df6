//! The `[tokens]` section: parsing, defaults, validation, and key files that are wrong.

mod common;

use common::*;
use conclave_token::{
    ConfigError, Secret, TokenAlgorithm, TokenConfig, TokenMinter, TokenVerifier,
};

fn parse(toml_text: &str) -> Result<TokenConfig, toml::de::Error> {
    toml::from_str(toml_text)
}

fn invalid_key(config: &TokenConfig) -> &'static str {
    match config.validate() {
        Err(ConfigError::Invalid { key, .. }) => key,
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

#[test]
fn default_is_disabled_and_valid() {
    let c = TokenConfig::default();
    assert!(!c.enabled);
    assert_eq!(c.algorithm, TokenAlgorithm::HS256);
    assert_eq!(c.leeway_secs, 30);
    assert_eq!(c.max_token_bytes, 8192);
    assert!(!c.enforce_expiry_during_meeting);
    c.validate().unwrap();
    assert_eq!(parse("").unwrap(), c);
    let err = TokenVerifier::from_config(&c).unwrap_err();
    assert_eq!(err.to_string(), "tokens.enabled: tokens are disabled");
}

#[test]
fn parses_a_full_section() {
    let c = parse(
        r#"
        enabled = true
        algorithm = "RS256"
        jwks_url = "https://issuer.example.org/.well-known/jwks.json"
        jwks_refresh_secs = 600
        jwks_min_refetch_secs = 30
        jwks_timeout_secs = 5
        jwks_max_bytes = 32768
        private_key_file = "/etc/conclave/token-private.pem"
        key_id = "k1"
        audience = ["jitsi", "conclave"]
        issuer = "my_client"
        leeway_secs = 10
        max_token_bytes = 4096
        max_mint_ttl_secs = 86400
        enforce_expiry_during_meeting = true
        "#,
    )
    .unwrap();
    assert_eq!(c.audience, ["jitsi", "conclave"]);
    assert_eq!(c.issuer, ["my_client"]);
    assert_eq!(c.algorithm, TokenAlgorithm::RS256);
    c.validate().unwrap();
}

#[test]
fn unknown_keys_and_algorithms_are_refused() {
    let err = parse("enabeld = true").unwrap_err().to_string();
    assert!(err.contains("enabeld"), "{err}");
    let err = parse(r#"algorithm = "none""#).unwrap_err().to_string();
    assert!(err.contains("none"), "{err}");
    assert!(parse(r#"algorithm = "HS512""#).is_err());
    assert!(parse(r#"algorithm = "hs256""#).is_err());
}

#[test]
fn validation_names_the_key() {
    let secret = random_secret();
    let ok = hs256_config(&secret);
    ok.validate().unwrap();

    let cases: Vec<(TokenConfig, &str)> = vec![
        (
            TokenConfig {
                leeway_secs: 301,
                ..ok.clone()
            },
            "leeway_secs",
        ),
        (
            TokenConfig {
                max_token_bytes: 100,
                ..ok.clone()
            },
            "max_token_bytes",
        ),
        (
            TokenConfig {
                max_token_bytes: 1 << 20,
                ..ok.clone()
            },
            "max_token_bytes",
        ),
        (
            TokenConfig {
                jwks_refresh_secs: 5,
                ..ok.clone()
            },
            "jwks_refresh_secs",
        ),
        (
            TokenConfig {
                jwks_min_refetch_secs: 0,
                ..ok.clone()
            },
            "jwks_min_refetch_secs",
        ),
        (
            TokenConfig {
                jwks_timeout_secs: 0,
                ..ok.clone()
            },
            "jwks_timeout_secs",
        ),
        (
            TokenConfig {
                jwks_max_bytes: 10,
                ..ok.clone()
            },
            "jwks_max_bytes",
        ),
        (
            TokenConfig {
                max_mint_ttl_secs: 1,
                ..ok.clone()
            },
            "max_mint_ttl_secs",
        ),
        (
            TokenConfig {
                audience: vec![],
                ..ok.clone()
            },
            "audience",
        ),
        (
            TokenConfig {
                audience: vec!["*".into()],
                ..ok.clone()
            },
            "audience",
        ),
        (
            TokenConfig {
                issuer: vec![" ".into()],
                ..ok.clone()
            },
            "issuer",
        ),
        (
            TokenConfig {
                secret: None,
                ..ok.clone()
            },
            "secret_file",
        ),
        (
            TokenConfig {
                secret: Some(Secret("short".into())),
                ..ok.clone()
            },
            "secret",
        ),
        (
            TokenConfig {
                secret_file: Some("/s".into()),
                ..ok.clone()
            },
            "secret",
        ),
        (
            TokenConfig {
                public_key_file: Some("/p.pem".into()),
                ..ok.clone()
            },
            "public_key_file",
        ),
        (
            TokenConfig {
                jwks_url: Some("https://x.example".into()),
                ..ok.clone()
            },
            "jwks_url",
        ),
        (
            TokenConfig {
                key_id: Some("k".into()),
                ..ok.clone()
            },
            "key_id",
        ),
    ];
    for (config, key) in cases {
        assert_eq!(invalid_key(&config), key, "{config:?}");
    }

    let rs = base_config(TokenAlgorithm::RS256);
    assert_eq!(invalid_key(&rs), "public_key_file");
    let both = TokenConfig {
        public_key_file: Some("/p.pem".into()),
        jwks_file: Some("/j.json".into()),
        ..rs.clone()
    };
    assert_eq!(invalid_key(&both), "public_key_file");
    let with_secret = TokenConfig {
        public_key_file: Some("/p.pem".into()),
        secret: Some(Secret(secret.clone())),
        ..rs.clone()
    };
    assert_eq!(invalid_key(&with_secret), "secret");
    for url in [
        "http://issuer.example/jwks",
        "https:///jwks",
        "https://u@h/jwks",
        "not a url",
    ] {
        let c = TokenConfig {
            jwks_url: Some(url.into()),
            ..rs.clone()
        };
        assert_eq!(invalid_key(&c), "jwks_url", "{url}");
    }
    let ca_without_url = TokenConfig {
        public_key_file: Some("/p.pem".into()),
        jwks_ca_file: Some("/ca.pem".into()),
        ..rs.clone()
    };
    assert_eq!(invalid_key(&ca_without_url), "jwks_ca_file");

    // Out-of-range values are refused even while tokens are disabled.
    let disabled = TokenConfig {
        leeway_secs: 9999,
        ..TokenConfig::default()
    };
    assert_eq!(invalid_key(&disabled), "leeway_secs");

    let msg = TokenConfig {
        secret: Some(Secret("short".into())),
        ..ok.clone()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(
        msg.starts_with("tokens.secret: the HS256 secret has 5 bytes; at least 32"),
        "{msg}"
    );
}

#[test]
fn debug_output_never_shows_the_secret() {
    let secret = random_secret();
    let c = hs256_config(&secret);
    assert!(!format!("{c:?}").contains(&secret));
    let minter = TokenMinter::from_config(&c).unwrap();
    assert!(!format!("{minter:?}").contains(&secret));
    let verifier = TokenVerifier::from_config(&c).unwrap();
    assert!(!format!("{verifier:?}").contains(&secret));
}

#[test]
fn key_files_that_are_wrong_are_named() {
    let dir = TempDir::new();
    let rsa = TestKey::rsa();
    let ec = TestKey::ec();
    let err_of = |config: TokenConfig| TokenVerifier::from_config(&config).unwrap_err().to_string();

    let missing = TokenConfig {
        public_key_file: Some(dir.path().join("nope.pem")),
        ..base_config(TokenAlgorithm::RS256)
    };
    let msg = err_of(missing);
    assert!(
        msg.starts_with("tokens.public_key_file: cannot read "),
        "{msg}"
    );

    let private_as_public = TokenConfig {
        public_key_file: Some(dir.write("priv.pem", &rsa.private_pem)),
        ..base_config(TokenAlgorithm::RS256)
    };
    assert!(err_of(private_as_public).contains("holds a private key"));

    let cert = TokenConfig {
        public_key_file: Some(dir.write("cert.pem", pem("CERTIFICATE", b"\x30\x00"))),
        ..base_config(TokenAlgorithm::RS256)
    };
    assert!(err_of(cert).contains("holds a certificate"));

    let ec_for_rsa = TokenConfig {
        public_key_file: Some(dir.write("ec.pem", &ec.public_pem)),
        ..base_config(TokenAlgorithm::RS256)
    };
    let msg = err_of(ec_for_rsa);
    assert!(msg.starts_with("tokens.public_key_file: "), "{msg}");

    let rsa_for_ec = TokenConfig {
        public_key_file: Some(dir.write("rsa.pem", &rsa.public_pem)),
        ..base_config(TokenAlgorithm::ES256)
    };
    assert!(err_of(rsa_for_ec).starts_with("tokens.public_key_file: "));

    let not_pem = TokenConfig {
        public_key_file: Some(dir.write("x.pem", "hello")),
        ..base_config(TokenAlgorithm::ES256)
    };
    assert!(err_of(not_pem).contains("not a PEM file"));

    let short_secret_file = TokenConfig {
        secret_file: Some(dir.write("secret", "tooshort\n")),
        ..base_config(TokenAlgorithm::HS256)
    };
    let msg = err_of(short_secret_file);
    assert!(
        msg.starts_with("tokens.secret_file: the HS256 secret has 8 bytes"),
        "{msg}"
    );
}

#[test]
fn minter_refuses_a_private_key_that_does_not_match_the_public_key() {
    let dir = TempDir::new();
    for (a, b) in [
        (TestKey::rsa(), TestKey::rsa()),
        (TestKey::ec(), TestKey::ec()),
    ] {
        let config = TokenConfig {
            public_key_file: Some(dir.write("a.pem", &a.public_pem)),
            private_key_file: Some(dir.write("b.pem", &b.private_pem)),
            ..base_config(a.alg)
        };
        let err = TokenMinter::from_config(&config).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "tokens.private_key_file: a token signed with this key does not verify"
            ),
            "{err}"
        );
    }
    // A public key where the private key belongs.
    let key = TestKey::ec();
    let config = TokenConfig {
        public_key_file: Some(dir.write("pub.pem", &key.public_pem)),
        private_key_file: Some(dir.write("pub2.pem", &key.public_pem)),
        ..base_config(TokenAlgorithm::ES256)
    };
    let err = TokenMinter::from_config(&config).unwrap_err().to_string();
    assert!(err.contains("does not hold a private key"), "{err}");
}
