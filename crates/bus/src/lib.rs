//! Dozen's event bus: event producers → topics → subscriptions → queues →
//! event consumers ("smart endpoints, dumb pipes").
//!
//! # The delivery contract
//!
//! Every backend, chosen by `BUS_URL`, keeps these promises; the conformance
//! suite in `tests/bus/suite.rs` checks each of them on each backend.
//!
//! - **At least once.** An event published is handled at least once by every
//!   subscription of its topic. It may be handled twice (a consumer died after
//!   the effect but before the ack), so effects go through the [`inbox`].
//! - **Fan-out.** Every subscription of a topic gets every event published
//!   after the subscription was declared.
//! - **Competing consumers.** The consumers of one subscription share its
//!   queue: each event goes to one of them at a time.
//! - **Ack on success.** A handler returning `Ok` acknowledges the event; it
//!   is not delivered again.
//! - **Redelivery with backoff.** A handler returning an error gets the event
//!   again after [`Subscription::retry_delay`] (exponential, capped, jittered).
//! - **Dead letters.** After [`Subscription::max_attempts`] deliveries, or at
//!   once for a [`HandlerError::permanent`] error (e.g. data that does not
//!   decode), the event moves to the subscription's dead-letter queue, where it
//!   can be listed, redriven or purged. It never blocks the events behind it.
//! - **Visibility timeout.** A delivered event not settled within
//!   [`Subscription::visibility_timeout`] (its consumer crashed) is delivered
//!   again; that counts as an attempt.
//! - **In-flight limit.** A consumer holds at most
//!   [`Subscription::max_in_flight`] events at once.
//! - **Order per key**, where the backend offers it and the subscription is
//!   [`Subscription::ordered`]: events with the same [`Event::partitionkey`]
//!   are handled one at a time, in publish order. Events without a key, and
//!   unordered subscriptions, have no order.
//! - **Recovery.** A subscription the broker lost (deleted, or a broker
//!   restarted on an empty store) is declared again by its consumers, and
//!   readiness fails while a consumer cannot take events. A publisher finding
//!   a topic it published to gone leaves it to the consumers for a while
//!   (the publish fails and the outbox keeps the events), so that what is
//!   published after the loss reaches the subscriptions.
//! - **Drain on shutdown.** When [`Consumer::run`]'s shutdown triggers, the
//!   consumer takes no more events; those in hand finish and are settled once.
//!
//! # Producing
//!
//! Publish through the transactional [`outbox`]: write the event in the same
//! transaction as the state change; the [`outbox::Relay`] publishes it after
//! the commit and retries while the bus is down, and keeps what it published
//! for a while, which [`republish`] sends again after a broker lost events.

#[cfg(feature = "amqp")]
mod amqp;
mod backend;
mod backing;
mod consumer;
mod event;
pub mod inbox;
#[cfg(any(feature = "nats", feature = "amqp", feature = "sns-sqs"))]
pub mod names;
#[cfg(feature = "nats")]
mod nats;
pub mod outbox;
mod process;
pub mod republish;
mod settings;
#[cfg(feature = "sns-sqs")]
mod sns_sqs;
mod sql;
mod subscription;
#[cfg(any(feature = "nats", feature = "amqp", feature = "sns-sqs"))]
mod vanished;

#[cfg(feature = "amqp")]
pub use amqp::AmqpBus;
pub use backend::{Bus, BusError, DeadLetter, Delivery, SubscriptionStats};
pub use backing::{Backing, BackingError};
pub use consumer::{typed, Consumer, ConsumerHealth, Handler, HandlerError, HandlerFuture};
pub use dozen_runtime::trace::TraceParent;
pub use event::{DecodeError, Event, EventType};
#[cfg(feature = "nats")]
pub use nats::NatsBus;
pub use outbox::{Outbox, Relay};
pub use process::{release_phase, Process, ProcessSettings, ReleaseSettings, Work};
pub use settings::{connect, BusSettings, BusUrl};
#[cfg(feature = "sns-sqs")]
pub use sns_sqs::{config_for_url as sns_sqs_config, SnsSqsBus};
pub use sql::SqlBus;
pub use subscription::Subscription;
