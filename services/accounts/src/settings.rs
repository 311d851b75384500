//! Everything accounts reads from the environment, checked at start.

use std::time::Duration;

use dozen_bus::ProcessSettings;
use dozen_runtime::config::{ConfigError, Env, FromEnv};

use crate::throttle::ThrottleSettings;
use crate::tokens::TokenSigner;

/// Settings of the web process (`accounts serve`).
#[derive(Debug)]
pub struct Settings {
    pub process: ProcessSettings,
    pub tokens: TokenSigner,
    pub throttle: ThrottleSettings,
}

impl FromEnv for Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            process: ProcessSettings::from_env(env)?,
            tokens: TokenSigner::from_env(env)?,
            throttle: ThrottleSettings::from_env(env)?,
        })
    }
}

impl FromEnv for TokenSigner {
    /// `JWT_PRIVATE_KEY` (required: Ed25519, PKCS#8 PEM; `\n` escapes allowed),
    /// `JWT_ISSUER` and `JWT_AUDIENCE` (default `dozen`), `TOKEN_TTL` (default 1h).
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let key = env.secret("JWT_PRIVATE_KEY")?;
        let issuer = env.or("JWT_ISSUER", "dozen".to_owned())?;
        let audience = env.or("JWT_AUDIENCE", "dozen".to_owned())?;
        let ttl = env.duration_or("TOKEN_TTL", Duration::from_secs(3600))?;
        if ttl < Duration::from_secs(1) {
            return Err(ConfigError::new("TOKEN_TTL", "must be at least 1s"));
        }
        TokenSigner::new(key.expose(), issuer, audience, ttl)
            .map_err(|e| ConfigError::new("JWT_PRIVATE_KEY", format!("is unusable: {e}")))
    }
}
