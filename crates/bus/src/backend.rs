//! The one trait every backend implements, and what crosses it.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::event::Event;
use crate::subscription::Subscription;

/// An event handed to a consumer, to be acknowledged, retried or dead-lettered.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: Event,
    /// 1 for the first delivery; counts redeliveries after failures and crashes.
    pub attempt: u32,
    /// The backend's handle for this delivery.
    pub receipt: String,
}

/// A subscription's queue, as the operations API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionStats {
    pub name: String,
    pub topic: String,
    /// Events waiting to be handled (including those waiting for a retry).
    pub depth: u64,
    /// Events handed to a consumer and not yet acknowledged.
    pub in_flight: u64,
    pub dead_letters: u64,
}

/// An event that exhausted its attempts or was rejected.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    pub subscription: String,
    pub event: Event,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// RFC 3339.
    pub dead_at: Option<String>,
}

/// What went wrong talking to the bus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The backend did not answer; the caller may retry later.
    #[error("the bus is unavailable: {0}")]
    Unavailable(String),
    /// The broker has no such stream, exchange, topic or queue: it was
    /// deleted, or the broker lost its state. A consumer declares its
    /// subscription again; a publish fails until the topic is back.
    #[error("missing on the broker: {0}")]
    Missing(String),
    #[error("unsupported BUS_URL {0:?}: expected sqlite://, postgres://, nats://, amqp:// or sns+sqs://")]
    UnsupportedUrl(String),
    #[error("the {0} backend is not compiled in: enable the cargo feature")]
    FeatureDisabled(&'static str),
    #[error("no subscription named {0:?}")]
    UnknownSubscription(String),
    #[error("subscription {name:?} is bound to topic {existing:?}, not {requested:?}")]
    TopicMismatch {
        name: String,
        existing: String,
        requested: String,
    },
    #[error("malformed receipt {0:?}")]
    BadReceipt(String),
    #[error("cannot encode or decode an event: {0}")]
    Codec(#[from] serde_json::Error),
    #[error("bus backend error: {0}")]
    Backend(String),
}

/// Topics → subscriptions → queues, on some backend.
///
/// Backends are dumb pipes: the retry and dead-letter policy lives in
/// [`crate::Consumer`], which calls [`Bus::retry`] or [`Bus::dead_letter`].
#[async_trait]
pub trait Bus: Send + Sync + std::fmt::Debug {
    /// Creates the topic if it does not exist (publishers call this at start).
    async fn declare_topic(&self, topic: &str) -> Result<(), BusError>;

    /// Creates the topic and the subscription's queue if missing; idempotent.
    async fn declare(&self, subscription: &Subscription) -> Result<(), BusError>;

    /// Delivers `events` to every subscription of `topic`, in order. A topic
    /// without subscriptions drops them, as a broker's topic would.
    async fn publish(&self, topic: &str, events: &[Event]) -> Result<(), BusError>;

    /// Publishes events already published once (an operator's republish), as
    /// [`Bus::publish`] does but past any duplicate window the broker keeps:
    /// the subscriptions that handled them absorb them in their inbox.
    async fn republish(&self, topic: &str, events: &[Event]) -> Result<(), BusError> {
        self.publish(topic, events).await
    }

    /// Takes up to `max` visible events; each stays invisible to other
    /// consumers for the visibility timeout unless acknowledged first.
    /// Returns quickly (it may be empty): use [`Bus::wait`] to idle.
    async fn receive(
        &self,
        subscription: &Subscription,
        max: usize,
    ) -> Result<Vec<Delivery>, BusError>;

    /// Returns when events may be available for `subscription`, or after
    /// `max_wait`. Never consumes anything, so it is safe to cancel.
    async fn wait(&self, subscription: &Subscription, max_wait: Duration);

    /// The event is handled: remove it from the queue.
    async fn ack(&self, subscription: &Subscription, delivery: &Delivery) -> Result<(), BusError>;

    /// Acknowledges several deliveries at once; backends that can do it in
    /// one round trip override this.
    async fn ack_batch(
        &self,
        subscription: &Subscription,
        deliveries: &[Delivery],
    ) -> Result<(), BusError> {
        for delivery in deliveries {
            self.ack(subscription, delivery).await?;
        }
        Ok(())
    }

    /// Keeps the event invisible to other consumers for `by` from now: its
    /// handler is still at it (retrying a transient failure in place).
    async fn extend(
        &self,
        subscription: &Subscription,
        delivery: &Delivery,
        by: Duration,
    ) -> Result<(), BusError>;

    /// Make the event visible again after `delay`, recording `error`.
    async fn retry(
        &self,
        subscription: &Subscription,
        delivery: &Delivery,
        delay: Duration,
        error: &str,
    ) -> Result<(), BusError>;

    /// Move the event to the subscription's dead-letter queue.
    async fn dead_letter(
        &self,
        subscription: &Subscription,
        delivery: &Delivery,
        error: &str,
    ) -> Result<(), BusError>;

    /// `Ok` when the backend answers: the readiness check.
    async fn ping(&self) -> Result<(), BusError>;

    /// Every subscription with its queue depth, in-flight and dead-letter counts.
    async fn subscriptions(&self) -> Result<Vec<SubscriptionStats>, BusError>;

    /// Dead letters of a subscription, oldest first.
    async fn dead_letters(
        &self,
        subscription: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BusError>;

    /// Moves dead letters back to the queue (all, or those with these event ids);
    /// returns how many moved.
    async fn redrive(
        &self,
        subscription: &str,
        event_ids: Option<&[String]>,
    ) -> Result<u64, BusError>;

    /// Deletes dead letters (all, or those with these event ids); returns how many.
    async fn purge(
        &self,
        subscription: &str,
        event_ids: Option<&[String]>,
    ) -> Result<u64, BusError>;
}
