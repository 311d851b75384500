//! Fast, temporary state shared by the instances of a service: the "cache"
//! of twelve-factor designs, a backing service attached by URL (factor IV).
//!
//! Two kinds of thing live here, both safe to lose:
//! - **expiring sets** ([`Cache::put`], [`Cache::members`]): named sets of
//!   members, each with a value and a time to live. An instance refreshes the
//!   members it owns; when it dies they drop out as their TTL runs out. Chat
//!   keeps who is online and who is typing in a room this way.
//! - **channels** ([`Cache::publish`], [`Cache::subscribe`]): messages between
//!   the instances, delivered **at most once** to the subscribers connected
//!   at the time. A subscriber that loses its connection is told at once
//!   ([`Delivery::Lost`]), so it can look for itself meanwhile, and given a
//!   [`Delivery::Gap`] when it is back, so it can read again what it keeps
//!   in sync.
//!
//! Backends, by `CACHE_URL` scheme ([`CacheUrl`]):
//! - `redis://host:port/db`, `rediss://…` (TLS): Redis, Valkey, ElastiCache.
//!   Expiry is judged by the server's clock, so instances on several hosts agree.
//! - `sqlite://path`: embedded, no server; a file that the processes of one
//!   host share (WAL mode). Channels are read by one poll per process
//!   ([`embedded::POLL`]), not per subscriber.
//!
//! `?prefix=name` namespaces every set and channel, so two systems (or two
//! test runs) can share one server.

mod settings;

pub mod embedded;
#[cfg(feature = "redis")]
pub mod redis;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

pub use settings::{CacheSettings, CacheUrl};

/// A member of an expiring set, with its value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub member: String,
    pub value: String,
}

/// A message published on a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The channel, without the URL's `prefix`.
    pub channel: String,
    pub payload: String,
}

/// What a [`Subscription`] hands over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Message(Message),
    /// The subscription was cut off: messages published from now until the
    /// next [`Delivery::Gap`] are not delivered. A subscriber that must not
    /// miss a change looks for itself meanwhile.
    Lost,
    /// The subscription was cut off and is back: messages published
    /// meanwhile were not delivered.
    Gap,
}

/// What went wrong talking to the cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The server did not answer or refused; the caller may retry later.
    #[error("the cache is unavailable: {0}")]
    Unavailable(String),
    /// The URL names no backend, or its backend cannot read it.
    #[error("unusable CACHE_URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("the {0} cache backend is not compiled in: enable the cargo feature")]
    FeatureDisabled(&'static str),
}

/// The operations every backend implements, on names already prefixed.
#[async_trait]
trait Backend: Send + Sync + fmt::Debug {
    async fn put(
        &self,
        set: &str,
        member: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), CacheError>;
    async fn remove(&self, set: &str, member: &str) -> Result<(), CacheError>;
    async fn members(&self, set: &str) -> Result<Vec<Entry>, CacheError>;
    async fn publish(&self, channel: &str, payload: &str) -> Result<(), CacheError>;
    /// Every channel whose name starts with `prefix`; subscribed when this returns.
    async fn subscribe(&self, prefix: &str) -> Result<mpsc::Receiver<Delivery>, CacheError>;
    async fn ping(&self) -> Result<(), CacheError>;
}

/// A cache, attached by URL. Cheap to clone; connects on first use, so a
/// process starts even while the cache is down.
#[derive(Clone)]
pub struct Cache {
    backend: Arc<dyn Backend>,
    /// `prefix:` from the URL, or empty.
    namespace: String,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.backend)
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl Cache {
    /// The cache at `url`. Never waits for the server.
    ///
    /// # Errors
    /// [`CacheError::InvalidUrl`] for a URL no backend reads (a bad path, a
    /// bad Redis URL), [`CacheError::FeatureDisabled`] for `redis://` without
    /// the `redis` feature.
    pub fn connect(url: &CacheUrl) -> Result<Self, CacheError> {
        let backend: Arc<dyn Backend> = match url.scheme() {
            "sqlite" => Arc::new(embedded::EmbeddedCache::open(url)?),
            #[cfg(feature = "redis")]
            "redis" | "rediss" => Arc::new(redis::RedisCache::open(url)?),
            #[cfg(not(feature = "redis"))]
            "redis" | "rediss" => return Err(CacheError::FeatureDisabled("redis")),
            _ => {
                return Err(CacheError::InvalidUrl {
                    url: url.to_string(),
                    reason: "expected redis://, rediss:// or sqlite://".to_owned(),
                })
            }
        };
        let namespace = url.prefix().map(|p| format!("{p}:")).unwrap_or_default();
        Ok(Self { backend, namespace })
    }

    fn named(&self, name: &str) -> String {
        format!("{}{name}", self.namespace)
    }

    /// Adds `member` to `set` with `value`, or refreshes it, for `ttl` from now
    /// (millisecond precision). Members that expired are dropped on the way.
    pub async fn put(
        &self,
        set: &str,
        member: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let ttl = ttl.max(Duration::from_millis(1));
        self.backend.put(&self.named(set), member, value, ttl).await
    }

    /// Removes `member` from `set`; removing a member that is not there is no change.
    pub async fn remove(&self, set: &str, member: &str) -> Result<(), CacheError> {
        self.backend.remove(&self.named(set), member).await
    }

    /// The members of `set` whose TTL has not run out, sorted by member.
    pub async fn members(&self, set: &str) -> Result<Vec<Entry>, CacheError> {
        let mut entries = self.backend.members(&self.named(set)).await?;
        entries.sort();
        Ok(entries)
    }

    /// Sends `payload` to the subscribers of `channel` connected now.
    pub async fn publish(&self, channel: &str, payload: &str) -> Result<(), CacheError> {
        self.backend.publish(&self.named(channel), payload).await
    }

    /// Every message published from now on to a channel whose name starts
    /// with `prefix`. Once subscribed it stays so: a lost connection is
    /// reconnected and reported as a [`Delivery::Gap`].
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when the first subscription cannot be made.
    pub async fn subscribe(&self, prefix: &str) -> Result<Subscription, CacheError> {
        let receiver = self.backend.subscribe(&self.named(prefix)).await?;
        Ok(Subscription {
            receiver,
            namespace: self.namespace.clone(),
        })
    }

    /// `Ok` when the cache answers: the readiness check.
    pub async fn ping(&self) -> Result<(), CacheError> {
        self.backend.ping().await
    }
}

/// Messages from [`Cache::subscribe`]. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    receiver: mpsc::Receiver<Delivery>,
    namespace: String,
}

impl Subscription {
    /// Waits for the next delivery. It goes on after the [`Cache`] it came
    /// from is dropped; `None` only if the backend's task has ended.
    pub async fn next(&mut self) -> Option<Delivery> {
        let delivery = self.receiver.recv().await?;
        Some(match delivery {
            Delivery::Message(Message { channel, payload }) => Delivery::Message(Message {
                channel: channel
                    .strip_prefix(&self.namespace)
                    .map(str::to_owned)
                    .unwrap_or(channel),
                payload,
            }),
            other => other,
        })
    }
}

/// How many deliveries a slow subscriber may have waiting before new ones
/// are dropped for it (and it is told with a [`Delivery::Gap`]).
const SUBSCRIBER_BUFFER: usize = 1024;

/// Hands `delivery` to a subscriber without ever waiting on it. `false`
/// when the subscriber is gone. A full buffer drops the message; the gap
/// is reported once there is room again.
fn hand_over(sender: &mpsc::Sender<Delivery>, delivery: Delivery, gap_owed: &mut bool) -> bool {
    use mpsc::error::TrySendError;
    if *gap_owed {
        match sender.try_send(Delivery::Gap) {
            Ok(()) => *gap_owed = false,
            Err(TrySendError::Full(_)) => return true,
            Err(TrySendError::Closed(_)) => return false,
        }
    }
    match sender.try_send(delivery) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            *gap_owed = true;
            true
        }
        Err(TrySendError::Closed(_)) => false,
    }
}
