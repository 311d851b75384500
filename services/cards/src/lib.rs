//! Dozen's cards: consumes `message.sent`, fetches each URL behind a strict
//! guard, reads its OpenGraph or `<title>` with a real HTML parser, caches
//! the outcome, and publishes `card.created` through its outbox.

pub mod app;
pub mod decode;
pub mod fetch;
pub mod guard;
pub mod manifest;
pub mod parse;
pub mod previews;
pub mod settings;

pub use app::{migrate, worker};
pub use dozen_bus::ReleaseSettings;
pub use settings::Settings;
