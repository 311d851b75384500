//! `BUS_URL`: which backend, where. The scheme picks the backend.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use dozen_manifest::{Backing, Var};
use dozen_runtime::config::{ConfigError, Env, FromEnv};

use crate::backend::{Bus, BusError};
use crate::sql::SqlBus;

/// A bus URL; any password in it is hidden when printed.
#[derive(Clone, PartialEq, Eq)]
pub struct BusUrl(String);

impl BusUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn scheme(&self) -> &str {
        self.0.split_once("://").map_or("", |(scheme, _)| scheme)
    }

    /// Whether the bus makes its topics and queues itself; not when an
    /// `sns+sqs://` URL says `create=false` (infrastructure code made them).
    pub fn creates_resources(&self) -> bool {
        let query = self.0.split_once('?').map_or("", |(_, q)| q);
        !query.split('&').any(|pair| pair == "create=false")
    }
}

const SCHEMES: [&str; 7] = [
    "sqlite",
    "postgres",
    "postgresql",
    "nats",
    "amqp",
    "amqps",
    "sns+sqs",
];

impl FromStr for BusUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let url = BusUrl(url.trim().to_owned());
        if SCHEMES.contains(&url.scheme()) {
            Ok(url)
        } else {
            Err(format!(
                "must start with one of {}",
                SCHEMES.map(|s| format!("{s}://")).join(", ")
            ))
        }
    }
}

impl fmt::Display for BusUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Reuse the database URL's redaction: same user:password@host shape.
        match self.0.parse::<dozen_runtime::database::DatabaseUrl>() {
            Ok(db) => write!(f, "{db}"),
            Err(_) => match self.0.split_once('@') {
                Some((userinfo, host)) if userinfo.contains(':') => {
                    let user = userinfo.rsplit_once(':').map_or(userinfo, |(u, _)| u);
                    write!(f, "{user}:***@{host}")
                }
                _ => f.write_str(&self.0),
            },
        }
    }
}

impl fmt::Debug for BusUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BusUrl({self})")
    }
}

/// `BUS_URL` (required).
#[derive(Debug, Clone)]
pub struct BusSettings {
    pub url: BusUrl,
}

impl FromEnv for BusSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            url: env.required("BUS_URL")?,
        })
    }
}

impl BusSettings {
    /// The variables [`BusSettings::from_env`] reads, for the service's manifest.
    pub fn vars() -> Vec<Var> {
        vec![Var::required(
            "BUS_URL",
            "sqlite://data/bus.db",
            "the event bus: sqlite://, postgres://, nats://, amqp:// or sns+sqs://",
        )
        .attaches(Backing::Bus)]
    }
}

/// The bus at `url`. Never waits for the backend: a bus that is down at start
/// only delays delivery (and shows in `/readyz`).
pub async fn connect(url: &BusUrl) -> Result<Arc<dyn Bus>, BusError> {
    match url.scheme() {
        "sqlite" | "postgres" | "postgresql" => Ok(Arc::new(SqlBus::connect(url.expose())?)),
        #[cfg(feature = "nats")]
        "nats" => Ok(Arc::new(crate::nats::NatsBus::connect(url.expose()).await?)),
        #[cfg(not(feature = "nats"))]
        "nats" => Err(BusError::FeatureDisabled("nats")),
        #[cfg(feature = "amqp")]
        "amqp" | "amqps" => Ok(Arc::new(crate::amqp::AmqpBus::connect(url.expose())?)),
        #[cfg(not(feature = "amqp"))]
        "amqp" | "amqps" => Err(BusError::FeatureDisabled("amqp")),
        #[cfg(feature = "sns-sqs")]
        "sns+sqs" => Ok(Arc::new(
            crate::sns_sqs::SnsSqsBus::connect(url.expose()).await?,
        )),
        #[cfg(not(feature = "sns-sqs"))]
        "sns+sqs" => Err(BusError::FeatureDisabled("sns+sqs")),
        _ => Err(BusError::UnsupportedUrl(url.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_urls_name_a_known_scheme_and_hide_passwords() {
        let url: BusUrl = "amqp://guest:secret@127.0.0.1:5672/dozen".parse().unwrap();
        assert_eq!(url.scheme(), "amqp");
        assert!(!url.to_string().contains("secret"), "{url}");
        assert!("redis://x".parse::<BusUrl>().is_err());
        let env = Env::from_pairs([]);
        assert_eq!(BusSettings::from_env(&env).unwrap_err().var, "BUS_URL");
    }
}
