//! Checking a token: signature, algorithm, key id, issuer, audience, and
//! its time: not expired (`exp`), already valid (`nbf`), issued no later
//! than now (`iat`) — each with the same leeway for clock skew (RFC 7519
//! §4.1.4, §4.1.5, §4.1.6).

use std::collections::HashMap;
use std::sync::Mutex;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::jwk::{JwkSet, KeyError};

/// What a Dozen session token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: String,
    pub iss: String,
    pub aud: String,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    /// Expires at, seconds since the Unix epoch.
    pub exp: i64,
    /// The user's username when the token was issued (OpenID Connect's claim
    /// name), so a service can show it before the signup event reaches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
}

/// Why a token was refused. Callers answer 401 for every one of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's algorithm is not EdDSA")]
    WrongAlgorithm,
    #[error("the token's key id is unknown")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf or iat in the future)")]
    NotYetValid,
    #[error("the token is not meant for this audience")]
    WrongAudience,
    #[error("the token was not issued by the expected issuer")]
    WrongIssuer,
    #[error("the token lacks a required claim or has an invalid one")]
    InvalidClaims,
}

/// Checks tokens against a set of public keys, one expected issuer and audience.
///
/// A token that passed is remembered (up to [`REMEMBERED_TOKENS`]): taken
/// again it costs no signature check, only its `exp` is checked again (a
/// check of the signature, issuer, audience, `nbf` and `iat` that passed
/// once passes for good with the same keys).
pub struct TokenVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
    remembered: Mutex<HashMap<String, Claims>>,
}

/// How many checked tokens a verifier remembers; past it, it starts again.
pub const REMEMBERED_TOKENS: usize = 4096;

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Clock skew tolerated between the signer's clock and ours.
const LEEWAY_SECONDS: u64 = 30;

impl TokenVerifier {
    /// A verifier for every Ed25519 key in `keys` that has a `kid`.
    pub fn new(keys: &JwkSet, issuer: &str, audience: &str) -> Result<Self, KeyError> {
        let mut by_kid = HashMap::new();
        for jwk in &keys.keys {
            let x = jwk.ed25519_x()?;
            let kid = jwk
                .kid
                .clone()
                .ok_or(KeyError::UnsupportedJwk { kid: None })?;
            let key = DecodingKey::from_ed_components(x).map_err(|_| KeyError::UnsupportedJwk {
                kid: Some(kid.clone()),
            })?;
            by_kid.insert(kid, key);
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        Ok(Self {
            keys: by_kid,
            validation,
            remembered: Mutex::default(),
        })
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let now = jsonwebtoken::get_current_timestamp();
        let expired = |claims: &Claims| {
            claims.exp < 0 || (claims.exp as u64).saturating_add(LEEWAY_SECONDS) < now
        };
        let known = self
            .remembered
            .lock()
            .expect("not poisoned")
            .get(token)
            .cloned();
        if let Some(claims) = known {
            return if expired(&claims) {
                Err(TokenError::Expired)
            } else {
                Ok(claims)
            };
        }
        let claims = self.check(token)?;
        let mut remembered = self.remembered.lock().expect("not poisoned");
        if remembered.len() >= REMEMBERED_TOKENS {
            remembered.clear();
        }
        remembered.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    /// The whole check, from the signature on.
    fn check(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            // `alg: none` and other algorithms we never sign with land here.
            jsonwebtoken::errors::ErrorKind::Json(_) => TokenError::WrongAlgorithm,
            _ => TokenError::Malformed,
        })?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::WrongAlgorithm);
        }
        let key = header
            .kid
            .as_ref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or(TokenError::UnknownKey)?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidAudience => TokenError::WrongAudience,
                ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
                ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
                ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) => {
                    TokenError::InvalidClaims
                }
                _ => TokenError::Malformed,
            }
        })?;
        // A token issued in the future was signed by a clock far ahead, or
        // made to outlive its `exp` check: refused like `nbf`.
        let now = jsonwebtoken::get_current_timestamp();
        if data.claims.iat > i64::try_from(now + LEEWAY_SECONDS).unwrap_or(i64::MAX) {
            return Err(TokenError::NotYetValid);
        }
        Ok(data.claims)
    }
}
