//! Sign-in sessions. A session token is 32 random bytes, base64url without padding (43
//! characters), handed to the client once; the database keeps only its SHA-256, so a copy of
//! the database (a backup, a stolen disk) cannot be used to sign in.

use base64ct::{Base64UrlUnpadded, Encoding};
use rand::RngCore;
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::accounts::{
    ACCOUNT_COLUMN_COUNT, ACCOUNT_COLUMNS, Account, AccountId, account_from_row,
};
use crate::factors::SessionFactor;
use crate::{Error, Store, unix};

/// Length of a session token in characters: 32 bytes in base64url without padding.
pub const TOKEN_CHARS: usize = 43;
const TOKEN_BYTES: usize = 32;

/// A freshly created session. The token is the secret the client presents; it is not stored
/// anywhere on the server and `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSession {
    /// The session token: 43 characters of `A-Z a-z 0-9 - _`.
    pub token: String,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

pub(crate) fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Store {
    /// Start a session for the account, valid for the configured lifetime from `now`. Call it
    /// after [`Store::verify_login`] succeeded; a session of an account that is (or becomes)
    /// disabled or expired is never accepted by [`Store::session_account`].
    pub fn create_session(
        &self,
        account: AccountId,
        now: OffsetDateTime,
    ) -> Result<NewSession, Error> {
        self.create_session_with(
            account,
            SessionFactor::Password,
            self.options.session_lifetime,
            now,
        )
    }

    /// Start a session signed in with `factor`, valid for `lifetime` (see
    /// [`Store::create_session`]).
    pub fn create_session_with(
        &self,
        account: AccountId,
        factor: SessionFactor,
        lifetime: time::Duration,
        now: OffsetDateTime,
    ) -> Result<NewSession, Error> {
        let mut bytes = [0u8; TOKEN_BYTES];
        // ThreadRng is a CSPRNG (ChaCha12) seeded from the operating system.
        rand::rng().fill_bytes(&mut bytes);
        let token = Base64UrlUnpadded::encode_string(&bytes);
        let expires_at = now + lifetime;
        let inserted = self.lock().execute(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, factor)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                token_hash(&token),
                account.0,
                unix(now),
                unix(expires_at),
                factor.as_str()
            ],
        );
        match inserted {
            Ok(_) => Ok(NewSession { token, expires_at }),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
            {
                Err(Error::UnknownUser(account.to_string()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The account behind a session token, if the session exists and has not expired and the
    /// account is active and not expired at `now`. Any other string gives `None`.
    pub fn session_account(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Account>, Error> {
        if token.len() != TOKEN_CHARS {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM sessions JOIN users ON users.id = sessions.user_id
             WHERE sessions.token_hash = ?1 AND sessions.expires_at > ?2
               AND users.status = 'active'
               AND (users.expires_at IS NULL OR users.expires_at > ?2)"
        );
        Ok(self
            .lock()
            .query_row(
                &sql,
                params![token_hash(token), unix(now)],
                account_from_row,
            )
            .optional()?)
    }

    /// Like [`Store::session_account`], with the factor the session was signed in with.
    pub fn session(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Option<(Account, SessionFactor)>, Error> {
        if token.len() != TOKEN_CHARS {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS}, sessions.factor FROM sessions
               JOIN users ON users.id = sessions.user_id
             WHERE sessions.token_hash = ?1 AND sessions.expires_at > ?2
               AND users.status = 'active'
               AND (users.expires_at IS NULL OR users.expires_at > ?2)"
        );
        let found = self
            .lock()
            .query_row(&sql, params![token_hash(token), unix(now)], |r| {
                Ok((
                    account_from_row(r)?,
                    r.get::<_, String>(ACCOUNT_COLUMN_COUNT)?,
                ))
            })
            .optional()?;
        Ok(found.map(|(a, f)| {
            (
                a,
                SessionFactor::parse(&f).unwrap_or(SessionFactor::Password),
            )
        }))
    }

    /// Replace a session by a new one signed in with `factor` (after a second factor): the
    /// old token stops working, so a token seen before the second factor is worth nothing.
    pub fn upgrade_session(
        &self,
        token: &str,
        factor: SessionFactor,
        now: OffsetDateTime,
    ) -> Result<Option<NewSession>, Error> {
        let Some((account, _)) = self.session(token, now)? else {
            return Ok(None);
        };
        self.revoke_session(token)?;
        self.create_session_with(account.id, factor, self.options.session_lifetime, now)
            .map(Some)
    }

    /// End one session (sign-out). Returns whether it existed.
    pub fn revoke_session(&self, token: &str) -> Result<bool, Error> {
        if token.len() != TOKEN_CHARS {
            return Ok(false);
        }
        let n = self.lock().execute(
            "DELETE FROM sessions WHERE token_hash = ?1",
            [token_hash(token)],
        )?;
        Ok(n > 0)
    }

    /// End every session of an account. Returns how many there were.
    pub fn revoke_sessions(&self, account: AccountId) -> Result<usize, Error> {
        Ok(self
            .lock()
            .execute("DELETE FROM sessions WHERE user_id = ?1", [account.0])?)
    }

    /// Delete sessions that expired at or before `now`. Returns how many.
    pub fn purge_expired_sessions(&self, now: OffsetDateTime) -> Result<usize, Error> {
        Ok(self
            .lock()
            .execute("DELETE FROM sessions WHERE expires_at <= ?1", [unix(now)])?)
    }

    /// How many sessions an account has (expired ones included until purged).
    pub fn session_count(&self, account: AccountId) -> Result<usize, Error> {
        let n: i64 = self.lock().query_row(
            "SELECT count(*) FROM sessions WHERE user_id = ?1",
            [account.0],
            |r| r.get(0),
        )?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}
