//! The real notifier binary killed with SIGKILL in the middle of a burst.

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

use dozen_bus::{Event, EventType};
use dozen_events::UserSignedUp;
use dozen_runtime::database::{self, DatabaseSettings};
use dozen_testing::{Backend, ChildServer, TestDatabase};
use notifier::handlers::WELCOME;
use tokio::process::{Child, Command};

use crate::helpers::{maildir, mails_in, smtp_url, wait_for_mails};

/// `notifier work` as its own process, on files the test owns.
fn start(database: &str, bus: &str, smtp: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_notifier"))
        .arg("work")
        .env_clear()
        .env("PORT", "0")
        .env("DATABASE_URL", database)
        .env("BUS_URL", bus)
        .env("SMTP_URL", smtp)
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start notifier")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notifier_killed_mid_burst_and_restarted_sends_every_welcome_mail_and_repeats_only_those_it_was_sending(
) {
    const SIGNUPS: usize = 200;
    let Some(smtp) = ChildServer::smtp() else {
        return;
    };
    let database = TestDatabase::create(&Backend::Sqlite).await;
    let bus_database = TestDatabase::create(&Backend::Sqlite).await;
    let migrated = Command::new(env!("CARGO_BIN_EXE_notifier"))
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", &database.url)
        .env("BUS_URL", &bus_database.url)
        .status()
        .await
        .unwrap();
    assert!(migrated.success());
    let bus = dozen_bus::connect(&bus_database.url.parse().unwrap())
        .await
        .unwrap();
    // `migrate` declared the subscriptions: what is published before any
    // worker runs is kept for them.
    let events: Vec<Event> = (0..SIGNUPS)
        .map(|n| {
            Event::new(
                "accounts",
                &UserSignedUp {
                    user_id: format!("u-{n}"),
                    username: format!("user{n}"),
                    email: format!("user{n}@example.com"),
                    signed_up_at: "2026-11-26T10:00:00Z".into(),
                },
            )
            .unwrap()
        })
        .collect();
    bus.publish(UserSignedUp::TYPE, &events).await.unwrap();
    let mut worker = start(&database.url, &bus_database.url, &smtp_url(&smtp));

    // Kill it outright once some of the burst is out.
    wait_for_mails(&maildir(&smtp), SIGNUPS / 4, Duration::from_secs(60)).await;
    worker.start_kill().unwrap();
    worker.wait().await.unwrap();
    let at_kill = mails_in(&maildir(&smtp)).len();
    assert!(at_kill < SIGNUPS, "killed mid-burst ({at_kill} sent)");
    // The mails it was sending when it died: the server may have taken them
    // before notifier could mark them sent. Only these may go twice.
    let db = database::connect_lazy(&DatabaseSettings {
        url: database.url.parse().unwrap(),
        max_connections: 1,
        acquire_timeout: Duration::from_secs(10),
    })
    .unwrap();
    let being_sent: HashSet<String> = notifier::store::mails_being_sent(&db)
        .await
        .unwrap()
        .into_iter()
        .collect();
    db.close().await;

    let _restarted = start(&database.url, &bus_database.url, &smtp_url(&smtp));
    // Unsettled deliveries come back after the visibility timeout (30 s by default).
    wait_for_mails(&maildir(&smtp), SIGNUPS, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for mail in mails_in(&maildir(&smtp)) {
        *by_id.entry(mail.header("Message-ID").unwrap()).or_default() += 1;
    }
    assert_eq!(by_id.len(), SIGNUPS, "every signup got its welcome mail");
    let repeated: HashSet<String> = by_id
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(
        repeated.is_subset(&being_sent),
        "only a mail being sent at the kill may repeat: repeated {repeated:?}, being sent {being_sent:?}"
    );
    let welcome = notifier::handlers::subscriptions()
        .into_iter()
        .find(|sub| sub.name == WELCOME)
        .unwrap();
    assert!(being_sent.len() <= welcome.max_in_flight);
}
