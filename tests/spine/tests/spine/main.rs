//! The spine of the chat system, end to end, with the real binaries as
//! processes: signup → welcome mail through a real SMTP server; a message
//! with a link → a card on the message and on the live stream; an @mention →
//! one mail; a notifier killed mid-burst → every welcome mail still arrives;
//! events the bus lost → brought back by the services' repair commands.
//! Each runs on the embedded stack and on PostgreSQL + NATS, changing only
//! env vars.

mod repair;
mod system;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use axum::response::Html;
use axum::routing::get;
use axum::Router;
use dozen_runtime::database::{self, DatabaseSettings};
use dozen_testing::mail::{mails_in, wait_for_mails, Received};
use reqwest::StatusCode;
use serde_json::{json, Value};

use system::{Process, Stack, System};

const WAIT: Duration = Duration::from_secs(60);

/// A page for cards to preview, on a port of the test's own.
async fn serve_article() -> String {
    let app = Router::new().route(
        "/article",
        get(|| async {
            Html(
                r#"<!doctype html><html><head>
                <meta property="og:title" content="The spine, end to end">
                <meta property="og:description" content="Five processes, one bus.">
                <title>fallback</title></head><body>hello</body></html>"#,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/article", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

struct User {
    token: String,
}

async fn sign_up(client: &reqwest::Client, system: &System, name: &str) -> User {
    let response = client
        .post(system.url(Process::Accounts, "/v1/users"))
        .json(&json!({
            "username": name,
            "email": format!("{name}@example.com"),
            "password": "correct horse battery staple",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{}", system.logs());
    let body: Value = response.json().await.unwrap();
    User {
        token: body["access_token"].as_str().unwrap().into(),
    }
}

fn to(mail: &Received, address: &str) -> bool {
    mail.header("To").is_some_and(|to| to.contains(address))
}

/// Reads `text/event-stream` until an event of `kind` arrives.
async fn next_event_of(stream: &mut reqwest::Response, buffer: &mut String, kind: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let normalized = buffer.replace("\r\n", "\n");
        if let Some((frame, rest)) = normalized.split_once("\n\n") {
            let (frame, rest) = (frame.to_owned(), rest.to_owned());
            *buffer = rest;
            if frame
                .lines()
                .any(|l| l == format!("event: {kind}") || l == format!("event:{kind}"))
            {
                let data = frame
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect::<String>();
                return serde_json::from_str(&data).unwrap();
            }
            continue;
        }
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {kind} event on the stream"))
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn signup_message_card_and_mention_run_end_to_end(stack: Stack) {
    let article = serve_article().await;
    let Some(system) = System::start(stack, "127.0.0.1").await else {
        return;
    };
    let client = reqwest::Client::new();
    let maildir = system.maildir();

    // Signup → a welcome mail, timed from the 201 to the mail on the SMTP server.
    let mut latencies = Vec::new();
    let mut users = HashMap::new();
    for (n, name) in ["alice", "bob", "carol", "dave", "erin"]
        .into_iter()
        .enumerate()
    {
        users.insert(name, sign_up(&client, &system, name).await);
        let started = Instant::now();
        let mails = wait_for_mails(&maildir, n + 1, WAIT).await;
        latencies.push(started.elapsed());
        assert!(mails.iter().any(|m| to(m, &format!("{name}@example.com"))
            && m.header("Subject").is_some_and(|s| s.contains("Welcome"))));
    }
    latencies.sort();
    eprintln!(
        "{stack:?}: signup answered → welcome mail on the SMTP server (polled every 50 ms), median of 5: {:?} (min {:?}, max {:?})",
        latencies[2], latencies[0], latencies[4]
    );

    // A room; bob joins and listens.
    let (alice, bob) = (&users["alice"], &users["bob"]);
    let chat = |path: &str| system.url(Process::ChatWeb, path);
    let room: Value = client
        .post(chat("/v1/rooms"))
        .bearer_auth(&alice.token)
        .json(&json!({ "name": "spine" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let room_id = room["id"].as_str().expect("a room").to_owned();
    let joined = client
        .post(chat(&format!("/v1/rooms/{room_id}/members")))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), StatusCode::OK);
    let mut stream = client
        .get(chat(&format!("/v1/rooms/{room_id}/events")))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let mut buffer = String::new();

    // A message with a link and a mention.
    let text = format!("hey @bob, read {article}");
    let sent = client
        .post(chat(&format!("/v1/rooms/{room_id}/messages")))
        .bearer_auth(&alice.token)
        .json(&json!({ "text": text }))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::CREATED);
    let sent: Value = sent.json().await.unwrap();
    assert_eq!(sent["author"]["username"], "alice");

    let shown = next_event_of(&mut stream, &mut buffer, "message").await;
    assert_eq!(shown["id"], sent["id"]);
    let card = next_event_of(&mut stream, &mut buffer, "card").await;
    assert_eq!(card["message_id"], sent["id"]);
    assert_eq!(card["card"]["title"], "The spine, end to end");
    assert_eq!(card["card"]["description"], "Five processes, one bus.");
    let page: Value = client
        .get(chat(&format!("/v1/rooms/{room_id}/messages")))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["messages"][0]["cards"][0], card["card"]);

    // @bob → one mail to bob, and nothing to anyone else.
    let mails = wait_for_mails(&maildir, 6, WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mails_now = mails_in(&maildir);
    assert_eq!(mails_now.len(), 6, "five welcomes and one mention");
    let mention: Vec<&Received> = mails
        .iter()
        .filter(|m| {
            m.header("Subject")
                .is_some_and(|s| s.contains("mentioned you"))
        })
        .collect();
    assert_eq!(mention.len(), 1);
    assert!(to(mention[0], "bob@example.com"));
    assert!(
        mention[0].body().contains(&article),
        "{}",
        mention[0].body()
    );
}

async fn a_notifier_killed_mid_burst_of_200_signups_sends_every_welcome_mail_and_repeats_only_those_it_was_sending(
    stack: Stack,
) {
    const SIGNUPS: usize = 200;
    let Some(mut system) = System::start(stack, "").await else {
        return;
    };
    let maildir = system.maildir();
    let client = reqwest::Client::new();
    let accounts = system.url(Process::Accounts, "/v1/users");
    let mut burst = tokio::task::JoinSet::new();
    for worker in 0..4 {
        let (client, accounts) = (client.clone(), accounts.clone());
        burst.spawn(async move {
            for n in (worker..SIGNUPS).step_by(4) {
                let response = client
                    .post(&accounts)
                    .json(&json!({
                        "username": format!("user{n}"),
                        "email": format!("user{n}@example.com"),
                        "password": "correct horse battery staple",
                    }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::CREATED);
            }
        });
    }
    wait_for_mails(&maildir, SIGNUPS / 8, WAIT).await;
    system.kill(Process::Notifier).await;
    let at_kill = mails_in(&maildir).len();
    assert!(at_kill < SIGNUPS, "killed mid-burst ({at_kill} sent)");
    // What it was sending when it died: the server may have taken those
    // before notifier could mark them sent. Only these may go twice.
    let being_sent = mails_being_sent(system.database_url("notifier")).await;
    while let Some(done) = burst.join_next().await {
        done.unwrap();
    }
    system.spawn(Process::Notifier).await;

    // What the killed process held comes back after the visibility timeout.
    wait_for_mails(&maildir, SIGNUPS, Duration::from_secs(150)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for mail in mails_in(&maildir) {
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
}

/// The `Message-ID`s of the mails notifier was sending, from its database.
async fn mails_being_sent(database_url: &str) -> HashSet<String> {
    let db = database::connect_lazy(&DatabaseSettings {
        url: database_url.parse().unwrap(),
        max_connections: 1,
        acquire_timeout: Duration::from_secs(10),
    })
    .unwrap();
    let ids = notifier::store::mails_being_sent(&db).await.unwrap();
    db.close().await;
    ids.into_iter().collect()
}

macro_rules! on_both_stacks {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Stack::Embedded).await
                }
            )*
        }
        mod postgres_nats {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(super::Stack::PostgresNats).await
                }
            )*
        }
    };
}

use repair::events_a_broker_lost_are_brought_back_by_republish_and_repair_each_effect_once;

on_both_stacks!(
    signup_message_card_and_mention_run_end_to_end,
    events_a_broker_lost_are_brought_back_by_republish_and_repair_each_effect_once,
    a_notifier_killed_mid_burst_of_200_signups_sends_every_welcome_mail_and_repeats_only_those_it_was_sending,
);

/// NATS restarted on an empty store while the system runs: the streams and
/// consumers are gone. The workers declare their subscriptions again, every
/// process is ready again, and the next signup gets its welcome mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_nats_restarts_with_nothing_stored_the_next_signup_still_gets_its_welcome_mail() {
    let Some(mut system) = System::start(Stack::PostgresNats, "").await else {
        return;
    };
    let client = reqwest::Client::new();
    let maildir = system.maildir();
    sign_up(&client, &system, "alice").await;
    wait_for_mails(&maildir, 1, WAIT).await;

    system.restart_nats_with_nothing_stored();
    sign_up(&client, &system, "bob").await;
    let deadline = Instant::now() + WAIT;
    while !mails_in(&maildir).iter().any(|m| to(m, "bob@example.com")) {
        assert!(
            Instant::now() < deadline,
            "no welcome mail for bob:\n{}",
            system.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for process in Process::ALL {
        system.wait_ready(process).await;
    }
}
