//! Public keys as JSON Web Keys (RFC 7517), identified by their thumbprint (RFC 7638).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One public key. Only Ed25519 (`kty: OKP`, `crv: Ed25519`) keys are used by Dozen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

/// The document served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// A key that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("not an Ed25519 private key in PKCS#8 PEM form")]
    NotEd25519Pem,
    #[error("key {kid:?} is not an Ed25519 public key with an `x` member")]
    UnsupportedJwk { kid: Option<String> },
}

impl Jwk {
    /// The JWK for an Ed25519 public key, its `kid` being the RFC 7638 thumbprint.
    pub fn ed25519(public_key: &[u8; 32]) -> Self {
        let x = URL_SAFE_NO_PAD.encode(public_key);
        // RFC 7638: the required members, in lexicographic order, no spaces.
        let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        Self {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some(x),
            kid: Some(kid),
            alg: Some("EdDSA".into()),
            use_: Some("sig".into()),
        }
    }

    /// The public half of a PKCS#8 PEM Ed25519 private key, as a JWK.
    pub fn from_private_pem(pem: &str) -> Result<Self, KeyError> {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let key =
            ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(|_| KeyError::NotEd25519Pem)?;
        Ok(Self::ed25519(&key.verifying_key().to_bytes()))
    }

    pub(crate) fn ed25519_x(&self) -> Result<&str, KeyError> {
        match (self.kty.as_str(), self.crv.as_deref(), self.x.as_deref()) {
            ("OKP", Some("Ed25519"), Some(x)) => Ok(x),
            _ => Err(KeyError::UnsupportedJwk {
                kid: self.kid.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_id_is_the_rfc_7638_thumbprint() {
        // RFC 8037 appendix A.3: the thumbprint of its example Ed25519 key.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        let jwk = Jwk::ed25519(&x.try_into().unwrap());
        assert_eq!(
            jwk.kid.as_deref(),
            Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")
        );
    }

    #[test]
    fn a_non_ed25519_pem_is_refused() {
        let err =
            Jwk::from_private_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
                .unwrap_err();
        assert_eq!(err, KeyError::NotEd25519Pem);
    }
}
