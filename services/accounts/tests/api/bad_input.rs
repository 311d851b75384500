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

/// Sends `request` as raw bytes (the parts a client library would refuse
/// to send) and reads the whole answer: its status and body.
async fn raw(address: &str, request: &[u8]) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(address.trim_start_matches("http://"))
        .await
        .unwrap();
    // The server may answer (and close) before it has read all of it.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// What the HTTP parser refuses before any route sees it — too long a URI,
/// too large a header block, a request line or a header that is not HTTP —
/// gets the JSON error body too.
#[tokio::test]
async fn what_the_http_parser_refuses_answers_with_the_error_body() {
    let app = spawn_app(Backend::Sqlite).await;
    let id = "x".repeat(100_000);
    let query = "q=".to_owned() + &"y".repeat(100 * 1024);
    let header = "z".repeat(1024 * 1024);
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            format!("GET /v1/users/{id} HTTP/1.1\r\nhost: t\r\n\r\n").into_bytes(),
            414,
            "uri_too_long",
        ),
        (
            format!("GET /v1/users/me?{query} HTTP/1.1\r\nhost: t\r\n\r\n").into_bytes(),
            414,
            "uri_too_long",
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nhost: t\r\nx-big: {header}\r\n\r\n").into_bytes(),
            431,
            "request_header_fields_too_large",
        ),
        (
            format!(
                "GET /healthz HTTP/1.1\r\nhost: t\r\n{}\r\n",
                "x-many: y\r\n".repeat(200)
            )
            .into_bytes(),
            431,
            "request_header_fields_too_large",
        ),
        (
            b"G\x01T /healthz HTTP/1.1\r\nhost: t\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nbad header line\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            b"GET /healthz HTTP/7.0\r\nhost: t\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
    ];
    for (request, status, code) in cases {
        let shown = String::from_utf8_lossy(&request[..request.len().min(40)]).into_owned();
        let (got, head, body) = raw(&app.address, &request).await;
        assert_eq!(got, status, "{shown:?}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{shown:?}: {head}"
        );
        let body: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{shown:?}: {e}: {body:?}"));
        assert_eq!(body["error"]["code"], code, "{shown:?}");
        assert!(body["error"]["message"].is_string());
    }
    // And the service goes on answering as before.
    let healthy = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(healthy.status(), StatusCode::OK);
}
