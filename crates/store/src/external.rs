//! Accounts vouched for by a directory (`[[ldap]]`) or an identity provider (`[[oidc]]`).
//! Conclave keeps a row for each so that sessions, second factors, bans and the audit log
//! work as for local accounts; the provider decides at every sign-in whether the person may
//! sign in, their display name and their role. Such a row has no usable password.

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use time::OffsetDateTime;

use crate::accounts::{ACCOUNT_COLUMNS, account_from_row};
use crate::names::{normalize_display_name, normalize_username};
use crate::{Account, AccountId, AccountRole, AccountStatus, Error, Store, unix};

/// The stored password hash of an external account: not a PHC string, so nothing verifies.
pub(crate) const NO_PASSWORD: &str = "!";

/// What a provider said about a person who just proved who they are to it.
#[derive(Debug, Clone)]
pub struct ExternalIdentity {
    /// `ldap:NAME` or `oidc:NAME`.
    pub source: String,
    /// The provider's stable id of the person (directory DN, OpenID `sub`).
    pub subject: String,
    /// The username to create the account with (it keeps it when the provider renames).
    pub username: String,
    /// The name others see; replaced at every sign-in. A name that breaks the display-name
    /// rules (too long, control characters) gives way to the username.
    pub display_name: String,
    /// The role the provider's groups map to; replaced at every sign-in.
    pub role: AccountRole,
}

/// Why an external sign-in gives no account.
#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    /// The username belongs to another account (a local one, or another provider's).
    #[error("the user name {username:?} is taken by a {owner} account")]
    NameTaken {
        /// The name.
        username: String,
        /// That account's source.
        owner: String,
    },
    /// An administrator disabled the account here.
    #[error("account is disabled")]
    Disabled,
    /// The account's expiry time has passed.
    #[error("account has expired")]
    Expired,
    /// The provider's user name cannot be a Conclave user name.
    #[error(transparent)]
    Username(#[from] crate::UsernameError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] Error),
}

impl From<rusqlite::Error> for ExternalError {
    fn from(e: rusqlite::Error) -> Self {
        ExternalError::Store(e.into())
    }
}

impl Store {
    /// The account of a person the provider vouched for: created at the first sign-in,
    /// its display name and role refreshed at each later one. Disabled and expired accounts
    /// are refused as for passwords. Does not record the login.
    pub fn external_account(
        &self,
        who: &ExternalIdentity,
        now: OffsetDateTime,
    ) -> Result<Account, ExternalError> {
        let username = normalize_username(&who.username)?;
        let display_name =
            normalize_display_name(&who.display_name).unwrap_or_else(|_| username.clone());
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM users WHERE source = ?1 AND subject = ?2");
        let found = tx
            .query_row(&sql, params![who.source, who.subject], account_from_row)
            .optional()?;
        let id = match found {
            Some(a) => {
                if a.status == AccountStatus::Disabled {
                    return Err(ExternalError::Disabled);
                }
                if a.is_expired(now) {
                    return Err(ExternalError::Expired);
                }
                tx.execute(
                    "UPDATE users SET display_name = ?2, role = ?3 WHERE id = ?1",
                    params![a.id.0, display_name, who.role.as_str()],
                )?;
                a.id
            }
            None => {
                let taken: Option<String> = tx
                    .query_row(
                        "SELECT source FROM users WHERE username = ?1",
                        [&username],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(owner) = taken {
                    return Err(ExternalError::NameTaken { username, owner });
                }
                tx.execute(
                    "INSERT INTO users (username, display_name, password_hash, status, created_at,
                                        role, source, subject)
                     VALUES (?1, ?2, ?3, 'active', ?4, ?5, ?6, ?7)",
                    params![
                        username,
                        display_name,
                        NO_PASSWORD,
                        unix(now),
                        who.role.as_str(),
                        who.source,
                        who.subject
                    ],
                )?;
                AccountId(tx.last_insert_rowid())
            }
        };
        let account = tx.query_row(
            &format!("SELECT {ACCOUNT_COLUMNS} FROM users WHERE id = ?1"),
            [id.0],
            account_from_row,
        )?;
        tx.commit()?;
        Ok(account)
    }
}
