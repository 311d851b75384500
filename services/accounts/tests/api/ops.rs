//! The standard endpoints and middleware every Dozen service has.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{
    error_code, spawn_app, spawn_app_on_unreachable_database, spawn_app_with, Backend,
};
use dozen_testing::on_every_database;

on_every_database!(readiness_answers_200_when_the_database_answers);

async fn readiness_answers_200_when_the_database_answers(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "ok");
}

#[tokio::test]
async fn readiness_answers_503_while_the_database_is_unreachable_and_liveness_200() {
    let app = spawn_app_on_unreachable_database().await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    let check = body["checks"]["database"].as_str().unwrap();
    assert!(check.starts_with("failing"), "{body}");
    let live = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    // A request that needs the database answers 503, not 500: the caller may retry.
    let response = app
        .sign_up("wendy", "wendy@example.com", "a fine password")
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(response).await, "unavailable");
}

#[tokio::test]
async fn liveness_names_the_service_its_version_commit_and_release() {
    let app = spawn_app_with(Backend::Sqlite, |settings| {
        settings.process.http.release_id = Some("v42".into());
    })
    .await;
    let body: Value = app.get_json("/healthz").await;
    assert_eq!(body["status"], "ok");
    assert_eq!(body["service"], "accounts");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert!(body["git_commit"].as_str().is_some_and(|c| !c.is_empty()));
    assert_eq!(body["release_id"], "v42");
}

#[tokio::test]
async fn a_callers_request_id_is_echoed_and_a_missing_one_is_made() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-123");
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    let made = response.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(made.len(), 36, "a UUID: {made}");
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_status_and_show_the_pool() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user("xena").await;
    app.get_with_token(&format!("/v1/users/{}", user.id), &user.token)
        .await;
    app.client
        .get(app.url("/no/such/path"))
        .send()
        .await
        .unwrap();
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        r#"http_requests_total{method="POST",route="/v1/users",status="201"} 1"#,
        r#"http_requests_total{method="GET",route="/v1/users/{id}",status="200"} 1"#,
        r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#,
        r#"http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/v1/users",status="201"} 1"#,
        r#"db_pool_connections{pool="accounts",state="max"} 5"#,
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    assert!(!text.contains(&user.id), "raw paths never become labels");
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = spawn_app(Backend::Sqlite).await;
    let doc: Value = app.get_json("/openapi.json").await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/v1/users",
        "/v1/users/me",
        "/v1/users/{id}",
        "/v1/sessions",
        "/.well-known/jwks.json",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}
