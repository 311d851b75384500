//! The suite on `sns+sqs://`, against the local AWS stand-in in
//! `TEST_SNS_SQS_URL` (moto_server, which CI starts), with names under a
//! prefix of this test run.

use std::sync::OnceLock;
use std::time::Duration;

use dozen_bus::{Bus, Subscription};

use crate::suite::{probe, unique, Features, Harness};

const SNS_SQS: Features = Features {
    // Standard SQS queues keep no order.
    per_key_order: false,
    // Standard SNS topics and SQS queues have no duplicate window.
    drops_republished_duplicates: false,
    // SQS's ApproximateNumberOfMessagesNotVisible is approximate and lags.
    live_in_flight_count: false,
    // SQS standard queues deliver at least once: "occasionally more than one
    // copy" of a message, even to competing consumers (moto, too, now and then).
    exclusive_delivery: false,
    // moto is one Python process serving every test of the suite at once.
    test_visibility: Duration::from_secs(20),
};

/// `TEST_SNS_SQS_URL` with a resource prefix of this test process.
fn url_with_prefix() -> Option<String> {
    static PREFIX: OnceLock<String> = OnceLock::new();
    let server = dozen_testing::required_server("TEST_SNS_SQS_URL", "SNS+SQS")?;
    let prefix =
        PREFIX.get_or_init(|| format!("t{}-", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    let separator = if server.contains('?') { '&' } else { '?' };
    Some(format!("{server}{separator}prefix={prefix}"))
}

async fn harness() -> Option<Harness> {
    let url: dozen_bus::BusUrl = url_with_prefix()?.parse().unwrap();
    let bus = dozen_bus::connect(&url).await.unwrap();
    Some(Harness {
        url,
        bus,
        features: SNS_SQS,
        _keep: None,
    })
}

crate::conformance_suite!(harness);

/// Where infrastructure code creates the topics and queues, the bus only finds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_creation_off_the_bus_uses_existing_resources_and_creates_none() {
    let Some(url) = url_with_prefix() else {
        return;
    };
    let creating = dozen_bus::connect(&url.parse().unwrap()).await.unwrap();
    let finding: std::sync::Arc<dyn Bus> =
        dozen_bus::connect(&format!("{url}&create=false").parse().unwrap())
            .await
            .unwrap();

    let topic = unique("topic");
    let missing = Subscription::new(&unique("sub"), &topic);
    assert!(
        finding.declare(&missing).await.is_err(),
        "nothing exists yet, and this bus creates nothing"
    );
    assert!(
        !creating
            .subscriptions()
            .await
            .unwrap()
            .iter()
            .any(|s| s.name == missing.name),
        "the refused declaration left no queue behind"
    );

    let sub = Subscription::new(&unique("sub"), &topic);
    creating.declare(&sub).await.unwrap();
    finding.declare(&sub).await.unwrap();
    finding.publish(&topic, &[probe(1)]).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..50 {
        got.extend(finding.receive(&sub, 10).await.unwrap());
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        got.len(),
        1,
        "published and received through existing resources"
    );
    finding.ack(&sub, &got[0]).await.unwrap();
}

/// A moto server of the test's own, restarted (it keeps nothing): every
/// topic, queue and subscription is gone while a consumer runs and a relay publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bus_recovers_from_aws_losing_every_topic_and_queue() {
    let Some(server) = dozen_testing::ChildServer::moto() else {
        return;
    };
    if dozen_testing::required_server("TEST_SNS_SQS_URL", "SNS+SQS").is_none() {
        return; // the AWS credentials for the stand-in come with it
    }
    let url: dozen_bus::BusUrl = format!(
        "sns+sqs://?region=us-east-1&endpoint=http://127.0.0.1:{}",
        server.port()
    )
    .parse()
    .unwrap();
    let harness = Harness {
        bus: dozen_bus::connect(&url).await.unwrap(),
        url,
        features: SNS_SQS,
        _keep: None,
    };
    let server = std::sync::Arc::new(std::sync::Mutex::new(server));
    // The test keeps the server alive after the restart.
    let _running = server.clone();
    let forget: crate::suite::Forget = Box::new(move |_subscription| {
        Box::pin(async move {
            tokio::task::spawn_blocking(move || server.lock().unwrap().start_empty())
                .await
                .unwrap();
        })
    });
    crate::suite::the_broker_forgetting_loses_no_event_committed_after(&harness, forget, false)
        .await;
}

/// The subscription's SQS queue deleted by hand: the consumer makes it again
/// (and SNS delivers to it again). What SNS sent meanwhile went nowhere: the
/// events committed once the consumer is back all arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bus_recovers_from_a_subscription_queue_deleted_on_sqs() {
    let Some(h) = harness().await else {
        return;
    };
    let config = dozen_bus::sns_sqs_config(h.url.expose()).await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let prefix = h.url.expose().split("prefix=").nth(1).unwrap().to_owned();
    let forget: crate::suite::Forget = Box::new(move |subscription| {
        Box::pin(async move {
            let name = format!("{prefix}{}", dozen_bus::names::token(&subscription));
            let url = sqs
                .get_queue_url()
                .queue_name(&name)
                .send()
                .await
                .unwrap()
                .queue_url()
                .unwrap()
                .to_owned();
            sqs.delete_queue().queue_url(url).send().await.unwrap();
        })
    });
    crate::suite::the_broker_forgetting_loses_no_event_committed_after(&h, forget, true).await;
}
