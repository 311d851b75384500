//! The chat as people use it: `dozen up -m chat=2` with the repository's
//! Procfile and dev.env, and real Chromium browsers (Debian's `chromium`
//! and `chromium-driver`) driven through WebDriver — on the embedded stack
//! and on PostgreSQL + NATS + Redis.

mod chat;
mod page;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use dozen_testing::up::{port_base, repo_file, workspace_binary, DozenUp};
use dozen_testing::{skip_unless_ci, ChildServer};

pub use page::Browser;

/// A WebDriver server of the test's own.
#[derive(Debug)]
pub struct ChromeDriver {
    child: tokio::process::Child,
    pub url: String,
}

impl ChromeDriver {
    /// `None` (with the reason printed, a failure in CI) without Chromium.
    pub async fn start() -> Option<Self> {
        for program in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            if !std::path::Path::new(program).exists() {
                return skip_unless_ci(&format!(
                    "{program} is missing (apt-get install chromium chromium-driver)"
                ));
            }
        }
        let port = dozen_testing::free_port();
        let child = tokio::process::Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        })
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Which backing services the system runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    Embedded,
    PostgresNatsRedis,
}

/// The whole system, as `dozen up -m chat=2` runs it, in a folder of its own.
#[derive(Debug)]
pub struct System {
    pub up: DozenUp,
    pub base: u16,
    _nats: Option<ChildServer>,
}

impl System {
    pub async fn start(stack: Stack) -> Option<Self> {
        let base = port_base(match stack {
            Stack::Embedded => 2,
            Stack::PostgresNatsRedis => 3,
        });
        let mut vars = vec![(
            "JWKS_URL",
            format!("http://127.0.0.1:{}/.well-known/jwks.json", base + 100),
        )];
        let mut nats = None;
        if stack == Stack::PostgresNatsRedis {
            let Some(dozen_testing::Backend::Postgres(server)) = dozen_testing::Backend::postgres()
            else {
                return None;
            };
            let redis = dozen_testing::required_server("TEST_REDIS_URL", "Redis cache")?;
            let server_nats = ChildServer::nats()?;
            let run = format!(
                "{}_{}",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs(),
                std::process::id()
            );
            let (server, _) = server.rsplit_once('/').unwrap();
            vars.push((
                "DATABASE_URL",
                format!("{server}/dozen_browser_{run}_{{service}}"),
            ));
            vars.push((
                "BUS_URL",
                format!("nats://127.0.0.1:{}", server_nats.port()),
            ));
            vars.push(("CACHE_URL", format!("{redis}?prefix=browser-{run}")));
            nats = Some(server_nats);
        }
        let folder = tempfile::tempdir().unwrap();
        for name in ["Procfile", "dev.env", "schedule"] {
            std::fs::write(folder.path().join(name), repo_file(name)).unwrap();
        }
        let up = DozenUp::start(
            &workspace_binary("dozen"),
            folder,
            &["--port-base", &base.to_string(), "-m", "chat=2"],
            &vars,
        );
        up.wait_for_within("every process is ready", 1, Duration::from_secs(60))
            .await;
        let system = Self {
            up,
            base,
            _nats: nats,
        };
        system.wait_until_the_gateway_routes().await;
        Some(system)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.base)
    }

    /// The gateway asks each instance's readiness twice a second.
    async fn wait_until_the_gateway_routes(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for service in ["accounts", "chat"] {
            loop {
                let answer = reqwest::get(self.url(&format!("/api/{service}/openapi.json"))).await;
                if answer.is_ok_and(|a| a.status().is_success()) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the gateway never reached {service}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Each chat web instance: (process name, pid, port), from `.dozen/processes.json`.
    pub fn chat_instances(&self) -> Vec<(String, i32, u16)> {
        let path = self.up.folder.path().join(".dozen/processes.json");
        let status: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        status
            .as_object()
            .unwrap()
            .iter()
            .filter(|(name, _)| name.starts_with("chat.") && !name.starts_with("chat-"))
            .map(|(name, p)| {
                (
                    name.clone(),
                    p["pid"].as_i64().unwrap() as i32,
                    p["port"].as_u64().unwrap() as u16,
                )
            })
            .collect()
    }
}

impl Drop for System {
    fn drop(&mut self) {
        // Kept for a look after the run: target/tmp/logs/<base>.log.
        let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("logs");
        let _ = std::fs::create_dir_all(&logs);
        let _ = std::fs::write(logs.join(format!("{}.log", self.base)), self.up.output());
        if std::thread::panicking() {
            let output = self.up.output();
            let lines: Vec<&str> = output
                .lines()
                .filter(|l| !l.contains("\"path\":\"/readyz\""))
                .collect();
            let tail = &lines[lines.len().saturating_sub(150)..];
            eprintln!(
                "--- dozen up printed (last lines, readiness checks left out):\n{}",
                tail.join("\n")
            );
        }
    }
}

/// Where the tests keep their screenshots.
pub fn screenshots(stack: Stack) -> PathBuf {
    let folder = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("screenshots")
        .join(format!("{stack:?}").to_lowercase());
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

/// axe-core's script, installed by `npm ci` in this crate's folder.
pub fn axe_source() -> Option<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/node_modules/axe-core/axe.min.js"
    );
    match std::fs::read_to_string(path) {
        Ok(source) => Some(source),
        Err(_) => skip_unless_ci(&format!(
            "{path} is missing (npm ci --prefix tests/browser)"
        )),
    }
}
