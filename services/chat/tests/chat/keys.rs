//! Tokens checked with keys fetched from accounts' JWKS URL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::routing::get;
use axum::{Json, Router};
use dozen_auth::Keys;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_chat_with_keys, Backend};

#[tokio::test]
async fn tokens_are_checked_with_keys_fetched_once_from_the_jwks_url() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/.well-known/jwks.json",
        listener.local_addr().unwrap()
    );
    let fetches = Arc::new(AtomicUsize::new(0));
    let jwks = Arc::new(std::sync::Mutex::new(None));
    let chat = spawn_chat_with_keys(Backend::Sqlite, |signer| {
        *jwks.lock().unwrap() = Some(signer.jwks());
        Keys::fetched(&url, "dozen", "dozen")
    })
    .await;
    let served = jwks.lock().unwrap().clone().unwrap();
    let counted = fetches.clone();
    let app = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let served = served.clone();
            async move { Json(served) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let alice = chat.user("alice");
    for _ in 0..3 {
        assert_eq!(chat.get("/v1/rooms", &alice).await.status(), StatusCode::OK);
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn when_no_keys_can_be_fetched_requests_get_503_not_401() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    drop(listener);
    let chat =
        spawn_chat_with_keys(Backend::Sqlite, |_| Keys::fetched(&url, "dozen", "dozen")).await;
    let response = chat.get("/v1/rooms", &chat.user("alice")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
}
