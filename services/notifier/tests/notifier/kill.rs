//! The real notifier binary killed with SIGKILL in the middle of a burst.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use dozen_bus::{Event, EventType};
use dozen_events::UserSignedUp;
use dozen_testing::{Backend, ChildServer, TestDatabase};
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
async fn a_notifier_killed_mid_burst_and_restarted_sends_every_welcome_mail_with_at_most_one_repeat(
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
        .status()
        .await
        .unwrap();
    assert!(migrated.success());
    let bus = dozen_bus::connect(&bus_database.url.parse().unwrap())
        .await
        .unwrap();
    for sub in notifier::handlers::subscriptions() {
        bus.declare(&sub).await.unwrap();
    }
    let mut worker = start(&database.url, &bus_database.url, &smtp_url(&smtp));
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

    // Kill it outright once some of the burst is out.
    wait_for_mails(&maildir(&smtp), SIGNUPS / 4, Duration::from_secs(60)).await;
    worker.start_kill().unwrap();
    worker.wait().await.unwrap();
    let at_kill = mails_in(&maildir(&smtp)).len();
    assert!(at_kill < SIGNUPS, "killed mid-burst ({at_kill} sent)");

    let _restarted = start(&database.url, &bus_database.url, &smtp_url(&smtp));
    // Unsettled deliveries come back after the visibility timeout (30 s by default).
    wait_for_mails(&maildir(&smtp), SIGNUPS, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for mail in mails_in(&maildir(&smtp)) {
        *by_id.entry(mail.header("Message-ID").unwrap()).or_default() += 1;
    }
    let repeated: usize = by_id.values().map(|n| n - 1).sum();
    assert_eq!(by_id.len(), SIGNUPS, "every signup got its welcome mail");
    assert!(
        repeated <= 1,
        "at most one repeat for one kill, got {repeated}"
    );
}
