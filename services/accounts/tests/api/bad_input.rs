//! Bad input of every kind gets a 4xx with the JSON error body, never a 5xx.

use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{error_code, spawn_app, spawn_app_with, Backend};

#[tokio::test]
async fn malformed_json_answers_400_with_the_error_body() {
    let app = spawn_app(Backend::Sqlite).await;
    for body in ["{", "{\"username\": }", "not json", r#"{"a":1,}"#, "\u{0}"] {
        for path in ["/v1/users", "/v1/sessions"] {
            let response = app
                .post_raw(path, Some("application/json"), body.to_owned())
                .await;
            assert_eq!(
                response.status(),
                StatusCode::BAD_REQUEST,
                "{path} {body:?}"
            );
            assert_eq!(error_code(response).await, "bad_request");
        }
    }
}

#[tokio::test]
async fn json_of_the_wrong_shape_answers_422_with_the_error_body() {
    let app = spawn_app(Backend::Sqlite).await;
    for body in [
        "[]",
        "42",
        "null",
        r#"{"username": 7, "email": [], "password": {}}"#,
    ] {
        let response = app
            .post_raw("/v1/users", Some("application/json"), body.to_owned())
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        error_code(response).await;
    }
}

#[tokio::test]
async fn a_wrong_content_type_answers_415_with_the_error_body() {
    let app = spawn_app(Backend::Sqlite).await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let body = r#"{"username":"a","email":"b","password":"c"}"#.to_owned();
        let response = app.post_raw("/v1/users", content_type, body).await;
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert_eq!(error_code(response).await, "unsupported_media_type");
    }
}

#[tokio::test]
async fn an_oversized_body_answers_413_with_the_error_body() {
    let app = spawn_app(Backend::Sqlite).await;
    let huge = format!(r#"{{"username":"{}"}}"#, "x".repeat(200 * 1024));
    let response = app
        .post_raw("/v1/users", Some("application/json"), huge)
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(response).await, "payload_too_large");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_404_and_405_with_the_error_body() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.client.get(app.url("/v1/nothing")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(response).await, "not_found");
    let response = app
        .client
        .delete(app.url("/v1/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(response.headers().contains_key("allow"));
    assert_eq!(error_code(response).await, "method_not_allowed");
}

#[tokio::test]
async fn a_request_slower_than_the_timeout_is_cut_with_the_error_body() {
    let app = spawn_app_with(Backend::Sqlite, |settings| {
        settings.process.http.request_timeout = Duration::from_millis(300);
    })
    .await;
    // Send the headers and half the body, then stall past the timeout.
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let body = r#"{"username":"slow","password":"slow password"}"#;
    let head = format!(
        "POST /v1/sessions HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body.as_bytes()[..10]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .expect("answered within the timeout and closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains(r#""code":"service_unavailable""#),
        "{answer}"
    );
}
