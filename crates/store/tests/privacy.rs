//! The connection log, pseudonyms and the audit chain on a real SQLite file: retention on a
//! simulated clock, pseudonyms that cannot be matched without the key, and tampering with
//! the audit table directly (as someone with write access to the database file would).

use std::net::IpAddr;
use std::path::PathBuf;

use conclave_store::{
    AddressForm, AuditEvent, AuditKey, ConnectionFilter, OffsetDateTime, Pseudonyms, Store,
    StoreOptions, Tamper, address_candidates, address_form,
};
use rusqlite::params;

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("valid timestamp")
}

fn day(n: i64) -> time::Duration {
    time::Duration::days(n)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("conclave-privacy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn event(i: usize) -> AuditEvent {
    AuditEvent {
        kind: "moderation.mute".into(),
        actor: format!("account:mod{i}"),
        target: format!("participant:p{i}"),
        room: "k1:abcd".into(),
        address: String::new(),
        detail: format!("source=mic n={i}"),
    }
}

#[test]
fn connection_log_rows_older_than_the_retention_are_deleted() {
    let dir = temp_dir("retention");
    let store = Store::open(&dir, StoreOptions::default()).unwrap();
    let old = store.log_join("192.0.2.1", "old-room", t0()).unwrap();
    store
        .log_leave(old, t0() + time::Duration::hours(1))
        .unwrap();
    let recent = store
        .log_join("192.0.2.2", "new-room", t0() + day(10))
        .unwrap();
    let open = store
        .log_join("192.0.2.3", "new-room", t0() + day(14))
        .unwrap();

    // 14 days of retention, 15 days later: only the first row is older.
    let purged = store.purge_connections(t0() + day(15) - day(14)).unwrap();
    assert_eq!(purged, 1);
    let rows = store
        .list_connections(&ConnectionFilter::default())
        .unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![recent, open]);

    // A restart ends the sessions that never got a leave time.
    assert_eq!(store.close_open_connections(t0() + day(15)).unwrap(), 2);
    let rows = store
        .list_connections(&ConnectionFilter::default())
        .unwrap();
    assert!(rows.iter().all(|r| r.left_at == Some(t0() + day(15))));

    // Filters: by stored address form and room.
    let f = ConnectionFilter {
        addresses: vec!["192.0.2.3".into()],
        ..ConnectionFilter::default()
    };
    assert_eq!(store.list_connections(&f).unwrap().len(), 1);
    let f = ConnectionFilter {
        rooms: vec!["old-room".into()],
        ..ConnectionFilter::default()
    };
    assert_eq!(store.list_connections(&f).unwrap().len(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hashed_addresses_cannot_be_matched_without_the_key() {
    let dir = temp_dir("pseudonyms");
    let keys_file = dir.join("pseudonym.keys");
    let keys = Pseudonyms::load(&keys_file, 14, t0()).unwrap();
    let addr: IpAddr = "198.51.100.77".parse().unwrap();
    let stored = address_form(addr, AddressForm::Hashed, &keys);
    assert!(!stored.contains("198.51.100"), "{stored}");

    // Without the key: neither a plain hash nor a hash under a fresh key of every address in
    // the /24 gives the stored value.
    let other_dir = temp_dir("pseudonyms-other");
    let guess_keys = Pseudonyms::load(&other_dir.join("pseudonym.keys"), 14, t0()).unwrap();
    for last in 0..=255u8 {
        let a: IpAddr = format!("198.51.100.{last}").parse().unwrap();
        assert_ne!(address_form(a, AddressForm::Hashed, &guess_keys), stored);
        let plain = sha256_hex(a.to_string().as_bytes());
        assert!(!stored.contains(&plain[..32]));
    }
    // With the key (the operator looking up an address): found.
    let reloaded = Pseudonyms::load(&keys_file, 14, t0()).unwrap();
    assert!(address_candidates(addr, AddressForm::Hashed, &reloaded).contains(&stored));

    // The key rotates with the retention: one period later the old key is still kept (rows
    // of the last period are not yet deleted), two periods later it is gone and the old
    // pseudonym is unlinkable.
    let later = Pseudonyms::load(&keys_file, 14, t0() + day(14)).unwrap();
    assert!(address_candidates(addr, AddressForm::Hashed, &later).contains(&stored));
    assert_ne!(address_form(addr, AddressForm::Hashed, &later), stored);
    let much_later = Pseudonyms::load(&keys_file, 14, t0() + day(29)).unwrap();
    assert!(!address_candidates(addr, AddressForm::Hashed, &much_later).contains(&stored));

    // Truncated forms keep only the network.
    assert_eq!(
        address_form(addr, AddressForm::Truncated, &keys),
        "198.51.100.0/24"
    );
    let v6: IpAddr = "2001:db8:1234:5678::9".parse().unwrap();
    assert_eq!(
        address_form(v6, AddressForm::Truncated, &keys),
        "2001:db8:1234::/48"
    );
    let mapped: IpAddr = "::ffff:198.51.100.77".parse().unwrap();
    assert_eq!(
        address_form(mapped, AddressForm::Full, &keys),
        "198.51.100.77"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&keys_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other_dir);
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn audit_fixture(name: &str, n: usize) -> (PathBuf, Store, AuditKey) {
    let dir = temp_dir(name);
    let store = Store::open(&dir, StoreOptions::default()).unwrap();
    let key = AuditKey::load_or_create(&dir.join("audit.key"), &store).unwrap();
    for i in 1..=n {
        let at = t0() + time::Duration::minutes(i as i64);
        store.audit_append(&key, at, &[event(i)]).unwrap();
    }
    (dir, store, key)
}

#[test]
fn an_untouched_chain_verifies() {
    let (dir, store, key) = audit_fixture("intact", 30);
    let v = store.audit_verify(&key).unwrap();
    assert_eq!((v.records, v.first_seq, v.last_seq), (30, 1, 30));
    assert_eq!(v.problems, vec![]);
    // A different key finds every record wrong.
    std::fs::remove_file(dir.join("audit.key")).unwrap();
    let err = AuditKey::load_or_create(&dir.join("audit.key"), &store).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn edited_deleted_and_inserted_records_are_each_named() {
    let (dir, store, key) = audit_fixture("tamper", 20);
    let db = rusqlite::Connection::open(dir.join("conclave.db")).unwrap();
    // Edit: record 5 now blames someone else.
    db.execute(
        "UPDATE audit_log SET actor = 'account:innocent' WHERE seq = 5",
        [],
    )
    .unwrap();
    // Delete: record 10 is gone.
    db.execute("DELETE FROM audit_log WHERE seq = 10", [])
        .unwrap();
    // Insert: a forged record between 14 and 15, linked to 14 and claiming seq 15.
    let mac14: Vec<u8> = db
        .query_row("SELECT mac FROM audit_log WHERE seq = 14", [], |r| r.get(0))
        .unwrap();
    db.execute(
        "INSERT INTO audit_log (seq, at, kind, actor, target, room, address, detail, prev, mac)
         VALUES (15, ?1, 'signin.success', 'account:mallory', '', '', '', '', ?2, ?3)",
        params![t0().unix_timestamp() + 14 * 60, mac14, vec![7u8; 32]],
    )
    .unwrap();
    // Insert at the end, beyond the newest record.
    let mac20: Vec<u8> = db
        .query_row("SELECT mac FROM audit_log WHERE seq = 20", [], |r| r.get(0))
        .unwrap();
    db.execute(
        "INSERT INTO audit_log (seq, at, kind, actor, target, room, address, detail, prev, mac)
         VALUES (21, ?1, 'admin.api', 'admin-api', '', '', '', '', ?2, ?3)",
        params![t0().unix_timestamp() + 21 * 60, mac20, vec![9u8; 32]],
    )
    .unwrap();
    drop(db);
    let v = store.audit_verify(&key).unwrap();
    assert_eq!(
        v.problems,
        vec![
            Tamper::Changed { seq: 5 },
            Tamper::Removed { from: 10, to: 10 },
            Tamper::Inserted { seq: 15 },
            Tamper::Inserted { seq: 21 },
        ],
        "{:?}",
        v.problems
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn records_cut_off_at_the_end_and_copied_records_are_found() {
    let (dir, store, key) = audit_fixture("tail", 10);
    let db = rusqlite::Connection::open(dir.join("conclave.db")).unwrap();
    db.execute("DELETE FROM audit_log WHERE seq >= 9", [])
        .unwrap();
    // A genuine record copied: valid MAC, but its seq repeats.
    db.execute(
        "INSERT INTO audit_log SELECT * FROM audit_log WHERE seq = 3",
        [],
    )
    .unwrap();
    drop(db);
    let v = store.audit_verify(&key).unwrap();
    assert_eq!(
        v.problems,
        vec![Tamper::Duplicated { seq: 3 }, Tamper::Head { seq: 10 }],
        "{:?}",
        v.problems
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn retention_prunes_the_oldest_records_and_the_rest_still_verifies() {
    let (dir, store, key) = audit_fixture("prune", 12);
    // Records 1..=5 are at t0+1..5 minutes.
    let pruned = store
        .audit_prune(&key, t0() + time::Duration::minutes(6))
        .unwrap();
    assert_eq!(pruned, 5);
    let v = store.audit_verify(&key).unwrap();
    assert_eq!((v.records, v.first_seq, v.last_seq), (7, 6, 12));
    assert_eq!(v.problems, vec![]);
    // The chain goes on after pruning.
    store
        .audit_append(&key, t0() + time::Duration::minutes(20), &[event(13)])
        .unwrap();
    assert_eq!(store.audit_verify(&key).unwrap().problems, vec![]);

    // Deleting the oldest kept records and moving the anchor needs the key.
    let db = rusqlite::Connection::open(dir.join("conclave.db")).unwrap();
    db.execute("DELETE FROM audit_log WHERE seq <= 7", [])
        .unwrap();
    db.execute("UPDATE audit_anchor SET first_seq = 8", [])
        .unwrap();
    drop(db);
    let v = store.audit_verify(&key).unwrap();
    assert!(v.problems.contains(&Tamper::Anchor), "{:?}", v.problems);
    let _ = std::fs::remove_dir_all(&dir);
}
