//! Dozen's accounts service: users, credentials and session tokens.
//!
//! `accounts serve` is the web process; `accounts migrate` the release phase.

pub mod app;
pub mod manifest;
pub mod password;
pub mod settings;
pub mod throttle;
pub mod tokens;

mod openapi;
mod routes;
mod store;
mod validation;

pub use app::{migrate, web, AppState};
pub use dozen_runtime::database::MigrateSettings;
pub use routes::router;
pub use settings::Settings;
