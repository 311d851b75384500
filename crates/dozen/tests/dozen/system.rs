//! `dozen up` on the repository's Procfile and dev.env: the whole system.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use dozen_testing::up::{port_base, repo_file};

use crate::{alive, gone};

/// The pids of `parent`'s children.
fn children_of(parent: u32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let (_, rest) = stat.rsplit_once(')')?;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repositorys_procfile_brings_up_the_whole_system_which_works_and_stops_cleanly() {
    whole_system(port_base(0), Vec::new(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_command_runs_the_system_on_postgres_and_nats_given_only_two_variables() {
    let Some(dozen_testing::Backend::Postgres(server)) = dozen_testing::Backend::postgres() else {
        return;
    };
    let Some(mut nats) = dozen_testing::ChildServer::nats() else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (server, _) = server.rsplit_once('/').unwrap();
    let database = format!(
        "{server}/dozen_test_{now}_{}_{{service}}",
        std::process::id()
    );
    whole_system(
        port_base(1),
        vec![
            ("DATABASE_URL", database),
            ("BUS_URL", format!("nats://127.0.0.1:{}", nats.port())),
        ],
        Some(&mut nats),
    )
    .await;
}

/// What a service serves outside its public API (`/metrics`, `/readyz`) is
/// not under its route at the gateway, however the path is spelled.
async fn nothing_outside_a_services_api_is_reachable_through_the_gateway(base: u16) {
    let client = reqwest::Client::new();
    for (path, status) in [
        ("/api/accounts/v1/users/..%2F..%2Fmetrics", 400),
        // (A client sends `%2e%2e` as `..`, which URL parsers resolve:
        // that arrives as /api/accounts/metrics, below.)
        ("/api/accounts/metrics", 404),
        ("/api/chat/metrics", 404),
        ("/api/chat/readyz", 404),
    ] {
        let answer = client
            .get(format!("http://127.0.0.1:{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "{path}");
        let body: Value = answer.json().await.expect("a JSON error body");
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
    }
}

/// 60 posts, 20 ms apart, through the gateway while one of the two chat
/// instances gets SIGTERM midway: every one answers 201.
async fn a_chat_instance_draining_fails_no_request_through_the_gateway(
    dozen: &dozen_testing::up::DozenUp,
    base: u16,
    token: &str,
) {
    let client = reqwest::Client::new();
    let api = |path: &str| format!("http://127.0.0.1:{base}/api/chat{path}");
    let room: Value = client
        .post(api("/v1/rooms"))
        .bearer_auth(token)
        .json(&json!({ "name": "drain" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let posts = api(&format!(
        "/v1/rooms/{}/messages",
        room["id"].as_str().unwrap()
    ));
    let processes: Value = serde_json::from_slice(
        &std::fs::read(dozen.folder.path().join(".dozen/processes.json")).unwrap(),
    )
    .unwrap();
    let draining = processes["chat.2"]["pid"].as_i64().expect("chat.2's pid") as i32;
    let mut statuses = Vec::new();
    for n in 0..60 {
        if n == 20 {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(draining), Signal::SIGTERM).unwrap();
        }
        let answer = client
            .post(&posts)
            .bearer_auth(token)
            .json(&json!({ "text": format!("message {n}") }))
            .send()
            .await
            .unwrap();
        statuses.push(answer.status().as_u16());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
}

/// NATS stopped for a few seconds: the API answers through the gateway all
/// along, reads and writes (posts wait in chat's outbox); chat's web
/// processes stay ready, its worker, which consumes, is not.
async fn the_api_stays_up_while_the_broker_is_down(
    nats: &mut dozen_testing::ChildServer,
    base: u16,
    token: &str,
) {
    let client = reqwest::Client::new();
    let api = |path: &str| format!("http://127.0.0.1:{base}/api/chat{path}");
    let room: Value = client
        .post(api("/v1/rooms"))
        .bearer_auth(token)
        .json(&json!({ "name": "outage" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let room = room["id"].as_str().unwrap().to_owned();
    nats.stop_gracefully();
    let until = std::time::Instant::now() + Duration::from_secs(4);
    let mut n = 0;
    while std::time::Instant::now() < until {
        let read = client
            .get(api(&format!("/v1/rooms/{room}/messages")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 200, "{}", read.text().await.unwrap());
        let post = client
            .post(api(&format!("/v1/rooms/{room}/messages")))
            .bearer_auth(token)
            .json(&json!({ "text": format!("while the broker is away {n}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), 201, "{}", post.text().await.unwrap());
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = |port: u16| {
        let client = client.clone();
        async move {
            client
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(ready(base + 200).await, 200, "chat's web process");
    assert_eq!(ready(base + 300).await, 503, "chat's worker cannot consume");
    nats.start();
}

async fn whole_system(
    base: u16,
    mut vars: Vec<(&'static str, String)>,
    nats: Option<&mut dozen_testing::ChildServer>,
) {
    vars.push((
        "JWKS_URL",
        format!("http://127.0.0.1:{}/.well-known/jwks.json", base + 100),
    ));
    let mut dozen = crate::start_with(
        &repo_file("Procfile"),
        &repo_file("dev.env"),
        &["--port-base", &base.to_string(), "-m", "chat=2"],
        &vars,
        &[("schedule", repo_file("schedule"))],
    );
    dozen.wait_for("every process is ready", 1).await;
    dozen
        .wait_for(&format!("open http://127.0.0.1:{base} "), 1)
        .await;
    for process in [
        "accounts.1",
        "chat.1",
        "chat.2",
        "chat-worker.1",
        "cards.1",
        "notifier.1",
    ] {
        assert_eq!(
            dozen
                .lines_with(&format!("{process} "))
                .iter()
                .filter(|(_, l)| l.contains("http://127.0.0.1:"))
                .count(),
            1,
            "{process} listed"
        );
    }
    let children = children_of(dozen.child.id().unwrap());
    assert_eq!(children.len(), 8, "one child per process");
    assert_eq!(
        dozen
            .lines_with(&format!("open http://127.0.0.1:{base}"))
            .len(),
        1
    );

    // Signup on accounts, through the gateway → the welcome mail from notifier, through the bus.
    let client = reqwest::Client::new();
    let signed_up: Value = client
        .post(format!("http://127.0.0.1:{base}/api/accounts/v1/users"))
        .json(&json!({"username": "alice", "email": "alice@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signed_up["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("signed up: {signed_up}\n{}", dozen.output()))
        .to_owned();
    let mail = dozen.folder.path().join("data/mail");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&mail).map(|d| d.count()).unwrap_or(0) == 0 {
        assert!(std::time::Instant::now() < deadline, "no welcome mail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both chat web processes answer, each on its own port, with accounts' keys,
    // and the gateway shares requests between them.
    for port in [base + 200, base + 201] {
        let rooms = client
            .get(format!("http://127.0.0.1:{port}/v1/rooms"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(rooms.status(), 200);
    }
    // The gateway asks each instance's readiness twice a second: give it a moment.
    let through_gateway = || {
        client
            .get(format!("http://127.0.0.1:{base}/api/chat/v1/rooms"))
            .bearer_auth(&token)
            .send()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while through_gateway().await.unwrap().status() != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway never reached chat"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..4 {
        assert_eq!(through_gateway().await.unwrap().status(), 200);
    }
    // `dozen status` sees every process ready.
    let status = crate::dozen(dozen.folder.path())
        .arg("status")
        .output()
        .await
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    for process in ["web.1", "accounts.1", "chat.2", "clock.1"] {
        let line = status
            .lines()
            .find(|l| l.starts_with(process))
            .unwrap_or_else(|| panic!("{status}"));
        assert!(line.contains(" yes "), "{line}");
    }
    nothing_outside_a_services_api_is_reachable_through_the_gateway(base).await;
    a_chat_instance_draining_fails_no_request_through_the_gateway(&dozen, base, &token).await;
    if let Some(nats) = nats {
        the_api_stays_up_while_the_broker_is_down(nats, base, &token).await;
    }

    dozen.signal(Signal::SIGINT);
    assert_eq!(dozen.exit_code().await, 0);
    gone(&children).await;
    assert!(children.iter().all(|pid| !alive(*pid)));
}
