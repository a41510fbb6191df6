//! The operator's records: the connection log and the audit log, written by one thread.
//!
//! The conference task, the sign-in handler and the admin API hand [`Entry`]s to the
//! [`Recorder`]; its thread puts them in the store in the configured form (addresses in full,
//! truncated or hashed; rooms in full or hashed), and once an hour (and at start) deletes
//! what is older than the retention and rotates the pseudonym key. Nothing here ever sees a
//! display name or a message.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result};
use conclave_room::{ConnId, LogRecord};
use conclave_store::{AddressForm, AuditEvent, AuditKey, OffsetDateTime, Pseudonyms, Store};
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// `[privacy]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Keep the connection log (client address, room, join and leave time per participant).
    pub connection_log: bool,
    /// Days connection-log rows are kept (1 to 3650); older ones are deleted at start and
    /// every hour. The pseudonym key rotates with the same period.
    pub retention_days: u32,
    /// How client addresses are written to the connection and audit logs: `off` (in full),
    /// `truncate` (IPv4 /24, IPv6 /48) or `hash` (keyed hash; the key is in the data
    /// directory and rotates with the retention).
    pub pseudonymise_addresses: Pseudonymise,
    /// Write room IDs to the logs as keyed hashes (`conclave connections list --room` still
    /// finds them) instead of in full.
    pub hash_rooms: bool,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            connection_log: true,
            retention_days: 14,
            pseudonymise_addresses: Pseudonymise::Off,
            hash_rooms: true,
        }
    }
}

/// `privacy.pseudonymise_addresses`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pseudonymise {
    /// Addresses in full.
    Off,
    /// The network only.
    Truncate,
    /// A keyed hash.
    Hash,
}

impl Pseudonymise {
    fn form(self) -> AddressForm {
        match self {
            Pseudonymise::Off => AddressForm::Full,
            Pseudonymise::Truncate => AddressForm::Truncated,
            Pseudonymise::Hash => AddressForm::Hashed,
        }
    }
}

/// `[audit]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Keep the audit log of security events (sign-ins, account changes, moderator actions,
    /// token use, admin API calls, loosened settings).
    pub enabled: bool,
    /// Days audit records are kept (1 to 3650).
    pub retention_days: u32,
    /// The MAC key of the audit chain. Keep a copy outside the server (it proves the log is
    /// unchanged). Default: `data_dir/audit.key`, created on first start.
    pub key_file: Option<PathBuf>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            retention_days: 180,
            key_file: None,
        }
    }
}

/// Longest retention, for either log (ten years).
pub const MAX_RETENTION_DAYS: u32 = 3650;

impl Config {
    /// The audit key file.
    pub fn audit_key_file(&self) -> PathBuf {
        self.audit
            .key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("audit.key"))
    }

    /// The pseudonym key file.
    pub fn pseudonym_keys_file(&self) -> PathBuf {
        self.data_dir.join(conclave_store::PSEUDONYM_KEYS_FILE)
    }
}

/// Something to record. Rooms and addresses are raw here; the recorder applies the
/// configured form.
#[derive(Debug, Clone)]
pub enum Entry {
    /// From the room core.
    Room(LogRecord),
    /// An audit event from an edge.
    Audit(AuditEntry),
}

/// An audit event before the configured forms are applied.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    /// See [`AuditEvent::kind`].
    pub kind: &'static str,
    /// See [`AuditEvent::actor`].
    pub actor: String,
    /// See [`AuditEvent::target`].
    pub target: String,
    /// The room ID, if any.
    pub room: Option<String>,
    /// The client address, if any.
    pub addr: Option<IpAddr>,
    /// See [`AuditEvent::detail`].
    pub detail: String,
}

/// The handle the server's parts send entries to. Cheap to clone; sending never blocks.
#[derive(Clone)]
pub struct Recorder {
    tx: Option<mpsc::Sender<Msg>>,
}

enum Msg {
    Entry(Entry),
    /// Reply once everything sent before is written (tests, shutdown).
    Flush(mpsc::Sender<()>),
}

/// Where the recorder's clock comes from and how often it does its hourly work.
#[derive(Clone)]
pub struct Schedule {
    /// The wall clock (tests pass a simulated one).
    pub now: Arc<dyn Fn() -> OffsetDateTime + Send + Sync>,
    /// How often retention and key rotation run.
    pub every: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            now: Arc::new(OffsetDateTime::now_utc),
            every: Duration::from_secs(3600),
        }
    }
}

/// What the recorder writes with.
struct Writer {
    store: Arc<Store>,
    privacy: PrivacyConfig,
    audit: Option<(AuditKey, u32)>,
    keys: Pseudonyms,
    /// Connection-log row of each participant in a room.
    rows: HashMap<ConnId, i64>,
}

/// How rooms and addresses are written: shared by the recorder and the `conclave
/// connections` / `audit-log` commands.
pub struct Forms<'a> {
    /// The configuration.
    pub privacy: &'a PrivacyConfig,
    /// The keys.
    pub keys: &'a Pseudonyms,
}

impl Forms<'_> {
    /// A room as stored.
    pub fn room(&self, room: &str) -> String {
        if self.privacy.hash_rooms {
            self.keys.hash("room", room.as_bytes())
        } else {
            room.to_owned()
        }
    }

    /// Every stored form of a room (to search for it).
    pub fn room_candidates(&self, room: &str) -> Vec<String> {
        if self.privacy.hash_rooms {
            self.keys.candidates("room", room.as_bytes())
        } else {
            vec![room.to_owned()]
        }
    }

    /// An address as stored.
    pub fn address(&self, addr: IpAddr) -> String {
        conclave_store::address_form(addr, self.privacy.pseudonymise_addresses.form(), self.keys)
    }

    /// The audit event as stored. Its address is always the keyed hash, whatever
    /// `pseudonymise_addresses` says: addresses in clear live only in the connection log,
    /// and once the key has rotated away (after the connection log's retention) nobody can
    /// link an audit record to an address any more.
    pub fn event(&self, e: AuditEntry) -> AuditEvent {
        AuditEvent {
            kind: e.kind.to_owned(),
            actor: e.actor,
            target: e.target,
            room: e.room.map(|r| self.room(&r)).unwrap_or_default(),
            address: e
                .addr
                .map(|a| conclave_store::address_form(a, AddressForm::Hashed, self.keys))
                .unwrap_or_default(),
            detail: e.detail,
        }
    }

    /// Every stored form of an address.
    pub fn address_candidates(&self, addr: IpAddr) -> Vec<String> {
        conclave_store::address_candidates(
            addr,
            self.privacy.pseudonymise_addresses.form(),
            self.keys,
        )
    }
}

impl Writer {
    fn forms(&self) -> Forms<'_> {
        Forms {
            privacy: &self.privacy,
            keys: &self.keys,
        }
    }

    /// Write a batch: connection-log rows one by one, audit events in one transaction.
    fn write(&mut self, now: OffsetDateTime, batch: Vec<Entry>) {
        let mut events = Vec::new();
        for entry in batch {
            match entry {
                Entry::Room(LogRecord::Entered { conn, room, addr }) => {
                    if !self.privacy.connection_log {
                        continue;
                    }
                    let (a, r) = (self.forms().address(addr), self.forms().room(room.as_str()));
                    match self.store.log_join(&a, &r, now) {
                        Ok(id) => {
                            self.rows.insert(conn, id);
                        }
                        Err(e) => tracing::error!("connection log: {e}"),
                    }
                }
                Entry::Room(LogRecord::Left { conn }) => {
                    if let Some(id) = self.rows.remove(&conn)
                        && let Err(e) = self.store.log_leave(id, now)
                    {
                        tracing::error!("connection log: {e}");
                    }
                }
                Entry::Room(LogRecord::Moderated {
                    room,
                    actor,
                    addr,
                    action,
                    target,
                    detail,
                }) => events.push(AuditEntry {
                    kind: moderation_kind(action),
                    actor,
                    target,
                    room: Some(room.as_str().to_owned()),
                    addr: Some(addr),
                    detail,
                }),
                Entry::Audit(e) => events.push(e),
            }
        }
        if let Some((key, _)) = &self.audit
            && !events.is_empty()
        {
            let events: Vec<AuditEvent> =
                events.into_iter().map(|e| self.forms().event(e)).collect();
            if let Err(e) = self.store.audit_append(key, now, &events) {
                tracing::error!("audit log: cannot write {} records: {e}", events.len());
            }
        }
    }

    /// Retention and key rotation.
    fn maintain(&mut self, now: OffsetDateTime) {
        let days = |d: u32| time::Duration::days(i64::from(d));
        match self
            .store
            .purge_connections(now - days(self.privacy.retention_days))
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                rows = n,
                "connection log: deleted rows older than the retention"
            ),
            Err(e) => tracing::error!("connection log retention: {e}"),
        }
        if let Some((key, retention)) = &self.audit {
            match self.store.audit_prune(key, now - days(*retention)) {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    records = n,
                    "audit log: deleted records older than the retention"
                ),
                Err(e) => tracing::error!("audit log retention: {e}"),
            }
        }
        if let Err(e) = self.keys.rotate(now) {
            tracing::error!(
                "pseudonym key rotation ({}): {e}",
                self.keys.path().display()
            );
        }
    }
}

/// The audit kind of a moderator action: `moderation.<message name>`.
fn moderation_kind(a: conclave_room::access::ModAction) -> &'static str {
    use conclave_room::access::ModAction as M;
    match a {
        M::Mute => "moderation.mute",
        M::MuteAll => "moderation.mute_all",
        M::Allow => "moderation.allow",
        M::Remove => "moderation.remove",
        M::Ban => "moderation.ban",
        M::Lock => "moderation.lock",
        M::EndMeeting => "moderation.end_meeting",
        M::SetRole => "moderation.set_role",
        M::SetPassword => "moderation.set_password",
        M::SetLobby => "moderation.set_lobby",
        M::SetPermissions => "moderation.set_permissions",
        M::Admit => "moderation.admit",
        M::Deny => "moderation.deny",
        M::MlsReset => "moderation.mls_reset",
    }
}

/// Open the audit key when the audit log is on (refusing a missing key with records).
pub fn audit_key(config: &Config, store: &Store) -> Result<Option<AuditKey>> {
    if !config.audit.enabled {
        return Ok(None);
    }
    Ok(Some(AuditKey::load_or_create(
        &config.audit_key_file(),
        store,
    )?))
}

/// Load (rotating) the pseudonym keys.
pub fn pseudonyms(config: &Config, now: OffsetDateTime) -> Result<Pseudonyms> {
    let path = config.pseudonym_keys_file();
    Pseudonyms::load(&path, config.privacy.retention_days, now)
        .with_context(|| format!("cannot use the pseudonym keys in {}", path.display()))
}

impl Recorder {
    /// A recorder that drops everything (nothing configured to keep).
    pub fn disabled() -> Recorder {
        Recorder { tx: None }
    }

    /// Start the writer thread: first the start-up work (close the sessions a previous run
    /// left open, retention, key rotation), then entries as they come.
    pub fn start(config: &Config, store: Arc<Store>, schedule: Schedule) -> Result<Recorder> {
        let now = (schedule.now)();
        let audit = audit_key(config, &store)?.map(|k| (k, config.audit.retention_days));
        let keys = pseudonyms(config, now)?;
        let mut w = Writer {
            store,
            privacy: config.privacy.clone(),
            audit,
            keys,
            rows: HashMap::new(),
        };
        match w.store.close_open_connections(now) {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                rows = n,
                "connection log: sessions of the last run ended at this start"
            ),
            Err(e) => tracing::error!("connection log: {e}"),
        }
        w.maintain(now);
        let (tx, rx) = mpsc::channel::<Msg>();
        std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || run(w, rx, schedule))
            .context("cannot start the recorder thread")?;
        Ok(Recorder { tx: Some(tx) })
    }

    /// Record `entry` (written shortly after, in order).
    pub fn record(&self, entry: Entry) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Entry(entry));
        }
    }

    /// Record an audit event.
    pub fn audit(&self, e: AuditEntry) {
        self.record(Entry::Audit(e));
    }

    /// Wait until everything recorded so far is written (at most `timeout`).
    pub fn flush(&self, timeout: Duration) -> bool {
        let Some(tx) = &self.tx else {
            return true;
        };
        let (done_tx, done_rx) = mpsc::channel();
        tx.send(Msg::Flush(done_tx)).is_ok() && done_rx.recv_timeout(timeout).is_ok()
    }
}

fn run(mut w: Writer, rx: mpsc::Receiver<Msg>, schedule: Schedule) {
    let mut next = std::time::Instant::now() + schedule.every;
    loop {
        let wait = next.saturating_duration_since(std::time::Instant::now());
        let first = match rx.recv_timeout(wait) {
            Ok(m) => Some(m),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        if std::time::Instant::now() >= next {
            w.maintain((schedule.now)());
            next = std::time::Instant::now() + schedule.every;
        }
        let Some(first) = first else { continue };
        // Everything already queued goes in one batch (one audit transaction).
        let mut batch = Vec::new();
        let mut flushes = Vec::new();
        for m in std::iter::once(first).chain(rx.try_iter()) {
            match m {
                Msg::Entry(e) => batch.push(e),
                Msg::Flush(done) => flushes.push(done),
            }
        }
        w.write((schedule.now)(), batch);
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Append audit events right now, from a command-line process (no recorder thread).
pub fn audit_now(config: &Config, store: &Store, entries: Vec<AuditEntry>) -> Result<()> {
    let Some(key) = audit_key(config, store)? else {
        return Ok(());
    };
    let now = OffsetDateTime::now_utc();
    let keys = pseudonyms(config, now)?;
    let forms = Forms {
        privacy: &config.privacy,
        keys: &keys,
    };
    let events: Vec<AuditEvent> = entries.into_iter().map(|e| forms.event(e)).collect();
    store
        .audit_append(&key, now, &events)
        .context("cannot write the audit log")?;
    Ok(())
}
