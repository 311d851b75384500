use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_chat, Backend};

async fn a_created_room_has_its_creator_as_its_only_member(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let alice = chat.user("alice");
    let response = chat
        .post("/v1/rooms", &alice, &json!({ "name": "  general  " }))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let room: Value = response.json().await.unwrap();
    assert_eq!(room["name"], "general");
    assert_eq!(room["created_by"], alice.id.as_str());
    assert_eq!(room["members"], 1);
    assert_eq!(room["joined"], true);
    assert_eq!(room["member_list"][0]["id"], alice.id.as_str());

    let shown: Value = chat
        .get(
            &format!("/v1/rooms/{}", room["id"].as_str().unwrap()),
            &alice,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown, room);
}

async fn rooms_joined_come_first_then_the_newest_others_each_saying_which(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let (alice, bob) = (chat.user("alice"), chat.user("bob"));
    let first = chat.room(&alice, "first").await;
    let second = chat.room(&bob, "second").await;
    let third = chat.room(&alice, "third").await;
    let listed: Value = chat.get_json("/v1/rooms", &alice).await;
    let rooms = listed["rooms"].as_array().unwrap();
    let ids: Vec<&str> = rooms.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [third.as_str(), first.as_str(), second.as_str()]);
    let joined: Vec<bool> = rooms
        .iter()
        .map(|r| r["joined"].as_bool().unwrap())
        .collect();
    assert_eq!(joined, [true, true, false]);
}

async fn a_member_sees_their_rooms_however_many_others_there_are(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let (alice, bob) = (chat.user("alice"), chat.user("bob"));
    let old = chat.room(&alice, "my old room").await;
    for n in 0..205 {
        chat.room(&bob, &format!("spam {n}")).await;
    }
    let listed: Value = chat.get_json("/v1/rooms", &alice).await;
    let rooms = listed["rooms"].as_array().unwrap();
    assert_eq!(rooms[0]["id"], old.as_str(), "her own room, first");
    assert_eq!(rooms.len(), 1 + 200, "hers, and the 200 newest others");
    assert_eq!(rooms[1]["name"], "spam 204");
}

async fn joining_a_room_twice_makes_one_membership(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let (alice, bob) = (chat.user("alice"), chat.user("bob"));
    let room = chat.room(&alice, "general").await;
    chat.join(&room, &bob).await;
    chat.join(&room, &bob).await;
    let shown: Value = chat.get_json(&format!("/v1/rooms/{room}"), &bob).await;
    assert_eq!(shown["members"], 2);
    assert_eq!(shown["joined"], true);
}

async fn a_room_name_is_taken_once_whatever_its_case_or_composition(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let alice = chat.user("alice");
    chat.room(&alice, "Général").await;
    for same in ["Général", "GÉNÉRAL", "ge\u{301}ne\u{301}ral", "  général  "] {
        let again = chat
            .post("/v1/rooms", &alice, &json!({ "name": same }))
            .await;
        assert_eq!(again.status(), StatusCode::CONFLICT, "{same:?}");
        let body: Value = again.json().await.unwrap();
        assert_eq!(body["error"]["code"], "room_name_taken");
    }
    // A decomposed name is kept composed, as one name.
    let created: Value = chat
        .post("/v1/rooms", &alice, &json!({ "name": "Cafe\u{301}" }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created["name"], "Café");
}

async fn the_api_also_answers_under_its_public_route_as_a_load_balancer_sends_it(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let alice = chat.user("alice");
    chat.room(&alice, "general").await;
    let direct: Value = chat.get_json("/v1/rooms", &alice).await;
    let routed: Value = chat
        .get_json(&format!("{}/v1/rooms", chat::manifest::ROUTE), &alice)
        .await;
    assert_eq!(routed, direct);
    assert_eq!(routed["rooms"].as_array().unwrap().len(), 1);
}

dozen_testing::on_every_database!(
    the_api_also_answers_under_its_public_route_as_a_load_balancer_sends_it,
    a_created_room_has_its_creator_as_its_only_member,
    rooms_joined_come_first_then_the_newest_others_each_saying_which,
    a_member_sees_their_rooms_however_many_others_there_are,
    joining_a_room_twice_makes_one_membership,
    a_room_name_is_taken_once_whatever_its_case_or_composition,
);
