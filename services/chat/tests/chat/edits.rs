//! Editing a message, and posting one again with the same client id.

use std::time::Duration;

use dozen_events::{CardCreated, MessageEdited};
use dozen_runtime::clock::now_rfc3339;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_chat, Backend, Listener, SseReader};

const WAIT: Duration = Duration::from_secs(20);

async fn the_author_edits_a_message_everywhere_it_shows_and_no_one_else_may(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let (alice, bob, carol) = (chat.user("alice"), chat.user("bob"), chat.user("carol"));
    let mallory = chat.user("mallory");
    let mut edits = Listener::<MessageEdited>::start(&chat, "test.message_edited").await;
    let room = chat.room(&alice, "general").await;
    chat.join(&room, &bob).await;
    // Only members are mentioned: carol is one, known by her token (her
    // signup event has not reached chat), so the edit may mention her.
    chat.join(&room, &carol).await;
    let sent = chat
        .say(&room, &alice, "see https://old.example/ @bob")
        .await;
    let id = sent["id"].as_str().unwrap();
    let path = format!("/v1/rooms/{room}/messages/{id}");
    // The old link had a card; the edit drops it.
    chat.publish(&CardCreated {
        message_id: id.into(),
        room_id: room.clone(),
        url: "https://old.example/".into(),
        title: "Old".into(),
        description: None,
        image: None,
        created_at: now_rfc3339(),
    })
    .await;
    crate::helpers::eventually(WAIT, "the card", || async {
        let page = chat
            .get_json(&format!("/v1/rooms/{room}/messages"), &bob)
            .await;
        (page["messages"][0]["cards"].as_array()?.len() == 1).then_some(())
    })
    .await;
    let mut stream = SseReader::open(&chat, &room, &bob, None).await;

    for (who, code) in [(&bob, "not_the_author"), (&mallory, "not_a_member")] {
        let refused = chat.patch(&path, who, &json!({ "text": "hijacked" })).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            refused.json::<Value>().await.unwrap()["error"]["code"],
            code
        );
    }
    let edited = chat
        .patch(
            &path,
            &alice,
            &json!({ "text": "  see https://new.example/ @carol  " }),
        )
        .await;
    assert_eq!(edited.status(), StatusCode::OK);
    let edited: Value = edited.json().await.unwrap();
    assert_eq!(edited["id"], sent["id"]);
    assert_eq!(
        edited["seq"], sent["seq"],
        "an edit keeps the message's place"
    );
    assert_eq!(edited["text"], "see https://new.example/ @carol");
    assert!(edited["edited_at"].is_string());
    assert_eq!(
        edited["cards"],
        json!([]),
        "the card of the removed link is gone"
    );

    let shown = stream.next(WAIT).await.expect("the edit on the stream");
    assert_eq!(shown.event.as_deref(), Some("message_edited"));
    assert_eq!(shown.json(), edited);
    let page: Value = chat
        .get_json(&format!("/v1/rooms/{room}/messages"), &bob)
        .await;
    assert_eq!(
        page["messages"],
        json!([edited]),
        "history holds only the new text"
    );

    let event = edits.next(WAIT).await;
    assert_eq!(event.message_id, id);
    assert_eq!(event.text, "see https://new.example/ @carol");
    assert_eq!(event.mentions, ["carol"]);
    assert_eq!(event.urls, ["https://new.example/"]);
    assert_eq!(event.sent_at, sent["sent_at"].as_str().unwrap());

    // The same text again changes nothing and tells no one.
    let again = chat
        .patch(
            &path,
            &alice,
            &json!({ "text": "see https://new.example/ @carol" }),
        )
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap(), edited);
    assert!(!edits.more_within(Duration::from_secs(1)).await);
    assert!(stream.next(Duration::from_millis(600)).await.is_none());

    for bad in [
        json!({}),
        json!({ "text": "   " }),
        json!({ "text": "x".repeat(4001) }),
        json!({ "text": "bell\u{7}" }),
    ] {
        let refused = chat.patch(&path, &alice, &bad).await;
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let nowhere = format!("/v1/rooms/{room}/messages/{}", uuid::Uuid::now_v7());
    assert_eq!(
        chat.patch(&nowhere, &alice, &json!({ "text": "x" }))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        chat.delete(&path, &alice).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        chat.patch(&path, &alice, &json!({ "text": "after" }))
            .await
            .status(),
        StatusCode::NOT_FOUND,
        "a deleted message cannot be edited"
    );
}

async fn a_post_sent_again_with_its_client_id_is_stored_and_announced_once(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let (alice, bob) = (chat.user("alice"), chat.user("bob"));
    let room = chat.room(&alice, "general").await;
    let other = chat.room(&alice, "other").await;
    chat.join(&room, &bob).await;
    let mut stream = SseReader::open(&chat, &room, &bob, None).await;
    let path = format!("/v1/rooms/{room}/messages");
    let body = json!({ "text": "only once", "client_id": "tab-1.msg-42" });

    let first = chat.post(&path, &alice, &body).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["client_id"], "tab-1.msg-42");
    // Retried, concurrently too, as a client that lost the answer would.
    let retries = futures::future::join_all((0..5).map(|_| chat.post(&path, &alice, &body))).await;
    for retry in retries {
        assert_eq!(retry.status(), StatusCode::OK);
        assert_eq!(retry.json::<Value>().await.unwrap(), first);
    }
    // Another author may use the same id: ids are the author's own.
    let bobs = chat.post(&path, &bob, &body).await;
    assert_eq!(bobs.status(), StatusCode::CREATED);

    let page: Value = chat.get_json(&format!("{path}?limit=10"), &alice).await;
    assert_eq!(page["messages"].as_array().unwrap().len(), 2);
    let shown: Vec<String> = [
        stream.next(WAIT).await.unwrap(),
        stream.next(WAIT).await.unwrap(),
    ]
    .iter()
    .map(|e| e.json()["id"].as_str().unwrap().to_owned())
    .collect();
    assert_eq!(shown[0], first["id"].as_str().unwrap());
    assert!(
        stream.next(Duration::from_millis(600)).await.is_none(),
        "no third"
    );

    let elsewhere = chat
        .post(&format!("/v1/rooms/{other}/messages"), &alice, &body)
        .await;
    assert_eq!(elsewhere.status(), StatusCode::CONFLICT);
    assert_eq!(
        elsewhere.json::<Value>().await.unwrap()["error"]["code"],
        "client_id_taken"
    );
    for bad in ["", "has space", "é", &"x".repeat(65)] {
        let refused = chat
            .post(&path, &alice, &json!({ "text": "hi", "client_id": bad }))
            .await;
        assert_eq!(
            refused.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad:?}"
        );
        let body: Value = refused.json().await.unwrap();
        assert!(body["error"]["fields"]["client_id"].is_array(), "{body}");
    }
}

dozen_testing::on_every_database!(
    the_author_edits_a_message_everywhere_it_shows_and_no_one_else_may,
    a_post_sent_again_with_its_client_id_is_stored_and_announced_once,
);
