//! notifier against a real SMTP server, a real bus and its own database.

mod helpers;
mod kill;
mod mail;
mod report;
