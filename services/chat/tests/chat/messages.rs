use std::time::Duration;

use dozen_events::MessageSent;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_chat, Backend, Listener};

async fn a_member_posts_a_message_and_reads_it_back(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let alice = chat.user("alice");
    let room = chat.room(&alice, "general").await;
    let sent = chat.say(&room, &alice, "  hello, room  ").await;
    assert_eq!(sent["text"], "hello, room");
    assert_eq!(sent["author"]["id"], alice.id.as_str());
    assert_eq!(sent["author"]["username"], "alice");
    assert_eq!(sent["room_id"], room.as_str());
    let page: Value = chat
        .get_json(&format!("/v1/rooms/{room}/messages"), &alice)
        .await;
    assert_eq!(page["messages"], json!([sent]));
    assert_eq!(page["next_before"], Value::Null);
}

async fn only_members_read_or_post_in_a_room(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let (alice, mallory) = (chat.user("alice"), chat.user("mallory"));
    let room = chat.room(&alice, "private").await;
    let path = format!("/v1/rooms/{room}/messages");
    for response in [
        chat.get(&path, &mallory).await,
        chat.post(&path, &mallory, &json!({ "text": "hi" })).await,
        chat.get(&format!("/v1/rooms/{room}/events"), &mallory)
            .await,
    ] {
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_a_member");
    }
    let nowhere = format!("/v1/rooms/{}/messages", uuid::Uuid::now_v7());
    assert_eq!(
        chat.get(&nowhere, &alice).await.status(),
        StatusCode::NOT_FOUND
    );
}

async fn pages_run_newest_first_and_messages_posted_meanwhile_do_not_shift_them(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let alice = chat.user("alice");
    let room = chat.room(&alice, "general").await;
    for n in 1..=7 {
        chat.say(&room, &alice, &format!("message {n}")).await;
    }
    let path = format!("/v1/rooms/{room}/messages");
    let first: Value = chat.get_json(&format!("{path}?limit=3"), &alice).await;
    let texts = |page: &Value| -> Vec<String> {
        page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(texts(&first), ["message 7", "message 6", "message 5"]);
    // New messages arrive between page requests; the next pages are unmoved.
    chat.say(&room, &alice, "message 8").await;
    let cursor = first["next_before"].as_i64().unwrap();
    let second: Value = chat
        .get_json(&format!("{path}?limit=3&before={cursor}"), &alice)
        .await;
    assert_eq!(texts(&second), ["message 4", "message 3", "message 2"]);
    let cursor = second["next_before"].as_i64().unwrap();
    let last: Value = chat
        .get_json(&format!("{path}?limit=3&before={cursor}"), &alice)
        .await;
    assert_eq!(texts(&last), ["message 1"]);
    assert_eq!(last["next_before"], Value::Null);
}

async fn the_author_may_delete_their_message_and_no_one_else_may(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let (alice, bob) = (chat.user("alice"), chat.user("bob"));
    let room = chat.room(&alice, "general").await;
    chat.join(&room, &bob).await;
    let sent = chat.say(&room, &alice, "oops").await;
    let path = format!("/v1/rooms/{room}/messages/{}", sent["id"].as_str().unwrap());
    let by_bob = chat.delete(&path, &bob).await;
    assert_eq!(by_bob.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        by_bob.json::<Value>().await.unwrap()["error"]["code"],
        "not_the_author"
    );
    assert_eq!(
        chat.delete(&path, &alice).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        chat.delete(&path, &alice).await.status(),
        StatusCode::NOT_FOUND
    );
    let page: Value = chat
        .get_json(&format!("/v1/rooms/{room}/messages"), &alice)
        .await;
    assert_eq!(page["messages"], json!([]));
}

async fn a_message_emits_message_sent_with_its_mentions_and_urls_as_the_contract_says(
    backend: Backend,
) {
    let chat = spawn_chat(backend).await;
    let (alice, bob, carol) = (chat.user("alice"), chat.user("bob"), chat.user("carol"));
    chat.known(&[&alice, &bob, &carol]).await;
    let mut listener = Listener::<MessageSent>::start(&chat, "test.message_sent").await;
    let room = chat.room(&alice, "general").await;
    chat.join(&room, &bob).await;
    chat.join(&room, &carol).await;
    let message = chat
        .say(
            &room,
            &alice,
            "@bob look at https://example.com/a, and @carol: http://example.org. @bob!",
        )
        .await;
    let sent = listener.next(Duration::from_secs(20)).await;
    assert_eq!(sent.message_id, message["id"].as_str().unwrap());
    assert_eq!(sent.room_id, room);
    assert_eq!(sent.author_id, alice.id);
    assert_eq!(sent.author_username, "alice");
    assert_eq!(sent.mentions, ["bob", "carol"]);
    assert_eq!(sent.urls, ["https://example.com/a", "http://example.org/"]);
}

async fn a_mention_names_only_members_of_the_room_and_never_comes_from_a_link(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let (alice, bob, carol) = (chat.user("alice"), chat.user("bob"), chat.user("carol"));
    chat.known(&[&alice, &bob, &carol]).await;
    let mut listener = Listener::<MessageSent>::start(&chat, "test.mentions").await;
    let room = chat.room(&alice, "no carol here").await;
    chat.join(&room, &bob).await;
    for (text, mentioned) in [
        (
            "this thread https://social.example/@carol/1099 is for @bob",
            vec!["bob"],
        ),
        ("@carol you are not in this room", vec![]),
        ("write to carol@example.com, @BOB", vec!["bob"]),
        ("@nobody_known and @alice", vec!["alice"]),
    ] {
        chat.say(&room, &alice, text).await;
        assert_eq!(
            listener.next(Duration::from_secs(20)).await.mentions,
            mentioned,
            "{text}"
        );
    }
}

dozen_testing::on_every_database!(
    a_member_posts_a_message_and_reads_it_back,
    only_members_read_or_post_in_a_room,
    pages_run_newest_first_and_messages_posted_meanwhile_do_not_shift_them,
    the_author_may_delete_their_message_and_no_one_else_may,
    a_message_emits_message_sent_with_its_mentions_and_urls_as_the_contract_says,
    a_mention_names_only_members_of_the_room_and_never_comes_from_a_link,
);
