//! Password policy and Argon2id hashing.
//!
//! Parameters: Argon2id, version 0x13, m = 19456 KiB (19 MiB), t = 2 iterations, p = 1 lane,
//! 16-byte random salt, 32-byte output, stored as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`). This is the first of OWASP's equivalent
//! recommended configurations in the Password Storage Cheat Sheet (m=19 MiB, t=2, p=1; the
//! others trade memory for iterations: 46 MiB/1, 12 MiB/3, 9 MiB/4, 7 MiB/5). It costs about
//! 19 MiB and some tens of milliseconds of one core per hash, so logins must stay
//! rate-limited. A stored hash with weaker parameters is replaced on the next successful
//! login (see `needs_rehash`).

use std::collections::HashSet;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

use crate::Error;

/// Argon2 memory cost in KiB (19 MiB): OWASP's minimum for t = 2, p = 1.
pub(crate) const ARGON2_M_KIB: u32 = 19 * 1024;
/// Argon2 iterations.
pub(crate) const ARGON2_T: u32 = 2;
/// Argon2 lanes.
pub(crate) const ARGON2_P: u32 = 1;
/// Salt length in bytes (the PHC recommendation is at least 16).
const SALT_BYTES: usize = 16;

/// Default minimum password length in characters.
pub const DEFAULT_MIN_PASSWORD_CHARS: usize = 12;
/// The lowest minimum a configuration may set (NIST SP 800-63B's floor).
pub const MIN_PASSWORD_CHARS_FLOOR: usize = 8;
/// Longest accepted password in bytes: long enough for any passphrase, short enough that
/// nobody can make the server hash megabytes. Longer passwords fail at login without hashing.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The bundled list, one lowercase entry per line, `#` starts a comment line.
const COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");

/// Why a new password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Fewer characters than the policy's minimum.
    #[error("password is too short: at least {min} characters are required")]
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// More than [`MAX_PASSWORD_BYTES`] bytes.
    #[error("password is too long: at most {max} bytes are allowed")]
    TooLong {
        /// The maximum.
        max: usize,
    },
    /// The password equals the username (ignoring case).
    #[error("password must not be the same as the username")]
    SameAsUsername,
    /// The password is on the bundled list of common passwords (ignoring case).
    #[error("password is too common: it is on the list of passwords that attackers try first")]
    Common,
}

/// What a new password must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Minimum length in characters (Unicode scalar values). Configuration keeps it at or
    /// above [`MIN_PASSWORD_CHARS_FLOOR`].
    pub min_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_chars: DEFAULT_MIN_PASSWORD_CHARS,
        }
    }
}

impl PasswordPolicy {
    /// Check a new password for the (already normalized) `username`.
    pub fn check(&self, username: &str, password: &str) -> Result<(), PasswordError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordError::TooLong {
                max: MAX_PASSWORD_BYTES,
            });
        }
        if password.chars().count() < self.min_chars {
            return Err(PasswordError::TooShort {
                min: self.min_chars,
            });
        }
        let lower = password.to_lowercase();
        if lower == username.to_lowercase() {
            return Err(PasswordError::SameAsUsername);
        }
        if is_common(&lower) {
            return Err(PasswordError::Common);
        }
        Ok(())
    }
}

/// Whether the lowercased password is on the bundled list.
fn is_common(lower: &str) -> bool {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
    .contains(lower)
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None)
        .expect("constant Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hash a password with a fresh random salt; the PHC string to store.
pub(crate) fn hash(password: &str) -> Result<String, Error> {
    let mut salt = [0u8; SALT_BYTES];
    // ThreadRng is a CSPRNG (ChaCha12) seeded from the operating system.
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Hash(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Hash(e.to_string()))
}

/// Whether `password` matches the stored PHC string. An unparsable stored hash never
/// matches.
pub(crate) fn verify(password: &str, stored: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    match PasswordHash::new(stored) {
        // Verification uses the parameters recorded in the stored string.
        Ok(parsed) => argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Spend the same time as verifying against a real account, for usernames that do not
/// exist, so response time does not tell an attacker which accounts exist.
pub(crate) fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let stored = DUMMY.get_or_init(|| {
        hash("conclave dummy password for unknown users").unwrap_or_else(|_| String::new())
    });
    let _ = verify(password, stored);
}

/// Make sure the dummy hash exists, so that the first login of an unknown user does not take
/// twice as long as the first login of a known one.
pub(crate) fn warm_up() {
    verify_dummy("");
}

/// Whether a stored hash was made with weaker settings than today's (another algorithm,
/// version, or lower memory, iterations or lanes), and should be replaced.
pub(crate) fn needs_rehash(stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return true;
    };
    if parsed.algorithm != Algorithm::Argon2id.ident() || parsed.version != Some(0x13) {
        return true;
    }
    match Params::try_from(&parsed) {
        Ok(p) => p.m_cost() < ARGON2_M_KIB || p.t_cost() < ARGON2_T || p.p_cost() < ARGON2_P,
        Err(_) => true,
    }
}

#[cfg(test)]
pub(crate) fn hash_with(password: &str, m_kib: u32, t: u32) -> String {
    let params = Params::new(m_kib, t, 1, None).unwrap();
    let salt = SaltString::encode_b64(&[7u8; 16]).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_argon2id_with_owasp_parameters_and_verifies() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterY", &h));
        assert!(!verify("correct horse battery", "not a phc string"));
        assert_ne!(h, hash("correct horse battery").unwrap(), "salt is random");
        assert!(!needs_rehash(&h));
        assert!(needs_rehash(&hash_with("x", 4096, 2)));
        assert!(needs_rehash(&hash_with("x", 19456, 1)));
        assert!(!needs_rehash(&hash_with("x", 65536, 3)));
        assert!(needs_rehash("garbage"));
    }

    #[test]
    fn policy_rejects_each_case_with_its_own_error() {
        let p = PasswordPolicy::default();
        assert_eq!(
            p.check("alice", "short"),
            Err(PasswordError::TooShort { min: 12 })
        );
        // Characters, not bytes: 11 two-byte characters are still too short.
        assert_eq!(
            p.check("alice", &"ä".repeat(11)),
            Err(PasswordError::TooShort { min: 12 })
        );
        assert!(p.check("alice", &"äöü".repeat(4)).is_ok());
        assert_eq!(
            p.check("alice", &"x".repeat(1025)),
            Err(PasswordError::TooLong { max: 1024 })
        );
        assert!(p.check("alice", &"xy".repeat(512)).is_ok());
        assert_eq!(
            p.check("alice.longname", "Alice.LongName"),
            Err(PasswordError::SameAsUsername)
        );
        for common in [
            "password1234",
            "Password123!",
            "QWERTZUIOP12",
            "qwertyuiop123",
            "123456789012",
            "iloveyou1234",
            "P@ssw0rd1234",
            "administrator1",
            "1q2w3e4r5t6y",
            "aaaaaaaaaaaa",
        ] {
            assert_eq!(
                p.check("alice", common),
                Err(PasswordError::Common),
                "{common}"
            );
        }
        assert!(p.check("alice", "violet tractor umbrella").is_ok());
        let lax = PasswordPolicy { min_chars: 8 };
        assert_eq!(lax.check("bob", "passw0rd"), Err(PasswordError::Common));
        assert!(lax.check("bob", "tz8#kq2!").is_ok());
    }

    #[test]
    fn bundled_list_is_sane() {
        let entries: Vec<&str> = COMMON_PASSWORDS
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect();
        assert!(entries.len() >= 2000, "{}", entries.len());
        let unique: HashSet<&str> = entries.iter().copied().collect();
        assert_eq!(unique.len(), entries.len(), "duplicates in the list");
        for e in &entries {
            assert!(!e.is_empty() && e.len() <= 64, "{e:?}");
            assert_eq!(*e, e.to_lowercase(), "list entries are lowercase");
        }
    }
}
