//! The room core: Conclave's conference logic as a pure state machine.
//!
//! Inputs go in with the current time ([`RoomCore::handle`]); [`Effect`]s come out: messages
//! to send, connections to close, commands for the media plane. There is no IO, no clock and
//! no lock in here, so every rule can be tested exhaustively on simulated time. The edges
//! (WebSocket server, media plane) only translate.

mod core;
mod limits;
mod rate;

pub use crate::core::{ConnId, Effect, Input, MediaCommand, RoomCore};
pub use limits::{Limits, MeetingSettings};
pub use rate::TokenBucket;

#[cfg(test)]
mod tests;
