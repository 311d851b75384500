//! Bare clients of each broker doing the bus's work with nothing of Dozen:
//! one queue, persistent messages, each publish waiting for the broker's
//! confirmation, consumers acknowledging each message. The baselines the
//! Dozen rows are divided by.

use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;

use crate::{finish, produce, tick, Record};

/// A name no earlier run used.
fn fresh(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

fn tick_of(body: &[u8]) -> u64 {
    let event: dozen_bus::Event = serde_json::from_slice(body).expect("event");
    event.decode::<crate::Tick>().expect("tick").sent_ns
}

/// JetStream: a work-queue stream on file storage, publishes awaiting their
/// acks, consumers pulling continuously and acking each message.
pub async fn nats(
    url: &str,
    events: u64,
    consumers: usize,
    rate: Option<u64>,
) -> anyhow::Result<(f64, Record)> {
    use async_nats::jetstream::{self, consumer::pull, stream};
    let client = async_nats::connect(url).await?;
    let js = jetstream::new(client);
    let name = fresh("BARE_");
    let subject = format!("bare.{name}");
    let stream = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    stream
        .create_consumer(pull::Config {
            durable_name: Some("bare".into()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let record = Record::default();
    let mut tasks = Vec::new();
    for _ in 0..consumers {
        let (stream, record) = (stream.clone(), record.clone());
        tasks.push(tokio::spawn(async move {
            let consumer: jetstream::consumer::PullConsumer =
                stream.get_consumer("bare").await.expect("consumer");
            let mut messages = consumer.messages().await.expect("pull");
            while record.done() < events as usize {
                let Ok(Some(Ok(message))) =
                    tokio::time::timeout(Duration::from_millis(100), messages.next()).await
                else {
                    continue;
                };
                message.ack().await.expect("ack");
                record.note(tick_of(&message.payload));
            }
        }));
    }
    let started = produce(events, rate, move |n| {
        let (js, subject) = (js.clone(), subject.clone());
        async move {
            let body = serde_json::to_vec(&tick(n)?)?;
            js.publish(subject, body.into()).await?.await?;
            Ok(())
        }
    })
    .await?;
    finish(started, events, record, tasks).await
}

/// RabbitMQ: a durable quorum queue, persistent messages published with
/// confirms, consumers with prefetch 64 acking each message.
pub async fn rabbitmq(
    url: &str,
    events: u64,
    consumers: usize,
    rate: Option<u64>,
) -> anyhow::Result<(f64, Record)> {
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions,
    };
    use lapin::types::{AMQPValue, FieldTable};
    let connection =
        lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await?;
    let queue = fresh("bare.");
    let publisher = connection.create_channel().await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    publisher
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let record = Record::default();
    let mut tasks = Vec::new();
    for n in 0..consumers {
        let channel = connection.create_channel().await?;
        channel.basic_qos(64, BasicQosOptions::default()).await?;
        let mut deliveries = channel
            .basic_consume(
                queue.as_str().into(),
                format!("bare-{n}").as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let record = record.clone();
        tasks.push(tokio::spawn(async move {
            while record.done() < events as usize {
                let Ok(Some(Ok(delivery))) =
                    tokio::time::timeout(Duration::from_millis(100), deliveries.next()).await
                else {
                    continue;
                };
                delivery.ack(BasicAckOptions::default()).await.expect("ack");
                record.note(tick_of(&delivery.data));
            }
            drop(channel);
        }));
    }
    let started = produce(events, rate, move |n| {
        let (publisher, queue) = (publisher.clone(), queue.clone());
        async move {
            let body = serde_json::to_vec(&tick(n)?)?;
            publisher
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    lapin::BasicProperties::default().with_delivery_mode(2),
                )
                .await?
                .await?;
            Ok(())
        }
    })
    .await?;
    finish(started, events, record, tasks).await
}

/// SNS → SQS: a topic, a queue subscribed with raw delivery, one publish per
/// event, consumers long-polling ten at a time and deleting in batches.
pub async fn sns_sqs(
    bus_url: &str,
    events: u64,
    consumers: usize,
    rate: Option<u64>,
) -> anyhow::Result<(f64, Record)> {
    let config = dozen_bus::sns_sqs_config(bus_url).await?;
    let (sns, sqs) = (
        aws_sdk_sns::Client::new(&config),
        aws_sdk_sqs::Client::new(&config),
    );
    let name = fresh("bare-");
    let topic = sns
        .create_topic()
        .name(&name)
        .send()
        .await?
        .topic_arn()
        .context("topic ARN")?
        .to_owned();
    let queue = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await?
        .queue_url()
        .context("queue URL")?
        .to_owned();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .context("queue ARN")?;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await?;
    let record = Record::default();
    let mut tasks = Vec::new();
    for _ in 0..consumers {
        let (sqs, queue, record) = (sqs.clone(), queue.clone(), record.clone());
        tasks.push(tokio::spawn(async move {
            while record.done() < events as usize {
                let received = sqs
                    .receive_message()
                    .queue_url(&queue)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .send()
                    .await
                    .expect("receive");
                let mut entries = Vec::new();
                for (n, message) in received.messages().iter().enumerate() {
                    record.note(tick_of(message.body().unwrap_or_default().as_bytes()));
                    entries.push(
                        aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                            .id(n.to_string())
                            .receipt_handle(message.receipt_handle().unwrap_or_default())
                            .build()
                            .expect("entry"),
                    );
                }
                if !entries.is_empty() {
                    sqs.delete_message_batch()
                        .queue_url(&queue)
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .expect("delete");
                }
            }
        }));
    }
    let started = produce(events, rate, move |n| {
        let (sns, topic) = (sns.clone(), topic.clone());
        async move {
            let body = serde_json::to_string(&tick(n)?)?;
            sns.publish().topic_arn(topic).message(body).send().await?;
            Ok(())
        }
    })
    .await?;
    finish(started, events, record, tasks).await
}
