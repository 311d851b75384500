//! The suite on `nats://` (JetStream), plus broker restarts.

use std::time::{Duration, SystemTime};

use futures::StreamExt;

use crate::suite::{Features, Harness};

const NATS: Features = Features {
    // Competing pull consumers take one subscription's events in parallel, and
    // JetStream has no per-key lock to stop them.
    per_key_order: false,
    // Nats-Msg-Id is the event id: republishing within the window is a no-op.
    drops_republished_duplicates: true,
    // The consumer info's ack-pending count is the server's own, live.
    live_in_flight_count: true,
    exclusive_delivery: true,
    test_visibility: Duration::from_secs(5),
};

async fn harness() -> Option<Harness> {
    let url = dozen_testing::required_server("TEST_NATS_URL", "NATS")?;
    sweep_old_test_streams(&url).await;
    let url = url.parse().unwrap();
    let bus = dozen_bus::connect(&url).await.unwrap();
    Some(Harness {
        url,
        bus,
        features: NATS,
        _keep: None,
    })
}

/// Deletes the streams of tests that ran more than an hour ago (each test has its own topic).
async fn sweep_old_test_streams(url: &str) {
    static SWEPT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if SWEPT.set(()).is_err() {
        return;
    }
    let Ok(client) = async_nats::connect(url).await else {
        return;
    };
    let js = async_nats::jetstream::new(client);
    let mut streams = js.streams();
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    while let Some(Ok(info)) = streams.next().await {
        // Namespaced streams (`DOZEN-NS…`) are the namespace test's.
        let is_test = info.config.name.starts_with("DOZEN_topic-")
            || info.config.name.starts_with("DOZEN_nobody-")
            || info.config.name.starts_with("DOZEN-NS");
        if is_test && SystemTime::from(info.created) < hour_ago {
            let _ = js.delete_stream(&info.config.name).await;
        }
    }
}

crate::conformance_suite!(harness);

/// A NATS server of the test's own, killed and started again mid-stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bus_survives_a_nats_restart_mid_stream() {
    let Some(server) = dozen_testing::ChildServer::nats() else {
        return;
    };
    let url = format!("nats://127.0.0.1:{}", server.port());
    crate::suite::broker_restart_on(server, url, NATS, dozen_testing::ChildServer::stop).await;
}

/// A NATS server of the test's own, restarted on an empty store (a new node,
/// a wiped volume) while a consumer runs and a relay publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bus_recovers_from_a_nats_server_that_restarts_with_nothing_stored() {
    let Some(server) = dozen_testing::ChildServer::nats() else {
        return;
    };
    let url: dozen_bus::BusUrl = format!("nats://127.0.0.1:{}", server.port())
        .parse()
        .unwrap();
    let harness = Harness {
        bus: dozen_bus::connect(&url).await.unwrap(),
        url,
        features: NATS,
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
