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
    /// Directory for generated certificates and (later) the database. Created if missing.
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
    /// TLS certificate and key. Without them a self-signed certificate for localhost is
    /// generated in `data_dir/tls/` on first start.
    pub tls: TlsConfig,
    /// Limits.
    pub limits: LimitsConfig,
    /// What clients are told to do (bandwidth, screen sharing).
    pub meeting: MeetingConfig,
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
}

impl Default for MeetingConfig {
    fn default() -> Self {
        let d = conclave_proto::MeetingSettings::default();
        MeetingConfig {
            max_video_height: d.max_video_height,
            screen_share_fps: d.screen_share_fps,
            audio_only: d.audio_only,
            last_n: d.last_n,
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
        }
    }
}

/// `[tls]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
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
    /// Open WebSocket connections (joined or not).
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8443".parse().expect("valid literal"),
            data_dir: PathBuf::from("./conclave-data"),
            media_port: 10000,
            media_threads: 0,
            media_bind_ip: None,
            public_ip: None,
            participant_timeout_secs: 20,
            nack_history_ms: 1000,
            log: "info".into(),
            tls: TlsConfig::default(),
            limits: LimitsConfig::default(),
            meeting: MeetingConfig::default(),
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
        Ok(())
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
        let optional = ["media_bind_ip", "public_ip", "cert", "key"];
        let uncommented: String = text
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
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        for (k, v) in &defaults {
            if let toml::Value::Table(t) = v {
                for k2 in t.keys() {
                    assert!(text.contains(&format!("{k2} =")), "{k}.{k2} undocumented");
                }
            } else {
                assert!(text.contains(&format!("{k} =")), "{k} undocumented");
            }
        }
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
