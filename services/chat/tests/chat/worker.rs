use std::time::Duration;

use dozen_bus::Event;
use dozen_events::contract::examples;
use dozen_events::{CardCreated, UserSignedUp};
use dozen_runtime::clock::now_rfc3339;
use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_chat, Backend, SseReader, TestChat, TestUser};

const WAIT: Duration = Duration::from_secs(20);

/// Waits until every event published to chat's subscriptions is handled,
/// and checks none went to the dead-letter queue.
async fn all_handled(chat: &TestChat) {
    eventually(WAIT, "chat's queues to empty", || async {
        let stats = chat.bus.subscriptions().await.unwrap();
        let mine: Vec<_> = stats
            .iter()
            .filter(|s| s.name.starts_with("chat."))
            .collect();
        assert!(mine.iter().all(|s| s.dead_letters == 0), "{mine:?}");
        mine.iter()
            .all(|s| s.depth == 0 && s.in_flight == 0)
            .then_some(())
    })
    .await;
}

async fn signups_from_the_schema_examples_fill_chats_directory(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let signups = examples::<UserSignedUp>();
    assert!(!signups.is_empty());
    for signed_up in &signups {
        let user = TestUser {
            id: signed_up.user_id.clone(),
            username: signed_up.username.clone(),
            token: chat
                .signer
                .issue(&signed_up.user_id, "from-token")
                .unwrap()
                .token,
        };
        let room = chat
            .room(&user, &format!("room of {}", user.username))
            .await;
        chat.publish(signed_up).await;
        let path = format!("/v1/rooms/{room}");
        eventually(WAIT, "the username from the event", || async {
            let room: Value = chat.get_json(&path, &user).await;
            (room["member_list"][0]["username"] == json!(signed_up.username)).then_some(())
        })
        .await;
        // The directory's name, not the token's, signs messages from now on.
        let sent = chat.say(&room, &user, "hello").await;
        assert_eq!(sent["author"]["username"], json!(signed_up.username));
    }
}

async fn cards_from_the_schema_examples_for_unknown_messages_are_dropped_without_dead_letters(
    backend: Backend,
) {
    let chat = spawn_chat(backend).await;
    for card in examples::<CardCreated>() {
        chat.publish(&card).await;
    }
    all_handled(&chat).await;
}

fn card_for(message: &Value) -> CardCreated {
    CardCreated {
        message_id: message["id"].as_str().unwrap().into(),
        room_id: message["room_id"].as_str().unwrap().into(),
        url: "https://example.com/".into(),
        title: "Example".into(),
        description: None,
        image: Some("https://example.com/i.png".into()),
        created_at: now_rfc3339(),
    }
}

async fn a_card_event_delivered_twice_attaches_one_card_and_announces_it_once(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let alice = chat.user("alice");
    let room = chat.room(&alice, "general").await;
    let sent = chat.say(&room, &alice, "https://example.com/").await;
    let mut stream = SseReader::open(&chat, &room, &alice, None).await;
    let event = Event::new("cards", &card_for(&sent)).unwrap();
    chat.publish_event(&event).await;
    chat.publish_event(&event).await;
    all_handled(&chat).await;

    let announced = stream.next(WAIT).await.unwrap();
    assert_eq!(announced.event.as_deref(), Some("card"));
    assert!(stream.next(Duration::from_millis(600)).await.is_none());
    let page: Value = chat
        .get_json(&format!("/v1/rooms/{room}/messages"), &alice)
        .await;
    assert_eq!(page["messages"][0]["cards"].as_array().unwrap().len(), 1);
}

async fn a_card_for_a_deleted_message_is_dropped(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let alice = chat.user("alice");
    let room = chat.room(&alice, "general").await;
    let sent = chat.say(&room, &alice, "https://example.com/").await;
    chat.delete(
        &format!("/v1/rooms/{room}/messages/{}", sent["id"].as_str().unwrap()),
        &alice,
    )
    .await;
    chat.publish(&card_for(&sent)).await;
    all_handled(&chat).await;
    let cards: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cards")
        .fetch_one(&chat.db)
        .await
        .unwrap();
    assert_eq!(cards, 0);
}

dozen_testing::on_every_database!(
    signups_from_the_schema_examples_fill_chats_directory,
    cards_from_the_schema_examples_for_unknown_messages_are_dropped_without_dead_letters,
    a_card_event_delivered_twice_attaches_one_card_and_announces_it_once,
    a_card_for_a_deleted_message_is_dropped,
);
