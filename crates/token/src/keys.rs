//! Loading and checking key material: the HS256 secret, PEM public and private keys, and
//! JSON Web Key Sets. A key that is present but unusable (too short, wrong type or curve, a
//! private key where a public one belongs) is a configuration error at start, not a
//! mysterious `BadSignature` later.

use std::path::Path;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, DecodingKeyKind, EncodingKey};
use serde::Deserialize;

use crate::config::{ConfigError, TokenAlgorithm, TokenConfig, check_secret_strength};

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Most keys taken from one JSON Web Key Set.
pub const MAX_JWKS_KEYS: usize = 64;

/// One verification key and the `kid` it is known by.
#[derive(Clone)]
pub(crate) struct VerifyKey {
    pub kid: Option<String>,
    pub key: DecodingKey,
}

/// The keys a verifier checks signatures with.
#[derive(Clone)]
pub(crate) enum KeySet {
    /// One key (a secret or a PEM public key); any `kid` in the token is ignored.
    Single(DecodingKey),
    /// Keys from a JWKS, chosen by the token's `kid`.
    Jwks(Vec<VerifyKey>),
    /// `jwks_url` before its first successful fetch.
    NotYetFetched,
}

pub(crate) fn read_file(key: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|source| ConfigError::Read {
        key,
        path: path.to_path_buf(),
        source,
    })
}

fn bad_key(key: &'static str, path: &Path, reason: impl Into<String>) -> ConfigError {
    ConfigError::BadKey {
        key,
        location: path.display().to_string(),
        reason: reason.into(),
    }
}

/// The HS256 secret from `secret_file` (one trailing newline dropped) or `secret`.
pub(crate) fn load_secret(config: &TokenConfig) -> Result<Vec<u8>, ConfigError> {
    if let Some(path) = &config.secret_file {
        let mut bytes = read_file("secret_file", path)?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        check_secret_strength("secret_file", &bytes)?;
        return Ok(bytes);
    }
    match &config.secret {
        Some(s) => {
            check_secret_strength("secret", s.0.as_bytes())?;
            Ok(s.0.as_bytes().to_vec())
        }
        None => Err(crate::config::invalid(
            "secret_file",
            "algorithm HS256 needs a shared secret",
        )),
    }
}

/// The label of the first PEM block, e.g. `PUBLIC KEY`.
fn pem_label(text: &str) -> Option<&str> {
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let len = text[start..].find("-----")?;
    Some(&text[start..start + len])
}

/// A PEM public key for RS256 or ES256, checked for type, size and curve.
pub(crate) fn load_public_pem(
    key: &'static str,
    path: &Path,
    alg: TokenAlgorithm,
) -> Result<DecodingKey, ConfigError> {
    let bytes = read_file(key, path)?;
    let text = String::from_utf8_lossy(&bytes);
    match pem_label(&text) {
        None => return Err(bad_key(key, path, "is not a PEM file (no BEGIN line)")),
        Some(l) if l.contains("PRIVATE KEY") => {
            return Err(bad_key(
                key,
                path,
                "holds a private key; give the public key instead \
                 (openssl pkey -in private.pem -pubout -out public.pem)",
            ));
        }
        Some("CERTIFICATE") => {
            return Err(bad_key(
                key,
                path,
                "holds a certificate; extract its public key \
                 (openssl x509 -in cert.pem -pubkey -noout)",
            ));
        }
        Some(_) => {}
    }
    let decoding = match alg {
        TokenAlgorithm::RS256 => DecodingKey::from_rsa_pem(&bytes),
        TokenAlgorithm::ES256 => DecodingKey::from_ec_pem(&bytes),
        TokenAlgorithm::HS256 => unreachable!("validate() allows PEM keys only for RS256/ES256"),
    }
    .map_err(|e| bad_key(key, path, format!("is not a PEM {alg} public key ({e})")))?;
    check_decoding_key(&decoding, alg).map_err(|reason| bad_key(key, path, reason))?;
    Ok(decoding)
}

/// Check that a public key parses, is RSA of at least [`MIN_RSA_BITS`] bits for RS256, or a
/// P-256 point for ES256.
fn check_decoding_key(key: &DecodingKey, alg: TokenAlgorithm) -> Result<(), String> {
    match (alg, key.kind()) {
        (TokenAlgorithm::RS256, DecodingKeyKind::SecretOrDer(der)) => {
            let public = aws_lc_rs::rsa::PublicKey::from_der(der)
                .map_err(|e| format!("is not an RSA public key ({e})"))?;
            let spki = public
                .as_der()
                .map_err(|_| "cannot re-encode the RSA key".to_string())?;
            let bits = aws_lc_rs::rsa::PublicEncryptingKey::from_der(spki.as_ref())
                .map_err(|e| format!("is not an RSA public key ({e})"))?
                .key_size_bits();
            check_rsa_bits(bits)
        }
        (TokenAlgorithm::RS256, DecodingKeyKind::RsaModulusExponent { n, .. }) => {
            let significant = n.iter().skip_while(|b| **b == 0).count();
            check_rsa_bits(significant * 8)
        }
        (TokenAlgorithm::ES256, DecodingKeyKind::SecretOrDer(point)) => {
            ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .map(|_| ())
                .map_err(|_| "is not a P-256 (prime256v1) public key; ES256 needs P-256".into())
        }
        _ => Err(format!("is not a {alg} public key")),
    }
}

fn check_rsa_bits(bits: usize) -> Result<(), String> {
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"
        ));
    }
    Ok(())
}

/// One JWK as far as we read it (RFC 7517/7518). Other members are ignored.
#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

#[derive(Deserialize)]
struct RawJwkSet {
    keys: Vec<serde_json::Value>,
}

/// Parse a JSON Web Key Set and keep the keys usable with `alg`: the right `kty` (and `crv`),
/// `alg` absent or equal, `use` absent or "sig". Errors if none is usable or two share a kid.
pub(crate) fn parse_jwks(bytes: &[u8], alg: TokenAlgorithm) -> Result<Vec<VerifyKey>, String> {
    let set: RawJwkSet = serde_json::from_slice(bytes)
        .map_err(|e| format!("is not a JSON Web Key Set ({{\"keys\": [...]}}): {e}"))?;
    let mut keys: Vec<VerifyKey> = Vec::new();
    let mut skipped = Vec::new();
    for (i, value) in set.keys.into_iter().enumerate() {
        let Ok(jwk) = serde_json::from_value::<RawJwk>(value) else {
            skipped.push(format!("key {i}: not a JWK object"));
            continue;
        };
        match jwk_to_key(&jwk, alg) {
            Ok(Some(key)) => {
                if key.kid.is_some() && keys.iter().any(|k| k.kid == key.kid) {
                    return Err(format!(
                        "two usable keys have the same kid {:?}",
                        key.kid.unwrap_or_default()
                    ));
                }
                if keys.len() == MAX_JWKS_KEYS {
                    return Err(format!("holds more than {MAX_JWKS_KEYS} usable keys"));
                }
                keys.push(key);
            }
            Ok(None) => {}
            Err(reason) => skipped.push(format!(
                "key {i} (kid {:?}): {reason}",
                jwk.kid.as_deref().unwrap_or("")
            )),
        }
    }
    if keys.is_empty() {
        let mut msg = format!("holds no key usable for {alg}");
        if !skipped.is_empty() {
            msg.push_str(": ");
            msg.push_str(&skipped.join("; "));
        }
        return Err(msg);
    }
    if keys.len() > 1 && keys.iter().any(|k| k.kid.is_none()) {
        return Err("holds several usable keys, but not all have a kid".into());
    }
    for s in skipped {
        tracing::warn!("token key set: skipped {s}");
    }
    Ok(keys)
}

/// `Ok(None)`: a key for something else (other type, encryption); `Err`: a key that claims to
/// be for `alg` but is broken.
fn jwk_to_key(jwk: &RawJwk, alg: TokenAlgorithm) -> Result<Option<VerifyKey>, String> {
    let (want_kty, want_crv) = match alg {
        TokenAlgorithm::RS256 => ("RSA", None),
        TokenAlgorithm::ES256 => ("EC", Some("P-256")),
        TokenAlgorithm::HS256 => unreachable!("validate() allows JWKS only for RS256/ES256"),
    };
    if jwk.kty.as_deref() != Some(want_kty) {
        return Ok(None);
    }
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    if jwk.alg.as_deref().is_some_and(|a| a != alg.as_str()) {
        return Ok(None);
    }
    if want_crv.is_some() && jwk.crv.as_deref() != want_crv {
        return Ok(None);
    }
    let b64 = |name: &str, v: &Option<String>| -> Result<Vec<u8>, String> {
        let s = v.as_deref().ok_or_else(|| format!("has no {name:?}"))?;
        URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| format!("{name:?} is not base64url"))
    };
    let key = match alg {
        TokenAlgorithm::RS256 => {
            DecodingKey::from_rsa_raw_components(&b64("n", &jwk.n)?, &b64("e", &jwk.e)?)
        }
        _ => {
            let (x, y) = (b64("x", &jwk.x)?, b64("y", &jwk.y)?);
            if x.len() != 32 || y.len() != 32 {
                return Err("x and y must be 32 bytes each for P-256".into());
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            DecodingKey::from_ec_der(&point)
        }
    };
    check_decoding_key(&key, alg)?;
    Ok(Some(VerifyKey {
        kid: jwk.kid.clone(),
        key,
    }))
}

/// A PEM private key for minting with RS256 or ES256.
pub(crate) fn load_private_pem(
    path: &Path,
    alg: TokenAlgorithm,
) -> Result<EncodingKey, ConfigError> {
    const KEY: &str = "private_key_file";
    let bytes = read_file(KEY, path)?;
    let text = String::from_utf8_lossy(&bytes);
    match pem_label(&text) {
        None => return Err(bad_key(KEY, path, "is not a PEM file (no BEGIN line)")),
        Some("EC PRIVATE KEY") => {
            return Err(bad_key(
                KEY,
                path,
                "is a SEC1 EC key; convert it to PKCS#8 \
                 (openssl pkcs8 -topk8 -nocrypt -in ec.pem -out ec-pkcs8.pem)",
            ));
        }
        Some(l) if l.contains("PRIVATE KEY") => {}
        Some(_) => return Err(bad_key(KEY, path, "does not hold a private key")),
    }
    let key = match alg {
        TokenAlgorithm::RS256 => EncodingKey::from_rsa_pem(&bytes),
        TokenAlgorithm::ES256 => EncodingKey::from_ec_pem(&bytes),
        TokenAlgorithm::HS256 => {
            unreachable!("validate() allows private keys only for RS256/ES256")
        }
    }
    .map_err(|e| bad_key(KEY, path, format!("is not a PEM {alg} private key ({e})")))?;
    Ok(key)
}
