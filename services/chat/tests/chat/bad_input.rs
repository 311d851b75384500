//! Whatever a caller sends, chat answers 4xx with the JSON error body, never 5xx.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_chat, Backend};

/// (method, path, authorization, content type, body, expected status)
type Case = (
    Method,
    String,
    Option<String>,
    Option<&'static str>,
    String,
    StatusCode,
);

async fn every_endpoint_answers_bad_input_with_a_json_4xx(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let alice = chat.user("alice");
    let room = chat.room(&alice, "general").await;
    let message = chat.say(&room, &alice, "hi").await;
    let message = message["id"].as_str().unwrap();
    let messages = format!("/v1/rooms/{room}/messages");
    let too_long = "x".repeat(4001);
    let bearer = format!("Bearer {}", alice.token);

    let cases: Vec<Case> = vec![
        (
            Method::GET,
            "/v1/rooms".into(),
            None,
            None,
            String::new(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::GET,
            "/v1/rooms".into(),
            Some("Bearer nonsense".into()),
            None,
            String::new(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::GET,
            "/v1/rooms".into(),
            Some(format!("Basic {}", alice.token)),
            None,
            String::new(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::POST,
            "/v1/rooms".into(),
            Some(bearer.clone()),
            Some("application/json"),
            "{".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/v1/rooms".into(),
            Some(bearer.clone()),
            Some("text/plain"),
            r#"{"name":"x"}"#.into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            Method::POST,
            "/v1/rooms".into(),
            Some(bearer.clone()),
            Some("application/json"),
            "{}".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/v1/rooms".into(),
            Some(bearer.clone()),
            Some("application/json"),
            r#"{"name":"   "}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/v1/rooms".into(),
            Some(bearer.clone()),
            Some("application/json"),
            json!({"name": "n".repeat(65)}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/v1/rooms".into(),
            Some(bearer.clone()),
            Some("application/json"),
            r#"{"name":"a\u0000b"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/v1/rooms".into(),
            Some(bearer.clone()),
            Some("application/json"),
            r#"{"name":"\u200b\u200b"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/v1/rooms".into(),
            Some(bearer.clone()),
            Some("application/json"),
            r#"{"name":"evil\u202egpj.exe"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/v1/rooms".into(),
            Some(bearer.clone()),
            Some("application/json"),
            r#"{"name":"a\u2066b\u2069"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            "/v1/rooms".into(),
            Some(bearer.clone()),
            Some("application/json"),
            r#"{"name":7}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::GET,
            "/v1/rooms/not-a-room".into(),
            Some(bearer.clone()),
            None,
            String::new(),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/v1/rooms/%00".into(),
            Some(bearer.clone()),
            None,
            String::new(),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            "/v1/rooms/%00/members".into(),
            Some(bearer.clone()),
            Some("application/json"),
            "{}".into(),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            messages.clone(),
            Some(bearer.clone()),
            Some("application/json"),
            "{}".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            messages.clone(),
            Some(bearer.clone()),
            Some("application/json"),
            json!({"text": ""}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            messages.clone(),
            Some(bearer.clone()),
            Some("application/json"),
            json!({"text": too_long}).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            messages.clone(),
            Some(bearer.clone()),
            Some("application/json"),
            r#"{"text":"nul \u0000 here"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            messages.clone(),
            Some(bearer.clone()),
            Some("application/json"),
            r#"{"text":"\u200b"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            messages.clone(),
            Some(bearer.clone()),
            Some("application/json"),
            r#"{"text":" \u2060\n\u200b "}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            messages.clone(),
            Some(bearer.clone()),
            Some("application/json"),
            r#"{"text":["a"]}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::POST,
            messages.clone(),
            Some(bearer.clone()),
            Some("application/json"),
            "x".repeat(70_000),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            Method::GET,
            format!("{messages}?limit=0"),
            Some(bearer.clone()),
            None,
            String::new(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::GET,
            format!("{messages}?limit=101"),
            Some(bearer.clone()),
            None,
            String::new(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::GET,
            format!("{messages}?limit=abc"),
            Some(bearer.clone()),
            None,
            String::new(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::GET,
            format!("{messages}?before=-1"),
            Some(bearer.clone()),
            None,
            String::new(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::GET,
            format!("{messages}?before=99999999999999999999999"),
            Some(bearer.clone()),
            None,
            String::new(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Method::DELETE,
            format!("{messages}/nope"),
            Some(bearer.clone()),
            None,
            String::new(),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            format!("{messages}/{}", uuid::Uuid::now_v7()),
            Some(bearer.clone()),
            None,
            String::new(),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::PUT,
            format!("{messages}/{message}"),
            Some(bearer.clone()),
            None,
            String::new(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            "/v1/nothing-here".into(),
            Some(bearer.clone()),
            None,
            String::new(),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (method, path, authorization, content_type, body, expected) in cases {
        let mut request = chat
            .client
            .request(method.clone(), chat.url(&path))
            .body(body);
        if let Some(value) = &authorization {
            request = request.header("authorization", value);
        }
        if let Some(value) = content_type {
            request = request.header("content-type", value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let json: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: the body is not JSON: {e}"));
        assert_eq!(status, expected, "{method} {path}: {json}");
        assert!(
            json["error"]["code"].is_string() && json["error"]["message"].is_string(),
            "{method} {path}: {json}"
        );
    }

    for last_event_id in ["abc", "-5", "1.5"] {
        let response = chat
            .client
            .get(chat.url(&format!("/v1/rooms/{room}/events")))
            .bearer_auth(&alice.token)
            .header("last-event-id", last_event_id)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let json: Value = response.json().await.unwrap();
        assert_eq!(json["error"]["code"], "bad_last_event_id");
    }
}

async fn a_message_of_exactly_4000_characters_is_accepted(backend: Backend) {
    let chat = spawn_chat(backend).await;
    let alice = chat.user("alice");
    let room = chat.room(&alice, "general").await;
    // Four thousand characters, many more bytes: the limit counts characters.
    let text = "é".repeat(4000);
    let sent = chat.say(&room, &alice, &text).await;
    assert_eq!(sent["text"].as_str().unwrap().chars().count(), 4000);
}

dozen_testing::on_every_database!(
    every_endpoint_answers_bad_input_with_a_json_4xx,
    a_message_of_exactly_4000_characters_is_accepted,
);
