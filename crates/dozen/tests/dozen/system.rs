//! `dozen up` on the repository's Procfile and dev.env: the whole system.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};

use crate::{alive, gone, Dozen};

fn repo_file(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../../{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

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
    let base = 20000 + (std::process::id() % 200) as u16 * 100;
    let jwks = format!("http://127.0.0.1:{}/.well-known/jwks.json", base + 100);
    let mut dozen = Dozen::start_with(
        &repo_file("Procfile"),
        &repo_file("dev.env"),
        &["--port-base", &base.to_string(), "-m", "chat=2"],
        &[("JWKS_URL", jwks)],
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
        .expect("signed up")
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
    for _ in 0..4 {
        let rooms = client
            .get(format!("http://127.0.0.1:{base}/api/chat/v1/rooms"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(rooms.status(), 200);
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

    dozen.signal(Signal::SIGINT);
    assert_eq!(dozen.exit_code().await, 0);
    gone(&children).await;
    assert!(children.iter().all(|pid| !alive(*pid)));
}
