//! The `conclave` command.

mod logs;
mod users;

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use conclave::Server;
use conclave::config::Config;

/// Conclave: confidential video meetings that an organisation runs itself.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (HTTPS + WebSocket signalling + UDP media) with embedded defaults.
    Serve(ServeArgs),
    /// Manage local accounts: add, list, passwd, disable, enable, expire, remove.
    User(users::UserArgs),
    /// Check a configuration file, or print the documented example.
    Config(ConfigArgs),
    /// Print the documented example configuration (same as `config example`).
    #[command(hide = true)]
    ConfigExample,
    /// Print an invite link with a signed token ([tokens] must be configured with a key).
    Token(TokenArgs),
    /// The connection log: list or export who connected from where to which room, when.
    Connections(logs::ConnectionsArgs),
    /// The tamper-evident audit log: verify the chain, export for a SIEM.
    AuditLog(logs::AuditLogArgs),
    /// Check this deployment against the BSI recommendation and Conclave's defaults; with
    /// --url also the running server from outside. Exit code 0: nothing above info, 1: low
    /// or medium findings, 2: high.
    Audit(AuditArgs),
}

#[derive(clap::Args)]
struct AuditArgs {
    /// TOML config file, as for `serve`
    #[arg(long, env = "CONCLAVE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: the config's data_dir]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Also check the running server at this https:// URL (certificate, TLS, headers,
    /// whether metrics or the admin API are public, port 80)
    #[arg(long)]
    url: Option<String>,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Name unknown and deprecated keys, refused values and every loosened default; with
    /// --since, the security-relevant options added after that version. Exit code 0: fine,
    /// 1: warnings, 2: errors.
    Check {
        /// TOML config file (the same as for `serve`) [default: only the embedded defaults and
        /// CONCLAVE_* variables]
        #[arg(long, env = "CONCLAVE_CONFIG")]
        config: Option<PathBuf>,
        /// The version you upgraded from, e.g. 0.1.0: list the security-relevant options
        /// added since.
        #[arg(long)]
        since: Option<String>,
    },
    /// Print the documented example configuration with every option and its default.
    Example,
}

#[derive(clap::Args)]
struct TokenArgs {
    /// TOML config file (the same as for `serve`).
    #[arg(long, env = "CONCLAVE_CONFIG")]
    config: Option<PathBuf>,
    /// Room ID the link is for ("*" prints a token valid for every room).
    #[arg(long)]
    room: String,
    /// Display name of the invited person (read-only in the meeting).
    #[arg(long)]
    name: String,
    /// Join as moderator.
    #[arg(long)]
    moderator: bool,
    /// Skip the lobby.
    #[arg(long)]
    lobby_bypass: bool,
    /// Lifetime, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h")]
    ttl: String,
    /// E-mail address to put in the token.
    #[arg(long)]
    email: Option<String>,
    /// User id to put in the token (bans hold on to it) [default: random]
    #[arg(long)]
    user_id: Option<String>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML config file. Every option can also be set as CONCLAVE_<KEY> (sections joined with
    /// "__", e.g. CONCLAVE_LIMITS__MAX_ROOMS). Unknown keys are an error.
    #[arg(long, env = "CONCLAVE_CONFIG")]
    config: Option<PathBuf>,
    /// HTTPS listen address; port 0 picks a free port [default: 127.0.0.1:8443]
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Data directory (certificates, the database) [default: ./conclave-data]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// UDP port for all media; 0 picks a free port [default: 10000]
    #[arg(long)]
    media_port: Option<u16>,
    /// Media threads, rooms pinned to one each; 0 = one per CPU core [default: 0]
    #[arg(long)]
    media_threads: Option<usize>,
    /// IP the media socket binds to [default: the IP of --listen]
    #[arg(long)]
    media_bind_ip: Option<IpAddr>,
    /// Public IP to announce in ICE candidates (host behind 1:1 NAT)
    #[arg(long)]
    public_ip: Option<IpAddr>,
    /// Seconds of silence after which a participant is removed [default: 20]
    #[arg(long)]
    participant_timeout_secs: Option<u64>,
    /// Log filter (error, warn, info, debug) [default: info]
    #[arg(long)]
    log: Option<String>,
}

impl ServeArgs {
    fn overrides(&self) -> toml::Table {
        let mut t = toml::Table::new();
        let mut put = |k: &str, v: Option<toml::Value>| {
            if let Some(v) = v {
                t.insert(k.into(), v);
            }
        };
        put("listen", self.listen.map(|v| v.to_string().into()));
        put(
            "data_dir",
            self.data_dir
                .as_ref()
                .map(|v| v.display().to_string().into()),
        );
        put("media_port", self.media_port.map(|v| i64::from(v).into()));
        put(
            "media_bind_ip",
            self.media_bind_ip.map(|v| v.to_string().into()),
        );
        put("public_ip", self.public_ip.map(|v| v.to_string().into()));
        put(
            "participant_timeout_secs",
            self.participant_timeout_secs
                .map(|v| i64::try_from(v).unwrap_or(i64::MAX).into()),
        );
        put("log", self.log.clone().map(Into::into));
        t
    }
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with the whole chain ("cannot ...: because ..."), no backtrace: these
            // are errors for an operator, not bugs.
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::ConfigExample
        | Command::Config(ConfigArgs {
            command: ConfigCommand::Example,
        }) => {
            print!("{}", include_str!("../../../conclave.example.toml"));
            Ok(())
        }
        Command::Config(ConfigArgs {
            command: ConfigCommand::Check { config, since },
        }) => {
            let code = config_check(config.as_deref(), since.as_deref());
            std::process::exit(i32::from(code));
        }
        Command::Token(args) => {
            let config =
                Config::load(args.config.as_deref(), std::env::vars(), toml::Table::new())?;
            let link = conclave::invite::invite(
                &config,
                conclave::invite::InviteRequest {
                    room: args.room,
                    name: args.name,
                    moderator: args.moderator,
                    lobby_bypass: args.lobby_bypass,
                    ttl: conclave::invite::parse_ttl(&args.ttl)?,
                    email: args.email,
                    user_id: args.user_id,
                },
            )?;
            println!("{link}");
            Ok(())
        }
        Command::User(args) => users::run(args),
        Command::Connections(args) => logs::connections(args),
        Command::Audit(args) => {
            let code = audit(args)?;
            std::process::exit(i32::from(code));
        }
        Command::AuditLog(args) => {
            let code = match logs::audit_log(args) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("Error: {e:#}");
                    2
                }
            };
            std::process::exit(i32::from(code));
        }
        Command::Serve(args) => {
            let config = Config::load(args.config.as_deref(), std::env::vars(), args.overrides())?;
            init_log(&config.log, config.log_format);
            for f in conclave::config_check::loosened(&config) {
                tracing::warn!("config check: {f}");
            }
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(serve(config))
        }
    }
}

/// `conclave audit`: print the findings; the exit code.
fn audit(args: AuditArgs) -> Result<u8> {
    use conclave::deployment_audit::{exit_code, local};
    let mut t = toml::Table::new();
    if let Some(d) = &args.data_dir {
        t.insert("data_dir".into(), d.display().to_string().into());
    }
    let config = Config::load(args.config.as_deref(), std::env::vars(), t)?;
    let now = conclave_store::OffsetDateTime::now_utc();
    let mut findings = local(&config, now);
    if let Some(url) = &args.url {
        let live = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?
            .block_on(conclave::audit_live::live(url, now));
        findings.extend(live);
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&findings)?);
    } else {
        for f in &findings {
            println!("{f}");
        }
        let code = exit_code(&findings);
        println!(
            "{} findings; {}",
            findings.len(),
            [
                "nothing to fix",
                "fix the LOW and MEDIUM ones",
                "fix the HIGH ones first"
            ][usize::from(code)]
        );
    }
    Ok(exit_code(&findings))
}

/// `conclave config check`: print the findings; the exit code.
fn config_check(file: Option<&std::path::Path>, since: Option<&str>) -> u8 {
    use conclave::config_check::{check, exit_code};
    let raw = match file {
        None => Ok(toml::Table::new()),
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| format!("cannot read {}: {e}", f.display()))
            .and_then(|t| {
                t.parse::<toml::Table>()
                    .map_err(|e| format!("{} is not valid TOML: {e}", f.display()))
            }),
    };
    let findings = check(
        raw.as_ref().map_err(Clone::clone),
        || Config::load(file, std::env::vars(), toml::Table::new()),
        since,
    );
    for f in &findings {
        println!("{f}");
    }
    let code = exit_code(&findings);
    let what = file.map_or_else(|| "the defaults".to_owned(), |f| f.display().to_string());
    match code {
        0 => println!("{what}: ok"),
        1 => println!("{what}: warnings (the server starts; check each one)"),
        _ => println!("{what}: errors (the server refuses to start)"),
    }
    code
}

fn init_log(filter: &str, format: conclave::config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        conclave::config::LogFormat::Text => log.init(),
        // One object per line with the span fields (room, participant) of each event.
        conclave::config::LogFormat::Json => log.json().with_current_span(true).init(),
    }
}

async fn serve(config: Config) -> Result<()> {
    Server::preflight(&config)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let server = Server::start(config, listener).await?;
    let addr = server.https_addr();
    let host = match addr.ip() {
        IpAddr::V6(ip) => format!("[{ip}]"),
        IpAddr::V4(ip) => ip.to_string(),
    };
    // The ready lines go to stdout for whoever started us; a closed or broken stdout (a
    // supervisor that stopped reading) must not panic the server, so errors are ignored.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "conclave listening on https://{host}:{} (media on udp {})",
        addr.port(),
        server.media_addr()
    );
    if server.media_addr().ip().is_loopback() {
        let _ = writeln!(
            out,
            "media is on loopback only: Chromium works; Firefox needs \
             media.peerconnection.ice.loopback = true in about:config, or start with \
             --media-bind-ip 0.0.0.0 (the media port is then reachable from your network)"
        );
    }
    let _ = out.flush();
    drop(out);
    tokio::signal::ctrl_c()
        .await
        .context("waiting for ctrl-c")?;
    tracing::info!("shutting down");
    drop(server);
    Ok(())
}
