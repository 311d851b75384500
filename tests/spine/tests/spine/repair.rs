//! Repairing what the bus lost: subscriptions deleted while people sign up
//! and post, then `accounts republish` and `chat repair` (the real binaries,
//! as one-off admin processes) bring every lost effect, each once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dozen_runtime::database::{self, DatabaseSettings};
use dozen_testing::mail::{mails_in, wait_for_mails};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::system::{Process, Stack, System};
use crate::{serve_article, to, WAIT};

/// The subscriptions lost, and the topic of each.
const LOST: [(&str, &str); 3] = [
    ("notifier.welcome", "user.signed_up"),
    ("chat.directory", "user.signed_up"),
    ("cards.previews", "message.sent"),
];

/// Deletes `LOST` from the bus, with whatever they held: a broker losing
/// them (a queue deleted by hand, a consumer gone with a wiped node).
async fn lose_subscriptions(system: &System, stack: Stack) {
    match stack {
        Stack::Embedded => {
            let bus = connect(system.bus_url()).await;
            for (name, _) in LOST {
                for table in [
                    "bus_messages WHERE subscription",
                    "bus_subscriptions WHERE name",
                ] {
                    sqlx::query(&format!("DELETE FROM {table} = $1"))
                        .bind(name)
                        .execute(&bus)
                        .await
                        .unwrap();
                }
            }
            bus.close().await;
        }
        Stack::PostgresNats => {
            let client = async_nats::connect(system.bus_url()).await.unwrap();
            let js = async_nats::jetstream::new(client);
            for (name, topic) in LOST {
                let stream = js
                    .get_stream(format!("DOZEN_{}", topic.replace('.', "_")))
                    .await
                    .unwrap();
                stream
                    .delete_consumer(&name.replace('.', "_"))
                    .await
                    .unwrap();
            }
        }
    }
}

async fn connect(url: &str) -> sqlx::AnyPool {
    database::connect_lazy(&DatabaseSettings {
        url: url.parse().unwrap(),
        max_connections: 1,
        acquire_timeout: Duration::from_secs(10),
    })
    .unwrap()
}

/// Waits until `service`'s outbox has published everything it holds.
async fn outbox_published(system: &System, service: &str) {
    let db = connect(system.database_url(service)).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let waiting: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM bus_outbox WHERE published_at IS NULL")
                .fetch_one(&db)
                .await
                .unwrap();
        if waiting == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{service}'s outbox never emptied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    db.close().await;
}

/// The usernames in chat's directory.
async fn chat_directory(system: &System) -> Vec<String> {
    let db = connect(system.database_url("chat")).await;
    let mut names: Vec<String> = sqlx::query_scalar("SELECT username FROM users")
        .fetch_all(&db)
        .await
        .unwrap();
    db.close().await;
    names.sort();
    names
}

/// How many mails each recipient got.
fn mails_by_recipient(system: &System) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for mail in mails_in(&system.maildir()) {
        *counts
            .entry(mail.header("To").unwrap_or_default())
            .or_default() += 1;
    }
    counts
}

/// A room's newest messages, as a reader fetches them.
async fn messages_page(client: &reqwest::Client, url: &str, token: &str) -> Value {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub async fn events_a_broker_lost_are_brought_back_by_republish_and_repair_each_effect_once(
    stack: Stack,
) {
    let article = serve_article().await;
    let Some(mut system) = System::start(stack, "127.0.0.1").await else {
        return;
    };
    let client = reqwest::Client::new();
    let alice = crate::sign_up(&client, &system, "alice").await;
    wait_for_mails(&system.maildir(), 1, WAIT).await;
    let started = dozen_runtime::clock::now_millis();

    // The subscriptions go while their consumers are down, and events flow.
    for process in [Process::Notifier, Process::ChatWorker, Process::Cards] {
        system.kill(process).await;
    }
    lose_subscriptions(&system, stack).await;
    crate::sign_up(&client, &system, "bob").await;
    crate::sign_up(&client, &system, "carol").await;
    let chat_web = system.url(Process::ChatWeb, "");
    let chat = |path: &str| format!("{chat_web}{path}");
    let room: Value = client
        .post(chat("/v1/rooms"))
        .bearer_auth(&alice.token)
        .json(&json!({ "name": "repairs" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let room = room["id"].as_str().unwrap().to_owned();
    let posted = client
        .post(chat(&format!("/v1/rooms/{room}/messages")))
        .bearer_auth(&alice.token)
        .json(&json!({ "text": format!("notes at {article}") }))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::CREATED);
    outbox_published(&system, "accounts").await;
    outbox_published(&system, "chat").await;
    // Their consumers come back and declare the subscriptions anew: what
    // went out meanwhile is lost to them.
    for process in [Process::Notifier, Process::ChatWorker, Process::Cards] {
        system.spawn(process).await;
    }
    for process in [Process::Notifier, Process::ChatWorker, Process::Cards] {
        system.wait_ready(process).await;
    }
    let messages = chat(&format!("/v1/rooms/{room}/messages"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(mails_in(&system.maildir()).len(), 1, "only alice's welcome");
    assert_eq!(chat_directory(&system).await, ["alice"]);
    let page = messages_page(&client, &messages, &alice.token).await;
    assert_eq!(page["messages"][0]["cards"], json!([]), "no card yet");

    // A dry run says what is wrong and mends nothing.
    let (code, said, _) = system.admin("chat", &["repair", "--dry-run"]).await;
    assert_eq!(code, 0, "{said}");
    assert!(
        said.contains("1 message with links and no card")
            && said.contains("would republish 1 event "),
        "{said}"
    );
    let since = dozen_runtime::clock::rfc3339_from_millis(started);
    let (code, said, _) = system
        .admin("accounts", &["republish", "--since", &since, "--dry-run"])
        .await;
    assert_eq!(code, 0, "{said}");
    assert!(
        said.contains("would republish 2 events (user.signed_up: 2)"),
        "{said}"
    );
    // An empty range or a topic accounts never publishes: refused, not a silent no-op.
    for bad in [
        vec!["republish", "--since", "1h", "--until", "2h"],
        vec!["republish", "--since", "1h", "--topic", "user.signup"],
        vec!["republish"],
        vec!["republish", "--since", "yesterday"],
    ] {
        let (code, said, why) = system.admin("accounts", &bad).await;
        assert_eq!((code, said.as_str()), (2, ""), "{bad:?}: {why}");
        assert!(why.starts_with("error: "), "{bad:?}: {why}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(mails_in(&system.maildir()).len(), 1);

    // The repair, twice: the second repeats nothing.
    for round in 0..2 {
        let (code, said, _) = system
            .admin("accounts", &["republish", "--since", &since])
            .await;
        assert_eq!(code, 0, "{said}");
        assert!(said.contains("republished 2 events"), "{said}");
        let (code, said, why) = system.admin("chat", &["repair"]).await;
        assert_eq!(code, 0, "{said}{why}");
        wait_for_mails(&system.maildir(), 3, WAIT).await;
        let deadline = Instant::now() + WAIT;
        loop {
            let page = messages_page(&client, &messages, &alice.token).await;
            let cards = page["messages"][0]["cards"].as_array().unwrap().len();
            if cards == 1 && chat_directory(&system).await == ["alice", "bob", "carol"] {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: cards {cards}, directory {:?}\n{}",
                chat_directory(&system).await,
                system.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mails = mails_by_recipient(&system);
        assert_eq!(mails.len(), 3, "{mails:?}");
        assert!(
            mails.values().all(|n| *n == 1),
            "round {round}: one welcome each, none repeated: {mails:?}"
        );
        assert!(mails_in(&system.maildir())
            .iter()
            .any(|m| to(m, "carol@example.com")));
        let page = messages_page(&client, &messages, &alice.token).await;
        assert_eq!(page["messages"][0]["cards"].as_array().unwrap().len(), 1);
    }
}
