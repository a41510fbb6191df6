//! Store tests on real SQLite files: migrations and upgrades, accounts, logins, sessions.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use rusqlite::Connection;
use time::macros::datetime;

use super::*;
use crate::migrations::open_at_version;

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "conclave-store-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
    fn db(&self) -> PathBuf {
        self.0.join(DB_FILE)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const T0: OffsetDateTime = datetime!(2026-11-22 10:00 UTC);
const PW: &str = "violet tractor umbrella";

fn open(dir: &TempDir) -> Store {
    Store::open(dir.path(), StoreOptions::default()).unwrap()
}

fn pragma<T: rusqlite::types::FromSql>(conn: &Connection, name: &str) -> T {
    conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
        .unwrap()
}

/// An account as a binary before schema version 5 wrote it (no role column).
fn old_account(store: &Store) -> AccountId {
    let conn = store.lock();
    conn.execute(
        "INSERT INTO users (username, display_name, password_hash, status, created_at)
         VALUES ('ada', 'Ada', ?1, 'active', ?2)",
        rusqlite::params![password::hash(PW).unwrap(), unix(T0)],
    )
    .unwrap();
    AccountId(conn.last_insert_rowid())
}

/// A session as a binary before schema version 5 wrote it (no factor column).
fn old_session(store: &Store, account: AccountId) -> String {
    let token = "A".repeat(TOKEN_CHARS);
    store
        .lock()
        .execute(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![
                sessions::token_hash(&token),
                account.0,
                unix(T0),
                unix(T0) + 3600
            ],
        )
        .unwrap();
    token
}

#[test]
fn store_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Store>();
}

#[test]
fn new_database_is_current_durable_and_private() {
    let dir = TempDir::new();
    let store = open(&dir);
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 6);
    assert_eq!(store.integrity_check().unwrap(), "ok");
    {
        let conn = store.lock();
        assert_eq!(pragma::<String>(&conn, "journal_mode"), "wal");
        assert_eq!(pragma::<i64>(&conn, "synchronous"), 2, "FULL");
        assert_eq!(pragma::<i64>(&conn, "foreign_keys"), 1);
        assert_eq!(pragma::<i64>(&conn, "secure_delete"), 1);
        assert_eq!(pragma::<i64>(&conn, "busy_timeout"), 5000);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.db()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    drop(store);
    // Opening again changes nothing.
    let store = open(&dir);
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn each_migration_is_one_transaction_from_empty() {
    let dir = TempDir::new();
    for v in 0..=migrations::MIGRATIONS.len() {
        let conn = open_at_version(&dir.db(), v).unwrap();
        assert_eq!(migrations::user_version(&conn).unwrap() as usize, v);
    }
    let conn = open_at_version(&dir.db(), 6).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        tables,
        [
            "audit_anchor",
            "audit_log",
            "connection_log",
            "passkeys",
            "recovery_codes",
            "reservations",
            "sessions",
            "totp",
            "users"
        ]
    );
}

#[test]
fn upgrade_from_version_2_keeps_accounts_and_sessions_and_adds_reservations() {
    let dir = TempDir::new();
    let token = {
        // A version-2 database with an account and a session, as a version-2 binary left it.
        let conn = open_at_version(&dir.db(), 2).unwrap();
        drop(conn);
        let store = Store {
            conn: Mutex::new(open_at_version(&dir.db(), 2).unwrap()),
            path: dir.db(),
            options: StoreOptions::default(),
        };
        let acc = old_account(&store);
        old_session(&store, acc)
    };
    let store = open(&dir);
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(
        store.session_account(&token, T0).unwrap().unwrap().username,
        "ada"
    );
    let r = Reservation {
        room: "reservedroom00001".into(),
        owner: "ada".into(),
        opens_at: T0,
        closes_at: T0 + time::Duration::hours(1),
        password: Some("a room password".into()),
        lobby: true,
    };
    store.add_reservation(&r, T0).unwrap();
    assert!(matches!(
        store.add_reservation(&r, T0),
        Err(Error::ReservationExists(_))
    ));
    assert_eq!(store.list_reservations().unwrap(), vec![r.clone()]);
    assert_eq!(store.reservation(&r.room).unwrap(), Some(r.clone()));
    // The window must be a window.
    let backwards = Reservation {
        room: "reservedroom00002".into(),
        closes_at: T0,
        ..r.clone()
    };
    assert!(store.add_reservation(&backwards, T0).is_err());
    assert_eq!(
        store
            .purge_ended_reservations(T0 + time::Duration::hours(2))
            .unwrap(),
        1
    );
    assert!(!store.remove_reservation(&r.room).unwrap());
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn upgrade_from_version_1_keeps_the_accounts() {
    let dir = TempDir::new();
    let hash = password::hash(PW).unwrap();
    {
        let conn = open_at_version(&dir.db(), 1).unwrap();
        assert_eq!(migrations::user_version(&conn).unwrap(), 1);
        // As a version-1 binary wrote them: no expires_at column yet.
        conn.execute(
            "INSERT INTO users (username, display_name, password_hash, status, created_at,
                                last_login_at)
             VALUES ('ada', 'Ada Lovelace', ?1, 'active', ?2, ?3),
                    ('bob', 'Bob', ?1, 'disabled', ?2, NULL)",
            rusqlite::params![hash, unix(T0), unix(T0) + 60],
        )
        .unwrap();
        assert!(
            conn.execute("SELECT expires_at FROM users", []).is_err(),
            "version 1 has no expires_at"
        );
    }
    let store = open(&dir);
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let list = store.list_accounts().unwrap();
    assert_eq!(list.len(), 2);
    let ada = &list[0];
    assert_eq!(ada.username, "ada");
    assert_eq!(ada.display_name, "Ada Lovelace");
    assert_eq!(ada.created_at, T0);
    assert_eq!(ada.last_login_at, Some(T0 + time::Duration::minutes(1)));
    assert_eq!(ada.expires_at, None);
    assert_eq!(list[1].status, AccountStatus::Disabled);
    // The old hash still verifies, and the new tables work with old rows.
    let acc = store.verify_login("ada", PW, T0).unwrap();
    let s = store.create_session(acc.id, T0).unwrap();
    assert_eq!(store.session_account(&s.token, T0).unwrap(), Some(acc));
    store.set_expiry("ada", Some(T0), T0).unwrap();
    assert!(matches!(
        store.verify_login("ada", PW, T0),
        Err(LoginError::Expired)
    ));
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn upgrade_from_version_3_keeps_everything_and_adds_the_logs() {
    let dir = TempDir::new();
    let token = {
        let store = Store {
            conn: Mutex::new(open_at_version(&dir.db(), 3).unwrap()),
            path: dir.db(),
            options: StoreOptions::default(),
        };
        let acc = old_account(&store);
        let r = Reservation {
            room: "reserved-room-00000001".into(),
            owner: "ada".into(),
            opens_at: T0,
            closes_at: T0 + time::Duration::hours(1),
            password: None,
            lobby: true,
        };
        store.add_reservation(&r, T0).unwrap();
        old_session(&store, acc)
    };
    let store = open(&dir);
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(
        store.session_account(&token, T0).unwrap().unwrap().username,
        "ada"
    );
    // Version 5: the old account moderates, the old session was a password sign-in.
    let (acc, factor) = store.session(&token, T0).unwrap().unwrap();
    assert_eq!(acc.role, AccountRole::Moderator);
    assert_eq!(factor, SessionFactor::Password);
    assert_eq!(store.list_reservations().unwrap().len(), 1);
    let id = store.log_join("192.0.2.1", "room", T0).unwrap();
    store.log_leave(id, T0).unwrap();
    assert_eq!(store.audit_count().unwrap(), 0);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn upgrade_from_version_5_keeps_sessions_and_their_factor() {
    let dir = TempDir::new();
    let token = {
        let store = Store {
            conn: Mutex::new(open_at_version(&dir.db(), 5).unwrap()),
            path: dir.db(),
            options: StoreOptions::default(),
        };
        let acc = old_account(&store);
        let token = old_session(&store, acc);
        store
            .lock()
            .execute("UPDATE sessions SET factor = 'totp'", [])
            .unwrap();
        token
    };
    let store = open(&dir);
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    // The rebuilt sessions table kept the row and its factor; the account is local.
    let (acc, factor) = store.session(&token, T0).unwrap().unwrap();
    assert_eq!(
        (acc.username.as_str(), factor),
        ("ada", SessionFactor::Totp)
    );
    assert!(acc.is_local());
    // And takes passkey sessions now.
    let s = store
        .create_session_with(acc.id, SessionFactor::Passkey, time::Duration::hours(1), T0)
        .unwrap();
    assert_eq!(
        store.session(&s.token, T0).unwrap().unwrap().1,
        SessionFactor::Passkey
    );
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let fk: i64 = store
        .lock()
        .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(fk, 0);
}

#[test]
fn passkeys_are_unique_bounded_and_their_counter_only_moves_forward() {
    let dir = TempDir::new();
    let store = open(&dir);
    let acc = store.add_account("ada", "Ada", PW, T0).unwrap();
    let key = |id: u8| Passkey {
        id: vec![id; 16],
        account: acc.id,
        public_key: vec![1, 2, 3],
        alg: -7,
        sign_count: 5,
        name: "laptop".into(),
        created_at: T0,
        last_used_at: None,
    };
    store.add_passkey(&key(1)).unwrap();
    assert!(matches!(
        store.add_passkey(&key(1)),
        Err(Error::PasskeyExists)
    ));
    for i in 2..=MAX_PASSKEYS as u8 {
        store.add_passkey(&key(i)).unwrap();
    }
    assert!(matches!(
        store.add_passkey(&key(200)),
        Err(Error::TooManyPasskeys(_))
    ));
    assert_eq!(store.factors(acc.id).unwrap().passkeys, MAX_PASSKEYS);
    // The counter: 5 -> 6 is fine, 6 again or lower is a clone.
    assert!(store.use_passkey(&[1; 16], 6, T0).unwrap());
    assert!(!store.use_passkey(&[1; 16], 6, T0).unwrap());
    assert!(!store.use_passkey(&[1; 16], 2, T0).unwrap());
    assert_eq!(store.passkey(&[1; 16]).unwrap().unwrap().sign_count, 6);
    assert!(store.remove_passkey(acc.id, &[1; 16]).unwrap());
    assert_eq!(store.remove_passkeys(acc.id).unwrap(), MAX_PASSKEYS - 1);
    // Removing the account removes its passkeys.
    store.add_passkey(&key(9)).unwrap();
    store.remove("ada").unwrap();
    assert!(store.passkey(&[9; 16]).unwrap().is_none());
}

#[test]
fn a_database_from_a_newer_binary_is_refused_and_left_alone() {
    let dir = TempDir::new();
    drop(open(&dir));
    {
        let conn = Connection::open(dir.db()).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let err = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SchemaTooNew {
                found: 99,
                known: SCHEMA_VERSION,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("99") && msg.contains("newer"), "{msg}");
    let conn = Connection::open(dir.db()).unwrap();
    assert_eq!(migrations::user_version(&conn).unwrap(), 99);
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = TempDir::new();
    std::fs::write(dir.db(), vec![0x42u8; 4096]).unwrap();
    let err = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("conclave.db"), "{err}");
    let err = Store::open(&dir.path().join("missing-dir"), StoreOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Create { .. }), "{err:?}");
}

#[test]
fn add_list_and_input_errors() {
    let dir = TempDir::new();
    let store = open(&dir);
    let a = store.add_account("Ada", "  Ada Lovelace ", PW, T0).unwrap();
    assert_eq!(a.username, "ada");
    assert_eq!(a.display_name, "Ada Lovelace");
    assert_eq!(a.status, AccountStatus::Active);
    assert_eq!(a.created_at, T0);
    assert_eq!(a.last_login_at, None);
    assert_eq!(a.expires_at, None);
    assert_eq!(a.state(T0), "active");
    store.add_account("bob", "Bob", PW, T0).unwrap();
    let names: Vec<String> = store
        .list_accounts()
        .unwrap()
        .into_iter()
        .map(|a| a.username)
        .collect();
    assert_eq!(names, ["ada", "bob"]);

    let e = store.add_account("ADA", "Other", PW, T0).unwrap_err();
    assert!(matches!(e, Error::UserExists(ref n) if n == "ada"), "{e:?}");
    let e = store.add_account("a b", "X", PW, T0).unwrap_err();
    assert!(
        matches!(e, Error::Username(UsernameError::InvalidChar(' '))),
        "{e:?}"
    );
    let e = store.add_account("carol", " ", PW, T0).unwrap_err();
    assert!(
        matches!(e, Error::DisplayName(DisplayNameError::Empty)),
        "{e:?}"
    );
    for (pw, want) in [
        ("short", PasswordError::TooShort { min: 12 }),
        ("Password1234", PasswordError::Common),
        ("Carol-Longer", PasswordError::SameAsUsername),
    ] {
        let user = if want == PasswordError::SameAsUsername {
            "carol-longer"
        } else {
            "carol"
        };
        let e = store.add_account(user, "Carol", pw, T0).unwrap_err();
        match e {
            Error::Password(got) => assert_eq!(got, want, "{pw}"),
            other => panic!("{pw}: {other:?}"),
        }
    }
    assert_eq!(store.account("carol").unwrap(), None);
    assert_eq!(store.list_accounts().unwrap().len(), 2);
    // A stricter configured minimum applies.
    let strict = Store::open(
        dir.path(),
        StoreOptions {
            password_policy: PasswordPolicy { min_chars: 30 },
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let e = strict.add_account("dora", "Dora", PW, T0).unwrap_err();
    assert!(
        matches!(e, Error::Password(PasswordError::TooShort { min: 30 })),
        "{e:?}"
    );
}

#[test]
fn login_outcomes_and_last_login() {
    let dir = TempDir::new();
    let store = open(&dir);
    let ada = store.add_account("ada", "Ada", PW, T0).unwrap();
    let ok = store.verify_login("ADA", PW, T0).unwrap();
    assert_eq!(ok.id, ada.id);
    assert!(matches!(
        store.verify_login("ada", "wrong password!", T0),
        Err(LoginError::BadPassword)
    ));
    assert!(matches!(
        store.verify_login("ada", &"x".repeat(5000), T0),
        Err(LoginError::BadPassword)
    ));
    assert!(matches!(
        store.verify_login("nobody", PW, T0),
        Err(LoginError::UnknownUser)
    ));
    assert!(matches!(
        store.verify_login("not a name!", PW, T0),
        Err(LoginError::UnknownUser)
    ));
    store
        .record_login(ada.id, T0 + time::Duration::hours(1))
        .unwrap();
    assert_eq!(
        store.account("ada").unwrap().unwrap().last_login_at,
        Some(T0 + time::Duration::hours(1))
    );
    assert!(matches!(
        store.record_login(AccountId(9999), T0),
        Err(Error::UnknownUser(_))
    ));

    // Disabled: the right password says so, a wrong one says only "wrong password".
    store.disable("ada").unwrap();
    assert!(matches!(
        store.verify_login("ada", PW, T0),
        Err(LoginError::Disabled)
    ));
    assert!(matches!(
        store.verify_login("ada", "wrong password!", T0),
        Err(LoginError::BadPassword)
    ));
    assert_eq!(store.account("ada").unwrap().unwrap().state(T0), "disabled");
    store.enable("ada").unwrap();
    store.verify_login("ada", PW, T0).unwrap();

    // Expiry in the future: works until then.
    let at = T0 + time::Duration::days(1);
    store.set_expiry("ada", Some(at), T0).unwrap();
    store.verify_login("ada", PW, T0).unwrap();
    assert!(matches!(
        store.verify_login("ada", PW, at),
        Err(LoginError::Expired)
    ));
    assert_eq!(store.account("ada").unwrap().unwrap().state(at), "expired");
    store.set_expiry("ada", None, at).unwrap();
    store.verify_login("ada", PW, at).unwrap();

    // New password: the old one stops working.
    let new_pw = "a completely different phrase";
    store.set_password("ada", new_pw, T0).unwrap();
    assert!(matches!(
        store.verify_login("ada", PW, T0),
        Err(LoginError::BadPassword)
    ));
    let acc = store.verify_login("ada", new_pw, T0).unwrap();
    assert_eq!(acc.password_changed_at, Some(T0));
    assert!(matches!(
        store.set_password("ada", "short", T0),
        Err(Error::Password(PasswordError::TooShort { .. }))
    ));

    store.remove("ada").unwrap();
    assert!(matches!(
        store.verify_login("ada", new_pw, T0),
        Err(LoginError::UnknownUser)
    ));
    for e in [
        store.remove("ada").unwrap_err(),
        store.disable("ada").unwrap_err(),
        store.enable("ada").map(|_| 0).unwrap_err(),
        store.set_expiry("ada", None, T0).unwrap_err(),
        store.set_password("ada", PW, T0).unwrap_err(),
    ] {
        assert!(
            matches!(e, Error::UnknownUser(ref n) if n == "ada"),
            "{e:?}"
        );
    }
}

#[test]
fn weak_hashes_are_upgraded_on_login() {
    let dir = TempDir::new();
    let store = open(&dir);
    let ada = store.add_account("ada", "Ada", PW, T0).unwrap();
    let weak = password::hash_with(PW, 4096, 1);
    store
        .lock()
        .execute(
            "UPDATE users SET password_hash = ?1 WHERE id = ?2",
            rusqlite::params![weak, ada.id.0],
        )
        .unwrap();
    store.verify_login("ada", PW, T0).unwrap();
    let now: String = store
        .lock()
        .query_row("SELECT password_hash FROM users", [], |r| r.get(0))
        .unwrap();
    assert!(now.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{now}");
    store.verify_login("ada", PW, T0).unwrap();
}

#[test]
fn sessions_live_for_their_lifetime_and_die_with_the_account_state() {
    let dir = TempDir::new();
    let store = open(&dir);
    let life = store.options().session_lifetime;
    let ada = store.add_account("ada", "Ada", PW, T0).unwrap();
    let bob = store.add_account("bob", "Bob", PW, T0).unwrap();

    let s = store.create_session(ada.id, T0).unwrap();
    assert_eq!(s.token.len(), TOKEN_CHARS);
    assert!(
        s.token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert!(
        !format!("{s:?}").contains(&s.token),
        "Debug hides the token"
    );
    assert_eq!(s.expires_at, T0 + life);
    let found = store.session_account(&s.token, T0).unwrap().unwrap();
    assert_eq!(found.id, ada.id);
    assert!(
        store
            .session_account(&s.token, T0 + life)
            .unwrap()
            .is_none()
    );
    // Only the hash is stored.
    let stored: Vec<u8> = store
        .lock()
        .query_row("SELECT token_hash FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored.len(), 32);
    assert_ne!(stored, s.token.as_bytes());

    // Garbage tokens.
    for t in ["", "x", &"A".repeat(TOKEN_CHARS), &"A".repeat(10_000)] {
        assert!(store.session_account(t, T0).unwrap().is_none());
        assert!(!store.revoke_session(t).unwrap());
    }
    assert!(matches!(
        store.create_session(AccountId(9999), T0),
        Err(Error::UnknownUser(_))
    ));

    // Sign-out.
    assert!(store.revoke_session(&s.token).unwrap());
    assert!(!store.revoke_session(&s.token).unwrap());
    assert!(store.session_account(&s.token, T0).unwrap().is_none());

    // Disable, password change, expiry, removal end every session of that account only.
    let bob_s = store.create_session(bob.id, T0).unwrap();
    let a1 = store.create_session(ada.id, T0).unwrap();
    let a2 = store.create_session(ada.id, T0).unwrap();
    assert_eq!(store.session_count(ada.id).unwrap(), 2);
    assert_eq!(store.disable("ada").unwrap(), 2);
    assert!(store.session_account(&a1.token, T0).unwrap().is_none());
    store.enable("ada").unwrap();
    assert!(
        store.session_account(&a2.token, T0).unwrap().is_none(),
        "enable does not revive sessions"
    );

    let a3 = store.create_session(ada.id, T0).unwrap();
    assert_eq!(
        store
            .set_password("ada", "another fine password", T0)
            .unwrap(),
        1
    );
    assert!(store.session_account(&a3.token, T0).unwrap().is_none());

    let a4 = store.create_session(ada.id, T0).unwrap();
    let at = T0 + time::Duration::hours(1);
    assert_eq!(store.set_expiry("ada", Some(at), T0).unwrap(), 0);
    assert!(store.session_account(&a4.token, T0).unwrap().is_some());
    assert!(
        store.session_account(&a4.token, at).unwrap().is_none(),
        "an expired account's session does not work"
    );
    assert_eq!(store.set_expiry("ada", Some(at), at).unwrap(), 1);

    let a5 = store.create_session(ada.id, T0).unwrap();
    store.set_expiry("ada", None, T0).unwrap();
    assert_eq!(store.revoke_sessions(ada.id).unwrap(), 1);
    assert!(store.session_account(&a5.token, T0).unwrap().is_none());

    store.create_session(ada.id, T0).unwrap();
    assert_eq!(store.remove("ada").unwrap(), 1);
    assert_eq!(store.session_count(ada.id).unwrap(), 0);
    assert_eq!(
        store.session_account(&bob_s.token, T0).unwrap().unwrap().id,
        bob.id
    );

    // Purge.
    store
        .create_session(bob.id, T0 + time::Duration::hours(1))
        .unwrap();
    assert_eq!(store.purge_expired_sessions(T0 + life).unwrap(), 1);
    assert_eq!(store.session_count(bob.id).unwrap(), 1);
    assert_eq!(
        store
            .purge_expired_sessions(T0 + life + time::Duration::hours(1))
            .unwrap(),
        1
    );
    assert_eq!(store.session_count(bob.id).unwrap(), 0);
}

#[test]
fn configurable_session_lifetime() {
    let dir = TempDir::new();
    let store = Store::open(
        dir.path(),
        StoreOptions {
            session_lifetime: time::Duration::hours(1),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let ada = store.add_account("ada", "Ada", PW, T0).unwrap();
    let s = store.create_session(ada.id, T0).unwrap();
    assert_eq!(s.expires_at, T0 + time::Duration::hours(1));
    let almost = T0 + time::Duration::minutes(59);
    assert!(store.session_account(&s.token, almost).unwrap().is_some());
    assert!(
        store
            .session_account(&s.token, T0 + time::Duration::hours(1))
            .unwrap()
            .is_none()
    );
}

#[test]
fn two_handles_on_one_file_see_each_other() {
    // The server and a `conclave user ...` command open the same file at once.
    let dir = TempDir::new();
    let server = open(&dir);
    let cli = open(&dir);
    let ada = cli.add_account("ada", "Ada", PW, T0).unwrap();
    let s = server.create_session(ada.id, T0).unwrap();
    assert!(server.session_account(&s.token, T0).unwrap().is_some());
    cli.disable("ada").unwrap();
    assert!(server.session_account(&s.token, T0).unwrap().is_none());
    let store = std::sync::Arc::new(server);
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            std::thread::spawn(move || {
                store
                    .add_account(&format!("user{i}"), "U", PW, T0)
                    .map(|a| a.username)
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    assert_eq!(cli.list_accounts().unwrap().len(), 5);
}

#[test]
fn directory_accounts_follow_the_provider_and_never_take_a_password_or_a_name() {
    let dir = TempDir::new();
    let store = open(&dir);
    store.add_account("ada", "Ada", PW, T0).unwrap();
    let who = |username: &str, name: &str, role| ExternalIdentity {
        source: "ldap:corp".into(),
        subject: format!("uid={username},ou=people,dc=example,dc=org"),
        username: username.into(),
        display_name: name.into(),
        role,
    };
    let a = store
        .external_account(&who("carl", "Carl Cox", AccountRole::Member), T0)
        .unwrap();
    assert_eq!(
        (a.username.as_str(), a.display_name.as_str(), a.role),
        ("carl", "Carl Cox", AccountRole::Member)
    );
    assert_eq!(a.source, "ldap:corp");
    assert!(!a.is_local());
    // The next sign-in refreshes name and role from the directory; the row is the same.
    let b = store
        .external_account(&who("carl", "Carl C. Cox", AccountRole::Moderator), T0)
        .unwrap();
    assert_eq!((b.id, b.display_name.as_str()), (a.id, "Carl C. Cox"));
    assert_eq!(b.role, AccountRole::Moderator);
    // A directory user named like a local account does not get it.
    match store.external_account(&who("ada", "Mallory", AccountRole::Moderator), T0) {
        Err(ExternalError::NameTaken { username, owner }) => {
            assert_eq!((username.as_str(), owner.as_str()), ("ada", "local"))
        }
        other => panic!("expected NameTaken, got {other:?}"),
    }
    // No password signs in to a directory account, and none can be set here.
    assert!(matches!(
        store.verify_login("carl", "!", T0),
        Err(LoginError::External(s)) if s == "ldap:corp"
    ));
    assert!(matches!(
        store.set_password("carl", PW, T0),
        Err(Error::External(..))
    ));
    // An administrator's disable holds against the directory.
    store.disable("carl").unwrap();
    assert!(matches!(
        store.external_account(&who("carl", "Carl Cox", AccountRole::Member), T0),
        Err(ExternalError::Disabled)
    ));
    // A display name the rules refuse gives way to the user name.
    let d = store
        .external_account(&who("dora", &"x".repeat(500), AccountRole::Member), T0)
        .unwrap();
    assert_eq!(d.display_name, "dora");
}
