//! `conclave connections ...` and `conclave audit-log ...`: read the connection log, check
//! and export the audit log. They open the database next to a running server (SQLite
//! serializes the writers).

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Result, anyhow};
use clap::Subcommand;
use conclave::config::Config;
use conclave::records::{self, Forms};
use conclave_store::{AuditRecord, ConnectionFilter, LoggedConnection, OffsetDateTime, Store};
use time::format_description::well_known::Rfc3339;

/// Options shared by both commands.
#[derive(clap::Args)]
pub struct Common {
    /// TOML config file, as for `serve` (data_dir, [privacy], [audit])
    #[arg(long, env = "CONCLAVE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Data directory holding conclave.db [default: ./conclave-data]
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

impl Common {
    fn load(&self) -> Result<(Config, Store)> {
        let mut t = toml::Table::new();
        if let Some(dir) = &self.data_dir {
            t.insert("data_dir".into(), dir.display().to_string().into());
        }
        let config = Config::load(self.config.as_deref(), std::env::vars(), t)?;
        let db = config.data_dir.join(conclave_store::DB_FILE);
        if !db.exists() {
            anyhow::bail!("no database at {} (check --data-dir)", db.display());
        }
        let store = Store::open(&config.data_dir, config.accounts.store_options())
            .map_err(|e| anyhow!("{e}"))?;
        Ok((config, store))
    }
}

/// `conclave connections`
#[derive(clap::Args)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: ConnectionsCommand,
}

#[derive(Subcommand)]
enum ConnectionsCommand {
    /// Print the connection log (address, room, joined, left) as a table
    List(ConnectionQuery),
    /// Print the connection log as JSON lines, or CSV
    Export {
        #[command(flatten)]
        query: ConnectionQuery,
        /// Output format
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
    },
}

#[derive(clap::Args)]
struct ConnectionQuery {
    /// Only this room (its ID, also when rooms are stored hashed)
    #[arg(long)]
    room: Option<String>,
    /// Only this client address (also when addresses are stored hashed or truncated)
    #[arg(long)]
    address: Option<IpAddr>,
    /// Only sessions that joined at or after this RFC 3339 time
    #[arg(long)]
    since: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Jsonl,
    Csv,
}

/// `conclave audit-log`
#[derive(clap::Args)]
pub struct AuditLogArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: AuditLogCommand,
}

#[derive(Subcommand)]
enum AuditLogCommand {
    /// Check the chain with the key: names every changed, removed or inserted record. Exit
    /// code 0: intact, 1: tampered, 2: cannot check
    Verify,
    /// Print the records as JSON lines or RFC 5424 syslog messages (for a SIEM)
    Export {
        /// Output format
        #[arg(long, value_enum, default_value = "jsonl")]
        format: AuditFormat,
        /// Only records at or after this RFC 3339 time
        #[arg(long)]
        since: Option<String>,
        /// Host name in syslog messages [default: this host's name]
        #[arg(long)]
        hostname: Option<String>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AuditFormat {
    Jsonl,
    Syslog,
}

fn parse_time(v: Option<&str>) -> Result<Option<OffsetDateTime>> {
    v.map(|s| {
        OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|_| anyhow!("--since: expected an RFC 3339 time like 2026-12-01T00:00:00Z"))
    })
    .transpose()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Run `conclave connections ...`.
pub fn connections(args: ConnectionsArgs) -> Result<()> {
    let (query, format) = match &args.command {
        ConnectionsCommand::List(q) => (q, None),
        ConnectionsCommand::Export { query, format } => (query, Some(*format)),
    };
    // Arguments first: a bad one is named whether or not the database exists.
    let since = parse_time(query.since.as_deref())?;
    let (config, store) = args.common.load()?;
    let keys = records::pseudonyms(&config, OffsetDateTime::now_utc())?;
    let forms = Forms {
        privacy: &config.privacy,
        keys: &keys,
    };
    let filter = ConnectionFilter {
        addresses: query
            .address
            .map(|a| forms.address_candidates(a))
            .unwrap_or_default(),
        rooms: query
            .room
            .as_deref()
            .map(|r| forms.room_candidates(r))
            .unwrap_or_default(),
        since,
    };
    let rows = store
        .list_connections(&filter)
        .map_err(|e| anyhow!("{e}"))?;
    match format {
        None => print_connections(&rows),
        Some(ExportFormat::Jsonl) => {
            for r in &rows {
                let v = serde_json::json!({
                    "address": r.address,
                    "room": r.room,
                    "joined_at": rfc3339(r.joined_at),
                    "left_at": r.left_at.map(rfc3339),
                });
                println!("{v}");
            }
        }
        Some(ExportFormat::Csv) => {
            println!("address,room,joined_at,left_at");
            for r in &rows {
                // Stored forms hold no commas or quotes (addresses, room IDs, hex).
                println!(
                    "{},{},{},{}",
                    r.address,
                    r.room,
                    rfc3339(r.joined_at),
                    r.left_at.map(rfc3339).unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}

fn print_connections(rows: &[LoggedConnection]) {
    let aw = rows
        .iter()
        .map(|r| r.address.len())
        .max()
        .unwrap_or(0)
        .max(7);
    let rw = rows.iter().map(|r| r.room.len()).max().unwrap_or(0).max(4);
    println!("{:aw$}  {:rw$}  {:20}  LEFT", "ADDRESS", "ROOM", "JOINED");
    for r in rows {
        println!(
            "{:aw$}  {:rw$}  {:20}  {}",
            r.address,
            r.room,
            rfc3339(r.joined_at),
            r.left_at.map_or_else(|| "-".to_owned(), rfc3339)
        );
    }
    println!("{} sessions", rows.len());
}

/// Run `conclave audit-log ...`; the exit code.
pub fn audit_log(args: AuditLogArgs) -> Result<u8> {
    let since = match &args.command {
        AuditLogCommand::Export { since, .. } => parse_time(since.as_deref())?,
        AuditLogCommand::Verify => None,
    };
    let (config, store) = args.common.load()?;
    let key_file = config.audit_key_file();
    match args.command {
        AuditLogCommand::Verify => {
            let key = conclave_store::AuditKey::load_or_create(&key_file, &store)
                .map_err(|e| anyhow!("{e}"))?;
            let v = store.audit_verify(&key).map_err(|e| anyhow!("{e}"))?;
            for p in &v.problems {
                println!("{p}");
            }
            if v.problems.is_empty() {
                println!(
                    "audit log intact: {} records, {} to {} (key {})",
                    v.records,
                    v.first_seq,
                    v.last_seq,
                    key_file.display()
                );
                Ok(0)
            } else {
                println!(
                    "audit log TAMPERED: {} problems in {} records",
                    v.problems.len(),
                    v.records
                );
                Ok(1)
            }
        }
        AuditLogCommand::Export {
            format,
            since: _,
            hostname,
        } => {
            let host = hostname.unwrap_or_else(host_name);
            let records = store.audit_records().map_err(|e| anyhow!("{e}"))?;
            for r in records.iter().filter(|r| since.is_none_or(|s| r.at >= s)) {
                match format {
                    AuditFormat::Jsonl => println!("{}", json_line(r)),
                    AuditFormat::Syslog => println!("{}", syslog_line(r, &host)),
                }
            }
            Ok(0)
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn json_line(r: &AuditRecord) -> String {
    serde_json::json!({
        "seq": r.seq,
        "time": rfc3339(r.at),
        "kind": r.event.kind,
        "actor": r.event.actor,
        "target": r.event.target,
        "room": r.event.room,
        "address": r.event.address,
        "detail": r.event.detail,
        "prev": hex(&r.prev),
        "mac": hex(&r.mac),
    })
    .to_string()
}

/// Our structured-data ID: 32473 is the private enterprise number RFC 5612 reserves for
/// documentation; a deployment that forwards to a SIEM keys on the `conclave@` prefix.
const SD_ID: &str = "conclave@32473";

/// One RFC 5424 message: facility authpriv (10), severity notice (5), or warning (4) for
/// refusals and failures; MSGID is the kind; the fields as structured data; the detail as
/// the message.
fn syslog_line(r: &AuditRecord, host: &str) -> String {
    let warning = ["failure", "refused", "lockout", "loosened"]
        .iter()
        .any(|w| r.event.kind.contains(w));
    let pri = 10 * 8 + if warning { 4 } else { 5 };
    let sd = |k: &str, v: &str| format!(" {k}=\"{}\"", sd_escape(v));
    let mut data = format!("[{SD_ID}");
    data.push_str(&sd("seq", &r.seq.to_string()));
    for (k, v) in [
        ("actor", &r.event.actor),
        ("target", &r.event.target),
        ("room", &r.event.room),
        ("address", &r.event.address),
    ] {
        if !v.is_empty() {
            data.push_str(&sd(k, v));
        }
    }
    data.push_str(&sd("mac", &hex(&r.mac)));
    data.push(']');
    // MSGID: at most 32 printable ASCII characters.
    let msgid: String = r
        .event
        .kind
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    let msg = if r.event.detail.is_empty() {
        String::new()
    } else {
        format!(" {}", r.event.detail)
    };
    format!(
        "<{pri}>1 {} {} conclave - {} {data}{msg}",
        rfc3339(r.at),
        if host.is_empty() { "-" } else { host },
        if msgid.is_empty() { "-" } else { &msgid }
    )
}

/// RFC 5424 §6.3.3: `"`, `\` and `]` are escaped in parameter values.
fn sd_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty() && h.is_ascii())
        .unwrap_or_else(|| "-".into())
}
