//! `dozen dlq` and `dozen status` against a real bus (a SQLite file) that a
//! consumer in this test feeds with a dead letter.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dozen_bus::{Bus, Consumer, Event, EventType, HandlerError, Subscription};
use dozen_events::UserSignedUp;

use crate::{dozen, folder_with};

async fn dozen_says(folder: &std::path::Path, args: &[&str]) -> (i32, String) {
    let output = dozen(folder).args(args).output().await.unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.code().unwrap_or(-1), text)
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "waited for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn dead_letters(bus: &dyn Bus) -> u64 {
    bus.subscriptions()
        .await
        .unwrap()
        .iter()
        .find(|s| s.name == "test.work")
        .map_or(0, |s| s.dead_letters)
}

async fn one_dead_letter(bus: &dyn Bus) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while dead_letters(bus).await < 1 {
        assert!(Instant::now() < deadline, "the event never died");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signup(n: u32) -> Event {
    Event::new(
        "test",
        &UserSignedUp {
            user_id: format!("u-{n}"),
            username: format!("user{n}"),
            email: format!("user{n}@example.com"),
            signed_up_at: "2026-11-27T00:00:00Z".into(),
        },
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_lists_shows_and_redrives_dead_letters_which_are_then_handled() {
    let bus_file = tempfile::tempdir().unwrap();
    let bus_url = format!("sqlite://{}", bus_file.path().join("bus.db").display());
    let folder = folder_with("web: true\n", &format!("BUS_URL={bus_url}\n"));
    let bus = dozen_bus::connect(&bus_url.parse().unwrap()).await.unwrap();
    let subscription = Subscription::new("test.work", UserSignedUp::TYPE).max_attempts(1);
    bus.declare(&subscription).await.unwrap();

    let broken = Arc::new(AtomicBool::new(true));
    let handled = Arc::new(AtomicUsize::new(0));
    let stop = dozen_runtime::shutdown::Shutdown::new();
    let consumer = Consumer::new(bus.clone(), subscription, {
        let (broken, handled) = (broken.clone(), handled.clone());
        move |_event: Event| {
            let (broken, handled) = (broken.clone(), handled.clone());
            async move {
                if broken.load(Ordering::SeqCst) {
                    return Err(HandlerError::permanent("the handler is broken"));
                }
                handled.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }
    });
    tokio::spawn(consumer.run(stop.clone()));
    let event = signup(1);
    bus.publish(UserSignedUp::TYPE, std::slice::from_ref(&event))
        .await
        .unwrap();
    one_dead_letter(bus.as_ref()).await;

    let (code, listed) = dozen_says(folder.path(), &["dlq", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("test.work") && l.trim_end().ends_with(" 1")),
        "{listed}"
    );
    let (_, letters) = dozen_says(folder.path(), &["dlq", "list", "test.work"]).await;
    assert!(
        letters.contains(&event.id) && letters.contains("the handler is broken"),
        "{letters}"
    );
    let (code, shown) = dozen_says(folder.path(), &["dlq", "show", "test.work", &event.id]).await;
    assert_eq!(code, 0);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["event"]["id"], event.id.as_str());
    let (code, _) = dozen_says(folder.path(), &["dlq", "show", "test.work", "no-such-id"]).await;
    assert_eq!(code, 1);
    let (code, status) = dozen_says(folder.path(), &["status"]).await;
    assert_eq!(code, 0);
    assert!(
        status.contains("no dozen up is running here") && status.contains("test.work"),
        "{status}"
    );

    // Fixed: redriven, the event is handled.
    broken.store(false, Ordering::SeqCst);
    let (code, moved) = dozen_says(folder.path(), &["dlq", "redrive", "test.work"]).await;
    assert_eq!(code, 0);
    assert!(moved.contains("moved 1"), "{moved}");
    until("the redriven event to be handled", || {
        handled.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(dead_letters(bus.as_ref()).await, 0);

    // Purge deletes for good.
    broken.store(true, Ordering::SeqCst);
    let second = signup(2);
    bus.publish(UserSignedUp::TYPE, std::slice::from_ref(&second))
        .await
        .unwrap();
    one_dead_letter(bus.as_ref()).await;
    let (_, deleted) = dozen_says(
        folder.path(),
        &["dlq", "purge", "test.work", "--event", &second.id],
    )
    .await;
    assert!(deleted.contains("deleted 1"), "{deleted}");
    assert_eq!(dead_letters(bus.as_ref()).await, 0);
    stop.trigger();
}
