//! `conclave config check` (BSI "Sicherer Einsatz von Jitsi Meet" 3.1: after every upgrade,
//! check the configuration). A pure function from the file's TOML and the effective
//! configuration to findings:
//!
//! - **errors**: a key this version does not know (with the closest known one), a value it
//!   refuses;
//! - **warnings**: a deprecated key (with its replacement), every default that was loosened
//!   (E2EE off, an open server on the network, no lobby, weaker passwords, …);
//! - **notices**: security-relevant options added since the version the operator names.
//!
//! `serve` runs the same check on the effective configuration and logs every warning.

use std::collections::BTreeSet;
use std::fmt;

use crate::config::{AccessModeConfig, Config};

/// How bad a finding is. The order is the exit code's: notices 0, warnings 1, errors 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing; nothing to fix.
    Notice,
    /// A loosened default or a deprecated key: works, but check it.
    Warning,
    /// The server refuses to start with this.
    Error,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// The key it is about (`section.key`), or empty.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Notice => "notice",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        if self.key.is_empty() {
            write!(f, "{level}: {}", self.message)
        } else {
            write!(f, "{level}: {}: {}", self.key, self.message)
        }
    }
}

/// A key that still works under its old name.
#[derive(Debug, Clone, Copy)]
pub struct Deprecated {
    /// The old name (`section.key`).
    pub old: &'static str,
    /// What to write instead.
    pub new: &'static str,
    /// The version that renamed it.
    pub since: &'static str,
}

/// Keys renamed so far (each is also a serde alias, so old files keep working). None yet:
/// this version is the first with a package.
pub const DEPRECATED: &[Deprecated] = &[];

/// A security-relevant option and the version that added it.
#[derive(Debug, Clone, Copy)]
pub struct Added {
    /// The key (`section.key`, or `section` for a whole table).
    pub key: &'static str,
    /// The version that added it.
    pub version: &'static str,
    /// Why an operator should look at it.
    pub why: &'static str,
}

/// Security-relevant options by the version that added them (0.1.0 had no package; options
/// it had are not listed).
pub const ADDED: &[Added] = &[
    Added {
        key: "tls.acme",
        version: "0.2.0",
        why: "certificates from an ACME CA (Let's Encrypt or your own), renewed without restart",
    },
    Added {
        key: "http_listen",
        version: "0.2.0",
        why: "port 80 only redirects to HTTPS and answers ACME; no content over plain HTTP",
    },
    Added {
        key: "tls.reload_check_secs",
        version: "0.2.0",
        why: "certificate files are re-read when they change",
    },
    Added {
        key: "network.relay_only",
        version: "0.2.0",
        why: "participants reach the media port only through the built-in TURN relay, so no \
              participant address reaches the media plane",
    },
    Added {
        key: "turn",
        version: "0.2.0",
        why: "built-in STUN/TURN (UDP/TCP 3478, TLS 5349, TCP 443) with short-lived credentials",
    },
    Added {
        key: "privacy",
        version: "0.3.0",
        why: "the connection log keeps only address, room and times, deleted after \
              retention_days (14); addresses can be truncated or hashed",
    },
    Added {
        key: "audit",
        version: "0.3.0",
        why: "tamper-evident audit log of sign-ins, account changes, moderator actions, token \
              use and admin API calls; keep a copy of audit.key outside the server",
    },
    Added {
        key: "metrics",
        version: "0.3.0",
        why: "Prometheus /metrics, off by default; keep http_listen on loopback or use key_file",
    },
    Added {
        key: "accounts.mfa",
        version: "0.4.0",
        why: "second factor (authenticator app and recovery codes) for local accounts; \
              \"moderators\" or \"required\" makes accounts set one up at their next sign-in",
    },
];

/// Every key this version knows, as `section.key` paths.
pub fn known_keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    if let Ok(toml::Value::Table(t)) = toml::Value::try_from(Config::default()) {
        collect(&t, "", &mut keys);
    }
    // Options whose default is "unset" are not serialised; they are named here. A test
    // checks that every option in conclave.example.toml is known.
    for k in OPTIONAL_KEYS {
        keys.insert((*k).to_owned());
    }
    keys
}

/// Keys without a default value (`Option` fields).
const OPTIONAL_KEYS: &[&str] = &[
    "http_listen",
    "media_bind_ip",
    "public_ip",
    "public_url",
    "tls.cert",
    "tls.key",
    "tls.acme.directory_ca_file",
    "api.admin_key_file",
    "turn.host",
    "tokens.secret",
    "tokens.secret_file",
    "tokens.public_key_file",
    "tokens.private_key_file",
    "tokens.key_id",
    "tokens.jwks_file",
    "tokens.jwks_url",
    "tokens.jwks_ca_file",
    "audit.key_file",
    "metrics.http_listen",
    "metrics.key_file",
];

fn collect(t: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (k, v) in t {
        let path = join(prefix, k);
        match v {
            toml::Value::Table(sub) => {
                out.insert(path.clone());
                collect(sub, &path, out);
            }
            _ => {
                out.insert(path);
            }
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Keys in `file` this version does not know, each with the closest known one.
pub fn unknown_keys(file: &toml::Table) -> Vec<Finding> {
    let known = known_keys();
    let deprecated: BTreeSet<&str> = DEPRECATED.iter().map(|d| d.old).collect();
    let mut out = Vec::new();
    walk_unknown(file, "", &known, &deprecated, &mut out);
    out
}

fn walk_unknown(
    t: &toml::Table,
    prefix: &str,
    known: &BTreeSet<String>,
    deprecated: &BTreeSet<&str>,
    out: &mut Vec<Finding>,
) {
    for (k, v) in t {
        let path = join(prefix, k);
        if deprecated.contains(path.as_str()) {
            continue;
        }
        if !known.contains(&path) {
            let siblings = known.iter().filter(|p| parent(p) == prefix);
            let best = siblings
                .map(|p| (distance(p.rsplit('.').next().unwrap_or(p), k), p))
                .min()
                .filter(|(d, _)| *d <= 3);
            let message = match best {
                Some((_, p)) => format!("unknown key (did you mean {p}?)"),
                None => "unknown key".to_owned(),
            };
            out.push(Finding {
                severity: Severity::Error,
                key: path,
                message,
            });
            continue;
        }
        if let toml::Value::Table(sub) = v {
            walk_unknown(sub, &path, known, deprecated, out);
        }
    }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('.').map_or("", |(p, _)| p)
}

/// Levenshtein distance (keys are short).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Deprecated keys present in `file`, from `table`.
pub fn deprecated_keys(file: &toml::Table, table: &[Deprecated]) -> Vec<Finding> {
    table
        .iter()
        .filter(|d| lookup(file, d.old).is_some())
        .map(|d| Finding {
            severity: Severity::Warning,
            key: d.old.to_owned(),
            message: format!(
                "deprecated since {}; write {} instead (the old name still works)",
                d.since, d.new
            ),
        })
        .collect()
}

fn lookup<'a>(t: &'a toml::Table, path: &str) -> Option<&'a toml::Value> {
    let mut parts = path.split('.');
    let mut v = t.get(parts.next()?)?;
    for p in parts {
        v = v.as_table()?.get(p)?;
    }
    Some(v)
}

/// `major.minor.patch` as numbers (missing parts are 0; junk is `None`).
pub fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let mut it = v.trim().trim_start_matches('v').split('.');
    let mut n = || -> Option<u64> { it.next().map_or(Some(0), |p| p.parse().ok()) };
    Some((n()?, n()?, n()?))
}

/// Security-relevant options added after `since` (up to this version), from `table`.
pub fn added_since(since: &str, table: &[Added]) -> Vec<Finding> {
    let Some(since) = parse_version(since) else {
        return vec![Finding {
            severity: Severity::Error,
            key: String::new(),
            message: format!("--since {since:?} is not a version like 0.1.0"),
        }];
    };
    table
        .iter()
        .filter(|a| parse_version(a.version).is_some_and(|v| v > since))
        .map(|a| Finding {
            severity: Severity::Notice,
            key: a.key.to_owned(),
            message: format!("new in {}: {}", a.version, a.why),
        })
        .collect()
}

/// Every default the effective configuration loosens.
pub fn loosened(c: &Config) -> Vec<Finding> {
    let d = Config::default();
    let mut out = Vec::new();
    let mut warn = |key: &str, message: String| {
        out.push(Finding {
            severity: Severity::Warning,
            key: key.to_owned(),
            message,
        });
    };
    let on_network = !c.listen.ip().is_loopback();
    if c.meeting.e2ee == conclave_proto::E2eeMode::Off {
        warn(
            "meeting.e2ee",
            "\"off\": the server can read audio, video and chat (default \"required\")".into(),
        );
    }
    if c.access.mode == AccessModeConfig::Open && on_network {
        warn(
            "access.mode",
            format!(
                "\"open\" on a network address ({}): anyone who reaches the server opens rooms \
                 and moderates them; BSI 2.7 asks for \"hosts\" (only signed-in users open rooms)",
                c.listen
            ),
        );
    }
    if c.access.mode != AccessModeConfig::Open && !c.access.lobby_for_guests {
        warn(
            "access.lobby_for_guests",
            "false: guests enter rooms without a moderator admitting them".into(),
        );
    }
    for (role, p, dp) in [
        ("participant", &c.access.participant, &d.access.participant),
        ("guest", &c.access.guest, &d.access.guest),
    ] {
        if p.record && !dp.record {
            warn(
                &format!("access.{role}.record"),
                "true: everyone in this role may record without a moderator's grant".into(),
            );
        }
    }
    if c.access.room_password_min_chars < d.access.room_password_min_chars {
        warn(
            "access.room_password_min_chars",
            format!(
                "{} is below the default {}",
                c.access.room_password_min_chars, d.access.room_password_min_chars
            ),
        );
    }
    if c.accounts.password_min_chars < d.accounts.password_min_chars {
        warn(
            "accounts.password_min_chars",
            format!(
                "{} is below the default {} (BSI ORP.4 asks for long passwords)",
                c.accounts.password_min_chars, d.accounts.password_min_chars
            ),
        );
    }
    if c.accounts.session_hours > d.accounts.session_hours {
        warn(
            "accounts.session_hours",
            format!(
                "{} h: sign-in sessions last longer than the default {} h",
                c.accounts.session_hours, d.accounts.session_hours
            ),
        );
    }
    if c.accounts.mfa == crate::config::MfaPolicy::Off {
        warn(
            "accounts.mfa",
            "\"off\": accounts sign in with a password alone and cannot set up an \
             authenticator app"
                .to_owned(),
        );
    }
    let (a, da) = (&c.attempts, &d.attempts);
    if a.free_failures > da.free_failures
        || a.lockout_after_failures > da.lockout_after_failures
        || a.lockout_secs < da.lockout_secs
        || a.backoff_max_secs < da.backoff_max_secs
    {
        warn(
            "attempts",
            "password guessing is throttled less than by default".into(),
        );
    }
    if c.tokens.secret.is_some() {
        warn(
            "tokens.secret",
            "the token secret is in the config file (it ends up in backups and diffs); \
             use tokens.secret_file"
                .into(),
        );
    }
    if c.tls.cert.is_none() && !c.tls.acme.enabled() && on_network {
        warn(
            "tls",
            "no certificate configured on a network address: browsers get the self-signed \
             trial certificate; set [tls.acme] domains, or tls.cert and tls.key"
                .into(),
        );
    }
    if !c.audit.enabled {
        warn(
            "audit.enabled",
            "false: sign-ins, account changes and moderator actions leave no audit record \
             (default true)"
                .into(),
        );
    }
    if c.privacy.retention_days > d.privacy.retention_days {
        warn(
            "privacy.retention_days",
            format!(
                "{}: participants' addresses are kept longer than the {} days BSI recommends",
                c.privacy.retention_days, d.privacy.retention_days
            ),
        );
    }
    if !c.privacy.hash_rooms && c.privacy.connection_log {
        warn(
            "privacy.hash_rooms",
            "false: room IDs (often meeting names) are stored in the connection log in full \
             (default true)"
                .into(),
        );
    }
    if let Some(a) = c.metrics.http_listen
        && !a.ip().is_loopback()
    {
        warn(
            "metrics.http_listen",
            format!(
                "{a} is not loopback: anyone who reaches it reads the metrics without a key; \
                 firewall it to the monitoring network, or use metrics.key_file"
            ),
        );
    }
    let log = c.log.to_ascii_lowercase();
    if log.contains("debug") || log.contains("trace") {
        warn(
            "log",
            format!("{:?} logs more about participants than \"info\"", c.log),
        );
    }
    out
}

/// The whole check of a file: its raw TOML (`Err` if it is not TOML) and, when that has no
/// errors, the effective configuration (`Err` with the reason if it is refused).
pub fn check(
    file: Result<&toml::Table, String>,
    effective: impl FnOnce() -> anyhow::Result<Config>,
    since: Option<&str>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(s) = since {
        out.extend(added_since(s, ADDED));
    }
    match file {
        Err(e) => out.push(Finding {
            severity: Severity::Error,
            key: String::new(),
            message: e,
        }),
        Ok(table) => {
            out.extend(unknown_keys(table));
            out.extend(deprecated_keys(table, DEPRECATED));
        }
    }
    if out.iter().any(|f| f.severity == Severity::Error) {
        return out;
    }
    match effective() {
        Ok(c) => out.extend(loosened(&c)),
        Err(e) => out.push(Finding {
            severity: Severity::Error,
            key: String::new(),
            message: format!("{e:#}"),
        }),
    }
    out
}

/// The exit code for `findings`: 0 clean (notices only), 1 warnings, 2 errors.
pub fn exit_code(findings: &[Finding]) -> u8 {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Error) => 2,
        Some(Severity::Warning) => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    fn load(text: &str) -> anyhow::Result<Config> {
        let dir = std::env::temp_dir().join(format!(
            "conclave-check-{}-{}",
            std::process::id(),
            text.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(&f, text).unwrap();
        let r = Config::load(Some(&f), std::iter::empty(), toml::Table::new());
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    fn run(text: &str) -> Vec<Finding> {
        let parsed = text.parse::<toml::Table>().map_err(|e| e.to_string());
        check(parsed.as_ref().map_err(Clone::clone), || load(text), None)
    }

    /// The example with every option line uncommented (section headers too).
    fn example_uncommented() -> String {
        let mut out = String::new();
        for line in include_str!("../../../conclave.example.toml").lines() {
            let Some(rest) = line.strip_prefix("# ") else {
                continue;
            };
            let is_header = rest.starts_with('[') && rest.ends_with(']') && !rest.contains(' ');
            let is_option = rest.split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            });
            if is_header || is_option {
                out.push_str(rest);
                out.push('\n');
            }
        }
        out
    }

    #[test]
    fn every_documented_option_is_known_and_every_known_option_is_documented() {
        let text = example_uncommented();
        let t = table(&text);
        assert_eq!(unknown_keys(&t), vec![], "{text}");
        let mut documented = BTreeSet::new();
        collect(&t, "", &mut documented);
        let missing: Vec<_> = known_keys().difference(&documented).cloned().collect();
        assert_eq!(
            missing,
            Vec::<String>::new(),
            "options not in conclave.example.toml"
        );
    }

    #[test]
    fn the_example_config_passes_without_warnings() {
        let text = include_str!("../../../conclave.example.toml");
        let f = run(text);
        assert_eq!(f, vec![], "{f:?}");
        assert_eq!(exit_code(&f), 0);
    }

    #[test]
    fn unknown_keys_are_errors_with_a_suggestion() {
        let f = run("listn = \"0.0.0.0:443\"\n[limits]\nmax_roomz = 5\n[nosuch]\nx = 1\n");
        let keys: Vec<&str> = f.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["limits.max_roomz", "listn", "nosuch"], "{f:?}");
        assert!(f.iter().all(|f| f.severity == Severity::Error));
        assert!(
            f[0].message.contains("did you mean limits.max_rooms"),
            "{f:?}"
        );
        assert!(f[1].message.contains("did you mean listen"), "{f:?}");
        assert_eq!(exit_code(&f), 2);
    }

    #[test]
    fn refused_values_and_bad_toml_are_errors() {
        let f = run("[meeting]\nmax_video_height = 5\n");
        assert_eq!(exit_code(&f), 2);
        assert!(f[0].message.contains("max_video_height"), "{f:?}");
        let f = run("[meeting\n");
        assert_eq!(exit_code(&f), 2, "{f:?}");
    }

    #[test]
    fn deprecated_keys_name_their_replacement() {
        let renamed = [Deprecated {
            old: "limits.rooms",
            new: "limits.max_rooms",
            since: "0.3.0",
        }];
        let t = table("[limits]\nrooms = 3\n");
        let f = deprecated_keys(&t, &renamed);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].message.contains("limits.max_rooms") && f[0].message.contains("0.3.0"));
        assert!(deprecated_keys(&table("[limits]\nmax_rooms = 3\n"), &renamed).is_empty());
        // Every real deprecation still parses (it is a serde alias).
        for d in DEPRECATED {
            assert!(known_keys().contains(d.new), "{}", d.new);
        }
    }

    #[test]
    fn options_added_since_a_version_are_listed() {
        let f = added_since("0.1.0", ADDED);
        assert!(f.iter().any(|f| f.key == "tls.acme"), "{f:?}");
        assert!(f.iter().all(|f| f.severity == Severity::Notice));
        assert_eq!(exit_code(&f), 0);
        let since_02 = added_since("0.2.0", ADDED);
        assert!(since_02.iter().any(|f| f.key == "audit"), "{since_02:?}");
        assert!(
            !since_02.iter().any(|f| f.key == "tls.acme"),
            "{since_02:?}"
        );
        assert!(added_since(env!("CARGO_PKG_VERSION"), ADDED).is_empty());
        assert_eq!(exit_code(&added_since("banana", ADDED)), 2);
        for a in ADDED {
            assert!(known_keys().contains(a.key), "{}", a.key);
            assert!(parse_version(a.version) <= parse_version(env!("CARGO_PKG_VERSION")));
        }
    }

    #[test]
    fn each_loosened_default_is_a_warning() {
        let cases = [
            ("[meeting]\ne2ee = \"off\"\n", "meeting.e2ee"),
            (
                "listen = \"0.0.0.0:443\"\n[tls]\ncert = \"/c\"\nkey = \"/k\"\n",
                "access.mode",
            ),
            (
                "[access]\nmode = \"hosts\"\nlobby_for_guests = false\n",
                "access.lobby_for_guests",
            ),
            ("[access.guest]\nrecord = true\n", "access.guest.record"),
            (
                "[access]\nroom_password_min_chars = 4\n",
                "access.room_password_min_chars",
            ),
            (
                "[accounts]\npassword_min_chars = 8\n",
                "accounts.password_min_chars",
            ),
            (
                "[accounts]\nsession_hours = 720\n",
                "accounts.session_hours",
            ),
            ("[attempts]\nlockout_after_failures = 1000\n", "attempts"),
            ("log = \"debug\"\n", "log"),
            (
                "listen = \"0.0.0.0:443\"\n[access]\nmode = \"hosts\"\n",
                "tls",
            ),
        ];
        for (text, key) in cases {
            let t = table(text);
            // Effective config without reading files (cert paths need not exist here).
            let c: Config = toml::Value::Table(t.clone()).try_into().unwrap();
            let f = loosened(&c);
            assert!(
                f.iter()
                    .any(|f| f.key == key && f.severity == Severity::Warning),
                "{text}: {f:?}"
            );
            assert_eq!(exit_code(&f), 1, "{text}");
        }
        let c: Config = toml::Value::Table(table(
            "[tokens]\nsecret = \"0123456789abcdef0123456789abcdef\"\n",
        ))
        .try_into()
        .unwrap();
        assert!(loosened(&c).iter().any(|f| f.key == "tokens.secret"));
        // A production-like config that loosens nothing.
        let c: Config = toml::Value::Table(table(
            "listen = \"0.0.0.0:443\"\n[access]\nmode = \"hosts\"\n[tls.acme]\ndomains = [\"meet.example.org\"]\nchallenge = \"http-01\"\n",
        ))
        .try_into()
        .unwrap();
        assert_eq!(loosened(&c), vec![]);
    }
}
