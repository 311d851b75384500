//! Everything notifier reads from the environment, checked at start.

use dozen_bus::ProcessSettings;
use dozen_runtime::config::{ConfigError, Env, FromEnv, Secret};
use dozen_runtime::database::DatabaseSettings;
use dozen_runtime::logging::LogSettings;

/// Where mail goes, and whom it is from.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `SMTP_URL` (required): `smtp://host:port` (plain), `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS), `smtps://user:pass@host:465`, or `file://folder` (each mail an `.eml` file).
    pub url: Secret,
    /// `MAIL_FROM` (default `Dozen <no-reply@dozen.localhost>`).
    pub from: String,
}

impl FromEnv for MailSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let url = env.secret("SMTP_URL")?;
        let scheme = url.expose().split_once("://").map(|(s, _)| s);
        if !matches!(scheme, Some("smtp" | "smtps" | "file")) {
            return Err(ConfigError::new(
                "SMTP_URL",
                "must start with smtp://, smtps:// or file://",
            ));
        }
        let from: String = env.or("MAIL_FROM", "Dozen <no-reply@dozen.localhost>".to_owned())?;
        if from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError::new(
                "MAIL_FROM",
                format!("is not a mailbox like `Name <address@host>` (got {from:?})"),
            ));
        }
        Ok(Self { url, from })
    }
}

/// Settings of the worker process (`notifier work`): its ops port, database, bus and mail.
#[derive(Debug)]
pub struct Settings {
    pub process: ProcessSettings,
    pub mail: MailSettings,
}

impl FromEnv for Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            process: ProcessSettings::from_env(env)?,
            mail: MailSettings::from_env(env)?,
        })
    }
}

/// Settings of the admin process `notifier report`.
#[derive(Debug)]
pub struct ReportSettings {
    pub log: LogSettings,
    pub database: DatabaseSettings,
    pub mail: MailSettings,
    /// `REPORT_TO` (required): who gets the report.
    pub to: String,
}

impl FromEnv for ReportSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            log: LogSettings::from_env(env)?,
            database: DatabaseSettings::from_env(env)?,
            mail: MailSettings::from_env(env)?,
            to: mailbox(env, "REPORT_TO")?,
        })
    }
}

fn mailbox(env: &Env, var: &str) -> Result<String, ConfigError> {
    let text: String = env.required(var)?;
    if text.parse::<lettre::message::Mailbox>().is_err() {
        return Err(ConfigError::new(
            var,
            format!("is not a mail address like ops@example.com (got {text:?})"),
        ));
    }
    Ok(text)
}
