//! The store's error type.

use std::path::PathBuf;

use crate::{DisplayNameError, PasswordError, UsernameError};

/// Everything a store call can fail with. Input errors are specific so that the command line
/// can say exactly what to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database file could not be created.
    #[error("cannot create database file {path}: {source}")]
    Create {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database could not be opened or set up (not a database, unreadable, locked ...).
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// The file system did not allow the write-ahead log (some network file systems).
    #[error("database {path}: journal mode is {mode:?}, WAL is required (use a local file system)")]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite reported.
        mode: String,
    },
    /// The database was written by a newer Conclave.
    #[error(
        "database {path} has schema version {found}, but this conclave knows only up to \
         version {known}: it was written by a newer conclave; run that version (or restore \
         a backup), never an older binary on a newer database"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: u32,
        /// The newest version this binary knows.
        known: u32,
    },
    /// A migration failed; the database is left at the previous version.
    #[error("database {path}: migration to schema version {version} ({name}) failed: {source}")]
    Migration {
        /// The database file.
        path: PathBuf,
        /// The version that could not be applied.
        version: u32,
        /// What that migration adds.
        name: &'static str,
        /// Why.
        source: rusqlite::Error,
    },
    /// Any other SQLite failure.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The username breaks the rules.
    #[error(transparent)]
    Username(#[from] UsernameError),
    /// The display name breaks the rules.
    #[error(transparent)]
    DisplayName(#[from] DisplayNameError),
    /// The password breaks the policy.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// An account with this username (compared case-insensitively) exists.
    #[error("user {0:?} already exists")]
    UserExists(String),
    /// The account's password lives in a directory or identity provider.
    #[error("user {0:?} signs in through {1}; change the password there")]
    External(String, String),
    /// This passkey is registered already.
    #[error("this passkey is registered already")]
    PasskeyExists,
    /// The account has as many passkeys as allowed.
    #[error("an account can have at most {0} passkeys; remove one first")]
    TooManyPasskeys(usize),
    /// The room is already reserved.
    #[error("room {0} is already reserved")]
    ReservationExists(String),
    /// No account with this username.
    #[error("no user {0:?}")]
    UnknownUser(String),
    /// The audit key file could not be read or created.
    #[error("audit key {path}: {source}")]
    AuditKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The audit key is gone but the log has records: a new key would fail them all.
    #[error(
        "audit key {path} is missing, but the audit log holds {records} records signed with \
         it: restore the key from your backup (or point [audit] key_file at it); to start a new \
         log instead, export the old one and move the database aside"
    )]
    AuditKeyMissing {
        /// The key file.
        path: PathBuf,
        /// Records in the log.
        records: usize,
    },
    /// The factor key file could not be read or created.
    #[error("factor key {path}: {source}")]
    FactorKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The factor key is gone but accounts have TOTP secrets sealed with it.
    #[error(
        "factor key {path} is missing, but {accounts} accounts have an authenticator app sealed \
         with it: restore the key from your backup, or reset their factors with \
         `conclave user reset-factors NAME` after moving the key aside"
    )]
    FactorKeyMissing {
        /// The key file.
        path: PathBuf,
        /// Accounts with a TOTP secret.
        accounts: usize,
    },
    /// A sealed TOTP secret does not open with the key (wrong key, or the row was changed).
    #[error("the authenticator secret of account {0} does not open with the factor key")]
    FactorSealBroken(String),
    /// Argon2 failed (only on impossible parameters or out of memory).
    #[error("password hashing failed: {0}")]
    Hash(String),
}
