//! `CACHE_URL`: which backend, where, and under which prefix.

use std::fmt;
use std::str::FromStr;

use dozen_manifest::{Backing, Var};
use dozen_runtime::config::{ConfigError, Env, FromEnv};
use dozen_runtime::database::redact_password;

const SCHEMES: [&str; 3] = ["redis", "rediss", "sqlite"];

/// A cache URL: `redis://[user:password@]host[:port][/db][?prefix=p]`,
/// `rediss://…` (TLS), or `sqlite://path[?prefix=p]`. A password in it is
/// hidden when printed.
#[derive(Clone, PartialEq, Eq)]
pub struct CacheUrl {
    url: String,
    prefix: Option<String>,
}

impl CacheUrl {
    pub fn scheme(&self) -> &str {
        self.url.split_once("://").map_or("", |(scheme, _)| scheme)
    }

    /// The namespace of every set and channel, from `?prefix=`.
    pub fn prefix(&self) -> Option<&str> {
        self.prefix.as_deref()
    }

    /// The URL for the backend's own client: without `prefix`, password included.
    pub fn without_prefix(&self) -> &str {
        &self.url
    }
}

impl FromStr for CacheUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let scheme = text.split_once("://").map_or("", |(scheme, _)| scheme);
        if !SCHEMES.contains(&scheme) {
            return Err(format!(
                "must start with one of {}",
                SCHEMES.map(|s| format!("{s}://")).join(", ")
            ));
        }
        let (base, query) = text.split_once('?').unwrap_or((text, ""));
        let mut prefix = None;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("prefix", value)) => {
                    let valid = !value.is_empty()
                        && value.len() <= 64
                        && value
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
                    if !valid {
                        return Err(
                            "prefix must be 1 to 64 of a-z, A-Z, 0-9, '-', '_' and '.'".to_owned()
                        );
                    }
                    prefix = Some(value.to_owned());
                }
                _ => kept.push(pair),
            }
        }
        let url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok(Self { url, prefix })
    }
}

impl fmt::Display for CacheUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_password(&self.url))?;
        match &self.prefix {
            Some(prefix) if self.url.contains('?') => write!(f, "&prefix={prefix}"),
            Some(prefix) => write!(f, "?prefix={prefix}"),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for CacheUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheUrl({self})")
    }
}

/// `CACHE_URL` (required).
#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub url: CacheUrl,
}

impl FromEnv for CacheSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            url: env.required("CACHE_URL")?,
        })
    }
}

impl CacheSettings {
    /// The variables [`CacheSettings::from_env`] reads, for the service's manifest.
    pub fn vars() -> Vec<Var> {
        vec![Var::secret(
            "CACHE_URL",
            "sqlite://data/cache.db",
            "fast temporary state (presence, typing) and messages between instances: redis://, rediss:// or sqlite://",
        )
        .attaches(Backing::Cache)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_taken_out_of_the_url_and_a_password_is_hidden() {
        let url: CacheUrl = "redis://:s3cret@127.0.0.1:6379/2?prefix=staging"
            .parse()
            .unwrap();
        assert_eq!(url.scheme(), "redis");
        assert_eq!(url.prefix(), Some("staging"));
        assert_eq!(url.without_prefix(), "redis://:s3cret@127.0.0.1:6379/2");
        assert!(!url.to_string().contains("s3cret"), "{url}");
        assert!(url.to_string().ends_with("?prefix=staging"), "{url}");

        let url: CacheUrl = "sqlite://data/cache.db".parse().unwrap();
        assert_eq!(url.prefix(), None);
        assert_eq!(url.without_prefix(), "sqlite://data/cache.db");
    }

    #[test]
    fn unknown_schemes_and_odd_prefixes_are_refused() {
        for bad in [
            "memcached://x",
            "",
            "redis://x?prefix=",
            "redis://x?prefix=a b",
            "redis://x?prefix=a:b",
        ] {
            assert!(bad.parse::<CacheUrl>().is_err(), "{bad:?}");
        }
        let env = Env::from_pairs([]);
        assert_eq!(CacheSettings::from_env(&env).unwrap_err().var, "CACHE_URL");
    }
}
