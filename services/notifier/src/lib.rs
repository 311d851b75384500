//! Dozen's notifier: consumes `user.signed_up` (a welcome mail, and its own
//! directory of users), `message.sent` (a mail to each @mentioned user) and
//! `card.created`; keeps daily counts, which `notifier report` e-mails.

pub mod app;
pub mod handlers;
pub mod mail;
pub mod manifest;
pub mod report;
pub mod settings;
pub mod store;

pub use app::{migrate, worker};
pub use dozen_bus::ReleaseSettings;
pub use settings::{MailSettings, ReportSettings, Settings};
