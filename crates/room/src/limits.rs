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
            messages_per_second: 20.0,
            message_burst: 40.0,
        }
    }
}
