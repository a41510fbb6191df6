//! `conclave user ...`: manage local accounts in the data directory's database.

use std::io::{BufRead, IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::Subcommand;
use conclave::config::Config;
use conclave_store::{Account, AccountRole, MAX_PASSWORD_BYTES, OffsetDateTime, Store};
use time::format_description::well_known::Rfc3339;

/// Arguments of `conclave user`.
#[derive(clap::Args)]
pub struct UserArgs {
    /// TOML config file, as for `serve` (for data_dir and [accounts])
    #[arg(long, env = "CONCLAVE_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Data directory holding conclave.db [default: ./conclave-data]
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add an account; asks for the password twice unless --password-stdin
    Add {
        /// 1-64 characters of a-z 0-9 . - _ (case-insensitive)
        username: String,
        /// Display name shown in meetings (required, at most 64 characters)
        #[arg(long)]
        name: String,
        /// Read the password from the first line of standard input instead of asking
        #[arg(long)]
        password_stdin: bool,
        /// "moderator" (opens rooms and moderates them) or "member" (joins with the account's
        /// name, without moderating)
        #[arg(long, default_value = "moderator")]
        role: String,
    },
    /// Set an account's role: "moderator" or "member" (applies from its next join)
    Role {
        /// The account
        username: String,
        /// "moderator" or "member"
        role: String,
    },
    /// Remove an account's authenticator app and recovery codes (a lost phone) and sign it
    /// out everywhere; under [accounts] mfa = "moderators" or "required" it sets up a new
    /// app at its next sign-in
    ResetFactors {
        /// The account
        username: String,
    },
    /// List accounts with status, creation, last login and expiry
    List {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Set a new password; signs the user out everywhere
    Passwd {
        /// The account
        username: String,
        /// Read the password from the first line of standard input instead of asking
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account (it can no longer sign in); signs it out everywhere
    Disable {
        /// The account
        username: String,
    },
    /// Enable a disabled account (an expiry still applies)
    Enable {
        /// The account
        username: String,
    },
    /// Make an account stop working at a time, now, or never
    Expire {
        /// The account
        username: String,
        /// RFC 3339 time (2026-12-31T18:00:00Z or with an offset), "now", or "never"
        #[arg(long, default_value = "now")]
        at: String,
    },
    /// Delete an account and its sessions
    Remove {
        /// The account
        username: String,
    },
}

impl UserArgs {
    fn overrides(&self) -> toml::Table {
        let mut t = toml::Table::new();
        if let Some(dir) = &self.data_dir {
            t.insert("data_dir".into(), dir.display().to_string().into());
        }
        t
    }
}

/// Run `conclave user ...`.
pub fn run(args: UserArgs) -> Result<()> {
    let config = Config::load(args.config.as_deref(), std::env::vars(), args.overrides())?;
    conclave::create_private_dir(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let store = Store::open(&config.data_dir, config.accounts.store_options())
        .map_err(|e| anyhow!("{e}"))?;
    let now = OffsetDateTime::now_utc();
    // For messages after success, when the name is known to be valid.
    let canonical = |u: &str| conclave_store::normalize_username(u).unwrap_or_else(|_| u.into());
    match args.command {
        UserCommand::Add {
            username,
            name,
            password_stdin,
            role,
        } => {
            // Everything that can be checked before the password is checked first, so
            // nobody types a password twice for nothing.
            let role: AccountRole = role
                .parse()
                .map_err(|e| anyhow!("cannot add user: --role: {e}"))?;
            let username = conclave_store::normalize_username(&username)
                .map_err(|e| anyhow!("cannot add user: {e}"))?;
            conclave_store::normalize_display_name(&name)
                .map_err(|e| anyhow!("cannot add user {username}: {e}"))?;
            if store.account(&username).map_err(flat)?.is_some() {
                bail!("cannot add user {username}: user {username:?} already exists");
            }
            let password = read_password(&store, &username, password_stdin)?;
            let account = store
                .add_account(&username, &name, &password, now)
                .map_err(|e| anyhow!("cannot add user {username}: {e}"))?;
            if role != AccountRole::Moderator {
                store
                    .set_role(&account.username, role)
                    .map_err(|e| anyhow!("added user {username}, but cannot set its role: {e}"))?;
            }
            println!(
                "added user {} ({}, {})",
                account.username,
                account.display_name,
                role.as_str()
            );
            audit(
                &config,
                &store,
                "account.add",
                &account.username,
                &format!("role {}", role.as_str()),
            )?;
        }
        UserCommand::Role { username, role } => {
            let role: AccountRole = role
                .parse()
                .map_err(|e| anyhow!("cannot set the role: {e}"))?;
            store
                .set_role(&username, role)
                .map_err(|e| anyhow!("cannot set the role: {e}"))?;
            let username = canonical(&username);
            println!("{username} is now a {}", role.as_str());
            audit(
                &config,
                &store,
                "account.role",
                &username,
                &format!("role {}", role.as_str()),
            )?;
        }
        UserCommand::ResetFactors { username } => {
            let account = store
                .account(&username)
                .map_err(flat)?
                .ok_or_else(|| anyhow!("cannot reset the second factors: no user {username:?}"))?;
            let had = store.reset_factors(account.id).map_err(flat)?;
            let keys = store.remove_passkeys(account.id).map_err(flat)?;
            let revoked = store.revoke_sessions(account.id).map_err(flat)?;
            println!(
                "{}: {}{}{}",
                account.username,
                if had {
                    "authenticator app and recovery codes removed"
                } else {
                    "had no second factor"
                },
                match keys {
                    0 => String::new(),
                    n => format!(", {n} passkeys removed"),
                },
                signed_out(revoked)
            );
            audit(
                &config,
                &store,
                "account.factors_reset",
                &account.username,
                if had { "removed" } else { "none" },
            )?;
        }
        UserCommand::List { json } => {
            let accounts = store.list_accounts().map_err(flat)?;
            let with_factors = accounts
                .into_iter()
                .map(|a| {
                    let f = store.factors(a.id)?;
                    Ok((a, f))
                })
                .collect::<Result<Vec<_>, conclave_store::Error>>()
                .map_err(flat)?;
            if json {
                print_json(&with_factors, now)?;
            } else {
                print_table(&with_factors, now);
            }
        }
        UserCommand::Passwd {
            username,
            password_stdin,
        } => {
            let username = conclave_store::normalize_username(&username)
                .map_err(|e| anyhow!("cannot change the password: {e}"))?;
            if store.account(&username).map_err(flat)?.is_none() {
                bail!("cannot change the password: no user {username:?}");
            }
            let password = read_password(&store, &username, password_stdin)?;
            let revoked = store
                .set_password(&username, &password, now)
                .map_err(|e| anyhow!("cannot change the password of {username}: {e}"))?;
            println!("changed the password of {username}{}", signed_out(revoked));
            audit(&config, &store, "account.passwd", &username, "")?;
        }
        UserCommand::Disable { username } => {
            let revoked = store
                .disable(&username)
                .map_err(|e| anyhow!("cannot disable: {e}"))?;
            println!("disabled {}{}", canonical(&username), signed_out(revoked));
            audit(
                &config,
                &store,
                "account.disable",
                &canonical(&username),
                "",
            )?;
        }
        UserCommand::Enable { username } => {
            store
                .enable(&username)
                .map_err(|e| anyhow!("cannot enable: {e}"))?;
            println!("enabled {}", canonical(&username));
            audit(&config, &store, "account.enable", &canonical(&username), "")?;
            if let Some(a) = store.account(&username).map_err(flat)?
                && a.is_expired(now)
            {
                println!(
                    "note: {} expired at {}; it still cannot sign in (`conclave user expire {} --at never`)",
                    a.username,
                    fmt_time(a.expires_at),
                    a.username
                );
            }
        }
        UserCommand::Expire { username, at } => {
            let at = parse_at(&at, now)?;
            let revoked = store
                .set_expiry(&username, at, now)
                .map_err(|e| anyhow!("cannot set the expiry: {e}"))?;
            let username = canonical(&username);
            let detail = at.map_or_else(|| "never".to_owned(), |t| fmt_time(Some(t)));
            audit(&config, &store, "account.expire", &username, &detail)?;
            match at {
                None => println!("{username} never expires"),
                Some(t) if t <= now => {
                    println!(
                        "{username} expired at {}{}",
                        fmt_time(Some(t)),
                        signed_out(revoked)
                    );
                }
                Some(t) => println!("{username} expires at {}", fmt_time(Some(t))),
            }
        }
        UserCommand::Remove { username } => {
            let revoked = store
                .remove(&username)
                .map_err(|e| anyhow!("cannot remove: {e}"))?;
            println!("removed {}{}", canonical(&username), signed_out(revoked));
            audit(&config, &store, "account.remove", &canonical(&username), "")?;
        }
    }
    Ok(())
}

/// Write the audit record of an account change made from the command line.
fn audit(
    config: &Config,
    store: &Store,
    kind: &'static str,
    user: &str,
    detail: &str,
) -> Result<()> {
    conclave::records::audit_now(
        config,
        store,
        vec![conclave::records::AuditEntry {
            kind,
            actor: "cli".into(),
            target: format!("account:{user}"),
            detail: detail.to_owned(),
            ..Default::default()
        }],
    )
    .context("the change is made, but its audit record could not be written")
}

/// A store error as one line (its message already names what failed).
fn flat(e: conclave_store::Error) -> anyhow::Error {
    anyhow!("{e}")
}

fn signed_out(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => "; 1 session signed out".into(),
        n => format!("; {n} sessions signed out"),
    }
}

/// `--at`: RFC 3339, `now` or `never`.
fn parse_at(at: &str, now: OffsetDateTime) -> Result<Option<OffsetDateTime>> {
    match at {
        "now" => Ok(Some(now)),
        "never" => Ok(None),
        s => OffsetDateTime::parse(s, &Rfc3339).map(Some).map_err(|e| {
            anyhow!(
                "--at {s:?} is not a time: {e}; use RFC 3339 (2026-12-31T18:00:00Z or \
                 2026-12-31T19:00:00+01:00), \"now\" or \"never\""
            )
        }),
    }
}

/// The password from the first line of standard input, or asked twice on the terminal.
/// Checked against the policy before the second prompt.
fn read_password(store: &Store, username: &str, from_stdin: bool) -> Result<String> {
    let policy = &store.options().password_policy;
    if from_stdin {
        let mut line = Vec::new();
        // One byte more than allowed (plus a CRLF) is enough to tell "too long".
        let limit = u64::try_from(MAX_PASSWORD_BYTES + 3).unwrap_or(u64::MAX);
        std::io::stdin()
            .lock()
            .take(limit)
            .read_until(b'\n', &mut line)
            .context("cannot read the password from standard input")?;
        if line.ends_with(b"\n") {
            line.pop();
            if line.ends_with(b"\r") {
                line.pop();
            }
        }
        let password = String::from_utf8(line)
            .map_err(|_| anyhow!("the password on standard input is not valid UTF-8"))?;
        policy
            .check(username, &password)
            .map_err(|e| anyhow!("{e}"))?;
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "no terminal to ask for the password: pipe it in with --password-stdin \
             (first line of standard input)"
        );
    }
    let first = rpassword::prompt_password(format!("New password for {username}: "))
        .context("cannot read the password from the terminal")?;
    policy.check(username, &first).map_err(|e| anyhow!("{e}"))?;
    let second = rpassword::prompt_password("Repeat the password: ")
        .context("cannot read the password from the terminal")?;
    if first != second {
        bail!("the two passwords differ; nothing was changed");
    }
    Ok(first)
}

/// RFC 3339 in UTC to the second, or "never".
fn fmt_time(t: Option<OffsetDateTime>) -> String {
    match t {
        Some(t) => t
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .unwrap_or_else(|_| t.unix_timestamp().to_string()),
        None => "never".into(),
    }
}

fn print_table(accounts: &[(Account, conclave_store::Factors)], now: OffsetDateTime) {
    if accounts.is_empty() {
        println!("no users");
        return;
    }
    let header = [
        "USERNAME",
        "DISPLAY NAME",
        "STATUS",
        "ROLE",
        "2FA",
        "SOURCE",
        "CREATED",
        "LAST LOGIN",
        "EXPIRES",
    ];
    let rows: Vec<[String; 9]> = accounts
        .iter()
        .map(|(a, f)| {
            [
                a.username.clone(),
                a.display_name.clone(),
                a.state(now).to_owned(),
                a.role.as_str().to_owned(),
                if f.totp { "app" } else { "-" }.to_owned(),
                a.source.clone(),
                fmt_time(Some(a.created_at)),
                fmt_time(a.last_login_at),
                fmt_time(a.expires_at),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                let pad = w - cell.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        println!("{out}");
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
}

fn print_json(accounts: &[(Account, conclave_store::Factors)], now: OffsetDateTime) -> Result<()> {
    let time = |t: Option<OffsetDateTime>| match t {
        Some(_) => serde_json::Value::String(fmt_time(t)),
        None => serde_json::Value::Null,
    };
    let list: Vec<serde_json::Value> = accounts
        .iter()
        .map(|(a, f)| {
            serde_json::json!({
                "username": a.username,
                "display_name": a.display_name,
                "status": a.state(now),
                "role": a.role.as_str(),
                "totp": f.totp,
                "recovery_codes_left": f.recovery_codes_left,
                "source": a.source,
                "created_at": time(Some(a.created_at)),
                "last_login_at": time(a.last_login_at),
                "expires_at": time(a.expires_at),
            })
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&list)?);
    Ok(())
}
