//! A database of the test's own.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Connection;

/// Which database a test runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    /// The server URL, from `TEST_POSTGRES_URL`.
    Postgres(String),
}

impl Backend {
    /// The machine's PostgreSQL, when `TEST_POSTGRES_URL` names it. In CI a missing
    /// URL is a failure, never a silent skip.
    pub fn postgres() -> Option<Self> {
        crate::required_server("TEST_POSTGRES_URL", "PostgreSQL").map(Self::Postgres)
    }
}

/// Runs an async test body once per database: `mod sqlite` and `mod postgres`.
#[macro_export]
macro_rules! on_every_database {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(backend) = $crate::Backend::postgres() {
                        super::$test(backend).await
                    }
                }
            )*
        }
    };
}

/// A database of its own for one test: a temporary SQLite file, or a fresh
/// PostgreSQL database named `dozen_test_<unix time>_<random>`.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// An existing database the test does not own (e.g. one that is unreachable).
    pub fn at(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            _dir: None,
        }
    }

    pub async fn create(backend: &Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary folder");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                Self {
                    url,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres(server) => Self {
                url: create_postgres_database(server).await,
                _dir: None,
            },
        }
    }
}

async fn create_postgres_database(server: &str) -> String {
    let mut admin = sqlx::PgConnection::connect(server)
        .await
        .expect("connect to TEST_POSTGRES_URL");
    sweep_old_test_databases(&mut admin).await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let name = format!("dozen_test_{now}_{}", uuid::Uuid::new_v4().simple());
    sqlx::Executor::execute(&mut admin, format!(r#"CREATE DATABASE "{name}""#).as_str())
        .await
        .expect("create test database");
    with_database(server, &name)
}

/// Drops test databases older than an hour, left by earlier runs.
async fn sweep_old_test_databases(admin: &mut sqlx::PgConnection) {
    static SWEPT: OnceLock<()> = OnceLock::new();
    if SWEPT.set(()).is_err() {
        return;
    }
    let names: Vec<(String,)> =
        sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'dozen_test_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (name,) in names {
        let created: Option<u64> = name.split('_').nth(2).and_then(|t| t.parse().ok());
        if created.is_some_and(|t| t + 3600 < now) {
            let _ = sqlx::Executor::execute(
                &mut *admin,
                format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str(),
            )
            .await;
        }
    }
}

/// The server URL with its database name replaced.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = server.split_once('?').unwrap_or((server, ""));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    if query.is_empty() {
        format!("{base}/{name}")
    } else {
        format!("{base}/{name}?{query}")
    }
}
