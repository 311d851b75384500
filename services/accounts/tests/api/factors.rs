//! The twelve-factor properties, proven on the real binary run as a child process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{new_signing_key_pem, Backend, TestDatabase};
use dozen_testing::on_every_database;

const BINARY: &str = env!("CARGO_BIN_EXE_accounts");

/// The environment a real deployment would give: nothing inherited but PATH.
/// The bus lives beside the database: a second SQLite file in its folder, or
/// the same PostgreSQL database.
fn base_env(database_url: &str, key_pem: &str) -> Vec<(String, String)> {
    let bus_url = database_url.replace("test.db", "bus.db");
    [
        ("PORT", "0"),
        ("HOST", "127.0.0.1"),
        ("LOG_FORMAT", "json"),
        ("DATABASE_URL", database_url),
        ("BUS_URL", &bus_url),
        ("JWT_PRIVATE_KEY", key_pem),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn command(args: &[&str], env: &[(String, String)]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A running `accounts serve` whose stdout lines are collected as they come.
struct Service {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    port: u16,
}

impl Service {
    fn start(env: &[(String, String)]) -> Self {
        let mut child = command(&["serve"], env).spawn().expect("start accounts");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let port = loop {
            let first = lines.lock().unwrap().first().cloned();
            if let Some(first) = first {
                let line: Value = serde_json::from_str(&first).expect("first line is JSON");
                assert_eq!(
                    line["message"], "listening",
                    "the first line reports the port"
                );
                break line["fields"]["port"].as_u64().expect("port") as u16;
            }
            assert!(
                Instant::now() < deadline,
                "accounts did not report its port"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        Self { child, lines, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("signal");
    }

    fn wait_for_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("accounts did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stdout_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            stderr.read_to_string(&mut text).expect("stderr");
        }
        text
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A migrated database of the test's own.
async fn migrated_database(backend: &Backend) -> TestDatabase {
    let database = TestDatabase::create(backend).await;
    let output = command(&["migrate"], &base_env(&database.url, ""))
        .output()
        .expect("run migrate");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    database
}

/// Opens a request whose body is only half sent: it stays in flight until `finish`.
struct SlowRequest {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl SlowRequest {
    fn start(port: u16, path: &str, body: &Value) -> Self {
        let body = body.to_string().into_bytes();
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        let half = body.len() / 2;
        stream.write_all(&body[..half]).unwrap();
        Self {
            stream,
            rest: body[half..].to_vec(),
        }
    }

    /// Sends the rest of the body and reads the status line.
    fn finish(mut self) -> String {
        self.stream.write_all(&self.rest).unwrap();
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut answer = String::new();
        let _ = self.stream.read_to_string(&mut answer);
        answer.lines().next().unwrap_or_default().to_owned()
    }
}

fn sign_up_body(username: &str, password: &str) -> Value {
    json!({ "username": username, "email": format!("{username}@example.com"), "password": password })
}

// Factor III: config from the environment, checked at start.

#[test]
fn a_missing_or_malformed_variable_stops_the_process_with_exit_2_naming_it() {
    let key = new_signing_key_pem();
    let folder = tempfile::tempdir().unwrap();
    let good = base_env(
        &format!("sqlite://{}/test.db", folder.path().display()),
        &key,
    );
    let secret_looking_key =
        "-----BEGIN PRIVATE KEY-----\\nTOPSECRETMATERIAL\\n-----END PRIVATE KEY-----";
    let cases: [(&str, Option<&str>, &str); 11] = [
        ("DATABASE_URL", None, "is missing"),
        (
            "DATABASE_URL",
            Some("mysql://localhost/x"),
            "sqlite:// or postgres://",
        ),
        ("BUS_URL", None, "is missing"),
        (
            "BUS_URL",
            Some("redis://localhost"),
            "must start with one of",
        ),
        ("PORT", None, "is missing"),
        ("PORT", Some("eighty"), "is invalid"),
        ("PORT", Some("70000"), "is invalid"),
        ("JWT_PRIVATE_KEY", None, "is missing"),
        ("JWT_PRIVATE_KEY", Some(secret_looking_key), "is unusable"),
        ("SHUTDOWN_TIMEOUT", Some("soon"), "must be a duration"),
        ("LOG_LEVEL", Some("[[["), "must be a level"),
    ];
    for (var, value, problem) in cases {
        let mut env: Vec<_> = good.iter().filter(|(k, _)| k != var).cloned().collect();
        if let Some(value) = value {
            env.push((var.to_owned(), value.to_owned()));
        }
        let output = command(&["serve"], &env).output().expect("run accounts");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{var}={value:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains(var) && stderr.contains(problem),
            "{var}: {stderr}"
        );
        assert!(
            !stderr.contains("TOPSECRET"),
            "the key is never echoed: {stderr}"
        );
        assert!(output.stdout.is_empty(), "nothing started");
    }
}

#[test]
fn the_migrate_command_needs_only_the_database_settings() {
    let output = command(&["migrate"], &[]).output().expect("run migrate");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("DATABASE_URL is missing"));
}

// Factor VII: port binding.

#[tokio::test]
async fn port_zero_binds_a_free_port_reported_in_the_first_log_line() {
    let database = migrated_database(&Backend::Sqlite).await;
    let env = base_env(&database.url, &new_signing_key_pem());
    let first = Service::start(&env);
    let second = Service::start(&env);
    assert_ne!(first.port, 0);
    assert_ne!(
        first.port, second.port,
        "each process gets its own free port"
    );
    for service in [&first, &second] {
        let response = reqwest::get(service.url("/healthz")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

// Factor IX: disposability.

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_0() {
    let database = migrated_database(&Backend::Sqlite).await;
    let mut service = Service::start(&base_env(&database.url, &new_signing_key_pem()));
    let client = reqwest::Client::new();
    let signup = client
        .post(service.url("/v1/users"))
        .json(&sign_up_body("yara", "yara's long password"))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), StatusCode::CREATED);
    drop(client);

    let in_flight = SlowRequest::start(
        service.port,
        "/v1/sessions",
        &json!({ "username": "yara", "password": "yara's long password" }),
    );
    std::thread::sleep(Duration::from_millis(200));
    service.signal(Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    // For SHUTDOWN_DELAY (1 s) it goes on serving, saying it is not ready,
    // so the gateway or a load balancer stops sending before it closes.
    let readiness = reqwest::get(service.url("/readyz")).await.unwrap();
    assert_eq!(readiness.status(), StatusCode::SERVICE_UNAVAILABLE);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        service.child.try_wait().unwrap().is_none(),
        "still draining while a request is in flight"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", service.port)).is_err(),
        "no new connections once the delay is over"
    );
    assert_eq!(in_flight.finish(), "HTTP/1.1 200 OK");
    let status = service.wait_for_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    let lines = service.stdout_lines();
    assert!(lines.iter().any(|l| l.contains("shutdown signal received")));
    assert_eq!(
        lines.last().map(|l| l.contains("\"stopped\"")),
        Some(true),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let database = migrated_database(&Backend::Sqlite).await;
    let mut env = base_env(&database.url, &new_signing_key_pem());
    env.push(("SHUTDOWN_TIMEOUT".into(), "60s".into()));
    let mut service = Service::start(&env);
    let _stuck = SlowRequest::start(service.port, "/v1/sessions", &json!({ "username": "z" }));
    std::thread::sleep(Duration::from_millis(200));
    service.signal(Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    assert!(service.child.try_wait().unwrap().is_none(), "draining");
    service.signal(Signal::SIGINT);
    let status = service.wait_for_exit(Duration::from_secs(3));
    assert_eq!(status.code(), Some(130));
}

#[tokio::test]
async fn the_shutdown_timeout_bounds_a_drain_that_never_ends() {
    let database = migrated_database(&Backend::Sqlite).await;
    let mut env = base_env(&database.url, &new_signing_key_pem());
    env.push(("SHUTDOWN_TIMEOUT".into(), "500ms".into()));
    env.push(("REQUEST_TIMEOUT".into(), "60s".into()));
    let mut service = Service::start(&env);
    let _stuck = SlowRequest::start(service.port, "/v1/sessions", &json!({ "username": "z" }));
    std::thread::sleep(Duration::from_millis(200));
    service.signal(Signal::SIGTERM);
    let status = service.wait_for_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0));
    let lines = service.stdout_lines();
    assert!(
        lines.iter().any(|l| l.contains("shutdown timeout reached")),
        "{lines:?}"
    );
}

// Factor XI: logs as an event stream.

#[tokio::test]
async fn every_stdout_line_is_json_and_no_line_holds_a_secret() {
    let database = migrated_database(&Backend::Sqlite).await;
    let key = new_signing_key_pem();
    let mut service = Service::start(&base_env(&database.url, &key));
    let password = "zed-very-secret-password";
    let client = reqwest::Client::new();
    let signup = client
        .post(service.url("/v1/users"))
        .header("x-request-id", "factor-eleven")
        .json(&sign_up_body("zed", password))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), StatusCode::CREATED);
    let token = signup.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for attempt in [password, "a wrong password"] {
        client
            .post(service.url("/v1/sessions"))
            .json(&json!({ "username": "zed", "password": attempt }))
            .send()
            .await
            .unwrap();
    }
    client
        .get(service.url("/v1/users/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    client
        .post(service.url("/v1/users"))
        .body("{oops")
        .send()
        .await
        .unwrap();
    drop(client);
    service.signal(Signal::SIGTERM);
    assert!(service.wait_for_exit(Duration::from_secs(10)).success());

    let lines = service.stdout_lines();
    assert!(lines.len() >= 7, "{lines:?}");
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    for line in &lines {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for field in ["timestamp", "level", "service", "target", "message"] {
            assert!(event[field].is_string(), "{field} in {line}");
        }
        assert_eq!(event["service"], "accounts");
        for secret in [password, key_body.as_str(), token.as_str()] {
            assert!(!line.contains(secret), "a secret leaked: {line}");
        }
        if event["message"] == "request finished" {
            assert!(event["request_id"].is_string(), "{line}");
        }
    }
    let of_signup: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["request_id"] == "factor-eleven")
        .collect();
    let messages: Vec<&str> = of_signup
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert_eq!(
        messages,
        ["user signed up", "request finished"],
        "every line of the request carries its id"
    );
    assert_eq!(service.stderr(), "", "nothing on stderr");
}

// Factor XII: admin processes.

on_every_database!(migrate_runs_as_a_one_off_process_and_prepares_the_database_serve_uses);

async fn migrate_runs_as_a_one_off_process_and_prepares_the_database_serve_uses(backend: Backend) {
    let database = TestDatabase::create(&backend).await;
    let env = base_env(&database.url, &new_signing_key_pem());
    for run in ["first", "again"] {
        let output = command(&["migrate"], &env).output().expect("run migrate");
        assert!(
            output.status.success(),
            "{run}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let last = String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .to_owned();
        let event: Value = serde_json::from_str(&last).expect("migrate logs JSON");
        assert_eq!(event["message"], "migrations applied", "{run}");
    }
    let service = Service::start(&env);
    let response = reqwest::Client::new()
        .post(service.url("/v1/users"))
        .json(&sign_up_body("ada", "ada's long password"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[test]
fn migrate_against_an_unreachable_database_fails_with_a_logged_reason() {
    let mut env = base_env("postgres://dozen@127.0.0.1:1/nothing", "");
    env.push(("DATABASE_ACQUIRE_TIMEOUT".into(), "1s".into()));
    let output = command(&["migrate"], &env).output().expect("run migrate");
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let event: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(event["level"], "ERROR");
    // The release phase first makes sure the database exists; that is where it fails.
    let error = event["fields"]["error"].as_str().unwrap();
    assert!(
        error.contains("creating the database") && error.contains("refused"),
        "{stdout}"
    );
}
