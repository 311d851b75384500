//! The suite on `postgres://`, plus a real network outage.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use dozen_bus::{Outbox, Subscription};
use dozen_runtime::shutdown::Shutdown;
use dozen_testing::{Backend, TcpProxy, TestDatabase};

use crate::suite::{
    commit_probes, effect_once, effects, effects_database, eventually, unique, Features, Harness,
    Running,
};

async fn harness() -> Option<Harness> {
    let backend = Backend::postgres()?;
    let database = TestDatabase::create(&backend).await;
    let url = database.url.parse().unwrap();
    let bus = dozen_bus::connect(&url).await.unwrap();
    Some(Harness {
        url,
        bus,
        features: Features::ALL,
        _keep: Some(database),
    })
}

crate::conformance_suite!(harness);

/// A real outage: the bus's connections to PostgreSQL go through a proxy that
/// the test cuts. The relay keeps the events meanwhile, the consumer keeps
/// trying, readiness reports the bus down, and after the cut everything arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_relay_and_a_consumer_ride_out_a_cut_connection_to_postgres() {
    let Some(harness) = harness().await else {
        return;
    };
    let (proxy, proxied_url) = TcpProxy::in_front_of(harness.url.expose()).await;
    let through_proxy = dozen_bus::connect(&proxied_url.parse().unwrap())
        .await
        .unwrap();
    let topic = unique("topic");
    let sub = Subscription::new(&unique("sub"), &topic)
        .backoff(Duration::from_millis(50), Duration::from_millis(200));
    harness.bus.declare(&sub).await.unwrap();

    let (_producer_db, producer) = effects_database().await;
    let (_consumer_db, consumer) = effects_database().await;
    let outbox = Outbox::new();
    let stop = Shutdown::new();
    let relay = tokio::spawn(
        outbox
            .relay(producer.clone(), through_proxy.clone())
            .run(stop.clone()),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let mut running = Running::new();
    running.start(
        through_proxy.clone(),
        sub.clone(),
        effect_once(consumer.clone(), sub.name.clone(), calls),
    );

    commit_probes(&producer, &outbox, &topic, 0..10).await;
    eventually(Duration::from_secs(10), "10 effects", || async {
        effects(&consumer).await.1 == 10
    })
    .await;

    proxy.cut();
    commit_probes(&producer, &outbox, &topic, 10..20).await;
    eventually(
        Duration::from_secs(10),
        "readiness to see the bus down",
        || async { through_proxy.ping().await.is_err() },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        effects(&consumer).await.1,
        10,
        "nothing crosses a cut connection"
    );

    proxy.restore();
    eventually(
        Duration::from_secs(30),
        "all 20 effects after the outage",
        || async { effects(&consumer).await.1 == 20 },
    )
    .await;
    assert!(
        through_proxy.ping().await.is_ok(),
        "readiness sees the bus back"
    );
    assert_eq!(effects(&consumer).await, (20, 20), "none twice in effect");
    running.stop().await;
    stop.trigger();
    relay.await.unwrap();
}
