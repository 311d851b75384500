//! Everything chat reads from the environment, checked at start.

use std::time::Duration;

use dozen_auth::{JwkSet, Keys, TokenVerifier};
use dozen_bus::ProcessSettings;
use dozen_cache::CacheSettings;
use dozen_runtime::config::{ConfigError, Env, FromEnv};
use dozen_runtime::database::DatabaseSettings;
use dozen_runtime::logging::LogSettings;

/// Settings of the web process (`chat serve`).
#[derive(Debug)]
pub struct Settings {
    pub process: ProcessSettings,
    pub keys: Keys,
    /// Presence, typing and signals between instances (`CACHE_URL`).
    pub cache: CacheSettings,
    /// `PRESENCE_TTL` (default 15s, at least 300ms): how long a user stays
    /// online after their instance last refreshed them (every third of it).
    pub presence_ttl: Duration,
}

impl FromEnv for Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let presence_ttl = env.duration_or("PRESENCE_TTL", Duration::from_secs(15))?;
        if presence_ttl < Duration::from_millis(300) {
            return Err(ConfigError::new("PRESENCE_TTL", "must be at least 300ms"));
        }
        Ok(Self {
            process: ProcessSettings::from_env(env)?,
            keys: keys_from_env(env)?,
            cache: CacheSettings::from_env(env)?,
            presence_ttl,
        })
    }
}

/// Settings of the worker (`chat work`).
#[derive(Debug)]
pub struct WorkerSettings {
    pub process: ProcessSettings,
    /// Where the worker tells the web processes that a room changed (a
    /// card came), so their streams show it (`CACHE_URL`).
    pub cache: CacheSettings,
}

impl FromEnv for WorkerSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            process: ProcessSettings::from_env(env)?,
            cache: CacheSettings::from_env(env)?,
        })
    }
}

/// Settings of `chat archive`: the database and the cold storage.
#[derive(Debug)]
pub struct ArchiveSettings {
    pub log: LogSettings,
    pub database: DatabaseSettings,
    /// `ARCHIVE_URL` (required): `file://<folder>` or `s3://<bucket>/<prefix>`.
    pub destination: String,
}

impl FromEnv for ArchiveSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            log: LogSettings::from_env(env)?,
            database: DatabaseSettings::from_env(env)?,
            destination: archive_url(env)?,
        })
    }
}

fn archive_url(env: &Env) -> Result<String, ConfigError> {
    let url: String = env.required("ARCHIVE_URL")?;
    if !(url.starts_with("file://") || url.starts_with("s3://")) {
        return Err(ConfigError::new(
            "ARCHIVE_URL",
            format!("must be file://<folder> or s3://<bucket>/<prefix> (got {url:?})"),
        ));
    }
    Ok(url)
}

/// The keys tokens are checked with: `JWKS_URL` (accounts'
/// `/.well-known/jwks.json`, fetched when first needed and when a new key id
/// appears) or `JWKS` (the JSON document itself); `JWT_ISSUER` and
/// `JWT_AUDIENCE` default to `dozen`, as in accounts.
fn keys_from_env(env: &Env) -> Result<Keys, ConfigError> {
    {
        let issuer: String = env.or("JWT_ISSUER", "dozen".to_owned())?;
        let audience: String = env.or("JWT_AUDIENCE", "dozen".to_owned())?;
        match (env.raw("JWKS"), env.raw("JWKS_URL")) {
            (Some(document), _) => {
                let jwks: JwkSet = serde_json::from_str(document).map_err(|e| {
                    ConfigError::new("JWKS", format!("is not a JWKS document: {e}"))
                })?;
                let verifier = TokenVerifier::new(&jwks, &issuer, &audience)
                    .map_err(|e| ConfigError::new("JWKS", format!("holds an unusable key: {e}")))?;
                Ok(Keys::fixed(verifier))
            }
            (None, Some(url)) => {
                let parsed = url::Url::parse(url)
                    .map_err(|e| ConfigError::new("JWKS_URL", format!("is not a URL: {e}")))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(ConfigError::new("JWKS_URL", "must be an http or https URL"));
                }
                Ok(Keys::fetched(url, &issuer, &audience))
            }
            (None, None) => Err(ConfigError::new(
                "JWKS_URL",
                "is required (or JWKS): where accounts publishes its public keys",
            )),
        }
    }
}
