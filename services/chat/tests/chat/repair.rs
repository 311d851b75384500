//! `chat repair`: derived state broken by hand (as a restore or a lost
//! event leaves it) is computed again from chat's own data.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_chat, Backend};

async fn usernames(db: &sqlx::AnyPool) -> Vec<String> {
    let mut names: Vec<String> = sqlx::query_scalar("SELECT username FROM users")
        .fetch_all(db)
        .await
        .unwrap();
    names.sort();
    names
}

async fn room_numbers_markers_and_names_are_mended_and_a_dry_run_only_counts(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let (alice, bob) = (chat.user("alice"), chat.user("bob"));
    let room = chat.room(&alice, "general").await;
    let quiet = chat.room(&alice, "quiet").await;
    chat.join(&room, &bob).await;
    for text in ["one", "two", "three"] {
        chat.say(&room, &bob, text).await;
    }
    chat.say(&room, &alice, "four").await;
    // What a restore from an older backup, and lost signup events, leave:
    // a room number behind its messages, a read marker past it, no names.
    for statement in [
        "UPDATE rooms SET last_seq = 1 WHERE name = 'general'",
        "UPDATE members SET last_read_seq = 99",
        "DELETE FROM users",
    ] {
        sqlx::query(statement).execute(&chat.db).await.unwrap();
    }

    let dry = chat::repair::run(&chat.db, chat.bus.as_ref(), None, true, |_| {})
        .await
        .unwrap();
    // Both rooms' markers are past the number of 'general' (1) or 'quiet' (0).
    assert_eq!(
        (dry.rooms_renumbered, dry.markers_lowered, dry.users_learned),
        (1, 3, 2)
    );
    assert_eq!(dry.members_unknown, 0, "both would be learned");
    assert!(
        usernames(&chat.db).await.is_empty(),
        "a dry run changes nothing"
    );

    let done = chat::repair::run(&chat.db, chat.bus.as_ref(), None, false, |_| {})
        .await
        .unwrap();
    assert_eq!(
        (
            done.rooms_renumbered,
            done.markers_lowered,
            done.users_learned
        ),
        (1, 3, 2)
    );
    assert_eq!(usernames(&chat.db).await, ["alice", "bob"]);
    let posted = chat
        .post(
            &format!("/v1/rooms/{room}/messages"),
            &alice,
            &json!({ "text": "five" }),
        )
        .await;
    assert_eq!(
        posted.status(),
        StatusCode::CREATED,
        "the next number is free"
    );
    let posted: Value = posted.json().await.unwrap();
    assert_eq!(posted["seq"], 5);
    let rooms = chat.get_json("/v1/rooms", &bob).await;
    let general = rooms["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == room)
        .unwrap();
    assert_eq!(
        (general["last_read_seq"].clone(), general["unread"].clone()),
        (json!(4), json!(1)),
        "bob's marker is back at the room's end before alice's new message"
    );
    let quiet_room = chat.get_json(&format!("/v1/rooms/{quiet}"), &alice).await;
    assert_eq!(quiet_room["last_read_seq"], 0);

    let again = chat::repair::run(&chat.db, chat.bus.as_ref(), None, false, |_| {})
        .await
        .unwrap();
    assert_eq!(
        (
            again.rooms_renumbered,
            again.markers_lowered,
            again.users_learned
        ),
        (0, 0, 0),
        "a second run finds nothing to mend"
    );
}

dozen_testing::on_every_database!(
    room_numbers_markers_and_names_are_mended_and_a_dry_run_only_counts,
);
