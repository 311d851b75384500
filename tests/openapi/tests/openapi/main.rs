//! Every service with an HTTP API answers as its OpenAPI document says:
//! schemathesis (PyPI) reads each document and sends what it allows and
//! what it refuses, with a real token, through the gateway of `dozen up` on
//! the embedded stack; it must find no mismatch — no answer of a status the
//! document does not give, no body off its schema, nothing the document
//! allows refused and nothing it refuses accepted, no 5xx.
//!
//! The live streams (`/v1/rooms/{id}/events`, `/v1/activity`) are left
//! out: they never end, and a fuzzer waits for an end.

use std::time::{Duration, Instant};

use dozen_testing::skip_unless_ci;
use dozen_testing::up::{port_base, repo_file, workspace_binary, DozenUp};
use serde_json::{json, Value};

/// Test cases per operation: minutes in all, not hours.
const EXAMPLES: &str = "100";

/// The services with an HTTP API of their own.
const SERVICES: [&str; 2] = ["accounts", "chat"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_answers_as_its_openapi_document_says_under_a_fuzzer() {
    if !schemathesis_is_installed().await {
        return;
    }
    let base = port_base(4);
    let folder = tempfile::tempdir().unwrap();
    for name in ["Procfile", "dev.env", "schedule"] {
        std::fs::write(folder.path().join(name), repo_file(name)).unwrap();
    }
    let up = DozenUp::start(
        &workspace_binary("dozen"),
        folder,
        &["--port-base", &base.to_string()],
        &[(
            "JWKS_URL",
            format!("http://127.0.0.1:{}/.well-known/jwks.json", base + 100),
        )],
    );
    up.wait_for_within("every process is ready", 1, Duration::from_secs(60))
        .await;
    let gateway = format!("http://127.0.0.1:{base}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    for service in SERVICES {
        while !client
            .get(format!("{gateway}/api/{service}/openapi.json"))
            .send()
            .await
            .is_ok_and(|answer| answer.status().is_success())
        {
            assert!(Instant::now() < deadline, "no document from {service}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let signed_up: Value = client
        .post(format!("{gateway}/api/accounts/v1/users"))
        .json(&json!({
            "username": "fuzzer",
            "email": "fuzzer@example.com",
            "password": "a password for fuzzing",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signed_up["access_token"].as_str().expect("signed up");

    // schemathesis keeps a cache where it runs: somewhere of its own.
    let workdir = tempfile::tempdir().unwrap();
    let mut failed = Vec::new();
    for service in SERVICES {
        let started = Instant::now();
        let run = schemathesis()
            .current_dir(workdir.path())
            .arg("run")
            .arg(format!("{gateway}/api/{service}/openapi.json"))
            .args(["--checks", "all", "--max-examples", EXAMPLES, "--no-color"])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args(["--exclude-path", "/v1/rooms/{id}/events"])
            .args(["--exclude-path", "/v1/activity"])
            .output()
            .await
            .expect("schemathesis runs");
        let report = String::from_utf8_lossy(&run.stdout);
        let summary = report
            .lines()
            .find(|line| line.contains(" generated, "))
            .unwrap_or("no summary")
            .trim()
            .to_owned();
        eprintln!("{service}: {summary} in {:.0?}", started.elapsed());
        if !run.status.success() {
            failed.push(format!(
                "--- {service}\n{report}\n{}",
                String::from_utf8_lossy(&run.stderr)
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "the fuzzer found mismatches:\n{}",
        failed.join("\n")
    );
}

/// schemathesis's command line, as the machine's Python runs it.
fn schemathesis() -> tokio::process::Command {
    let mut command = tokio::process::Command::new("python3");
    command.args(["-m", "schemathesis.cli"]);
    command
}

async fn schemathesis_is_installed() -> bool {
    let version = schemathesis().arg("--version").output().await;
    if version.is_ok_and(|v| v.status.success()) {
        return true;
    }
    skip_unless_ci::<()>("schemathesis is not installed (python3 -m pip install schemathesis)");
    false
}
