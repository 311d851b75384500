//! Logs as an event stream (factor XI): one JSON object per line on stdout.
//!
//! Each line carries `timestamp`, `level`, `service`, `target`, `message`,
//! `request_id` (when the event happens inside a request) and `fields` (the
//! event's own fields and those of the spans around it). Lines are written
//! synchronously, whole, with no buffer of our own, so nothing is lost when the
//! process exits. Nothing is ever written to a file: routing logs is the
//! platform's job. On a terminal, or with `LOG_FORMAT=pretty`, lines are for humans.

use std::io::{IsTerminal, Write};

use serde::Serialize;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{ConfigError, Env, FromEnv};
use dozen_manifest::Var;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// `LOG_FORMAT` (`json`, `pretty`; default: pretty on a terminal, JSON otherwise)
/// and `LOG_LEVEL` or `RUST_LOG` (an `EnvFilter` directive; default `info`).
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

impl FromEnv for LogSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let format = match env.raw("LOG_FORMAT").map(str::trim) {
            None if std::io::stdout().is_terminal() => LogFormat::Pretty,
            None | Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(ConfigError::new(
                    "LOG_FORMAT",
                    format!("must be json or pretty, got {other:?}"),
                ))
            }
        };
        let (var, filter) = ["LOG_LEVEL", "RUST_LOG"]
            .into_iter()
            .find_map(|var| env.raw(var).map(|value| (var, value.trim().to_owned())))
            .unwrap_or(("LOG_LEVEL", "info".to_owned()));
        EnvFilter::try_new(&filter).map_err(|e| {
            ConfigError::new(
                var,
                format!("must be a level such as info or debug, got {filter:?} ({e})"),
            )
        })?;
        Ok(Self { format, filter })
    }
}

impl LogSettings {
    /// The variables [`LogSettings::from_env`] reads, for the service's manifest.
    pub fn vars() -> Vec<Var> {
        vec![
            Var::optional(
                "LOG_FORMAT",
                "json or pretty (default: pretty on a terminal)",
            ),
            Var::optional(
                "LOG_LEVEL",
                "a filter such as info or chat=debug (default info)",
            ),
            Var::optional("RUST_LOG", "read when LOG_LEVEL is not set"),
        ]
    }
}

/// Installs the global subscriber. Call once, after the settings are read.
pub fn init(service: &'static str, settings: &LogSettings) {
    let filter = EnvFilter::new(&settings.filter);
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match settings.format {
        LogFormat::Json => registry.with(JsonLines { service }).try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stdout))
            .try_init(),
    };
    // A second init (tests start several apps in one process) keeps the first.
    drop(installed);
}

/// The fields recorded on a span, kept in its extensions for the events inside it.
struct SpanFields(Map<String, Value>);

struct JsonLines {
    service: &'static str,
}

#[derive(Serialize)]
struct Line<'a> {
    timestamp: String,
    level: &'a str,
    service: &'a str,
    target: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<Value>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    fields: Map<String, Value>,
}

impl<S> Layer<S> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = FieldCollector::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields.fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            let mut collector = FieldCollector {
                fields: std::mem::take(fields),
                message: None,
            };
            values.record(&mut collector);
            *fields = collector.fields;
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(span_fields)) = span.extensions().get::<SpanFields>() {
                    fields.extend(span_fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        let mut collector = FieldCollector {
            fields,
            message: None,
        };
        event.record(&mut collector);
        let mut fields = collector.fields;
        let metadata = event.metadata();
        let line = Line {
            timestamp: crate::clock::now_rfc3339(),
            level: metadata.level().as_str(),
            service: self.service,
            target: metadata.target(),
            message: collector.message.unwrap_or_default(),
            request_id: fields.remove("request_id"),
            fields,
        };
        if let Ok(mut bytes) = serde_json::to_vec(&line) {
            bytes.push(b'\n');
            // One write per line: lines from many threads never interleave.
            let _ = std::io::stdout().lock().write_all(&bytes);
        }
    }
}

#[derive(Default)]
struct FieldCollector {
    fields: Map<String, Value>,
    message: Option<String>,
}

impl FieldCollector {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.fields.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for FieldCollector {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(error_chain(value)));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

/// An error and its causes on one line: `outer: inner: root`.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_log_level_names_the_variable() {
        let env = Env::from_pairs([("LOG_LEVEL", "loud=!!")]);
        let err = LogSettings::from_env(&env).unwrap_err();
        assert_eq!(err.var, "LOG_LEVEL");
    }

    #[test]
    fn log_level_wins_over_rust_log() {
        let env = Env::from_pairs([("LOG_LEVEL", "debug"), ("RUST_LOG", "warn")]);
        assert_eq!(LogSettings::from_env(&env).unwrap().filter, "debug");
    }

    #[test]
    fn an_unknown_log_format_is_refused() {
        let env = Env::from_pairs([("LOG_FORMAT", "xml")]);
        assert_eq!(LogSettings::from_env(&env).unwrap_err().var, "LOG_FORMAT");
    }
}
