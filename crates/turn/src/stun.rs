//! STUN messages (RFC 8489): a strict parser, a builder, MESSAGE-INTEGRITY (HMAC-SHA1) and
//! FINGERPRINT (CRC-32), and TURN's framing on streams (RFC 8656 §12).
//!
//! Pure: no IO, no clock. Every length is checked before it is used; a malformed message is
//! an `Err`, never a panic (see the hostile-input tests at the end).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use aws_lc_rs::hmac;

/// The magic cookie of every RFC 5389/8489 message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Size of the message header.
pub const HEADER_LEN: usize = 20;
/// Largest message (or ChannelData frame) we accept or produce. Media packets are ~1.2 KB;
/// anything near 64 KB is an attack on our buffers.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// At most this many attributes per message: bounds the work one datagram can cause.
pub const MAX_ATTRIBUTES: usize = 32;

/// STUN methods used by TURN.
pub mod method {
    /// Binding (RFC 8489).
    pub const BINDING: u16 = 0x001;
    /// Allocate (RFC 8656).
    pub const ALLOCATE: u16 = 0x003;
    /// Refresh.
    pub const REFRESH: u16 = 0x004;
    /// Send (indication).
    pub const SEND: u16 = 0x006;
    /// Data (indication).
    pub const DATA: u16 = 0x007;
    /// CreatePermission.
    pub const CREATE_PERMISSION: u16 = 0x008;
    /// ChannelBind.
    pub const CHANNEL_BIND: u16 = 0x009;
}

/// Attribute types.
pub mod attr {
    /// MAPPED-ADDRESS.
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    /// USERNAME.
    pub const USERNAME: u16 = 0x0006;
    /// MESSAGE-INTEGRITY.
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    /// ERROR-CODE.
    pub const ERROR_CODE: u16 = 0x0009;
    /// UNKNOWN-ATTRIBUTES.
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    /// CHANNEL-NUMBER.
    pub const CHANNEL_NUMBER: u16 = 0x000C;
    /// LIFETIME.
    pub const LIFETIME: u16 = 0x000D;
    /// XOR-PEER-ADDRESS.
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    /// DATA.
    pub const DATA: u16 = 0x0013;
    /// REALM.
    pub const REALM: u16 = 0x0014;
    /// NONCE.
    pub const NONCE: u16 = 0x0015;
    /// XOR-RELAYED-ADDRESS.
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    /// REQUESTED-ADDRESS-FAMILY.
    pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
    /// EVEN-PORT.
    pub const EVEN_PORT: u16 = 0x0018;
    /// REQUESTED-TRANSPORT.
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    /// DONT-FRAGMENT.
    pub const DONT_FRAGMENT: u16 = 0x001A;
    /// XOR-MAPPED-ADDRESS.
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// RESERVATION-TOKEN.
    pub const RESERVATION_TOKEN: u16 = 0x0022;
    /// PRIORITY (ICE).
    pub const PRIORITY: u16 = 0x0024;
    /// USE-CANDIDATE (ICE).
    pub const USE_CANDIDATE: u16 = 0x0025;
    /// SOFTWARE.
    pub const SOFTWARE: u16 = 0x8022;
    /// FINGERPRINT.
    pub const FINGERPRINT: u16 = 0x8028;
}

/// Comprehension-required attributes this server understands in requests; any other one
/// in 0x0000..=0x7FFF gets 420 (Unknown Attribute).
const UNDERSTOOD: &[u16] = &[
    attr::MAPPED_ADDRESS,
    attr::USERNAME,
    attr::MESSAGE_INTEGRITY,
    attr::ERROR_CODE,
    attr::UNKNOWN_ATTRIBUTES,
    attr::CHANNEL_NUMBER,
    attr::LIFETIME,
    attr::XOR_PEER_ADDRESS,
    attr::DATA,
    attr::REALM,
    attr::NONCE,
    attr::XOR_RELAYED_ADDRESS,
    attr::REQUESTED_ADDRESS_FAMILY,
    attr::EVEN_PORT,
    attr::REQUESTED_TRANSPORT,
    attr::DONT_FRAGMENT,
    attr::XOR_MAPPED_ADDRESS,
    attr::PRIORITY,
    attr::USE_CANDIDATE,
];

/// The class of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A request (expects a response).
    Request,
    /// An indication (no response).
    Indication,
    /// A success response.
    Success,
    /// An error response.
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0x000,
            Class::Indication => 0x010,
            Class::Success => 0x100,
            Class::Error => 0x110,
        }
    }
}

/// Why a datagram is not a valid STUN message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Shorter than the header, or than its own length field says.
    #[error("truncated message")]
    Truncated,
    /// The first two bits are not zero, or the magic cookie is wrong: not STUN.
    #[error("not a STUN message")]
    NotStun,
    /// Length not a multiple of 4, or bytes after the last attribute.
    #[error("bad message length")]
    BadLength,
    /// An attribute runs past the end of the message.
    #[error("attribute runs past the end of the message")]
    BadAttribute,
    /// More attributes than [`MAX_ATTRIBUTES`].
    #[error("too many attributes")]
    TooManyAttributes,
    /// Longer than [`MAX_MESSAGE_LEN`].
    #[error("message too long")]
    TooLong,
    /// FINGERPRINT present but wrong, or not last.
    #[error("bad fingerprint")]
    BadFingerprint,
    /// An address attribute with an unknown family or the wrong length.
    #[error("bad address attribute")]
    BadAddress,
}

/// One attribute of a parsed message.
#[derive(Debug, Clone, Copy)]
pub struct Attribute<'a> {
    /// Its type.
    pub kind: u16,
    /// Its value (without padding).
    pub value: &'a [u8],
}

/// A parsed, structurally valid STUN message borrowing its bytes.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// Class.
    pub class: Class,
    /// Method.
    pub method: u16,
    /// Transaction ID.
    pub transaction: [u8; 12],
    attributes: Vec<Attribute<'a>>,
    raw: &'a [u8],
    /// Byte offset of MESSAGE-INTEGRITY's header, when present.
    integrity_at: Option<usize>,
    /// Whether the message carried a (valid) FINGERPRINT.
    pub has_fingerprint: bool,
}

/// Whether `data` looks like STUN (first two bits zero, magic cookie) without parsing it.
pub fn is_stun(data: &[u8]) -> bool {
    data.len() >= HEADER_LEN
        && data[0] & 0xC0 == 0
        && u32::from_be_bytes([data[4], data[5], data[6], data[7]]) == MAGIC_COOKIE
}

impl<'a> Message<'a> {
    /// Parse one whole message (exactly `data`; for streams split frames with
    /// [`frame_len`] first).
    pub fn parse(data: &'a [u8]) -> Result<Message<'a>, ParseError> {
        if data.len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        if data.len() > MAX_MESSAGE_LEN {
            return Err(ParseError::TooLong);
        }
        if !is_stun(data) {
            return Err(ParseError::NotStun);
        }
        let kind = u16::from_be_bytes([data[0], data[1]]);
        let length = usize::from(u16::from_be_bytes([data[2], data[3]]));
        if length % 4 != 0 {
            return Err(ParseError::BadLength);
        }
        if HEADER_LEN + length > data.len() {
            return Err(ParseError::Truncated);
        }
        if HEADER_LEN + length != data.len() {
            return Err(ParseError::BadLength);
        }
        let class = match kind & 0x0110 {
            0x000 => Class::Request,
            0x010 => Class::Indication,
            0x100 => Class::Success,
            _ => Class::Error,
        };
        let method = (kind & 0x000F) | ((kind & 0x00E0) >> 1) | ((kind & 0x3E00) >> 2);
        let mut transaction = [0u8; 12];
        transaction.copy_from_slice(&data[8..20]);

        let mut attributes = Vec::new();
        let mut integrity_at = None;
        let mut has_fingerprint = false;
        let mut at = HEADER_LEN;
        while at < data.len() {
            if data.len() - at < 4 {
                return Err(ParseError::BadAttribute);
            }
            let kind = u16::from_be_bytes([data[at], data[at + 1]]);
            let len = usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]));
            let padded = (len + 3) & !3;
            let start = at + 4;
            if data.len() - start < padded {
                return Err(ParseError::BadAttribute);
            }
            let value = &data[start..start + len];
            if has_fingerprint {
                // Nothing may follow FINGERPRINT.
                return Err(ParseError::BadFingerprint);
            }
            if kind == attr::FINGERPRINT {
                if len != 4 || fingerprint(&data[..at]) != u32::from_be_bytes(value_4(value)) {
                    return Err(ParseError::BadFingerprint);
                }
                has_fingerprint = true;
            } else if integrity_at.is_none() {
                // RFC 8489 §14.5: attributes after MESSAGE-INTEGRITY (but FINGERPRINT) are
                // ignored.
                if kind == attr::MESSAGE_INTEGRITY {
                    integrity_at = Some(at);
                }
                if attributes.len() == MAX_ATTRIBUTES {
                    return Err(ParseError::TooManyAttributes);
                }
                attributes.push(Attribute { kind, value });
            }
            at = start + padded;
        }
        Ok(Message {
            class,
            method,
            transaction,
            attributes,
            raw: data,
            integrity_at,
            has_fingerprint,
        })
    }

    /// The first attribute of this type.
    pub fn get(&self, kind: u16) -> Option<&'a [u8]> {
        self.attributes
            .iter()
            .find(|a| a.kind == kind)
            .map(|a| a.value)
    }

    /// Every attribute of this type, in order.
    pub fn get_all(&self, kind: u16) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.attributes
            .iter()
            .filter(move |a| a.kind == kind)
            .map(|a| a.value)
    }

    /// Comprehension-required attributes we do not understand (for 420).
    pub fn unknown_required(&self) -> Vec<u16> {
        let mut out: Vec<u16> = self
            .attributes
            .iter()
            .map(|a| a.kind)
            .filter(|k| *k < 0x8000 && !UNDERSTOOD.contains(k))
            .collect();
        out.dedup();
        out
    }

    /// Whether MESSAGE-INTEGRITY is present.
    pub fn has_integrity(&self) -> bool {
        self.integrity_at.is_some()
    }

    /// Check MESSAGE-INTEGRITY (HMAC-SHA1 over the message up to it, with the length field
    /// counting up to and including it) with `key`, in constant time.
    pub fn verify_integrity(&self, key: &[u8]) -> bool {
        let Some(at) = self.integrity_at else {
            return false;
        };
        let Some(tag) = self.get(attr::MESSAGE_INTEGRITY) else {
            return false;
        };
        if tag.len() != 20 {
            return false;
        }
        let mut covered = self.raw[..at].to_vec();
        let Ok(length) = u16::try_from(at + 24 - HEADER_LEN) else {
            return false;
        };
        covered[2..4].copy_from_slice(&length.to_be_bytes());
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
        hmac::verify(&key, &covered, tag).is_ok()
    }

    /// A UTF-8 attribute (USERNAME, REALM, NONCE).
    pub fn text(&self, kind: u16) -> Option<&'a str> {
        self.get(kind).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// A 32-bit attribute (LIFETIME).
    pub fn u32(&self, kind: u16) -> Option<u32> {
        self.get(kind)
            .filter(|v| v.len() == 4)
            .map(|v| u32::from_be_bytes(value_4(v)))
    }

    /// An XOR-encoded address attribute; `None` when absent, `Some(Err)` when malformed.
    pub fn xor_address(&self, kind: u16) -> Option<Result<SocketAddr, ParseError>> {
        self.get(kind)
            .map(|v| decode_xor_address(v, &self.transaction))
    }
}

fn value_4(v: &[u8]) -> [u8; 4] {
    let mut b = [0u8; 4];
    b.copy_from_slice(&v[..4]);
    b
}

const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// FINGERPRINT of the bytes before it (with the length field already counting it).
fn fingerprint(before: &[u8]) -> u32 {
    let mut covered = before.to_vec();
    if covered.len() >= 4 {
        let length = (before.len() + 8 - HEADER_LEN) as u16;
        covered[2..4].copy_from_slice(&length.to_be_bytes());
    }
    CRC32.checksum(&covered) ^ 0x5354_554E
}

/// Decode an XOR-MAPPED/PEER/RELAYED-ADDRESS value.
pub fn decode_xor_address(v: &[u8], transaction: &[u8; 12]) -> Result<SocketAddr, ParseError> {
    if v.len() < 4 {
        return Err(ParseError::BadAddress);
    }
    let port = u16::from_be_bytes([v[2], v[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
    match (v[1], v.len()) {
        (0x01, 8) => {
            let x = u32::from_be_bytes([v[4], v[5], v[6], v[7]]) ^ MAGIC_COOKIE;
            Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(x)), port))
        }
        (0x02, 20) => {
            let mut mask = [0u8; 16];
            mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            mask[4..].copy_from_slice(transaction);
            let mut ip = [0u8; 16];
            for (i, b) in ip.iter_mut().enumerate() {
                *b = v[4 + i] ^ mask[i];
            }
            Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
        }
        _ => Err(ParseError::BadAddress),
    }
}

/// Builds a message attribute by attribute; integrity and fingerprint last.
#[derive(Debug, Clone)]
pub struct Builder {
    buf: Vec<u8>,
    transaction: [u8; 12],
}

impl Builder {
    /// Start a message.
    pub fn new(class: Class, method: u16, transaction: [u8; 12]) -> Builder {
        let kind = (method & 0x000F) | ((method & 0x0070) << 1) | ((method & 0x0F80) << 2);
        let kind = kind | class.bits();
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&kind.to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf.extend_from_slice(&transaction);
        Builder { buf, transaction }
    }

    fn set_length(&mut self, extra: usize) {
        let len = (self.buf.len() - HEADER_LEN + extra) as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
    }

    /// Add an attribute (padded to 4 bytes).
    pub fn attr(&mut self, kind: u16, value: &[u8]) -> &mut Builder {
        self.buf.extend_from_slice(&kind.to_be_bytes());
        self.buf
            .extend_from_slice(&(value.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(value);
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
        self.set_length(0);
        self
    }

    /// Add a 32-bit attribute.
    pub fn u32(&mut self, kind: u16, v: u32) -> &mut Builder {
        self.attr(kind, &v.to_be_bytes())
    }

    /// Add an XOR-encoded address.
    pub fn xor_address(&mut self, kind: u16, addr: SocketAddr) -> &mut Builder {
        let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
        let mut v = vec![0u8];
        match addr.ip() {
            IpAddr::V4(ip) => {
                v.push(0x01);
                v.extend_from_slice(&port.to_be_bytes());
                v.extend_from_slice(&(u32::from(ip) ^ MAGIC_COOKIE).to_be_bytes());
            }
            IpAddr::V6(ip) => {
                v.push(0x02);
                v.extend_from_slice(&port.to_be_bytes());
                let mut mask = [0u8; 16];
                mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
                mask[4..].copy_from_slice(&self.transaction);
                for (b, m) in ip.octets().iter().zip(mask) {
                    v.push(b ^ m);
                }
            }
        }
        self.attr(kind, &v)
    }

    /// Add ERROR-CODE.
    pub fn error(&mut self, code: u16, reason: &str) -> &mut Builder {
        let mut v = vec![0, 0, (code / 100) as u8, (code % 100) as u8];
        v.extend_from_slice(reason.as_bytes());
        self.attr(attr::ERROR_CODE, &v)
    }

    /// Add MESSAGE-INTEGRITY computed with `key`.
    pub fn integrity(&mut self, key: &[u8]) -> &mut Builder {
        self.set_length(24);
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
        let tag = hmac::sign(&key, &self.buf);
        self.attr(attr::MESSAGE_INTEGRITY, tag.as_ref())
    }

    /// Finish with a FINGERPRINT.
    pub fn fingerprint(&mut self) -> Vec<u8> {
        let crc = fingerprint(&self.buf);
        self.u32(attr::FINGERPRINT, crc);
        std::mem::take(&mut self.buf)
    }

    /// Finish without a FINGERPRINT.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// The first channel number (RFC 8656 §12).
pub const CHANNEL_MIN: u16 = 0x4000;
/// The last channel number: RFC 8656 narrowed the range to 0x4FFF, RFC 5766 clients (coturn's
/// among them) still use up to 0x7FFE, so we accept the old range.
pub const CHANNEL_MAX: u16 = 0x7FFE;

/// A ChannelData message: channel number and payload.
pub fn parse_channel_data(data: &[u8]) -> Option<(u16, &[u8])> {
    if data.len() < 4 {
        return None;
    }
    let channel = u16::from_be_bytes([data[0], data[1]]);
    if !(CHANNEL_MIN..=CHANNEL_MAX).contains(&channel) {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    // Over UDP the padding may be missing; over streams it is part of the frame.
    data.get(4..4 + len).map(|p| (channel, p))
}

/// Encode a ChannelData message; `pad` for streams (RFC 8656 §12.5).
pub fn channel_data(channel: u16, payload: &[u8], pad: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
    if pad {
        while out.len() % 4 != 0 {
            out.push(0);
        }
    }
    out
}

/// On a stream: the length of the frame at the start of `buf` (a STUN message or a padded
/// ChannelData message), `Ok(None)` when more bytes are needed, `Err` when the stream does
/// not carry TURN framing or the frame is larger than [`MAX_MESSAGE_LEN`].
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    let total = match buf[0] {
        0x00..=0x3F => HEADER_LEN + len,
        0x40..=0x7F => 4 + ((len + 3) & !3),
        _ => return Err(ParseError::NotStun),
    };
    if total > MAX_MESSAGE_LEN {
        return Err(ParseError::TooLong);
    }
    Ok((buf.len() >= total).then_some(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TX: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

    #[test]
    fn rfc5769_sample_request_verifies() {
        // RFC 5769 §2.1: a request with USERNAME, MESSAGE-INTEGRITY (password
        // "VOkJxbRl1RmTxUk/WvJxBt") and FINGERPRINT.
        let msg: [u8; 108] = [
            0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
            0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e,
            0x20, 0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24,
            0x00, 0x04, 0x6e, 0x00, 0x01, 0xff, 0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1,
            0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09, 0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68,
            0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14, 0x9a, 0xea, 0xa7, 0x0c,
            0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5,
            0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
        ];
        let m = Message::parse(&msg).expect("RFC sample parses");
        assert_eq!(m.class, Class::Request);
        assert_eq!(m.method, method::BINDING);
        assert!(m.has_fingerprint);
        assert_eq!(m.text(attr::USERNAME), Some("evtj:h6vY"));
        assert!(m.verify_integrity(b"VOkJxbRl1RmTxUk/WvJxBt"));
        assert!(!m.verify_integrity(b"wrong"));
        // One flipped bit anywhere breaks the fingerprint.
        let mut bad = msg;
        bad[30] ^= 1;
        assert_eq!(
            Message::parse(&bad).unwrap_err(),
            ParseError::BadFingerprint
        );
    }

    #[test]
    fn built_messages_round_trip_with_integrity_and_fingerprint() {
        let peer: SocketAddr = "192.0.2.7:4444".parse().unwrap();
        let peer6: SocketAddr = "[2001:db8::1]:5555".parse().unwrap();
        let bytes = Builder::new(Class::Success, method::ALLOCATE, TX)
            .xor_address(attr::XOR_RELAYED_ADDRESS, peer)
            .xor_address(attr::XOR_PEER_ADDRESS, peer6)
            .u32(attr::LIFETIME, 600)
            .attr(attr::SOFTWARE, b"odd")
            .integrity(b"key")
            .fingerprint();
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(m.class, Class::Success);
        assert_eq!(m.method, method::ALLOCATE);
        assert_eq!(m.transaction, TX);
        assert_eq!(m.xor_address(attr::XOR_RELAYED_ADDRESS), Some(Ok(peer)));
        assert_eq!(m.xor_address(attr::XOR_PEER_ADDRESS), Some(Ok(peer6)));
        assert_eq!(m.u32(attr::LIFETIME), Some(600));
        assert!(m.verify_integrity(b"key"));
        assert!(m.has_fingerprint);
    }

    #[test]
    fn class_and_method_bits_round_trip() {
        for class in [
            Class::Request,
            Class::Indication,
            Class::Success,
            Class::Error,
        ] {
            for method in [1, 3, 4, 6, 7, 8, 9, 0xABC] {
                let b = Builder::new(class, method, TX).finish();
                let m = Message::parse(&b).unwrap();
                assert_eq!((m.class, m.method), (class, method));
            }
        }
    }

    #[test]
    fn hostile_input_is_an_error_never_a_panic() {
        let good = Builder::new(Class::Request, method::ALLOCATE, TX)
            .u32(attr::REQUESTED_TRANSPORT, 17 << 24)
            .attr(attr::USERNAME, b"user")
            .fingerprint();
        // Every truncation.
        for n in 0..good.len() {
            assert!(Message::parse(&good[..n]).is_err(), "prefix {n} parsed");
        }
        // Wrong length fields.
        for len in [0u16, 4, 7, 200, 0xFFFF] {
            let mut b = good.clone();
            b[2..4].copy_from_slice(&len.to_be_bytes());
            assert!(Message::parse(&b).is_err(), "length {len} parsed");
        }
        // An attribute whose length runs past the end.
        let mut b = good.clone();
        b[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&0x0FFFu16.to_be_bytes());
        assert!(Message::parse(&b).is_err());
        // Not STUN at all.
        assert_eq!(
            Message::parse(&[0xFF; 40]).unwrap_err(),
            ParseError::NotStun
        );
        // Too many attributes.
        let mut many = Builder::new(Class::Request, method::BINDING, TX);
        for _ in 0..=MAX_ATTRIBUTES {
            many.attr(attr::SOFTWARE, b"x");
        }
        assert_eq!(
            Message::parse(&many.finish()).unwrap_err(),
            ParseError::TooManyAttributes
        );
        // Pseudo-random bytes with a valid header: never a panic.
        let mut x: u32 = 12345;
        for _ in 0..20_000 {
            let mut b = good.clone();
            for _ in 0..3 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                let i = (x as usize) % b.len();
                b[i] = (x >> 8) as u8;
            }
            if let Ok(m) = Message::parse(&b) {
                let _ = (m.unknown_required(), m.verify_integrity(b"k"));
                let _ = m.xor_address(attr::XOR_PEER_ADDRESS);
            }
            let _ = frame_len(&b);
            let _ = parse_channel_data(&b);
        }
    }

    #[test]
    fn unknown_comprehension_required_attributes_are_listed() {
        let b = Builder::new(Class::Request, method::ALLOCATE, TX)
            .attr(0x0031, b"??")
            .attr(attr::RESERVATION_TOKEN, &[0; 8])
            .attr(0xC001, b"optional")
            .finish();
        let m = Message::parse(&b).unwrap();
        assert_eq!(m.unknown_required(), vec![0x0031, attr::RESERVATION_TOKEN]);
    }

    #[test]
    fn stream_framing() {
        let stun = Builder::new(Class::Request, method::BINDING, TX).fingerprint();
        assert_eq!(frame_len(&stun[..3]), Ok(None));
        assert_eq!(frame_len(&stun[..10]), Ok(None));
        assert_eq!(frame_len(&stun), Ok(Some(stun.len())));
        let cd = channel_data(0x4001, b"hello", true);
        assert_eq!(cd.len(), 12);
        assert_eq!(frame_len(&cd), Ok(Some(12)));
        assert_eq!(parse_channel_data(&cd), Some((0x4001, &b"hello"[..])));
        // "GET " starts like ChannelData 0x4745: a stream is told apart from HTTP by its first
        // frame, which is always STUN (see the HTTPS port's demultiplexer).
        assert_eq!(frame_len(b"GET / HTTP/1.1\r\n"), Err(ParseError::TooLong));
        assert_eq!(frame_len(&[0x80, 3, 1, 0, 0xA0]), Err(ParseError::NotStun));
        assert_eq!(frame_len(&[0x40, 0, 0xFF, 0xFF]), Err(ParseError::TooLong));
        assert_eq!(parse_channel_data(&[0x7F, 0xFF, 0, 1, 9]), None);
        assert_eq!(parse_channel_data(&[0x80, 0, 0, 1, 9]), None);
    }
}
