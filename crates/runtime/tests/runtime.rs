//! The runtime's router and middleware, driven without a socket.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use dozen_runtime::http::{service_router, HttpSettings, Ops, Readiness};
use dozen_runtime::metrics::Metrics;
use dozen_runtime::shutdown::Shutdown;
use dozen_runtime::ServiceInfo;
use serde_json::Value;
use tower::ServiceExt;

fn app(readiness: Readiness) -> Router {
    let api = Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route("/panic", get(|| async { panic!("a bug") as &str }));
    let info = ServiceInfo::new("test", "0.0.0", "abc");
    service_router(
        api,
        Ops::new(info, readiness, Metrics::new()),
        &HttpSettings::local(),
    )
}

async fn call(app: Router, path: &str) -> (StatusCode, Value) {
    let response = app
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_panicking_handler_answers_500_with_the_error_body() {
    let (status, body) = call(app(Readiness::new(Shutdown::new())), "/panic").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"]["code"], "internal");
    assert!(
        !body.to_string().contains("a bug"),
        "panic text stays in the logs"
    );
}

#[tokio::test]
async fn readiness_turns_503_once_shutdown_begins() {
    let shutdown = Shutdown::new();
    let router = app(Readiness::new(shutdown.clone()));
    let (before, _) = call(router.clone(), "/readyz").await;
    assert_eq!(before, StatusCode::OK);
    shutdown.trigger();
    let (after, body) = call(router, "/readyz").await;
    assert_eq!(after, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "shutting_down");
}

#[tokio::test]
async fn a_failing_check_makes_readiness_503_and_names_the_check() {
    let readiness = Readiness::new(Shutdown::new())
        .with_check("database", || async { Ok::<(), String>(()) })
        .with_check("bus", || async { Err::<(), _>("connection refused") });
    let (status, body) = call(app(readiness), "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["bus"], "failing: connection refused");
}
