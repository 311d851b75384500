//! chat, tested through its HTTP API and its events (in-process, on SQLite
//! and PostgreSQL), and its archive command as a real child process.

mod helpers;

mod archive;
mod bad_input;
mod edits;
mod keys;
mod live;
mod messages;
mod repair;
mod rooms;
mod stream;
mod worker;
