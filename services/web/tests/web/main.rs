//! The gateway in front of small upstream servers of the test's own.

use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use dozen_runtime::http::HttpSettings;
use dozen_runtime::logging::{LogFormat, LogSettings};
use dozen_runtime::shutdown::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use web::upstreams::Upstreams;
use web::{Settings, Web};

/// An upstream named `name`: `/readyz` as `ready` says, `/whoami` with the
/// request id it got, `/work` answering 503 while `draining`.
struct Upstream {
    address: String,
    ready: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
}

async fn upstream(name: &'static str) -> Upstream {
    let ready = Arc::new(AtomicBool::new(true));
    let draining = Arc::new(AtomicBool::new(false));
    let (r, d1, d2) = (ready.clone(), draining.clone(), draining.clone());
    let app = Router::new()
        .route(
            "/readyz",
            get(move || {
                let ok = r.load(Ordering::SeqCst);
                async move {
                    if ok {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                }
            }),
        )
        .route(
            "/whoami",
            get(move |headers: HeaderMap| async move {
                let id = headers
                    .get("x-request-id")
                    .map(|v| v.to_str().unwrap().to_owned());
                format!("{name} {}", id.unwrap_or_default())
            }),
        )
        .route(
            "/work",
            get(move || {
                let draining = d1.load(Ordering::SeqCst);
                async move {
                    if draining {
                        (StatusCode::SERVICE_UNAVAILABLE, "draining")
                    } else {
                        (StatusCode::OK, name)
                    }
                }
            })
            .post(move || {
                let draining = d2.load(Ordering::SeqCst);
                async move {
                    if draining {
                        (StatusCode::SERVICE_UNAVAILABLE, "draining")
                    } else {
                        (StatusCode::CREATED, name)
                    }
                }
            }),
        )
        .route(
            "/echo",
            post(|body: String| async move { (StatusCode::ACCEPTED, [("x-echo", "yes")], body) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Upstream {
        address,
        ready,
        draining,
    }
}

async fn gateway(upstreams: &str) -> (String, Shutdown) {
    let shutdown = Shutdown::new();
    let settings = Settings {
        log: LogSettings {
            format: LogFormat::Json,
            filter: "warn".into(),
        },
        http: HttpSettings::local(),
        upstreams: Upstreams::parse(upstreams).unwrap(),
    };
    let web = Web::bind(settings, shutdown.clone()).await.unwrap();
    let address = format!("http://127.0.0.1:{}", web.port());
    tokio::spawn(web.run_until_stopped());
    (address, shutdown)
}

async fn text(client: &reqwest::Client, url: String) -> (StatusCode, String) {
    let response = client.get(url).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn requests_are_shared_round_robin_between_the_ready_instances() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let (gw, _stop) = gateway(&format!("chat={},{}", a.address, b.address)).await;
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    for _ in 0..4 {
        let (status, body) = text(&client, format!("{gw}/api/chat/whoami")).await;
        assert_eq!(status, StatusCode::OK);
        answers.push(body.split(' ').next().unwrap().to_owned());
    }
    answers.sort();
    assert_eq!(answers, ["a", "a", "b", "b"]);

    // b stops being ready: it gets nothing once the gateway has asked again.
    b.ready.store(false, Ordering::SeqCst);
    tokio::time::sleep(web::CHECK_EVERY * 3).await;
    for _ in 0..4 {
        let (_, body) = text(&client, format!("{gw}/api/chat/whoami")).await;
        assert!(body.starts_with("a "), "{body}");
    }
    a.ready.store(false, Ordering::SeqCst);
    tokio::time::sleep(web::CHECK_EVERY * 3).await;
    let response = client
        .get(format!("{gw}/api/chat/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_ready_instance");
}

#[tokio::test]
async fn a_get_goes_to_another_instance_when_one_is_draining_and_a_post_is_sent_once() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    b.draining.store(true, Ordering::SeqCst);
    let (gw, _stop) = gateway(&format!("chat={},{}", a.address, b.address)).await;
    let client = reqwest::Client::new();
    for _ in 0..4 {
        let (status, body) = text(&client, format!("{gw}/api/chat/work")).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "a"));
    }
    let mut statuses = Vec::new();
    for _ in 0..2 {
        statuses.push(
            client
                .post(format!("{gw}/api/chat/work"))
                .send()
                .await
                .unwrap()
                .status(),
        );
    }
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::SERVICE_UNAVAILABLE]
    );
}

#[tokio::test]
async fn the_request_id_goes_along_and_bodies_and_headers_pass_both_ways() {
    let a = upstream("a").await;
    let (gw, _stop) = gateway(&format!("accounts={}", a.address)).await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{gw}/api/accounts/whoami"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "a trace-me-123");
    let echoed = client
        .post(format!("{gw}/api/accounts/echo?x=1"))
        .body("hello upstream")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.status(), StatusCode::ACCEPTED);
    assert_eq!(echoed.headers()["x-echo"], "yes");
    assert_eq!(echoed.text().await.unwrap(), "hello upstream");
}

#[tokio::test]
async fn an_unknown_service_is_a_json_404_and_the_home_page_lists_the_services() {
    let a = upstream("a").await;
    let (gw, _stop) = gateway(&format!("accounts={};chat={}", a.address, a.address)).await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{gw}/api/nothing/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let (status, home) = text(&client, format!("{gw}/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        home.contains("/api/accounts/") && home.contains("/api/chat/"),
        "{home}"
    );
    let (status, _) = text(&client, format!("{gw}/readyz")).await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn a_malformed_upstream_list_is_refused_naming_the_variable() {
    let error = Upstreams::parse("chat").unwrap_err();
    assert_eq!(error.var, "DOZEN_UPSTREAMS");
    assert!(Upstreams::parse("chat=").is_err());
}
