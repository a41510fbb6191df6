//! Configuration: embedded defaults, then a TOML file, then `CONCLAVE_*` environment
//! variables, then command-line flags. Unknown keys are errors that name the key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The whole configuration. Every field is documented in `conclave.example.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTPS (and WebSocket) listen address. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// Plain-HTTP listen address (usually port 80): it only redirects to HTTPS and answers
    /// ACME HTTP-01 challenges. Default: off.
    pub http_listen: Option<SocketAddr>,
    /// Directory for generated certificates and the database (`conclave.db`). Created if
    /// missing.
    pub data_dir: PathBuf,
    /// UDP port for all media. 0 picks a free port.
    pub media_port: u16,
    /// Media threads; each room is pinned to one. 0 means one per CPU core.
    pub media_threads: usize,
    /// IP the media socket binds to. Default: the IP of `listen`.
    pub media_bind_ip: Option<IpAddr>,
    /// IP announced to browsers in ICE candidates, for hosts behind 1:1 NAT. Default: the
    /// media bind IP, or the first non-loopback interface address when that is unspecified.
    pub public_ip: Option<IpAddr>,
    /// Seconds without any media-plane datagram (or signalling frame) after which a
    /// participant is removed.
    pub participant_timeout_secs: u64,
    /// Milliseconds of sent video kept per downstream stream to answer NACKs with
    /// retransmissions. Longer covers longer round trips and costs memory.
    pub nack_history_ms: u64,
    /// Log filter (`error`, `warn`, `info`, `debug`, or a tracing filter). `RUST_LOG` wins.
    pub log: String,
    /// Log line format: `text` or `json` (one object per line).
    pub log_format: LogFormat,
    /// TLS certificate and key. Without them a self-signed certificate for localhost is
    /// generated in `data_dir/tls/` on first start.
    pub tls: TlsConfig,
    /// Limits.
    pub limits: LimitsConfig,
    /// What clients are told to do (bandwidth, screen sharing).
    pub meeting: MeetingConfig,
    /// Who may open and enter rooms, and what each role may do.
    pub access: AccessConfig,
    /// Backoff and lockout for password guesses (room passwords, sign-in).
    pub attempts: AttemptsConfig,
    /// Invitation/identity tokens (JWT, compatible with Jitsi's).
    pub tokens: conclave_token::TokenConfig,
    /// The URL people use to reach this server, for invite links (`conclave token`).
    /// Default: `https://<listen>`.
    pub public_url: Option<String>,
    /// Local accounts and sign-in sessions.
    pub accounts: AccountsConfig,
    /// The admin REST API (room reservations).
    pub api: ApiConfig,
    /// The built-in STUN/TURN server.
    pub turn: crate::turn::TurnSection,
    /// How participants reach the media plane.
    pub network: crate::turn::NetworkConfig,
    /// What is kept about participants (the connection log) and for how long.
    pub privacy: crate::records::PrivacyConfig,
    /// The tamper-evident audit log of security events.
    pub audit: crate::records::AuditConfig,
    /// Prometheus metrics.
    pub metrics: crate::metrics::MetricsConfig,
    /// LDAP directories / Active Directory domains whose users may sign in (`[[ldap]]`).
    pub ldap: Vec<crate::ldap::LdapConfig>,
    /// OpenID Connect providers whose users may sign in (`[[oidc]]`).
    pub oidc: Vec<crate::oidc::OidcConfig>,
}

/// `log_format`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// `[api]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// File holding the admin API key (at least 32 characters; one trailing newline is
    /// ignored). Requests carry it as `Authorization: Bearer <key>`. Without it the admin
    /// API is off.
    pub admin_key_file: Option<PathBuf>,
}

/// Shortest admin API key.
pub const MIN_ADMIN_KEY_CHARS: usize = 32;

impl ApiConfig {
    /// Read the admin key, if configured.
    pub fn admin_key(&self) -> Result<Option<String>> {
        self.admin_key_file
            .as_deref()
            .map(|p| read_key_file(p, "api.admin_key_file"))
            .transpose()
    }
}

/// Read a bearer key from `path` (option `what`): at least [`MIN_ADMIN_KEY_CHARS`]
/// characters without spaces; one trailing newline is ignored.
pub fn read_key_file(path: &Path, what: &str) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{what}: cannot read {}", path.display()))?;
    let key = text.strip_suffix('\n').unwrap_or(&text).to_owned();
    if key.chars().count() < MIN_ADMIN_KEY_CHARS || key.chars().any(char::is_whitespace) {
        bail!("{what}: the key must be at least {MIN_ADMIN_KEY_CHARS} characters without spaces");
    }
    Ok(key)
}

/// `[access]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// `open`: anyone opens rooms, the first in a room moderates. `hosts`: only signed-in
    /// users (and moderator tokens) open rooms and moderate; others join as guests and wait
    /// for a host. `closed`: everyone signs in (account or token).
    pub mode: AccessModeConfig,
    /// In `hosts` and `closed` mode, new rooms start with the lobby on: guests knock and a
    /// moderator admits them.
    pub lobby_for_guests: bool,
    /// Shortest room password a moderator may set (at most 128 characters).
    pub room_password_min_chars: usize,
    /// Joins per minute from one IP address of rooms that are not open (limits room-ID
    /// probing; joins of open rooms are not counted).
    pub new_rooms_per_minute_per_address: f64,
    /// Such joins one IP address may make in a burst.
    pub new_room_burst_per_address: f64,
    /// What participants may do in a new room (moderators change it during the meeting).
    pub participant: PermissionsConfig,
    /// What guests may do in a new room.
    pub guest: PermissionsConfig,
}

/// How the server lets people in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessModeConfig {
    /// Anyone opens rooms.
    #[default]
    Open,
    /// Only signed-in users open rooms.
    Hosts,
    /// Everyone signs in.
    Closed,
}

/// `[access.participant]`, `[access.guest]`
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PermissionsConfig {
    /// Unmute the microphone.
    pub unmute: bool,
    /// Turn the camera on.
    pub camera: bool,
    /// Share the screen.
    pub screen: bool,
    /// Send chat messages.
    pub chat: bool,
    /// Share files.
    pub files: bool,
    /// Record.
    pub record: bool,
}

impl Default for PermissionsConfig {
    fn default() -> Self {
        let p = conclave_proto::Permissions::default();
        PermissionsConfig {
            unmute: p.unmute,
            camera: p.camera,
            screen: p.screen,
            chat: p.chat,
            files: p.files,
            record: p.record,
        }
    }
}

impl PermissionsConfig {
    fn permissions(&self) -> conclave_proto::Permissions {
        conclave_proto::Permissions {
            unmute: self.unmute,
            camera: self.camera,
            screen: self.screen,
            chat: self.chat,
            files: self.files,
            record: self.record,
        }
    }
}

impl Default for AccessConfig {
    fn default() -> Self {
        let d = conclave_room::AccessPolicy::default();
        AccessConfig {
            mode: AccessModeConfig::Open,
            lobby_for_guests: d.lobby_for_guests,
            room_password_min_chars: d.room_password_min_chars,
            new_rooms_per_minute_per_address: d.new_rooms_per_minute_per_address,
            new_room_burst_per_address: d.new_room_burst_per_address,
            participant: PermissionsConfig::default(),
            guest: PermissionsConfig::default(),
        }
    }
}

/// `[attempts]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttemptsConfig {
    /// Wrong passwords allowed (per address, per room, per account) before any delay.
    pub free_failures: u32,
    /// Longest delay between guesses after the free ones (the delay doubles from 1 s).
    pub backoff_max_secs: u64,
    /// Wrong passwords after which the address/room/account is locked out.
    pub lockout_after_failures: u32,
    /// How long a lockout lasts.
    pub lockout_secs: u64,
}

impl Default for AttemptsConfig {
    fn default() -> Self {
        let d = conclave_room::ThrottleConfig::default();
        AttemptsConfig {
            free_failures: d.free_failures,
            backoff_max_secs: d.backoff_max.as_secs(),
            lockout_after_failures: d.lockout_after,
            lockout_secs: d.lockout.as_secs(),
        }
    }
}

impl AttemptsConfig {
    /// As the room core's throttle settings.
    pub fn throttle(&self) -> conclave_room::ThrottleConfig {
        let d = conclave_room::ThrottleConfig::default();
        conclave_room::ThrottleConfig {
            free_failures: self.free_failures,
            backoff_max: std::time::Duration::from_secs(self.backoff_max_secs),
            lockout_after: self.lockout_after_failures,
            lockout: std::time::Duration::from_secs(self.lockout_secs),
            forget_after: std::time::Duration::from_secs(self.lockout_secs).max(d.forget_after),
            ..d
        }
    }
}

impl Config {
    /// The room core's access policy.
    pub fn access_policy(&self) -> conclave_room::AccessPolicy {
        let a = &self.access;
        conclave_room::AccessPolicy {
            mode: match a.mode {
                AccessModeConfig::Open => conclave_room::AccessMode::Open,
                AccessModeConfig::Hosts => conclave_room::AccessMode::Hosts,
                AccessModeConfig::Closed => conclave_room::AccessMode::Closed,
            },
            lobby_for_guests: a.lobby_for_guests,
            participant: a.participant.permissions(),
            guest: a.guest.permissions(),
            room_password_min_chars: a.room_password_min_chars,
            throttle: self.attempts.throttle(),
            new_rooms_per_minute_per_address: a.new_rooms_per_minute_per_address,
            new_room_burst_per_address: a.new_room_burst_per_address,
        }
    }
}

/// `[meeting]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MeetingConfig {
    /// Highest camera resolution clients send, as a height in pixels (90 to 2160).
    pub max_video_height: u32,
    /// Frame-rate cap for screen sharing (1 to 30).
    pub screen_share_fps: u32,
    /// Clients join in audio-only mode by default.
    pub audio_only: bool,
    /// Last-N: each participant receives camera video from at most this many others, those
    /// who spoke most recently. 0 = no limit. Screen shares and audio always pass.
    pub last_n: u32,
    /// End-to-end encryption of media and chat: "required" (default; browsers without
    /// encoded transforms are refused with an explanation, plain-text chat is refused) or
    /// "off". Under "required" the server offers no H.264 (only VP8 passes E2EE intact).
    pub e2ee: conclave_proto::E2eeMode,
}

impl Default for MeetingConfig {
    fn default() -> Self {
        let d = conclave_proto::MeetingSettings::default();
        MeetingConfig {
            max_video_height: d.max_video_height,
            screen_share_fps: d.screen_share_fps,
            audio_only: d.audio_only,
            last_n: d.last_n,
            e2ee: d.e2ee,
        }
    }
}

impl MeetingConfig {
    /// As sent to clients.
    pub fn settings(&self) -> conclave_proto::MeetingSettings {
        conclave_proto::MeetingSettings {
            max_video_height: self.max_video_height,
            screen_share_fps: self.screen_share_fps,
            audio_only: self.audio_only,
            last_n: self.last_n,
            e2ee: self.e2ee,
        }
    }
}

/// `[accounts]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountsConfig {
    /// Minimum length of a new password in characters (8 to 256).
    pub password_min_chars: usize,
    /// Hours a sign-in session lasts from sign-in (1 to 8760).
    pub session_hours: u64,
    /// Who must use a second factor (an authenticator app) to sign in.
    pub mfa: MfaPolicy,
    /// The name authenticator apps show for this server's accounts (1 to 64 characters).
    pub totp_issuer: String,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            password_min_chars: conclave_store::DEFAULT_MIN_PASSWORD_CHARS,
            session_hours: 12,
            mfa: MfaPolicy::default(),
            totp_issuer: "Conclave".into(),
        }
    }
}

/// `[accounts] mfa`: who must sign in with a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MfaPolicy {
    /// No second factor is offered or asked for.
    Off,
    /// Accounts may set up an authenticator app; those that did must use it.
    #[default]
    Optional,
    /// As optional, and accounts with the moderator role must set one up at their next
    /// sign-in before they can open a room.
    Moderators,
    /// Every account must set one up at its next sign-in.
    Required,
}

impl MfaPolicy {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            MfaPolicy::Off => "off",
            MfaPolicy::Optional => "optional",
            MfaPolicy::Moderators => "moderators",
            MfaPolicy::Required => "required",
        }
    }

    /// Whether an account with `role` must have a second factor.
    pub fn requires(self, role: conclave_store::AccountRole) -> bool {
        match self {
            MfaPolicy::Off | MfaPolicy::Optional => false,
            MfaPolicy::Moderators => role == conclave_store::AccountRole::Moderator,
            MfaPolicy::Required => true,
        }
    }
}

/// Highest `accounts.password_min_chars`.
const MAX_PASSWORD_MIN_CHARS: usize = 256;
/// Highest `accounts.session_hours` (a year).
const MAX_SESSION_HOURS: u64 = 8760;

impl AccountsConfig {
    /// The store's share of the settings.
    pub fn store_options(&self) -> conclave_store::StoreOptions {
        conclave_store::StoreOptions {
            password_policy: conclave_store::PasswordPolicy {
                min_chars: self.password_min_chars,
            },
            session_lifetime: time::Duration::hours(
                i64::try_from(self.session_hours).unwrap_or(i64::MAX),
            ),
        }
    }
}

/// `[tls]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// Seconds between checks whether `cert`/`key` changed on disk (1 to 3600); changed
    /// files are loaded without a restart.
    pub reload_check_secs: u64,
    /// Certificates from an ACME CA.
    pub acme: AcmeConfig,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            reload_check_secs: 10,
            acme: AcmeConfig::default(),
        }
    }
}

/// Which ACME challenge proves control of the domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum AcmeChallenge {
    /// TLS-ALPN-01 (RFC 8737), answered on the HTTPS port (the CA connects to port 443).
    #[default]
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// HTTP-01, answered by the `http_listen` listener (the CA connects to port 80).
    #[serde(rename = "http-01")]
    Http01,
}

/// `[tls.acme]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeConfig {
    /// DNS names the certificate is for. Empty: ACME is off.
    pub domains: Vec<String>,
    /// Contact URLs for the CA account, e.g. `mailto:it@example.org`.
    pub contact: Vec<String>,
    /// The CA's ACME directory URL.
    pub directory: String,
    /// `tls-alpn-01` or `http-01`.
    pub challenge: AcmeChallenge,
    /// PEM file of CA certificates trusted for the directory's HTTPS instead of the system's
    /// roots (for a private ACME CA).
    pub directory_ca_file: Option<PathBuf>,
    /// Renew when less than this fraction of the certificate's validity remains (0.05 to
    /// 0.9).
    pub renew_remaining_fraction: f64,
}

/// A host name as a CA accepts it: labels of letters, digits and hyphens, at least two.
fn valid_dns_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

impl Default for AcmeConfig {
    fn default() -> Self {
        AcmeConfig {
            domains: Vec::new(),
            contact: Vec::new(),
            directory: LETS_ENCRYPT_DIRECTORY.into(),
            challenge: AcmeChallenge::TlsAlpn01,
            directory_ca_file: None,
            renew_remaining_fraction: 1.0 / 3.0,
        }
    }
}

impl AcmeConfig {
    /// Whether certificates come from ACME.
    pub fn enabled(&self) -> bool {
        !self.domains.is_empty()
    }
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest signalling message accepted, in bytes. Larger ones close the connection.
    pub max_message_bytes: usize,
    /// Sustained signalling messages per second per connection.
    pub messages_per_second: f64,
    /// Burst of signalling messages above the sustained rate.
    pub message_burst: f64,
    /// Rooms open at once.
    pub max_rooms: usize,
    /// Participants in one room.
    pub max_participants_per_room: usize,
    /// Participants on the server.
    pub max_participants: usize,
    /// Characters in a display name.
    pub max_name_chars: usize,
    /// Characters in a chat message.
    pub max_chat_chars: usize,
    /// Base64 characters in one E2EE (MLS) field: a commit or a GroupInfo. A GroupInfo
    /// with the ratchet tree of 100 members is about 40 000. At most `max_message_bytes`.
    pub max_mls_chars: usize,
    /// Bytes in one shared file; 0 turns file sharing off. Files are relayed encrypted,
    /// never stored.
    pub max_file_bytes: u64,
    /// Files one participant may be sending at the same time.
    pub max_files_in_flight: usize,
    /// File bytes per second one connection may send (the page paces itself to it).
    pub file_bytes_per_second: u64,
    /// Open WebSocket connections (joined or not).
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8443".parse().expect("valid literal"),
            http_listen: None,
            data_dir: PathBuf::from("./conclave-data"),
            media_port: 10000,
            media_threads: 0,
            media_bind_ip: None,
            public_ip: None,
            participant_timeout_secs: 20,
            nack_history_ms: 1000,
            log: "info".into(),
            log_format: LogFormat::Text,
            tls: TlsConfig::default(),
            limits: LimitsConfig::default(),
            meeting: MeetingConfig::default(),
            access: AccessConfig::default(),
            attempts: AttemptsConfig::default(),
            tokens: conclave_token::TokenConfig::default(),
            public_url: None,
            accounts: AccountsConfig::default(),
            api: ApiConfig::default(),
            turn: crate::turn::TurnSection::default(),
            network: crate::turn::NetworkConfig::default(),
            privacy: crate::records::PrivacyConfig::default(),
            audit: crate::records::AuditConfig::default(),
            metrics: crate::metrics::MetricsConfig::default(),
            ldap: Vec::new(),
            oidc: Vec::new(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let core = conclave_room::Limits::default();
        LimitsConfig {
            max_message_bytes: 256 * 1024,
            messages_per_second: core.messages_per_second,
            message_burst: core.message_burst,
            max_rooms: core.max_rooms,
            max_participants_per_room: core.max_participants_per_room,
            max_participants: core.max_participants,
            max_name_chars: core.max_name_chars,
            max_chat_chars: core.max_chat_chars,
            max_mls_chars: core.max_mls_chars,
            max_file_bytes: core.max_file_bytes,
            max_files_in_flight: core.max_files_in_flight,
            file_bytes_per_second: core.file_bytes_per_second,
            max_connections: 4000,
        }
    }
}

impl LimitsConfig {
    /// The room core's share of the limits.
    pub fn core(&self) -> conclave_room::Limits {
        conclave_room::Limits {
            max_rooms: self.max_rooms,
            max_participants_per_room: self.max_participants_per_room,
            max_participants: self.max_participants,
            max_name_chars: self.max_name_chars,
            max_chat_chars: self.max_chat_chars,
            max_mls_chars: self.max_mls_chars,
            max_file_bytes: self.max_file_bytes,
            max_files_in_flight: self.max_files_in_flight,
            file_bytes_per_second: self.file_bytes_per_second,
            messages_per_second: self.messages_per_second,
            message_burst: self.message_burst,
        }
    }
}

/// Prefix of configuration environment variables. Sections are joined with `__`:
/// `CONCLAVE_LIMITS__MAX_ROOMS=10`.
pub const ENV_PREFIX: &str = "CONCLAVE_";

/// Environment variables with the prefix that are not config keys.
const ENV_NOT_CONFIG: [&str; 1] = ["CONCLAVE_CONFIG"];

impl Config {
    /// Build the configuration from the optional file, the given environment, and overrides
    /// (already in TOML form, from command-line flags).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: toml::Table,
    ) -> Result<Config> {
        let mut table = toml::Table::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            table = text
                .parse::<toml::Table>()
                .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
            Self::check(&table).with_context(|| format!("in config file {}", path.display()))?;
        }
        let mut from_env = toml::Table::new();
        for (k, v) in env {
            let Some(rest) = k.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if ENV_NOT_CONFIG.contains(&k.as_str()) || rest.is_empty() {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            let value = parse_env_value(&v);
            insert_path(&mut from_env, &path, value);
        }
        Self::check(&from_env).context("in CONCLAVE_* environment variables")?;
        merge(&mut table, from_env);
        merge(&mut table, overrides);
        let config: Config = toml::Value::Table(table)
            .try_into()
            .context("invalid configuration")?;
        config.validate()?;
        Ok(config)
    }

    /// Refuse unknown keys and ill-typed values, naming the key.
    fn check(table: &toml::Table) -> Result<()> {
        let _: Config = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("{}", e.message()))?;
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        let l = &self.limits;
        if l.max_message_bytes < 1024 {
            bail!("limits.max_message_bytes must be at least 1024");
        }
        let rate_ok = l.messages_per_second.is_finite() && l.messages_per_second > 0.0;
        let burst_ok = l.message_burst.is_finite() && l.message_burst >= 1.0;
        if !rate_ok || !burst_ok {
            bail!("limits.messages_per_second must be > 0 and limits.message_burst >= 1");
        }
        if l.max_mls_chars < 1024 || l.max_mls_chars > l.max_message_bytes {
            bail!("limits.max_mls_chars must be between 1024 and limits.max_message_bytes");
        }
        // A full chunk of a file (64 KiB, encrypted, as base64 in JSON) is about 88 000 bytes.
        let chunk_message = (conclave_proto::FILE_CHUNK_BYTES + 16).div_ceil(3) * 4 + 512;
        if l.max_file_bytes > 0 {
            if l.max_message_bytes < chunk_message {
                bail!(
                    "limits.max_message_bytes must be at least {chunk_message} while \
                     limits.max_file_bytes > 0 (one file chunk), or set max_file_bytes = 0"
                );
            }
            if l.file_bytes_per_second < chunk_message as u64 || l.max_files_in_flight == 0 {
                bail!(
                    "limits.file_bytes_per_second must be at least {chunk_message} and \
                     limits.max_files_in_flight at least 1 while limits.max_file_bytes > 0"
                );
            }
        }
        if !(90..=2160).contains(&self.meeting.max_video_height) {
            bail!("meeting.max_video_height must be between 90 and 2160");
        }
        if !(1..=30).contains(&self.meeting.screen_share_fps) {
            bail!("meeting.screen_share_fps must be between 1 and 30");
        }
        if self.media_threads > conclave_media::MAX_THREADS {
            bail!(
                "media_threads must be at most {} (0 = one per core)",
                conclave_media::MAX_THREADS
            );
        }
        if !(50..=10_000).contains(&self.nack_history_ms) {
            bail!("nack_history_ms must be between 50 and 10000");
        }
        if self.participant_timeout_secs == 0 {
            bail!("participant_timeout_secs must be at least 1");
        }
        let a = &self.access;
        if !(1..=conclave_room::access::MAX_ROOM_PASSWORD_CHARS)
            .contains(&a.room_password_min_chars)
        {
            bail!("access.room_password_min_chars must be between 1 and 128");
        }
        let joins_ok = a.new_rooms_per_minute_per_address.is_finite()
            && a.new_rooms_per_minute_per_address > 0.0
            && a.new_room_burst_per_address.is_finite()
            && a.new_room_burst_per_address >= 1.0;
        if !joins_ok {
            bail!(
                "access.new_rooms_per_minute_per_address must be > 0 and access.new_room_burst_per_address >= 1"
            );
        }
        let t = &self.attempts;
        if t.lockout_after_failures <= t.free_failures {
            bail!("attempts.lockout_after_failures must be greater than attempts.free_failures");
        }
        if t.backoff_max_secs == 0 || t.lockout_secs == 0 {
            bail!("attempts.backoff_max_secs and attempts.lockout_secs must be at least 1");
        }
        if self.tokens.enabled {
            self.tokens.validate()?;
        }
        self.turn.validate()?;
        if self.network.relay_only && !self.turn.enabled {
            bail!("network.relay_only needs the TURN server: set turn.enabled = true");
        }
        if let Some(u) = &self.public_url
            && !u.starts_with("https://")
        {
            bail!("public_url must start with https://");
        }
        let min = conclave_store::MIN_PASSWORD_CHARS_FLOOR;
        if !(min..=MAX_PASSWORD_MIN_CHARS).contains(&self.accounts.password_min_chars) {
            bail!("accounts.password_min_chars must be between {min} and {MAX_PASSWORD_MIN_CHARS}");
        }
        if !(1..=MAX_SESSION_HOURS).contains(&self.accounts.session_hours) {
            bail!("accounts.session_hours must be between 1 and {MAX_SESSION_HOURS}");
        }
        let issuer = &self.accounts.totp_issuer;
        if issuer.trim().is_empty()
            || issuer.chars().count() > 64
            || issuer.contains(':')
            || issuer.chars().any(char::is_control)
        {
            bail!(
                "accounts.totp_issuer must be 1 to 64 characters without ':' or control \
                 characters (authenticator apps show it), not {issuer:?}"
            );
        }
        let max = crate::records::MAX_RETENTION_DAYS;
        if !(1..=max).contains(&self.privacy.retention_days) {
            bail!("privacy.retention_days must be between 1 and {max}");
        }
        if !(1..=max).contains(&self.audit.retention_days) {
            bail!("audit.retention_days must be between 1 and {max}");
        }
        self.metrics.validate()?;
        crate::ldap::validate(&self.ldap).map_err(anyhow::Error::msg)?;
        crate::oidc::validate(&self.oidc).map_err(anyhow::Error::msg)?;
        self.validate_tls()
    }

    fn validate_tls(&self) -> Result<()> {
        let t = &self.tls;
        if !(1..=3600).contains(&t.reload_check_secs) {
            bail!("tls.reload_check_secs must be between 1 and 3600");
        }
        let a = &t.acme;
        if !(0.05..=0.9).contains(&a.renew_remaining_fraction) {
            bail!("tls.acme.renew_remaining_fraction must be between 0.05 and 0.9");
        }
        if a.enabled() {
            if t.cert.is_some() || t.key.is_some() {
                bail!("tls.cert/tls.key and tls.acme.domains exclude each other: choose one");
            }
            if !a.directory.starts_with("https://") {
                bail!("tls.acme.directory must be an https:// URL");
            }
            for d in &a.domains {
                if !valid_dns_name(d) {
                    bail!(
                        "tls.acme.domains: {d:?} is not a DNS name (wildcards need DNS-01, which is not supported)"
                    );
                }
            }
            for c in &a.contact {
                if !c.starts_with("mailto:") {
                    bail!("tls.acme.contact: {c:?} must be a mailto: URL");
                }
            }
            if a.challenge == AcmeChallenge::Http01 && self.http_listen.is_none() {
                bail!("tls.acme.challenge = \"http-01\" needs http_listen (port 80)");
            }
        }
        Ok(())
    }

    /// Base URL for links: `public_url`, or `https://<listen>`.
    pub fn base_url(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("https://{}", self.listen),
        }
    }

    /// IP the media socket binds to.
    pub fn media_bind(&self) -> SocketAddr {
        SocketAddr::new(
            self.media_bind_ip.unwrap_or(self.listen.ip()),
            self.media_port,
        )
    }

    /// Media threads to run: `media_threads`, or one per core when 0.
    pub fn media_thread_count(&self) -> usize {
        match self.media_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .min(conclave_media::MAX_THREADS)
    }

    /// IP announced in ICE candidates.
    pub fn announce_ip(&self) -> IpAddr {
        if let Some(ip) = self.public_ip {
            return ip;
        }
        let bind = self.media_bind().ip();
        if !bind.is_unspecified() {
            return bind;
        }
        if_addrs::get_if_addrs()
            .ok()
            .and_then(|ifs| {
                ifs.into_iter()
                    .map(|i| i.ip())
                    .find(|ip| !ip.is_loopback() && ip.is_ipv4() == bind.is_ipv4())
            })
            .unwrap_or(if bind.is_ipv4() {
                IpAddr::from([127, 0, 0, 1])
            } else {
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
            })
    }
}

/// An environment value as TOML: numbers and booleans typed, everything else a string.
fn parse_env_value(v: &str) -> toml::Value {
    if let Ok(t) = format!("x = {v}").parse::<toml::Table>()
        && let Some(val) = t.get("x")
        && !matches!(val, toml::Value::Table(_))
    {
        return val.clone();
    }
    toml::Value::String(v.to_owned())
}

fn insert_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = entry {
                insert_path(t, rest, value);
            }
        }
    }
}

fn merge(base: &mut toml::Table, top: toml::Table) {
    for (k, v) in top {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load(None, env(&[]), toml::Table::new()).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.media_bind().to_string(), "127.0.0.1:10000");
    }

    #[test]
    fn example_file_documents_every_option_with_its_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conclave.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        // Every commented-out `key = value` line (but the optional ones, whose default is
        // "unset"), uncommented, must parse to the defaults.
        let optional = [
            "http_listen",
            "directory_ca_file",
            "media_bind_ip",
            "public_ip",
            "public_url",
            "cert",
            "key",
            "secret",
            "secret_file",
            "public_key_file",
            "private_key_file",
            "key_id",
            "jwks_file",
            "jwks_url",
            "jwks_ca_file",
            "admin_key_file",
            "host",
            "key_file",
        ];
        // The [[ldap]] and [[oidc]] examples are entries to copy, not defaults: they must
        // parse and pass.
        let (defaults, ldap) = text.split_once("# [[ldap]]").unwrap();
        let (ldap, oidc) = ldap.split_once("# [[oidc]]").unwrap();
        let entry = |text: &str| -> String {
            text.lines()
                .filter_map(|l| l.strip_prefix("# ").filter(|r| r.contains(" = ")))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let ldap: crate::ldap::LdapConfig = toml::from_str(&entry(ldap)).unwrap();
        crate::ldap::validate(&[ldap]).unwrap();
        let oidc: crate::oidc::OidcConfig = toml::from_str(&entry(oidc)).unwrap();
        crate::oidc::validate(&[oidc]).unwrap();
        let uncommented: String = defaults
            .lines()
            .filter_map(|l| {
                let r = l.strip_prefix("# ")?;
                let is_section = r.starts_with('[');
                let key = r.split(" = ").next().unwrap_or("");
                (is_section || (r.contains(" = ") && !optional.contains(&key))).then_some(r)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let table: toml::Table = uncommented.parse().unwrap();
        let c: Config = toml::Value::Table(table.clone()).try_into().unwrap();
        assert_eq!(c, Config::default());
        // And every key of the defaults appears in the file.
        fn walk(text: &str, prefix: &str, t: &toml::Table) {
            for (k, v) in t {
                let path = format!("{prefix}{k}");
                if text.contains(&format!("# [[{path}]]")) {
                    continue;
                }
                if let toml::Value::Table(sub) = v {
                    assert!(
                        text.contains(&format!("# [{path}]")),
                        "[{path}] undocumented"
                    );
                    walk(text, &format!("{path}."), sub);
                } else {
                    assert!(text.contains(&format!("{k} =")), "{path} undocumented");
                }
            }
        }
        walk(
            &text,
            "",
            &toml::Table::try_from(Config::default()).unwrap(),
        );
        for o in optional {
            assert!(text.contains(&format!("{o} =")), "{o} undocumented");
        }
    }

    #[test]
    fn precedence_file_env_flags() {
        let dir = std::env::temp_dir().join(format!("conclave-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(
            &f,
            "media_port = 1\n[limits]\nmax_rooms = 5\nmax_name_chars = 7\n",
        )
        .unwrap();
        let mut flags = toml::Table::new();
        flags.insert("media_port".into(), toml::Value::Integer(3));
        let c = Config::load(
            Some(&f),
            env(&[
                ("CONCLAVE_LIMITS__MAX_ROOMS", "6"),
                ("CONCLAVE_LISTEN", "127.0.0.1:0"),
                ("CONCLAVE_CONFIG", "ignored"),
                ("OTHER", "x"),
            ]),
            flags,
        )
        .unwrap();
        assert_eq!(c.media_port, 3);
        assert_eq!(c.limits.max_rooms, 6);
        assert_eq!(c.limits.max_name_chars, 7);
        assert_eq!(c.listen.port(), 0);
    }

    #[test]
    fn out_of_range_values_are_refused_with_the_key_named() {
        let cases = [
            (
                "CONCLAVE_MEETING__SCREEN_SHARE_FPS",
                "0",
                "screen_share_fps",
            ),
            (
                "CONCLAVE_MEETING__SCREEN_SHARE_FPS",
                "61",
                "screen_share_fps",
            ),
            (
                "CONCLAVE_MEETING__MAX_VIDEO_HEIGHT",
                "10",
                "max_video_height",
            ),
            ("CONCLAVE_MEDIA_THREADS", "65", "media_threads"),
            ("CONCLAVE_NACK_HISTORY_MS", "5", "nack_history_ms"),
            (
                "CONCLAVE_LIMITS__MAX_MESSAGE_BYTES",
                "10",
                "max_message_bytes",
            ),
            (
                "CONCLAVE_PARTICIPANT_TIMEOUT_SECS",
                "0",
                "participant_timeout_secs",
            ),
            (
                "CONCLAVE_ACCOUNTS__PASSWORD_MIN_CHARS",
                "7",
                "password_min_chars",
            ),
            (
                "CONCLAVE_ACCOUNTS__PASSWORD_MIN_CHARS",
                "257",
                "password_min_chars",
            ),
            ("CONCLAVE_ACCOUNTS__SESSION_HOURS", "0", "session_hours"),
            ("CONCLAVE_ACCOUNTS__SESSION_HOURS", "8761", "session_hours"),
        ];
        for (k, v, key) in cases {
            let e = format!(
                "{:#}",
                Config::load(None, env(&[(k, v)]), toml::Table::new()).unwrap_err()
            );
            assert!(e.contains(key), "{k}={v}: {e}");
        }
        let c = Config::load(
            None,
            env(&[("CONCLAVE_MEETING__SCREEN_SHARE_FPS", "15")]),
            toml::Table::new(),
        )
        .unwrap();
        assert_eq!(c.meeting.settings().screen_share_fps, 15);
    }

    #[test]
    fn bad_tls_and_acme_settings_are_refused_with_the_key() {
        let cases = [
            ("[tls]\nreload_check_secs = 0\n", "tls.reload_check_secs"),
            (
                "[tls.acme]\ndomains = [\"meet.example.org\"]\nrenew_remaining_fraction = 0.99\n",
                "renew_remaining_fraction",
            ),
            (
                "[tls]\ncert = \"/c\"\nkey = \"/k\"\n[tls.acme]\ndomains = [\"meet.example.org\"]\n",
                "exclude each other",
            ),
            (
                "[tls.acme]\ndomains = [\"meet.example.org\"]\ndirectory = \"http://ca.example/dir\"\n",
                "https://",
            ),
            (
                "[tls.acme]\ndomains = [\"*.example.org\"]\n",
                "not a DNS name",
            ),
            ("[tls.acme]\ndomains = [\"localhost\"]\n", "not a DNS name"),
            (
                "[tls.acme]\ndomains = [\"meet.example.org\"]\ncontact = [\"it@example.org\"]\n",
                "mailto:",
            ),
            (
                "[tls.acme]\ndomains = [\"meet.example.org\"]\nchallenge = \"http-01\"\n",
                "http_listen",
            ),
            ("[tls.acme]\nchallenge = \"dns-01\"\n", "dns-01"),
        ];
        let dir = std::env::temp_dir().join(format!("conclave-cfg-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, (text, expect)) in cases.iter().enumerate() {
            let f = dir.join(format!("{i}.toml"));
            std::fs::write(&f, text).unwrap();
            let e = format!(
                "{:#}",
                Config::load(Some(&f), env(&[]), toml::Table::new()).unwrap_err()
            );
            assert!(e.contains(expect), "{text}: {e}");
        }
        let f = dir.join("ok.toml");
        std::fs::write(
            &f,
            "http_listen = \"127.0.0.1:80\"\n[tls.acme]\ndomains = [\"meet.example.org\"]\ncontact = [\"mailto:it@example.org\"]\nchallenge = \"http-01\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&f), env(&[]), toml::Table::new()).unwrap();
        assert_eq!(c.tls.acme.challenge, AcmeChallenge::Http01);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = std::env::temp_dir().join(format!("conclave-cfg2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(&f, "[limits]\nmax_roomz = 5\n").unwrap();
        let e = format!(
            "{:#}",
            Config::load(Some(&f), env(&[]), toml::Table::new()).unwrap_err()
        );
        assert!(e.contains("max_roomz"), "{e}");
        let e = format!(
            "{:#}",
            Config::load(None, env(&[("CONCLAVE_LISTN", "x")]), toml::Table::new()).unwrap_err()
        );
        assert!(e.contains("listn"), "{e}");
        let e = format!(
            "{:#}",
            Config::load(
                None,
                env(&[("CONCLAVE_MEDIA_PORT", "banana")]),
                toml::Table::new()
            )
            .unwrap_err()
        );
        assert!(
            e.contains("banana") || e.contains("media_port") || e.contains("integer"),
            "{e}"
        );
    }
}
