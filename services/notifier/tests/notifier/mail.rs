//! Welcome and mention mails through a real SMTP server, once per event.

use std::time::Duration;

use dozen_bus::Event;
use dozen_events::contract::examples;
use dozen_events::{CardCreated, MessageEdited, MessageSent, UserSignedUp};
use dozen_testing::ChildServer;

use notifier::handlers::{MENTIONS, WELCOME};

use crate::helpers::{maildir, mails_in, smtp_url, spawn_notifier, wait_for_mails, TestNotifier};

fn signup(id: &str, username: &str) -> UserSignedUp {
    UserSignedUp {
        user_id: id.into(),
        username: username.into(),
        email: format!("{username}@example.com"),
        signed_up_at: "2026-11-26T10:00:00Z".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_gets_one_welcome_mail_whose_message_id_comes_from_the_event() {
    let Some(smtp) = ChildServer::smtp() else {
        return;
    };
    let notifier = spawn_notifier(&smtp_url(&smtp)).await;
    let event = notifier.publish(&signup("u-1", "alice")).await;
    let mails = wait_for_mails(&maildir(&smtp), 1, Duration::from_secs(30)).await;
    let mail = &mails[0];
    assert_eq!(mail.header("To").as_deref(), Some("alice@example.com"));
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Welcome to Dozen, alice")
    );
    assert_eq!(
        mail.header("Message-ID"),
        Some(format!("<{}.welcome@dozen>", event.id))
    );
    assert!(mail.body().contains("Hello alice"), "{}", mail.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_signup_sends_no_second_welcome_mail() {
    let Some(smtp) = ChildServer::smtp() else {
        return;
    };
    let notifier = spawn_notifier(&smtp_url(&smtp)).await;
    let event = Event::new("test", &signup("u-2", "bob")).unwrap();
    for _ in 0..3 {
        notifier.publish_event(&event).await;
    }
    wait_for_mails(&maildir(&smtp), 1, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        mails_in(&maildir(&smtp)).len(),
        1,
        "one welcome mail for one signup, however often it is delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_mentioning_users_mails_each_known_one_once_and_not_the_author() {
    let Some(smtp) = ChildServer::smtp() else {
        return;
    };
    let notifier = spawn_notifier(&smtp_url(&smtp)).await;
    for (id, name) in [("u-a", "alice"), ("u-b", "bob"), ("u-c", "carol")] {
        notifier.publish(&signup(id, name)).await;
    }
    wait_for_mails(&maildir(&smtp), 3, Duration::from_secs(30)).await;
    let sent = MessageSent {
        message_id: "m-1".into(),
        room_id: "r-1".into(),
        author_id: "u-a".into(),
        author_username: "alice".into(),
        text: "@bob @carol @alice @nobody look".into(),
        mentions: vec![
            "bob".into(),
            "carol".into(),
            "alice".into(),
            "nobody".into(),
        ],
        urls: vec![],
        sent_at: "2026-11-26T10:05:00Z".into(),
    };
    let event = notifier.publish(&sent).await;
    notifier.publish_event(&event).await; // delivered twice: still one mail each
    let mails = wait_for_mails(&maildir(&smtp), 5, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mentions: Vec<_> = mails_in(&maildir(&smtp))
        .into_iter()
        .filter(|m| m.header("Subject").as_deref() == Some("alice mentioned you"))
        .collect();
    let mut to: Vec<String> = mentions.iter().filter_map(|m| m.header("To")).collect();
    to.sort();
    assert_eq!(to, ["bob@example.com", "carol@example.com"], "{mails:?}");
    assert!(mentions[0].body().contains("@bob @carol"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_mails_only_the_users_it_newly_mentions_and_a_repeat_mails_no_one() {
    let Some(smtp) = ChildServer::smtp() else {
        return;
    };
    let notifier = spawn_notifier(&smtp_url(&smtp)).await;
    for (id, name) in [
        ("u-a", "alice"),
        ("u-b", "bob"),
        ("u-c", "carol"),
        ("u-d", "dave"),
    ] {
        notifier.publish(&signup(id, name)).await;
    }
    wait_for_mails(&maildir(&smtp), 4, Duration::from_secs(30)).await;
    notifier
        .publish(&MessageSent {
            message_id: "m-7".into(),
            room_id: "r-1".into(),
            author_id: "u-a".into(),
            author_username: "alice".into(),
            text: "@bob lunch?".into(),
            mentions: vec!["bob".into()],
            urls: vec![],
            sent_at: "2026-11-26T10:05:00Z".into(),
        })
        .await;
    wait_for_mails(&maildir(&smtp), 5, Duration::from_secs(30)).await;
    let edit = |text: &str, mentions: &[&str]| MessageEdited {
        message_id: "m-7".into(),
        room_id: "r-1".into(),
        author_id: "u-a".into(),
        author_username: "alice".into(),
        text: text.into(),
        mentions: mentions.iter().map(|m| (*m).to_owned()).collect(),
        urls: vec![],
        sent_at: "2026-11-26T10:05:00Z".into(),
        edited_at: "2026-11-26T10:06:00Z".into(),
    };
    // bob again (already mailed), carol new; then dave new, carol again; then redelivered.
    notifier
        .publish(&edit("@bob @carol lunch?", &["bob", "carol"]))
        .await;
    let second = notifier
        .publish(&edit("@bob @carol @dave lunch?", &["bob", "carol", "dave"]))
        .await;
    notifier.publish_event(&second).await;
    wait_for_mails(&maildir(&smtp), 7, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mentions: Vec<_> = mails_in(&maildir(&smtp))
        .into_iter()
        .filter(|m| m.header("Subject").as_deref() == Some("alice mentioned you"))
        .collect();
    let mut to: Vec<String> = mentions.iter().filter_map(|m| m.header("To")).collect();
    to.sort();
    assert_eq!(
        to,
        ["bob@example.com", "carol@example.com", "dave@example.com"]
    );
    let carols = mentions
        .iter()
        .find(|m| m.header("To").as_deref() == Some("carol@example.com"))
        .unwrap();
    // Whichever edit reached notifier first (edits may be handled in parallel).
    let body = carols.body();
    assert!(
        body.contains("@bob @carol lunch?") || body.contains("@bob @carol @dave lunch?"),
        "an edited text: {body}"
    );
    assert_eq!(
        carols.header("Message-ID").as_deref(),
        Some("<m-7.mention.carol@dozen>"),
        "one id per message and recipient"
    );
}

/// Each mail notifier kept for `event_id`: (recipient, state, attempts).
async fn kept_mails(notifier: &TestNotifier, event_id: &str) -> Vec<(String, String, i64)> {
    let mut mails: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT recipient, state, attempts FROM mails WHERE event_id = $1")
            .bind(event_id)
            .fetch_all(&notifier.db)
            .await
            .unwrap();
    mails.sort();
    mails
}

async fn dead_letters(notifier: &TestNotifier, subscription: &str) -> usize {
    notifier
        .bus
        .dead_letters(subscription, 100)
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_signups_in_a_second_through_a_mail_server_taking_three_seconds_a_mail_all_get_one_welcome_and_none_is_dead_lettered(
) {
    let Some(smtp) = ChildServer::smtp_with(Duration::from_secs(3), &[]) else {
        return;
    };
    let notifier = spawn_notifier(&smtp_url(&smtp)).await;
    for n in 0..30 {
        notifier
            .publish(&signup(&format!("u-{n}"), &format!("user{n}")))
            .await;
    }
    let mails = wait_for_mails(&maildir(&smtp), 30, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut to: Vec<String> = mails_in(&maildir(&smtp))
        .iter()
        .filter_map(|m| m.header("To"))
        .collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 30, "one welcome mail each: {mails:?}");
    assert_eq!(mails_in(&maildir(&smtp)).len(), 30);
    assert_eq!(dead_letters(&notifier, WELCOME).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_refused_for_good_is_not_tried_again_and_costs_the_others_no_repeated_mail() {
    let refused = ["carol@example.com", "erin@example.com"];
    let Some(smtp) = ChildServer::smtp_with(Duration::ZERO, &refused) else {
        return;
    };
    let notifier = spawn_notifier(&smtp_url(&smtp)).await;
    let users = [
        ("u-a", "alice"),
        ("u-b", "bob"),
        ("u-c", "carol"),
        ("u-d", "dave"),
        ("u-e", "erin"),
    ];
    for (id, name) in users {
        notifier.publish(&signup(id, name)).await;
    }
    // Welcome mails: carol and erin are refused.
    wait_for_mails(&maildir(&smtp), 3, Duration::from_secs(30)).await;
    let sent = MessageSent {
        message_id: "m-9".into(),
        room_id: "r-1".into(),
        author_id: "u-a".into(),
        author_username: "alice".into(),
        text: "@carol @bob @erin @dave standup in 5".into(),
        mentions: vec!["carol".into(), "bob".into(), "erin".into(), "dave".into()],
        urls: vec![],
        sent_at: "2026-11-26T10:05:00Z".into(),
    };
    let event = notifier.publish(&sent).await;
    wait_for_mails(&maildir(&smtp), 5, Duration::from_secs(30)).await;
    // Delivered again, as a redelivery or `dozen dlq redrive` would.
    notifier.publish_event(&event).await;
    notifier.publish_event(&event).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let mut to: Vec<String> = mails_in(&maildir(&smtp))
        .iter()
        .filter(|m| m.header("Subject").as_deref() == Some("alice mentioned you"))
        .filter_map(|m| m.header("To"))
        .collect();
    to.sort();
    assert_eq!(to, ["bob@example.com", "dave@example.com"]);
    assert_eq!(
        kept_mails(&notifier, &event.id).await,
        [
            ("bob@example.com".into(), "sent".into(), 1),
            ("carol@example.com".into(), "refused".into(), 1),
            ("dave@example.com".into(), "sent".into(), 1),
            ("erin@example.com".into(), "refused".into(), 1),
        ]
    );
    assert_eq!(dead_letters(&notifier, MENTIONS).await, 0);
    assert_eq!(dead_letters(&notifier, WELCOME).await, 0);
}

/// The consumer's side of the contracts: every example of every schema it
/// consumes is handled, and the welcome examples become mails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifier_handles_every_example_of_the_events_it_consumes() {
    let folder = tempfile::tempdir().unwrap();
    let url = format!("file://{}", folder.path().display());
    let notifier = spawn_notifier(&url).await;
    let signups = examples::<UserSignedUp>();
    for example in &signups {
        notifier.publish(example).await;
    }
    for example in examples::<MessageSent>() {
        notifier.publish(&example).await;
    }
    for example in examples::<CardCreated>() {
        notifier.publish(&example).await;
    }
    for example in examples::<MessageEdited>() {
        notifier.publish(&example).await;
    }
    // In dev the mail goes to files: one .eml per mail.
    let mails = wait_for_mails(folder.path(), signups.len(), Duration::from_secs(30)).await;
    assert!(mails
        .iter()
        .any(|m| m.header("To").as_deref() == Some("alice@example.com")));
    let stats = dozen_bus_stats(&notifier).await;
    assert!(
        stats.iter().all(|(_, dead)| *dead == 0),
        "no example was refused: {stats:?}"
    );
}

async fn dozen_bus_stats(notifier: &crate::helpers::TestNotifier) -> Vec<(String, u64)> {
    // Give the last events time to be settled.
    tokio::time::sleep(Duration::from_millis(500)).await;
    notifier
        .bus
        .subscriptions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.dead_letters))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_while_the_smtp_server_is_down_is_mailed_once_it_is_back_never_dead_lettered_and_readiness_says_so(
) {
    let Some(mut smtp) = ChildServer::smtp() else {
        return;
    };
    let notifier = spawn_notifier(&smtp_url(&smtp)).await;
    smtp.stop();
    let event = notifier.publish(&signup("u-9", "dora")).await;
    let ready = reqwest::get(format!("{}/readyz", notifier.address))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert!(
        body["checks"]["mail"]
            .as_str()
            .unwrap()
            .starts_with("failing"),
        "{body}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    smtp.start();
    let mails = wait_for_mails(&maildir(&smtp), 1, Duration::from_secs(60)).await;
    assert_eq!(mails[0].header("To").as_deref(), Some("dora@example.com"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(mails_in(&maildir(&smtp)).len(), 1);
    let kept = kept_mails(&notifier, &event.id).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].1, "sent", "tried while down, then sent: {kept:?}");
    assert_eq!(
        dead_letters(&notifier, WELCOME).await,
        0,
        "a mail server down is a transient fault"
    );
}
