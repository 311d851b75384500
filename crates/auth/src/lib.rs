//! Session tokens for Dozen services.
//!
//! The accounts service alone holds the private key and signs tokens (EdDSA,
//! Ed25519). Every other service checks them with [`TokenVerifier`], built from
//! the public keys accounts publishes at `/.well-known/jwks.json` ([`JwkSet`]).
//! In an axum handler, take an [`Authenticated`] argument to require a valid token.

mod extract;
mod jwk;
mod keys;
mod verifier;

pub use extract::{AuthRejection, Authenticated};
pub use jwk::{Jwk, JwkSet, KeyError};
pub use keys::{CheckError, Keys, REFETCH_AFTER};
pub use verifier::{Claims, TokenError, TokenVerifier};
