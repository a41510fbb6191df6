//! Conclave's storage: one SQLite file (`conclave.db` in the data directory) holding local
//! accounts, their second factors, sign-in sessions, room reservations, the connection log and the audit log.
//!
//! - Durability: WAL journal, `synchronous = FULL`, so a commit that returned survives a
//!   `kill -9` (and a power cut); tested by killing a writer process at random moments.
//! - Schema: versioned migrations tracked in `PRAGMA user_version`, each applied in one
//!   transaction; a database written by a newer binary is refused ([`Error::SchemaTooNew`]).
//! - Calls block (SQLite, and Argon2id hashing of about 20 MiB and tens of milliseconds): the
//!   async server calls them from `spawn_blocking`. [`Store`] is `Send + Sync`; share it in an
//!   `Arc`. Password hashing happens outside the connection lock, so a slow login does not
//!   stall other database calls.
//! - Nothing here reads a clock: every operation that depends on time takes `now`.

#![warn(missing_docs)]

mod accounts;
mod audit;
mod connections;
mod error;
mod external;
mod factors;
mod migrations;
mod names;
mod passkeys;
mod password;
mod pseudonyms;
mod reservations;
mod sessions;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use accounts::{Account, AccountId, AccountRole, AccountStatus, LoginError};
pub use audit::{AuditEvent, AuditKey, AuditRecord, AuditVerdict, Tamper};
pub use connections::{ConnectionFilter, LoggedConnection};
pub use error::Error;
pub use external::{ExternalError, ExternalIdentity};
pub use factors::{
    FACTORS_KEY_FILE, FactorError, FactorKey, Factors, RECOVERY_CODES, SessionFactor, TOTP_DIGITS,
    TOTP_SECRET_BYTES, TOTP_STEP_SECS, TotpEnrolment, base32, hotp, totp_step,
};
pub use migrations::SCHEMA_VERSION;
pub use names::{DisplayNameError, MAX_DISPLAY_NAME_CHARS, MAX_USERNAME_CHARS, UsernameError};
pub use names::{normalize_display_name, normalize_username};
pub use passkeys::{MAX_PASSKEYS, Passkey};
pub use password::{
    DEFAULT_MIN_PASSWORD_CHARS, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS_FLOOR, PasswordError,
    PasswordPolicy,
};
pub use pseudonyms::{
    AddressForm, PSEUDONYM_KEYS_FILE, Pseudonyms, address_candidates, address_form,
};
pub use reservations::Reservation;
pub use sessions::{NewSession, TOKEN_CHARS};
pub use time::OffsetDateTime;

/// The database file name inside the data directory.
pub const DB_FILE: &str = "conclave.db";

/// How long a call waits for a lock held by another connection (another process, such as
/// `conclave user ...` next to a running server) before it fails with "database is locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What the store enforces; from the `[accounts]` config section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Password rules for new and changed passwords.
    pub password_policy: PasswordPolicy,
    /// How long a sign-in session lasts from its creation.
    pub session_lifetime: time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            password_policy: PasswordPolicy::default(),
            session_lifetime: time::Duration::hours(12),
        }
    }
}

/// A handle on the database. Blocking; share it as `Arc<Store>` and call it from
/// `spawn_blocking` in async code.
pub struct Store {
    /// The one connection. Lock rule: held only for SQL, never across password hashing.
    conn: Mutex<Connection>,
    path: PathBuf,
    options: StoreOptions,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Open (creating if missing) `conclave.db` in `data_dir` and bring its schema up to date.
    /// The directory must exist.
    pub fn open(data_dir: &Path, options: StoreOptions) -> Result<Store, Error> {
        Self::open_file(&data_dir.join(DB_FILE), options)
    }

    /// Open (creating if missing) the database at `path` and bring its schema up to date.
    pub fn open_file(path: &Path, options: StoreOptions) -> Result<Store, Error> {
        let mut conn = connect(path)?;
        migrations::migrate(&mut conn, path, migrations::MIGRATIONS.len())?;
        Ok(Store {
            conn: Mutex::new(conn),
            path: path.to_owned(),
            options,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// The schema version of the open database (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<u32, Error> {
        Ok(migrations::user_version(&self.lock())?)
    }

    /// `PRAGMA integrity_check`: `"ok"` or SQLite's list of problems.
    pub fn integrity_check(&self) -> Result<String, Error> {
        let conn = self.lock();
        let mut stmt = conn.prepare("PRAGMA integrity_check")?;
        let lines: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(lines.join("\n"))
    }

    /// The connection. A panic while it was held cannot leave a transaction half done
    /// (rusqlite rolls back on drop), so a poisoned lock is still safe to use.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Open the file and set the connection up: WAL, synchronous=FULL, foreign keys,
/// secure_delete, busy timeout. New files are created readable by the owner only.
fn connect(path: &Path) -> Result<Connection, Error> {
    let open_err = |source| Error::Open {
        path: path.to_owned(),
        source,
    };
    create_private(path).map_err(|source| Error::Create {
        path: path.to_owned(),
        source,
    })?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    // Reading the header first makes "not a database" fail here, with the path.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::NoWal {
            path: path.to_owned(),
            mode,
        });
    }
    // FULL: the WAL is synced on every commit, so a committed transaction survives a power
    // cut, not only a crash of the process.
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON;",
    )
    .map_err(open_err)?;
    Ok(conn)
}

/// Create an empty file with mode 0600 when none exists, so SQLite (which gives the WAL and
/// shared-memory files the database file's mode) never makes password hashes world-readable.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Unix seconds of `t`, as stored.
fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// A stored unix-seconds column as a time.
fn from_unix(idx: usize, secs: i64) -> rusqlite::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Integer, e.into())
    })
}

#[cfg(test)]
mod factor_tests;
#[cfg(test)]
mod tests;
