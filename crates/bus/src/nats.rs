//! `nats://host:port`: NATS JetStream.
//!
//! Mapping, native rather than emulated (names as without a namespace; with
//! `namespace=<ns>` in the URL, `dozen` becomes `dozen-<ns>` and `DOZEN`
//! `DOZEN-<NS>` in every one of them):
//! - a **topic** is a stream `DOZEN_<topic>` with interest retention over the
//!   subjects `dozen.<topic>.>`: an event stays until every subscription that
//!   existed when it was published has acknowledged it, and a topic without
//!   subscriptions keeps nothing, as the contract says. A stream per topic (not
//!   one stream with a subject per topic) gives each topic its own limits,
//!   retention and storage, and lets a topic be dropped alone;
//! - a **subscription** is a durable pull consumer with `filter_subject`
//!   `dozen.<topic>.>` (one filter: the 2.9 servers ignore `filter_subjects`);
//!   competing consumers pull from it; `ack_wait` is the visibility timeout;
//!   a retry is a NAK with a delay; the delivery count comes from the server;
//! - **dead letters** go to the stream `DOZEN_DEAD_LETTERS`, subject
//!   `dozen_dead.<subscription>`, with the last error, attempts and time in
//!   headers, and the original is terminated; a redrive publishes the event to
//!   `dozen.<topic>.to.<subscription>`, which the other subscriptions of the
//!   topic acknowledge unseen;
//! - publishing sets `Nats-Msg-Id` to the event id, so the server drops a
//!   republish within its duplicate window (the outbox relay's retry after a
//!   lost confirmation);
//! - a stream or consumer the server lost (a server started on an empty
//!   store) is [`BusError::Missing`]: the consumer declares its subscription
//!   again, and a publisher leaves the stream to it (see `vanished`);
//! - idle consumers are woken by a core-NATS message on `dozen_wake.<topic>`
//!   sent after each publish, and look again every 250 ms for retries and
//!   expired visibility timeouts. Order per key is not offered: competing pull
//!   consumers take events in parallel.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::{ConsumerInfoError, ConsumerInfoErrorKind};
use async_nats::jetstream::context::{GetStreamError, GetStreamErrorKind, PublishErrorKind};
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::{self, AckKind};
use async_nats::HeaderMap;
use async_trait::async_trait;
use futures::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::backend::{Bus, BusError, DeadLetter, Delivery, SubscriptionStats};
use crate::event::Event;
use crate::names::token;
use crate::sql::Wakers;
use crate::subscription::Subscription;
use crate::vanished::Vanished;

/// The longest a pull may take.
const PULL_BOUND: Duration = Duration::from_secs(5);
/// Idle consumers look again this often, for retries and expired deliveries.
const RECHECK: Duration = Duration::from_millis(250);

/// A JetStream bus.
#[derive(Debug)]
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    names: Names,
    wakers: Arc<Wakers>,
    /// Topics whose stream this bus has made sure of.
    streams: Mutex<HashSet<String>>,
    /// Topics this bus published to, and those it found gone since.
    vanished: Vanished,
    /// Each subscription's consumer, found once and kept while it works.
    consumers: Mutex<HashMap<String, PullConsumer>>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for NatsBus {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

fn unavailable(error: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(error.to_string())
}

/// Every name this bus gives the server, under its root: `dozen`, or
/// `dozen-<namespace>` with a namespace in the URL, so that systems sharing a
/// server share nothing (a root is never a prefix of another's names).
#[derive(Debug, Clone)]
struct Names {
    root: String,
}

impl Names {
    fn new(namespace: Option<&str>) -> Self {
        Self {
            root: crate::names::root(namespace),
        }
    }

    /// `DOZEN_<topic>` (`DOZEN-<NAMESPACE>_<topic>`).
    fn stream(&self, topic: &str) -> String {
        format!("{}_{}", self.root.to_uppercase(), token(topic))
    }

    fn dead_stream(&self) -> String {
        format!("{}_DEAD_LETTERS", self.root.to_uppercase())
    }

    /// Whether `stream` is a topic stream of this bus.
    fn is_topic_stream(&self, stream: &str) -> bool {
        stream.starts_with(&format!("{}_", self.root.to_uppercase()))
            && stream != self.dead_stream()
    }

    /// `dozen.<topic>.>`: every subject of a topic's stream.
    fn topic_subjects(&self, topic: &str) -> String {
        format!("{}.{}.>", self.root, token(topic))
    }

    fn publish_subject(&self, topic: &str) -> String {
        format!("{}.{}.all", self.root, token(topic))
    }

    /// What a redrive to one subscription of `topic` is published to, less the subscription.
    fn redrive_prefix(&self, topic: &str) -> String {
        format!("{}.{}.to.", self.root, token(topic))
    }

    fn dead_subject(&self, subscription: &str) -> String {
        format!("{}_dead.{}", self.root, token(subscription))
    }

    fn dead_subjects(&self) -> String {
        format!("{}_dead.>", self.root)
    }

    fn wake_subject(&self, topic: &str) -> String {
        format!("{}_wake.{topic}", self.root)
    }

    fn wake_prefix(&self) -> String {
        format!("{}_wake.", self.root)
    }
}

fn description(topic: &str) -> String {
    format!("dozen topic={topic}")
}

/// Whether the server answered that it has no such stream.
fn stream_not_found(error: &GetStreamError) -> bool {
    matches!(error.kind(), GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

fn topic_of(description: Option<&str>) -> Option<String> {
    description?.strip_prefix("dozen topic=").map(str::to_owned)
}

impl NatsBus {
    /// Connects to `nats://host:port`; the client reconnects on its own after a
    /// lost connection. Its names are under `namespace`, if any.
    pub async fn connect(url: &str, namespace: Option<&str>) -> Result<Self, BusError> {
        let names = Names::new(namespace);
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(unavailable)?;
        let js = jetstream::new(client.clone());
        let wakers = Arc::new(Wakers::default());
        let watcher = {
            let (client, wakers) = (client.clone(), wakers.clone());
            let prefix = names.wake_prefix();
            tokio::spawn(async move {
                loop {
                    if let Ok(mut wakes) = client.subscribe(format!("{prefix}>")).await {
                        while let Some(message) = wakes.next().await {
                            if let Some(topic) = message.subject.strip_prefix(prefix.as_str()) {
                                wakers.wake(topic);
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        };
        Ok(Self {
            client,
            js,
            names,
            wakers,
            streams: Mutex::default(),
            vanished: Vanished::default(),
            consumers: Mutex::default(),
            watcher,
        })
    }

    /// Publishes `events`, each with the `Nats-Msg-Id` `message_id` gives it.
    async fn publish_as(
        &self,
        topic: &str,
        events: &[Event],
        message_id: impl Fn(&Event) -> String,
    ) -> Result<(), BusError> {
        // Without its stream, JetStream refuses the publish; with it and no
        // subscriptions, interest retention keeps nothing: the contract's "dropped".
        let known = self.streams.lock().is_ok_and(|s| s.contains(topic));
        if !known {
            if self.vanished.seen(topic) {
                match self.js.get_stream(self.names.stream(topic)).await {
                    Ok(_) => {}
                    Err(error) if stream_not_found(&error) => self.vanished.may_recreate(topic)?,
                    Err(error) => return Err(unavailable(error)),
                }
            }
            self.topic_stream(topic).await?;
            self.vanished.found(topic);
            if let Ok(mut streams) = self.streams.lock() {
                streams.insert(topic.to_owned());
            }
        }
        let subject = self.names.publish_subject(topic);
        let mut confirmations = Vec::with_capacity(events.len());
        for event in events {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", message_id(event).as_str());
            let body = serde_json::to_vec(event)?;
            confirmations.push(
                self.js
                    .publish_with_headers(subject.clone(), headers, body.into())
                    .await
                    .map_err(unavailable)?,
            );
        }
        for confirmation in confirmations {
            if let Err(error) = confirmation.await {
                if error.kind() == PublishErrorKind::StreamNotFound {
                    // The server lost the stream: look again next time.
                    if let Ok(mut streams) = self.streams.lock() {
                        streams.remove(topic);
                    }
                    return Err(BusError::Missing(format!(
                        "stream {}",
                        self.names.stream(topic)
                    )));
                }
                return Err(unavailable(error));
            }
        }
        let _ = self
            .client
            .publish(self.names.wake_subject(topic), Default::default())
            .await;
        Ok(())
    }

    async fn topic_stream(&self, topic: &str) -> Result<stream::Stream, BusError> {
        self.js
            .get_or_create_stream(stream::Config {
                name: self.names.stream(topic),
                description: Some(description(topic)),
                subjects: vec![self.names.topic_subjects(topic)],
                retention: RetentionPolicy::Interest,
                storage: StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(unavailable)
    }

    async fn dead_stream(&self) -> Result<stream::Stream, BusError> {
        self.js
            .get_or_create_stream(stream::Config {
                name: self.names.dead_stream(),
                subjects: vec![self.names.dead_subjects()],
                storage: StorageType::File,
                // As long as SQS keeps a message at most.
                max_age: Duration::from_secs(14 * 24 * 3600),
                ..Default::default()
            })
            .await
            .map_err(unavailable)
    }

    /// The subscription's consumer, as the server has it: [`BusError::Missing`]
    /// when the server has no such stream or consumer (any more).
    async fn consumer(&self, sub: &Subscription) -> Result<PullConsumer, BusError> {
        let kept = self
            .consumers
            .lock()
            .ok()
            .and_then(|c| c.get(&sub.name).cloned());
        if let Some(consumer) = kept {
            return Ok(consumer);
        }
        let stream = match self.js.get_stream(self.names.stream(&sub.topic)).await {
            Ok(stream) => stream,
            Err(error) if stream_not_found(&error) => {
                return Err(BusError::Missing(format!(
                    "stream {}",
                    self.names.stream(&sub.topic)
                )))
            }
            Err(error) => return Err(unavailable(error)),
        };
        let consumer = stream
            .get_consumer::<pull::Config>(&token(&sub.name))
            .await
            .map_err(|error| {
                let missing = error.downcast_ref::<ConsumerInfoError>().is_some_and(|e| {
                    matches!(
                        e.kind(),
                        ConsumerInfoErrorKind::NotFound | ConsumerInfoErrorKind::StreamNotFound
                    )
                });
                if missing {
                    BusError::Missing(format!("consumer {}", token(&sub.name)))
                } else {
                    unavailable(error)
                }
            })?;
        if let Ok(mut consumers) = self.consumers.lock() {
            consumers.insert(sub.name.clone(), consumer.clone());
        }
        Ok(consumer)
    }

    /// Forgets the kept consumer of `sub`: the next pull finds it again.
    fn drop_consumer(&self, sub: &Subscription) {
        if let Ok(mut consumers) = self.consumers.lock() {
            consumers.remove(&sub.name);
        }
    }

    /// The names of the topic streams, and of each one's subscriptions.
    async fn all_consumers(&self) -> Result<Vec<(stream::Stream, String)>, BusError> {
        let mut names = self.js.stream_names();
        let mut found = Vec::new();
        while let Some(name) = names.next().await {
            let name = name.map_err(unavailable)?;
            if !self.names.is_topic_stream(&name) {
                continue;
            }
            // A stream may vanish between listing and reading it: skip it.
            let Ok(stream) = self.js.get_stream(&name).await else {
                continue;
            };
            let mut consumers = stream.consumer_names();
            while let Some(Ok(consumer)) = consumers.next().await {
                found.push((stream.clone(), consumer));
            }
        }
        Ok(found)
    }

    /// Every dead letter of a subscription, with its sequence in the dead-letter stream.
    async fn dead_messages(&self, subscription: &str) -> Result<Vec<(u64, DeadLetter)>, BusError> {
        let stream = self.dead_stream().await?;
        let reader = stream
            .create_consumer(pull::Config {
                filter_subject: self.names.dead_subject(subscription),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        let pending = reader.cached_info().num_pending as usize;
        let mut letters = Vec::with_capacity(pending);
        if pending > 0 {
            let mut batch = reader
                .fetch()
                .max_messages(pending)
                .messages()
                .await
                .map_err(unavailable)?;
            while let Some(message) = batch.next().await {
                let message = message.map_err(unavailable)?;
                let sequence = message.info().map_err(unavailable)?.stream_sequence;
                let headers = message.headers.clone().unwrap_or_default();
                let header = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
                letters.push((
                    sequence,
                    DeadLetter {
                        subscription: subscription.to_owned(),
                        event: serde_json::from_slice(&message.payload)?,
                        attempts: header("Dozen-Attempts")
                            .and_then(|a| a.parse().ok())
                            .unwrap_or(0),
                        last_error: header("Dozen-Last-Error"),
                        dead_at: header("Dozen-Dead-At"),
                    },
                ));
            }
        }
        Ok(letters)
    }

    async fn pull(&self, sub: &Subscription, max: usize) -> Result<Vec<Delivery>, BusError> {
        let consumer = self.consumer(sub).await?;
        // A pull whose answer is lost with the connection, or that asks a
        // consumer the server no longer has, would wait for ever: bound it.
        // Events taken when the bound cuts in come back after ack_wait.
        let pulled =
            match tokio::time::timeout(PULL_BOUND, self.pull_from(&consumer, sub, max)).await {
                Ok(pulled) => pulled,
                Err(_) => Err(BusError::Unavailable("pull timed out".into())),
            };
        if pulled.is_err() {
            // It may be gone from the server: look for it afresh next time.
            self.drop_consumer(sub);
        }
        pulled
    }

    async fn pull_from(
        &self,
        consumer: &PullConsumer,
        sub: &Subscription,
        max: usize,
    ) -> Result<Vec<Delivery>, BusError> {
        let mut batch = consumer
            .fetch()
            .max_messages(max)
            .messages()
            .await
            .map_err(unavailable)?;
        let redrive_prefix = self.names.redrive_prefix(&sub.topic);
        let mine = format!("{redrive_prefix}{}", token(&sub.name));
        let mut deliveries = Vec::new();
        while let Some(message) = batch.next().await {
            let message = message.map_err(unavailable)?;
            let subject = message.subject.as_str();
            if subject.starts_with(&redrive_prefix) && subject != mine {
                // Redriven for another subscription of this topic.
                message.ack().await.map_err(unavailable)?;
                continue;
            }
            let (Some(reply), Ok(info)) = (message.reply.clone(), message.info()) else {
                continue;
            };
            deliveries.push(Delivery {
                event: serde_json::from_slice(&message.payload)?,
                attempt: info.delivered.max(1) as u32,
                receipt: reply.to_string(),
            });
        }
        Ok(deliveries)
    }

    /// Pushes buffered acks out; bounded, so a lost connection cannot hang a drain.
    async fn flush(&self) -> Result<(), BusError> {
        match tokio::time::timeout(Duration::from_secs(5), self.client.flush()).await {
            Ok(flushed) => flushed.map_err(unavailable),
            Err(_) => Err(BusError::Unavailable("flush timed out".into())),
        }
    }

    async fn settle(&self, delivery: &Delivery, kind: AckKind) -> Result<(), BusError> {
        self.client
            .publish(delivery.receipt.clone(), kind.into())
            .await
            .map_err(unavailable)
    }
}

#[async_trait]
impl Bus for NatsBus {
    async fn declare_topic(&self, topic: &str) -> Result<(), BusError> {
        self.topic_stream(topic).await.map(|_| ())
    }

    async fn declare(&self, sub: &Subscription) -> Result<(), BusError> {
        for (stream, name) in self.all_consumers().await? {
            if name == token(&sub.name)
                && stream.cached_info().config.name != self.names.stream(&sub.topic)
            {
                return Err(BusError::TopicMismatch {
                    name: sub.name.clone(),
                    existing: topic_of(stream.cached_info().config.description.as_deref())
                        .unwrap_or_default(),
                    requested: sub.topic.clone(),
                });
            }
        }
        let stream = self.topic_stream(&sub.topic).await?;
        stream
            .get_or_create_consumer::<pull::Config>(
                &token(&sub.name),
                pull::Config {
                    durable_name: Some(token(&sub.name)),
                    description: Some(description(&sub.topic)),
                    filter_subject: self.names.topic_subjects(&sub.topic),
                    deliver_policy: DeliverPolicy::New,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: sub.visibility_timeout,
                    // Attempts are counted by the consumer, which dead-letters.
                    max_deliver: -1,
                    max_ack_pending: 10_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(unavailable)?;
        self.drop_consumer(sub);
        self.vanished.found(&sub.topic);
        Ok(())
    }

    async fn publish(&self, topic: &str, events: &[Event]) -> Result<(), BusError> {
        self.publish_as(topic, events, |event| event.id.clone())
            .await
    }

    async fn republish(&self, topic: &str, events: &[Event]) -> Result<(), BusError> {
        // Past the duplicate window: the server would drop a copy of an event
        // it saw lately, and this copy is meant for a subscription that lost it.
        let again = uuid::Uuid::now_v7().simple().to_string();
        self.publish_as(topic, events, |event| format!("{}-again-{again}", event.id))
            .await
    }

    async fn receive(&self, sub: &Subscription, max: usize) -> Result<Vec<Delivery>, BusError> {
        self.pull(sub, max).await
    }

    async fn wait(&self, sub: &Subscription, max_wait: Duration) {
        let notify = self.wakers.topic(&sub.topic);
        tokio::select! {
            () = notify.notified() => {}
            () = tokio::time::sleep(max_wait.min(RECHECK)) => {}
        }
    }

    async fn ack(&self, _sub: &Subscription, delivery: &Delivery) -> Result<(), BusError> {
        self.settle(delivery, AckKind::Ack).await?;
        self.flush().await
    }

    async fn ack_batch(
        &self,
        _sub: &Subscription,
        deliveries: &[Delivery],
    ) -> Result<(), BusError> {
        for delivery in deliveries {
            self.settle(delivery, AckKind::Ack).await?;
        }
        self.flush().await
    }

    async fn retry(
        &self,
        _sub: &Subscription,
        delivery: &Delivery,
        delay: Duration,
        _error: &str,
    ) -> Result<(), BusError> {
        self.settle(delivery, AckKind::Nak(Some(delay))).await?;
        self.flush().await
    }

    /// `+WPI`: the server restarts the delivery's `ack_wait` (the
    /// subscription's visibility timeout, which bounds `by`).
    async fn extend(
        &self,
        _sub: &Subscription,
        delivery: &Delivery,
        _by: Duration,
    ) -> Result<(), BusError> {
        self.settle(delivery, AckKind::Progress).await?;
        self.flush().await
    }

    async fn dead_letter(
        &self,
        sub: &Subscription,
        delivery: &Delivery,
        error: &str,
    ) -> Result<(), BusError> {
        self.dead_stream().await?;
        let mut headers = HeaderMap::new();
        headers.insert("Dozen-Topic", sub.topic.as_str());
        headers.insert("Dozen-Attempts", delivery.attempt.to_string().as_str());
        // Header values are one line.
        headers.insert(
            "Dozen-Last-Error",
            error.replace(['\r', '\n'], " ").as_str(),
        );
        let now = dozen_runtime::clock::now_rfc3339();
        headers.insert("Dozen-Dead-At", now.as_str());
        self.js
            .publish_with_headers(
                self.names.dead_subject(&sub.name),
                headers,
                serde_json::to_vec(&delivery.event)?.into(),
            )
            .await
            .map_err(unavailable)?
            .await
            .map_err(unavailable)?;
        self.settle(delivery, AckKind::Term).await?;
        self.flush().await
    }

    async fn ping(&self) -> Result<(), BusError> {
        // A round trip to JetStream itself. Only the reply's arrival counts: its
        // shape varies across servers (2.9's does not parse as the client's AccountInfo).
        self.client
            .request("$JS.API.INFO", Default::default())
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn subscriptions(&self) -> Result<Vec<SubscriptionStats>, BusError> {
        let mut stats = Vec::new();
        for (stream, name) in self.all_consumers().await? {
            // A subscription deleted meanwhile is simply not listed.
            let Ok(mut consumer) = stream.get_consumer::<pull::Config>(&name).await else {
                continue;
            };
            let Ok(info) = consumer.info().await.cloned() else {
                continue;
            };
            let topic = topic_of(info.config.description.as_deref()).unwrap_or_default();
            let dead = self.dead_messages(&name).await?.len() as u64;
            stats.push(SubscriptionStats {
                name,
                topic,
                depth: info.num_pending,
                in_flight: info.num_ack_pending as u64,
                dead_letters: dead,
            });
        }
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(stats)
    }

    async fn dead_letters(
        &self,
        subscription: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BusError> {
        let mut letters = self.dead_messages(subscription).await?;
        letters.truncate(limit);
        Ok(letters.into_iter().map(|(_, letter)| letter).collect())
    }

    async fn redrive(
        &self,
        subscription: &str,
        event_ids: Option<&[String]>,
    ) -> Result<u64, BusError> {
        let dead = self.dead_stream().await?;
        let mut moved = 0;
        for (sequence, letter) in self.dead_messages(subscription).await? {
            if event_ids.is_some_and(|ids| !ids.contains(&letter.event.id)) {
                continue;
            }
            let stream = self.dead_stream().await?;
            let message = stream
                .get_raw_message(sequence)
                .await
                .map_err(unavailable)?;
            let topic = message
                .headers
                .get("Dozen-Topic")
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            let mut headers = HeaderMap::new();
            // A new id for the broker's duplicate window: this is a new delivery.
            headers.insert(
                "Nats-Msg-Id",
                format!("{}-redrive-{sequence}", letter.event.id).as_str(),
            );
            self.js
                .publish_with_headers(
                    format!(
                        "{}{}",
                        self.names.redrive_prefix(&topic),
                        token(subscription)
                    ),
                    headers,
                    serde_json::to_vec(&letter.event)?.into(),
                )
                .await
                .map_err(unavailable)?
                .await
                .map_err(unavailable)?;
            dead.delete_message(sequence).await.map_err(unavailable)?;
            let _ = self
                .client
                .publish(self.names.wake_subject(&topic), Default::default())
                .await;
            moved += 1;
        }
        Ok(moved)
    }

    async fn purge(
        &self,
        subscription: &str,
        event_ids: Option<&[String]>,
    ) -> Result<u64, BusError> {
        let dead = self.dead_stream().await?;
        let mut purged = 0;
        for (sequence, letter) in self.dead_messages(subscription).await? {
            if event_ids.is_none_or(|ids| ids.contains(&letter.event.id)) {
                dead.delete_message(sequence).await.map_err(unavailable)?;
                purged += 1;
            }
        }
        Ok(purged)
    }
}
