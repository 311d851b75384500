//! `BUS_URL`: which backend, where. The scheme picks the backend.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

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

    /// The `namespace=` of the URL: every name the bus gives the broker
    /// (streams, subjects, consumers, exchanges, queues, topics) is under
    /// it, so that systems sharing a broker share nothing.
    pub fn namespace(&self) -> Option<&str> {
        self.options()
            .find_map(|(key, value)| (key == "namespace").then_some(value))
    }

    fn options(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .split_once('?')
            .map_or("", |(_, query)| query)
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
    }

    /// The URL for the backend's own client: without `namespace=`, which is Dozen's.
    pub(crate) fn for_client(&self) -> String {
        let Some((base, query)) = self.0.split_once('?') else {
            return self.0.clone();
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.is_empty() && !pair.starts_with("namespace="))
            .collect();
        if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    }

    /// Whether the bus makes its topics and queues itself; not when an
    /// `sns+sqs://` URL says `create=false` (infrastructure code made them).
    pub fn creates_resources(&self) -> bool {
        let query = self.0.split_once('?').map_or("", |(_, q)| q);
        !query.split('&').any(|pair| pair == "create=false")
    }
}

/// The longest namespace: AWS names (80 characters) must still fit topics and queues.
const MAX_NAMESPACE: usize = 20;

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
        if !SCHEMES.contains(&url.scheme()) {
            return Err(format!(
                "must start with one of {}",
                SCHEMES.map(|s| format!("{s}://")).join(", ")
            ));
        }
        if let Some(namespace) = url.namespace() {
            if matches!(url.scheme(), "sqlite" | "postgres" | "postgresql") {
                return Err("namespace= is for nats://, amqp:// and sns+sqs://; a SQL bus is one database per system".into());
            }
            let fits = (1..=MAX_NAMESPACE).contains(&namespace.len())
                && namespace
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            if !fits {
                return Err(format!(
                    "namespace={namespace:?}: 1 to {MAX_NAMESPACE} lowercase letters and digits"
                ));
            }
        }
        Ok(url)
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

/// `BUS_URL` (required) and `OUTBOX_RETENTION`.
#[derive(Debug, Clone)]
pub struct BusSettings {
    pub url: BusUrl,
    /// How long the outbox keeps what it published, for `<service> republish`.
    pub outbox_retention: Duration,
}

impl FromEnv for BusSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            url: env.required("BUS_URL")?,
            outbox_retention: env
                .duration_or("OUTBOX_RETENTION", crate::outbox::DEFAULT_RETENTION)?,
        })
    }
}

impl BusSettings {
    /// The bus at `url`, with the default retention.
    pub fn new(url: BusUrl) -> Self {
        Self {
            url,
            outbox_retention: crate::outbox::DEFAULT_RETENTION,
        }
    }

    /// The variables [`BusSettings::from_env`] reads, for the service's manifest.
    pub fn vars() -> Vec<Var> {
        vec![
            Var::required(
                "BUS_URL",
                "sqlite://data/bus.db",
                "the event bus: sqlite://, postgres://, nats://, amqp:// or sns+sqs://",
            )
            .attaches(Backing::Bus),
            Var::optional(
                "OUTBOX_RETENTION",
                "how long published events are kept for `republish` (default 7d; 0s keeps none)",
            ),
        ]
    }
}

/// The bus at `url`. Never waits for the backend: a bus that is down at start
/// only delays delivery (and shows in `/readyz`).
pub async fn connect(url: &BusUrl) -> Result<Arc<dyn Bus>, BusError> {
    match url.scheme() {
        "sqlite" | "postgres" | "postgresql" => Ok(Arc::new(SqlBus::connect(url.expose())?)),
        #[cfg(feature = "nats")]
        "nats" => Ok(Arc::new(
            crate::nats::NatsBus::connect(&url.for_client(), url.namespace()).await?,
        )),
        #[cfg(not(feature = "nats"))]
        "nats" => Err(BusError::FeatureDisabled("nats")),
        #[cfg(feature = "amqp")]
        "amqp" | "amqps" => Ok(Arc::new(crate::amqp::AmqpBus::connect(
            &url.for_client(),
            url.namespace(),
        )?)),
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

    #[test]
    fn a_namespace_is_lowercase_letters_and_digits_and_never_reaches_the_client() {
        let url: BusUrl = "nats://127.0.0.1:4222?namespace=staging2".parse().unwrap();
        assert_eq!(url.namespace(), Some("staging2"));
        assert_eq!(url.for_client(), "nats://127.0.0.1:4222");
        let url: BusUrl = "amqp://g:g@h/v?management=http://h:15672&namespace=dev"
            .parse()
            .unwrap();
        assert_eq!(url.for_client(), "amqp://g:g@h/v?management=http://h:15672");
        for bad in [
            "nats://h?namespace=",
            "nats://h?namespace=Staging",
            "nats://h?namespace=a-b",
            "nats://h?namespace=a.b",
            "nats://h?namespace=abcdefghijklmnopqrstu",
            "postgres://h/db?namespace=a",
        ] {
            assert!(bad.parse::<BusUrl>().is_err(), "{bad}");
        }
        let plain: BusUrl = "nats://h:4222".parse().unwrap();
        assert_eq!(
            (plain.namespace(), plain.for_client().as_str()),
            (None, "nats://h:4222")
        );
    }
}
