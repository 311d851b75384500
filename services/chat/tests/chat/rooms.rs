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

async fn rooms_are_listed_newest_first_saying_which_the_caller_joined(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let (alice, bob) = (chat.user("alice"), chat.user("bob"));
    let first = chat.room(&alice, "first").await;
    let second = chat.room(&bob, "second").await;
    let listed: Value = chat.get_json("/v1/rooms", &alice).await;
    let rooms = listed["rooms"].as_array().unwrap();
    let ids: Vec<&str> = rooms.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [second.as_str(), first.as_str()]);
    assert_eq!(rooms[0]["joined"], false);
    assert_eq!(rooms[1]["joined"], true);
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

async fn a_room_name_is_taken_once(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let alice = chat.user("alice");
    chat.room(&alice, "general").await;
    let again = chat
        .post("/v1/rooms", &alice, &json!({ "name": "general" }))
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"]["code"], "room_name_taken");
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
    rooms_are_listed_newest_first_saying_which_the_caller_joined,
    joining_a_room_twice_makes_one_membership,
    a_room_name_is_taken_once,
);
