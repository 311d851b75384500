use std::time::Duration;

use dozen_events::CardCreated;
use dozen_runtime::clock::now_rfc3339;
use serde_json::Value;

use crate::helpers::{
    spawn, spawn_chat, Backend, CacheBackend, Setup, SseReader, TestChat, TestUser,
};

const WAIT: Duration = Duration::from_secs(10);

async fn the_live_stream_shows_new_messages_and_the_cards_attached_to_them(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let (alice, bob) = (chat.user("alice"), chat.user("bob"));
    let room = chat.room(&alice, "general").await;
    chat.join(&room, &bob).await;
    let before = chat.say(&room, &alice, "before anyone listened").await;
    let mut stream = SseReader::open(&chat, &room, &bob, None).await;

    let sent = chat
        .say(&room, &alice, "read https://example.com/post")
        .await;
    let shown = stream.next(WAIT).await.expect("the message on the stream");
    assert_eq!(shown.event.as_deref(), Some("message"));
    assert_eq!(shown.json(), sent);
    assert_ne!(
        shown.json()["id"],
        before["id"],
        "only what came after connecting"
    );

    // The cards service's event, handled by chat's worker, reaches the stream too.
    chat.publish(&CardCreated {
        message_id: sent["id"].as_str().unwrap().into(),
        room_id: room.clone(),
        url: "https://example.com/post".into(),
        title: "A post".into(),
        description: Some("About things".into()),
        image: None,
        created_at: now_rfc3339(),
    })
    .await;
    let card = stream.next(WAIT).await.expect("the card on the stream");
    assert_eq!(card.event.as_deref(), Some("card"));
    let card = card.json();
    assert_eq!(card["message_id"], sent["id"]);
    assert_eq!(card["card"]["title"], "A post");

    let page: Value = chat
        .get_json(&format!("/v1/rooms/{room}/messages?limit=1"), &bob)
        .await;
    assert_eq!(page["messages"][0]["cards"][0], card["card"]);
}

async fn a_stream_resumed_with_last_event_id_misses_nothing_and_repeats_nothing(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let alice = chat.user("alice");
    let room = chat.room(&alice, "general").await;
    let mut stream = SseReader::open(&chat, &room, &alice, None).await;
    chat.say(&room, &alice, "one").await;
    let first = stream.next(WAIT).await.unwrap();
    drop(stream);

    // Said while nobody listened.
    for text in ["two", "three"] {
        chat.say(&room, &alice, text).await;
    }
    let mut resumed = SseReader::open(&chat, &room, &alice, first.id.as_deref()).await;
    chat.say(&room, &alice, "four").await;
    let mut texts = Vec::new();
    for _ in 0..3 {
        texts.push(resumed.next(WAIT).await.unwrap().json()["text"].clone());
    }
    assert_eq!(texts, ["two", "three", "four"]);
    assert!(resumed.next(Duration::from_millis(600)).await.is_none());
}

async fn a_deleted_message_is_announced_on_the_stream(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let alice = chat.user("alice");
    let room = chat.room(&alice, "general").await;
    let sent = chat.say(&room, &alice, "oops").await;
    let mut stream = SseReader::open(&chat, &room, &alice, None).await;
    chat.delete(
        &format!("/v1/rooms/{room}/messages/{}", sent["id"].as_str().unwrap()),
        &alice,
    )
    .await;
    let deleted = stream.next(WAIT).await.unwrap();
    assert_eq!(deleted.event.as_deref(), Some("message_deleted"));
    assert_eq!(deleted.json()["message_id"], sent["id"]);
}

#[tokio::test]
async fn open_streams_end_when_the_process_drains_so_they_do_not_hold_up_shutdown() {
    let chat = spawn_chat(Backend::Sqlite).await;
    let alice = chat.user("alice");
    let room = chat.room(&alice, "general").await;
    let mut stream = SseReader::open(&chat, &room, &alice, None).await;
    chat.shutdown.trigger();
    let ended =
        tokio::time::timeout(Duration::from_secs(5), stream.next(Duration::from_secs(30))).await;
    assert!(matches!(ended, Ok(None)), "the stream ended: {ended:?}");
}

async fn a_stream_resumed_past_the_rooms_end_is_told_to_reload_and_goes_on(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let alice = chat.user("alice");
    let room = chat.room(&alice, "general").await;
    for text in ["one", "two", "three"] {
        chat.say(&room, &alice, text).await;
    }
    for (n, ahead) in ["4", "1000000", &i64::MAX.to_string()]
        .into_iter()
        .enumerate()
    {
        let mut stream = SseReader::open(&chat, &room, &alice, Some(ahead)).await;
        let reset = stream.next(WAIT).await.expect("a reset");
        assert_eq!(reset.event.as_deref(), Some("reset"), "{ahead}");
        assert_eq!(reset.json()["reason"], "ahead");
        let last = reset.json()["last_seq"].as_i64().unwrap();
        assert_eq!(
            reset.id,
            Some(last.to_string()),
            "resume from here next time"
        );
        let posted = chat.say(&room, &alice, &format!("after {n}")).await;
        let shown = stream.next(WAIT).await.expect("live events still flow");
        assert_eq!(shown.json()["id"], posted["id"], "{ahead}");
    }
    // Resuming from where the room is: no reset.
    let last = chat.say(&room, &alice, "last").await["seq"]
        .as_i64()
        .unwrap();
    let mut stream = SseReader::open(&chat, &room, &alice, Some(&last.to_string())).await;
    let posted = chat.say(&room, &alice, "next").await;
    assert_eq!(stream.next(WAIT).await.unwrap().json()["id"], posted["id"]);
}

async fn a_stream_resumed_from_before_what_the_archive_kept_is_told_to_reload(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let alice = chat.user("alice");
    let room = chat.room(&alice, "general").await;
    for text in ["one", "two", "three"] {
        chat.say(&room, &alice, text).await;
    }
    let long_ago = dozen_runtime::clock::now_millis() - 100 * 24 * 3600 * 1000;
    for table in [
        "UPDATE messages SET sent_at = $1",
        "UPDATE room_events SET created_at = $1",
    ] {
        sqlx::query(table)
            .bind(long_ago)
            .execute(&chat.db)
            .await
            .unwrap();
    }
    let cold = tempfile::tempdir().unwrap();
    let to =
        chat::archive::Destination::parse(&format!("file://{}", cold.path().display())).unwrap();
    let plan = chat::archive::Plan {
        progress: false,
        ..chat::archive::Plan::new(Duration::from_secs(90 * 24 * 3600))
    };
    assert_eq!(
        chat::archive::run(&chat.db, &to, &plan)
            .await
            .unwrap()
            .messages,
        3
    );

    let mut from_the_start = SseReader::open(&chat, &room, &alice, Some("0")).await;
    let reset = from_the_start.next(WAIT).await.unwrap();
    assert_eq!(reset.event.as_deref(), Some("reset"));
    assert_eq!(
        reset.json(),
        serde_json::json!({ "last_seq": 3, "reason": "archived" })
    );
    let mut from_the_end = SseReader::open(&chat, &room, &alice, Some("3")).await;
    let posted = chat.say(&room, &alice, "four").await;
    assert_eq!(
        from_the_end.next(WAIT).await.unwrap().json()["id"],
        posted["id"]
    );
    assert_eq!(
        from_the_start.next(WAIT).await.unwrap().json()["id"],
        posted["id"]
    );
}

/// Every numbered event a stream replays from the room's start.
async fn replay(
    chat: &crate::helpers::TestChat,
    room: &str,
    user: &crate::helpers::TestUser,
) -> Vec<crate::helpers::Sse> {
    let mut stream = SseReader::open(chat, room, user, Some("0")).await;
    let mut all = Vec::new();
    while let Some(event) = stream.next(Duration::from_millis(800)).await {
        all.push(event);
    }
    all
}

async fn a_deleted_message_leaves_only_a_tombstone_in_what_a_stream_replays(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let (alice, bob) = (chat.user("alice"), chat.user("bob"));
    let room = chat.room(&alice, "general").await;
    let secret = chat
        .say(&room, &alice, "the secret is 4711 https://secret.example/")
        .await;
    let id = secret["id"].as_str().unwrap();
    chat.publish(&CardCreated {
        message_id: id.into(),
        room_id: room.clone(),
        url: "https://secret.example/".into(),
        title: "Secret page title".into(),
        description: None,
        image: None,
        created_at: now_rfc3339(),
    })
    .await;
    crate::helpers::eventually(WAIT, "the card", || async {
        let page = chat
            .get_json(&format!("/v1/rooms/{room}/messages"), &alice)
            .await;
        (page["messages"][0]["cards"].as_array()?.len() == 1).then_some(())
    })
    .await;
    let path = format!("/v1/rooms/{room}/messages/{id}");
    let edited = chat
        .patch(
            &path,
            &alice,
            &serde_json::json!({ "text": "the secret is 0815" }),
        )
        .await;
    assert_eq!(edited.status(), 200);
    chat.say(&room, &alice, "kept").await;
    assert_eq!(chat.delete(&path, &alice).await.status(), 204);

    chat.join(&room, &bob).await;
    let events = replay(&chat, &room, &bob).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "message_deleted",
            "message_deleted",
            "message_deleted",
            "message",
            "message_deleted"
        ],
        "the message, its card and its edit are tombstones; the other message stays"
    );
    for event in &events {
        for leaked in ["4711", "0815", "Secret page title", "secret.example"] {
            assert!(
                !event.data.contains(leaked),
                "{leaked} replayed in {}",
                event.data
            );
        }
    }
    let page: Value = chat
        .get_json(&format!("/v1/rooms/{room}/messages"), &bob)
        .await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
}

async fn an_edit_replaces_the_text_every_replay_shows(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let alice = chat.user("alice");
    let room = chat.room(&alice, "general").await;
    let sent = chat.say(&room, &alice, "frist!").await;
    let path = format!("/v1/rooms/{room}/messages/{}", sent["id"].as_str().unwrap());
    for text in ["first!", "first."] {
        let edited = chat
            .patch(&path, &alice, &serde_json::json!({ "text": text }))
            .await;
        assert_eq!(edited.status(), 200);
    }
    let events = replay(&chat, &room, &alice).await;
    assert_eq!(events.len(), 3);
    for event in &events {
        assert_eq!(event.json()["text"], "first.", "{}", event.data);
    }
}

/// The room's history, oldest first: every message id, by pages.
async fn history(chat: &crate::helpers::TestChat, room: &str, user: &TestUser) -> Vec<String> {
    let mut ids = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let cursor = before.map_or(String::new(), |b| format!("&before={b}"));
        let page = chat
            .get_json(
                &format!("/v1/rooms/{room}/messages?limit=100{cursor}"),
                user,
            )
            .await;
        for message in page["messages"].as_array().unwrap() {
            ids.push(message["id"].as_str().unwrap().to_owned());
        }
        match page["next_before"].as_i64() {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    ids.reverse();
    ids
}

/// Follows `url` until it has seen `count` messages, dropping the stream
/// every `reconnect_every` and resuming with `Last-Event-ID`; the message
/// ids in the order seen (SSE ids checked to rise strictly).
async fn follow(
    client: reqwest::Client,
    url: String,
    user: TestUser,
    count: usize,
    reconnect_every: usize,
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut last_id: Option<String> = None;
    let mut last_seq = 0;
    while seen.len() < count {
        let mut stream = SseReader::open_url(&client, &url, &user, last_id.as_deref()).await;
        let mut this_time = 0;
        while seen.len() < count && this_time < reconnect_every {
            let event = stream
                .next(Duration::from_secs(30))
                .await
                .unwrap_or_else(|| panic!("a reader stalled after {} messages", seen.len()));
            let seq: i64 = event.id.as_deref().unwrap().parse().unwrap();
            assert!(seq > last_seq, "ids rise: {seq} after {last_seq}");
            last_seq = seq;
            last_id = event.id.clone();
            if event.event.as_deref() == Some("message") {
                seen.push(event.json()["id"].as_str().unwrap().to_owned());
                this_time += 1;
            }
        }
    }
    seen
}

async fn a_reader_of_the_live_stream_never_misses_or_reorders_a_message(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let stop = dozen_runtime::shutdown::Shutdown::new();
    let other = chat.another_instance(&stop).await;
    let writers: Vec<TestUser> = (0..4).map(|n| chat.user(&format!("writer{n}"))).collect();
    let readers: Vec<TestUser> = (0..4).map(|n| chat.user(&format!("reader{n}"))).collect();
    let room = chat.room(&writers[0], "busy").await;
    let elsewhere = chat.room(&writers[0], "elsewhere").await;
    for user in writers.iter().skip(1).chain(&readers) {
        chat.join(&room, user).await;
    }
    for user in writers.iter().skip(1) {
        chat.join(&elsewhere, user).await;
    }
    const EACH: usize = 30;
    let total = EACH * writers.len();
    let instances = [chat.address.clone(), other.clone()];
    let mut following = Vec::new();
    for (n, reader) in readers.iter().enumerate() {
        let url = format!("{}/v1/rooms/{room}/events", instances[n % 2]);
        // Two readers hold on; two drop their stream every 17 messages and resume.
        let reconnect_every = if n < 2 { usize::MAX } else { 17 };
        following.push(tokio::spawn(follow(
            chat.client.clone(),
            url,
            reader.clone(),
            total,
            reconnect_every,
        )));
    }
    // Let the streams open before the posts start.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut posting = Vec::new();
    for (n, writer) in writers.iter().enumerate() {
        let (client, writer) = (chat.client.clone(), writer.clone());
        let (room, elsewhere) = (room.clone(), elsewhere.clone());
        let instances = instances.clone();
        posting.push(tokio::spawn(async move {
            for k in 0..EACH {
                // Each post to either instance, with one to another room between.
                for (target, text) in [
                    (&room, format!("{n}-{k}")),
                    (&elsewhere, format!("noise {n}-{k}")),
                ] {
                    let answer = client
                        .post(format!(
                            "{}/v1/rooms/{target}/messages",
                            instances[(n + k) % 2]
                        ))
                        .bearer_auth(&writer.token)
                        .json(&serde_json::json!({ "text": text }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(answer.status(), 201);
                }
            }
        }));
    }
    for post in posting {
        post.await.unwrap();
    }
    let history = history(&chat, &room, &readers[0]).await;
    assert_eq!(history.len(), total, "every post is in the history");
    for (n, reader) in following.into_iter().enumerate() {
        let seen = reader.await.unwrap();
        assert_eq!(
            seen, history,
            "reader {n} saw every message once, in the history's order"
        );
    }
    stop.trigger();
}

/// A counter of the instance's `/metrics`.
async fn counter(chat: &TestChat, name: &str) -> u64 {
    let sample = format!("{name}_total");
    dozen_testing::metrics::scrape(&chat.client, &chat.url("/metrics"), &sample)
        .await
        .unwrap_or_else(|| panic!("{sample} in /metrics")) as u64
}

/// The feed's and the streams' own queries so far.
async fn reads(chat: &TestChat) -> (u64, u64) {
    (
        counter(chat, "chat_live_feed_reads").await,
        counter(chat, "chat_live_catch_up_reads").await,
    )
}

async fn an_idle_stream_costs_no_query_and_a_post_is_read_once_for_every_stream_of_its_room(
    backend: Backend,
) {
    const STREAMS: usize = 8;
    let chat = spawn_chat(backend).await;
    let users: Vec<TestUser> = (0..4).map(|n| chat.user(&format!("reader{n}"))).collect();
    let room = chat.room(&users[0], "watched").await;
    let other_room = chat.room(&users[0], "unwatched").await;
    for user in &users[1..] {
        chat.join(&room, user).await;
    }
    let mut streams = Vec::new();
    for n in 0..STREAMS {
        streams.push(SseReader::open(&chat, &room, &users[n % users.len()], None).await);
    }
    // Once every stream has shown a first post, all have caught up.
    chat.say(&room, &users[0], "first").await;
    for stream in &mut streams {
        let shown = stream
            .next_of("message", WAIT)
            .await
            .expect("the message on the stream");
        assert_eq!(shown.json()["text"], "first");
    }
    let caught_up = reads(&chat).await;

    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(reads(&chat).await, caught_up, "idle streams read nothing");

    chat.say(&other_room, &users[0], "elsewhere").await;
    for stream in &mut streams {
        assert!(
            stream.next(Duration::from_millis(300)).await.is_none(),
            "a post in another room reaches no stream of this one"
        );
    }
    assert_eq!(reads(&chat).await, caught_up, "and wakes none of them");

    chat.say(&room, &users[1], "second").await;
    for stream in &mut streams {
        let shown = stream
            .next_of("message", WAIT)
            .await
            .expect("the message on the stream");
        assert_eq!(shown.json()["text"], "second");
    }
    let (feed, catch_up) = reads(&chat).await;
    assert_eq!(catch_up, caught_up.1, "no stream read for itself");
    assert!(
        (1..STREAMS as u64).contains(&(feed - caught_up.0)),
        "the post was read for all {STREAMS} streams at once, not once each: {} reads",
        feed - caught_up.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_gets_posts_from_another_instance_while_the_cache_is_down_and_after() {
    let Some(mut redis) = dozen_testing::ChildServer::redis() else {
        return;
    };
    let Some(chat) = spawn(Setup {
        cache: CacheBackend::RedisOn(redis.port()),
        ..Setup::new(Backend::Sqlite)
    })
    .await
    else {
        return;
    };
    let stop = dozen_runtime::shutdown::Shutdown::new();
    let other = chat.another_instance(&stop).await;
    let (alice, bob) = (chat.user("alice"), chat.user("bob"));
    let room = chat.room(&alice, "general").await;
    chat.join(&room, &bob).await;
    let mut stream = SseReader::open(&chat, &room, &alice, None).await;
    let post = |text: &'static str| {
        let (client, url, token) = (
            chat.client.clone(),
            format!("{other}/v1/rooms/{room}/messages"),
            bob.token.clone(),
        );
        async move {
            let answer = client
                .post(url)
                .bearer_auth(token)
                .json(&serde_json::json!({ "text": text }))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 201);
        }
    };
    post("with the cache").await;
    let shown = stream
        .next_of("message", WAIT)
        .await
        .expect("the message on the stream");
    assert_eq!(shown.json()["text"], "with the cache");

    redis.stop();
    post("without it").await;
    let shown = stream
        .next_of("message", WAIT)
        .await
        .expect("the message on the stream");
    assert_eq!(
        shown.json()["text"],
        "without it",
        "the room's feed reads the database while it cannot hear the other instance"
    );

    redis.start();
    post("with it again").await;
    let shown = stream
        .next_of("message", WAIT)
        .await
        .expect("the message on the stream");
    assert_eq!(shown.json()["text"], "with it again");
    stop.trigger();
}

dozen_testing::on_every_database!(
    an_idle_stream_costs_no_query_and_a_post_is_read_once_for_every_stream_of_its_room,
    a_reader_of_the_live_stream_never_misses_or_reorders_a_message,
    the_live_stream_shows_new_messages_and_the_cards_attached_to_them,
    a_stream_resumed_with_last_event_id_misses_nothing_and_repeats_nothing,
    a_deleted_message_is_announced_on_the_stream,
    a_stream_resumed_past_the_rooms_end_is_told_to_reload_and_goes_on,
    a_stream_resumed_from_before_what_the_archive_kept_is_told_to_reload,
    a_deleted_message_leaves_only_a_tombstone_in_what_a_stream_replays,
    an_edit_replaces_the_text_every_replay_shows,
);
