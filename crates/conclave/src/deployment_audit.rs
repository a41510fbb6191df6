//! `conclave audit`: check a deployment against the BSI recommendation ("Sicherer Einsatz von
//! Jitsi Meet") and our own defaults. Each check returns findings with a severity and what to
//! do; the command prints them (or JSON) and exits 0 (nothing above info), 1 (low or medium)
//! or 2 (high).
//!
//! Local checks read the configuration, the data directory (file modes, certificate,
//! accounts) and never change anything. `--url` adds the checks only the outside can make:
//! the certificate and TLS version a client gets, the security headers, and whether
//! `/metrics` or the admin API answer the public.

use std::path::Path;

use conclave_store::{OffsetDateTime, Store};
use serde::Serialize;

use crate::config::{AccessModeConfig, Config, MfaPolicy};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing to fix.
    Info,
    /// Hygiene.
    Low,
    /// Weaker than recommended.
    Medium,
    /// Fix before real meetings.
    High,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable ID, e.g. `config.access_mode`.
    pub id: &'static str,
    /// How bad.
    pub severity: Severity,
    /// What was found.
    pub message: String,
    /// How to fix it (empty for info).
    pub fix: String,
    /// The recommendation it comes from (BSI section or "Conclave default").
    pub reference: &'static str,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Info => "info",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
        };
        write!(f, "[{sev}] {}: {}", self.id, self.message)?;
        if !self.fix.is_empty() {
            write!(f, "\n       fix: {}", self.fix)?;
        }
        write!(f, "\n       ({})", self.reference)
    }
}

/// The exit code for these findings: 0 nothing above info, 1 low/medium, 2 high.
pub fn exit_code(findings: &[Finding]) -> u8 {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::High) => 2,
        Some(Severity::Low | Severity::Medium) => 1,
        _ => 0,
    }
}

fn finding(
    id: &'static str,
    severity: Severity,
    message: impl Into<String>,
    fix: impl Into<String>,
    reference: &'static str,
) -> Finding {
    Finding {
        id,
        severity,
        message: message.into(),
        fix: fix.into(),
        reference,
    }
}

/// The configuration: who opens rooms, lobby, E2EE, passwords, retention, audit, third-party
/// URLs, what listens where.
pub fn config_findings(c: &Config) -> Vec<Finding> {
    use Severity::*;
    let mut out = Vec::new();
    let on_network = !c.listen.ip().is_loopback();
    match c.access.mode {
        AccessModeConfig::Open => out.push(finding(
            "config.access_mode",
            if on_network { Medium } else { Low },
            "access.mode = \"open\": anyone who reaches the server opens rooms and moderates them",
            "set access.mode = \"hosts\" (only accounts and moderator tokens open rooms) or \"closed\"",
            "BSI Jitsi 2.7 (authentication), 3.2",
        )),
        AccessModeConfig::Hosts | AccessModeConfig::Closed => {}
    }
    if !c.access.lobby_for_guests && c.access.mode != AccessModeConfig::Closed {
        out.push(finding(
            "config.lobby",
            Low,
            "access.lobby_for_guests = false: guests enter rooms without a moderator letting them in",
            "set access.lobby_for_guests = true",
            "BSI Jitsi 2.8 (lobby)",
        ));
    }
    if c.meeting.e2ee == conclave_proto::E2eeMode::Off {
        out.push(finding(
            "config.e2ee",
            High,
            "meeting.e2ee = \"off\": the server can read audio, video and chat",
            "set meeting.e2ee = \"required\" (the default)",
            "Conclave default; BSI Jitsi 2.10 (E2EE)",
        ));
    }
    match c.accounts.mfa {
        MfaPolicy::Off => out.push(finding(
            "config.mfa",
            Medium,
            "accounts.mfa = \"off\": accounts sign in with a password alone",
            "set accounts.mfa = \"moderators\" or \"required\"",
            "BSI ORP.4.A21 (multi-factor authentication); Conclave R12",
        )),
        MfaPolicy::Optional => out.push(finding(
            "config.mfa",
            Info,
            "accounts.mfa = \"optional\": moderators may sign in with a password alone",
            "set accounts.mfa = \"moderators\" so every account that opens rooms uses an \
             authenticator app",
            "BSI ORP.4.A21 (multi-factor authentication); Conclave R12",
        )),
        MfaPolicy::Moderators | MfaPolicy::Required => {}
    }
    if c.access.room_password_min_chars < 8 {
        out.push(finding(
            "config.room_passwords",
            Low,
            format!(
                "access.room_password_min_chars = {}: short room passwords can be guessed",
                c.access.room_password_min_chars
            ),
            "set access.room_password_min_chars to 8 or more",
            "BSI Jitsi 2.8 (room passwords)",
        ));
    }
    if c.accounts.password_min_chars < 12 {
        out.push(finding(
            "config.account_passwords",
            Medium,
            format!(
                "accounts.password_min_chars = {}: BSI recommends long passwords",
                c.accounts.password_min_chars
            ),
            "set accounts.password_min_chars to 12 or more (the default)",
            "BSI IT-Grundschutz ORP.4.A23",
        ));
    }
    if c.privacy.connection_log && c.privacy.retention_days > 14 {
        out.push(finding(
            "config.retention",
            Medium,
            format!(
                "privacy.retention_days = {}: addresses are kept longer than 14 days",
                c.privacy.retention_days
            ),
            "set privacy.retention_days = 14 or less",
            "BSI Jitsi 2.12 (logging), GDPR Art. 5(1)(e)",
        ));
    }
    if !c.audit.enabled {
        out.push(finding(
            "config.audit",
            High,
            "audit.enabled = false: sign-ins, account changes and moderator actions leave no record",
            "set audit.enabled = true (the default)",
            "BSI OPS.1.1.5 (logging)",
        ));
    }
    if let Some(a) = c.metrics.http_listen
        && !a.ip().is_loopback()
    {
        out.push(finding(
            "config.metrics_public",
            Medium,
            format!("metrics.http_listen = {a}: metrics without a key on a network address"),
            "bind it to 127.0.0.1, firewall it to the monitoring host, or use metrics.key_file",
            "Conclave default",
        ));
    }
    for (what, url) in [
        ("tokens.jwks_url", c.tokens.jwks_url.as_deref()),
        (
            "tls.acme.directory",
            c.tls
                .acme
                .enabled()
                .then_some(c.tls.acme.directory.as_str()),
        ),
    ] {
        if let Some(u) = url {
            out.push(finding(
                "config.third_party",
                Info,
                format!("{what} = {u}: the server contacts this URL (participants' browsers never contact a third party: CSP default-src 'self')"),
                "",
                "BSI Jitsi 2.11 (third-party services)",
            ));
        }
    }
    if c.tokens.secret.is_some() {
        out.push(finding(
            "config.inline_secret",
            Medium,
            "tokens.secret is in the config file (it ends up in backups and diffs)",
            "move it to a file and set tokens.secret_file",
            "Conclave default",
        ));
    }
    if c.log.to_ascii_lowercase().contains("trace") {
        out.push(finding(
            "config.log_level",
            Low,
            format!("log = {:?} is very verbose", c.log),
            "use log = \"info\"",
            "BSI Jitsi 2.12 (logging)",
        ));
    }
    let mut ports = vec![
        format!("HTTPS {}", c.listen),
        format!("media UDP {}", c.media_bind()),
    ];
    if let Some(h) = c.http_listen {
        ports.push(format!("HTTP {h} (redirect and ACME only)"));
    }
    if c.turn.enabled {
        ports.push("TURN (see [turn])".into());
    }
    if let Some(m) = c.metrics.http_listen {
        ports.push(format!("metrics {m}"));
    }
    out.push(finding(
        "config.ports",
        Info,
        format!("listening: {}", ports.join(", ")),
        "",
        "docs/operations.md, firewall table",
    ));
    out
}

/// File modes of the data directory and every secret: nothing readable by others.
#[cfg(unix)]
pub fn file_findings(c: &Config) -> Vec<Finding> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| m.permissions().mode() & 0o777)
    };
    if let Some(m) = mode(&c.data_dir)
        && m & 0o007 != 0
    {
        out.push(finding(
            "files.data_dir",
            Severity::High,
            format!(
                "{} has mode {m:04o}: others can enter it",
                c.data_dir.display()
            ),
            format!("chmod 0700 {}", c.data_dir.display()),
            "BSI SYS.1.3.A10 (file permissions)",
        ));
    }
    let mut secrets: Vec<std::path::PathBuf> = vec![
        c.data_dir.join(conclave_store::DB_FILE),
        c.audit_key_file(),
        c.pseudonym_keys_file(),
        c.data_dir.join("acme/account.json"),
        c.data_dir.join("acme/key.pem"),
        c.data_dir.join("tls/self-signed-key.pem"),
    ];
    secrets.extend(c.tls.key.clone());
    secrets.extend(c.api.admin_key_file.clone());
    secrets.extend(c.metrics.key_file.clone());
    secrets.extend(c.tokens.secret_file.clone());
    secrets.extend(c.tokens.private_key_file.clone());
    for p in secrets {
        let Some(m) = mode(&p) else { continue };
        if m & 0o007 != 0 {
            out.push(finding(
                "files.secret_mode",
                Severity::High,
                format!(
                    "{} has mode {m:04o}: every user on the host can read it",
                    p.display()
                ),
                format!(
                    "chmod 0600 {} (or 0640 with the service's group)",
                    p.display()
                ),
                "BSI SYS.1.3.A10 (file permissions)",
            ));
        } else if m & 0o020 != 0 {
            out.push(finding(
                "files.secret_mode",
                Severity::Medium,
                format!("{} has mode {m:04o}: its group can change it", p.display()),
                format!("chmod g-w {}", p.display()),
                "BSI SYS.1.3.A10 (file permissions)",
            ));
        }
    }
    out
}

/// File modes are a Unix matter.
#[cfg(not(unix))]
pub fn file_findings(_: &Config) -> Vec<Finding> {
    Vec::new()
}

/// The certificate the server would present (files, ACME, or the self-signed one).
pub fn certificate_findings(c: &Config, now: OffsetDateTime) -> Vec<Finding> {
    let path = match &c.tls.cert {
        Some(p) => p.clone(),
        None if c.tls.acme.enabled() => c.data_dir.join("acme/cert.pem"),
        None => c.data_dir.join("tls/self-signed-cert.pem"),
    };
    let Ok(pem) = std::fs::read(&path) else {
        return vec![finding(
            "tls.certificate",
            if c.tls.acme.enabled() {
                Severity::Info
            } else {
                Severity::Low
            },
            format!("no certificate at {} yet", path.display()),
            "start the server once (it makes or obtains one)",
            "BSI TR-02102-2",
        )];
    };
    cert_pem_findings(
        &pem,
        &path.display().to_string(),
        c.tls.cert.is_none() && !c.tls.acme.enabled(),
        !c.listen.ip().is_loopback(),
        now,
    )
}

/// Findings about a PEM certificate chain's leaf.
fn cert_pem_findings(
    pem: &[u8],
    name: &str,
    self_signed: bool,
    on_network: bool,
    now: OffsetDateTime,
) -> Vec<Finding> {
    let Some(der) = rustls_pem_first(pem) else {
        return vec![finding(
            "tls.certificate",
            Severity::High,
            format!("{name} holds no PEM certificate"),
            "point tls.cert at the full chain in PEM",
            "BSI TR-02102-2",
        )];
    };
    cert_der_findings(&der, name, self_signed, on_network, now)
}

fn rustls_pem_first(pem: &[u8]) -> Option<Vec<u8>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .next()?
        .ok()
        .map(|c| c.as_ref().to_vec())
}

/// Validity, key size and trust of a leaf certificate.
pub fn cert_der_findings(
    der: &[u8],
    name: &str,
    self_signed: bool,
    on_network: bool,
    now: OffsetDateTime,
) -> Vec<Finding> {
    use x509_parser::prelude::*;
    let mut out = Vec::new();
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return vec![finding(
            "tls.certificate",
            Severity::High,
            format!("{name}: not a valid X.509 certificate"),
            "install a valid certificate",
            "BSI TR-02102-2",
        )];
    };
    let not_after = cert.validity().not_after.timestamp();
    let days_left = (not_after - now.unix_timestamp()) / 86_400;
    if days_left < 0 {
        out.push(finding(
            "tls.expired",
            Severity::High,
            format!("{name} expired {} days ago", -days_left),
            "renew it (or set [tls.acme] to renew automatically)",
            "BSI TR-02102-2",
        ));
    } else if days_left < 14 {
        out.push(finding(
            "tls.expiring",
            Severity::Medium,
            format!("{name} expires in {days_left} days"),
            "renew it (or set [tls.acme] to renew automatically)",
            "BSI TR-02102-2",
        ));
    } else {
        out.push(finding(
            "tls.validity",
            Severity::Info,
            format!("{name} is valid for {days_left} more days"),
            "",
            "BSI TR-02102-2",
        ));
    }
    if let Ok(pk) = cert.public_key().parsed() {
        match pk {
            x509_parser::public_key::PublicKey::RSA(rsa) => {
                let bits = rsa.key_size();
                if bits < 3000 {
                    out.push(finding(
                        "tls.key_size",
                        Severity::Medium,
                        format!("{name}: RSA key of {bits} bits (BSI asks for at least 3000)"),
                        "use an ECDSA P-256/P-384 key or RSA with 3072 bits or more",
                        "BSI TR-02102-2, 3.6",
                    ));
                }
            }
            x509_parser::public_key::PublicKey::EC(_) => {}
            _ => out.push(finding(
                "tls.key_type",
                Severity::High,
                format!("{name}: a key type TR-02102-2 does not list"),
                "use an ECDSA P-256/P-384 key",
                "BSI TR-02102-2, 3.6",
            )),
        }
    }
    if self_signed && on_network {
        out.push(finding(
            "tls.self_signed",
            Severity::High,
            "the self-signed trial certificate serves a network address: browsers warn, and people learn to click warnings away",
            "set [tls.acme] domains, or tls.cert and tls.key",
            "BSI Jitsi 2.2 (TLS)",
        ));
    }
    out.push(finding(
        "tls.policy",
        Severity::Info,
        "TLS 1.3/1.2, AES-GCM with ECDHE on P-256/P-384, EMS: fixed by the binary, nothing to loosen",
        "",
        "BSI TR-02102-2",
    ));
    out
}

/// Accounts: never used, long unused, without expiry (BSI 3.2 asks that accounts end).
pub fn account_findings(
    store: &Store,
    mfa: crate::config::MfaPolicy,
    now: OffsetDateTime,
) -> Vec<Finding> {
    let Ok(accounts) = store.list_accounts() else {
        return vec![finding(
            "accounts.read",
            Severity::Medium,
            "the account database cannot be read",
            "check the data directory and run as the service user",
            "",
        )];
    };
    let active: Vec<_> = accounts
        .iter()
        .filter(|a| a.status == conclave_store::AccountStatus::Active && !a.is_expired(now))
        .collect();
    let mut out = Vec::new();
    let list = |v: &[&&conclave_store::Account]| {
        v.iter()
            .map(|a| a.username.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let month = time::Duration::days(30);
    let never: Vec<_> = active
        .iter()
        .filter(|a| a.last_login_at.is_none() && now - a.created_at > month)
        .collect();
    if !never.is_empty() {
        out.push(finding(
            "accounts.never_used",
            Severity::Low,
            format!(
                "{} accounts never signed in in more than 30 days: {}",
                never.len(),
                list(&never)
            ),
            "remove them (conclave user remove) or let them expire (conclave user expire)",
            "BSI Jitsi 3.2 (accounts)",
        ));
    }
    let stale: Vec<_> = active
        .iter()
        .filter(|a| a.last_login_at.is_some_and(|t| now - t > month * 3))
        .collect();
    if !stale.is_empty() {
        out.push(finding(
            "accounts.unused",
            Severity::Low,
            format!(
                "{} accounts unused for more than 90 days: {}",
                stale.len(),
                list(&stale)
            ),
            "disable or remove them",
            "BSI Jitsi 3.2 (accounts)",
        ));
    }
    // Moderators open rooms: each without an authenticator app is one password from a
    // stolen host seat (the policy makes them set one up at their next sign-in, if it asks).
    let unprotected: Vec<_> = active
        .iter()
        .filter(|a| a.role == conclave_store::AccountRole::Moderator)
        .filter(|a| store.factors(a.id).is_ok_and(|f| !f.totp))
        .collect();
    let enforced = matches!(
        mfa,
        crate::config::MfaPolicy::Moderators | crate::config::MfaPolicy::Required
    );
    if !unprotected.is_empty() && mfa != crate::config::MfaPolicy::Off {
        out.push(finding(
            "accounts.no_second_factor",
            if enforced {
                Severity::Info
            } else {
                Severity::Low
            },
            format!(
                "{} moderator accounts have no authenticator app{}: {}",
                unprotected.len(),
                if enforced {
                    " yet (they must set one up at their next sign-in)"
                } else {
                    ""
                },
                list(&unprotected)
            ),
            if enforced {
                ""
            } else {
                "set accounts.mfa = \"moderators\", or ask them to set up an app"
            },
            "BSI ORP.4.A21 (multi-factor authentication); Conclave R12",
        ));
    }
    // A directory's accounts end when the directory says; only local ones need an expiry.
    let endless: Vec<_> = active
        .iter()
        .filter(|a| a.is_local() && a.expires_at.is_none())
        .collect();
    if !endless.is_empty() {
        out.push(finding(
            "accounts.no_expiry",
            Severity::Low,
            format!(
                "{} accounts never expire: {}",
                endless.len(),
                list(&endless)
            ),
            "give each an end (conclave user expire <name> --at <date>)",
            "BSI Jitsi 3.2 (accounts)",
        ));
    }
    out.push(finding(
        "accounts.count",
        Severity::Info,
        format!("{} accounts, {} active", accounts.len(), active.len()),
        "",
        "",
    ));
    out
}

/// Everything local.
pub fn local(c: &Config, now: OffsetDateTime) -> Vec<Finding> {
    let mut out = config_findings(c);
    out.extend(file_findings(c));
    out.extend(certificate_findings(c, now));
    let db = c.data_dir.join(conclave_store::DB_FILE);
    if db.exists() {
        match Store::open(&c.data_dir, c.accounts.store_options()) {
            Ok(store) => out.extend(account_findings(&store, c.accounts.mfa, now)),
            Err(e) => out.push(finding(
                "accounts.read",
                Severity::Medium,
                format!("cannot open the database: {e}"),
                "run as the service user, with --config of the server",
                "",
            )),
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}
