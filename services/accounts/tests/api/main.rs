//! accounts, tested through its HTTP API (in-process, on SQLite and PostgreSQL)
//! and as a real child process for the factor tests.

mod helpers;

mod bad_input;
mod events;
mod factors;
mod ops;
mod sessions;
mod tokens;
mod users;
