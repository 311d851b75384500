//! Signing up publishes `user.signed_up` through the transactional outbox.

use std::time::{Duration, Instant};

use dozen_bus::{Bus, Delivery, EventType, Subscription};
use dozen_events::UserSignedUp;
use dozen_testing::{on_every_database, Backend, TcpProxy, TestDatabase};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::spawn_app_with;

/// Polls the subscription until `count` events arrived, or fails after `within`.
async fn receive(
    bus: &dyn Bus,
    sub: &Subscription,
    count: usize,
    within: Duration,
) -> Vec<Delivery> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < count {
        assert!(
            Instant::now() < deadline,
            "only {} of {count} events arrived",
            got.len()
        );
        for delivery in bus.receive(sub, 10).await.unwrap_or_default() {
            bus.ack(sub, &delivery).await.unwrap();
            got.push(delivery);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    got
}

on_every_database!(signing_up_publishes_user_signed_up_once_and_a_refused_signup_nothing);

/// On PostgreSQL the bus is PostgreSQL too, so the event crosses both SQL backends.
async fn signing_up_publishes_user_signed_up_once_and_a_refused_signup_nothing(backend: Backend) {
    let on_postgres = matches!(backend, Backend::Postgres(_));
    let app = spawn_app_with(backend, |settings| {
        if on_postgres {
            settings.process.bus.url = settings.process.database.url.expose().parse().unwrap();
        }
    })
    .await;
    let bus = app.bus().await;
    let sub = Subscription::new("test.signups", "user.signed_up");
    bus.declare(&sub).await.unwrap();

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let response = app
        .client
        .post(app.url("/v1/users"))
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .json(&serde_json::json!({
            "username": "signal", "email": "Signal@Example.com", "password": "a long password"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let user: Value = response.json().await.unwrap();
    let duplicate = app
        .sign_up("signal", "other@example.com", "a long password")
        .await;
    assert_eq!(duplicate.status(), StatusCode::CONFLICT);

    let got = receive(&*bus, &sub, 1, Duration::from_secs(10)).await;
    let event = &got[0].event;
    assert_eq!(event.event_type, "user.signed_up");
    assert_eq!(event.source, "accounts");
    assert_eq!(event.subject.as_deref(), user["user"]["id"].as_str());
    assert_eq!(
        event.trace_id(),
        Some(trace_id),
        "the request's trace continues in the event"
    );
    // The producer's side of the contract: what accounts emits passes the schema.
    dozen_events::contract::validate(&event.event_type, UserSignedUp::VERSION, &event.data)
        .unwrap();
    let data: UserSignedUp = event.decode().unwrap();
    assert_eq!(data.user_id, user["user"]["id"].as_str().unwrap());
    assert_eq!(data.username, "signal");
    assert_eq!(data.email, "signal@example.com");
    assert_eq!(
        data.signed_up_at,
        user["user"]["created_at"].as_str().unwrap()
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        bus.receive(&sub, 10).await.unwrap().is_empty(),
        "the refused signup published nothing"
    );
}

/// A real outage: accounts reaches its PostgreSQL bus through a proxy the test cuts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_while_the_bus_is_unreachable_answers_201_and_its_event_arrives_when_the_bus_returns(
) {
    let Some(postgres) = Backend::postgres() else {
        return;
    };
    let bus_database = TestDatabase::create(&postgres).await;
    let (proxy, proxied_url) = TcpProxy::in_front_of(&bus_database.url).await;
    a_signup_reaches_a_subscriber_on(proxied_url, Some(Outage::Cut(&proxy))).await;
}

/// How a test takes the broker away and brings it back.
enum Outage<'a> {
    /// Stops the broker process, then starts it again.
    Stop(&'a mut dozen_testing::ChildServer),
    /// Cuts the network between the services and the broker, then restores it.
    Cut(&'a TcpProxy),
}

impl Outage<'_> {
    fn begin(&mut self) {
        match self {
            Outage::Stop(server) => server.stop_gracefully(),
            Outage::Cut(proxy) => proxy.cut(),
        }
    }

    fn end(&mut self) {
        match self {
            Outage::Stop(server) => server.start(),
            Outage::Cut(proxy) => proxy.restore(),
        }
    }
}

/// Signs up on an app whose bus is `bus_url`, and receives the event there.
/// With an `outage`, signs up again while the broker is away: the signup
/// answers 201, the process stays ready (its writes wait in the outbox, so a
/// load balancer keeps sending it traffic) while the age of the outbox's
/// oldest event grows in its metrics, and the event arrives once the broker
/// is back.
async fn a_signup_reaches_a_subscriber_on(bus_url: String, outage: Option<Outage<'_>>) {
    let app = spawn_app_with(Backend::Sqlite, |settings| {
        settings.process.bus.url = bus_url.parse().unwrap();
    })
    .await;
    let bus = app.bus().await;
    let sub = Subscription::new("test.signups", "user.signed_up");
    bus.declare(&sub).await.unwrap();
    let response = app
        .sign_up("broker", "broker@example.com", "a long password")
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let got = receive(&*bus, &sub, 1, Duration::from_secs(30)).await;
    let data: UserSignedUp = got[0].event.decode().unwrap();
    assert_eq!(data.username, "broker");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(
        ready.status(),
        StatusCode::OK,
        "ready on this bus: {}",
        ready.text().await.unwrap()
    );

    let Some(mut outage) = outage else {
        return;
    };
    outage.begin();
    let response = app
        .sign_up("outage", "outage@example.com", "a long password")
        .await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "the signup does not wait for the bus"
    );
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(
        ready.status(),
        StatusCode::OK,
        "still ready without its bus: {}",
        ready.text().await.unwrap()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while outbox_age(&app).await < 1 {
        assert!(Instant::now() < deadline, "the backlog's age shows");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    outage.end();
    let got = receive(&*bus, &sub, 1, Duration::from_secs(60)).await;
    let data: UserSignedUp = got[0].event.decode().unwrap();
    assert_eq!(
        data.username, "outage",
        "committed during the outage, delivered after it"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        bus.receive(&sub, 10).await.unwrap().is_empty(),
        "delivered once"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while outbox_age(&app).await != 0 {
        assert!(
            Instant::now() < deadline,
            "no backlog once the broker is back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `outbox_oldest_pending_event_age_seconds` from the app's `/metrics`.
async fn outbox_age(app: &crate::helpers::TestApp) -> i64 {
    dozen_testing::metrics::scrape(
        &app.client,
        &app.url("/metrics"),
        "outbox_oldest_pending_event_age_seconds",
    )
    .await
    .expect("the metric is exported") as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_reaches_a_subscriber_on_nats_by_changing_only_bus_url_and_survives_a_nats_outage()
{
    // A server of the test's own: its streams vanish with it, and it can be stopped.
    let Some(mut nats) = dozen_testing::ChildServer::nats() else {
        return;
    };
    let url = format!("nats://127.0.0.1:{}", nats.port());
    a_signup_reaches_a_subscriber_on(url, Some(Outage::Stop(&mut nats))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_reaches_a_subscriber_on_rabbitmq_by_changing_only_bus_url_and_survives_a_rabbitmq_outage(
) {
    let Some(mut rabbitmq) = dozen_testing::ChildServer::rabbitmq() else {
        return;
    };
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", rabbitmq.port());
    a_signup_reaches_a_subscriber_on(url, Some(Outage::Stop(&mut rabbitmq))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_reaches_a_subscriber_on_sns_and_sqs_by_changing_only_bus_url_and_survives_losing_it(
) {
    let Some(server) = dozen_testing::required_server("TEST_SNS_SQS_URL", "SNS+SQS") else {
        return;
    };
    // The stand-in serves other tests: cut the way to it instead of stopping it.
    let endpoint = server
        .split(['?', '&'])
        .find_map(|option| option.strip_prefix("endpoint=http://"))
        .expect("TEST_SNS_SQS_URL names its endpoint=http://host:port");
    let proxy = TcpProxy::start(endpoint).await;
    let proxied = server.replace(endpoint, &proxy.address().to_string());
    // Names of the test's own on the shared stand-in.
    let prefix = format!("a{}-", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    a_signup_reaches_a_subscriber_on(
        format!("{proxied}&prefix={prefix}"),
        Some(Outage::Cut(&proxy)),
    )
    .await;
}
