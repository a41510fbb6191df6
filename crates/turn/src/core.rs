//! The TURN server as a sans-IO state machine (RFC 8656 over RFC 8489): credentials and
//! grants, allocations, permissions, channels, lifetimes, limits. Inputs carry `now`; outputs
//! say what to send where and which relay sockets to open or close. No sockets, no clock.
//!
//! Conclave's relays serve one purpose: carrying a participant's media to this server's own
//! SFU. So a relay may talk only to the configured media addresses (`TurnConfig::peers`); a
//! permission, channel or Send to any other address is refused (403) or dropped. A relay
//! cannot be used to reach inside the network or anywhere else.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::auth::{Credentials, parse_username};
use crate::stun::{self, Builder, Class, Message, attr, method};

/// Limits and the peers relays may reach.
#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// Media addresses a relay may send to: (the address clients name, where it really is).
    /// Usually one: the SFU's announced address and its bind address.
    pub peers: Vec<(SocketAddr, SocketAddr)>,
    /// Allocations one grant (participant) may hold at once.
    pub max_allocations_per_grant: usize,
    /// Allocations one client IP address may hold at once.
    pub max_allocations_per_address: usize,
    /// Allocations in all.
    pub max_allocations: usize,
    /// Lifetime when the client asks for none.
    pub default_lifetime: Duration,
    /// Longest lifetime granted.
    pub max_lifetime: Duration,
    /// Relayed bytes per second per allocation, both directions together (0 = no limit).
    pub bytes_per_second: u64,
    /// How long a nonce stays valid.
    pub nonce_lifetime: Duration,
    /// SOFTWARE attribute in responses (empty: none).
    pub software: String,
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            peers: Vec::new(),
            max_allocations_per_grant: 16,
            max_allocations_per_address: 64,
            max_allocations: 10_000,
            default_lifetime: Duration::from_secs(600),
            max_lifetime: Duration::from_secs(3600),
            bytes_per_second: 2_500_000,
            nonce_lifetime: Duration::from_secs(600),
            software: String::new(),
        }
    }
}

/// How a client reaches us: its datagrams' source on the UDP listener, or a stream
/// (TCP/TLS) connection by the edge's number. One allocation per client (RFC 8656 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientId {
    /// A UDP client, by source address.
    Udp(SocketAddr),
    /// A TCP or TLS connection.
    Stream(u64),
}

impl ClientId {
    fn pads(self) -> bool {
        matches!(self, ClientId::Stream(_))
    }
}

/// The current time, both ways: monotonic for lifetimes, wall clock for credential expiry.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic.
    pub mono: Instant,
    /// Unix seconds.
    pub unix: u64,
}

/// What the edge must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send to a client.
    ToClient {
        /// Who.
        client: ClientId,
        /// A STUN message or ChannelData.
        data: Vec<u8>,
    },
    /// Send from a relay socket to a peer (always a configured media address).
    ToPeer {
        /// The relay socket (its address).
        relay: SocketAddr,
        /// Where to.
        peer: SocketAddr,
        /// Payload.
        data: Vec<u8>,
    },
    /// Open a relay socket for this client and report it with [`TurnCore::relay_opened`].
    OpenRelay {
        /// Who asked.
        client: ClientId,
        /// IPv6 instead of IPv4.
        ipv6: bool,
        /// An even port (EVEN-PORT without reservation).
        even: bool,
    },
    /// Close this relay socket.
    CloseRelay {
        /// Its address.
        relay: SocketAddr,
    },
    /// Close the client's stream (its grant was revoked).
    CloseClient {
        /// Who.
        client: ClientId,
    },
}

/// Counters for monitoring and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnStats {
    /// Live allocations.
    pub allocations: usize,
    /// Requests refused: Allocate for any reason, CreatePermission and ChannelBind for a
    /// peer the relay may not reach (403). Malformed or unauthenticated requests of other
    /// methods are answered with their error code but not counted.
    pub refused: u64,
    /// Packets dropped: no permission, not an allowed peer, over the bandwidth limit.
    pub dropped: u64,
    /// Packets relayed (both directions).
    pub relayed: u64,
}

struct Grant {
    username: String,
    expires_unix: u64,
}

struct Pending {
    transaction: [u8; 12],
    grant: String,
    username: String,
    key: [u8; 16],
    lifetime: Duration,
    client_addr: SocketAddr,
}

struct Allocation {
    client_addr: SocketAddr,
    grant: String,
    username: String,
    key: [u8; 16],
    relay: SocketAddr,
    allocate_transaction: [u8; 12],
    expires: Instant,
    permissions: HashMap<IpAddr, Instant>,
    channels: HashMap<u16, (SocketAddr, Instant)>,
    bucket: Bucket,
}

impl Allocation {
    fn channel_for(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        self.channels
            .iter()
            .find(|(_, (p, exp))| *p == peer && *exp > now)
            .map(|(c, _)| *c)
    }

    fn permitted(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions.get(&ip).is_some_and(|exp| *exp > now)
    }
}

/// A token bucket over bytes: one second of burst.
struct Bucket {
    rate: u64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u64, now: Instant) -> Bucket {
        Bucket {
            rate,
            tokens: rate as f64,
            at: now,
        }
    }

    fn take(&mut self, n: usize, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * self.rate as f64).min(self.rate as f64);
        if self.tokens >= n as f64 {
            self.tokens -= n as f64;
            true
        } else {
            false
        }
    }
}

const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
const UDP: u8 = 17;

/// The TURN server state.
pub struct TurnCore {
    config: TurnConfig,
    creds: Credentials,
    grants: HashMap<String, Grant>,
    allocations: HashMap<ClientId, Allocation>,
    by_relay: HashMap<SocketAddr, ClientId>,
    pending: HashMap<ClientId, Pending>,
    stats: TurnStats,
}

/// The result of checking a request's credentials.
struct Authed {
    grant: String,
    username: String,
    key: [u8; 16],
}

impl TurnCore {
    /// A server with these limits and credentials.
    pub fn new(config: TurnConfig, creds: Credentials) -> TurnCore {
        TurnCore {
            config,
            creds,
            grants: HashMap::new(),
            allocations: HashMap::new(),
            by_relay: HashMap::new(),
            pending: HashMap::new(),
            stats: TurnStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> TurnStats {
        TurnStats {
            allocations: self.allocations.len(),
            ..self.stats
        }
    }

    /// Allow allocations with `username` (minted for `grant`) until it expires.
    pub fn grant(&mut self, grant: &str, username: &str) {
        let Some((expires_unix, g)) = parse_username(username) else {
            return;
        };
        if g != grant {
            return;
        }
        self.grants.insert(
            grant.to_owned(),
            Grant {
                username: username.to_owned(),
                expires_unix,
            },
        );
    }

    /// The grant ended (participant left or was removed): refuse its credentials from now
    /// on and release its allocations.
    pub fn revoke(&mut self, grant: &str) -> Vec<Output> {
        self.grants.remove(grant);
        self.pending.retain(|_, p| p.grant != grant);
        let clients: Vec<ClientId> = self
            .allocations
            .iter()
            .filter(|(_, a)| a.grant == grant)
            .map(|(c, _)| *c)
            .collect();
        let mut out = Vec::new();
        for c in clients {
            out.extend(self.release(c));
            if matches!(c, ClientId::Stream(_)) {
                out.push(Output::CloseClient { client: c });
            }
        }
        out
    }

    /// A stream client went away.
    pub fn client_closed(&mut self, client: ClientId) -> Vec<Output> {
        self.pending.remove(&client);
        self.release(client)
    }

    fn release(&mut self, client: ClientId) -> Vec<Output> {
        match self.allocations.remove(&client) {
            Some(a) => {
                self.by_relay.remove(&a.relay);
                vec![Output::CloseRelay { relay: a.relay }]
            }
            None => Vec::new(),
        }
    }

    /// Expire allocations, permissions, channels and grants.
    pub fn tick(&mut self, now: Now) -> Vec<Output> {
        // An expired credential opens no new allocation; one still in use keeps its grant
        // (refreshes go on until the participant leaves and the grant is revoked).
        let in_use: std::collections::HashSet<&str> = self
            .allocations
            .values()
            .map(|a| a.grant.as_str())
            .collect();
        self.grants
            .retain(|id, g| g.expires_unix > now.unix || in_use.contains(id.as_str()));
        let expired: Vec<ClientId> = self
            .allocations
            .iter()
            .filter(|(_, a)| a.expires <= now.mono)
            .map(|(c, _)| *c)
            .collect();
        let mut out = Vec::new();
        for c in expired {
            out.extend(self.release(c));
        }
        for a in self.allocations.values_mut() {
            a.permissions.retain(|_, exp| *exp > now.mono);
            a.channels.retain(|_, (_, exp)| *exp > now.mono);
        }
        out
    }

    /// The relay socket asked for by [`Output::OpenRelay`] is open (or could not be).
    pub fn relay_opened(
        &mut self,
        now: Now,
        client: ClientId,
        relay: Result<SocketAddr, String>,
    ) -> Vec<Output> {
        let Some(p) = self.pending.remove(&client) else {
            // The client went away meanwhile.
            return match relay {
                Ok(relay) => vec![Output::CloseRelay { relay }],
                Err(_) => Vec::new(),
            };
        };
        let relay = match relay {
            Ok(r) => r,
            Err(why) => {
                tracing::warn!("cannot open a TURN relay socket: {why}");
                self.stats.refused += 1;
                let mut b = Builder::new(Class::Error, method::ALLOCATE, p.transaction);
                b.error(508, "Insufficient Capacity");
                return vec![self.reply(client, b, Some(&p.key))];
            }
        };
        let mut b = Builder::new(Class::Success, method::ALLOCATE, p.transaction);
        b.xor_address(attr::XOR_RELAYED_ADDRESS, relay)
            .u32(attr::LIFETIME, p.lifetime.as_secs() as u32)
            .xor_address(attr::XOR_MAPPED_ADDRESS, p.client_addr);
        let reply = self.reply(client, b, Some(&p.key));
        self.by_relay.insert(relay, client);
        self.allocations.insert(
            client,
            Allocation {
                client_addr: p.client_addr,
                grant: p.grant,
                username: p.username,
                key: p.key,
                relay,
                allocate_transaction: p.transaction,
                expires: now.mono + p.lifetime,
                permissions: HashMap::new(),
                channels: HashMap::new(),
                bucket: Bucket::new(self.config.bytes_per_second, now.mono),
            },
        );
        vec![reply]
    }

    /// A datagram or stream frame from a client.
    pub fn from_client(
        &mut self,
        now: Now,
        client: ClientId,
        client_addr: SocketAddr,
        data: &[u8],
    ) -> Vec<Output> {
        if data.first().is_some_and(|b| (0x40..=0x7F).contains(b)) {
            return self.channel_data_from_client(now, client, data);
        }
        let Ok(msg) = Message::parse(data) else {
            // Not STUN, or malformed: silence (RFC 8489 §6.3: discard).
            return Vec::new();
        };
        match msg.class {
            Class::Request => self.request(now, client, client_addr, &msg),
            Class::Indication if msg.method == method::SEND => {
                self.send_indication(now, client, &msg)
            }
            // Responses and other indications are not for a server.
            _ => Vec::new(),
        }
    }

    /// A datagram that arrived on a relay socket from `from`.
    pub fn from_peer(
        &mut self,
        now: Now,
        relay: SocketAddr,
        from: SocketAddr,
        data: &[u8],
    ) -> Vec<Output> {
        let Some(client) = self.by_relay.get(&relay).copied() else {
            return Vec::new();
        };
        // Only the media plane may answer, under the address the client knows it by.
        let Some(visible) = self
            .config
            .peers
            .iter()
            .find(|(_, real)| *real == from)
            .map(|(v, _)| *v)
        else {
            self.stats.dropped += 1;
            return Vec::new();
        };
        let Some(a) = self.allocations.get_mut(&client) else {
            return Vec::new();
        };
        if !a.permitted(visible.ip(), now.mono) || !a.bucket.take(data.len(), now.mono) {
            self.stats.dropped += 1;
            return Vec::new();
        }
        self.stats.relayed += 1;
        let out = match a.channel_for(visible, now.mono) {
            Some(ch) => stun::channel_data(ch, data, client.pads()),
            None => {
                let mut tx = [0u8; 12];
                rand::fill(&mut tx);
                Builder::new(Class::Indication, method::DATA, tx)
                    .xor_address(attr::XOR_PEER_ADDRESS, visible)
                    .attr(attr::DATA, data)
                    .finish()
            }
        };
        vec![Output::ToClient { client, data: out }]
    }

    /// The real address for a client-visible peer address, if a relay may reach it.
    fn allowed_peer(&self, peer: SocketAddr) -> Option<SocketAddr> {
        self.config
            .peers
            .iter()
            .find(|(v, _)| *v == peer)
            .map(|(_, r)| *r)
    }

    fn peer_ip_allowed(&self, ip: IpAddr) -> bool {
        self.config.peers.iter().any(|(v, _)| v.ip() == ip)
    }

    fn channel_data_from_client(&mut self, now: Now, client: ClientId, data: &[u8]) -> Vec<Output> {
        let Some((channel, payload)) = stun::parse_channel_data(data) else {
            return Vec::new();
        };
        let Some(a) = self.allocations.get_mut(&client) else {
            return Vec::new();
        };
        let Some((peer, exp)) = a.channels.get(&channel).copied() else {
            self.stats.dropped += 1;
            return Vec::new();
        };
        if exp <= now.mono || !a.bucket.take(payload.len(), now.mono) {
            self.stats.dropped += 1;
            return Vec::new();
        }
        let relay = a.relay;
        let Some(real) = self.allowed_peer(peer) else {
            self.stats.dropped += 1;
            return Vec::new();
        };
        self.stats.relayed += 1;
        vec![Output::ToPeer {
            relay,
            peer: real,
            data: payload.to_vec(),
        }]
    }

    fn send_indication(&mut self, now: Now, client: ClientId, msg: &Message) -> Vec<Output> {
        let (Some(Ok(peer)), Some(payload)) =
            (msg.xor_address(attr::XOR_PEER_ADDRESS), msg.get(attr::DATA))
        else {
            return Vec::new();
        };
        let real = self.allowed_peer(peer);
        let Some(a) = self.allocations.get_mut(&client) else {
            return Vec::new();
        };
        let Some(real) = real else {
            self.stats.dropped += 1;
            return Vec::new();
        };
        if !a.permitted(peer.ip(), now.mono) || !a.bucket.take(payload.len(), now.mono) {
            self.stats.dropped += 1;
            return Vec::new();
        }
        self.stats.relayed += 1;
        vec![Output::ToPeer {
            relay: a.relay,
            peer: real,
            data: payload.to_vec(),
        }]
    }

    fn request(
        &mut self,
        now: Now,
        client: ClientId,
        client_addr: SocketAddr,
        msg: &Message,
    ) -> Vec<Output> {
        let unknown = msg.unknown_required();
        if !unknown.is_empty() {
            let mut b = Builder::new(Class::Error, msg.method, msg.transaction);
            b.error(420, "Unknown Attribute");
            let list: Vec<u8> = unknown.iter().flat_map(|k| k.to_be_bytes()).collect();
            b.attr(attr::UNKNOWN_ATTRIBUTES, &list);
            return vec![self.reply(client, b, None)];
        }
        match msg.method {
            method::BINDING => {
                let mut b = Builder::new(Class::Success, method::BINDING, msg.transaction);
                b.xor_address(attr::XOR_MAPPED_ADDRESS, client_addr);
                vec![self.reply(client, b, None)]
            }
            method::ALLOCATE => self.allocate(now, client, client_addr, msg),
            method::REFRESH | method::CREATE_PERMISSION | method::CHANNEL_BIND => {
                self.on_allocation(now, client, client_addr, msg)
            }
            _ => {
                let mut b = Builder::new(Class::Error, msg.method, msg.transaction);
                b.error(400, "Bad Request: unknown method");
                vec![self.reply(client, b, None)]
            }
        }
    }

    /// Check the long-term credential (RFC 8489 §9.2.4). `Err` carries the error reply.
    /// `new_allocation`: the credential must not have expired (for requests on an existing
    /// allocation it is enough that its grant still stands).
    fn authenticate(
        &self,
        now: Now,
        client: ClientId,
        client_addr: SocketAddr,
        msg: &Message,
        new_allocation: bool,
    ) -> Result<Authed, Output> {
        let challenge = |code: u16, reason: &str| {
            let mut b = Builder::new(Class::Error, msg.method, msg.transaction);
            b.error(code, reason)
                .attr(attr::REALM, self.creds.realm().as_bytes())
                .attr(
                    attr::NONCE,
                    self.creds
                        .nonce(client_addr, now.unix + self.config.nonce_lifetime.as_secs())
                        .as_bytes(),
                );
            self.reply(client, b, None)
        };
        if !msg.has_integrity() {
            return Err(challenge(401, "Unauthenticated"));
        }
        let (Some(username), Some(_realm), Some(nonce)) = (
            msg.text(attr::USERNAME),
            msg.text(attr::REALM),
            msg.text(attr::NONCE),
        ) else {
            let mut b = Builder::new(Class::Error, msg.method, msg.transaction);
            b.error(400, "Bad Request: USERNAME, REALM and NONCE are required");
            return Err(self.reply(client, b, None));
        };
        if !self.creds.nonce_valid(nonce, client_addr, now.unix) {
            return Err(challenge(438, "Stale Nonce"));
        }
        let key = self.creds.key(username);
        let live = parse_username(username).and_then(|(exp, grant)| {
            let g = self.grants.get(grant)?;
            let fresh = exp > now.unix || !new_allocation;
            (fresh && g.username == username).then_some(grant)
        });
        match live {
            Some(grant) if msg.verify_integrity(&key) => Ok(Authed {
                grant: grant.to_owned(),
                username: username.to_owned(),
                key,
            }),
            _ => Err(challenge(401, "Unauthenticated")),
        }
    }

    fn allocate(
        &mut self,
        now: Now,
        client: ClientId,
        client_addr: SocketAddr,
        msg: &Message,
    ) -> Vec<Output> {
        let auth = match self.authenticate(now, client, client_addr, msg, true) {
            Ok(a) => a,
            Err(reply) => {
                self.stats.refused += 1;
                return vec![reply];
            }
        };
        let error = |core: &mut TurnCore, code: u16, reason: &str| {
            core.stats.refused += 1;
            let mut b = Builder::new(Class::Error, method::ALLOCATE, msg.transaction);
            b.error(code, reason);
            vec![core.reply(client, b, Some(&auth.key))]
        };
        if let Some(a) = self.allocations.get(&client) {
            if a.allocate_transaction == msg.transaction {
                // A retransmission: the same success again.
                let mut b = Builder::new(Class::Success, method::ALLOCATE, msg.transaction);
                b.xor_address(attr::XOR_RELAYED_ADDRESS, a.relay)
                    .u32(
                        attr::LIFETIME,
                        a.expires.saturating_duration_since(now.mono).as_secs() as u32,
                    )
                    .xor_address(attr::XOR_MAPPED_ADDRESS, a.client_addr);
                let key = a.key;
                return vec![self.reply(client, b, Some(&key))];
            }
            return error(self, 437, "Allocation Mismatch");
        }
        if self.pending.contains_key(&client) {
            return Vec::new(); // Retransmission while the relay opens.
        }
        match msg.get(attr::REQUESTED_TRANSPORT) {
            None => return error(self, 400, "Bad Request: REQUESTED-TRANSPORT is required"),
            Some(v) if v.len() != 4 => {
                return error(self, 400, "Bad Request: malformed REQUESTED-TRANSPORT");
            }
            Some(v) if v[0] != UDP => return error(self, 442, "Unsupported Transport Protocol"),
            Some(_) => {}
        }
        let ipv6 = match msg.get(attr::REQUESTED_ADDRESS_FAMILY) {
            None => false,
            Some([0x01, ..]) => false,
            Some([0x02, ..]) => true,
            Some(_) => return error(self, 440, "Address Family not Supported"),
        };
        let even = match msg.get(attr::EVEN_PORT) {
            None => false,
            Some([flags]) if flags & 0x80 == 0 => true,
            Some([_]) => return error(self, 508, "Insufficient Capacity: no port reservations"),
            Some(_) => return error(self, 400, "Bad Request: malformed EVEN-PORT"),
        };
        if !self
            .config
            .peers
            .iter()
            .any(|(_, real)| real.is_ipv6() == ipv6)
        {
            return error(self, 440, "Address Family not Supported");
        }
        let live = || {
            self.allocations
                .values()
                .map(|a| (&a.grant, a.client_addr.ip()))
        };
        let pending = || {
            self.pending
                .values()
                .map(|p| (&p.grant, p.client_addr.ip()))
        };
        let per_grant = live()
            .chain(pending())
            .filter(|(g, _)| **g == auth.grant)
            .count();
        let per_address = live()
            .chain(pending())
            .filter(|(_, ip)| *ip == client_addr.ip())
            .count();
        if per_grant >= self.config.max_allocations_per_grant
            || per_address >= self.config.max_allocations_per_address
        {
            return error(self, 486, "Allocation Quota Reached");
        }
        if self.allocations.len() + self.pending.len() >= self.config.max_allocations {
            return error(self, 508, "Insufficient Capacity");
        }
        let asked = msg
            .u32(attr::LIFETIME)
            .map(|s| Duration::from_secs(u64::from(s)));
        let lifetime = asked
            .unwrap_or(self.config.default_lifetime)
            .clamp(Duration::from_secs(1), self.config.max_lifetime);
        self.pending.insert(
            client,
            Pending {
                transaction: msg.transaction,
                grant: auth.grant,
                username: auth.username,
                key: auth.key,
                lifetime,
                client_addr,
            },
        );
        vec![Output::OpenRelay { client, ipv6, even }]
    }

    /// Refresh, CreatePermission, ChannelBind: requests about an existing allocation.
    fn on_allocation(
        &mut self,
        now: Now,
        client: ClientId,
        client_addr: SocketAddr,
        msg: &Message,
    ) -> Vec<Output> {
        let auth = match self.authenticate(now, client, client_addr, msg, false) {
            Ok(a) => a,
            Err(reply) => return vec![reply],
        };
        let key = auth.key;
        let reply = |core: &TurnCore, code: Option<(u16, &str)>, b: Option<Builder>| {
            let b = match code {
                Some((code, reason)) => {
                    let mut e = Builder::new(Class::Error, msg.method, msg.transaction);
                    e.error(code, reason);
                    e
                }
                None => {
                    b.unwrap_or_else(|| Builder::new(Class::Success, msg.method, msg.transaction))
                }
            };
            vec![core.reply(client, b, Some(&key))]
        };
        let Some(a) = self.allocations.get(&client) else {
            return reply(self, Some((437, "Allocation Mismatch")), None);
        };
        if a.username != auth.username {
            return reply(self, Some((441, "Wrong Credentials")), None);
        }
        match msg.method {
            method::REFRESH => {
                let asked = msg
                    .u32(attr::LIFETIME)
                    .map(|s| Duration::from_secs(u64::from(s)))
                    .unwrap_or(self.config.default_lifetime);
                if asked.is_zero() {
                    let mut out = self.release(client);
                    let mut b = Builder::new(Class::Success, method::REFRESH, msg.transaction);
                    b.u32(attr::LIFETIME, 0);
                    out.extend(reply(self, None, Some(b)));
                    return out;
                }
                let lifetime = asked.min(self.config.max_lifetime);
                if let Some(a) = self.allocations.get_mut(&client) {
                    a.expires = now.mono + lifetime;
                }
                let mut b = Builder::new(Class::Success, method::REFRESH, msg.transaction);
                b.u32(attr::LIFETIME, lifetime.as_secs() as u32);
                reply(self, None, Some(b))
            }
            method::CREATE_PERMISSION => {
                let mut peers = Vec::new();
                for v in msg.get_all(attr::XOR_PEER_ADDRESS) {
                    match stun::decode_xor_address(v, &msg.transaction) {
                        Ok(p) => peers.push(p),
                        Err(_) => {
                            return reply(
                                self,
                                Some((400, "Bad Request: bad XOR-PEER-ADDRESS")),
                                None,
                            );
                        }
                    }
                }
                if peers.is_empty() {
                    return reply(
                        self,
                        Some((400, "Bad Request: XOR-PEER-ADDRESS is required")),
                        None,
                    );
                }
                if peers.iter().any(|p| p.is_ipv6() != a.relay.is_ipv6()) {
                    return reply(self, Some((443, "Peer Address Family Mismatch")), None);
                }
                if !peers.iter().all(|p| self.peer_ip_allowed(p.ip())) {
                    self.stats.refused += 1;
                    return reply(
                        self,
                        Some((403, "Forbidden: this relay reaches only the meeting server")),
                        None,
                    );
                }
                if let Some(a) = self.allocations.get_mut(&client) {
                    for p in peers {
                        a.permissions.insert(p.ip(), now.mono + PERMISSION_LIFETIME);
                    }
                }
                reply(self, None, None)
            }
            _ => {
                let channel = match msg.get(attr::CHANNEL_NUMBER) {
                    Some(v) if v.len() == 4 => u16::from_be_bytes([v[0], v[1]]),
                    _ => {
                        return reply(
                            self,
                            Some((400, "Bad Request: CHANNEL-NUMBER is required")),
                            None,
                        );
                    }
                };
                if !(stun::CHANNEL_MIN..=stun::CHANNEL_MAX).contains(&channel) {
                    return reply(
                        self,
                        Some((400, "Bad Request: channel number out of range")),
                        None,
                    );
                }
                let peer = match msg.xor_address(attr::XOR_PEER_ADDRESS) {
                    Some(Ok(p)) => p,
                    _ => {
                        return reply(
                            self,
                            Some((400, "Bad Request: XOR-PEER-ADDRESS is required")),
                            None,
                        );
                    }
                };
                if peer.is_ipv6() != a.relay.is_ipv6() {
                    return reply(self, Some((443, "Peer Address Family Mismatch")), None);
                }
                if self.allowed_peer(peer).is_none() {
                    self.stats.refused += 1;
                    return reply(
                        self,
                        Some((403, "Forbidden: this relay reaches only the meeting server")),
                        None,
                    );
                }
                let taken = a
                    .channels
                    .iter()
                    .any(|(c, (p, exp))| *exp > now.mono && ((*c == channel) != (*p == peer)));
                if taken {
                    return reply(
                        self,
                        Some((400, "Bad Request: channel or peer already bound")),
                        None,
                    );
                }
                if let Some(a) = self.allocations.get_mut(&client) {
                    a.channels
                        .insert(channel, (peer, now.mono + CHANNEL_LIFETIME));
                    a.permissions
                        .insert(peer.ip(), now.mono + PERMISSION_LIFETIME);
                }
                reply(self, None, None)
            }
        }
    }

    /// Finish a reply: SOFTWARE, MESSAGE-INTEGRITY when authenticated, FINGERPRINT.
    fn reply(&self, client: ClientId, mut b: Builder, key: Option<&[u8; 16]>) -> Output {
        if !self.config.software.is_empty() {
            b.attr(attr::SOFTWARE, self.config.software.as_bytes());
        }
        if let Some(key) = key {
            b.integrity(key);
        }
        Output::ToClient {
            client,
            data: b.fingerprint(),
        }
    }
}
