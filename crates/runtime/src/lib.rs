//! The Dozen service runtime: what makes a Rust binary a 12-factor service.
//!
//! - [`config`]: settings from the environment only, typed and checked at start (III).
//! - [`logging`]: one JSON event per line on stdout (XI).
//! - [`database`]: the database attached by URL, SQLite or Postgres (IV).
//! - [`http`]: port binding (VII), health, readiness, metrics, standard middleware.
//! - [`shutdown`]: SIGTERM drains, a second signal exits (IX).
//! - [`trace`]: W3C trace context carried through requests and events.
//!
//! A service's `main` reads its settings with [`config::load_or_exit`], starts
//! logging, builds its router and hands it to [`http::HttpServer::serve`].

pub mod clock;
pub mod command;
pub mod config;
pub mod database;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod shutdown;
pub mod text;
pub mod trace;

use serde::Serialize;

/// Who is answering: shown by `/healthz` (factor V: which build, which release).
#[derive(Debug, Clone, Serialize)]
pub struct ServiceInfo {
    pub service: &'static str,
    pub version: &'static str,
    pub git_commit: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_id: Option<String>,
}

impl ServiceInfo {
    pub fn new(service: &'static str, version: &'static str, git_commit: &'static str) -> Self {
        Self {
            service,
            version,
            git_commit,
            release_id: None,
        }
    }

    pub fn with_release_id(mut self, release_id: Option<String>) -> Self {
        self.release_id = release_id;
        self
    }
}

/// The calling crate's [`ServiceInfo`]; its `build.rs` must call `dozen_build_info::emit()`.
#[macro_export]
macro_rules! service_info {
    ($service:expr) => {
        $crate::ServiceInfo::new(
            $service,
            env!("CARGO_PKG_VERSION"),
            env!("DOZEN_GIT_COMMIT"),
        )
    };
}
