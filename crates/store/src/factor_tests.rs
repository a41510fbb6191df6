//! Second factors on a real SQLite file: RFC 6238 vectors, enrolment, the replay guard,
//! sealed secrets, recovery codes, session upgrade, roles.

use time::macros::datetime;

use super::*;

const T0: OffsetDateTime = datetime!(2026-11-22 10:00 UTC);
const PW: &str = "violet tractor umbrella";

struct Dir(std::path::PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("conclave-factors-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn setup(tag: &str) -> (Dir, Store, FactorKey, Account) {
    let dir = Dir::new(tag);
    let store = Store::open(&dir.0, StoreOptions::default()).unwrap();
    let key = FactorKey::load_or_create(&dir.0.join(FACTORS_KEY_FILE), &store).unwrap();
    let acc = store.add_account("ada", "Ada", PW, T0).unwrap();
    (dir, store, key, acc)
}

fn unbase32(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {c}"),
        };
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn code_at(secret: &[u8], t: OffsetDateTime) -> String {
    format!("{:06}", hotp(secret, totp_step(t) as u64, TOTP_DIGITS))
}

#[test]
fn rfc_6238_appendix_b_sha1_vectors_and_rfc_4648_base32() {
    let secret = b"12345678901234567890";
    for (t, want) in [
        (59, 94287082),
        (1111111109, 7081804),
        (1111111111, 14050471),
        (1234567890, 89005924),
        (2000000000, 69279037),
        (20000000000, 65353130),
    ] {
        assert_eq!(hotp(secret, t / 30, 8), want, "T = {t}");
    }
    assert_eq!(base32(secret), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    assert_eq!(base32(b"f"), "MY");
    assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
}

#[test]
fn enrolment_needs_a_code_and_a_code_works_once() {
    let (_d, store, key, acc) = setup("enrol");
    let e = store.begin_totp(&key, &acc, "Conclave Test", T0).unwrap();
    assert_eq!(e.secret.len(), 32, "160 bits in base32");
    assert!(
        e.uri
            .starts_with("otpauth://totp/Conclave%20Test%3Aada?secret="),
        "{}",
        e.uri
    );
    let secret = unbase32(&e.secret);
    // Unconfirmed: it signs nobody in, and the account has no factor yet.
    assert!(matches!(
        store.verify_totp(&key, acc.id, &code_at(&secret, T0), T0),
        Err(FactorError::NoTotp)
    ));
    assert!(!store.factors(acc.id).unwrap().totp);
    assert!(matches!(
        store.confirm_totp(&key, acc.id, "000000x", T0),
        Err(FactorError::WrongCode)
    ));
    let codes = store
        .confirm_totp(&key, acc.id, &code_at(&secret, T0), T0)
        .unwrap();
    assert_eq!(codes.len(), RECOVERY_CODES);
    assert_eq!(
        store.factors(acc.id).unwrap(),
        Factors {
            totp: true,
            recovery_codes_left: RECOVERY_CODES,
            passkeys: 0,
        }
    );
    // A second enrolment is refused while one is confirmed.
    assert!(matches!(
        store.begin_totp(&key, &acc, "Conclave Test", T0),
        Err(FactorError::AlreadyEnrolled)
    ));
    // The code that confirmed is spent (same step), and so is any older step.
    assert!(matches!(
        store.verify_totp(&key, acc.id, &code_at(&secret, T0), T0),
        Err(FactorError::Reused)
    ));
    let t1 = T0 + time::Duration::seconds(30);
    let c1 = code_at(&secret, t1);
    // The next step's code, given 29 s early (clock skew of one step), works once.
    store.verify_totp(&key, acc.id, &c1, T0).unwrap();
    assert!(matches!(
        store.verify_totp(&key, acc.id, &c1, t1),
        Err(FactorError::Reused)
    ));
    // Two steps away is outside the window.
    let t3 = T0 + time::Duration::seconds(90);
    assert!(matches!(
        store.verify_totp(
            &key,
            acc.id,
            &code_at(&secret, t3),
            T0 + time::Duration::seconds(30)
        ),
        Err(FactorError::WrongCode)
    ));
    // Spaces are allowed; a code of another length is not.
    let t4 = T0 + time::Duration::seconds(120);
    let c4 = code_at(&secret, t4);
    assert!(matches!(
        store.verify_totp(&key, acc.id, &c4[..5], t4),
        Err(FactorError::WrongCode)
    ));
    store
        .verify_totp(&key, acc.id, &format!("{} {}", &c4[..3], &c4[3..]), t4)
        .unwrap();
}

#[test]
fn secrets_are_sealed_with_the_key_file_and_bound_to_the_account() {
    let (d, store, key, acc) = setup("sealed");
    let e = store.begin_totp(&key, &acc, "C", T0).unwrap();
    let secret = unbase32(&e.secret);
    store
        .confirm_totp(&key, acc.id, &code_at(&secret, T0), T0)
        .unwrap();
    // Neither the secret nor its base32 is in any database file.
    for f in std::fs::read_dir(&d.0).unwrap() {
        let path = f.unwrap().path();
        if path.file_name().unwrap() == FACTORS_KEY_FILE {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_slice())
                && !bytes
                    .windows(e.secret.len())
                    .any(|w| w == e.secret.as_bytes()),
            "{} holds the secret",
            path.display()
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.0.join(FACTORS_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Another key opens nothing; the sealed secret copied to another account opens nothing.
    let other = FactorKey::from_bytes(&[7u8; 32]).unwrap();
    let t1 = T0 + time::Duration::seconds(30);
    assert!(matches!(
        store.verify_totp(&other, acc.id, &code_at(&secret, t1), t1),
        Err(FactorError::Store(Error::FactorSealBroken(_)))
    ));
    let bob = store.add_account("bob", "Bob", PW, T0).unwrap();
    store
        .lock()
        .execute(
            "INSERT INTO totp (user_id, sealed, created_at, confirmed_at)
             SELECT ?1, sealed, created_at, confirmed_at FROM totp WHERE user_id = ?2",
            [bob.id.0, acc.id.0],
        )
        .unwrap();
    assert!(matches!(
        store.verify_totp(&key, bob.id, &code_at(&secret, t1), t1),
        Err(FactorError::Store(Error::FactorSealBroken(_)))
    ));
    // A missing key while secrets exist is refused, not silently replaced.
    drop(key);
    std::fs::remove_file(d.0.join(FACTORS_KEY_FILE)).unwrap();
    assert!(matches!(
        FactorKey::load_or_create(&d.0.join(FACTORS_KEY_FILE), &store),
        Err(Error::FactorKeyMissing { accounts: 2, .. })
    ));
    assert!(!d.0.join(FACTORS_KEY_FILE).exists());
}

#[test]
fn recovery_codes_work_once_each_and_are_stored_hashed() {
    let (_d, store, key, acc) = setup("recovery");
    let e = store.begin_totp(&key, &acc, "C", T0).unwrap();
    let codes = store
        .confirm_totp(&key, acc.id, &code_at(&unbase32(&e.secret), T0), T0)
        .unwrap();
    let distinct: std::collections::BTreeSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), RECOVERY_CODES);
    for c in &codes {
        assert_eq!(c.len(), 11, "{c}");
        assert_eq!(&c[5..6], "-");
    }
    // Typed in capitals without the dash: still the code.
    let typed = codes[0].replace('-', "").to_uppercase();
    assert_eq!(store.use_recovery_code(acc.id, &typed, T0).unwrap(), 9);
    assert!(matches!(
        store.use_recovery_code(acc.id, &codes[0], T0),
        Err(FactorError::WrongRecoveryCode)
    ));
    assert!(matches!(
        store.use_recovery_code(acc.id, "abcde-fghjk", T0),
        Err(FactorError::WrongRecoveryCode)
    ));
    // Another account cannot spend them.
    let bob = store.add_account("bob", "Bob", PW, T0).unwrap();
    assert!(matches!(
        store.use_recovery_code(bob.id, &codes[1], T0),
        Err(FactorError::WrongRecoveryCode)
    ));
    let stored: Vec<Vec<u8>> = {
        let conn = store.lock();
        let mut st = conn
            .prepare("SELECT code_hash FROM recovery_codes")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    for c in &codes {
        assert!(
            !stored
                .iter()
                .any(|h| h.windows(5).any(|w| w == &c.as_bytes()[..5]))
        );
    }
    // New codes replace the old ones; a reset removes everything.
    let fresh = store.new_recovery_codes(acc.id, T0).unwrap();
    assert!(store.use_recovery_code(acc.id, &codes[2], T0).is_err());
    assert_eq!(store.use_recovery_code(acc.id, &fresh[0], T0).unwrap(), 9);
    assert!(store.reset_factors(acc.id).unwrap());
    assert_eq!(store.factors(acc.id).unwrap(), Factors::default());
    assert!(!store.reset_factors(acc.id).unwrap());
    // Removing the account removes its factors (foreign keys cascade).
    let e = store.begin_totp(&key, &acc, "C", T0).unwrap();
    drop(e);
    store.remove("ada").unwrap();
    let n: i64 = store
        .lock()
        .query_row("SELECT count(*) FROM totp", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn a_session_is_upgraded_to_a_new_token_and_roles_are_stored() {
    let (_d, store, _key, acc) = setup("upgrade");
    assert_eq!(acc.role, AccountRole::Moderator);
    let half = store.create_session(acc.id, T0).unwrap();
    assert_eq!(
        store.session(&half.token, T0).unwrap().unwrap().1,
        SessionFactor::Password
    );
    let full = store
        .upgrade_session(&half.token, SessionFactor::Totp, T0)
        .unwrap()
        .unwrap();
    assert_ne!(full.token, half.token);
    assert_eq!(store.session(&half.token, T0).unwrap(), None);
    let (a, f) = store.session(&full.token, T0).unwrap().unwrap();
    assert_eq!((a.id, f), (acc.id, SessionFactor::Totp));
    assert_eq!(
        store
            .upgrade_session(&half.token, SessionFactor::Totp, T0)
            .unwrap(),
        None
    );
    store.set_role("ada", AccountRole::Member).unwrap();
    assert_eq!(
        store.account("ada").unwrap().unwrap().role,
        AccountRole::Member
    );
    assert!(matches!(
        store.set_role("nobody", AccountRole::Member),
        Err(Error::UnknownUser(_))
    ));
    assert!(
        "admin"
            .parse::<AccountRole>()
            .unwrap_err()
            .contains("\"admin\"")
    );
}
