//! Configuration from the environment only (factor III).
//!
//! A service describes its settings as a struct implementing [`FromEnv`]; the
//! values come from an [`Env`] snapshot, so tests can build one from pairs
//! without touching the process environment. The first problem stops start-up
//! with exit code 2 and one line naming the variable ([`load_or_exit`]).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A variable that is missing or cannot be used, named so an operator can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var} {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: String,
    /// What is wrong with it, phrased to follow the name.
    pub problem: String,
}

impl ConfigError {
    pub fn new(var: &str, problem: impl Into<String>) -> Self {
        Self {
            var: var.to_owned(),
            problem: problem.into(),
        }
    }
}

/// Settings that can be read from the environment.
pub trait FromEnv: Sized {
    fn from_env(env: &Env) -> Result<Self, ConfigError>;
}

/// A snapshot of environment variables.
///
/// It remembers the name of every variable asked for, so a test can check a
/// service's declared variables ([`dozen_manifest::Manifest`]) against what
/// its settings really read.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
    asked: Arc<Mutex<BTreeSet<String>>>,
}

impl Env {
    /// The process environment; variables that are not UTF-8 are left out.
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            asked: Arc::default(),
        }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            asked: Arc::default(),
        }
    }

    /// Every variable name asked for so far, set or not (clones share the record).
    pub fn asked(&self) -> BTreeSet<String> {
        self.asked.lock().map(|a| a.clone()).unwrap_or_default()
    }

    /// The raw value; an empty value counts as unset, as most shells and env files mean it.
    pub fn raw(&self, var: &str) -> Option<&str> {
        if let Ok(mut asked) = self.asked.lock() {
            asked.insert(var.to_owned());
        }
        self.vars
            .get(var)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// A value that must be present and parse as `T`.
    pub fn required<T>(&self, var: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let raw = self
            .raw(var)
            .ok_or_else(|| ConfigError::new(var, "is missing: set it in the environment"))?;
        parse(var, raw)
    }

    /// A value that may be absent.
    pub fn optional<T>(&self, var: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.raw(var).map(|raw| parse(var, raw)).transpose()
    }

    /// A value with a default for when it is absent.
    pub fn or<T>(&self, var: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        Ok(self.optional(var)?.unwrap_or(default))
    }

    /// A duration such as `25s`, `500ms` or `2m`.
    pub fn duration_or(&self, var: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.raw(var) {
            None => Ok(default),
            Some(raw) => humantime::parse_duration(raw.trim()).map_err(|e| {
                ConfigError::new(
                    var,
                    format!("must be a duration such as 25s or 500ms, got {raw:?} ({e})"),
                )
            }),
        }
    }

    /// A secret: required, and its value never appears in an error message.
    pub fn secret(&self, var: &str) -> Result<Secret, ConfigError> {
        self.raw(var)
            .map(|v| Secret::new(v.to_owned()))
            .ok_or_else(|| ConfigError::new(var, "is missing: set it in the environment"))
    }
}

fn parse<T>(var: &str, raw: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    raw.trim()
        .parse()
        .map_err(|e| ConfigError::new(var, format!("is invalid: {e} (got {raw:?})")))
}

/// A value that must never reach a log line: `Debug` and `Display` show a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Reads settings or stops the process: exit code 2 and one line on stderr naming the variable.
///
/// Logging is not set up yet at this point (its own variables may be the bad
/// ones), so the line is plain text on stderr.
pub fn load_or_exit<T: FromEnv>(service: &str, env: &Env) -> T {
    T::from_env(env).unwrap_or_else(|error| {
        eprintln!("{service}: configuration error: {error}");
        std::process::exit(2)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_variable_is_named_in_the_error() {
        let env = Env::from_pairs([]);
        let err = env.required::<u16>("PORT").unwrap_err();
        assert_eq!(
            err.to_string(),
            "PORT is missing: set it in the environment"
        );
    }

    #[test]
    fn a_malformed_variable_says_what_it_got() {
        let env = Env::from_pairs([("PORT", "eighty")]);
        let err = env.required::<u16>("PORT").unwrap_err();
        assert!(err.to_string().starts_with("PORT is invalid: "), "{err}");
        assert!(err.to_string().contains("\"eighty\""), "{err}");
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        let env = Env::from_pairs([("PORT", " ")]);
        assert_eq!(env.or("PORT", 8080_u16).unwrap(), 8080);
    }

    #[test]
    fn durations_accept_human_units_and_reject_bare_numbers() {
        let env = Env::from_pairs([("A", "250ms"), ("B", "25")]);
        let default = Duration::from_secs(1);
        assert_eq!(
            env.duration_or("A", default).unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(env.duration_or("C", default).unwrap(), default);
        let err = env.duration_or("B", default).unwrap_err();
        assert_eq!(err.var, "B");
    }

    #[test]
    fn the_environment_remembers_every_name_asked_for() {
        let env = Env::from_pairs([("PORT", "8080")]);
        let _ = env.required::<u16>("PORT");
        let _ = env.optional::<u16>("HOST");
        let _ = env.clone().secret("KEY");
        let asked: Vec<String> = env.asked().into_iter().collect();
        assert_eq!(asked, ["HOST", "KEY", "PORT"]);
    }

    #[test]
    fn a_secret_never_shows_its_value() {
        let env = Env::from_pairs([("KEY", "hunter2")]);
        let secret = env.secret("KEY").unwrap();
        assert_eq!(secret.expose(), "hunter2");
        assert!(!format!("{secret:?} {secret}").contains("hunter2"));
    }
}
