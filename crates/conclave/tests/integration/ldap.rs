//! Sign-in against a real OpenLDAP `slapd` (Debian's, started by
//! `tests/fixtures/slapd/start.sh` on loopback): bind as the user over StartTLS and LDAPS,
//! groups mapped to roles, refused outside the allowed groups, filter injection finds
//! nobody, empty passwords never reach the directory, and the HTTPS sign-in end to end.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{https, start};
use conclave::ldap::{Directory, DirectoryError, LdapConfig};
use conclave_store::AccountRole;

const JSON: (&str, &str) = ("content-type", "application/json");

/// A running slapd; killed on drop.
struct Slapd {
    dir: PathBuf,
    port: u16,
    pid: String,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg(&self.pid).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port_pair() -> u16 {
    loop {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if port < 65535 && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

fn slapd() -> Slapd {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/slapd/start.sh");
    let mut last = String::new();
    for attempt in 0..3 {
        let dir = std::env::temp_dir().join(format!(
            "conclave-slapd-{}-{attempt}-{}",
            std::process::id(),
            rand_suffix()
        ));
        let port = free_port_pair();
        let out = std::process::Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .arg(port.to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if let Some(pid) = stdout.trim().strip_prefix("ready pid=") {
            return Slapd {
                dir,
                port,
                pid: pid.to_owned(),
            };
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        let _ = std::fs::remove_dir_all(&dir);
    }
    panic!("slapd did not start: {last}");
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
}

fn config(s: &Slapd, ldaps: bool) -> LdapConfig {
    let url = if ldaps {
        format!("ldaps://127.0.0.1:{}", s.port + 1)
    } else {
        format!("ldap://127.0.0.1:{}", s.port)
    };
    let c: LdapConfig = toml::from_str(&format!(
        r#"
        name = "corp"
        url = "{url}"
        starttls = {starttls}
        ca_file = "{ca}"
        bind_dn = "uid={{username}},ou=people,dc=example,dc=org"
        user_base = "ou=people,dc=example,dc=org"
        group_base = "ou=groups,dc=example,dc=org"
        allowed_groups = ["conclave-users"]
        moderator_groups = ["cn=conclave-moderators,ou=groups,dc=example,dc=org"]
        "#,
        starttls = !ldaps,
        ca = s.dir.join("ca.pem").display(),
    ))
    .unwrap();
    conclave::ldap::validate(std::slice::from_ref(&c)).unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_decides_who_signs_in_and_who_moderates() {
    let s = slapd();
    for ldaps in [false, true] {
        let d = Directory::new(config(&s, ldaps)).unwrap();
        let alice = d.authenticate("alice", "alice-secret-pw").await.unwrap();
        assert_eq!(alice.dn, "uid=alice,ou=people,dc=example,dc=org");
        assert_eq!(alice.display_name, "Alice Adler");
        assert_eq!(d.role(&alice), Some(AccountRole::Moderator), "{alice:?}");
        let bob = d.authenticate("bob", "bob-secret-pw").await.unwrap();
        assert_eq!(d.role(&bob), Some(AccountRole::Member), "{bob:?}");
        // Carol's password is right, but she is in no allowed group.
        let carol = d.authenticate("carol", "carol-secret-pw").await.unwrap();
        assert_eq!(d.role(&carol), None, "{carol:?}");
        assert!(matches!(
            d.authenticate("alice", "bob-secret-pw").await,
            Err(DirectoryError::InvalidCredentials)
        ));
        // An empty password would be an unauthenticated bind: never sent.
        assert!(matches!(
            d.authenticate("alice", "").await,
            Err(DirectoryError::Empty)
        ));
        assert!(matches!(
            d.authenticate("", "x").await,
            Err(DirectoryError::Empty)
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_injection_finds_nobody() {
    let s = slapd();
    let d = Directory::new(config(&s, false)).unwrap();
    assert_eq!(d.user_filter("*)(uid=*"), r"(uid=\2a\29\28uid=\2a)");
    assert_eq!(
        d.bind_dn("x,ou=groups"),
        r"uid=x\2cou\3dgroups,ou=people,dc=example,dc=org"
    );
    let mut ldap = d.connect().await.unwrap();
    d.bind(&mut ldap, "alice", "alice-secret-pw").await.unwrap();
    // The search works for a real name ...
    let bob = d.find_user(&mut ldap, "bob").await.unwrap().unwrap();
    assert_eq!(bob.dn, "uid=bob,ou=people,dc=example,dc=org");
    // ... and the injected ones find nothing (unescaped, `(uid=*)(uid=*)` would match all).
    for evil in ["*)(uid=*", "*", "alice)(|(uid=*", "\\2a"] {
        assert!(
            d.find_user(&mut ldap, evil).await.unwrap().is_none(),
            "{evil:?} found someone"
        );
    }
    let _ = ldap.unbind().await;
    // Through the whole sign-in: the injected name with a real password binds nobody.
    assert!(matches!(
        d.authenticate("*)(uid=*", "alice-secret-pw").await,
        Err(DirectoryError::InvalidCredentials)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_required_and_verified() {
    let s = slapd();
    // Plain ldap:// without StartTLS is refused by the configuration.
    let mut plain = config(&s, false);
    plain.starttls = false;
    let e = conclave::ldap::validate(&[plain]).unwrap_err();
    assert!(e.contains("in the clear"), "{e}");
    // A CA that did not sign the directory's certificate: unavailable, never bound.
    let other = s.dir.join("other-ca.pem");
    let ca = rcgen::generate_simple_self_signed(vec!["other".into()]).unwrap();
    std::fs::write(&other, ca.cert.pem()).unwrap();
    for ldaps in [false, true] {
        let mut c = config(&s, ldaps);
        c.ca_file = Some(other.clone());
        let d = Directory::new(c).unwrap();
        match d.authenticate("alice", "alice-secret-pw").await {
            Err(DirectoryError::Unavailable(e)) => {
                assert!(e.to_lowercase().contains("certificate"), "{e}")
            }
            other => panic!("expected a certificate failure, got {other:?}"),
        }
    }
    // A directory that does not answer: a timeout, not a hang.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = config(&s, true);
    c.url = format!("ldaps://127.0.0.1:{}", silent.local_addr().unwrap().port());
    c.timeout_secs = 1;
    let d = Directory::new(c).unwrap();
    let t = std::time::Instant::now();
    assert!(matches!(
        d.authenticate("alice", "alice-secret-pw").await,
        Err(DirectoryError::Unavailable(_))
    ));
    assert!(t.elapsed() < Duration::from_secs(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_sign_in_through_the_directory() {
    let s = slapd();
    let ldap = config(&s, false);
    let srv = start(move |c| c.ldap = vec![ldap]).await;
    let sign_in = |user: &str, pw: &str| {
        let body = serde_json::json!({"username": user, "password": pw}).to_string();
        let url = srv.url.clone();
        async move { https(&url, "POST", "/api/session", &[JSON], &body).await }
    };
    let r = sign_in("Alice", "alice-secret-pw").await;
    assert_eq!(r.status, 200, "{r:?}");
    let me: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["name"], "Alice Adler");
    assert_eq!(me["role"], "moderator");
    let r = sign_in("bob", "bob-secret-pw").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains(r#""role":"member""#), "{}", r.body);
    let r = sign_in("carol", "carol-secret-pw").await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.body.contains("not_allowed"), "{}", r.body);
    let wrong = sign_in("alice", "wrong").await;
    let unknown = sign_in("nobody", "wrong").await;
    assert_eq!(wrong.status, 401);
    assert_eq!((wrong.status, &wrong.body), (unknown.status, &unknown.body));
    // The account row is the directory's: listed with its source, and no local password
    // can be set for it.
    let store =
        conclave_store::Store::open(&srv.dir, conclave_store::StoreOptions::default()).unwrap();
    let a = store.account("alice").unwrap().unwrap();
    assert_eq!(a.source, "ldap:corp");
    assert!(
        store
            .set_password(
                "alice",
                "violet staple orbit canyon",
                conclave_store::OffsetDateTime::now_utc()
            )
            .is_err()
    );
}
