//! Versioned schema migrations. The database's version is `PRAGMA user_version` (0 for a new
//! file); migration N brings it from N-1 to N. Each runs in its own `BEGIN IMMEDIATE`
//! transaction together with the version bump, so a crash leaves the database at N-1 or N,
//! never in between, and two processes opening the same new file cannot both apply it.
//!
//! Rules for new migrations: append, never edit a released one; test the upgrade from the
//! previous version with data in it (see `tests.rs`).

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::Error;

/// One schema step.
pub(crate) struct Migration {
    /// What it adds, named in errors.
    pub name: &'static str,
    /// The SQL, run as one batch.
    pub sql: &'static str,
}

/// Every migration in order; index 0 is version 1.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "users",
        sql: include_str!("migrations/001_users.sql"),
    },
    Migration {
        name: "sessions and account expiry",
        sql: include_str!("migrations/002_sessions.sql"),
    },
    Migration {
        name: "room reservations",
        sql: include_str!("migrations/003_reservations.sql"),
    },
    Migration {
        name: "connection log and audit log",
        sql: include_str!("migrations/004_privacy_audit.sql"),
    },
    Migration {
        name: "account roles and second factors",
        sql: include_str!("migrations/005_factors.sql"),
    },
    Migration {
        name: "directory accounts and passkeys",
        sql: include_str!("migrations/006_external.sql"),
    },
];

/// The schema version this binary writes and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// The database's `user_version`.
pub(crate) fn user_version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Bring the database up to version `target` (at most [`SCHEMA_VERSION`]). Refuses a
/// database that is newer than this binary.
pub(crate) fn migrate(conn: &mut Connection, path: &Path, target: usize) -> Result<(), Error> {
    debug_assert!(target <= MIGRATIONS.len());
    let open_err = |source| Error::Open {
        path: path.to_owned(),
        source,
    };
    let found = user_version(conn).map_err(open_err)?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path: path.to_owned(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().take(target) {
        let version = u32::try_from(index + 1).expect("few migrations");
        let failed = |source| Error::Migration {
            path: path.to_owned(),
            version,
            name: migration.name,
            source,
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(failed)?;
        // Read again under the write lock: another process may have migrated meanwhile.
        let current = user_version(&tx).map_err(failed)?;
        if current >= version {
            continue;
        }
        tx.execute_batch(migration.sql).map_err(failed)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
    Ok(())
}

/// Test-only: open a database and apply only the first `version` migrations, so tests can
/// build a database as an older binary left it.
#[cfg(test)]
pub(crate) fn open_at_version(path: &Path, version: usize) -> Result<Connection, Error> {
    let mut conn = crate::connect(path)?;
    migrate(&mut conn, path, version)?;
    Ok(conn)
}
