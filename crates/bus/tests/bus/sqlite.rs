//! The suite on `sqlite://`, plus what only the SQLite backend promises.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dozen_bus::{Bus, Event, Subscription};
use dozen_testing::{Backend, TestDatabase};

use crate::suite::{unique, Features, Harness, Probe};

async fn harness() -> Option<Harness> {
    let database = TestDatabase::create(&Backend::Sqlite).await;
    let url = database.url.replace("test.db", "bus.db").parse().unwrap();
    let bus = dozen_bus::connect(&url).await.unwrap();
    Some(Harness {
        url,
        bus,
        features: Features::ALL,
        _keep: Some(database),
    })
}

crate::conformance_suite!(harness);

/// Another process's bus shares the file but not our in-process wake-up: the
/// commit watcher must wake its idle consumer long before the idle timeout (5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_consumer_is_woken_by_a_publish_from_another_connection() {
    let harness = harness().await.unwrap();
    let elsewhere: Arc<dyn Bus> = harness.another_bus().await;
    let topic = unique("topic");
    let sub = Subscription::new(&unique("sub"), &topic);
    harness.bus.declare(&sub).await.unwrap();
    // Idle first, so the wake-up is what brings the event in.
    let waiting = {
        let bus = harness.bus.clone();
        let sub = sub.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            bus.wait(&sub, Duration::from_secs(5)).await;
            started.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let event = Event::new(
        "test",
        &Probe {
            n: 1,
            key: None,
            poison: false,
        },
    )
    .unwrap();
    elsewhere.publish(&topic, &[event]).await.unwrap();
    let waited = waiting.await.unwrap();
    assert!(
        waited < Duration::from_secs(2),
        "woken by the commit, not the idle timeout: {waited:?}"
    );
    assert_eq!(harness.bus.receive(&sub, 10).await.unwrap().len(), 1);
}
