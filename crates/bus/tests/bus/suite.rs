//! The conformance suite: every promise of the delivery contract, as an async
//! test function that takes any backend. `conformance_suite!` stamps them out
//! as `#[tokio::test]`s for one backend. Every test uses its own topic and
//! subscriptions, so they run in parallel on one bus.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dozen_bus::{
    inbox, outbox, typed, Bus, BusUrl, Consumer, Event, EventType, HandlerError, Outbox,
    Subscription,
};
use dozen_runtime::shutdown::Shutdown;
use dozen_testing::TestDatabase;
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;

use crate::flaky::FlakyBus;

/// What a backend can do; a test of something it cannot do is skipped, saying why.
#[derive(Debug, Clone, Copy)]
pub struct Features {
    /// Ordered subscriptions handle one key's events one at a time, in order.
    pub per_key_order: bool,
    /// The broker drops a republished event with an id it has seen lately.
    pub drops_republished_duplicates: bool,
    /// The in-flight count is current, not a statistic refreshed every few seconds.
    pub live_in_flight_count: bool,
    /// Competing consumers never both get one event while neither failed.
    pub exclusive_delivery: bool,
    /// The visibility timeout of the tests' subscriptions: long enough for
    /// this backend's round trips while the suite loads the machine.
    pub test_visibility: Duration,
}

impl Features {
    pub const ALL: Features = Features {
        per_key_order: true,
        drops_republished_duplicates: false,
        live_in_flight_count: true,
        exclusive_delivery: true,
        test_visibility: Duration::from_secs(5),
    };
}

/// One backend, ready for a test.
pub struct Harness {
    pub url: BusUrl,
    pub bus: Arc<dyn Bus>,
    pub features: Features,
    /// Whatever must live as long as the test (a temporary folder, a database).
    pub _keep: Option<TestDatabase>,
}

impl Harness {
    /// A second, independent connection to the same bus, as another process would have.
    pub async fn another_bus(&self) -> Arc<dyn Bus> {
        dozen_bus::connect(&self.url).await.expect("connect again")
    }

    /// The same broker under `namespace=`, or why this backend has none.
    pub async fn in_namespace(&self, namespace: &str) -> Result<Arc<dyn Bus>, String> {
        let url = self.url.expose();
        let separator = if url.contains('?') { '&' } else { '?' };
        let url: BusUrl = format!("{url}{separator}namespace={namespace}").parse()?;
        Ok(dozen_bus::connect(&url)
            .await
            .expect("connect in a namespace"))
    }
}

/// Stamps the whole suite out as tests for one backend: `$harness` is an
/// `async fn() -> Option<Harness>` (None: the backend is not available here).
#[macro_export]
macro_rules! conformance_suite {
    ($harness:path) => {
        $crate::conformance_suite!(@tests $harness;
            publish_and_subscribe_delivers_every_event_with_its_data,
            every_subscription_of_a_topic_gets_every_event,
            competing_consumers_share_a_queue_and_each_event_is_handled_once,
            a_failed_event_is_redelivered_after_a_backoff,
            an_unacknowledged_event_is_redelivered_after_the_visibility_timeout,
            a_transient_failure_is_retried_until_it_passes_and_never_dead_lettered,
            an_event_whose_consumer_dies_each_time_is_dead_lettered_and_redrive_brings_it_back,
            a_poison_event_goes_to_the_dead_letter_queue_and_does_not_hold_back_others,
            a_consumer_holds_no_more_events_than_its_in_flight_limit,
            events_with_one_key_are_handled_in_publish_order,
            events_committed_while_the_bus_is_down_arrive_once_it_is_back_none_twice_in_effect,
            events_enqueued_together_arrive_each_once_and_a_rolled_back_batch_never,
            an_event_in_hand_at_shutdown_finishes_and_is_not_redelivered,
            ten_thousand_events_through_four_consumers_lose_nothing_and_repeat_no_effect,
            operations_list_show_redrive_and_purge_dead_letters,
            declaring_is_idempotent_and_a_name_cannot_change_topic,
            a_consumer_that_cannot_take_events_makes_its_process_unready_until_it_can,
            two_systems_in_their_own_namespaces_on_one_broker_share_nothing,
            republishing_reaches_the_subscriptions_that_lost_events_and_repeats_no_effect,
        );
    };
    (@tests $harness:path; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                if let Some(harness) = $harness().await {
                    $crate::suite::$test(&harness).await
                }
            }
        )*
    };
}

/// The test event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe {
    pub n: u32,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub poison: bool,
}

impl EventType for Probe {
    const TYPE: &'static str = "test.probe";
    const VERSION: u32 = 1;
    fn ordering_key(&self) -> Option<String> {
        self.key.clone()
    }
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub fn probe(n: u32) -> Event {
    Event::new(
        "suite",
        &Probe {
            n,
            key: None,
            poison: false,
        },
    )
    .unwrap()
}

fn probes(range: std::ops::Range<u32>) -> Vec<Event> {
    range.map(probe).collect()
}

/// A subscription with test-sized timings.
fn quick(h: &Harness, name: &str, topic: &str) -> Subscription {
    Subscription::new(name, topic)
        .backoff(Duration::from_millis(50), Duration::from_millis(200))
        .visibility_timeout(h.features.test_visibility)
}

/// What the handlers saw, in the order they saw it.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(usize, Event, Instant)>>>);

impl Seen {
    fn push(&self, consumer: usize, event: &Event) {
        self.0
            .lock()
            .unwrap()
            .push((consumer, event.clone(), Instant::now()));
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    fn numbers(&self) -> Vec<u32> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e, _)| n_of(e))
            .collect()
    }
    fn entries(&self) -> Vec<(usize, Event, Instant)> {
        self.0.lock().unwrap().clone()
    }
}

fn n_of(event: &Event) -> u32 {
    event.decode::<Probe>().unwrap().n
}

/// Consumers running in the test; stopped (and drained) on `stop` or drop.
pub struct Running {
    shutdown: Shutdown,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn new() -> Self {
        Self {
            shutdown: Shutdown::new(),
            tasks: Vec::new(),
        }
    }

    pub fn start(
        &mut self,
        bus: Arc<dyn Bus>,
        sub: Subscription,
        handler: impl dozen_bus::Handler,
    ) {
        let consumer = Consumer::new(bus, sub, handler);
        self.tasks
            .push(tokio::spawn(consumer.run(self.shutdown.clone())));
    }

    /// Starts a consumer that records what it sees and succeeds.
    fn recording(&mut self, bus: Arc<dyn Bus>, sub: Subscription, seen: &Seen, consumer: usize) {
        let seen = seen.clone();
        self.start(bus, sub, move |event: Event| {
            seen.push(consumer, &event);
            async { Ok(()) }
        });
    }

    pub async fn stop(mut self) {
        self.shutdown.trigger();
        for task in self.tasks.drain(..) {
            task.await.unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Waits for `done` to hold, polling; fails the test after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn stats(bus: &Arc<dyn Bus>, name: &str) -> dozen_bus::SubscriptionStats {
    bus.subscriptions()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("subscription {name} is listed"))
}

/// Waits until the subscription shows `(depth, in_flight, dead_letters)`;
/// brokers refresh some of these counts every few seconds.
async fn counts_become(bus: &Arc<dyn Bus>, name: &str, expected: (u64, u64, u64)) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = stats(bus, name).await;
        let counts = (s.depth, s.in_flight, s.dead_letters);
        if counts == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: (depth, in flight, dead letters) stayed {counts:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn publish_and_subscribe_delivers_every_event_with_its_data(h: &Harness) {
    let topic = unique("topic");
    let sub = quick(h, &unique("sub"), &topic);
    h.bus.declare(&sub).await.unwrap();
    let seen = Seen::default();
    let mut running = Running::new();
    running.recording(h.bus.clone(), sub.clone(), &seen, 0);
    let sent = probes(0..3);
    h.bus.publish(&topic, &sent).await.unwrap();
    eventually(Duration::from_secs(30), "3 events", || async {
        seen.len() == 3
    })
    .await;
    let got: Vec<Event> = seen.entries().into_iter().map(|(_, e, _)| e).collect();
    let mut got_sorted = got.clone();
    got_sorted.sort_by_key(n_of);
    assert_eq!(
        got_sorted, sent,
        "events arrive whole: id, type, data, trace context"
    );
    running.stop().await;
    counts_become(&h.bus, &sub.name, (0, 0, 0)).await;
}

pub async fn every_subscription_of_a_topic_gets_every_event(h: &Harness) {
    let topic = unique("topic");
    let (first, second) = (
        quick(h, &unique("a"), &topic),
        quick(h, &unique("b"), &topic),
    );
    h.bus.declare(&first).await.unwrap();
    h.bus.declare(&second).await.unwrap();
    let (seen_first, seen_second) = (Seen::default(), Seen::default());
    let mut running = Running::new();
    running.recording(h.bus.clone(), first, &seen_first, 0);
    running.recording(h.another_bus().await, second, &seen_second, 1);
    h.bus.publish(&topic, &probes(0..5)).await.unwrap();
    eventually(
        Duration::from_secs(30),
        "5 events on each subscription",
        || async { seen_first.len() == 5 && seen_second.len() == 5 },
    )
    .await;
    for seen in [&seen_first, &seen_second] {
        let mut numbers = seen.numbers();
        numbers.sort();
        assert_eq!(numbers, [0, 1, 2, 3, 4]);
    }
}

pub async fn competing_consumers_share_a_queue_and_each_event_is_handled_once(h: &Harness) {
    let topic = unique("topic");
    let sub = quick(h, &unique("sub"), &topic).max_in_flight(4);
    h.bus.declare(&sub).await.unwrap();
    let seen = Seen::default();
    let mut running = Running::new();
    for consumer in 0..4 {
        let seen = seen.clone();
        running.start(h.another_bus().await, sub.clone(), move |event: Event| {
            seen.push(consumer, &event);
            async {
                tokio::time::sleep(Duration::from_millis(2)).await;
                Ok(())
            }
        });
    }
    h.bus.publish(&topic, &probes(0..200)).await.unwrap();
    eventually(Duration::from_secs(30), "200 events", || async {
        seen.len() >= 200
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut numbers = seen.numbers();
    numbers.sort();
    if !h.features.exclusive_delivery {
        // At least once: a rare second copy is allowed (the inbox absorbs it), a loss is not.
        let copies = numbers.len() - 200;
        numbers.dedup();
        assert!(copies <= 10, "{copies} second copies of 200 events");
    }
    assert_eq!(
        numbers,
        (0..200).collect::<Vec<_>>(),
        "each event handled exactly once"
    );
    let workers: HashSet<usize> = seen.entries().iter().map(|(c, _, _)| *c).collect();
    assert!(
        workers.len() >= 2,
        "the work was shared, not taken by one: {workers:?}"
    );
}

pub async fn a_failed_event_is_redelivered_after_a_backoff(h: &Harness) {
    let topic = unique("topic");
    let sub = Subscription::new(&unique("sub"), &topic)
        .backoff(Duration::from_millis(400), Duration::from_secs(1));
    h.bus.declare(&sub).await.unwrap();
    let seen = Seen::default();
    let mut running = Running::new();
    {
        let seen = seen.clone();
        running.start(h.bus.clone(), sub.clone(), move |event: Event| {
            seen.push(0, &event);
            let first = seen.len() == 1;
            async move {
                if first {
                    Err(HandlerError::transient("not yet"))
                } else {
                    Ok(())
                }
            }
        });
    }
    h.bus.publish(&topic, &[probe(7)]).await.unwrap();
    eventually(Duration::from_secs(30), "the redelivery", || async {
        seen.len() == 2
    })
    .await;
    let entries = seen.entries();
    assert_eq!(entries[0].1.id, entries[1].1.id, "the same event came back");
    let gap = entries[1].2 - entries[0].2;
    assert!(
        gap >= Duration::from_millis(200),
        "after the backoff (jitter floor 200 ms), not at once: {gap:?}"
    );
    running.stop().await;
    // Acknowledged on the second try.
    counts_become(&h.bus, &sub.name, (0, 0, 0)).await;
}

pub async fn an_unacknowledged_event_is_redelivered_after_the_visibility_timeout(h: &Harness) {
    let topic = unique("topic");
    // Whole seconds: SQS counts no finer.
    let sub = Subscription::new(&unique("sub"), &topic).visibility_timeout(Duration::from_secs(1));
    h.bus.declare(&sub).await.unwrap();
    h.bus.publish(&topic, &[probe(1)]).await.unwrap();
    let crashed = h.bus.receive(&sub, 10).await.unwrap();
    assert_eq!(crashed.len(), 1);
    assert_eq!(crashed[0].attempt, 1);
    // The consumer "dies": it never settles the delivery.
    let other = h.another_bus().await;
    assert!(
        other.receive(&sub, 10).await.unwrap().is_empty(),
        "invisible while held"
    );
    if h.features.live_in_flight_count {
        assert_eq!(stats(&h.bus, &sub.name).await.in_flight, 1);
    }
    tokio::time::sleep(Duration::from_millis(1400)).await;
    let again = other.receive(&sub, 10).await.unwrap();
    assert_eq!(again.len(), 1, "redelivered after the visibility timeout");
    assert_eq!(again[0].event.id, crashed[0].event.id);
    assert_eq!(again[0].attempt, 2, "the crash counted as an attempt");
    other.ack(&sub, &again[0]).await.unwrap();
    // The dead consumer's late ack must not remove anything it no longer holds.
    h.bus.ack(&sub, &crashed[0]).await.unwrap();
    assert_eq!(stats(&h.bus, &sub.name).await.depth, 0);
}

pub async fn a_transient_failure_is_retried_until_it_passes_and_never_dead_lettered(h: &Harness) {
    let topic = unique("topic");
    let sub = quick(h, &unique("sub"), &topic).max_attempts(3);
    h.bus.declare(&sub).await.unwrap();
    let failures_left = Arc::new(AtomicUsize::new(8));
    let (calls, others) = (Arc::new(AtomicUsize::new(0)), Seen::default());
    let mut running = Running::new();
    {
        let (failures_left, calls, others) = (failures_left.clone(), calls.clone(), others.clone());
        running.start(h.bus.clone(), sub.clone(), move |event: Event| {
            let probe: Probe = event.decode().unwrap();
            let failing = probe.n == 0 && {
                calls.fetch_add(1, Ordering::SeqCst);
                failures_left
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            };
            if probe.n != 0 {
                others.push(0, &event);
            }
            async move {
                if failing {
                    Err(HandlerError::transient("database is locked"))
                } else {
                    Ok(())
                }
            }
        });
    }
    h.bus.publish(&topic, &probes(0..1)).await.unwrap();
    // Others go by while the first one waits for its fault to pass.
    h.bus.publish(&topic, &probes(1..6)).await.unwrap();
    eventually(Duration::from_secs(30), "the others handled", || async {
        others.len() == 5
    })
    .await;
    eventually(
        Duration::from_secs(60),
        "the failing one handled",
        || async { calls.load(Ordering::SeqCst) == 9 },
    )
    .await;
    running.stop().await;
    counts_become(&h.bus, &sub.name, (0, 0, 0)).await;
    assert!(
        h.bus.dead_letters(&sub.name, 10).await.unwrap().is_empty(),
        "tried nine times (more than max_attempts), never dead-lettered"
    );
}

pub async fn an_event_whose_consumer_dies_each_time_is_dead_lettered_and_redrive_brings_it_back(
    h: &Harness,
) {
    let topic = unique("topic");
    let sub = quick(h, &unique("sub"), &topic).max_attempts(3);
    h.bus.declare(&sub).await.unwrap();
    let event = probe(3);
    h.bus
        .publish(&topic, std::slice::from_ref(&event))
        .await
        .unwrap();
    // Three consumers in a row die while handling it, as a process killed
    // by the event would: it is never settled.
    for _ in 0..3 {
        let started = Arc::new(tokio::sync::Notify::new());
        let consumer = Consumer::new(h.another_bus().await, sub.clone(), {
            let started = started.clone();
            move |_event: Event| {
                started.notify_one();
                std::future::pending::<Result<(), HandlerError>>()
            }
        });
        let task = tokio::spawn(consumer.run(Shutdown::new()));
        tokio::time::timeout(Duration::from_secs(60), started.notified())
            .await
            .expect("delivered again after the visibility timeout");
        task.abort();
        let _ = task.await;
    }
    let handled = Arc::new(AtomicUsize::new(0));
    let mut running = Running::new();
    {
        let handled = handled.clone();
        running.start(h.bus.clone(), sub.clone(), move |_event: Event| {
            handled.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        });
    }
    eventually(Duration::from_secs(60), "a dead letter", || async {
        stats(&h.bus, &sub.name).await.dead_letters == 1
    })
    .await;
    assert_eq!(
        handled.load(Ordering::SeqCst),
        0,
        "dead-lettered without a fourth try"
    );
    let letters = h.bus.dead_letters(&sub.name, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event.id, event.id);
    // The consumer says why; a broker that dead-letters by itself (SQS's
    // redrive policy, at the same count) says nothing.
    if let Some(error) = letters[0].last_error.as_deref() {
        assert!(error.contains("without being settled"), "{letters:?}");
        assert!(letters[0].dead_at.is_some());
    }

    assert_eq!(h.bus.redrive(&sub.name, None).await.unwrap(), 1);
    eventually(
        Duration::from_secs(30),
        "the redriven event handled",
        || async { handled.load(Ordering::SeqCst) == 1 },
    )
    .await;
    running.stop().await;
    counts_become(&h.bus, &sub.name, (0, 0, 0)).await;
}

pub async fn a_poison_event_goes_to_the_dead_letter_queue_and_does_not_hold_back_others(
    h: &Harness,
) {
    let topic = unique("topic");
    let sub = quick(h, &unique("sub"), &topic).max_in_flight(1);
    h.bus.declare(&sub).await.unwrap();
    let seen = Seen::default();
    let mut running = Running::new();
    {
        let seen = seen.clone();
        running.start(
            h.bus.clone(),
            sub.clone(),
            typed(move |probe: Probe, event: Event| {
                let seen = seen.clone();
                async move {
                    if probe.poison {
                        return Err(HandlerError::permanent("cannot be handled, ever"));
                    }
                    seen.push(0, &event);
                    Ok(())
                }
            }),
        );
    }
    let mut events = vec![Event::new(
        "suite",
        &Probe {
            n: 0,
            key: None,
            poison: true,
        },
    )
    .unwrap()];
    // Data that does not even decode is poison too.
    let mut garbled = probe(0);
    garbled.data = serde_json::json!({ "n": "not a number" });
    events.push(garbled);
    events.extend(probes(1..21));
    h.bus.publish(&topic, &events).await.unwrap();
    eventually(
        Duration::from_secs(30),
        "20 good events and 2 dead letters",
        || async { seen.len() == 20 && stats(&h.bus, &sub.name).await.dead_letters == 2 },
    )
    .await;
    let letters = h.bus.dead_letters(&sub.name, 10).await.unwrap();
    assert!(
        letters.iter().all(|l| l.attempts == 1),
        "poison is not retried: {letters:?}"
    );
}

pub async fn a_consumer_holds_no_more_events_than_its_in_flight_limit(h: &Harness) {
    let topic = unique("topic");
    let sub = quick(h, &unique("sub"), &topic).max_in_flight(3);
    h.bus.declare(&sub).await.unwrap();
    let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let seen = Seen::default();
    let mut running = Running::new();
    {
        let (now, peak, seen) = (now.clone(), peak.clone(), seen.clone());
        running.start(h.bus.clone(), sub.clone(), move |event: Event| {
            let (now, peak, seen) = (now.clone(), peak.clone(), seen.clone());
            async move {
                let current = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(current, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                seen.push(0, &event);
                Ok(())
            }
        });
    }
    h.bus.publish(&topic, &probes(0..30)).await.unwrap();
    eventually(Duration::from_secs(30), "30 events", || async {
        seen.len() == 30
    })
    .await;
    assert_eq!(
        peak.load(Ordering::SeqCst),
        3,
        "used the limit and never exceeded it"
    );
}

pub async fn events_with_one_key_are_handled_in_publish_order(h: &Harness) {
    if !h.features.per_key_order {
        eprintln!("skipped: this backend does not offer order per key");
        return;
    }
    let topic = unique("topic");
    let sub = quick(h, &unique("sub"), &topic).ordered().max_in_flight(4);
    h.bus.declare(&sub).await.unwrap();
    let seen = Seen::default();
    let failed_once = Arc::new(AtomicBool::new(false));
    let mut running = Running::new();
    for consumer in 0..3 {
        let (seen, failed_once) = (seen.clone(), failed_once.clone());
        running.start(
            h.another_bus().await,
            sub.clone(),
            typed(move |probe: Probe, event: Event| {
                let (seen, failed_once) = (seen.clone(), failed_once.clone());
                async move {
                    tokio::time::sleep(Duration::from_millis(u64::from(probe.n % 4))).await;
                    // One event fails once: those behind it on its key must wait.
                    if probe.n == 10 && !failed_once.swap(true, Ordering::SeqCst) {
                        return Err(HandlerError::transient("once"));
                    }
                    seen.push(consumer, &event);
                    Ok(())
                }
            }),
        );
    }
    let keys = ["a", "b", "c"];
    let events: Vec<Event> = (0..60)
        .map(|n| {
            let key = Some(keys[n as usize % 3].to_owned());
            Event::new(
                "suite",
                &Probe {
                    n,
                    key,
                    poison: false,
                },
            )
            .unwrap()
        })
        .collect();
    for chunk in events.chunks(7) {
        h.bus.publish(&topic, chunk).await.unwrap();
    }
    eventually(Duration::from_secs(20), "60 events", || async {
        seen.len() == 60
    })
    .await;
    let mut by_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (_, event, _) in seen.entries() {
        let probe = event.decode::<Probe>().unwrap();
        by_key.entry(probe.key.unwrap()).or_default().push(probe.n);
    }
    for (key, numbers) in by_key {
        let mut sorted = numbers.clone();
        sorted.sort();
        assert_eq!(numbers, sorted, "key {key} handled in publish order");
    }
}

/// The consumer's own database, with the inbox and one effects table.
pub async fn effects_database() -> (TestDatabase, AnyPool) {
    let database = TestDatabase::create(&dozen_testing::Backend::Sqlite).await;
    let settings = dozen_runtime::database::DatabaseSettings {
        url: database.url.parse().unwrap(),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(10),
    };
    let pool = dozen_runtime::database::connect_lazy(&settings).unwrap();
    outbox::migrate(&pool).await.unwrap();
    sqlx::query("CREATE TABLE effects (event_id TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    (database, pool)
}

/// A handler whose effect (a row in `effects`) happens once per event, via the inbox.
pub fn effect_once(
    pool: AnyPool,
    subscription: String,
    calls: Arc<AtomicUsize>,
) -> impl dozen_bus::Handler {
    move |event: Event| {
        let (pool, subscription, calls) = (pool.clone(), subscription.clone(), calls.clone());
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            if let Some(mut tx) = inbox::claim(&pool, &subscription, &event.id).await? {
                sqlx::query("INSERT INTO effects (event_id) VALUES ($1)")
                    .bind(&event.id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
            Ok(())
        }
    }
}

/// Commits probes `range` through the outbox, one transaction each, to `topic`.
pub async fn commit_probes(
    producer: &AnyPool,
    outbox: &Outbox,
    topic: &str,
    range: std::ops::Range<u32>,
) {
    for n in range {
        let mut tx = producer.begin().await.unwrap();
        let mut event = probe(n);
        event.event_type = topic.to_owned(); // the outbox publishes to the topic named by the type
        outbox.enqueue(&mut tx, &event).await.unwrap();
        tx.commit().await.unwrap();
        outbox.committed();
    }
}

pub async fn effects(pool: &AnyPool) -> (i64, i64) {
    sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM effects")
        .fetch_one(pool)
        .await
        .unwrap()
}

pub async fn events_enqueued_together_arrive_each_once_and_a_rolled_back_batch_never(h: &Harness) {
    let topic = unique("topic");
    let sub = quick(h, &unique("sub"), &topic);
    h.bus.declare(&sub).await.unwrap();
    let (_producer_db, producer) = effects_database().await;
    let (_consumer_db, consumer) = effects_database().await;
    let outbox = Outbox::new();
    let relay_stop = Shutdown::new();
    let relay = tokio::spawn(
        outbox
            .relay(producer.clone(), h.bus.clone())
            .run(relay_stop.clone()),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let mut running = Running::new();
    running.start(
        h.bus.clone(),
        sub.clone(),
        effect_once(consumer.clone(), sub.name.clone(), calls.clone()),
    );
    let batch = |range: std::ops::Range<u32>| -> Vec<Event> {
        range
            .map(|n| {
                let mut event = probe(n);
                event.event_type = topic.clone();
                event
            })
            .collect()
    };
    // Batches of 1, 7 and 1,200 (past one statement's worth), and one rolled back.
    for (range, commit) in [
        (0..1, true),
        (1..8, true),
        (8..1208, true),
        (5000..5050, false),
    ] {
        let mut tx = producer.begin().await.unwrap();
        outbox.enqueue_all(&mut tx, &batch(range)).await.unwrap();
        if commit {
            tx.commit().await.unwrap();
        } else {
            tx.rollback().await.unwrap();
        }
        outbox.committed();
    }
    eventually(
        Duration::from_secs(60),
        "1,208 events to take effect",
        || async { effects(&consumer).await.1 == 1208 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        effects(&consumer).await,
        (1208, 1208),
        "each committed event took effect once, the rolled-back ones never"
    );
    running.stop().await;
    relay_stop.trigger();
    relay.await.unwrap();
}

pub async fn events_committed_while_the_bus_is_down_arrive_once_it_is_back_none_twice_in_effect(
    h: &Harness,
) {
    let topic = unique("topic");
    let sub = quick(h, &unique("sub"), &topic);
    h.bus.declare(&sub).await.unwrap();
    let (_producer_db, producer) = effects_database().await;
    let (_consumer_db, consumer) = effects_database().await;

    let flaky = Arc::new(FlakyBus::new(h.another_bus().await));
    flaky.down.store(true, Ordering::SeqCst);
    let outbox = Outbox::new();
    let relay_stop = Shutdown::new();
    let relay = tokio::spawn(
        outbox
            .relay(producer.clone(), flaky.clone())
            .run(relay_stop.clone()),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let mut running = Running::new();
    running.start(
        h.bus.clone(),
        sub.clone(),
        effect_once(consumer.clone(), sub.name.clone(), calls.clone()),
    );

    commit_probes(&producer, &outbox, &topic, 0..20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "nothing gets through while the bus is down"
    );

    // Back up, but the first publish's confirmation is lost: the relay sends it again.
    flaky.lose_next_confirm.store(true, Ordering::SeqCst);
    flaky.down.store(false, Ordering::SeqCst);
    let outbox_rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM bus_outbox WHERE published_at IS NULL")
            .fetch_one(&producer)
            .await
            .unwrap()
    };
    // The relay sent the first batch twice; unless the broker dropped the copies,
    // some events really arrive twice and the inbox must absorb them.
    let twice = !h.features.drops_republished_duplicates;
    eventually(
        Duration::from_secs(30),
        "the outbox to empty and every event to arrive",
        || async {
            outbox_rows().await == 0
                && effects(&consumer).await.1 == 20
                && (!twice || calls.load(Ordering::SeqCst) > 20)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        effects(&consumer).await,
        (20, 20),
        "each event took effect exactly once"
    );
    if !twice {
        assert_eq!(
            calls.load(Ordering::SeqCst),
            20,
            "the broker dropped the republished copies"
        );
    }
    relay_stop.trigger();
    relay.await.unwrap();
}

pub async fn an_event_in_hand_at_shutdown_finishes_and_is_not_redelivered(h: &Harness) {
    let topic = unique("topic");
    let sub = quick(h, &unique("sub"), &topic).visibility_timeout(Duration::from_millis(800));
    h.bus.declare(&sub).await.unwrap();
    let (started, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut running = Running::new();
    {
        let (started, finished) = (started.clone(), finished.clone());
        running.start(h.bus.clone(), sub.clone(), move |_event: Event| {
            let (started, finished) = (started.clone(), finished.clone());
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(500)).await;
                finished.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        });
    }
    h.bus.publish(&topic, &[probe(1)]).await.unwrap();
    eventually(Duration::from_secs(30), "the handler to start", || async {
        started.load(Ordering::SeqCst) == 1
    })
    .await;
    running.stop().await;
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "the event in hand finished before the consumer stopped"
    );
    counts_become(&h.bus, &sub.name, (0, 0, 0)).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        h.bus.receive(&sub, 10).await.unwrap().is_empty(),
        "not redelivered after the visibility timeout"
    );
}

/// A new topic and subscription, and four consumers (each on its own bus
/// connection) whose effects happen once, through the inbox, in a database of their own.
async fn four_effect_consumers(
    h: &Harness,
) -> (String, Subscription, TestDatabase, AnyPool, Running) {
    let topic = unique("topic");
    let sub = quick(h, &unique("sub"), &topic).max_in_flight(32);
    h.bus.declare(&sub).await.unwrap();
    let (database, pool) = effects_database().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut running = Running::new();
    for _ in 0..4 {
        running.start(
            h.another_bus().await,
            sub.clone(),
            effect_once(pool.clone(), sub.name.clone(), calls.clone()),
        );
    }
    (topic, sub, database, pool, running)
}

pub async fn ten_thousand_events_through_four_consumers_lose_nothing_and_repeat_no_effect(
    h: &Harness,
) {
    let (topic, sub, _db, pool, running) = four_effect_consumers(h).await;
    let publisher = {
        let bus = h.another_bus().await;
        let topic = topic.clone();
        tokio::spawn(async move {
            for start in (0..10_000).step_by(500) {
                bus.publish(&topic, &probes(start..start + 500))
                    .await
                    .unwrap();
            }
        })
    };
    publisher.await.unwrap();
    eventually(Duration::from_secs(180), "10,000 effects", || async {
        effects(&pool).await.1 == 10_000
    })
    .await;
    // The queue empties with the consumers still running: an event whose
    // acknowledgement was lost comes back and is handled again, with no
    // second effect (at-least-once delivery, once in effect).
    counts_become(&h.bus, &sub.name, (0, 0, 0)).await;
    running.stop().await;
    assert_eq!(
        effects(&pool).await,
        (10_000, 10_000),
        "none lost, none twice in effect"
    );
}

pub async fn operations_list_show_redrive_and_purge_dead_letters(h: &Harness) {
    let topic = unique("topic");
    let sub = quick(h, &unique("sub"), &topic);
    h.bus.declare(&sub).await.unwrap();
    h.bus.publish(&topic, &probes(0..4)).await.unwrap();
    // Dead-letter all four by hand, as a consumer would.
    let deliveries = h.bus.receive(&sub, 10).await.unwrap();
    assert_eq!(deliveries.len(), 4);
    let in_flight = stats(&h.bus, &sub.name).await;
    assert_eq!(in_flight.depth, 0);
    if h.features.live_in_flight_count {
        assert_eq!(in_flight.in_flight, 4);
    }
    for delivery in &deliveries {
        h.bus
            .dead_letter(&sub, delivery, &format!("bad {}", n_of(&delivery.event)))
            .await
            .unwrap();
    }
    counts_become(&h.bus, &sub.name, (0, 0, 4)).await;
    assert_eq!(stats(&h.bus, &sub.name).await.topic, topic);
    let letters = h.bus.dead_letters(&sub.name, 10).await.unwrap();
    assert_eq!(
        letters.iter().map(|l| n_of(&l.event)).collect::<Vec<_>>(),
        [0, 1, 2, 3],
        "oldest first"
    );
    assert_eq!(letters[2].last_error.as_deref(), Some("bad 2"));
    assert_eq!(
        h.bus.dead_letters(&sub.name, 2).await.unwrap().len(),
        2,
        "the limit holds"
    );

    let ids = |ns: &[usize]| {
        ns.iter()
            .map(|&n| letters[n].event.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(h.bus.redrive(&sub.name, Some(&ids(&[1]))).await.unwrap(), 1);
    assert_eq!(
        h.bus.purge(&sub.name, Some(&ids(&[0, 3]))).await.unwrap(),
        2
    );
    // Redriven, the event waits in the queue, or is already pushed to a
    // consumer of the subscription (this bus consumes it since it received),
    // which only a live in-flight count shows.
    let after = stats(&h.bus, &sub.name).await;
    assert_eq!(after.dead_letters, 1);
    if h.features.live_in_flight_count {
        assert_eq!(after.depth + after.in_flight, 1);
    }
    let back = h.bus.receive(&sub, 10).await.unwrap();
    assert_eq!(back.iter().map(|d| n_of(&d.event)).collect::<Vec<_>>(), [1]);
    assert_eq!(
        back[0].attempt, 1,
        "a redriven event starts its attempts afresh"
    );
    h.bus.ack(&sub, &back[0]).await.unwrap();
    assert_eq!(h.bus.purge(&sub.name, None).await.unwrap(), 1);
    assert_eq!(stats(&h.bus, &sub.name).await.dead_letters, 0);
    assert_eq!(
        h.bus.redrive(&sub.name, None).await.unwrap(),
        0,
        "nothing left to redrive"
    );
}

pub async fn declaring_is_idempotent_and_a_name_cannot_change_topic(h: &Harness) {
    let topic = unique("topic");
    let sub = quick(h, &unique("sub"), &topic);
    h.bus.declare(&sub).await.unwrap();
    h.bus.declare(&sub).await.unwrap();
    h.another_bus().await.declare(&sub).await.unwrap();
    let listed = h.bus.subscriptions().await.unwrap();
    assert_eq!(listed.iter().filter(|s| s.name == sub.name).count(), 1);
    let moved = Subscription::new(&sub.name, &unique("elsewhere"));
    let error = h.bus.declare(&moved).await.unwrap_err();
    assert!(
        matches!(error, dozen_bus::BusError::TopicMismatch { .. }),
        "{error}"
    );
    // A topic nobody subscribed to swallows events, as a broker's would.
    h.bus
        .publish(&unique("nobody"), &probes(0..2))
        .await
        .unwrap();
}

/// Stops the broker, then starts it again.
pub type Restart =
    Box<dyn Fn() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// 10,000 events from three producers (each with its outbox and relay) while
/// the broker is stopped and started once: every event takes effect, none twice.
/// Runs where the test can restart the broker (a server of its own).
pub async fn the_broker_restarting_mid_stream_loses_nothing_and_repeats_no_effect(
    h: &Harness,
    restart: Restart,
) {
    const EVENTS: u32 = 10_000;
    let (topic, _sub, _consumer_db, consumer, running) = four_effect_consumers(h).await;
    let relays = Shutdown::new();
    let mut producers = Vec::new();
    for first in 0..3 {
        let (database, pool) = effects_database().await;
        let outbox = Outbox::new();
        tokio::spawn(
            outbox
                .relay(pool.clone(), h.another_bus().await)
                .run(relays.clone()),
        );
        let topic = topic.clone();
        producers.push(tokio::spawn(async move {
            for n in (first..EVENTS).step_by(3) {
                commit_probes(&pool, &outbox, &topic, n..n + 1).await;
            }
            database
        }));
    }
    eventually(
        Duration::from_secs(60),
        "a third of the effects",
        || async { effects(&consumer).await.1 >= i64::from(EVENTS / 3) },
    )
    .await;
    restart().await;
    let mut keep = Vec::new();
    for producer in producers {
        keep.push(producer.await.unwrap());
    }
    eventually(
        Duration::from_secs(180),
        "10,000 effects after the restart",
        || async { effects(&consumer).await.1 == i64::from(EVENTS) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        effects(&consumer).await,
        (i64::from(EVENTS), i64::from(EVENTS)),
        "none lost, none twice in effect"
    );
    running.stop().await;
    relays.trigger();
}

/// The restart test on a broker of the test's own at `url`: `stop` stops it,
/// and a second later it starts again.
pub async fn broker_restart_on(
    server: dozen_testing::ChildServer,
    url: String,
    features: Features,
    stop: fn(&mut dozen_testing::ChildServer),
) {
    let url: BusUrl = url.parse().unwrap();
    let bus = dozen_bus::connect(&url).await.unwrap();
    let harness = Harness {
        url,
        bus,
        features,
        _keep: None,
    };
    let server = Arc::new(Mutex::new(server));
    let restart: Restart = Box::new(move || {
        let server = server.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut server = server.lock().unwrap();
                stop(&mut server);
                std::thread::sleep(Duration::from_secs(1));
                server.start();
            })
            .await
            .unwrap();
        })
    });
    let run =
        the_broker_restarting_mid_stream_loses_nothing_and_repeats_no_effect(&harness, restart);
    tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the restart test finished within 5 minutes");
}

/// A worker whose consumer cannot take events (its subscription is gone and
/// cannot be made again) answers `/readyz` with 503 and says which, though
/// the bus itself answers; once the subscription is back it is ready, and
/// the event waiting for it is handled.
pub async fn a_consumer_that_cannot_take_events_makes_its_process_unready_until_it_can(
    h: &Harness,
) {
    use dozen_runtime::config::{Env, FromEnv};
    use dozen_runtime::http::{HttpSettings, Readiness};

    let topic = unique("topic");
    let sub = quick(h, &unique("sub"), &topic);
    h.bus.declare(&sub).await.unwrap();
    let flaky = Arc::new(FlakyBus::new(h.another_bus().await));
    flaky.subscriptions_lost.store(true, Ordering::SeqCst);
    let (_db, pool) = effects_database().await;
    let shutdown = Shutdown::new();
    let backing = dozen_bus::Backing {
        db: pool.clone(),
        bus: flaky.clone(),
        metrics: dozen_runtime::metrics::Metrics::new(),
        readiness: Readiness::new(shutdown.clone()).with_ping(
            "bus",
            flaky.clone(),
            |bus| async move { bus.ping().await },
        ),
        outbox_retention: dozen_bus::outbox::DEFAULT_RETENTION,
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let work = dozen_bus::Work {
        consumers: vec![Consumer::new(
            flaky.clone(),
            sub.clone(),
            effect_once(pool.clone(), sub.name.clone(), calls.clone()),
        )],
        ..Default::default()
    };
    let http = HttpSettings::from_env(&Env::from_pairs([("PORT", "0")])).unwrap();
    let info = dozen_runtime::ServiceInfo::new("worker", "0", "test");
    let process = dozen_bus::Process::bind(info, &http, backing, work, shutdown.clone())
        .await
        .unwrap();
    let readyz = format!("http://127.0.0.1:{}/readyz", process.port());
    let running = tokio::spawn(process.run_until_stopped());
    let readiness = || async {
        let answer = reqwest::get(&readyz).await.unwrap();
        let status = answer.status().as_u16();
        (status, answer.json::<serde_json::Value>().await.unwrap())
    };

    eventually(Duration::from_secs(10), "readiness to fail", || async {
        readiness().await.0 == 503
    })
    .await;
    let (_, body) = readiness().await;
    assert_eq!(body["checks"]["bus"], "ok", "the bus answers: {body}");
    let consumers = body["checks"]["consumers"].as_str().unwrap();
    assert!(
        consumers.starts_with("failing") && consumers.contains(&sub.name),
        "{body}"
    );

    h.bus.publish(&topic, &[probe(1)]).await.unwrap();
    flaky.subscriptions_lost.store(false, Ordering::SeqCst);
    eventually(
        Duration::from_secs(30),
        "ready again, the event handled",
        || async { readiness().await.0 == 200 && effects(&pool).await.1 == 1 },
    )
    .await;
    shutdown.trigger();
    running.await.unwrap().unwrap();
}

/// What makes a broker forget: it restarts on an empty store, its vhost is
/// made anew, a subscription's queue is deleted. It gets the subscription's name.
pub type Forget =
    Box<dyn FnOnce(String) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The broker forgets while a consumer runs and a producer's outbox relay
/// publishes: the consumer declares its subscription again, its health says
/// it cannot take events meanwhile, and every event committed before or after
/// the loss takes effect once. (What the broker held when it forgot is gone
/// with it; the test waits for the first events to be handled before.)
///
/// `gap`: the backend loses what is published between the loss and the
/// consumer's declaring again (SNS sends to a deleted SQS queue into the
/// void), so the later events are committed once the consumer is back.
pub async fn the_broker_forgetting_loses_no_event_committed_after(
    h: &Harness,
    forget: Forget,
    gap: bool,
) {
    let topic = unique("topic");
    let sub = quick(h, &unique("sub"), &topic);
    h.bus.declare(&sub).await.unwrap();
    let (_producer_db, producer) = effects_database().await;
    let (_consumer_db, consumer_db) = effects_database().await;
    let outbox = Outbox::new();
    let relay_stop = Shutdown::new();
    let relay = tokio::spawn(
        outbox
            .relay(producer.clone(), h.another_bus().await)
            .run(relay_stop.clone()),
    );
    let calls = Arc::new(AtomicUsize::new(0));
    let consumer = Consumer::new(
        h.another_bus().await,
        sub.clone(),
        effect_once(consumer_db.clone(), sub.name.clone(), calls),
    );
    let health = consumer.health();
    let consumer_stop = Shutdown::new();
    let consuming = tokio::spawn(consumer.run(consumer_stop.clone()));

    commit_probes(&producer, &outbox, &topic, 0..10).await;
    eventually(Duration::from_secs(30), "the first ten effects", || async {
        effects(&consumer_db).await.1 == 10
    })
    .await;

    let unhealthy = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (health, unhealthy) = (health.clone(), unhealthy.clone());
        tokio::spawn(async move {
            loop {
                if health.problem().is_some() {
                    unhealthy.store(true, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    forget(sub.name.clone()).await;
    if gap {
        eventually(Duration::from_secs(60), "the consumer back", || async {
            unhealthy.load(Ordering::SeqCst) && health.problem().is_none()
        })
        .await;
    }
    commit_probes(&producer, &outbox, &topic, 10..30).await;
    eventually(
        Duration::from_secs(90),
        "every event committed after the loss to take effect",
        || async { effects(&consumer_db).await.1 == 30 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        effects(&consumer_db).await,
        (30, 30),
        "none twice in effect"
    );
    watcher.abort();
    assert!(
        unhealthy.load(Ordering::SeqCst),
        "the consumer said it could not take events meanwhile"
    );
    assert_eq!(health.problem(), None, "and says it can now");
    consumer_stop.trigger();
    consuming.await.unwrap();
    relay_stop.trigger();
    relay.await.unwrap();
}

/// A staging and a production system (or two developers) on one broker:
/// the same topic and subscription names, and neither sees the other's
/// events, subscriptions or dead letters, nor does a bus without a namespace.
pub async fn two_systems_in_their_own_namespaces_on_one_broker_share_nothing(h: &Harness) {
    let (first, second) = (unique("ns").replace('-', ""), unique("ns").replace('-', ""));
    let staging = match h.in_namespace(&first).await {
        Ok(bus) => bus,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let production = h.in_namespace(&second).await.unwrap();
    let topic = unique("topic");
    let sub = quick(h, &unique("sub"), &topic);
    let only_production = quick(h, &unique("only"), &topic);
    staging.declare(&sub).await.unwrap();
    production.declare(&sub).await.unwrap();
    production.declare(&only_production).await.unwrap();

    let (seen_staging, seen_production) = (Seen::default(), Seen::default());
    let mut running = Running::new();
    running.recording(staging.clone(), sub.clone(), &seen_staging, 0);
    {
        let seen = seen_production.clone();
        running.start(
            production.clone(),
            sub.clone(),
            typed(move |probe: Probe, event: Event| {
                let seen = seen.clone();
                async move {
                    if probe.poison {
                        return Err(HandlerError::permanent("production's poison"));
                    }
                    seen.push(1, &event);
                    Ok(())
                }
            }),
        );
    }
    staging.publish(&topic, &probes(0..3)).await.unwrap();
    let poison = Event::new(
        "suite",
        &Probe {
            n: 99,
            key: None,
            poison: true,
        },
    )
    .unwrap();
    production
        .publish(&topic, &[probe(10), probe(11), poison])
        .await
        .unwrap();
    eventually(Duration::from_secs(30), "each system's events", || async {
        seen_staging.len() == 3
            && seen_production.len() == 2
            && stats(&production, &sub.name).await.dead_letters == 1
    })
    .await;
    // Give a stray delivery across namespaces the time to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut staging_numbers = seen_staging.numbers();
    staging_numbers.sort();
    let mut production_numbers = seen_production.numbers();
    production_numbers.sort();
    assert_eq!(staging_numbers, [0, 1, 2], "staging got only its own");
    assert_eq!(production_numbers, [10, 11], "production got only its own");

    assert!(
        staging
            .dead_letters(&sub.name, 10)
            .await
            .unwrap()
            .is_empty(),
        "production's dead letter is not staging's"
    );
    assert_eq!(
        production.dead_letters(&sub.name, 10).await.unwrap().len(),
        1
    );
    let listed = |bus: Arc<dyn Bus>| async move {
        bus.subscriptions()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect::<HashSet<_>>()
    };
    assert!(!listed(staging.clone())
        .await
        .contains(&only_production.name));
    assert!(!listed(h.bus.clone()).await.contains(&only_production.name));
    assert!(!listed(h.bus.clone()).await.contains(&sub.name));
    assert!(listed(production.clone())
        .await
        .contains(&only_production.name));
    running.stop().await;
}

/// A subscription that lost events (here: one declared after they went out,
/// as a subscription the broker forgot and its consumer made again) gets
/// them from the producer's outbox log; the subscription that had them
/// absorbs the copies in its inbox. Selections by time, id and topic; a dry
/// run sends nothing; a retention of zero keeps nothing to send.
pub async fn republishing_reaches_the_subscriptions_that_lost_events_and_repeats_no_effect(
    h: &Harness,
) {
    use dozen_bus::republish::{republish, Selection};

    let topic = unique("topic");
    let had_them = quick(h, &unique("had"), &topic);
    h.bus.declare(&had_them).await.unwrap();
    let (_producer_db, producer) = effects_database().await;
    let (_had_db, had_db) = effects_database().await;
    let (_lost_db, lost_db) = effects_database().await;
    let outbox = Outbox::new();
    let relay_stop = Shutdown::new();
    let relay = tokio::spawn(
        outbox
            .relay(producer.clone(), h.another_bus().await)
            .run(relay_stop.clone()),
    );
    let had_calls = Arc::new(AtomicUsize::new(0));
    let mut running = Running::new();
    running.start(
        h.bus.clone(),
        had_them.clone(),
        effect_once(had_db.clone(), had_them.name.clone(), had_calls.clone()),
    );
    let before = dozen_runtime::clock::now_millis();
    commit_probes(&producer, &outbox, &topic, 0..5).await;
    eventually(Duration::from_secs(30), "5 effects", || async {
        effects(&had_db).await == (5, 5)
    })
    .await;
    let published: Vec<String> = sqlx::query_scalar(
        "SELECT body FROM bus_outbox WHERE published_at IS NOT NULL ORDER BY id",
    )
    .fetch_all(&producer)
    .await
    .unwrap();
    assert_eq!(published.len(), 5, "the outbox keeps what it published");
    let ids: Vec<String> = published
        .iter()
        .map(|body| serde_json::from_str::<Event>(body).unwrap().id)
        .collect();

    // The subscription that lost them.
    let lost = quick(h, &unique("lost"), &topic);
    h.bus.declare(&lost).await.unwrap();
    let lost_calls = Arc::new(AtomicUsize::new(0));
    running.start(
        h.bus.clone(),
        lost.clone(),
        effect_once(lost_db.clone(), lost.name.clone(), lost_calls.clone()),
    );

    let dry = Selection {
        since: Some(before),
        dry_run: true,
        ..Selection::default()
    };
    let counted = republish(&producer, h.bus.as_ref(), &dry, |_| {})
        .await
        .unwrap();
    assert_eq!(counted.total(), 5);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        lost_calls.load(Ordering::SeqCst),
        0,
        "a dry run sends nothing"
    );

    // One by id, with one id the log never had.
    let one = Selection {
        events: vec![ids[2].clone(), "no-such-event".into()],
        ..Selection::default()
    };
    let sent = republish(&producer, h.bus.as_ref(), &one, |_| {})
        .await
        .unwrap();
    assert_eq!(
        (sent.total(), sent.not_found.clone()),
        (1, vec!["no-such-event".to_owned()])
    );
    eventually(Duration::from_secs(30), "the one event", || async {
        effects(&lost_db).await == (1, 1)
    })
    .await;

    // Then the whole range, on the topic, with another topic excluded.
    let other_topic = Selection {
        since: Some(before),
        topics: vec!["some.other_topic".into()],
        ..Selection::default()
    };
    let none = republish(&producer, h.bus.as_ref(), &other_topic, |_| {})
        .await
        .unwrap();
    assert_eq!(none.total(), 0);
    let all = Selection {
        since: Some(before),
        topics: vec![topic.clone()],
        ..Selection::default()
    };
    let mut heard = 0;
    let sent = republish(&producer, h.bus.as_ref(), &all, |n| heard += n)
        .await
        .unwrap();
    assert_eq!((sent.total(), heard), (5, 5));
    eventually(
        Duration::from_secs(30),
        "every lost event, once in effect",
        || async { effects(&lost_db).await == (5, 5) && had_calls.load(Ordering::SeqCst) >= 11 },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(effects(&had_db).await, (5, 5), "copies repeat no effect");
    assert_eq!(effects(&lost_db).await, (5, 5));
    let mut got: Vec<String> = sqlx::query_scalar("SELECT event_id FROM effects")
        .fetch_all(&lost_db)
        .await
        .unwrap();
    got.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(got, expected, "the copies keep the events' own ids");

    running.stop().await;
    relay_stop.trigger();
    relay.await.unwrap();

    // Published longer ago than the retention: the relay deletes them, oldest first.
    sqlx::query(
        "UPDATE bus_outbox SET published_at = 1
         WHERE id IN (SELECT id FROM bus_outbox ORDER BY id LIMIT 3)",
    )
    .execute(&producer)
    .await
    .unwrap();
    let stop = Shutdown::new();
    let relay = tokio::spawn(
        outbox
            .relay(producer.clone(), h.another_bus().await)
            .retention(Duration::from_secs(3600))
            .run(stop.clone()),
    );
    eventually(Duration::from_secs(30), "the old rows to go", || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM bus_outbox")
            .fetch_one(&producer)
            .await
            .unwrap()
            == 2
    })
    .await;
    stop.trigger();
    relay.await.unwrap();

    // A relay that keeps nothing leaves nothing to republish.
    let (_bare_db, bare) = effects_database().await;
    let stop = Shutdown::new();
    let relay = tokio::spawn(
        outbox
            .relay(bare.clone(), h.another_bus().await)
            .retention(Duration::ZERO)
            .run(stop.clone()),
    );
    commit_probes(&bare, &outbox, &topic, 5..7).await;
    eventually(Duration::from_secs(30), "the outbox to empty", || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM bus_outbox")
            .fetch_one(&bare)
            .await
            .unwrap()
            == 0
    })
    .await;
    stop.trigger();
    relay.await.unwrap();
    let nothing = republish(&bare, h.bus.as_ref(), &all, |_| {})
        .await
        .unwrap();
    assert_eq!((nothing.total(), nothing.kept_since), (0, None));
}
