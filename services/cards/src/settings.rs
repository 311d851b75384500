//! Everything cards reads from the environment, checked at start.

use std::time::Duration;

use dozen_bus::ProcessSettings;
use dozen_runtime::config::{ConfigError, Env, FromEnv};

use crate::fetch::{FetchLimits, Fetcher};
use crate::guard::{AddressPolicy, Network};

/// Settings of the worker process (`cards work`).
#[derive(Debug)]
pub struct Settings {
    pub process: ProcessSettings,
    pub fetcher: Fetcher,
}

impl FromEnv for Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            process: ProcessSettings::from_env(env)?,
            fetcher: Fetcher::from_env(env)?,
        })
    }
}

impl FromEnv for Fetcher {
    /// `CARDS_ALLOW_ADDRESSES` (comma-separated addresses or CIDR networks that
    /// are fetched although not public, e.g. `127.0.0.1` in tests; default none),
    /// `CARDS_CONNECT_TIMEOUT` (3s), `CARDS_FETCH_TIMEOUT` (10s, redirects
    /// included), `CARDS_MAX_BYTES` (1048576: the part of a page read).
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let allowed = env
            .raw("CARDS_ALLOW_ADDRESSES")
            .unwrap_or_default()
            .split(',')
            .filter(|item| !item.trim().is_empty())
            .map(|item| item.parse::<Network>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigError::new("CARDS_ALLOW_ADDRESSES", e))?;
        let defaults = FetchLimits::default();
        let limits = FetchLimits {
            connect_timeout: env.duration_or("CARDS_CONNECT_TIMEOUT", defaults.connect_timeout)?,
            total_timeout: env.duration_or("CARDS_FETCH_TIMEOUT", defaults.total_timeout)?,
            max_bytes: env.or("CARDS_MAX_BYTES", defaults.max_bytes)?,
            max_redirects: defaults.max_redirects,
        };
        if limits.total_timeout < Duration::from_millis(100) || limits.max_bytes < 1024 {
            return Err(ConfigError::new(
                "CARDS_FETCH_TIMEOUT",
                "and CARDS_MAX_BYTES must be at least 100ms and 1024",
            ));
        }
        Ok(Fetcher::new(AddressPolicy::allowing(allowed), limits))
    }
}
