//! The suite on `amqp://` (RabbitMQ), in a virtual host of this test run,
//! plus broker restarts on a node of the test's own.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::suite::{Features, Harness};

const RABBITMQ: Features = Features {
    // Competing consumers take one queue's events in parallel; RabbitMQ's
    // single-active-consumer would give order, but not competing consumers.
    per_key_order: false,
    // RabbitMQ has no duplicate window: a republished event arrives again and
    // the inbox absorbs it.
    drops_republished_duplicates: false,
    // The unacknowledged count is a management statistic, refreshed every
    // collect_statistics_interval (5 s by default).
    live_in_flight_count: false,
    exclusive_delivery: true,
    test_visibility: Duration::from_secs(5),
};

/// The management API of the server in `TEST_AMQP_URL`.
fn management(url: &str) -> (reqwest::Client, String, String, String) {
    let uri: lapin::uri::AMQPUri = url.parse().expect("TEST_AMQP_URL parses");
    (
        reqwest::Client::new(),
        format!("http://{}:15672/api", uri.authority.host),
        uri.authority.userinfo.username,
        uri.authority.userinfo.password,
    )
}

/// A virtual host for this test process (made once), named with its start
/// time so that later runs can sweep the hosts of runs older than an hour.
async fn test_vhost(url: &str) -> String {
    static VHOST: OnceLock<String> = OnceLock::new();
    if let Some(vhost) = VHOST.get() {
        return vhost.clone();
    }
    let (http, api, user, password) = management(url);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let vhosts: Vec<serde_json::Value> = http
        .get(format!("{api}/vhosts"))
        .basic_auth(&user, Some(&password))
        .send()
        .await
        .expect("the RabbitMQ management API answers (rabbitmq-plugins enable rabbitmq_management)")
        .json()
        .await
        .unwrap();
    for old in vhosts.iter().filter_map(|v| v["name"].as_str()) {
        let started = old
            .strip_prefix("dozen-test-")
            .and_then(|rest| rest.split('-').next()?.parse::<u64>().ok());
        if started.is_some_and(|started| started + 3600 < now) {
            let _ = http
                .delete(format!("{api}/vhosts/{old}"))
                .basic_auth(&user, Some(&password))
                .send()
                .await;
        }
    }
    let name = format!("dozen-test-{now}-{}", uuid::Uuid::new_v4().simple());
    create_vhost(url, &name).await;
    VHOST.get_or_init(|| name).clone()
}

/// Makes the virtual host `name`, open to the URL's user.
async fn create_vhost(url: &str, name: &str) {
    let (http, api, user, password) = management(url);
    let created = http
        .put(format!("{api}/vhosts/{name}"))
        .basic_auth(&user, Some(&password))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "create vhost: {created:?}");
    let allowed = http
        .put(format!("{api}/permissions/{name}/{user}"))
        .basic_auth(&user, Some(&password))
        .json(&serde_json::json!({ "configure": ".*", "write": ".*", "read": ".*" }))
        .send()
        .await
        .unwrap();
    assert!(allowed.status().is_success(), "grant vhost: {allowed:?}");
}

/// Deletes the virtual host `name` with all it holds; RabbitMQ closes its connections.
async fn delete_vhost(url: &str, name: &str) {
    let (http, api, user, password) = management(url);
    let deleted = http
        .delete(format!("{api}/vhosts/{name}"))
        .basic_auth(&user, Some(&password))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "delete vhost: {deleted:?}");
}

async fn harness() -> Option<Harness> {
    let server = dozen_testing::required_server("TEST_AMQP_URL", "RabbitMQ")?;
    let vhost = test_vhost(&server).await;
    let url: dozen_bus::BusUrl = format!("{}/{vhost}", server.trim_end_matches('/'))
        .parse()
        .unwrap();
    let bus = dozen_bus::connect(&url).await.unwrap();
    Some(Harness {
        url,
        bus,
        features: RABBITMQ,
        _keep: None,
    })
}

crate::conformance_suite!(harness);

/// A RabbitMQ node of the test's own, stopped and started again mid-stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bus_survives_a_rabbitmq_restart_mid_stream() {
    let Some(server) = dozen_testing::ChildServer::rabbitmq() else {
        return;
    };
    let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", server.port());
    // SIGTERM, not SIGKILL: a RabbitMQ 3.10 node killed outright can come back
    // with a quorum queue that never elects its leader (seen here).
    crate::suite::broker_restart_on(
        server,
        url,
        RABBITMQ,
        dozen_testing::ChildServer::stop_gracefully,
    )
    .await;
}

/// A connection that stays open but answers nothing (a dead link, a hung
/// broker) is abandoned for a new one once a call outlives its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_stops_answering_is_replaced_by_a_new_one() {
    use dozen_bus::Subscription;
    let Some(server) = dozen_testing::required_server("TEST_AMQP_URL", "RabbitMQ") else {
        return;
    };
    let vhost = test_vhost(&server).await;
    let (proxy, proxied) =
        dozen_testing::TcpProxy::in_front_of(&format!("{}/{vhost}", server.trim_end_matches('/')))
            .await;
    let bus = dozen_bus::connect(&proxied.parse().unwrap()).await.unwrap();
    let topic = crate::suite::unique("topic");
    let sub = Subscription::new(&crate::suite::unique("sub"), &topic);
    bus.declare(&sub).await.unwrap();
    bus.publish(&topic, &[crate::suite::probe(1)])
        .await
        .unwrap();

    proxy.freeze();
    let started = std::time::Instant::now();
    let error = bus
        .publish(&topic, &[crate::suite::probe(2)])
        .await
        .unwrap_err();
    assert!(
        matches!(error, dozen_bus::BusError::Unavailable(_)),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "bounded, not hung"
    );

    proxy.restore();
    bus.publish(&topic, &[crate::suite::probe(3)])
        .await
        .unwrap();
    let mut numbers = Vec::new();
    for _ in 0..100 {
        for delivery in bus.receive(&sub, 10).await.unwrap() {
            numbers.push(delivery.event.data["n"].as_u64().unwrap());
            bus.ack(&sub, &delivery).await.unwrap();
        }
        if numbers.contains(&3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(numbers.contains(&1) && numbers.contains(&3), "{numbers:?}");
}

/// A harness on a virtual host of the test's own, which it may delete.
async fn own_vhost() -> Option<(String, String, Harness)> {
    let server = dozen_testing::required_server("TEST_AMQP_URL", "RabbitMQ")?;
    let vhost = format!(
        "dozen-test-{}-{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        uuid::Uuid::new_v4().simple()
    );
    create_vhost(&server, &vhost).await;
    let url: dozen_bus::BusUrl = format!("{}/{vhost}", server.trim_end_matches('/'))
        .parse()
        .unwrap();
    let harness = Harness {
        bus: dozen_bus::connect(&url).await.unwrap(),
        url,
        features: RABBITMQ,
        _keep: None,
    };
    Some((server, vhost, harness))
}

/// The virtual host deleted and made anew (a node reset, a lost volume):
/// exchanges, queues and bindings are gone while a consumer runs and a relay publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bus_recovers_from_rabbitmq_losing_every_exchange_and_queue() {
    let Some((server, vhost, harness)) = own_vhost().await else {
        return;
    };
    let forget: crate::suite::Forget = Box::new(move |_subscription| {
        Box::pin(async move {
            delete_vhost(&server, &vhost).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            create_vhost(&server, &vhost).await;
        })
    });
    crate::suite::the_broker_forgetting_loses_no_event_committed_after(&harness, forget, false)
        .await;
}

/// The subscription's queue deleted by hand: RabbitMQ returns what no queue
/// takes, so the publisher waits for the consumer to declare it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bus_recovers_from_a_subscription_queue_deleted_on_rabbitmq() {
    let Some((server, vhost, harness)) = own_vhost().await else {
        return;
    };
    let forget: crate::suite::Forget = Box::new(move |subscription| {
        Box::pin(async move {
            let (http, api, user, password) = management(&server);
            let deleted = http
                .delete(format!("{api}/queues/{vhost}/dozen.sub.{subscription}"))
                .basic_auth(&user, Some(&password))
                .send()
                .await
                .unwrap();
            assert!(deleted.status().is_success(), "delete queue: {deleted:?}");
        })
    });
    crate::suite::the_broker_forgetting_loses_no_event_committed_after(&harness, forget, false)
        .await;
}
