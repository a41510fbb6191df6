//! Local accounts: add, list, change password, disable, enable, expire, remove, verify a
//! login, record the last login.

use rusqlite::{OptionalExtension, Row, params};
use time::OffsetDateTime;

use crate::names::{normalize_display_name, normalize_username};
use crate::{Error, Store, from_unix, password, unix};

/// The database ID of an account. Stable for the account's life; never reused while the
/// account exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub i64);

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The stored status, set by an administrator. Expiry is separate (see
/// [`Account::expires_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    /// May sign in (unless expired).
    Active,
    /// May not sign in; its sessions were revoked when it was disabled.
    Disabled,
}

impl AccountStatus {
    /// As stored and shown: `active` or `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Disabled => "disabled",
        }
    }
}

/// What an account may do in meetings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccountRole {
    /// Opens rooms and moderates them (the default, and what every account was before
    /// schema version 5).
    #[default]
    Moderator,
    /// Signs in and joins with the account's name, without moderating.
    Member,
}

impl AccountRole {
    /// As stored and shown: `moderator` or `member`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountRole::Moderator => "moderator",
            AccountRole::Member => "member",
        }
    }
}

impl std::str::FromStr for AccountRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "moderator" => Ok(AccountRole::Moderator),
            "member" => Ok(AccountRole::Member),
            other => Err(format!(
                "a role is \"moderator\" or \"member\", not {other:?}"
            )),
        }
    }
}

/// A local account, without its password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Database ID.
    pub id: AccountId,
    /// Lowercase username, unique.
    pub username: String,
    /// The name shown to others in meetings (read-only for a signed-in user).
    pub display_name: String,
    /// Active or disabled.
    pub status: AccountStatus,
    /// When it was added.
    pub created_at: OffsetDateTime,
    /// The last successful sign-in, if any.
    pub last_login_at: Option<OffsetDateTime>,
    /// From this moment on the account cannot sign in; `None`: never expires.
    pub expires_at: Option<OffsetDateTime>,
    /// The last password change after creation, if any.
    pub password_changed_at: Option<OffsetDateTime>,
    /// Moderator or member.
    pub role: AccountRole,
    /// `local` (a password of this server), or the `ldap:NAME` / `oidc:NAME` provider that
    /// vouches for the account at each sign-in.
    pub source: String,
}

impl Account {
    /// Whether the expiry time has been reached at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Whether the account's password is this server's (not a directory's or an identity
    /// provider's).
    pub fn is_local(&self) -> bool {
        self.source == "local"
    }

    /// Whether the account may sign in and use its sessions at `now`.
    pub fn can_sign_in(&self, now: OffsetDateTime) -> bool {
        self.status == AccountStatus::Active && !self.is_expired(now)
    }

    /// The state to show an administrator: `disabled`, else `expired`, else `active`.
    pub fn state(&self, now: OffsetDateTime) -> &'static str {
        if self.status == AccountStatus::Disabled {
            "disabled"
        } else if self.is_expired(now) {
            "expired"
        } else {
            "active"
        }
    }
}

/// Why a login failed. The reasons are for logs and the audit trail; a client must be told
/// the same thing for all of them, or it learns which usernames exist.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// No such username (a dummy hash was verified so this takes as long as a real one).
    #[error("unknown user")]
    UnknownUser,
    /// The password does not match.
    #[error("wrong password")]
    BadPassword,
    /// Correct password, but the account is disabled.
    #[error("account is disabled")]
    Disabled,
    /// The account signs in through a directory or identity provider, not a password here.
    #[error("account signs in through {0}")]
    External(String),
    /// Correct password, but the account has expired.
    #[error("account has expired")]
    Expired,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] Error),
}

/// The account columns, in the order [`account_from_row`] reads them.
pub(crate) const ACCOUNT_COLUMNS: &str = "users.id, users.username, users.display_name, \
     users.status, users.created_at, users.last_login_at, users.expires_at, \
     users.password_changed_at, users.role, users.source";

/// How many columns [`ACCOUNT_COLUMNS`] has (the index of the next one).
pub(crate) const ACCOUNT_COLUMN_COUNT: usize = 10;

/// Read the [`ACCOUNT_COLUMNS`] of a row.
pub(crate) fn account_from_row(r: &Row<'_>) -> rusqlite::Result<Account> {
    let status: String = r.get(3)?;
    let status = match status.as_str() {
        "active" => AccountStatus::Active,
        "disabled" => AccountStatus::Disabled,
        other => {
            return Err(rusqlite::Error::FromSqlConversionFailure(
                3,
                rusqlite::types::Type::Text,
                format!("unknown account status {other:?}").into(),
            ));
        }
    };
    let opt_time = |idx: usize| -> rusqlite::Result<Option<OffsetDateTime>> {
        r.get::<_, Option<i64>>(idx)?
            .map(|s| from_unix(idx, s))
            .transpose()
    };
    Ok(Account {
        id: AccountId(r.get(0)?),
        username: r.get(1)?,
        display_name: r.get(2)?,
        status,
        created_at: from_unix(4, r.get(4)?)?,
        last_login_at: opt_time(5)?,
        expires_at: opt_time(6)?,
        password_changed_at: opt_time(7)?,
        role: match r.get::<_, String>(8)?.as_str() {
            "member" => AccountRole::Member,
            _ => AccountRole::Moderator,
        },
        source: r.get(9)?,
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

impl Store {
    /// Add an active account. The username is lowercased and checked, the display name
    /// trimmed and checked, the password checked against the policy, then hashed with
    /// Argon2id.
    pub fn add_account(
        &self,
        username: &str,
        display_name: &str,
        password: &str,
        now: OffsetDateTime,
    ) -> Result<Account, Error> {
        let username = normalize_username(username)?;
        let display_name = normalize_display_name(display_name)?;
        self.options.password_policy.check(&username, password)?;
        if self.account(&username)?.is_some() {
            return Err(Error::UserExists(username));
        }
        let hash = password::hash(password)?;
        let conn = self.lock();
        let inserted = conn.execute(
            "INSERT INTO users (username, display_name, password_hash, status, created_at)
             VALUES (?1, ?2, ?3, 'active', ?4)",
            params![username, display_name, hash, unix(now)],
        );
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(Error::UserExists(username)),
            Err(e) => return Err(e.into()),
        }
        let id = AccountId(conn.last_insert_rowid());
        drop(conn);
        self.account_by_id(id)?
            .ok_or_else(|| Error::UnknownUser(username.clone()))
    }

    /// The account with this username (case-insensitive), if any. A name that breaks the
    /// username rules cannot exist, so it gives `None`.
    pub fn account(&self, username: &str) -> Result<Option<Account>, Error> {
        let Ok(username) = normalize_username(username) else {
            return Ok(None);
        };
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM users WHERE username = ?1");
        Ok(self
            .lock()
            .query_row(&sql, [username], account_from_row)
            .optional()?)
    }

    /// The account with this ID, if it still exists.
    pub fn account_by_id(&self, id: AccountId) -> Result<Option<Account>, Error> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM users WHERE id = ?1");
        Ok(self
            .lock()
            .query_row(&sql, [id.0], account_from_row)
            .optional()?)
    }

    /// Set an account's role. Its sessions stay (the role is read at each join).
    pub fn set_role(&self, username: &str, role: AccountRole) -> Result<(), Error> {
        let username = normalize_username(username)?;
        let n = self.lock().execute(
            "UPDATE users SET role = ?2 WHERE username = ?1",
            params![username, role.as_str()],
        )?;
        if n == 0 {
            return Err(Error::UnknownUser(username));
        }
        Ok(())
    }

    /// Every account, ordered by username.
    pub fn list_accounts(&self) -> Result<Vec<Account>, Error> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM users ORDER BY username");
        let conn = self.lock();
        let mut stmt = conn.prepare(&sql)?;
        let accounts = stmt
            .query_map([], account_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(accounts)
    }

    /// Set a new password (checked against the policy) and sign the account out everywhere.
    /// Returns how many sessions were revoked.
    pub fn set_password(
        &self,
        username: &str,
        password: &str,
        now: OffsetDateTime,
    ) -> Result<usize, Error> {
        let username = normalize_username(username)?;
        self.options.password_policy.check(&username, password)?;
        match self.account(&username)? {
            None => return Err(Error::UnknownUser(username)),
            Some(a) if !a.is_local() => return Err(Error::External(username, a.source)),
            Some(_) => {}
        }
        let hash = password::hash(password)?;
        self.update_and_revoke(
            &username,
            "UPDATE users SET password_hash = ?2, password_changed_at = ?3 WHERE username = ?1",
            params![username, hash, unix(now)],
            true,
        )
    }

    /// Disable the account and revoke its sessions. Returns how many sessions were revoked.
    pub fn disable(&self, username: &str) -> Result<usize, Error> {
        let username = normalize_username(username)?;
        self.update_and_revoke(
            &username,
            "UPDATE users SET status = 'disabled' WHERE username = ?1",
            params![username],
            true,
        )
    }

    /// Make a disabled account active again (its expiry, if any, still applies).
    pub fn enable(&self, username: &str) -> Result<(), Error> {
        let username = normalize_username(username)?;
        self.update_and_revoke(
            &username,
            "UPDATE users SET status = 'active' WHERE username = ?1",
            params![username],
            false,
        )?;
        Ok(())
    }

    /// Set when the account stops working (`None`: never). An expiry at or before `now`
    /// also revokes its sessions; returns how many.
    pub fn set_expiry(
        &self,
        username: &str,
        at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<usize, Error> {
        let username = normalize_username(username)?;
        let revoke = at.is_some_and(|at| at <= now);
        self.update_and_revoke(
            &username,
            "UPDATE users SET expires_at = ?2 WHERE username = ?1",
            params![username, at.map(unix)],
            revoke,
        )
    }

    /// Delete the account and its sessions. Returns how many sessions were revoked.
    pub fn remove(&self, username: &str) -> Result<usize, Error> {
        let username = normalize_username(username)?;
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let sessions = tx.execute(
            "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = ?1)",
            [&username],
        )?;
        if tx.execute("DELETE FROM users WHERE username = ?1", [&username])? == 0 {
            return Err(Error::UnknownUser(username));
        }
        tx.commit()?;
        Ok(sessions)
    }

    /// Run one `UPDATE ... WHERE username = ?1` and, if `revoke`, delete the account's
    /// sessions, in one transaction. Unknown username: [`Error::UnknownUser`].
    fn update_and_revoke(
        &self,
        username: &str,
        update: &str,
        params: &[&dyn rusqlite::ToSql],
        revoke: bool,
    ) -> Result<usize, Error> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        if tx.execute(update, params)? == 0 {
            return Err(Error::UnknownUser(username.to_owned()));
        }
        let revoked = if revoke {
            tx.execute(
                "DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE username = ?1)",
                [username],
            )?
        } else {
            0
        };
        tx.commit()?;
        Ok(revoked)
    }

    /// Check a username and password. The password is verified before the account's state is
    /// looked at, so "disabled" and "expired" are only ever told to someone who knows the
    /// password. Unknown usernames cost one dummy verification. A hash made with weaker
    /// parameters than today's is replaced. Does not record the login: call
    /// [`Store::record_login`] once the sign-in has really happened.
    pub fn verify_login(
        &self,
        username: &str,
        password: &str,
        now: OffsetDateTime,
    ) -> Result<Account, LoginError> {
        password::warm_up();
        let Ok(username) = normalize_username(username) else {
            password::verify_dummy(password);
            return Err(LoginError::UnknownUser);
        };
        let sql =
            format!("SELECT {ACCOUNT_COLUMNS}, users.password_hash FROM users WHERE username = ?1");
        let found = self
            .lock()
            .query_row(&sql, [&username], |r| {
                Ok((
                    account_from_row(r)?,
                    r.get::<_, String>(ACCOUNT_COLUMN_COUNT)?,
                ))
            })
            .optional()
            .map_err(Error::from)?;
        let Some((account, stored)) = found else {
            password::verify_dummy(password);
            return Err(LoginError::UnknownUser);
        };
        if !account.is_local() {
            password::verify_dummy(password);
            return Err(LoginError::External(account.source));
        }
        if !password::verify(password, &stored) {
            return Err(LoginError::BadPassword);
        }
        if account.status == AccountStatus::Disabled {
            return Err(LoginError::Disabled);
        }
        if account.is_expired(now) {
            return Err(LoginError::Expired);
        }
        if password::needs_rehash(&stored) {
            let fresh = password::hash(password)?;
            // Only if nobody changed the password meanwhile.
            self.lock()
                .execute(
                    "UPDATE users SET password_hash = ?1 WHERE id = ?2 AND password_hash = ?3",
                    params![fresh, account.id.0, stored],
                )
                .map_err(Error::from)?;
        }
        Ok(account)
    }

    /// Record a successful sign-in at `now` (shown by `conclave user list`).
    pub fn record_login(&self, id: AccountId, now: OffsetDateTime) -> Result<(), Error> {
        let n = self.lock().execute(
            "UPDATE users SET last_login_at = ?1 WHERE id = ?2",
            params![unix(now), id.0],
        )?;
        if n == 0 {
            return Err(Error::UnknownUser(id.to_string()));
        }
        Ok(())
    }
}
