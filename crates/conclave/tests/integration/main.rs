//! Conclave's integration tests, one module per area, in one test binary: each separate
//! binary linked the whole server again, which cost most of the Rust-test step in CI.
//! Run one area with `cargo test -p conclave --test integration signin::`.

mod acme;
mod bad_input;
mod chat;
mod cli;
mod common;
mod e2ee;
mod files;
mod ldap;
mod load;
mod media;
mod moderation;
mod passkeys;
mod records;
mod rooms_api;
mod signin;
mod tls;
mod tokens;
mod turn;
mod users;
mod video_selection;
