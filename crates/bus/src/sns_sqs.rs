//! `sns+sqs://?region=…`: AWS SNS topics fanned out to SQS queues, the
//! talk's own choice.
//!
//! Mapping, native rather than emulated:
//! - a **topic** is an SNS topic `<prefix><topic>`, where the prefix is the
//!   URL's `prefix=` followed by `<ns>-` for a `namespace=<ns>` (so is
//!   every queue's name);
//! - a **subscription** is an SQS queue `<prefix><name>` subscribed to it with
//!   raw message delivery (the body is the CloudEvent), a queue policy that
//!   lets only that topic send to it, and tags naming the subscription and its
//!   topic (which refuse a re-declaration on another topic). Competing
//!   consumers receive from it; the queue's **visibility timeout** is the
//!   subscription's (SQS counts in whole seconds: rounded up); the attempt is
//!   SQS's `ApproximateReceiveCount`; a **retry** changes the message's
//!   visibility to the backoff (whole seconds too);
//! - **dead letters** go to the queue `<prefix><name>-dead`, which is also
//!   the queue's redrive target after `max_attempts` receives, for handlers
//!   that never settle; the last error, attempts and time travel as message
//!   attributes. SQS cannot peek: listing receives the dead letters and makes
//!   them visible again at once;
//! - **receiving** is a short poll; an idle consumer's wait is a long poll
//!   (up to 20 s) whose messages the next receive returns. Acks are batch deletes.
//! - SQS gives no order and no duplicate window on standard queues; the inbox
//!   absorbs duplicates.
//!
//! Credentials and region come from the standard AWS environment (and
//! `region=` in the URL); `endpoint=` or `AWS_ENDPOINT_URL` points it at a
//! local server. `create=false` creates nothing: infrastructure code made the
//! topics, queues and subscriptions, and the bus only finds them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName,
};

use crate::backend::{Bus, BusError, DeadLetter, Delivery, SubscriptionStats};
use crate::event::Event;
use crate::names::token;
use crate::subscription::Subscription;
use crate::vanished::Vanished;

/// SQS takes at most ten messages per receive, send or delete batch.
const SQS_BATCH: usize = 10;
/// The longest long poll SQS allows.
const LONGEST_POLL: Duration = Duration::from_secs(20);
/// As long as SQS keeps a message at most.
const RETENTION_SECONDS: &str = "1209600";

/// An AWS error as the bus says it: a topic or queue that is not there is
/// [`BusError::Missing`] (deleted, or a local stand-in restarted empty).
fn unavailable<E>(error: E) -> BusError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let text = aws_sdk_sqs::error::DisplayErrorContext(&error).to_string();
    match error.code() {
        Some("NotFound" | "QueueDoesNotExist" | "AWS.SimpleQueueService.NonExistentQueue") => {
            BusError::Missing(text)
        }
        _ => BusError::Unavailable(text),
    }
}

/// Whole seconds, rounded up: SQS's unit.
fn seconds(duration: Duration) -> i32 {
    let millis = duration.as_millis();
    i32::try_from(millis.div_ceil(1000)).unwrap_or(i32::MAX)
}

fn attribute(value: impl Into<String>, data_type: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type(data_type)
        .string_value(value)
        .build()
        .expect("data type and value are set")
}

fn message_attribute(message: &Message, name: &str) -> Option<String> {
    message
        .message_attributes()?
        .get(name)?
        .string_value()
        .map(str::to_owned)
}

/// What the URL says.
#[derive(Debug, Clone, Default, PartialEq)]
struct Options {
    region: Option<String>,
    endpoint: Option<String>,
    prefix: String,
    create: bool,
}

impl Options {
    fn parse(url: &str) -> Result<Self, BusError> {
        let query = url
            .strip_prefix("sns+sqs://")
            .and_then(|rest| rest.split_once('?').map(|(_, q)| q))
            .unwrap_or("");
        let mut options = Options {
            create: true,
            ..Default::default()
        };
        let mut namespace = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = value.replace("%3A", ":").replace("%2F", "/");
            match key {
                "region" => options.region = Some(value),
                "endpoint" => options.endpoint = Some(value),
                "prefix" => options.prefix = token(&value),
                // Dozen's namespace: `<namespace>-` before every name.
                "namespace" => namespace = Some(token(&value)),
                "create" => options.create = value != "false",
                other => {
                    return Err(BusError::Backend(format!(
                        "unknown sns+sqs:// option {other:?}: expected region, endpoint, namespace, prefix or create"
                    )))
                }
            }
        }
        if let Some(namespace) = namespace {
            options.prefix = format!("{}{namespace}-", options.prefix);
        }
        Ok(options)
    }
}

/// The AWS SDK configuration a `sns+sqs://` URL means: the standard AWS
/// environment, with the URL's region and endpoint over it.
pub async fn config_for_url(url: &str) -> Result<aws_config::SdkConfig, BusError> {
    sdk_config(&Options::parse(url)?).await
}

async fn sdk_config(options: &Options) -> Result<aws_config::SdkConfig, BusError> {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http);
    if let Some(region) = &options.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(endpoint) = &options.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(BusError::Backend(
            "sns+sqs:// needs a region: region= in BUS_URL, or AWS_REGION".into(),
        ));
    }
    Ok(config)
}

/// An SNS+SQS bus.
pub struct SnsSqsBus {
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    options: Options,
    topic_arns: Mutex<HashMap<String, String>>,
    queue_urls: Mutex<HashMap<String, String>>,
    /// Topics this bus published to, and those it found gone since.
    vanished: Vanished,
    /// Messages a long poll in `wait` brought, for the next `receive`.
    polled: Mutex<HashMap<String, Vec<Message>>>,
}

impl std::fmt::Debug for SnsSqsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnsSqsBus")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SnsSqsBus {
    /// Reads the AWS configuration; talks to AWS on first use.
    pub async fn connect(url: &str) -> Result<Self, BusError> {
        let options = Options::parse(url)?;
        let config = sdk_config(&options).await?;
        Ok(Self {
            sns: aws_sdk_sns::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            options,
            topic_arns: Mutex::default(),
            queue_urls: Mutex::default(),
            vanished: Vanished::default(),
            polled: Mutex::default(),
        })
    }

    fn topic_name(&self, topic: &str) -> String {
        format!("{}{}", self.options.prefix, token(topic))
    }

    fn queue_name(&self, subscription: &str) -> String {
        format!("{}{}", self.options.prefix, token(subscription))
    }

    fn dead_queue_name(&self, subscription: &str) -> String {
        format!("{}-dead", self.queue_name(subscription))
    }

    /// The topic's ARN: created (idempotent), or found when creation is off.
    async fn topic_arn(&self, topic: &str) -> Result<String, BusError> {
        if let Some(arn) = self
            .topic_arns
            .lock()
            .ok()
            .and_then(|t| t.get(topic).cloned())
        {
            return Ok(arn);
        }
        let name = self.topic_name(topic);
        let arn = if self.options.create {
            self.sns
                .create_topic()
                .name(&name)
                .send()
                .await
                .map_err(unavailable)?
                .topic_arn()
                .map(str::to_owned)
        } else {
            self.find_topic(&name).await?
        }
        .ok_or_else(|| BusError::Backend(format!("no SNS topic named {name}")))?;
        if let Ok(mut arns) = self.topic_arns.lock() {
            arns.insert(topic.to_owned(), arn.clone());
        }
        Ok(arn)
    }

    async fn find_topic(&self, name: &str) -> Result<Option<String>, BusError> {
        let suffix = format!(":{name}");
        let mut pages = self.sns.list_topics().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(unavailable)?;
            for topic in page.topics() {
                if let Some(arn) = topic.topic_arn().filter(|arn| arn.ends_with(&suffix)) {
                    return Ok(Some(arn.to_owned()));
                }
            }
        }
        Ok(None)
    }

    /// The queue's URL, or `None` when it does not exist.
    async fn queue_url(&self, name: &str) -> Result<Option<String>, BusError> {
        if let Some(url) = self
            .queue_urls
            .lock()
            .ok()
            .and_then(|q| q.get(name).cloned())
        {
            return Ok(Some(url));
        }
        match self.sqs.get_queue_url().queue_name(name).send().await {
            Ok(found) => {
                let url = found.queue_url().unwrap_or_default().to_owned();
                if let Ok(mut urls) = self.queue_urls.lock() {
                    urls.insert(name.to_owned(), url.clone());
                }
                Ok(Some(url))
            }
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_queue_does_not_exist()) =>
            {
                Ok(None)
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn existing_queue(&self, name: &str) -> Result<String, BusError> {
        self.queue_url(name)
            .await?
            .ok_or_else(|| BusError::Missing(format!("no SQS queue named {name}")))
    }

    /// Forgets what this bus knew of the topic and of the subscription's queues.
    fn forget(&self, topic: &str, subscription: Option<&str>) {
        if let Ok(mut arns) = self.topic_arns.lock() {
            arns.remove(topic);
        }
        if let (Some(subscription), Ok(mut urls)) = (subscription, self.queue_urls.lock()) {
            urls.remove(&self.queue_name(subscription));
            urls.remove(&self.dead_queue_name(subscription));
        }
    }

    /// Runs `call` on the subscription's queue; when SQS says the queue is
    /// gone, forgets its URL so that the next call looks again.
    async fn on_queue<T, F, Fut>(&self, sub: &Subscription, call: F) -> Result<T, BusError>
    where
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, BusError>>,
    {
        let url = self.existing_queue(&self.queue_name(&sub.name)).await?;
        let outcome = call(url).await;
        if matches!(outcome, Err(BusError::Missing(_))) {
            self.forget(&sub.topic, Some(&sub.name));
        }
        outcome
    }

    async fn queue_attributes(
        &self,
        url: &str,
        names: &[QueueAttributeName],
    ) -> Result<HashMap<QueueAttributeName, String>, BusError> {
        let mut request = self.sqs.get_queue_attributes().queue_url(url);
        for name in names {
            request = request.attribute_names(name.clone());
        }
        Ok(request
            .send()
            .await
            .map_err(unavailable)?
            .attributes()
            .cloned()
            .unwrap_or_default())
    }

    fn count(attributes: &HashMap<QueueAttributeName, String>, name: QueueAttributeName) -> u64 {
        attributes
            .get(&name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Creates the queue, or sets its attributes when it exists.
    async fn ensure_queue(
        &self,
        name: &str,
        attributes: HashMap<QueueAttributeName, String>,
        tags: &[(&str, &str)],
    ) -> Result<String, BusError> {
        if let Some(url) = self.queue_url(name).await? {
            self.sqs
                .set_queue_attributes()
                .queue_url(&url)
                .set_attributes(Some(attributes))
                .send()
                .await
                .map_err(unavailable)?;
            return Ok(url);
        }
        let mut request = self
            .sqs
            .create_queue()
            .queue_name(name)
            .set_attributes(Some(attributes));
        for (key, value) in tags {
            request = request.tags(*key, *value);
        }
        let url = request
            .send()
            .await
            .map_err(unavailable)?
            .queue_url()
            .unwrap_or_default()
            .to_owned();
        if let Ok(mut urls) = self.queue_urls.lock() {
            urls.insert(name.to_owned(), url.clone());
        }
        Ok(url)
    }

    async fn queue_arn(&self, url: &str) -> Result<String, BusError> {
        self.queue_attributes(url, &[QueueAttributeName::QueueArn])
            .await?
            .remove(&QueueAttributeName::QueueArn)
            .ok_or_else(|| BusError::Backend(format!("SQS gave no ARN for {url}")))
    }

    /// The topic a subscription's queue belongs to, from its tags.
    async fn tagged_topic(&self, url: &str) -> Result<Option<String>, BusError> {
        Ok(self
            .sqs
            .list_queue_tags()
            .queue_url(url)
            .send()
            .await
            .map_err(unavailable)?
            .tags()
            .and_then(|tags| tags.get("dozen-topic").cloned()))
    }

    async fn receive_from(
        &self,
        url: &str,
        max: usize,
        wait: Duration,
        visibility: Option<Duration>,
    ) -> Result<Vec<Message>, BusError> {
        let mut request = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, SQS_BATCH) as i32)
            .wait_time_seconds(seconds(wait.min(LONGEST_POLL)))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_attribute_names("All");
        if let Some(visibility) = visibility {
            request = request.visibility_timeout(seconds(visibility));
        }
        Ok(request
            .send()
            .await
            .map_err(unavailable)?
            .messages()
            .to_vec())
    }

    fn delivery(message: &Message) -> Result<Delivery, BusError> {
        let attempt = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|count| count.parse().ok())
            .unwrap_or(1);
        Ok(Delivery {
            event: serde_json::from_str(message.body().unwrap_or_default())?,
            attempt,
            receipt: message.receipt_handle().unwrap_or_default().to_owned(),
        })
    }

    /// Deletes messages, ten per request, the requests side by side.
    async fn delete(&self, url: &str, receipts: &[&str]) -> Result<(), BusError> {
        let requests = receipts.chunks(SQS_BATCH).map(|chunk| {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(n, receipt)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(n.to_string())
                        .receipt_handle(*receipt)
                        .build()
                        .expect("id and receipt are set")
                })
                .collect();
            self.sqs
                .delete_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
        });
        for deleted in futures::future::join_all(requests).await {
            let deleted = deleted.map_err(unavailable)?;
            // A receipt that is no longer valid belongs to a delivery SQS has
            // handed to another consumer since: not ours to delete.
            if let Some(failed) = deleted
                .failed()
                .iter()
                .find(|f| f.code() != "ReceiptHandleIsInvalid")
            {
                return Err(BusError::Backend(format!(
                    "SQS did not delete a message: {} {}",
                    failed.code(),
                    failed.message().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }

    /// Every dead letter of the subscription, received (so invisible for a
    /// while), oldest first, with its receipt.
    async fn take_dead(
        &self,
        subscription: &str,
    ) -> Result<(String, Vec<(String, DeadLetter)>), BusError> {
        let url = self
            .existing_queue(&self.dead_queue_name(subscription))
            .await?;
        let mut letters = Vec::new();
        loop {
            let batch = self
                .receive_from(
                    &url,
                    SQS_BATCH,
                    Duration::ZERO,
                    Some(Duration::from_secs(30)),
                )
                .await?;
            if batch.is_empty() {
                break;
            }
            for message in batch {
                let order: u128 = message_attribute(&message, "dozen-dead-order")
                    .and_then(|o| o.parse().ok())
                    .unwrap_or(0);
                let letter = DeadLetter {
                    subscription: subscription.to_owned(),
                    event: serde_json::from_str(message.body().unwrap_or_default())?,
                    attempts: message_attribute(&message, "dozen-attempts")
                        .and_then(|a| a.parse().ok())
                        .unwrap_or(0),
                    last_error: message_attribute(&message, "dozen-last-error"),
                    dead_at: message_attribute(&message, "dozen-dead-at"),
                };
                letters.push((
                    order,
                    message.receipt_handle().unwrap_or_default().to_owned(),
                    letter,
                ));
            }
        }
        letters.sort_by_key(|(order, _, _)| *order);
        Ok((
            url,
            letters
                .into_iter()
                .map(|(_, receipt, letter)| (receipt, letter))
                .collect(),
        ))
    }

    /// Makes received dead letters visible again.
    async fn release(&self, url: &str, receipts: &[String]) -> Result<(), BusError> {
        for receipt in receipts {
            self.sqs
                .change_message_visibility()
                .queue_url(url)
                .receipt_handle(receipt)
                .visibility_timeout(0)
                .send()
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// Sends one event to a queue, with message attributes.
    /// Publishes `events` to the SNS topic `arn`, ten at a time.
    async fn publish_to(&self, arn: &str, events: &[Event]) -> Result<(), BusError> {
        for chunk in events.chunks(SQS_BATCH) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (n, event) in chunk.iter().enumerate() {
                entries.push(
                    aws_sdk_sns::types::PublishBatchRequestEntry::builder()
                        .id(n.to_string())
                        .message(serde_json::to_string(event)?)
                        .build()
                        .expect("id and message are set"),
                );
            }
            let published = self
                .sns
                .publish_batch()
                .topic_arn(arn)
                .set_publish_batch_request_entries(Some(entries))
                .send()
                .await
                .map_err(unavailable)?;
            if let Some(failed) = published.failed().first() {
                return Err(BusError::Unavailable(format!(
                    "SNS did not publish an event: {} {}",
                    failed.code(),
                    failed.message().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }

    async fn send(
        &self,
        url: &str,
        event: &Event,
        attributes: Vec<(&str, MessageAttributeValue)>,
    ) -> Result<(), BusError> {
        let mut request = self
            .sqs
            .send_message()
            .queue_url(url)
            .message_body(serde_json::to_string(event)?);
        for (name, value) in attributes {
            request = request.message_attributes(name, value);
        }
        request.send().await.map_err(unavailable)?;
        Ok(())
    }
}

#[async_trait]
impl Bus for SnsSqsBus {
    async fn declare_topic(&self, topic: &str) -> Result<(), BusError> {
        self.topic_arn(topic).await.map(|_| ())
    }

    async fn declare(&self, sub: &Subscription) -> Result<(), BusError> {
        // Looked up afresh: what this bus knew may be gone from AWS.
        self.forget(&sub.topic, Some(&sub.name));
        let name = self.queue_name(&sub.name);
        if let Some(url) = self.queue_url(&name).await? {
            if let Some(existing) = self.tagged_topic(&url).await?.filter(|t| *t != sub.topic) {
                return Err(BusError::TopicMismatch {
                    name: sub.name.clone(),
                    existing,
                    requested: sub.topic.clone(),
                });
            }
        }
        let topic_arn = self.topic_arn(&sub.topic).await?;
        if !self.options.create {
            self.existing_queue(&name).await?;
            self.existing_queue(&self.dead_queue_name(&sub.name))
                .await?;
            return Ok(());
        }
        let tags = [
            ("dozen-subscription", sub.name.as_str()),
            ("dozen-topic", sub.topic.as_str()),
        ];
        let dead_url = self
            .ensure_queue(
                &self.dead_queue_name(&sub.name),
                HashMap::from([(
                    QueueAttributeName::MessageRetentionPeriod,
                    RETENTION_SECONDS.to_owned(),
                )]),
                &[("dozen-dead-letters-of", sub.name.as_str())],
            )
            .await?;
        let dead_arn = self.queue_arn(&dead_url).await?;
        // The queue's ARN is known only once it exists: create, then set the policy.
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dead_arn,
            "maxReceiveCount": sub.max_attempts.to_string(),
        });
        let attributes = HashMap::from([
            (
                QueueAttributeName::VisibilityTimeout,
                seconds(sub.visibility_timeout).to_string(),
            ),
            (
                QueueAttributeName::MessageRetentionPeriod,
                RETENTION_SECONDS.to_owned(),
            ),
            (QueueAttributeName::RedrivePolicy, redrive.to_string()),
        ]);
        let url = self.ensure_queue(&name, attributes, &tags).await?;
        let queue_arn = self.queue_arn(&url).await?;
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "only-its-topic",
                "Effect": "Allow",
                "Principal": { "Service": "sns.amazonaws.com" },
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": { "ArnEquals": { "aws:SourceArn": topic_arn } },
            }],
        });
        self.sqs
            .set_queue_attributes()
            .queue_url(&url)
            .attributes(QueueAttributeName::Policy, policy.to_string())
            .send()
            .await
            .map_err(unavailable)?;
        // SNS returns the existing subscription when the same one is asked for again.
        self.sns
            .subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(&queue_arn)
            .attributes("RawMessageDelivery", "true")
            .return_subscription_arn(true)
            .send()
            .await
            .map_err(unavailable)?;
        self.vanished.found(&sub.topic);
        Ok(())
    }

    async fn publish(&self, topic: &str, events: &[Event]) -> Result<(), BusError> {
        let known = self
            .topic_arns
            .lock()
            .is_ok_and(|arns| arns.contains_key(topic));
        if !known
            && self.vanished.seen(topic)
            && self.find_topic(&self.topic_name(topic)).await?.is_none()
        {
            self.vanished.may_recreate(topic)?;
        }
        let arn = self.topic_arn(topic).await?;
        self.vanished.found(topic);
        let published = self.publish_to(&arn, events).await;
        if matches!(published, Err(BusError::Missing(_))) {
            self.forget(topic, None);
        }
        published
    }

    async fn receive(&self, sub: &Subscription, max: usize) -> Result<Vec<Delivery>, BusError> {
        let mut messages = {
            let mut polled = self.polled.lock().unwrap_or_else(|p| p.into_inner());
            let held = polled.entry(sub.name.clone()).or_default();
            let count = max.min(held.len());
            held.drain(..count).collect::<Vec<_>>()
        };
        if messages.len() < max {
            let more = max - messages.len();
            let received = self
                .on_queue(sub, |url| async move {
                    self.receive_from(&url, more, Duration::ZERO, Some(sub.visibility_timeout))
                        .await
                })
                .await?;
            messages.extend(received);
        }
        messages.iter().map(Self::delivery).collect()
    }

    async fn wait(&self, sub: &Subscription, max_wait: Duration) {
        let waiting = self
            .polled
            .lock()
            .is_ok_and(|p| p.get(&sub.name).is_some_and(|m| !m.is_empty()));
        if waiting {
            return;
        }
        // A long poll; what it brings stays invisible to others until `receive` hands it out.
        let max = sub.max_in_flight.min(SQS_BATCH);
        let poll = max_wait.max(Duration::from_secs(1));
        let polled = self
            .on_queue(sub, |url| async move {
                self.receive_from(&url, max, poll, Some(sub.visibility_timeout))
                    .await
            })
            .await;
        match polled {
            Ok(messages) => {
                if let Ok(mut polled) = self.polled.lock() {
                    polled.entry(sub.name.clone()).or_default().extend(messages);
                }
            }
            // The next receive says why.
            Err(_) => tokio::time::sleep(max_wait.min(Duration::from_secs(1))).await,
        }
    }

    async fn ack(&self, sub: &Subscription, delivery: &Delivery) -> Result<(), BusError> {
        self.ack_batch(sub, std::slice::from_ref(delivery)).await
    }

    async fn ack_batch(&self, sub: &Subscription, deliveries: &[Delivery]) -> Result<(), BusError> {
        let url = self.existing_queue(&self.queue_name(&sub.name)).await?;
        let receipts: Vec<&str> = deliveries.iter().map(|d| d.receipt.as_str()).collect();
        self.delete(&url, &receipts).await
    }

    async fn retry(
        &self,
        sub: &Subscription,
        delivery: &Delivery,
        delay: Duration,
        _error: &str,
    ) -> Result<(), BusError> {
        let url = self.existing_queue(&self.queue_name(&sub.name)).await?;
        self.sqs
            .change_message_visibility()
            .queue_url(&url)
            .receipt_handle(&delivery.receipt)
            .visibility_timeout(seconds(delay))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn extend(
        &self,
        sub: &Subscription,
        delivery: &Delivery,
        by: Duration,
    ) -> Result<(), BusError> {
        let url = self.existing_queue(&self.queue_name(&sub.name)).await?;
        self.sqs
            .change_message_visibility()
            .queue_url(&url)
            .receipt_handle(&delivery.receipt)
            .visibility_timeout(seconds(by))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn dead_letter(
        &self,
        sub: &Subscription,
        delivery: &Delivery,
        error: &str,
    ) -> Result<(), BusError> {
        let dead = self
            .existing_queue(&self.dead_queue_name(&sub.name))
            .await?;
        let order = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        // SQS message attributes are limited in size: keep the error's start.
        let error: String = error.chars().take(1000).collect();
        self.send(
            &dead,
            &delivery.event,
            vec![
                ("dozen-topic", attribute(&sub.topic, "String")),
                (
                    "dozen-attempts",
                    attribute(delivery.attempt.to_string(), "Number"),
                ),
                (
                    "dozen-last-error",
                    attribute(if error.is_empty() { "-".into() } else { error }, "String"),
                ),
                (
                    "dozen-dead-at",
                    attribute(dozen_runtime::clock::now_rfc3339(), "String"),
                ),
                ("dozen-dead-order", attribute(order.to_string(), "Number")),
            ],
        )
        .await?;
        self.ack(sub, delivery).await
    }

    async fn ping(&self) -> Result<(), BusError> {
        self.sqs
            .list_queues()
            .queue_name_prefix(&self.options.prefix)
            .max_results(1)
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn subscriptions(&self) -> Result<Vec<SubscriptionStats>, BusError> {
        let mut urls = Vec::new();
        let mut pages = self
            .sqs
            .list_queues()
            .queue_name_prefix(&self.options.prefix)
            .max_results(1000)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            urls.extend(page.map_err(unavailable)?.queue_urls().iter().cloned());
        }
        let mut stats = Vec::new();
        for url in urls {
            // A queue deleted meanwhile is simply not listed.
            let Ok(tags) = self.sqs.list_queue_tags().queue_url(&url).send().await else {
                continue;
            };
            let tags = tags.tags().cloned().unwrap_or_default();
            let (Some(name), Some(topic)) =
                (tags.get("dozen-subscription"), tags.get("dozen-topic"))
            else {
                continue;
            };
            // A longer prefix is another system's (`<prefix><namespace>-`):
            // its queues begin with this one's prefix but are not named by it.
            if !url.ends_with(&format!("/{}", self.queue_name(name))) {
                continue;
            }
            use QueueAttributeName::{
                ApproximateNumberOfMessages as Visible,
                ApproximateNumberOfMessagesDelayed as Delayed,
                ApproximateNumberOfMessagesNotVisible as NotVisible,
            };
            let Ok(queue) = self
                .queue_attributes(&url, &[Visible, Delayed, NotVisible])
                .await
            else {
                continue;
            };
            let dead = match self.queue_url(&self.dead_queue_name(name)).await? {
                Some(dead_url) => {
                    let dead = self
                        .queue_attributes(&dead_url, &[Visible, NotVisible])
                        .await?;
                    Self::count(&dead, Visible) + Self::count(&dead, NotVisible)
                }
                None => 0,
            };
            stats.push(SubscriptionStats {
                name: name.clone(),
                topic: topic.clone(),
                depth: Self::count(&queue, Visible) + Self::count(&queue, Delayed),
                in_flight: Self::count(&queue, NotVisible),
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
        let (url, letters) = self.take_dead(subscription).await?;
        let receipts: Vec<String> = letters.iter().map(|(r, _)| r.clone()).collect();
        self.release(&url, &receipts).await?;
        Ok(letters.into_iter().take(limit).map(|(_, l)| l).collect())
    }

    async fn redrive(
        &self,
        subscription: &str,
        event_ids: Option<&[String]>,
    ) -> Result<u64, BusError> {
        let (dead_url, letters) = self.take_dead(subscription).await?;
        let main = self.existing_queue(&self.queue_name(subscription)).await?;
        let (mut moved, mut keep) = (Vec::new(), Vec::new());
        for (receipt, letter) in letters {
            if event_ids.is_none_or(|ids| ids.contains(&letter.event.id)) {
                // A new message: SQS counts its receives afresh.
                self.send(&main, &letter.event, Vec::new()).await?;
                moved.push(receipt);
            } else {
                keep.push(receipt);
            }
        }
        let receipts: Vec<&str> = moved.iter().map(String::as_str).collect();
        self.delete(&dead_url, &receipts).await?;
        self.release(&dead_url, &keep).await?;
        Ok(moved.len() as u64)
    }

    async fn purge(
        &self,
        subscription: &str,
        event_ids: Option<&[String]>,
    ) -> Result<u64, BusError> {
        let (url, letters) = self.take_dead(subscription).await?;
        let (mut purged, mut keep) = (Vec::new(), Vec::new());
        for (receipt, letter) in letters {
            if event_ids.is_none_or(|ids| ids.contains(&letter.event.id)) {
                purged.push(receipt);
            } else {
                keep.push(receipt);
            }
        }
        let receipts: Vec<&str> = purged.iter().map(String::as_str).collect();
        self.delete(&url, &receipts).await?;
        self.release(&url, &keep).await?;
        Ok(purged.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sns_sqs_urls_give_region_endpoint_prefix_and_whether_to_create() {
        let options = Options::parse(
            "sns+sqs://?region=eu-west-1&endpoint=http%3A%2F%2F127.0.0.1%3A5000&prefix=staging-&create=false",
        )
        .unwrap();
        assert_eq!(
            options,
            Options {
                region: Some("eu-west-1".into()),
                endpoint: Some("http://127.0.0.1:5000".into()),
                prefix: "staging-".into(),
                create: false,
            }
        );
        assert!(Options::parse("sns+sqs://").unwrap().create);
        assert_eq!(
            Options::parse("sns+sqs://?namespace=prod").unwrap().prefix,
            "prod-"
        );
        assert_eq!(
            Options::parse("sns+sqs://?namespace=prod&prefix=stack-")
                .unwrap()
                .prefix,
            "stack-prod-",
            "the namespace follows the prefix, wherever each is in the URL"
        );
        assert!(
            Options::parse("sns+sqs://?regoin=x").is_err(),
            "a typo is an error, not ignored"
        );
    }

    #[test]
    fn sqs_counts_whole_seconds_rounded_up() {
        assert_eq!(seconds(Duration::from_millis(0)), 0);
        assert_eq!(seconds(Duration::from_millis(50)), 1);
        assert_eq!(seconds(Duration::from_millis(1000)), 1);
        assert_eq!(seconds(Duration::from_millis(1001)), 2);
    }
}
