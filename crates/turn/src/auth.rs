//! TURN credentials: short-lived REST-style usernames (`<expiry>:<grant id>`) whose password
//! is an HMAC of the username under a secret only this process knows, the long-term key of
//! RFC 8489 §9.2 derived from them, and stateless nonces bound to the client's address.

use std::net::SocketAddr;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use md5::{Digest, Md5};

/// Mints and checks credentials. The secret is random per process: a restart invalidates
/// every credential handed out before it.
#[derive(Clone)]
pub struct Credentials {
    password_key: hmac::Key,
    nonce_key: hmac::Key,
    realm: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

/// A credential as the browser gets it (RTCIceServer `username` / `credential`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCredential {
    /// `<expiry unix seconds>:<grant id>`.
    pub username: String,
    /// base64(HMAC-SHA1(secret, username)).
    pub password: String,
    /// When it stops working for new allocations (unix seconds).
    pub expires_unix: u64,
}

impl Credentials {
    /// Fresh random secrets.
    pub fn random(realm: &str) -> Credentials {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        rand::fill(&mut a);
        rand::fill(&mut b);
        Credentials::from_secrets(realm, &a, &b)
    }

    /// Fixed secrets (tests).
    pub fn from_secrets(realm: &str, password_secret: &[u8], nonce_secret: &[u8]) -> Credentials {
        Credentials {
            password_key: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, password_secret),
            nonce_key: hmac::Key::new(hmac::HMAC_SHA256, nonce_secret),
            realm: realm.to_owned(),
        }
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// A credential for `grant` valid until `expires_unix`.
    pub fn mint(&self, grant: &str, expires_unix: u64) -> IceCredential {
        let username = format!("{expires_unix}:{grant}");
        IceCredential {
            password: self.password(&username),
            username,
            expires_unix,
        }
    }

    /// The password belonging to a username.
    pub fn password(&self, username: &str) -> String {
        STANDARD.encode(hmac::sign(&self.password_key, username.as_bytes()))
    }

    /// The long-term key: MD5(username ":" realm ":" password).
    pub fn key(&self, username: &str) -> [u8; 16] {
        let mut h = Md5::new();
        h.update(username.as_bytes());
        h.update(b":");
        h.update(self.realm.as_bytes());
        h.update(b":");
        h.update(self.password(username).as_bytes());
        h.finalize().into()
    }

    /// A nonce for `client`, valid until `expires_unix`.
    pub fn nonce(&self, client: SocketAddr, expires_unix: u64) -> String {
        let mac = self.nonce_mac(client, expires_unix);
        format!("{expires_unix:x}-{mac}")
    }

    fn nonce_mac(&self, client: SocketAddr, expires_unix: u64) -> String {
        let mut input = expires_unix.to_be_bytes().to_vec();
        input.extend_from_slice(client.to_string().as_bytes());
        let tag = hmac::sign(&self.nonce_key, &input);
        tag.as_ref()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Whether `nonce` was made by us for `client` and has not expired.
    pub fn nonce_valid(&self, nonce: &str, client: SocketAddr, now_unix: u64) -> bool {
        let Some((exp, mac)) = nonce.split_once('-') else {
            return false;
        };
        let Ok(exp) = u64::from_str_radix(exp, 16) else {
            return false;
        };
        let expected = self.nonce_mac(client, exp);
        exp > now_unix
            && aws_lc_rs::constant_time::verify_slices_are_equal(
                expected.as_bytes(),
                mac.as_bytes(),
            )
            .is_ok()
    }
}

/// Split a username into its expiry and grant id.
pub fn parse_username(username: &str) -> Option<(u64, &str)> {
    let (exp, grant) = username.split_once(':')?;
    let exp = exp.parse().ok()?;
    (!grant.is_empty()).then_some((exp, grant))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_credentials_parse_and_keys_depend_on_everything() {
        let c = Credentials::from_secrets("conclave", b"s1", b"s2");
        let cred = c.mint("42", 1000);
        assert_eq!(cred.username, "1000:42");
        assert_eq!(parse_username(&cred.username), Some((1000, "42")));
        assert_eq!(cred.password, c.password("1000:42"));
        assert_ne!(c.password("1000:43"), cred.password);
        let other = Credentials::from_secrets("conclave", b"other", b"s2");
        assert_ne!(other.password("1000:42"), cred.password);
        assert_ne!(c.key("1000:42"), other.key("1000:42"));
        assert_eq!(parse_username("x:1"), None);
        assert_eq!(parse_username("5:"), None);
        assert_eq!(parse_username("nocolon"), None);
    }

    #[test]
    fn nonces_are_bound_to_the_client_and_expire() {
        let c = Credentials::from_secrets("r", b"a", b"b");
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        let n = c.nonce(a, 100);
        assert!(c.nonce_valid(&n, a, 99));
        assert!(!c.nonce_valid(&n, a, 100));
        assert!(!c.nonce_valid(&n, b, 99));
        assert!(!c.nonce_valid("64-00", a, 1));
        assert!(!c.nonce_valid("zz", a, 1));
        let forged = n.replace('-', "0-");
        assert!(!c.nonce_valid(&forged, a, 1));
    }
}
