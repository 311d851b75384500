//! `amqp://user:pass@host:port/vhost` (or `amqps://`): RabbitMQ.
//!
//! Mapping, native rather than emulated (names as without a namespace; with
//! `namespace=<ns>` in the URL, `dozen` becomes `dozen-<ns>` in every one):
//! - a **topic** is a durable fanout exchange `dozen.topic.<topic>`. An
//!   exchange per topic (not one exchange with routing keys) lets RabbitMQ's
//!   permissions, which match resource names, give each service the right to
//!   publish to its own topics only; a topic without queues drops what is
//!   published to it, as the contract says;
//! - a **subscription** is a durable quorum queue `dozen.sub.<name>` bound to
//!   the topic's exchange. Competing consumers consume from it with manual acks
//!   and `prefetch = max_in_flight`, so the broker never pushes more than the
//!   consumer may hold. The quorum queue counts deliveries
//!   (`x-delivery-count`), which gives the attempt number. Its dead-letter
//!   routing key is the topic, so RabbitMQ itself refuses to re-declare the
//!   subscription on another topic;
//! - the **visibility timeout** is kept by the adapter: a delivery not settled
//!   in time is handed back (`nack`, requeue) and this process's consumer is
//!   cancelled until it asks for more, so another consumer gets it. A consumer
//!   that dies loses its connection, and RabbitMQ requeues its deliveries at once;
//! - a **retry** is a copy published to the classic queue `dozen.retry.<name>`
//!   with a per-message TTL of the backoff; on expiry RabbitMQ dead-letters it
//!   back into the subscription's queue. Per-message TTLs expire at the head of
//!   a queue only, so a retry can wait behind a longer one (backoffs are capped);
//! - **dead letters** go through the exchange `dozen.dead.<name>` to the
//!   classic queue of the same name, with the last error, attempts and time in
//!   headers. The quorum queue dead-letters there too, should RabbitMQ itself
//!   reject an event;
//! - publishing waits for **publisher confirms**; messages are persistent.
//!   RabbitMQ does not drop duplicates: the inbox does.
//! - an exchange or queue the broker lost (deleted, a vhost made anew) is
//!   [`BusError::Missing`]: the consumer declares its subscription again
//!   (RabbitMQ cancels the consumers of a deleted queue), and a publisher
//!   leaves the exchange to it (see `vanished`);
//! - **operations** read exact queue depths over AMQP and the list of queues and
//!   the unacknowledged counts from the management API (`management=` in the
//!   URL's query, by default `http://<host>:15672` with the URL's credentials);
//!   those counts are refreshed every few seconds by RabbitMQ.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use lapin::message::Delivery as AmqpDelivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::sync::Notify;

use crate::backend::{Bus, BusError, DeadLetter, Delivery, SubscriptionStats};
use crate::event::Event;
use crate::subscription::Subscription;
use crate::vanished::Vanished;

/// How often a feed looks for deliveries past their visibility timeout.
const REAP_EVERY: Duration = Duration::from_millis(100);
/// How long `receive` waits for the broker to push when nothing is buffered.
const PUSH_GRACE: Duration = Duration::from_millis(50);
/// How long a fresh consumer's first `receive` waits at most for what was
/// ready to be pushed (it happens once per consumer).
const FIRST_PUSH: Duration = Duration::from_secs(2);
/// Bound on connecting and on every round trip, so a dead broker cannot hang a caller.
const ROUND_TRIP: Duration = Duration::from_secs(5);

fn unavailable(error: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(error.to_string())
}

/// Every name this bus gives the broker, under its root: `dozen`, or
/// `dozen-<namespace>` with a namespace in the URL, so that systems sharing a
/// vhost share nothing.
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

    fn topic_exchange(&self, topic: &str) -> String {
        format!("{}.topic.{topic}", self.root)
    }

    fn queue(&self, subscription: &str) -> String {
        format!("{}.sub.{subscription}", self.root)
    }

    /// The subscription a queue of this bus is for, if it is one.
    fn subscription_of<'a>(&self, queue: &'a str) -> Option<&'a str> {
        queue.strip_prefix(&self.root)?.strip_prefix(".sub.")
    }

    fn retry_queue(&self, subscription: &str) -> String {
        format!("{}.retry.{subscription}", self.root)
    }

    /// Also the name of its exchange.
    fn dead_queue(&self, subscription: &str) -> String {
        format!("{}.dead.{subscription}", self.root)
    }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn table<const N: usize>(entries: [(&str, AMQPValue); N]) -> FieldTable {
    let mut table = FieldTable::default();
    for (key, value) in entries {
        table.insert(key.into(), value);
    }
    table
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(value.into())
}

fn header<'a>(properties: &'a BasicProperties, name: &str) -> Option<&'a AMQPValue> {
    properties.headers().as_ref()?.inner().get(name)
}

fn header_number(properties: &BasicProperties, name: &str) -> u32 {
    match header(properties, name) {
        Some(AMQPValue::LongLongInt(n)) => *n as u32,
        Some(AMQPValue::LongInt(n)) => *n as u32,
        Some(AMQPValue::LongUInt(n)) => *n,
        Some(AMQPValue::ShortInt(n)) => *n as u32,
        Some(AMQPValue::LongString(s)) => s.to_string().parse().unwrap_or(0),
        _ => 0,
    }
}

fn header_text(properties: &BasicProperties, name: &str) -> Option<String> {
    match header(properties, name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// Attempts before this one (carried over a retry) plus the queue's own count.
fn attempt_of(properties: &BasicProperties) -> u32 {
    header_number(properties, "dozen-attempts") + header_number(properties, "x-delivery-count") + 1
}

fn persistent(event: &Event) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_message_id(event.id.as_str().into())
        .with_content_type("application/cloudevents+json".into())
}

/// The connection and the channel that publishes with confirms.
struct Link {
    connection: Connection,
    publisher: Channel,
}

/// This process's consumer of one subscription: what the broker pushed and
/// what the caller holds, each with the time it is due back.
struct Feed {
    id: u64,
    stalled: Arc<AtomicBool>,
    prefetch: u16,
    channel: Channel,
    queue: String,
    visibility: Duration,
    state: Mutex<FeedState>,
    arrived: Notify,
}

#[derive(Default)]
struct FeedState {
    /// Pushed by the broker, not yet taken by `receive`.
    buffer: VecDeque<(AmqpDelivery, Instant)>,
    /// Taken by `receive` and not settled: delivery tag → due back.
    held: HashMap<u64, Instant>,
    /// The broker's consumer tag while this feed consumes.
    consuming: Option<String>,
    broken: bool,
}

impl Feed {
    fn lock(&self) -> std::sync::MutexGuard<'_, FeedState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts consuming unless it already does; the broker then pushes up to
    /// `prefetch`. Returns, when it started, how many events were ready.
    async fn ensure_consuming(self: &Arc<Self>) -> Result<Option<usize>, BusError> {
        if self.lock().consuming.is_some() {
            return Ok(None);
        }
        // How many are ready now: what the broker is about to push (up to the prefetch).
        let ready = bounded(
            &self.stalled,
            self.channel.queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await?
        .message_count() as usize;
        let tag = format!("dozen-{}", uuid::Uuid::new_v4().simple());
        let consumer = bounded(
            &self.stalled,
            self.channel.basic_consume(
                self.queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        self.lock().consuming = Some(tag);
        let feed = self.clone();
        tokio::spawn(async move {
            let mut consumer = consumer;
            while let Some(delivery) = consumer.next().await {
                match delivery {
                    Ok(delivery) => {
                        let due = Instant::now() + feed.visibility;
                        feed.lock().buffer.push_back((delivery, due));
                        feed.arrived.notify_waiters();
                    }
                    Err(_) => break,
                }
            }
            // The channel failed, or the broker cancelled the consumer (its
            // queue was deleted): the next receive looks again.
            feed.lock().broken = true;
            feed.arrived.notify_waiters();
        });
        Ok(Some(ready))
    }

    /// Hands back what is past its visibility timeout, and stops this process
    /// consuming until it asks again: the consumer holding them is stuck, so
    /// the redelivery must go to another.
    async fn reap(&self) -> Result<(), BusError> {
        let now = Instant::now();
        let tag = {
            let state = self.lock();
            let overdue = state.held.values().any(|due| *due <= now)
                || state.buffer.iter().any(|(_, due)| *due <= now);
            if !overdue {
                return Ok(());
            }
            state.consuming.clone()
        };
        if let Some(tag) = tag {
            bounded(
                &self.stalled,
                self.channel
                    .basic_cancel(tag.as_str().into(), BasicCancelOptions::default()),
            )
            .await?;
        }
        let returned: Vec<u64> = {
            let mut state = self.lock();
            state.consuming = None;
            let mut returned: Vec<u64> = state
                .buffer
                .drain(..)
                .map(|(d, _)| d.delivery_tag)
                .collect();
            state.held.retain(|tag, due| {
                let overdue = *due <= now;
                if overdue {
                    returned.push(*tag);
                }
                !overdue
            });
            returned
        };
        for tag in returned {
            bounded(
                &self.stalled,
                self.channel.basic_nack(
                    tag,
                    BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    },
                ),
            )
            .await?;
        }
        Ok(())
    }

    fn buffered(&self) -> usize {
        self.lock().buffer.len()
    }

    /// Returns when more than `buffered` deliveries wait (or the feed broke), or after `within`.
    async fn until_more_than(&self, buffered: usize, within: Duration) {
        let arrived = self.arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        {
            let state = self.lock();
            if state.buffer.len() > buffered || state.broken {
                return;
            }
        }
        let _ = tokio::time::timeout(within, arrived).await;
    }

    /// Removes `tag` from what the caller holds; false when it was handed back meanwhile.
    fn release(&self, tag: u64) -> bool {
        self.lock().held.remove(&tag).is_some()
    }
}

/// Runs a broker call with the round-trip bound.
/// A call that outlived the bound marks the connection `stalled`: a broker
/// killed outright can leave a connection that looks open and answers nothing,
/// and the next use of the bus replaces it.
async fn bounded<T>(
    stalled: &AtomicBool,
    call: impl std::future::Future<Output = lapin::Result<T>>,
) -> Result<T, BusError> {
    match tokio::time::timeout(ROUND_TRIP, call).await {
        Ok(result) => result.map_err(|error| match error.kind() {
            lapin::ErrorKind::ProtocolError(refusal) if refusal.get_id() == 404 => {
                BusError::Missing(refusal.get_message().to_string())
            }
            _ => unavailable(error),
        }),
        Err(_) => {
            stalled.store(true, Ordering::SeqCst);
            Err(BusError::Unavailable(
                "RabbitMQ did not answer in time".into(),
            ))
        }
    }
}

/// The management API, for listing queues.
#[derive(Debug, Clone)]
struct Management {
    base: String,
    vhost: String,
    user: String,
    password: String,
    http: reqwest::Client,
}

impl Management {
    fn from_uri(url: &str, uri: &AMQPUri) -> Self {
        let configured = url.split_once('?').and_then(|(_, query)| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("management="))
                .map(|value| value.replace("%3A", ":").replace("%2F", "/"))
        });
        Self {
            base: configured
                .unwrap_or_else(|| format!("http://{}:15672", uri.authority.host))
                .trim_end_matches('/')
                .to_owned(),
            vhost: uri.vhost.clone(),
            user: uri.authority.userinfo.username.clone(),
            password: uri.authority.userinfo.password.clone(),
            http: reqwest::Client::builder()
                .timeout(ROUND_TRIP)
                .build()
                .unwrap_or_default(),
        }
    }

    /// Every queue of the vhost: name, arguments, unacknowledged messages.
    async fn queues(&self) -> Result<Vec<serde_json::Value>, BusError> {
        let vhost = self.vhost.replace('%', "%25").replace('/', "%2F");
        let response = self
            .http
            .get(format!(
                "{}/api/queues/{vhost}?columns=name,arguments,messages_unacknowledged",
                self.base
            ))
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .map_err(unavailable)?;
        if !response.status().is_success() {
            return Err(BusError::Backend(format!(
                "the RabbitMQ management API at {} answered {}",
                self.base,
                response.status()
            )));
        }
        response.json().await.map_err(unavailable)
    }
}

/// A RabbitMQ bus.
pub struct AmqpBus {
    url: String,
    management: Management,
    link: tokio::sync::Mutex<Option<Arc<Link>>>,
    feeds: Mutex<HashMap<String, Arc<Feed>>>,
    next_feed: AtomicU64,
    names: Names,
    /// Topics whose exchange this bus has declared.
    exchanges: Mutex<HashSet<String>>,
    /// Topics this bus published to, and those it found gone since.
    vanished: Vanished,
    reaper: tokio::task::JoinHandle<()>,
    reaped: Arc<Mutex<Vec<Arc<Feed>>>>,
    stalled: Arc<AtomicBool>,
}

impl std::fmt::Debug for AmqpBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBus")
            .field("management", &self.management.base)
            .finish_non_exhaustive()
    }
}

impl Drop for AmqpBus {
    fn drop(&mut self) {
        self.reaper.abort();
        // Say goodbye to the broker if a runtime is still there to do it; a
        // bus dropped while the runtime shuts down just lets the socket close.
        let runtime = tokio::runtime::Handle::try_current();
        if let (Ok(runtime), Ok(mut link)) = (runtime, self.link.try_lock()) {
            if let Some(link) = link.take() {
                runtime.spawn(async move {
                    let _ = link.connection.close(200, "bye".into()).await;
                });
            }
        }
    }
}

impl AmqpBus {
    /// Checks the URL; connects on first use (and again after a lost connection).
    /// Its names are under `namespace`, if any.
    pub fn connect(url: &str, namespace: Option<&str>) -> Result<Self, BusError> {
        let uri: AMQPUri = url.parse().map_err(|error| {
            BusError::Backend(format!("BUS_URL is not a valid AMQP URL: {error}"))
        })?;
        let reaped: Arc<Mutex<Vec<Arc<Feed>>>> = Arc::default();
        let reaper = {
            let feeds = reaped.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(REAP_EVERY);
                loop {
                    tick.tick().await;
                    let current: Vec<Arc<Feed>> =
                        feeds.lock().map(|f| f.clone()).unwrap_or_default();
                    for feed in current {
                        let _ = feed.reap().await;
                    }
                }
            })
        };
        Ok(Self {
            names: Names::new(namespace),
            url: url.to_owned(),
            management: Management::from_uri(url, &uri),
            link: tokio::sync::Mutex::default(),
            feeds: Mutex::default(),
            next_feed: AtomicU64::new(1),
            exchanges: Mutex::default(),
            vanished: Vanished::default(),
            reaper,
            reaped,
            stalled: Arc::default(),
        })
    }

    /// The live connection, made anew when there is none or it was lost.
    async fn link(&self) -> Result<Arc<Link>, BusError> {
        let mut link = self.link.lock().await;
        let stalled = self.stalled.swap(false, Ordering::SeqCst);
        if let Some(current) = link.take() {
            let open =
                current.connection.status().connected() && current.publisher.status().connected();
            if open && !stalled {
                *link = Some(current.clone());
                return Ok(current);
            }
            // Its feeds go with it; what they held, the broker hands out again.
            if let Ok(mut feeds) = self.feeds.lock() {
                feeds.clear();
            }
            if let Ok(mut reaped) = self.reaped.lock() {
                reaped.clear();
            }
            tokio::spawn(async move {
                let closing = current.connection.close(200, "replaced".into());
                let _ = tokio::time::timeout(ROUND_TRIP, closing).await;
            });
        }
        let connection = bounded(
            &self.stalled,
            Connection::connect(
                &self.url,
                ConnectionProperties::default().with_connection_name("dozen-bus".into()),
            ),
        )
        .await?;
        let publisher = bounded(&self.stalled, connection.create_channel()).await?;
        bounded(
            &self.stalled,
            publisher.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        if let Ok(mut exchanges) = self.exchanges.lock() {
            exchanges.clear();
        }
        let fresh = Arc::new(Link {
            connection,
            publisher,
        });
        *link = Some(fresh.clone());
        Ok(fresh)
    }

    /// A channel for one operation; closing it hands back anything it took.
    async fn channel(&self) -> Result<Channel, BusError> {
        let link = self.link().await?;
        bounded(&self.stalled, link.connection.create_channel()).await
    }

    async fn close(&self, channel: Channel) {
        let _ = bounded(&self.stalled, channel.close(200, "done".into())).await;
    }

    /// This process's feed of the subscription, made anew when its channel was lost.
    async fn feed(&self, sub: &Subscription) -> Result<Arc<Feed>, BusError> {
        let existing = self
            .feeds
            .lock()
            .ok()
            .and_then(|f| f.get(&sub.name).cloned());
        if let Some(feed) = existing {
            let stalled = self.stalled.load(Ordering::SeqCst);
            if !feed.lock().broken && feed.channel.status().connected() && !stalled {
                return Ok(feed);
            }
        }
        let channel = self.channel().await?;
        let prefetch = u16::try_from(sub.max_in_flight).unwrap_or(u16::MAX);
        bounded(
            &self.stalled,
            channel.basic_qos(prefetch, BasicQosOptions::default()),
        )
        .await?;
        let feed = Arc::new(Feed {
            id: self.next_feed.fetch_add(1, Ordering::Relaxed),
            stalled: self.stalled.clone(),
            prefetch,
            channel,
            queue: self.names.queue(&sub.name),
            visibility: sub.visibility_timeout,
            state: Mutex::default(),
            arrived: Notify::new(),
        });
        if let Ok(mut feeds) = self.feeds.lock() {
            feeds.insert(sub.name.clone(), feed.clone());
        }
        if let Ok(mut reaped) = self.reaped.lock() {
            reaped.retain(|f| f.queue != feed.queue);
            reaped.push(feed.clone());
        }
        Ok(feed)
    }

    /// The feed that handed out `delivery`, if it is still the current one.
    fn feed_of(
        &self,
        sub: &Subscription,
        delivery: &Delivery,
    ) -> Result<Option<(Arc<Feed>, u64)>, BusError> {
        let (feed_id, tag) = delivery
            .receipt
            .split_once(':')
            .and_then(|(f, t)| Some((f.parse::<u64>().ok()?, t.parse::<u64>().ok()?)))
            .ok_or_else(|| BusError::BadReceipt(delivery.receipt.clone()))?;
        let feed = self
            .feeds
            .lock()
            .ok()
            .and_then(|f| f.get(&sub.name).cloned());
        Ok(feed
            .filter(|feed| feed.id == feed_id)
            .map(|feed| (feed, tag)))
    }

    /// Whether the topic's exchange is on the broker (a passive declare, on a
    /// channel of its own: RabbitMQ closes the channel that asks for a missing one).
    async fn exchange_exists(&self, topic: &str) -> Result<bool, BusError> {
        let channel = self.channel().await?;
        let found = bounded(
            &self.stalled,
            channel.exchange_declare(
                self.names.topic_exchange(topic).as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await;
        match found {
            Ok(()) => {
                self.close(channel).await;
                Ok(true)
            }
            Err(BusError::Missing(_)) => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn declare_exchange(&self, channel: &Channel, name: &str) -> Result<(), BusError> {
        bounded(
            &self.stalled,
            channel.exchange_declare(
                name.into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await
    }

    /// Publishes on the confirming channel and waits for every confirmation.
    async fn publish_confirmed(
        &self,
        exchange: &str,
        routing_key: &str,
        messages: impl IntoIterator<Item = (Vec<u8>, BasicProperties)>,
    ) -> Result<(), BusError> {
        self.publish_routed(exchange, routing_key, messages, false)
            .await
            .map(|_| ())
    }

    /// [`AmqpBus::publish_confirmed`]; `mandatory` has RabbitMQ return what
    /// no queue takes. Returns whether every message reached a queue.
    async fn publish_routed(
        &self,
        exchange: &str,
        routing_key: &str,
        messages: impl IntoIterator<Item = (Vec<u8>, BasicProperties)>,
        mandatory: bool,
    ) -> Result<bool, BusError> {
        let link = self.link().await?;
        let mut confirms = Vec::new();
        for (body, properties) in messages {
            confirms.push(
                bounded(
                    &self.stalled,
                    link.publisher.basic_publish(
                        exchange.into(),
                        routing_key.into(),
                        BasicPublishOptions {
                            mandatory,
                            ..Default::default()
                        },
                        &body,
                        properties,
                    ),
                )
                .await?,
            );
        }
        let mut routed = true;
        for confirm in confirms {
            match bounded(&self.stalled, confirm).await? {
                Confirmation::Nack(_) => {
                    return Err(BusError::Unavailable("RabbitMQ refused a message".into()))
                }
                Confirmation::Ack(returned) => routed &= returned.is_none(),
                Confirmation::NotRequested => {}
            }
        }
        Ok(routed)
    }

    async fn settle(&self, sub: &Subscription, delivery: &Delivery) -> Result<(), BusError> {
        // A delivery handed back, or whose channel is gone, is the broker's again.
        if let Some((feed, tag)) = self.feed_of(sub, delivery)? {
            if feed.release(tag) {
                bounded(
                    &self.stalled,
                    feed.channel.basic_ack(tag, BasicAckOptions::default()),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Every dead letter of the subscription, taken (unacknowledged) on `channel`.
    async fn take_dead(
        &self,
        channel: &Channel,
        subscription: &str,
    ) -> Result<Vec<(u64, DeadLetter)>, BusError> {
        let mut letters = Vec::new();
        while let Some(message) = bounded(
            &self.stalled,
            channel.basic_get(
                self.names.dead_queue(subscription).as_str().into(),
                BasicGetOptions { no_ack: false },
            ),
        )
        .await?
        {
            let delivery = message.delivery;
            let properties = &delivery.properties;
            letters.push((
                delivery.delivery_tag,
                DeadLetter {
                    subscription: subscription.to_owned(),
                    event: serde_json::from_slice(&delivery.data)?,
                    attempts: header_number(properties, "dozen-attempts"),
                    last_error: header_text(properties, "dozen-last-error"),
                    dead_at: header_text(properties, "dozen-dead-at"),
                },
            ));
        }
        Ok(letters)
    }

    async fn queue_depth(&self, channel: &Channel, name: &str) -> Result<u64, BusError> {
        let queue = bounded(
            &self.stalled,
            channel.queue_declare(
                name.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ),
        )
        .await?;
        Ok(u64::from(queue.message_count()))
    }
}

/// The topic a subscription's queue is bound to, from RabbitMQ's refusal to re-declare it.
fn existing_topic(error: &BusError) -> Option<String> {
    let message = error.to_string();
    if !message.contains("inequivalent arg 'x-dead-letter-routing-key'") {
        return None;
    }
    let current = message.split("but current is").nth(1)?;
    current.split('\'').nth(1).map(str::to_owned)
}

#[async_trait]
impl Bus for AmqpBus {
    async fn declare_topic(&self, topic: &str) -> Result<(), BusError> {
        let channel = self.channel().await?;
        let declared = self
            .declare_exchange(&channel, &self.names.topic_exchange(topic))
            .await;
        self.close(channel).await;
        declared
    }

    async fn declare(&self, sub: &Subscription) -> Result<(), BusError> {
        let channel = self.channel().await?;
        let declared = async {
            self.declare_exchange(&channel, &self.names.topic_exchange(&sub.topic))
                .await?;
            let dead = self.names.dead_queue(&sub.name);
            self.declare_exchange(&channel, &dead).await?;
            bounded(
                &self.stalled,
                channel.queue_declare(dead.as_str().into(), durable_queue(), FieldTable::default()),
            )
            .await?;
            bounded(
                &self.stalled,
                channel.queue_bind(
                    dead.as_str().into(),
                    dead.as_str().into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await?;
            let main = self.names.queue(&sub.name);
            let arguments = table([
                ("x-queue-type", text("quorum")),
                ("x-dead-letter-exchange", text(&dead)),
                ("x-dead-letter-routing-key", text(&sub.topic)),
            ]);
            if let Err(error) = bounded(
                &self.stalled,
                channel.queue_declare(main.as_str().into(), durable_queue(), arguments),
            )
            .await
            {
                return Err(match existing_topic(&error) {
                    Some(existing) => BusError::TopicMismatch {
                        name: sub.name.clone(),
                        existing,
                        requested: sub.topic.clone(),
                    },
                    None => error,
                });
            }
            bounded(
                &self.stalled,
                channel.queue_declare(
                    self.names.retry_queue(&sub.name).as_str().into(),
                    durable_queue(),
                    table([
                        ("x-dead-letter-exchange", text("")),
                        ("x-dead-letter-routing-key", text(&main)),
                    ]),
                ),
            )
            .await?;
            bounded(
                &self.stalled,
                channel.queue_bind(
                    main.as_str().into(),
                    self.names.topic_exchange(&sub.topic).as_str().into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                ),
            )
            .await
        }
        .await;
        self.close(channel).await;
        if declared.is_ok() {
            self.vanished.found(&sub.topic);
        }
        declared
    }

    async fn publish(&self, topic: &str, events: &[Event]) -> Result<(), BusError> {
        let known = self.exchanges.lock().is_ok_and(|e| e.contains(topic));
        if !known {
            if self.vanished.seen(topic) && !self.exchange_exists(topic).await? {
                self.vanished.may_recreate(topic)?;
            }
            self.declare_topic(topic).await?;
            if let Ok(mut exchanges) = self.exchanges.lock() {
                exchanges.insert(topic.to_owned());
            }
        }
        let mut messages = Vec::with_capacity(events.len());
        for event in events {
            messages.push((serde_json::to_vec(event)?, persistent(event)));
        }
        let routed = self
            .publish_routed(&self.names.topic_exchange(topic), "", messages, true)
            .await;
        match routed {
            Ok(true) => {
                self.vanished.found(topic);
                Ok(())
            }
            // No queue took it: a topic without subscriptions drops it, as the
            // contract says — unless queues took this topic's events before,
            // and were lost: then it waits for its subscriptions to come back.
            Ok(false) if self.vanished.seen(topic) => self.vanished.may_recreate(topic),
            Ok(false) => Ok(()),
            Err(error) => {
                if matches!(error, BusError::Missing(_)) {
                    if let Ok(mut exchanges) = self.exchanges.lock() {
                        exchanges.remove(topic);
                    }
                }
                Err(error)
            }
        }
    }

    async fn receive(&self, sub: &Subscription, max: usize) -> Result<Vec<Delivery>, BusError> {
        let feed = self.feed(sub).await?;
        let started = feed.ensure_consuming().await?;
        // Deliveries are pushed. Right after the consumer starts, wait for what
        // was ready to arrive, so a caller sees the events visible now, a batch
        // as a batch; a running consumer gives the broker a moment, then takes
        // what came (waiting longer would only add latency).
        match started {
            Some(ready) if ready > 0 => {
                let expected = ready.min(max).min(usize::from(feed.prefetch));
                let deadline = tokio::time::Instant::now() + FIRST_PUSH;
                while feed.buffered() < expected && tokio::time::Instant::now() < deadline {
                    let before = feed.buffered();
                    feed.until_more_than(before, FIRST_PUSH).await;
                }
            }
            _ if feed.buffered() == 0 => feed.until_more_than(0, PUSH_GRACE).await,
            _ => {}
        }
        let taken: Vec<(AmqpDelivery, Instant)> = {
            let mut state = feed.lock();
            let count = max.min(state.buffer.len());
            let taken: Vec<_> = state.buffer.drain(..count).collect();
            for (delivery, due) in &taken {
                state.held.insert(delivery.delivery_tag, *due);
            }
            taken
        };
        let mut deliveries = Vec::with_capacity(taken.len());
        for (delivery, _) in taken {
            deliveries.push(Delivery {
                event: serde_json::from_slice(&delivery.data)?,
                attempt: attempt_of(&delivery.properties),
                receipt: format!("{}:{}", feed.id, delivery.delivery_tag),
            });
        }
        Ok(deliveries)
    }

    async fn wait(&self, sub: &Subscription, max_wait: Duration) {
        let Ok(feed) = self.feed(sub).await else {
            tokio::time::sleep(max_wait.min(Duration::from_secs(1))).await;
            return;
        };
        if feed.ensure_consuming().await.is_err() {
            tokio::time::sleep(max_wait.min(Duration::from_secs(1))).await;
            return;
        }
        feed.until_more_than(0, max_wait).await;
    }

    async fn ack(&self, sub: &Subscription, delivery: &Delivery) -> Result<(), BusError> {
        self.settle(sub, delivery).await
    }

    /// The visibility timeout is this adapter's: the held delivery is due back later.
    async fn extend(
        &self,
        sub: &Subscription,
        delivery: &Delivery,
        by: Duration,
    ) -> Result<(), BusError> {
        if let Some((feed, tag)) = self.feed_of(sub, delivery)? {
            if let Some(due) = feed.lock().held.get_mut(&tag) {
                *due = Instant::now() + by;
            }
        }
        Ok(())
    }

    async fn retry(
        &self,
        sub: &Subscription,
        delivery: &Delivery,
        delay: Duration,
        error: &str,
    ) -> Result<(), BusError> {
        let properties = persistent(&delivery.event)
            .with_expiration(delay.as_millis().to_string().into())
            .with_headers(table([
                (
                    "dozen-attempts",
                    AMQPValue::LongLongInt(i64::from(delivery.attempt)),
                ),
                ("dozen-last-error", text(error)),
            ]));
        self.publish_confirmed(
            "",
            &self.names.retry_queue(&sub.name),
            [(serde_json::to_vec(&delivery.event)?, properties)],
        )
        .await?;
        self.settle(sub, delivery).await
    }

    async fn dead_letter(
        &self,
        sub: &Subscription,
        delivery: &Delivery,
        error: &str,
    ) -> Result<(), BusError> {
        let properties = persistent(&delivery.event).with_headers(table([
            ("dozen-topic", text(&sub.topic)),
            (
                "dozen-attempts",
                AMQPValue::LongLongInt(i64::from(delivery.attempt)),
            ),
            ("dozen-last-error", text(error)),
            ("dozen-dead-at", text(&dozen_runtime::clock::now_rfc3339())),
        ]));
        self.publish_confirmed(
            &self.names.dead_queue(&sub.name),
            "",
            [(serde_json::to_vec(&delivery.event)?, properties)],
        )
        .await?;
        self.settle(sub, delivery).await
    }

    async fn ping(&self) -> Result<(), BusError> {
        let channel = self.channel().await?;
        self.close(channel).await;
        Ok(())
    }

    async fn subscriptions(&self) -> Result<Vec<SubscriptionStats>, BusError> {
        let listed = self.management.queues().await?;
        let channel = self.channel().await?;
        let mut stats = Vec::new();
        let counted = async {
            for queue_info in listed {
                let Some(name) = queue_info["name"]
                    .as_str()
                    .and_then(|n| self.names.subscription_of(n))
                else {
                    continue;
                };
                let topic = queue_info["arguments"]["x-dead-letter-routing-key"]
                    .as_str()
                    .unwrap_or_default();
                // A subscription deleted meanwhile is simply not listed.
                let Ok(ready) = self.queue_depth(&channel, &self.names.queue(name)).await else {
                    continue;
                };
                let retrying = self
                    .queue_depth(&channel, &self.names.retry_queue(name))
                    .await
                    .unwrap_or(0);
                stats.push(SubscriptionStats {
                    name: name.to_owned(),
                    topic: topic.to_owned(),
                    depth: ready + retrying,
                    in_flight: queue_info["messages_unacknowledged"].as_u64().unwrap_or(0),
                    dead_letters: self
                        .queue_depth(&channel, &self.names.dead_queue(name))
                        .await
                        .unwrap_or(0),
                });
            }
            Ok::<_, BusError>(())
        }
        .await;
        self.close(channel).await;
        counted?;
        stats.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(stats)
    }

    async fn dead_letters(
        &self,
        subscription: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BusError> {
        let channel = self.channel().await?;
        let letters = self.take_dead(&channel, subscription).await;
        // Closing the channel puts every letter back where it was.
        self.close(channel).await;
        let mut letters: Vec<DeadLetter> = letters?.into_iter().map(|(_, l)| l).collect();
        letters.truncate(limit);
        Ok(letters)
    }

    async fn redrive(
        &self,
        subscription: &str,
        event_ids: Option<&[String]>,
    ) -> Result<u64, BusError> {
        let channel = self.channel().await?;
        let moved = async {
            let mut moved = 0;
            for (tag, letter) in self.take_dead(&channel, subscription).await? {
                if event_ids.is_some_and(|ids| !ids.contains(&letter.event.id)) {
                    continue;
                }
                // Straight into the subscription's queue, attempts afresh.
                self.publish_confirmed(
                    "",
                    &self.names.queue(subscription),
                    [(
                        serde_json::to_vec(&letter.event)?,
                        persistent(&letter.event),
                    )],
                )
                .await?;
                bounded(
                    &self.stalled,
                    channel.basic_ack(tag, BasicAckOptions::default()),
                )
                .await?;
                moved += 1;
            }
            Ok(moved)
        }
        .await;
        self.close(channel).await;
        moved
    }

    async fn purge(
        &self,
        subscription: &str,
        event_ids: Option<&[String]>,
    ) -> Result<u64, BusError> {
        let channel = self.channel().await?;
        let purged = async {
            let Some(ids) = event_ids else {
                return bounded(
                    &self.stalled,
                    channel.queue_purge(
                        self.names.dead_queue(subscription).as_str().into(),
                        QueuePurgeOptions::default(),
                    ),
                )
                .await
                .map(u64::from);
            };
            let mut purged = 0;
            for (tag, letter) in self.take_dead(&channel, subscription).await? {
                if ids.contains(&letter.event.id) {
                    bounded(
                        &self.stalled,
                        channel.basic_ack(tag, BasicAckOptions::default()),
                    )
                    .await?;
                    purged += 1;
                }
            }
            Ok(purged)
        }
        .await;
        self.close(channel).await;
        purged
    }
}
