//! What is live beyond the database: unread counts and read markers, the
//! activity stream, presence and typing, across instances and on both caches.

use std::process::Stdio;
use std::time::Duration;

use dozen_runtime::shutdown::Shutdown;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    spawn, spawn_chat, Backend, CacheBackend, Setup, Sse, SseReader, TestChat, TestUser,
};

const WAIT: Duration = Duration::from_secs(10);

async fn unread(chat: &TestChat, user: &TestUser, room: &str) -> (i64, i64) {
    let rooms: Value = chat.get_json("/v1/rooms", user).await;
    let room = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == room)
        .unwrap()
        .clone();
    (
        room["unread"].as_i64().unwrap(),
        room["last_read_seq"].as_i64().unwrap(),
    )
}

async fn unread_counts_follow_each_members_read_marker_and_only_move_forward(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let (alice, bob, mallory) = (chat.user("alice"), chat.user("bob"), chat.user("mallory"));
    let room = chat.room(&alice, "general").await;
    chat.join(&room, &bob).await;
    let mut seqs = Vec::new();
    for n in 1..=3 {
        seqs.push(
            chat.say(&room, &alice, &format!("m{n}")).await["seq"]
                .as_i64()
                .unwrap(),
        );
    }
    chat.say(&room, &bob, "bob's own").await;
    assert_eq!(
        unread(&chat, &bob, &room).await,
        (3, 0),
        "others' messages only"
    );
    assert_eq!(unread(&chat, &alice, &room).await, (1, 0));
    let rooms: Value = chat.get_json("/v1/rooms", &mallory).await;
    assert_eq!(
        rooms["rooms"][0]["unread"], 0,
        "not a member: nothing unread"
    );

    let read = format!("/v1/rooms/{room}/read");
    let answer = chat.put(&read, &bob, &json!({ "seq": seqs[1] })).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["unread"], 1);
    assert_eq!(answer["last_read_seq"], seqs[1]);
    // A tab that is behind cannot move it back; a number past the end stops at the end.
    chat.put(&read, &bob, &json!({ "seq": seqs[0] })).await;
    assert_eq!(unread(&chat, &bob, &room).await, (1, seqs[1]));
    let answer: Value = chat
        .put(&read, &bob, &json!({ "seq": 1_000_000 }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["unread"], 0);
    let last = answer["last_seq"].as_i64().unwrap();
    assert_eq!(answer["last_read_seq"], last);
    // Another session of bob's (a new token) sees the same.
    let bob_elsewhere = TestUser {
        token: chat.signer.issue(&bob.id, "bob").unwrap().token,
        ..bob.clone()
    };
    assert_eq!(unread(&chat, &bob_elsewhere, &room).await, (0, last));

    let refused = chat.put(&read, &mallory, &json!({ "seq": 1 })).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    for bad in [
        json!({}),
        json!({ "seq": -1 }),
        json!({ "seq": "2" }),
        json!({ "seq": 1.5 }),
    ] {
        let refused = chat.put(&read, &bob, &bad).await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
}

dozen_testing::on_every_database!(
    unread_counts_follow_each_members_read_marker_and_only_move_forward,
);

fn presence_names(sse: &Sse) -> Vec<String> {
    let presence = sse.json();
    assert_eq!(
        presence["count"],
        presence["online"].as_array().unwrap().len()
    );
    presence["online"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect()
}

/// Reads `stream` until a `presence` naming exactly `names` comes.
async fn wait_for_presence(stream: &mut SseReader, names: &[&str]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline - tokio::time::Instant::now();
        let sse = stream
            .next_of("presence", left)
            .await
            .unwrap_or_else(|| panic!("no presence of {names:?} within {WAIT:?}"));
        if presence_names(&sse) == names {
            return;
        }
    }
}

async fn users_on_two_instances_see_each_other_online_typing_posting_and_reading(
    cache: CacheBackend,
) {
    let Some(chat) = spawn(Setup {
        cache,
        ..Setup::new(Backend::Sqlite)
    })
    .await
    else {
        return;
    };
    let stop = Shutdown::new();
    let other = chat.another_instance(&stop).await;
    let (alice, bob) = (chat.user("alice"), chat.user("bob"));
    let room = chat.room(&alice, "general").await;
    chat.join(&room, &bob).await;
    let on_other = |path: &str| format!("{other}{path}");

    let mut alices = SseReader::open(&chat, &room, &alice, None).await;
    wait_for_presence(&mut alices, &["alice"]).await;
    let mut bobs = SseReader::open_url(
        &chat.client,
        &on_other(&format!("/v1/rooms/{room}/events")),
        &bob,
        None,
    )
    .await;
    let mut bobs_activity =
        SseReader::open_url(&chat.client, &on_other("/v1/activity"), &bob, None).await;
    let first = bobs_activity.next_of("unread", WAIT).await.unwrap().json();
    assert_eq!(first["room_id"], room.as_str());
    assert_eq!(first["unread"], 0);
    let repeated = bobs_activity.all_within(Duration::from_millis(400)).await;
    assert!(
        repeated.is_empty(),
        "each room once on connect: {repeated:?}"
    );
    wait_for_presence(&mut bobs, &["alice", "bob"]).await;
    wait_for_presence(&mut alices, &["alice", "bob"]).await;

    // bob types on the other instance: alice sees it, bob is not told of himself.
    let typing = chat
        .client
        .post(on_other(&format!("/v1/rooms/{room}/typing")))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap();
    assert_eq!(typing.status(), StatusCode::NO_CONTENT);
    let shown = alices
        .next_of("typing", WAIT)
        .await
        .expect("bob typing")
        .json();
    assert_eq!(shown["user"]["username"], "bob");
    assert_eq!(shown["user"]["id"], bob.id.as_str());
    assert!(shown["expires_in_ms"].as_u64().unwrap() >= 1000);
    // A stream opened meanwhile learns who is typing at once.
    let mut late = SseReader::open(&chat, &room, &alice, None).await;
    assert_eq!(
        late.next_of("typing", WAIT).await.unwrap().json()["user"]["username"],
        "bob"
    );
    drop(late);

    // alice posts on her instance: bob's stream and unread count follow at once.
    let sent = chat
        .say(&room, &alice, "hello from the first instance")
        .await;
    let shown = bobs.next(WAIT).await.expect("the message on bob's stream");
    assert_eq!(shown.json()["id"], sent["id"]);
    let unread = bobs_activity.next_of("unread", WAIT).await.unwrap().json();
    assert_eq!(
        (unread["unread"].as_i64(), unread["last_seq"].clone()),
        (Some(1), sent["seq"].clone())
    );
    // bob reads it through alice's instance (another tab): his activity follows.
    let read = chat
        .put(
            &format!("/v1/rooms/{room}/read"),
            &bob,
            &json!({ "seq": sent["seq"] }),
        )
        .await;
    assert_eq!(read.status(), StatusCode::OK);
    let cleared = bobs_activity.next_of("unread", WAIT).await.unwrap().json();
    assert_eq!(cleared["unread"], 0);

    let typed_by_bob: Vec<Sse> = bobs
        .all_within(Duration::from_millis(500))
        .await
        .into_iter()
        .filter(|e| e.event.as_deref() == Some("typing"))
        .collect();
    assert!(typed_by_bob.is_empty(), "bob was told of his own typing");

    // bob closes his window: alice sees him leave.
    drop(bobs);
    wait_for_presence(&mut alices, &["alice"]).await;
    stop.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_on_two_instances_see_each_other_on_the_embedded_cache() {
    users_on_two_instances_see_each_other_online_typing_posting_and_reading(CacheBackend::Embedded)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_on_two_instances_see_each_other_on_redis() {
    users_on_two_instances_see_each_other_online_typing_posting_and_reading(CacheBackend::Redis)
        .await;
}

/// The real `chat serve` binary as another instance, to kill.
fn chat_process(chat: &TestChat, port: u16) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_chat"))
        .arg("serve")
        .env_clear()
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("DATABASE_URL", &chat.database_url)
        .env("BUS_URL", &chat.bus_url)
        .env("CACHE_URL", &chat.cache_url)
        .env("JWKS", serde_json::to_string(&chat.signer.jwks()).unwrap())
        .env(
            "PRESENCE_TTL",
            format!("{}ms", chat.presence_ttl.as_millis()),
        )
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn an_instance_killed_takes_its_users_offline_within_the_presence_ttl(cache: CacheBackend) {
    const TTL: Duration = Duration::from_secs(1);
    let Some(chat) = spawn(Setup {
        cache,
        presence_ttl: TTL,
        ..Setup::new(Backend::Sqlite)
    })
    .await
    else {
        return;
    };
    let port = dozen_testing::free_port();
    let mut doomed = chat_process(&chat, port);
    let other = format!("http://127.0.0.1:{port}");
    crate::helpers::eventually(WAIT, "the other instance", || async {
        let ready = chat
            .client
            .get(format!("{other}/readyz"))
            .send()
            .await
            .ok()?;
        ready.status().is_success().then_some(())
    })
    .await;
    let (alice, bob) = (chat.user("alice"), chat.user("bob"));
    let room = chat.room(&alice, "general").await;
    chat.join(&room, &bob).await;
    let mut alices = SseReader::open(&chat, &room, &alice, None).await;
    let bobs = SseReader::open_url(
        &chat.client,
        &format!("{other}/v1/rooms/{room}/events"),
        &bob,
        None,
    )
    .await;
    wait_for_presence(&mut alices, &["alice", "bob"]).await;
    // Several refreshes later bob is still there: presence outlives the TTL while refreshed.
    tokio::time::sleep(TTL * 3).await;
    let still: Vec<Sse> = alices.all_within(Duration::from_millis(200)).await;
    assert!(
        still
            .iter()
            .all(|e| e.event.as_deref() != Some("presence") || presence_names(e).len() == 2),
        "bob dropped out while his instance lived: {still:?}"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(doomed.id().unwrap() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    doomed.wait().await.unwrap();
    let killed = std::time::Instant::now();
    wait_for_presence(&mut alices, &["alice"]).await;
    let after = killed.elapsed();
    // The TTL, plus a third of it until alice's instance looks again.
    assert!(
        after <= TTL + TTL / 3 + Duration::from_millis(500),
        "bob left after {after:?}"
    );
    drop(bobs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_takes_its_users_offline_on_the_embedded_cache() {
    an_instance_killed_takes_its_users_offline_within_the_presence_ttl(CacheBackend::Embedded)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_takes_its_users_offline_on_redis() {
    an_instance_killed_takes_its_users_offline_within_the_presence_ttl(CacheBackend::Redis).await;
}
