//! Join tokens for Conclave: JSON Web Tokens compatible with the tokens Jitsi Meet accepts
//! (`iss`, `aud`, `sub`, `room`, `exp`, `nbf`, `context.user`, `moderator`, `lobby_bypass`), so
//! an operator can keep an existing token issuer.
//!
//! - [`TokenConfig`] is the `[tokens]` config section; [`TokenConfig::validate`] names the key
//!   that is wrong.
//! - [`TokenVerifier`] checks a token (HS256 with a shared secret, RS256/ES256 with a PEM
//!   public key or a JSON Web Key Set from a file or an https URL) and returns a plain
//!   [`TokenIdentity`], or a specific [`TokenError`].
//! - [`check_room`] tells whether an identity admits to a room.
//! - [`mint`] / [`TokenMinter`] sign tokens for `conclave token`; [`invite_link`] builds the
//!   link to hand out.
//!
//! Exactly one algorithm is configured and every other `alg` (`none` included) is refused
//! before any key is touched; keys are never taken from the token itself. See the "Tokens"
//! section of `docs/security.md`.

mod claims;
mod config;
mod error;
mod id_token;
mod identity;
mod jwks_fetch;
mod keys;
mod mint;
mod time;
mod verify;

pub use config::{ConfigError, MIN_SECRET_BYTES, Secret, TokenAlgorithm, TokenConfig};
pub use error::TokenError;
pub use id_token::{IdTokenError, IdTokenExpect, IdTokenKeys, MAX_ID_TOKEN_BYTES, verify_id_token};
pub use identity::{RoomScope, TokenIdentity, check_room};
pub use jwks_fetch::{
    ClientTlsError, HttpsError, HttpsRequest, HttpsUrl, JwksFetchError, client_tls, https_request,
};
pub use keys::{MAX_JWKS_KEYS, MIN_RSA_BITS};
pub use mint::{LinkError, MintError, MintRequest, TokenMinter, invite_link, mint};
pub use verify::{JWKS_RETRY, TokenVerifier};
