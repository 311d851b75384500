//! The gateway in front of small upstream servers of the test's own.

use axum::extract::OriginalUri;
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
    let api = Router::new()
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
        )
        .route(
            "/path/{*rest}",
            get(
                |OriginalUri(uri): OriginalUri, headers: HeaderMap| async move {
                    let forwarded = headers
                        .get("x-forwarded-for")
                        .map(|v| v.to_str().unwrap().to_owned());
                    format!("{uri} from {}", forwarded.unwrap_or_default())
                },
            ),
        );
    // As the services do: the API under its public route (the gateway sends
    // the path as received), the operations routes at the root only.
    let app = Router::new()
        .nest("/api/chat", api.clone())
        .nest("/api/accounts", api)
        .route("/metrics", get(|| async { "# the upstream's metrics" }))
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
    // Neither says it is ready: the gateway fails open, as a load balancer
    // does, rather than turn a working service away on a stale view.
    a.ready.store(false, Ordering::SeqCst);
    tokio::time::sleep(web::CHECK_EVERY * 3).await;
    let (status, _) = text(&client, format!("{gw}/api/chat/whoami")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn with_no_instance_ready_or_reachable_the_answer_is_a_json_503() {
    let (dead, also_dead) = (dozen_testing::free_port(), dozen_testing::free_port());
    let (gw, _stop) = gateway(&format!("chat=127.0.0.1:{dead},127.0.0.1:{also_dead}")).await;
    tokio::time::sleep(web::CHECK_EVERY * 3).await;
    let client = reqwest::Client::new();
    for request in [
        client.get(format!("{gw}/api/chat/whoami")),
        client.post(format!("{gw}/api/chat/work")),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "no_ready_instance");
    }
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
async fn a_post_whose_connection_is_refused_goes_to_another_instance() {
    let live = upstream("live").await;
    // A port nothing listens on: an instance that was killed.
    let dead = dozen_testing::free_port();
    let (gw, _stop) = gateway(&format!("chat=127.0.0.1:{dead},{}", live.address)).await;
    let client = reqwest::Client::new();
    for _ in 0..4 {
        let response = client
            .post(format!("{gw}/api/chat/work"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(response.text().await.unwrap(), "live");
    }
}

#[tokio::test]
async fn an_unknown_service_is_a_json_404() {
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
    let (status, _) = text(&client, format!("{gw}/readyz")).await;
    assert_eq!(status, StatusCode::OK);
}

/// One raw request (a client that sends its path as written, as `curl
/// --path-as-is` does), in HTTP/1.0 so the answer's body is not chunked:
/// its status and body.
async fn raw_get(address: &str, path: &str, headers: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address.trim_start_matches("http://"))
        .await
        .unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nhost: x\r\n{headers}\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

#[tokio::test]
async fn the_gateway_forwards_the_path_as_received_and_nothing_reaches_outside_the_services_prefix()
{
    let a = upstream("a").await;
    let (gw, _stop) = gateway(&format!("accounts={};chat={}", a.address, a.address)).await;
    // Encoded as sent: the upstream sees one segment, not a way out.
    for path in [
        "/api/accounts/path/v1/users/x%20y?q=%26",
        "/api/accounts/path/caf%C3%A9",
        "/api/chat/path/%252e%252e/metrics",
    ] {
        let (status, body) = raw_get(&gw, path, "").await;
        assert_eq!(status, 200, "{path}");
        assert!(
            body.starts_with(&format!("{path} from 127.0.0.1")),
            "{path}: {body}"
        );
    }
    // Steps out of the prefix, in any spelling: refused at the gateway.
    for path in [
        "/api/accounts/v1/users/..%2F..%2Fmetrics",
        "/api/accounts/../../metrics",
        "/api/accounts/%2e%2e/metrics",
        "/api/accounts/path/.%2E/%2E%2e/metrics",
        "/api/chat/./metrics",
        "/api/chat/path/..%5c..%5cmetrics",
    ] {
        let (status, body) = raw_get(&gw, path, "").await;
        assert_eq!(status, 400, "{path}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], "bad_path");
    }
    // What a service has outside its public API is not under its prefix.
    for path in ["/api/accounts/metrics", "/api/chat/readyz", "/api/accounts"] {
        let (status, body) = raw_get(&gw, path, "").await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("metrics\""), "{body}");
    }
    // The caller's address is added to the chain a proxy before it began.
    let (_, body) = raw_get(&gw, "/api/chat/path/x", "x-forwarded-for: 203.0.113.7\r\n").await;
    assert_eq!(body, "/api/chat/path/x from 203.0.113.7, 127.0.0.1");
}

#[test]
fn a_malformed_upstream_list_is_refused_naming_the_variable() {
    let error = Upstreams::parse("chat").unwrap_err();
    assert_eq!(error.var, "DOZEN_UPSTREAMS");
    assert!(Upstreams::parse("chat=").is_err());
}

/// The page and every asset it names, as a browser asks for them.
async fn page_and_assets(client: &reqwest::Client, gw: &str) -> Vec<(String, reqwest::Response)> {
    let page = client.get(format!("{gw}/")).send().await.unwrap();
    let html = page.text().await.unwrap();
    let mut paths = vec!["/".to_owned()];
    paths.extend(
        html.split('"')
            .filter(|s| s.starts_with("/assets/"))
            .map(str::to_owned),
    );
    let mut answers = Vec::new();
    for path in paths {
        let response = client
            .get(format!("{gw}{path}"))
            .header("accept-encoding", "gzip, br")
            .send()
            .await
            .unwrap();
        answers.push((path, response));
    }
    answers
}

#[tokio::test]
async fn the_ui_and_its_assets_are_served_from_the_binary_compressed_under_a_strict_policy() {
    let (gw, _stop) = gateway("").await;
    let client = reqwest::Client::new();
    let mut compressed_total = 0;
    let answers = page_and_assets(&client, &gw).await;
    assert!(answers.len() >= 5, "the page, its styles and its scripts");
    for (path, response) in answers {
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        let kind = headers["content-type"].to_str().unwrap().to_owned();
        match path.rsplit('.').next() {
            Some("js") => assert_eq!(kind, "text/javascript; charset=utf-8"),
            Some("css") => assert_eq!(kind, "text/css; charset=utf-8"),
            Some("svg") => assert_eq!(kind, "image/svg+xml"),
            _ => assert_eq!(kind, "text/html; charset=utf-8", "{path}"),
        }
        assert_eq!(headers["content-encoding"], "gzip", "{path}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        for rule in [
            "default-src 'none'",
            "script-src 'self';",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
            "base-uri 'none'",
        ] {
            assert!(
                policy.contains(rule),
                "{path}: {rule} missing from {policy}"
            );
        }
        assert!(!policy.contains("unsafe"), "{policy}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        let etag = headers["etag"].to_str().unwrap().to_owned();
        let gzipped = response.bytes().await.unwrap();
        compressed_total += gzipped.len();
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gzipped[..]), &mut plain)
            .unwrap();
        let identity = client.get(format!("{gw}{path}")).send().await.unwrap();
        assert!(identity.headers().get("content-encoding").is_none());
        assert_eq!(
            identity.bytes().await.unwrap(),
            plain,
            "{path}: the same file both ways"
        );
        let again = client
            .get(format!("{gw}{path}"))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
    }
    assert!(
        compressed_total < 100 * 1024,
        "the whole page is {compressed_total} bytes compressed"
    );
    let missing = client
        .get(format!("{gw}/assets/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.headers()["content-type"], "application/json");
}

#[test]
fn no_script_of_the_ui_builds_html_from_strings() {
    let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/ui/assets/js");
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "setTimeout('",
            "setTimeout(\"",
        ] {
            assert!(
                !source.contains(sink),
                "{} uses {sink}: text must go in as text nodes",
                path.display()
            );
        }
    }
}
