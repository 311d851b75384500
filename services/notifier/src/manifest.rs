//! What notifier needs to run, for `notifier describe` and `dozen export`.

use dozen_bus::ProcessSettings;
use dozen_manifest::{Backing, Manifest, Role, Var};

use crate::handlers;

pub fn manifest() -> Manifest {
    Manifest::new(
        "notifier",
        "Welcome, mention and card mail; the daily report.",
    )
    .command("work", Role::Worker)
    .command("migrate", Role::Release)
    .command("report", Role::Admin)
    .vars(ProcessSettings::vars())
    .vars([
        Var::secret(
            "SMTP_URL",
            "file://data/mail",
            "where mail goes: smtp://, smtps:// (with credentials) or file://<folder>",
        )
        .attaches(Backing::Mail),
        Var::optional(
            "MAIL_FROM",
            "the sender (default Dozen <no-reply@dozen.localhost>)",
        ),
        Var::required(
            "REPORT_TO",
            "ops@dozen.localhost",
            "who gets `notifier report`'s mail",
        ),
    ])
    .subscribes(handlers::subscriptions().iter().map(|s| s.declared()))
}

#[cfg(test)]
dozen_testing::manifest_agrees_with_settings!(
    manifest(),
    crate::Settings,
    crate::ReleaseSettings,
    crate::ReportSettings
);
