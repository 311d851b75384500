//! The worker end to end: `message.sent` in, `card.created` out, on a real bus.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cards::fetch::{FetchLimits, Fetcher};
use cards::guard::AddressPolicy;
use cards::Settings;
use dozen_bus::{
    Bus, BusSettings, Delivery, Event, EventType, ProcessSettings, Subscription, TraceParent,
};
use dozen_events::{CardCreated, MessageEdited, MessageSent};
use dozen_runtime::config::{Env, FromEnv};
use dozen_runtime::database::{self, DatabaseSettings};
use dozen_runtime::http::HttpSettings;
use dozen_runtime::logging::LogSettings;
use dozen_runtime::shutdown::Shutdown;
use dozen_testing::{Backend, TestDatabase};

use crate::site;

struct TestCards {
    bus: Arc<dyn Bus>,
    shutdown: Shutdown,
    _databases: (TestDatabase, TestDatabase),
}

impl Drop for TestCards {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

async fn spawn_cards() -> TestCards {
    let database = TestDatabase::create(&Backend::Sqlite).await;
    let bus_database = TestDatabase::create(&Backend::Sqlite).await;
    let database_settings = DatabaseSettings {
        url: database.url.parse().unwrap(),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(10),
    };
    cards::migrate(&database::connect_lazy(&database_settings).unwrap())
        .await
        .unwrap();
    let env = Env::from_pairs([("PORT", "0")]);
    let settings = Settings {
        process: ProcessSettings {
            log: LogSettings::from_env(&env).unwrap(),
            http: HttpSettings::from_env(&env).unwrap(),
            database: database_settings,
            bus: BusSettings::new(bus_database.url.parse().unwrap()),
        },
        fetcher: Fetcher::new(
            AddressPolicy::allowing(vec!["127.0.0.1".parse().unwrap()]),
            FetchLimits {
                total_timeout: Duration::from_secs(2),
                ..FetchLimits::default()
            },
        ),
    };
    let shutdown = Shutdown::new();
    let worker = cards::worker(settings, shutdown.clone()).await.unwrap();
    tokio::spawn(worker.run_until_stopped());
    let bus = dozen_bus::connect(&bus_database.url.parse().unwrap())
        .await
        .unwrap();
    for sub in cards::previews::subscriptions() {
        bus.declare(&sub).await.unwrap();
    }
    TestCards {
        bus,
        shutdown,
        _databases: (database, bus_database),
    }
}

/// A message as chat sends it: ids are UUIDs (`n` picks the message).
fn message(n: u8, urls: Vec<String>) -> MessageSent {
    MessageSent {
        message_id: format!("0193a5f3-0000-7000-8000-0000000000{n:02}"),
        room_id: "0193a5f3-0000-7000-8000-0000000000aa".into(),
        author_id: "0193a5f2-7c1e-7b3a-9f1e-2d4c5b6a7e8f".into(),
        author_username: "alice".into(),
        text: urls.join(" "),
        mentions: vec![],
        urls,
        sent_at: "2026-11-26T10:00:00Z".into(),
    }
}

/// Takes what arrives on `sub` within `within`.
async fn collect(bus: &dyn Bus, sub: &Subscription, within: Duration) -> Vec<Delivery> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while Instant::now() < deadline {
        for delivery in bus.receive(sub, 10).await.unwrap() {
            bus.ack(sub, &delivery).await.unwrap();
            got.push(delivery);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_with_links_gets_one_card_per_link_that_has_a_title_in_the_same_trace() {
    let site = site::start().await;
    let cards = spawn_cards().await;
    let sub = Subscription::new("test.cards", CardCreated::TYPE);
    cards.bus.declare(&sub).await.unwrap();
    let trace = TraceParent::new();
    let sent = message(
        1,
        vec![site.url("/og"), site.url("/untitled"), site.url("/missing")],
    );
    let event = Event::new("chat", &sent).unwrap().with_trace(&trace);
    cards
        .bus
        .publish(MessageSent::TYPE, &[event])
        .await
        .unwrap();

    let got = collect(&*cards.bus, &sub, Duration::from_secs(5)).await;
    assert_eq!(
        got.len(),
        1,
        "one card: the other pages have no title or are missing"
    );
    let card_event = &got[0].event;
    // The producer's side of the contract.
    dozen_events::contract::validate(
        &card_event.event_type,
        CardCreated::VERSION,
        &card_event.data,
    )
    .unwrap();
    let card: CardCreated = card_event.decode().unwrap();
    assert_eq!(card.message_id, sent.message_id);
    assert_eq!(card.url, site.url("/og"));
    assert_eq!(card.title, "A post worth reading");
    assert_eq!(card.image, Some(site.url("/cover.png")));
    assert_eq!(card_event.trace_id(), Some(trace.trace_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_link_yields_no_card_and_no_retry_storm() {
    let site = site::start().await;
    let cards = spawn_cards().await;
    let sub = Subscription::new("test.cards", CardCreated::TYPE);
    cards.bus.declare(&sub).await.unwrap();
    let failing = message(2, vec![site.url("/missing"), site.url("/slow")]);
    let event = Event::new("chat", &failing).unwrap();
    // Delivered three times, and the same links in a second message.
    for _ in 0..3 {
        cards
            .bus
            .publish(MessageSent::TYPE, std::slice::from_ref(&event))
            .await
            .unwrap();
    }
    cards
        .bus
        .publish(
            MessageSent::TYPE,
            &[Event::new("chat", &message(3, failing.urls.clone())).unwrap()],
        )
        .await
        .unwrap();
    let got = collect(&*cards.bus, &sub, Duration::from_secs(6)).await;
    assert!(got.is_empty(), "no card: {got:?}");
    assert_eq!(
        site.visits(),
        2,
        "each failing link fetched once, then remembered"
    );
    let stats = cards.bus.subscriptions().await.unwrap();
    let previews = stats
        .iter()
        .find(|s| s.name == cards::previews::SUBSCRIPTION)
        .unwrap();
    assert_eq!(
        (previews.depth, previews.in_flight, previews.dead_letters),
        (0, 0, 0),
        "handled and acknowledged, not retried or dead-lettered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_previews_only_the_links_it_adds_and_a_repeat_makes_no_second_card() {
    let site = site::start().await;
    let cards = spawn_cards().await;
    let sub = Subscription::new("test.cards", CardCreated::TYPE);
    cards.bus.declare(&sub).await.unwrap();
    let sent = message(4, vec![site.url("/og")]);
    cards
        .bus
        .publish(MessageSent::TYPE, &[Event::new("chat", &sent).unwrap()])
        .await
        .unwrap();
    let first = collect(&*cards.bus, &sub, Duration::from_secs(3)).await;
    assert_eq!(first.len(), 1);

    // The edit keeps the first link and adds one (a redirect to the same page).
    let edited = MessageEdited {
        message_id: sent.message_id.clone(),
        room_id: sent.room_id.clone(),
        author_id: sent.author_id.clone(),
        author_username: sent.author_username.clone(),
        text: format!("{} {}", site.url("/og"), site.url("/moved")),
        mentions: vec![],
        urls: vec![site.url("/og"), site.url("/moved")],
        sent_at: sent.sent_at.clone(),
        edited_at: "2026-11-26T10:01:00Z".into(),
    };
    let event = Event::new("chat", &edited).unwrap();
    for _ in 0..2 {
        cards
            .bus
            .publish(MessageEdited::TYPE, std::slice::from_ref(&event))
            .await
            .unwrap();
    }
    let added = collect(&*cards.bus, &sub, Duration::from_secs(3)).await;
    let urls: Vec<String> = added
        .iter()
        .map(|d| d.event.decode::<CardCreated>().unwrap().url)
        .collect();
    assert_eq!(urls, [site.url("/moved")], "only the new link, once");
}
