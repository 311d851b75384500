//! What every cache backend promises, as async test bodies that each
//! backend's module runs through [`cache_suite!`].

use std::time::{Duration, Instant};

use dozen_cache::{Cache, CacheUrl, Delivery, Entry, Message, Subscription};

/// A backend under test: each call of `instance` is another process's handle.
pub struct Harness {
    /// The cache's URL, with a prefix of this test's own.
    pub url: String,
    pub _keep: Option<tempfile::TempDir>,
}

impl Harness {
    /// A new handle on the same cache, as another instance would have.
    pub fn instance(&self) -> Cache {
        Cache::connect(&self.url.parse::<CacheUrl>().unwrap()).unwrap()
    }

    /// The same server under another prefix: another system.
    pub fn other_system(&self) -> Cache {
        let other = if self.url.contains("?prefix=") {
            self.url.replace("?prefix=", "?prefix=other-")
        } else {
            format!("{}?prefix=other", self.url)
        };
        Cache::connect(&other.parse::<CacheUrl>().unwrap()).unwrap()
    }
}

/// A name no other test uses.
pub fn unique(what: &str) -> String {
    format!("{what}-{}", uuid_like())
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn entry(member: &str, value: &str) -> Entry {
    Entry {
        member: member.to_owned(),
        value: value.to_owned(),
    }
}

/// The next message, failing the test after `within`.
pub async fn next_message(subscription: &mut Subscription, within: Duration) -> Message {
    loop {
        match tokio::time::timeout(within, subscription.next()).await {
            Ok(Some(Delivery::Message(message))) => return message,
            Ok(Some(Delivery::Gap | Delivery::Lost)) => continue,
            Ok(None) => panic!("the subscription ended"),
            Err(_) => panic!("no message within {within:?}"),
        }
    }
}

/// Waits until `set` holds exactly `expected`, or fails after `within`.
async fn wait_for_members(
    cache: &Cache,
    set: &str,
    expected: &[Entry],
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let members = cache.members(set).await.unwrap();
        if members == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{set} holds {members:?}, not {expected:?}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn a_member_is_listed_with_its_value_until_its_ttl_runs_out(harness: Harness) {
    let cache = harness.instance();
    let set = unique("presence");
    cache
        .put(&set, "alice", "Alice", Duration::from_millis(600))
        .await
        .unwrap();
    cache
        .put(&set, "bob", "Bob", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        cache.members(&set).await.unwrap(),
        vec![entry("alice", "Alice"), entry("bob", "Bob")]
    );
    let gone_after =
        wait_for_members(&cache, &set, &[entry("bob", "Bob")], Duration::from_secs(3)).await;
    assert!(
        gone_after >= Duration::from_millis(400),
        "alice left early: {gone_after:?}"
    );
}

pub async fn putting_a_member_again_refreshes_its_value_and_its_ttl(harness: Harness) {
    let cache = harness.instance();
    let set = unique("typing");
    cache
        .put(&set, "alice", "first", Duration::from_millis(500))
        .await
        .unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        cache
            .put(&set, "alice", "again", Duration::from_millis(500))
            .await
            .unwrap();
    }
    // A second after the first put, kept by the refreshes.
    assert_eq!(
        cache.members(&set).await.unwrap(),
        vec![entry("alice", "again")]
    );
    wait_for_members(&cache, &set, &[], Duration::from_secs(3)).await;
}

pub async fn a_removed_member_is_gone_at_once_and_removing_twice_changes_nothing(harness: Harness) {
    let cache = harness.instance();
    let set = unique("presence");
    cache
        .put(&set, "alice", "a", Duration::from_secs(30))
        .await
        .unwrap();
    cache
        .put(&set, "bob", "b", Duration::from_secs(30))
        .await
        .unwrap();
    cache.remove(&set, "alice").await.unwrap();
    cache.remove(&set, "alice").await.unwrap();
    cache.remove(&unique("never-made"), "x").await.unwrap();
    assert_eq!(cache.members(&set).await.unwrap(), vec![entry("bob", "b")]);
}

pub async fn sets_are_separate_and_two_systems_on_one_server_share_nothing(harness: Harness) {
    let cache = harness.instance();
    let other = harness.other_system();
    let (room_a, room_b) = (unique("room-a"), unique("room-b"));
    cache
        .put(&room_a, "alice", "a", Duration::from_secs(30))
        .await
        .unwrap();
    cache
        .put(&room_b, "bob", "b", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        cache.members(&room_a).await.unwrap(),
        vec![entry("alice", "a")]
    );
    assert_eq!(
        cache.members(&room_b).await.unwrap(),
        vec![entry("bob", "b")]
    );
    assert_eq!(other.members(&room_a).await.unwrap(), vec![]);

    let channel = unique("room");
    let mut theirs = other.subscribe(&channel).await.unwrap();
    let mut ours = cache.subscribe(&channel).await.unwrap();
    cache.publish(&channel, "ours").await.unwrap();
    other.publish(&channel, "theirs").await.unwrap();
    assert_eq!(
        next_message(&mut ours, Duration::from_secs(5))
            .await
            .payload,
        "ours"
    );
    assert_eq!(
        next_message(&mut theirs, Duration::from_secs(5))
            .await
            .payload,
        "theirs"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(10), ours.next())
            .await
            .is_err(),
        "the other system's message reached this one"
    );
}

pub async fn a_message_reaches_every_instance_subscribed_to_its_channel_and_no_other(
    harness: Harness,
) {
    let (first, second, publisher) = (harness.instance(), harness.instance(), harness.instance());
    let rooms = unique("rooms");
    let mut on_first = first.subscribe(&format!("{rooms}:")).await.unwrap();
    let mut on_second = second.subscribe(&format!("{rooms}:")).await.unwrap();
    let mut elsewhere = second.subscribe(&unique("elsewhere")).await.unwrap();
    for n in 0..20 {
        publisher
            .publish(&format!("{rooms}:r{}", n % 2), &format!("event {n}"))
            .await
            .unwrap();
    }
    for subscription in [&mut on_first, &mut on_second] {
        for n in 0..20 {
            let message = next_message(subscription, Duration::from_secs(5)).await;
            assert_eq!(message.channel, format!("{rooms}:r{}", n % 2));
            assert_eq!(message.payload, format!("event {n}"), "in publishing order");
        }
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), elsewhere.next())
            .await
            .is_err(),
        "a subscriber of another channel got a message"
    );
}

pub async fn an_instance_that_dies_drops_out_within_the_ttl_and_the_living_stay(harness: Harness) {
    const TTL: Duration = Duration::from_millis(900);
    let set = unique("presence");
    // Each instance refreshes its own member every third of the TTL, as chat does.
    let heartbeat = |cache: Cache, member: &'static str| {
        let set = set.clone();
        tokio::spawn(async move {
            loop {
                cache.put(&set, member, member, TTL).await.unwrap();
                tokio::time::sleep(TTL / 3).await;
            }
        })
    };
    let alive = heartbeat(harness.instance(), "alice@instance-1");
    let dying = heartbeat(harness.instance(), "bob@instance-2");
    let observer = harness.instance();
    wait_for_members(
        &observer,
        &set,
        &[
            entry("alice@instance-1", "alice@instance-1"),
            entry("bob@instance-2", "bob@instance-2"),
        ],
        Duration::from_secs(3),
    )
    .await;
    // Killed: it never removes its member.
    dying.abort();
    let gone_after = wait_for_members(
        &observer,
        &set,
        &[entry("alice@instance-1", "alice@instance-1")],
        Duration::from_secs(3),
    )
    .await;
    assert!(
        gone_after <= TTL + Duration::from_millis(300),
        "dropped out after {gone_after:?}"
    );
    tokio::time::sleep(TTL * 2).await;
    assert_eq!(
        observer.members(&set).await.unwrap(),
        vec![entry("alice@instance-1", "alice@instance-1")],
        "the living instance stays"
    );
    alive.abort();
}

pub async fn the_cache_answers_pings_and_a_subscription_ends_only_with_its_handle(
    harness: Harness,
) {
    let cache = harness.instance();
    cache.ping().await.unwrap();
    let channel = unique("room");
    let mut subscription = cache.subscribe(&channel).await.unwrap();
    drop(cache);
    let publisher = harness.instance();
    publisher.publish(&channel, "still here").await.unwrap();
    assert_eq!(
        next_message(&mut subscription, Duration::from_secs(5))
            .await
            .payload,
        "still here"
    );
}

/// Runs every test of the suite on the backend `harness` makes.
#[macro_export]
macro_rules! cache_suite {
    ($harness:path) => {
        $crate::cache_suite!(@tests $harness;
            a_member_is_listed_with_its_value_until_its_ttl_runs_out,
            putting_a_member_again_refreshes_its_value_and_its_ttl,
            a_removed_member_is_gone_at_once_and_removing_twice_changes_nothing,
            sets_are_separate_and_two_systems_on_one_server_share_nothing,
            a_message_reaches_every_instance_subscribed_to_its_channel_and_no_other,
            an_instance_that_dies_drops_out_within_the_ttl_and_the_living_stay,
            the_cache_answers_pings_and_a_subscription_ends_only_with_its_handle,
        );
    };
    (@tests $harness:path; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let Some(harness) = $harness().await else { return };
                $crate::suite::$test(harness).await;
            }
        )*
    };
}
