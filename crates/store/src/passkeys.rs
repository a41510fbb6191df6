//! Passkeys (WebAuthn credentials) of local accounts: the public key and counter the server
//! checks assertions with. The ceremony itself (challenges, signatures) is the edge's.

use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use crate::{AccountId, Error, Store, from_unix, unix};

/// At most this many passkeys per account.
pub const MAX_PASSKEYS: usize = 10;

/// A registered passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passkey {
    /// The credential ID the authenticator chose.
    pub id: Vec<u8>,
    /// Whose it is.
    pub account: AccountId,
    /// SubjectPublicKeyInfo, DER.
    pub public_key: Vec<u8>,
    /// COSE algorithm: -7 ES256, -8 EdDSA, -257 RS256.
    pub alg: i64,
    /// The authenticator's signature counter at the last use.
    pub sign_count: u32,
    /// What the user called it.
    pub name: String,
    /// When it was registered.
    pub created_at: OffsetDateTime,
    /// The last sign-in with it.
    pub last_used_at: Option<OffsetDateTime>,
}

const COLUMNS: &str = "id, user_id, public_key, alg, sign_count, name, created_at, last_used_at";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Passkey> {
    Ok(Passkey {
        id: r.get(0)?,
        account: AccountId(r.get(1)?),
        public_key: r.get(2)?,
        alg: r.get(3)?,
        sign_count: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(u32::MAX),
        name: r.get(5)?,
        created_at: from_unix(6, r.get(6)?)?,
        last_used_at: r
            .get::<_, Option<i64>>(7)?
            .map(|s| from_unix(7, s))
            .transpose()?,
    })
}

impl Store {
    /// Register a passkey. Refuses a credential ID that is registered already and more than
    /// [`MAX_PASSKEYS`] per account.
    pub fn add_passkey(&self, key: &Passkey) -> Result<(), Error> {
        let conn = self.lock();
        let n: i64 = conn.query_row(
            "SELECT count(*) FROM passkeys WHERE user_id = ?1",
            [key.account.0],
            |r| r.get(0),
        )?;
        if usize::try_from(n).unwrap_or(usize::MAX) >= MAX_PASSKEYS {
            return Err(Error::TooManyPasskeys(MAX_PASSKEYS));
        }
        let inserted = conn.execute(
            "INSERT INTO passkeys (id, user_id, public_key, alg, sign_count, name, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                key.id,
                key.account.0,
                key.public_key,
                key.alg,
                i64::from(key.sign_count),
                key.name,
                unix(key.created_at)
            ],
        );
        match inserted {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                Err(Error::PasskeyExists)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The passkey with this credential ID.
    pub fn passkey(&self, id: &[u8]) -> Result<Option<Passkey>, Error> {
        Ok(self
            .lock()
            .query_row(
                &format!("SELECT {COLUMNS} FROM passkeys WHERE id = ?1"),
                [id],
                from_row,
            )
            .optional()?)
    }

    /// An account's passkeys, oldest first.
    pub fn passkeys(&self, account: AccountId) -> Result<Vec<Passkey>, Error> {
        let conn = self.lock();
        let mut st = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM passkeys WHERE user_id = ?1 ORDER BY created_at, id"
        ))?;
        let rows = st.query_map([account.0], from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Record a sign-in with the passkey whose authenticator now reports `count`. Returns
    /// false, changing nothing, when the counter did not move forward although the
    /// authenticator keeps one: a sign of a cloned authenticator (WebAuthn 6.1.1).
    pub fn use_passkey(&self, id: &[u8], count: u32, now: OffsetDateTime) -> Result<bool, Error> {
        let n = self.lock().execute(
            "UPDATE passkeys SET sign_count = ?2, last_used_at = ?3
             WHERE id = ?1 AND ((sign_count = 0 AND ?2 = 0) OR ?2 > sign_count)",
            params![id, i64::from(count), unix(now)],
        )?;
        Ok(n == 1)
    }

    /// Remove one of the account's passkeys; whether it existed.
    pub fn remove_passkey(&self, account: AccountId, id: &[u8]) -> Result<bool, Error> {
        let n = self.lock().execute(
            "DELETE FROM passkeys WHERE id = ?1 AND user_id = ?2",
            params![id, account.0],
        )?;
        Ok(n == 1)
    }

    /// Remove every passkey of the account (an administrator's reset); how many there were.
    pub fn remove_passkeys(&self, account: AccountId) -> Result<usize, Error> {
        Ok(self
            .lock()
            .execute("DELETE FROM passkeys WHERE user_id = ?1", [account.0])?)
    }
}
