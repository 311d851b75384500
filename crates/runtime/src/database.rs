//! The service's database as an attached resource (factor IV), chosen by URL.
//!
//! `DATABASE_URL` may be `sqlite://path` or `postgres://…`; the service code is
//! the same for both (sqlx's `Any` driver, SQL written to run on both). The pool
//! connects lazily, so start-up never waits for the database: `/readyz`
//! answers 503 until it does.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Connection, Executor};

use crate::config::{ConfigError, Env, FromEnv};
use dozen_manifest::{Backing, Var};

/// Which kind of database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database URL; it may hold a password, so it prints with the password hidden.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    backend: Backend,
}

impl DatabaseUrl {
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The full URL, password included, for the one place that connects.
    pub fn expose(&self) -> &str {
        &self.url
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let scheme = url.split_once(':').map(|(s, _)| s).unwrap_or_default();
        let backend = match scheme {
            "sqlite" => Backend::Sqlite,
            "postgres" | "postgresql" => Backend::Postgres,
            _ => {
                return Err("must start with sqlite:// or postgres://".to_owned());
            }
        };
        Ok(Self {
            url: url.to_owned(),
            backend,
        })
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_password(&self.url))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// `scheme://user:secret@host/db` → `scheme://user:***@host/db`: a URL of a
/// backing service as it may be printed or logged.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// `DATABASE_URL` (required), `DATABASE_MAX_CONNECTIONS` (default 10),
/// `DATABASE_ACQUIRE_TIMEOUT` (default 5s).
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl FromEnv for DatabaseSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let max_connections = env.or("DATABASE_MAX_CONNECTIONS", 10_u32)?;
        if max_connections == 0 {
            return Err(ConfigError::new(
                "DATABASE_MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }
        Ok(Self {
            url: env.required("DATABASE_URL")?,
            max_connections,
            acquire_timeout: env.duration_or("DATABASE_ACQUIRE_TIMEOUT", Duration::from_secs(5))?,
        })
    }
}

impl DatabaseSettings {
    /// The variables [`DatabaseSettings::from_env`] reads, for the service's manifest.
    pub fn vars() -> Vec<Var> {
        vec![
            Var::secret(
                "DATABASE_URL",
                "sqlite://data/example.db",
                "the service's own database: postgres:// or sqlite://",
            )
            .attaches(Backing::Database),
            Var::optional("DATABASE_MAX_CONNECTIONS", "pool size (default 10)"),
            Var::optional(
                "DATABASE_ACQUIRE_TIMEOUT",
                "longest wait for a pooled connection (default 5s)",
            ),
        ]
    }
}

/// Errors from attaching the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatabaseError {
    #[error("cannot create the folder for the SQLite file {path}: {source}")]
    CreateFolder {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid database URL {url}: {source}")]
    Url { url: String, source: sqlx::Error },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the database {url}: {source}")]
    Create { url: String, source: sqlx::Error },
}

/// The release phase's first step: a PostgreSQL database that does not
/// exist yet is created (SQLite files are created on connect), so one server
/// can hold a database per service with nothing made by hand.
pub async fn create_if_missing(settings: &DatabaseSettings) -> Result<(), DatabaseError> {
    use sqlx::migrate::MigrateDatabase;
    if settings.url.backend() != Backend::Postgres {
        return Ok(());
    }
    let url = settings.url.expose();
    let failed = |source| DatabaseError::Create {
        url: settings.url.to_string(),
        source,
    };
    if !sqlx::Postgres::database_exists(url).await.map_err(failed)? {
        sqlx::Postgres::create_database(url).await.map_err(failed)?;
        tracing::info!(database = %settings.url, "database created");
    }
    Ok(())
}

/// A pool that connects on first use.
pub fn connect_lazy(settings: &DatabaseSettings) -> Result<AnyPool, DatabaseError> {
    sqlx::any::install_default_drivers();
    let url = match settings.url.backend() {
        Backend::Sqlite => prepare_sqlite_url(settings.url.expose())?,
        Backend::Postgres => settings.url.expose().to_owned(),
    };
    let options = AnyConnectOptions::from_str(&url).map_err(|source| DatabaseError::Url {
        url: settings.url.to_string(),
        source,
    })?;
    let is_sqlite = settings.url.backend() == Backend::Sqlite;
    Ok(AnyPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if is_sqlite {
                    // WAL lets several processes on one host read while one writes.
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = NORMAL",
                        "PRAGMA busy_timeout = 5000",
                        "PRAGMA foreign_keys = ON",
                    ] {
                        conn.execute(pragma).await?;
                    }
                }
                Ok(())
            })
        })
        .connect_lazy_with(options))
}

/// Creates the file's folder and asks SQLite to create the file when missing.
fn prepare_sqlite_url(url: &str) -> Result<String, DatabaseError> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path.starts_with(':') {
        return Ok(url.to_owned()); // in-memory
    }
    if let Some(folder) = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(folder).map_err(|source| DatabaseError::CreateFolder {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(if query.contains("mode=") {
        url.to_owned()
    } else if query.is_empty() {
        format!("{url}?mode=rwc")
    } else {
        format!("{url}&mode=rwc")
    })
}

/// Answers `Ok` when the database takes a query; the readiness check.
pub async fn ping(pool: &AnyPool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    conn.ping().await
}

/// Applies the migrations embedded in the binary; safe to run again.
pub async fn migrate(pool: &AnyPool, migrator: &Migrator) -> Result<(), DatabaseError> {
    migrator.run(pool).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_prints_without_its_password() {
        let url: DatabaseUrl = "postgres://app:s3cret@db.internal:5432/accounts?sslmode=require"
            .parse()
            .unwrap();
        let shown = format!("{url} {url:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("postgres://app:***@db.internal:5432/accounts?sslmode=require"));
    }

    #[test]
    fn an_unknown_database_scheme_is_refused() {
        let env = Env::from_pairs([("DATABASE_URL", "mysql://localhost/x")]);
        let err = DatabaseSettings::from_env(&env).unwrap_err();
        assert_eq!(err.var, "DATABASE_URL");
        assert!(err.problem.contains("sqlite:// or postgres://"), "{err}");
    }

    #[test]
    fn sqlite_urls_gain_create_mode_and_keep_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/app.db");
        let url = format!("sqlite://{}", path.display());
        assert_eq!(prepare_sqlite_url(&url).unwrap(), format!("{url}?mode=rwc"));
        assert!(path.parent().unwrap().is_dir());
        let read_only = format!("{url}?mode=ro");
        assert_eq!(prepare_sqlite_url(&read_only).unwrap(), read_only);
    }
}

/// Settings of a service's release phase (`<service> migrate`): only what it touches.
#[derive(Debug)]
pub struct MigrateSettings {
    pub log: crate::logging::LogSettings,
    pub database: DatabaseSettings,
}

impl FromEnv for MigrateSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            log: crate::logging::LogSettings::from_env(env)?,
            database: DatabaseSettings::from_env(env)?,
        })
    }
}
