//! Pseudonyms for the connection and audit logs: a client address (or room ID) kept as a
//! keyed hash, or an address truncated to its network.
//!
//! The hash keys live in a file in the data directory (`pseudonym.keys`, mode 0600), never in
//! the database, so a copy of the database alone cannot be matched against addresses. Keys
//! rotate with the retention: a key is made for each period of `retention_days` and deleted
//! when the period after it ends. By then every row hashed with it is older than the
//! retention and deleted too, so an old pseudonym can no longer be linked to anything, not
//! even by the operator.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use aws_lc_rs::hmac;
use rand::RngCore;
use time::OffsetDateTime;

/// How client addresses are written to the connection and audit logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressForm {
    /// As they are.
    Full,
    /// IPv4 to its /24, IPv6 to its /48 ("192.0.2.0/24").
    Truncated,
    /// A keyed hash ("k20441:3f9c...").
    Hashed,
}

/// The key file's name inside the data directory.
pub const PSEUDONYM_KEYS_FILE: &str = "pseudonym.keys";

/// The current and the previous period's hash key, loaded from (and kept in) the key file.
pub struct Pseudonyms {
    path: PathBuf,
    period_secs: i64,
    /// (period number, key), newest first; at most two.
    keys: Vec<(i64, [u8; 32])>,
}

impl std::fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let periods: Vec<i64> = self.keys.iter().map(|(p, _)| *p).collect();
        f.debug_struct("Pseudonyms")
            .field("path", &self.path)
            .field("periods", &periods)
            .finish()
    }
}

impl Pseudonyms {
    /// Load the keys from `path` (creating the file when missing), make the key of the
    /// current period if there is none yet and forget keys older than the previous period.
    /// `period_days` is the retention (at least 1).
    pub fn load(path: &Path, period_days: u32, now: OffsetDateTime) -> std::io::Result<Self> {
        let mut p = Pseudonyms {
            path: path.to_owned(),
            period_secs: i64::from(period_days.max(1)) * 86_400,
            keys: read_keys(path)?,
        };
        p.rotate(now)?;
        Ok(p)
    }

    fn period(&self, now: OffsetDateTime) -> i64 {
        now.unix_timestamp().div_euclid(self.period_secs)
    }

    /// Make the current period's key if missing and delete keys older than the previous
    /// period; rewrite the file when anything changed.
    pub fn rotate(&mut self, now: OffsetDateTime) -> std::io::Result<()> {
        let current = self.period(now);
        let before = self.keys.clone();
        if !self.keys.iter().any(|(p, _)| *p == current) {
            let mut k = [0u8; 32];
            rand::rng().fill_bytes(&mut k);
            self.keys.push((current, k));
        }
        self.keys
            .retain(|(p, _)| *p >= current - 1 && *p <= current);
        self.keys.sort_by_key(|k| std::cmp::Reverse(k.0));
        if self.keys != before {
            write_keys(&self.path, &self.keys)?;
        }
        Ok(())
    }

    /// `value` hashed with the current period's key, tagged with its period.
    pub fn hash(&self, domain: &str, value: &[u8]) -> String {
        let (period, key) = self.keys.first().expect("rotate keeps the current key");
        tagged(*period, key, domain, value)
    }

    /// `value` hashed with every key still kept (to find the rows of an address or room).
    pub fn candidates(&self, domain: &str, value: &[u8]) -> Vec<String> {
        self.keys
            .iter()
            .map(|(p, k)| tagged(*p, k, domain, value))
            .collect()
    }

    /// The key file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn tagged(period: i64, key: &[u8; 32], domain: &str, value: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(domain.as_bytes());
    ctx.update(&[0]);
    ctx.update(value);
    let tag = ctx.sign();
    // 128 bits: collisions are no concern at connection-log sizes; shorter rows.
    format!("k{period}:{}", hex(&tag.as_ref()[..16]))
}

/// The address as it is written in a log: in full, truncated, or hashed with `keys`.
pub fn address_form(addr: IpAddr, form: AddressForm, keys: &Pseudonyms) -> String {
    let addr = canonical(addr);
    match form {
        AddressForm::Full => addr.to_string(),
        AddressForm::Truncated => truncate(addr),
        AddressForm::Hashed => keys.hash("address", addr.to_string().as_bytes()),
    }
}

/// Every form under which `addr` can appear in a log written with `form` (the hashed form
/// under each kept key).
pub fn address_candidates(addr: IpAddr, form: AddressForm, keys: &Pseudonyms) -> Vec<String> {
    let addr = canonical(addr);
    match form {
        AddressForm::Full => vec![addr.to_string()],
        AddressForm::Truncated => vec![truncate(addr)],
        AddressForm::Hashed => keys.candidates("address", addr.to_string().as_bytes()),
    }
}

/// IPv4-mapped IPv6 addresses as IPv4, so one client has one form.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

fn truncate(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
            format!("{net}/48")
        }
    }
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Bytes from lower- or upper-case hex; `None` for anything else.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn read_keys(path: &Path) -> std::io::Result<Vec<(i64, [u8; 32])>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let bad = |n: usize| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} line {n}: expected \"<period> <64 hex digits>\"",
                path.display()
            ),
        )
    };
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (p, k) = line.split_once(' ').ok_or_else(|| bad(i + 1))?;
        let period: i64 = p.parse().map_err(|_| bad(i + 1))?;
        let key: [u8; 32] = unhex(k.trim())
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| bad(i + 1))?;
        keys.push((period, key));
    }
    Ok(keys)
}

/// Write the keys to a new file (0600) and rename it over the old one, so a crash leaves
/// either file whole.
fn write_keys(path: &Path, keys: &[(i64, [u8; 32])]) -> std::io::Result<()> {
    let mut text = String::from(
        "# Conclave pseudonym keys: period number and HMAC-SHA256 key. Rotated with\n\
         # [privacy] retention_days; deleting this file makes stored pseudonyms unlinkable.\n",
    );
    for (p, k) in keys {
        text.push_str(&format!("{p} {}\n", hex(k)));
    }
    write_private(path, text.as_bytes())
}

/// Write `bytes` to `path` atomically (temporary file in the same directory, fsync, rename),
/// readable by the owner only.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}
