//! The whole system as processes: each service's real binary, migrated
//! first, with its own database, one bus, and env vars as the only config.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use dozen_testing::{Backend, ChildServer, TestDatabase};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use tokio::process::{Child, Command};

/// Which backing services the system runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// SQLite databases and a SQLite bus: nothing to install.
    Embedded,
    /// A PostgreSQL database per service, a NATS server and Redis (the cache).
    PostgresNats,
}

/// One process type of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Process {
    Accounts,
    ChatWeb,
    ChatWorker,
    Cards,
    Notifier,
}

impl Process {
    pub const ALL: [Process; 5] = [
        Process::Accounts,
        Process::ChatWeb,
        Process::ChatWorker,
        Process::Cards,
        Process::Notifier,
    ];

    fn service(self) -> &'static str {
        match self {
            Process::Accounts => "accounts",
            Process::ChatWeb | Process::ChatWorker => "chat",
            Process::Cards => "cards",
            Process::Notifier => "notifier",
        }
    }

    fn command(self) -> &'static str {
        match self {
            Process::Accounts | Process::ChatWeb => "serve",
            _ => "work",
        }
    }

    fn log_name(self) -> String {
        format!("{self:?}").to_lowercase()
    }
}

pub struct System {
    pub smtp: ChildServer,
    folder: tempfile::TempDir,
    env: HashMap<&'static str, HashMap<&'static str, String>>,
    ports: HashMap<Process, u16>,
    children: HashMap<Process, Child>,
    _databases: Vec<TestDatabase>,
    _nats: Option<ChildServer>,
}

impl System {
    /// Starts every process on `stack`, each answering `/readyz`; `None` when a
    /// server it needs is not here (a failure in CI).
    pub async fn start(stack: Stack, cards_allow: &str) -> Option<Self> {
        let smtp = ChildServer::smtp()?;
        let folder = tempfile::tempdir().unwrap();
        let mut databases = Vec::new();
        let mut nats = None;
        let mut database_url = HashMap::new();
        let cache_url = match stack {
            Stack::Embedded => format!("sqlite://{}", folder.path().join("cache.db").display()),
            Stack::PostgresNats => format!(
                "{}?prefix=spine-{}",
                dozen_testing::required_server("TEST_REDIS_URL", "Redis cache")?,
                std::process::id()
            ),
        };
        let bus_url = match stack {
            Stack::Embedded => {
                for service in ["accounts", "chat", "cards", "notifier"] {
                    let url = format!(
                        "sqlite://{}",
                        folder.path().join(format!("{service}.db")).display()
                    );
                    database_url.insert(service, url);
                }
                format!("sqlite://{}", folder.path().join("bus.db").display())
            }
            Stack::PostgresNats => {
                let postgres = Backend::postgres()?;
                let server = ChildServer::nats()?;
                for service in ["accounts", "chat", "cards", "notifier"] {
                    let database = TestDatabase::create(&postgres).await;
                    database_url.insert(service, database.url.clone());
                    databases.push(database);
                }
                let url = format!("nats://127.0.0.1:{}", server.port());
                nats = Some(server);
                url
            }
        };
        let key = ed25519_dalek::SigningKey::from_bytes(&rand::random())
            .to_pkcs8_pem(Default::default())
            .unwrap()
            .to_string();
        let common = |service: &'static str| {
            HashMap::from([
                ("DATABASE_URL", database_url[service].clone()),
                ("BUS_URL", bus_url.clone()),
                ("LOG_LEVEL", "info".to_owned()),
                ("LOG_FORMAT", "json".to_owned()),
            ])
        };
        let mut env = HashMap::new();
        let mut accounts = common("accounts");
        accounts.insert("JWT_PRIVATE_KEY", key);
        env.insert("accounts", accounts);
        let mut chat = common("chat");
        chat.insert("CACHE_URL", cache_url);
        env.insert("chat", chat);
        let mut cards = common("cards");
        cards.insert("CARDS_ALLOW_ADDRESSES", cards_allow.to_owned());
        env.insert("cards", cards);
        let mut notifier = common("notifier");
        notifier.insert("SMTP_URL", format!("smtp://127.0.0.1:{}", smtp.port()));
        env.insert("notifier", notifier);

        let mut system = Self {
            smtp,
            folder,
            env,
            ports: HashMap::new(),
            children: HashMap::new(),
            _databases: databases,
            _nats: nats,
        };
        for service in ["accounts", "chat", "cards", "notifier"] {
            system.release(service).await;
        }
        for process in Process::ALL {
            system.spawn(process).await;
            if process == Process::Accounts {
                // chat checks tokens with the keys accounts publishes.
                let jwks = system.url(Process::Accounts, "/.well-known/jwks.json");
                system.env.get_mut("chat").unwrap().insert("JWKS_URL", jwks);
            }
        }
        for process in Process::ALL {
            system.wait_ready(process).await;
        }
        Some(system)
    }

    fn command(&self, process_service: &str, args: &[&str], log: &str) -> Command {
        let mut command = Command::new(dozen_testing::up::workspace_binary(process_service));
        let logs = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.folder.path().join(format!("{log}.log")))
            .unwrap();
        command
            .args(args)
            .env_clear()
            .envs(&self.env[process_service])
            .stdin(Stdio::null())
            .stdout(Stdio::from(logs.try_clone().unwrap()))
            .stderr(Stdio::from(logs))
            .kill_on_drop(true);
        command
    }

    /// The release phase of one service; it must succeed.
    async fn release(&self, service: &'static str) {
        let status = self
            .command(service, &["migrate"], &format!("{service}-migrate"))
            .status()
            .await
            .unwrap();
        assert!(
            status.success(),
            "{service} migrate failed:\n{}",
            self.logs()
        );
    }

    /// Starts `process` on a port it picks itself (`PORT=0`), read from
    /// the first line it logs: a port probed free beforehand may be taken by
    /// another test's process before this one binds it.
    pub async fn spawn(&mut self, process: Process) {
        let log = self
            .folder
            .path()
            .join(format!("{}.log", process.log_name()));
        let logged_before = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
        let mut command =
            self.command(process.service(), &[process.command()], &process.log_name());
        command.env("PORT", "0");
        let mut child = command.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let bound = text
                .get(logged_before..)
                .unwrap_or_default()
                .lines()
                .find_map(|line| {
                    let line: serde_json::Value = serde_json::from_str(line).ok()?;
                    (line["message"] == "listening").then(|| line["fields"]["port"].as_u64())?
                });
            if let Some(port) = bound {
                break u16::try_from(port).unwrap();
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{process:?} exited ({status}) before listening:\n{}",
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{process:?} never listened:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        self.ports.insert(process, port);
        self.children.insert(process, child);
    }

    /// A one-off admin process of `service` (`accounts republish …`), with
    /// the service's environment: its exit code, stdout and stderr.
    pub async fn admin(&self, service: &'static str, args: &[&str]) -> (i32, String, String) {
        let mut command = Command::new(dozen_testing::up::workspace_binary(service));
        command
            .args(args)
            .env_clear()
            .envs(&self.env[service])
            .stdin(Stdio::null())
            .stderr(Stdio::piped());
        let output = command.output().await.unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code().unwrap_or(-1), stdout, stderr)
    }

    /// The bus every process uses.
    pub fn bus_url(&self) -> &str {
        &self.env["accounts"]["BUS_URL"]
    }

    /// SIGKILL: no drain, no goodbye.
    pub async fn kill(&mut self, process: Process) {
        let mut child = self.children.remove(&process).unwrap();
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }

    pub fn url(&self, process: Process, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports[&process])
    }

    pub async fn wait_ready(&self, process: Process) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = client.get(self.url(process, "/readyz")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{process:?} never became ready:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Restarts the NATS server on an empty store (a new node, a wiped
    /// volume); the PostgreSQL + NATS stack only.
    pub fn restart_nats_with_nothing_stored(&mut self) {
        self._nats
            .as_mut()
            .expect("a NATS server (the PostgreSQL + NATS stack)")
            .start_empty();
    }

    /// The `DATABASE_URL` of `service`.
    pub fn database_url(&self, service: &str) -> &str {
        &self.env[service]["DATABASE_URL"]
    }

    pub fn maildir(&self) -> PathBuf {
        dozen_testing::mail::maildir(&self.smtp)
    }

    /// The last lines of every process's log, for failure messages.
    pub fn logs(&self) -> String {
        tails(self.folder.path())
    }
}

fn tails(folder: &Path) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(folder) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- {}\n", path.display()));
            for line in &lines[lines.len().saturating_sub(15)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}
