//! `<service> republish`: the events a service published before, sent
//! again from its outbox's log with their own ids — the repair after a
//! broker lost events (a subscription deleted, a server on an empty store).
//!
//! Every consumer claims an event's id in its inbox with its effect, so the
//! subscriptions that handled an event absorb the copy, and only those that
//! lost it act: a republish repeats no effect. The log keeps what the relay
//! published for `OUTBOX_RETENTION` (7 days unless set); older events are
//! gone from it and the summary says from when it holds them.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::IsTerminal;

use dozen_runtime::clock::{parse_moment, rfc3339_from_millis};
use dozen_runtime::text::counted;
use sqlx::{AnyPool, Row};

use crate::backend::{Bus, BusError};
use crate::event::Event;
use crate::process::ReleaseSettings;

/// Rows read, and events sent, at a time.
const PAGE: i64 = 500;

/// Which events to send again: the command line of `<service> republish`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).multiple(true).args(["since", "events"])))]
pub struct Selection {
    /// Events committed at or after this: an RFC 3339 time
    /// (`2026-11-30T10:00:00Z`) or a time ago (`2h`, `7d`).
    #[arg(long, value_parser = parse_moment, value_name = "TIME")]
    pub since: Option<i64>,
    /// Events committed before this (the same forms); default: now.
    #[arg(long, value_parser = parse_moment, value_name = "TIME")]
    pub until: Option<i64>,
    /// Only the event with this id (repeat for several).
    #[arg(long = "event", value_name = "ID")]
    pub events: Vec<String>,
    /// Only events of this topic, e.g. `user.signed_up` (repeat for several).
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Count what would be sent; send nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl Selection {
    /// Why this selection cannot be what its caller meant, for a service
    /// that publishes `topics`: an empty time range, or a topic it never
    /// publishes (a typo would otherwise repair nothing, silently).
    pub fn problem(&self, topics: &[String]) -> Option<String> {
        if let (Some(since), Some(until)) = (self.since, self.until) {
            if until <= since {
                return Some(format!(
                    "--until ({}) must be after --since ({})",
                    rfc3339_from_millis(until),
                    rfc3339_from_millis(since)
                ));
            }
        }
        self.topics
            .iter()
            .find(|topic| !topics.contains(topic))
            .map(|topic| {
                format!(
                    "this service does not publish {topic:?}; it publishes {}",
                    topics.join(", ")
                )
            })
    }

    fn takes(&self, topic: &str, event: &Event) -> bool {
        (self.topics.is_empty() || self.topics.iter().any(|t| t == topic))
            && (self.events.is_empty() || self.events.contains(&event.id))
    }
}

/// What a republish sent (or, dry, would send).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub dry_run: bool,
    /// Events sent per topic.
    pub sent: BTreeMap<String, u64>,
    /// Selected events not published yet: the relay sends them anyway.
    pub waiting: u64,
    /// Ids asked for that the log does not hold (never published here, or
    /// older than it keeps).
    pub not_found: Vec<String>,
    /// When the oldest event the log holds was committed (ms since the epoch).
    pub kept_since: Option<i64>,
}

impl Summary {
    pub fn total(&self) -> u64 {
        self.sent.values().sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "would republish"
        } else {
            "republished"
        };
        write!(f, "{verb} {}", counted(self.total(), "event", "events"))?;
        let topics: Vec<String> = self.sent.iter().map(|(t, n)| format!("{t}: {n}")).collect();
        if !topics.is_empty() {
            write!(f, " ({})", topics.join(", "))?;
        }
        if self.waiting > 0 {
            write!(
                f,
                "; {} not published yet (the relay sends them)",
                self.waiting
            )?;
        }
        if !self.not_found.is_empty() {
            write!(f, "; not in the log: {}", self.not_found.join(", "))?;
        }
        match self.kept_since {
            Some(at) => write!(
                f,
                "; the log holds events since {}",
                rfc3339_from_millis(at)
            ),
            None => write!(f, "; the log holds no published event"),
        }
    }
}

/// Why a republish stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepublishError {
    #[error("the outbox's database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("an event in the outbox does not decode: {0}")]
    Decode(#[from] serde_json::Error),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Sends the published events of `pool`'s outbox that `selection` takes to
/// `bus` again, oldest first, runs of one topic together ([`Bus::republish`]:
/// past any duplicate window of the broker). `on_sent` hears how many went
/// with each call to the bus. Safe to repeat and to interrupt.
pub async fn republish(
    pool: &AnyPool,
    bus: &dyn Bus,
    selection: &Selection,
    on_sent: impl FnMut(u64),
) -> Result<Summary, RepublishError> {
    let (mut summary, found) = scan(
        pool,
        bus,
        selection,
        |topic, event| selection.takes(topic, event),
        on_sent,
    )
    .await?;
    summary.not_found = selection
        .events
        .iter()
        .filter(|id| !found.contains(*id))
        .cloned()
        .collect();
    Ok(summary)
}

/// As [`republish`], for the events committed in `selection`'s time range
/// that `takes(topic, event)` picks (its ids and topics are not looked at):
/// a service's own repair, which knows its events by their data.
pub async fn republish_where(
    pool: &AnyPool,
    bus: &dyn Bus,
    selection: &Selection,
    takes: impl Fn(&str, &Event) -> bool,
    on_sent: impl FnMut(u64),
) -> Result<Summary, RepublishError> {
    Ok(scan(pool, bus, selection, takes, on_sent).await?.0)
}

/// The log in id order, in pages; returns the summary and the ids taken.
async fn scan(
    pool: &AnyPool,
    bus: &dyn Bus,
    selection: &Selection,
    takes: impl Fn(&str, &Event) -> bool,
    mut on_sent: impl FnMut(u64),
) -> Result<(Summary, HashSet<String>), RepublishError> {
    let since = selection.since.unwrap_or(0);
    let until = selection.until.unwrap_or(i64::MAX);
    let mut summary = Summary {
        dry_run: selection.dry_run,
        kept_since: sqlx::query_scalar(
            "SELECT MIN(created_at) FROM bus_outbox WHERE published_at IS NOT NULL",
        )
        .fetch_one(pool)
        .await?,
        ..Summary::default()
    };
    let mut found = HashSet::new();
    let mut declared = HashSet::new();
    let mut after = 0_i64;
    loop {
        let rows = sqlx::query(
            "SELECT id, topic, body, published_at FROM bus_outbox
             WHERE id > $1 AND created_at >= $2 AND created_at < $3 ORDER BY id LIMIT $4",
        )
        .bind(after)
        .bind(since)
        .bind(until)
        .bind(PAGE)
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get(0)?;
        let mut run: Vec<(String, Event)> = Vec::new();
        for row in &rows {
            let topic: String = row.try_get(1)?;
            let event: Event = serde_json::from_str(&row.try_get::<String, _>(2)?)?;
            if !takes(&topic, &event) {
                continue;
            }
            found.insert(event.id.clone());
            if row.try_get::<Option<i64>, _>(3)?.is_none() {
                summary.waiting += 1;
                continue;
            }
            *summary.sent.entry(topic.clone()).or_default() += 1;
            run.push((topic, event));
        }
        if !selection.dry_run {
            send(bus, &run, &mut declared, &mut on_sent).await?;
        } else if !run.is_empty() {
            on_sent(run.len() as u64);
        }
    }
    Ok((summary, found))
}

/// Publishes `events` in their order, each run of one topic in one call.
async fn send(
    bus: &dyn Bus,
    events: &[(String, Event)],
    declared: &mut HashSet<String>,
    on_sent: &mut impl FnMut(u64),
) -> Result<(), BusError> {
    for run in events.chunk_by(|(a, _), (b, _)| a == b) {
        let topic = &run[0].0;
        if declared.insert(topic.clone()) {
            bus.declare_topic(topic).await?;
        }
        let batch: Vec<Event> = run.iter().map(|(_, event)| event.clone()).collect();
        bus.republish(topic, &batch).await?;
        on_sent(batch.len() as u64);
    }
    Ok(())
}

/// `<service> republish …` for a service that publishes `topics` (its
/// manifest's): a selection that cannot be meant exits 2 with the reason (as
/// clap's own errors do); otherwise reads `DATABASE_URL` and `BUS_URL`,
/// sends the selected events again, and prints the summary on stdout (a
/// progress bar on stderr when stdout is a terminal).
pub async fn run(
    service: &'static str,
    topics: &[String],
    settings: ReleaseSettings,
    selection: Selection,
) -> anyhow::Result<()> {
    use anyhow::Context;
    if let Some(problem) = selection.problem(topics) {
        clap::Error::raw(
            clap::error::ErrorKind::ValueValidation,
            format!("{problem}\n"),
        )
        .exit();
    }
    dozen_runtime::logging::init(service, &settings.migrate.log);
    let db = dozen_runtime::database::connect_lazy(&settings.migrate.database)?;
    let bus = crate::settings::connect(&settings.bus.url).await?;
    let progress = if std::io::stdout().is_terminal() {
        indicatif::ProgressBar::new_spinner().with_message("events republished")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let summary = republish(&db, bus.as_ref(), &selection, |n| progress.inc(n))
        .await
        .context("republishing")?;
    progress.finish_and_clear();
    db.close().await;
    println!("{summary}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_with_an_empty_range_or_a_topic_never_published_is_refused() {
        let topics = vec!["user.signed_up".to_owned()];
        let range = |since, until| Selection {
            since: Some(since),
            until: Some(until),
            ..Selection::default()
        };
        assert_eq!(range(0, 1).problem(&topics), None);
        for empty in [range(5, 5), range(5, 1)] {
            assert!(empty.problem(&topics).unwrap().contains("must be after"));
        }
        let typo = Selection {
            since: Some(0),
            topics: vec!["user.signed_up".into(), "user.signup".into()],
            ..Selection::default()
        };
        assert_eq!(
            typo.problem(&topics).unwrap(),
            "this service does not publish \"user.signup\"; it publishes user.signed_up"
        );
    }

    #[test]
    fn the_summary_names_what_went_what_waits_and_what_the_log_lacks() {
        let summary = Summary {
            dry_run: false,
            sent: [("user.signed_up".to_owned(), 2)].into(),
            waiting: 1,
            not_found: vec!["e9".into()],
            kept_since: Some(0),
        };
        assert_eq!(
            summary.to_string(),
            "republished 2 events (user.signed_up: 2); 1 not published yet (the relay sends them); \
             not in the log: e9; the log holds events since 1970-01-01T00:00:00Z"
        );
        let one = Summary {
            sent: [("user.signed_up".to_owned(), 1)].into(),
            kept_since: Some(0),
            ..Summary::default()
        };
        assert!(
            one.to_string()
                .starts_with("republished 1 event (user.signed_up: 1);"),
            "{one}"
        );
        let dry = Summary {
            dry_run: true,
            ..Summary::default()
        };
        assert_eq!(
            dry.to_string(),
            "would republish 0 events; the log holds no published event"
        );
    }
}
