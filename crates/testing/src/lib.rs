//! Test support shared by Dozen's crates.
//!
//! - [`TestDatabase`]: a database of the test's own, a temporary SQLite file or a
//!   fresh PostgreSQL database on the server named by `TEST_POSTGRES_URL`.
//! - [`on_every_database!`]: runs one async test body on each [`Backend`].
//! - [`TcpProxy`]: a real network outage between a client and its server.
//! - [`ChildServer`]: a broker of the test's own, to stop and start.
//! - [`required_server`]: the URL of a server a test needs, from an env var;
//!   skipped with a printed reason locally, a failure in CI.
//! - [`up::DozenUp`]: `dozen up` as a child process, the whole system.

mod database;
mod proxy;
mod server;

pub mod mail;
pub mod manifest;
pub mod metrics;
pub mod up;

pub use database::{Backend, TestDatabase};
pub use proxy::TcpProxy;
pub use server::{free_port, ChildServer};

/// The URL in `var`, when set. Without it the test is skipped with a printed
/// reason, except in CI (`CI` set), where a missing server is a failure.
pub fn required_server(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => skip_unless_ci(&format!(
            "{var} is not set, so this {what} test did not run"
        )),
    }
}

/// `None` with the reason printed; in CI a panic, since nothing may be skipped there.
pub fn skip_unless_ci<T>(reason: &str) -> Option<T> {
    if std::env::var_os("CI").is_some() {
        panic!("in CI nothing may be skipped, but {reason}");
    }
    eprintln!("skipped: {reason}");
    None
}
