//! The built-in STUN/TURN server's wiring: its `[turn]` / `[network]` configuration, the
//! listeners, the relay restriction to the media address, and the ICE servers (with fresh
//! credentials) that `joined` hands to each admitted participant.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use conclave_proto::{IceServer, IceSettings, IceTransportPolicy, ParticipantId, ServerMessage};
use conclave_turn::{Credentials, Listeners, ServiceConfig, Turn, TurnConfig};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;

/// A listening port that can be switched off: a number (0 = pick a free one) or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// Not served.
    Off,
    /// This port.
    On(u16),
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Port::Off => s.serialize_str("off"),
            Port::On(p) => s.serialize_u16(*p),
        }
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Port, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
            Flag(bool),
        }
        let bad =
            || serde::de::Error::custom("expected a port number (0 = any free port) or \"off\"");
        match Raw::deserialize(d)? {
            Raw::Number(n) => u16::try_from(n).map(Port::On).map_err(|_| bad()),
            Raw::Text(t) if t == "off" => Ok(Port::Off),
            Raw::Flag(false) => Ok(Port::Off),
            _ => Err(bad()),
        }
    }
}

/// `[turn]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TurnSection {
    /// Run the built-in STUN/TURN server.
    pub enabled: bool,
    /// STUN and TURN over UDP (on the IP of `listen`).
    pub udp_port: Port,
    /// TURN over TCP.
    pub tcp_port: Port,
    /// TURN over TLS (the HTTPS certificate).
    pub tls_port: Port,
    /// Also serve TURN over TCP and over TLS on the HTTPS port (told apart from HTTPS by the
    /// first bytes), for networks that let only TCP 443 out.
    pub on_https_port: bool,
    /// Host name or IP in the TURN URLs handed to browsers. Default: the host of
    /// `public_url`, else the IP of `listen` (or `public_ip` when `listen` is unspecified).
    pub host: Option<String>,
    /// Seconds a credential handed out in `joined` can open new allocations. It stops
    /// working at once when the participant leaves or is removed.
    pub credential_ttl_secs: u64,
    /// Allocations one participant may hold at once (a browser makes one per server URL
    /// and local address).
    pub max_allocations_per_participant: usize,
    /// Allocations one client IP address may hold at once (many people behind one NAT).
    pub max_allocations_per_address: usize,
    /// Allocations on the server.
    pub max_allocations: usize,
    /// Longest allocation lifetime granted per Allocate/Refresh, in seconds.
    pub max_lifetime_secs: u64,
    /// Relayed kilobits per second per allocation, both directions together. 0 = no limit.
    pub bandwidth_kbps: u64,
    /// Open TURN TCP/TLS connections at most.
    pub max_connections: usize,
}

impl Default for TurnSection {
    fn default() -> Self {
        TurnSection {
            enabled: true,
            udp_port: Port::On(3478),
            tcp_port: Port::On(3478),
            tls_port: Port::On(5349),
            on_https_port: true,
            host: None,
            credential_ttl_secs: 600,
            max_allocations_per_participant: 16,
            max_allocations_per_address: 64,
            max_allocations: 10_000,
            max_lifetime_secs: 3600,
            bandwidth_kbps: 20_000,
            max_connections: 4000,
        }
    }
}

impl TurnSection {
    /// Refuse values that cannot work.
    pub fn validate(&self) -> Result<()> {
        if !(5..=86_400).contains(&self.credential_ttl_secs) {
            bail!("turn.credential_ttl_secs must be between 5 and 86400");
        }
        if !(60..=86_400).contains(&self.max_lifetime_secs) {
            bail!("turn.max_lifetime_secs must be between 60 and 86400");
        }
        if self.max_allocations_per_participant == 0
            || self.max_allocations_per_address == 0
            || self.max_allocations == 0
            || self.max_connections == 0
        {
            bail!("turn.max_allocations* and turn.max_connections must be at least 1");
        }
        if let Some(h) = &self.host
            && (h.is_empty() || h.contains(['/', '?', '#', ' ', '@']))
        {
            bail!("turn.host must be a bare host name or IP address");
        }
        Ok(())
    }
}

/// `[network]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Participants use only the relay path (TURN): browsers gather only relay candidates
    /// and the media plane refuses first contact from anything but this server's relays.
    /// Needs `[turn] enabled`.
    pub relay_only: bool,
}

/// What `joined` gets: the URLs of this server's STUN/TURN and a credential per session.
pub struct IceServers {
    turn: Turn,
    stun: Vec<String>,
    turn_urls: Vec<String>,
    ttl: Duration,
    policy: IceTransportPolicy,
}

impl IceServers {
    /// Fill `ice_servers` of a `joined` with a fresh credential for its participant.
    pub fn fill(&self, msg: &mut ServerMessage) {
        let ServerMessage::Joined { id, ice, .. } = msg else {
            return;
        };
        let cred = self.turn.issue(&grant_id(*id), self.ttl);
        let mut servers = Vec::new();
        if !self.stun.is_empty() {
            servers.push(IceServer {
                urls: self.stun.clone(),
                username: None,
                credential: None,
            });
        }
        servers.push(IceServer {
            urls: self.turn_urls.clone(),
            username: Some(cred.username),
            credential: Some(cred.password),
        });
        *ice = Some(Box::new(IceSettings {
            servers,
            transport_policy: self.policy,
        }));
    }

    /// The participant's session ended: its credential and allocations go.
    pub fn revoke(&self, participant: ParticipantId) {
        self.turn.revoke(&grant_id(participant));
    }
}

fn grant_id(p: ParticipantId) -> String {
    p.0.to_string()
}

/// The running TURN server.
pub struct Running {
    /// The handle (relay check, stats).
    pub turn: Turn,
    /// For `joined`.
    pub ice: Arc<IceServers>,
    /// Its tasks.
    pub tasks: Vec<JoinHandle<()>>,
    /// Where it listens (for tests and the start-up log).
    pub addrs: TurnAddrs,
}

/// The TURN listeners' real addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnAddrs {
    /// UDP.
    pub udp: Option<SocketAddr>,
    /// TCP.
    pub tcp: Option<SocketAddr>,
    /// TLS.
    pub tls: Option<SocketAddr>,
}

/// Where a relay really sends what a client addresses to the media plane: its bind address,
/// or loopback when it binds to all interfaces.
fn media_target(bind: SocketAddr) -> SocketAddr {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bind.port())
}

/// How browsers write a host in a URL.
fn url_host(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => host.to_owned(),
    }
}

/// The host browsers are to reach TURN at.
fn turn_host(config: &Config) -> String {
    if let Some(h) = &config.turn.host {
        return url_host(h);
    }
    if let Some(u) = &config.public_url
        && let Some(rest) = u.strip_prefix("https://")
    {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
        let host = match authority.find(']') {
            Some(end) if authority.starts_with('[') => &authority[..=end],
            _ => authority.split(':').next().unwrap_or(authority),
        };
        return host.to_owned();
    }
    let ip = config.listen.ip();
    url_host(
        &if ip.is_unspecified() {
            config.announce_ip()
        } else {
            ip
        }
        .to_string(),
    )
}

/// Start the TURN server (when `[turn] enabled`). `media` is the media plane's real bind
/// address, `announce` the IP its candidates name; `tls` the HTTPS server's TLS config.
pub fn start(
    config: &Config,
    tls: &Arc<rustls::ServerConfig>,
    media: SocketAddr,
    announce: IpAddr,
    https_port: u16,
) -> Result<Option<Running>> {
    let t = &config.turn;
    if !t.enabled {
        return Ok(None);
    }
    let target = media_target(media);
    let visible = SocketAddr::new(announce, media.port());
    let mut peers = vec![(visible, target)];
    if visible != target {
        peers.push((target, target));
    }
    let ip = config.listen.ip();
    let bind = |p: Port| p_addr(ip, p);
    let udp = bind(t.udp_port)
        .map(|a| {
            std::net::UdpSocket::bind(a)
                .with_context(|| format!("cannot bind TURN UDP {a} ([turn] udp_port)"))
        })
        .transpose()?;
    let tcp = bind(t.tcp_port)
        .map(|a| {
            std::net::TcpListener::bind(a)
                .with_context(|| format!("cannot bind TURN TCP {a} ([turn] tcp_port)"))
        })
        .transpose()?;
    let tls_listener = bind(t.tls_port)
        .map(|a| {
            std::net::TcpListener::bind(a)
                .with_context(|| format!("cannot bind TURN TLS {a} ([turn] tls_port)"))
        })
        .transpose()?;
    let addrs = TurnAddrs {
        udp: udp.as_ref().and_then(|s| s.local_addr().ok()),
        tcp: tcp.as_ref().and_then(|s| s.local_addr().ok()),
        tls: tls_listener.as_ref().and_then(|s| s.local_addr().ok()),
    };
    let mut turn_tls = (**tls).clone();
    turn_tls.alpn_protocols = vec![TURN_ALPN.to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(turn_tls));
    let realm = "conclave";
    let service = ServiceConfig {
        core: TurnConfig {
            peers,
            max_allocations_per_grant: t.max_allocations_per_participant,
            max_allocations_per_address: t.max_allocations_per_address,
            max_allocations: t.max_allocations,
            default_lifetime: Duration::from_secs(600.min(t.max_lifetime_secs)),
            max_lifetime: Duration::from_secs(t.max_lifetime_secs),
            bytes_per_second: t.bandwidth_kbps * 1000 / 8,
            nonce_lifetime: Duration::from_secs(600),
            software: String::new(),
        },
        relay_ip_v4: target.is_ipv4().then_some(target.ip()),
        relay_ip_v6: target.is_ipv6().then_some(target.ip()),
        max_streams: t.max_connections,
        stream_idle: Duration::from_secs(60),
        handshake_timeout: Duration::from_secs(10),
    };
    let (turn, tasks) = Turn::start(
        service,
        Credentials::random(realm),
        Listeners {
            udp,
            tcp,
            tls: tls_listener.map(|l| (l, acceptor)),
        },
    )
    .context("cannot start the TURN server")?;
    let host = turn_host(config);
    let (stun, urls) = ice_urls(&host, addrs, t.on_https_port.then_some(https_port));
    if urls.is_empty() {
        bail!("[turn] is enabled but every port is off: set a port or enabled = false");
    }
    let ice = Arc::new(IceServers {
        turn: turn.clone(),
        stun,
        turn_urls: urls,
        ttl: Duration::from_secs(t.credential_ttl_secs),
        policy: if config.network.relay_only {
            IceTransportPolicy::Relay
        } else {
            IceTransportPolicy::All
        },
    });
    Ok(Some(Running {
        turn,
        ice,
        tasks,
        addrs,
    }))
}

/// The STUN and TURN URLs a browser gets, at most four: every URL costs each browser an
/// allocation per local interface, and Firefox warns that five or more slow ICE down.
/// - STUN and TURN on UDP;
/// - when the HTTPS port carries TURN: TURN over TLS and over plain TCP there (it passes the
///   most firewalls; plain TCP because browsers check a TURN server's certificate and give
///   up on a self-signed one), and not TCP 3478, which that makes redundant;
/// - otherwise TURN on TCP 3478 and over TLS on the TLS port.
///
/// The listeners left out still serve clients configured by hand.
fn ice_urls(host: &str, addrs: TurnAddrs, https_port: Option<u16>) -> (Vec<String>, Vec<String>) {
    let mut stun = Vec::new();
    let mut urls = Vec::new();
    if let Some(a) = addrs.udp {
        stun.push(format!("stun:{host}:{}", a.port()));
        urls.push(format!("turn:{host}:{}?transport=udp", a.port()));
    }
    if let Some(port) = https_port {
        urls.push(format!("turns:{host}:{port}?transport=tcp"));
        urls.push(format!("turn:{host}:{port}?transport=tcp"));
    } else {
        if let Some(a) = addrs.tcp {
            urls.push(format!("turn:{host}:{}?transport=tcp", a.port()));
        }
        if let Some(a) = addrs.tls {
            urls.push(format!("turns:{host}:{}?transport=tcp", a.port()));
        }
    }
    (stun, urls)
}

fn p_addr(ip: IpAddr, p: Port) -> Option<SocketAddr> {
    match p {
        Port::Off => None,
        Port::On(port) => Some(SocketAddr::new(ip, port)),
    }
}

/// The ALPN protocol of TURN over TLS (RFC 7443).
pub const TURN_ALPN: &[u8] = b"stun.turn";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_numbers_and_off() {
        #[derive(Deserialize)]
        struct T {
            p: Port,
        }
        let p = |s: &str| toml::from_str::<T>(&format!("p = {s}")).map(|t| t.p);
        assert_eq!(p("3478").unwrap(), Port::On(3478));
        assert_eq!(p("0").unwrap(), Port::On(0));
        assert_eq!(p("\"off\"").unwrap(), Port::Off);
        assert_eq!(p("false").unwrap(), Port::Off);
        for bad in ["70000", "-1", "\"on\"", "true"] {
            let e = p(bad).unwrap_err().to_string();
            assert!(e.contains("port number"), "{bad}: {e}");
        }
    }

    #[test]
    fn turn_urls_name_the_public_host() {
        let mut c = Config::default();
        assert_eq!(turn_host(&c), "127.0.0.1");
        c.public_url = Some("https://meet.example.org:8443/x".into());
        assert_eq!(turn_host(&c), "meet.example.org");
        c.public_url = Some("https://meet.example.org".into());
        assert_eq!(turn_host(&c), "meet.example.org");
        c.public_url = Some("https://[2001:db8::1]:443".into());
        assert_eq!(turn_host(&c), "[2001:db8::1]");
        c.turn.host = Some("::1".into());
        assert_eq!(turn_host(&c), "[::1]");
    }

    #[test]
    fn browsers_get_at_most_four_urls_with_the_https_port_first() {
        let a = |p: u16| Some(SocketAddr::from(([127, 0, 0, 1], p)));
        let all = TurnAddrs {
            udp: a(3478),
            tcp: a(3478),
            tls: a(5349),
        };
        let (stun, turn) = ice_urls("h", all, Some(443));
        assert_eq!(stun, ["stun:h:3478"]);
        assert_eq!(
            turn,
            [
                "turn:h:3478?transport=udp",
                "turns:h:443?transport=tcp",
                "turn:h:443?transport=tcp"
            ]
        );
        let (_, turn) = ice_urls("h", all, None);
        assert_eq!(
            turn,
            [
                "turn:h:3478?transport=udp",
                "turn:h:3478?transport=tcp",
                "turns:h:5349?transport=tcp"
            ]
        );
        let only_tls = TurnAddrs {
            tls: a(5349),
            ..TurnAddrs::default()
        };
        let (stun, turn) = ice_urls("h", only_tls, None);
        assert!(stun.is_empty());
        assert_eq!(turn, ["turns:h:5349?transport=tcp"]);
        assert_eq!(ice_urls("h", TurnAddrs::default(), None).1.len(), 0);
    }

    #[test]
    fn relays_target_loopback_when_media_binds_everywhere() {
        assert_eq!(
            media_target("0.0.0.0:10000".parse().unwrap()),
            "127.0.0.1:10000".parse().unwrap()
        );
        assert_eq!(
            media_target("192.0.2.2:10000".parse().unwrap()),
            "192.0.2.2:10000".parse().unwrap()
        );
    }
}
