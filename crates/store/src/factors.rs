//! Second factors of local accounts: TOTP (RFC 6238) and recovery codes.
//!
//! - TOTP: HMAC-SHA-1, 30 s steps, 6 digits, a 160-bit secret (RFC 4226 §4 R6), what every
//!   authenticator app expects. A code is accepted for the current step and one step either
//!   side, and only for a step newer than the last one accepted for the account (RFC 6238
//!   §5.2: a code must not be accepted twice); the check and the update of `last_step` are one
//!   transaction, so two requests racing with the same code cannot both pass.
//! - The secret is sealed with AES-256-GCM under a key file outside the database
//!   (`data_dir/factors.key`, 0600), bound to the account id: a copy of the database alone
//!   does not give anyone codes.
//! - Recovery codes: 10 per account, 50 random bits each, shown once; only their SHA-256 is
//!   stored and each works once.
//! - Enrolment is two steps: [`Store::begin_totp`] stores an unconfirmed secret (it signs
//!   nobody in), [`Store::confirm_totp`] accepts the first code and hands out the recovery
//!   codes.

use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hmac;
use rand::RngCore;
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::accounts::{Account, AccountId};
use crate::pseudonyms::write_private;
use crate::{Error, Store, unix};

/// The factor key's file name inside the data directory.
pub const FACTORS_KEY_FILE: &str = "factors.key";
/// Seconds per TOTP step.
pub const TOTP_STEP_SECS: i64 = 30;
/// Digits of a TOTP code.
pub const TOTP_DIGITS: u32 = 6;
/// Bytes of a TOTP secret (160 bits).
pub const TOTP_SECRET_BYTES: usize = 20;
/// Recovery codes handed out at once.
pub const RECOVERY_CODES: usize = 10;

const SEAL_DOMAIN: &[u8] = b"conclave-totp-v1";
/// Crockford's base32 alphabet without I, L, O, U: recovery codes are read off paper.
const CODE_ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// How a session was signed in (stored with the session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionFactor {
    /// The password alone.
    Password,
    /// The password and a TOTP code.
    Totp,
    /// The password and a recovery code.
    Recovery,
    /// A passkey with user verification (possession and PIN or biometric, no password).
    Passkey,
}

impl SessionFactor {
    /// As stored: `password`, `totp`, `recovery`.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionFactor::Password => "password",
            SessionFactor::Totp => "totp",
            SessionFactor::Recovery => "recovery",
            SessionFactor::Passkey => "passkey",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<SessionFactor> {
        match s {
            "password" => Some(SessionFactor::Password),
            "totp" => Some(SessionFactor::Totp),
            "recovery" => Some(SessionFactor::Recovery),
            "passkey" => Some(SessionFactor::Passkey),
            _ => None,
        }
    }

    /// Whether this is more than the password alone.
    pub fn is_second(self) -> bool {
        self != SessionFactor::Password
    }
}

/// The key that seals TOTP secrets.
pub struct FactorKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for FactorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FactorKey(<redacted>)")
    }
}

impl FactorKey {
    /// Load the key from `path`, or create it (32 random bytes, 0600) when missing and no
    /// account has a TOTP secret. A missing key while secrets exist is an error: a new key
    /// could open none of them.
    pub fn load_or_create(path: &Path, store: &Store) -> Result<FactorKey, Error> {
        let key_err = |source| Error::FactorKey {
            path: path.to_owned(),
            source,
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let n: i64 = store
                    .lock()
                    .query_row("SELECT count(*) FROM totp", [], |r| r.get(0))?;
                if n > 0 {
                    return Err(Error::FactorKeyMissing {
                        path: path.to_owned(),
                        accounts: usize::try_from(n).unwrap_or(0),
                    });
                }
                let mut k = vec![0u8; 32];
                rand::rng().fill_bytes(&mut k);
                write_private(path, &k).map_err(key_err)?;
                k
            }
            Err(e) => return Err(key_err(e)),
        };
        Self::from_bytes(&bytes).map_err(key_err)
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> std::io::Result<FactorKey> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the key has {} bytes, 32 are needed", bytes.len()),
            )
        })?;
        Ok(FactorKey {
            key: LessSafeKey::new(key),
        })
    }

    fn aad(user: AccountId) -> Vec<u8> {
        let mut a = SEAL_DOMAIN.to_vec();
        a.extend_from_slice(&user.0.to_be_bytes());
        a
    }

    fn seal(&self, user: AccountId, secret: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut buf = secret.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(user)),
                &mut buf,
            )
            .expect("AES-GCM sealing of 20 bytes cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        out
    }

    fn open(&self, user: AccountId, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        let bad = || Error::FactorSealBroken(user.to_string());
        if sealed.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let mut buf = ct.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(Self::aad(user)), &mut buf)
            .map_err(|_| bad())?;
        Ok(plain.to_vec())
    }
}

/// RFC 4226 HOTP value of `secret` at `counter`, `digits` long.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &counter.to_be_bytes());
    let mac = mac.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    bin % 10u32.pow(digits)
}

/// The RFC 6238 time step of `now`.
pub fn totp_step(now: OffsetDateTime) -> i64 {
    now.unix_timestamp().div_euclid(TOTP_STEP_SECS)
}

/// RFC 4648 base32 without padding (what `otpauth://` URIs and authenticator apps use).
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

/// A TOTP enrolment in progress: what the user's app needs.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpEnrolment {
    /// The secret in base32 (to type in).
    pub secret: String,
    /// `otpauth://totp/...` (for the QR code).
    pub uri: String,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrolment(<redacted>)")
    }
}

/// Why a second factor was not accepted. Tell the client only "wrong or used code"; the
/// variants are for the audit log.
#[derive(Debug, thiserror::Error)]
pub enum FactorError {
    /// The account has no (confirmed) TOTP secret, or no enrolment in progress.
    #[error("no authenticator app is set up")]
    NoTotp,
    /// An authenticator app is already set up (remove it first).
    #[error("an authenticator app is already set up")]
    AlreadyEnrolled,
    /// The code is not well formed or does not match any step in the window.
    #[error("wrong code")]
    WrongCode,
    /// The code matches a step that was already used (RFC 6238 §5.2).
    #[error("code already used")]
    Reused,
    /// The recovery code is unknown or spent.
    #[error("wrong or used recovery code")]
    WrongRecoveryCode,
    /// The database or the key failed.
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<rusqlite::Error> for FactorError {
    fn from(e: rusqlite::Error) -> Self {
        FactorError::Store(e.into())
    }
}

/// What second factors an account has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Factors {
    /// A confirmed TOTP secret.
    pub totp: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: usize,
    /// Registered passkeys (a way to sign in, not a second step after the password).
    pub passkeys: usize,
}

impl Factors {
    /// Whether a second factor can be asked for.
    pub fn any(&self) -> bool {
        self.totp
    }
}

fn code_digits(code: &str) -> Option<u32> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != TOTP_DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok()
}

/// Recovery codes are typed by people: case, spaces and dashes do not matter.
fn normalize_recovery(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn recovery_hash(user: AccountId, code: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"conclave-recovery-v1");
    h.update(user.0.to_be_bytes());
    h.update(normalize_recovery(code).as_bytes());
    h.finalize().into()
}

fn new_recovery_code() -> String {
    let mut bytes = [0u8; 10];
    rand::rng().fill_bytes(&mut bytes);
    // 10 symbols of 5 bits each, shown as xxxxx-xxxxx.
    let s: String = bytes
        .iter()
        .map(|b| char::from(CODE_ALPHABET[usize::from(b & 31)]))
        .collect();
    format!("{}-{}", &s[..5], &s[5..])
}

fn uri_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Store {
    /// Start TOTP enrolment: a fresh secret, stored sealed and unconfirmed (replacing an
    /// earlier unconfirmed one). Refused while a confirmed secret exists.
    pub fn begin_totp(
        &self,
        key: &FactorKey,
        account: &Account,
        issuer: &str,
        now: OffsetDateTime,
    ) -> Result<TotpEnrolment, FactorError> {
        let mut secret = [0u8; TOTP_SECRET_BYTES];
        rand::rng().fill_bytes(&mut secret);
        let sealed = key.seal(account.id, &secret);
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let confirmed: Option<Option<i64>> = tx
            .query_row(
                "SELECT confirmed_at FROM totp WHERE user_id = ?1",
                [account.id.0],
                |r| r.get(0),
            )
            .optional()?;
        if matches!(confirmed, Some(Some(_))) {
            return Err(FactorError::AlreadyEnrolled);
        }
        tx.execute(
            "INSERT OR REPLACE INTO totp (user_id, sealed, created_at, confirmed_at, last_step)
             VALUES (?1, ?2, ?3, NULL, -1)",
            params![account.id.0, sealed, unix(now)],
        )?;
        tx.commit()?;
        let secret = base32(&secret);
        let label = format!("{}:{}", issuer, account.username);
        Ok(TotpEnrolment {
            uri: format!(
                "otpauth://totp/{}?secret={secret}&issuer={}&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP_SECS}",
                uri_escape(&label),
                uri_escape(issuer)
            ),
            secret,
        })
    }

    /// Finish TOTP enrolment with the first code from the app. Returns the recovery codes
    /// (new ones, replacing any earlier set), to be shown once.
    pub fn confirm_totp(
        &self,
        key: &FactorKey,
        account: AccountId,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<String>, FactorError> {
        self.check_totp(key, account, code, now, false)?;
        Ok(self.new_recovery_codes(account, now)?)
    }

    /// Check a TOTP code of an account with a confirmed secret, and spend its step.
    pub fn verify_totp(
        &self,
        key: &FactorKey,
        account: AccountId,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<(), FactorError> {
        self.check_totp(key, account, code, now, true)
    }

    fn check_totp(
        &self,
        key: &FactorKey,
        account: AccountId,
        code: &str,
        now: OffsetDateTime,
        confirmed: bool,
    ) -> Result<(), FactorError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row: Option<(Vec<u8>, Option<i64>, i64)> = tx
            .query_row(
                "SELECT sealed, confirmed_at, last_step FROM totp WHERE user_id = ?1",
                [account.0],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((sealed, confirmed_at, last_step)) = row else {
            return Err(FactorError::NoTotp);
        };
        if confirmed_at.is_some() != confirmed {
            return Err(if confirmed {
                FactorError::NoTotp
            } else {
                FactorError::AlreadyEnrolled
            });
        }
        let Some(given) = code_digits(code) else {
            return Err(FactorError::WrongCode);
        };
        let secret = key.open(account, &sealed)?;
        let step = totp_step(now);
        let mut matched = None;
        for s in [step - 1, step, step + 1] {
            let Ok(counter) = u64::try_from(s) else {
                continue;
            };
            let want = hotp(&secret, counter, TOTP_DIGITS);
            // Compare all three, in constant time each, so timing says nothing.
            if aws_lc_rs::constant_time::verify_slices_are_equal(
                &want.to_be_bytes(),
                &given.to_be_bytes(),
            )
            .is_ok()
            {
                matched = Some(s);
            }
        }
        let Some(s) = matched else {
            return Err(FactorError::WrongCode);
        };
        if s <= last_step {
            return Err(FactorError::Reused);
        }
        tx.execute(
            "UPDATE totp SET last_step = ?1, confirmed_at = coalesce(confirmed_at, ?2)
             WHERE user_id = ?3",
            params![s, unix(now), account.0],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// New recovery codes for an account, replacing all earlier ones.
    pub fn new_recovery_codes(
        &self,
        account: AccountId,
        now: OffsetDateTime,
    ) -> Result<Vec<String>, Error> {
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM recovery_codes WHERE user_id = ?1", [account.0])?;
        for c in &codes {
            tx.execute(
                "INSERT OR IGNORE INTO recovery_codes (user_id, code_hash, created_at)
                 VALUES (?1, ?2, ?3)",
                params![account.0, recovery_hash(account, c), unix(now)],
            )?;
        }
        tx.commit()?;
        Ok(codes)
    }

    /// Spend a recovery code. Returns how many are left.
    pub fn use_recovery_code(
        &self,
        account: AccountId,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<usize, FactorError> {
        let n = normalize_recovery(code);
        if n.len() != 10 {
            return Err(FactorError::WrongRecoveryCode);
        }
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let spent = tx.execute(
            "UPDATE recovery_codes SET used_at = ?1
             WHERE user_id = ?2 AND code_hash = ?3 AND used_at IS NULL",
            params![unix(now), account.0, recovery_hash(account, code)],
        )?;
        if spent == 0 {
            return Err(FactorError::WrongRecoveryCode);
        }
        let left: i64 = tx.query_row(
            "SELECT count(*) FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL",
            [account.0],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(usize::try_from(left).unwrap_or(0))
    }

    /// The account's second factors.
    pub fn factors(&self, account: AccountId) -> Result<Factors, Error> {
        let conn = self.lock();
        let totp: i64 = conn.query_row(
            "SELECT count(*) FROM totp WHERE user_id = ?1 AND confirmed_at IS NOT NULL",
            [account.0],
            |r| r.get(0),
        )?;
        let left: i64 = conn.query_row(
            "SELECT count(*) FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL",
            [account.0],
            |r| r.get(0),
        )?;
        let passkeys: i64 = conn.query_row(
            "SELECT count(*) FROM passkeys WHERE user_id = ?1",
            [account.0],
            |r| r.get(0),
        )?;
        Ok(Factors {
            totp: totp > 0,
            recovery_codes_left: usize::try_from(left).unwrap_or(0),
            passkeys: usize::try_from(passkeys).unwrap_or(0),
        })
    }

    /// Remove the account's TOTP secret and recovery codes (an administrator's reset for a
    /// lost phone, or the user's own removal). Returns whether there was anything to remove.
    pub fn reset_factors(&self, account: AccountId) -> Result<bool, Error> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let a = tx.execute("DELETE FROM totp WHERE user_id = ?1", [account.0])?;
        let b = tx.execute("DELETE FROM recovery_codes WHERE user_id = ?1", [account.0])?;
        tx.commit()?;
        Ok(a + b > 0)
    }
}
