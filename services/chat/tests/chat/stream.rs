use std::time::Duration;

use dozen_events::CardCreated;
use dozen_runtime::clock::now_rfc3339;
use serde_json::Value;

use crate::helpers::{spawn_chat, Backend, SseReader};

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

dozen_testing::on_every_database!(
    the_live_stream_shows_new_messages_and_the_cards_attached_to_them,
    a_stream_resumed_with_last_event_id_misses_nothing_and_repeats_nothing,
    a_deleted_message_is_announced_on_the_stream,
);
