//! Dozen's chat service: rooms, memberships, messages and their cards.
//!
//! `chat serve` is the web process (API and live stream), `chat work` the
//! worker (user directory, cards), `chat migrate` the release phase and
//! `chat archive` the admin process that moves old messages to cold storage;
//! `chat republish` and `chat repair` mend what lost events left behind.

pub mod app;
pub mod archive;
pub mod handlers;
pub mod known;
pub mod live;
pub mod manifest;
pub mod model;
mod openapi;
pub mod posting;
pub mod repair;
pub mod settings;
pub mod text;

mod routes;
mod store;

/// The statement `GET /v1/rooms/{id}/messages` runs, for the benchmarks' ceiling.
pub use store::PAGE_SELECT;

pub use app::{migrate, web, worker, AppState};
pub use dozen_bus::ReleaseSettings;
pub use routes::router;
pub use settings::{ArchiveSettings, Settings, WorkerSettings};
