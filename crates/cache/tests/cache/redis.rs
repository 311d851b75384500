//! The suite on `redis://`: the Redis named by `TEST_REDIS_URL`, each test
//! under a prefix of its own; and a Redis of the test's own, restarted.

use std::time::Duration;

use dozen_cache::{Cache, Delivery};
use dozen_testing::ChildServer;

use crate::suite::{next_message, unique, Harness};

async fn harness() -> Option<Harness> {
    let url = dozen_testing::required_server("TEST_REDIS_URL", "Redis cache")?;
    Some(Harness {
        url: format!("{url}?prefix={}", unique("test")),
        _keep: None,
    })
}

crate::cache_suite!(harness);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_survives_a_server_restart_and_reports_the_loss_then_the_gap() {
    let Some(mut server) = ChildServer::redis() else {
        return;
    };
    let url = format!("redis://127.0.0.1:{}", server.port());
    let cache = Cache::connect(&url.parse().unwrap()).unwrap();
    let channel = unique("room");
    let mut subscription = cache.subscribe(&channel).await.unwrap();
    cache.publish(&channel, "before").await.unwrap();
    assert_eq!(
        next_message(&mut subscription, Duration::from_secs(5))
            .await
            .payload,
        "before"
    );

    server.stop();
    assert!(
        cache.ping().await.is_err(),
        "a stopped server answers no ping"
    );
    let lost = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("the loss is told while the server is down");
    assert_eq!(lost, Some(Delivery::Lost));
    server.start();
    let gap = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("the subscription comes back");
    assert_eq!(gap, Some(Delivery::Gap));
    // Published until it is seen: the command connection reconnects too.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let _ = cache.publish(&channel, "after").await;
        if let Ok(Some(Delivery::Message(message))) =
            tokio::time::timeout(Duration::from_millis(200), subscription.next()).await
        {
            assert_eq!(message.payload, "after");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing after the restart"
        );
    }
    cache.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_that_is_down_at_start_is_attached_and_answers_once_it_is_up() {
    let Some(mut server) = ChildServer::redis() else {
        return;
    };
    server.stop();
    let url = format!("redis://127.0.0.1:{}", server.port());
    // Attaching never waits for the server (factor IX: start fast).
    let cache = Cache::connect(&url.parse().unwrap()).unwrap();
    assert!(cache.ping().await.is_err());
    assert!(
        cache.subscribe("x").await.is_err(),
        "no first subscription without a server"
    );
    server.start();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cache.ping().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no answer once it is up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cache
        .put("set", "member", "value", Duration::from_secs(5))
        .await
        .unwrap();
}
