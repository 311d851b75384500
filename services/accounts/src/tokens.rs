//! Signing session tokens: only accounts holds the private key.

use std::time::Duration;

use dozen_auth::{Claims, Jwk, JwkSet, KeyError, TokenVerifier};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// Signs EdDSA JWTs with the key from `JWT_PRIVATE_KEY`; publishes its public half.
pub struct TokenSigner {
    key: EncodingKey,
    jwk: Jwk,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.jwk.kid)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// A freshly issued token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: u64,
}

impl TokenSigner {
    /// `pem` is a PKCS#8 Ed25519 private key; literal `\n` sequences count as
    /// newlines, so the key fits on one line of an env file.
    pub fn new(
        pem: &str,
        issuer: String,
        audience: String,
        ttl: Duration,
    ) -> Result<Self, KeyError> {
        let pem = pem.trim().replace("\\n", "\n");
        let jwk = Jwk::from_private_pem(&pem)?;
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
            .and_then(|key| key.to_pkcs8_der())
            .map(|der| EncodingKey::from_ed_der(der.as_bytes()))
            .map_err(|_| KeyError::NotEd25519Pem)?;
        Ok(Self {
            key,
            jwk,
            issuer,
            audience,
            ttl,
        })
    }

    pub fn issue(
        &self,
        user_id: &str,
        username: &str,
    ) -> Result<IssuedToken, jsonwebtoken::errors::Error> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims {
            sub: user_id.to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            preferred_username: Some(username.to_owned()),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = self.jwk.kid.clone();
        Ok(IssuedToken {
            token: jsonwebtoken::encode(&header, &claims, &self.key)?,
            expires_in: self.ttl.as_secs(),
        })
    }

    /// The public keys, as served at `/.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk.clone()],
        }
    }

    /// A verifier for the tokens this signer issues.
    pub fn verifier(&self) -> TokenVerifier {
        TokenVerifier::new(&self.jwks(), &self.issuer, &self.audience)
            .expect("the signer's own public key is a valid Ed25519 JWK")
    }
}
