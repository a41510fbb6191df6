//! Explicit, configurable limits enforced by the room core.

pub use conclave_proto::MeetingSettings;

/// Limits the room core enforces. Every one is a config option (`[limits]` in the config file).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Rooms open at the same time on this server.
    pub max_rooms: usize,
    /// Participants in one room.
    pub max_participants_per_room: usize,
    /// Participants on the whole server.
    pub max_participants: usize,
    /// Characters in a display name.
    pub max_name_chars: usize,
    /// Characters in a chat message.
    pub max_chat_chars: usize,
    /// Base64 characters in one MLS field (`commit`, `group_info`). A GroupInfo with the
    /// ratchet tree of 100 members is about 40 000.
    pub max_mls_chars: usize,
    /// Bytes in one file (`file_offer.size`); 0 turns file sharing off on the server.
    pub max_file_bytes: u64,
    /// Files one participant may be sending at the same time.
    pub max_files_in_flight: usize,
    /// File bytes (encrypted chunks) per second one connection may send; a burst of two
    /// seconds' worth is allowed. File chunks do not count against `messages_per_second`.
    pub file_bytes_per_second: u64,
    /// Sustained signalling messages per second per connection.
    pub messages_per_second: f64,
    /// Messages a connection may send in a burst above the sustained rate.
    pub message_burst: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_rooms: 1000,
            max_participants_per_room: 100,
            max_participants: 2000,
            max_name_chars: 64,
            max_chat_chars: 2000,
            max_mls_chars: 192 * 1024,
            max_file_bytes: 32 * 1024 * 1024,
            max_files_in_flight: 3,
            file_bytes_per_second: 4 * 1024 * 1024,
            messages_per_second: 20.0,
            message_burst: 40.0,
        }
    }
}

impl Limits {
    /// Base64 characters of an encrypted chat message: `max_chat_chars` of UTF-8 (up to 4
    /// bytes each) plus 1 KiB of MLS framing and padding, as base64.
    pub fn max_chat_ciphertext_chars(&self) -> usize {
        (self.max_chat_chars * 4 + 1024).div_ceil(3) * 4
    }
}
