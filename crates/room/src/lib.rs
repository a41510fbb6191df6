//! The room core: Conclave's conference logic as a pure state machine.
//!
//! Inputs go in with the current time ([`RoomCore::handle`]); [`Effect`]s come out: messages
//! to send, connections to close, commands for the media plane. There is no IO, no clock and
//! no lock in here, so every rule can be tested exhaustively on simulated time. The edges
//! (WebSocket server, media plane) only translate.

pub mod access;
mod core;
mod limits;
mod rate;
pub mod throttle;

pub use crate::access::{AccessMode, BanKey, Identity};
pub use crate::core::{
    AccessPolicy, ConnId, Effect, Input, LogRecord, MediaCommand, Peer, Reservation, RoomCore,
};
pub use crate::throttle::{Throttle, ThrottleConfig};
pub use limits::{Limits, MeetingSettings};
pub use rate::TokenBucket;

#[cfg(test)]
mod access_tests;
#[cfg(test)]
mod files_tests;
#[cfg(test)]
mod tests;
