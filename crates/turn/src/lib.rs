//! Conclave's own STUN/TURN server (RFC 8489, RFC 8656): UDP, TCP and TLS transports, UDP
//! relays that reach only the SFU's media address, short-lived credentials for admitted
//! participants only.
//!
//! - [`stun`]: the message codec (pure, hostile-input tested);
//! - [`auth`]: credentials, keys and nonces;
//! - [`core`]: the sans-IO server state machine;
//! - [`service`]: the tokio edge (listeners, relay sockets, the task owning the core).

pub mod auth;
pub mod core;
#[cfg(test)]
mod core_tests;
pub mod service;
pub mod stun;

pub use auth::{Credentials, IceCredential};
pub use core::{ClientId, TurnConfig, TurnStats};
pub use service::{Listeners, ServiceConfig, Turn};
