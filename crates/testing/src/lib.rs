//! Test support shared by Dozen's crates.
//!
//! - [`TestDatabase`]: a database of the test's own, a temporary SQLite file or a
//!   fresh PostgreSQL database on the server named by `TEST_POSTGRES_URL`.
//! - [`on_every_database!`]: runs one async test body on each [`Backend`].
//! - [`TcpProxy`]: a real network outage between a client and its server.
//! - [`required_server`]: the URL of a server a test needs, from an env var;
//!   skipped with a printed reason locally, a failure in CI.

mod database;
mod proxy;

pub use database::{Backend, TestDatabase};
pub use proxy::TcpProxy;

/// The URL in `var`, when set. Without it the test is skipped with a printed
/// reason, except in CI (`CI` set), where a missing server is a failure.
pub fn required_server(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{var} must be set in CI: {what} tests may not be skipped")
        }
        _ => {
            eprintln!("skipped: {var} is not set, so this {what} test did not run");
            None
        }
    }
}
