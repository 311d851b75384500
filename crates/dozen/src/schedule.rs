//! The schedule: jobs declared once (`schedule` file), run by the `clock`
//! process here and turned into CronJobs and scheduled tasks when deployed.
//!
//! `<name>: <minute> <hour> <day of month> <month> <day of week> | <command>`,
//! one per line, times in UTC, `#` comments. Fields take `*`, numbers, ranges
//! `a-b`, lists `a,b` and steps `*/n` or `a-b/n`; days of week run 0–6 from Sunday.

use std::collections::BTreeSet;

use time::{Duration, OffsetDateTime};

/// A five-field cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    pub text: String,
    minutes: BTreeSet<u8>,
    hours: BTreeSet<u8>,
    days: BTreeSet<u8>,
    months: BTreeSet<u8>,
    weekdays: BTreeSet<u8>,
    /// Day of month and day of week both restricted: either matches (as cron does).
    either_day: bool,
}

fn field(text: &str, min: u8, max: u8, what: &str) -> Result<BTreeSet<u8>, String> {
    let mut values = BTreeSet::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (
                range,
                step.parse::<u8>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{what}: bad step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        let number = |n: &str| {
            n.parse::<u8>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| format!("{what}: {n:?} is not in {min}–{max}"))
        };
        let (from, to) = match range {
            "*" => (min, max),
            _ => match range.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None if part.contains('/') => (number(range)?, max),
                None => (number(range)?, number(range)?),
            },
        };
        if from > to {
            return Err(format!("{what}: the range {range:?} runs backwards"));
        }
        values.extend((from..=to).step_by(step as usize));
    }
    Ok(values)
}

impl Cron {
    pub fn parse(text: &str) -> Result<Self, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(format!("{text:?}: a cron expression has five fields"));
        };
        Ok(Self {
            text: fields.join(" "),
            minutes: field(minute, 0, 59, "minute")?,
            hours: field(hour, 0, 23, "hour")?,
            days: field(day, 1, 31, "day of month")?,
            months: field(month, 1, 12, "month")?,
            weekdays: field(weekday, 0, 6, "day of week")?,
            either_day: day != "*" && weekday != "*",
        })
    }

    pub fn matches(&self, at: OffsetDateTime) -> bool {
        let day = self.days.contains(&at.day());
        let weekday = self
            .weekdays
            .contains(&at.weekday().number_days_from_sunday());
        let day_ok = if self.either_day {
            day || weekday
        } else {
            day && weekday
        };
        self.minutes.contains(&at.minute())
            && self.hours.contains(&at.hour())
            && self.months.contains(&(at.month() as u8))
            && day_ok
    }

    /// The latest slot at or before `at`, looking back at most `horizon`.
    pub fn latest_at_or_before(
        &self,
        at: OffsetDateTime,
        horizon: Duration,
    ) -> Option<OffsetDateTime> {
        let mut slot = truncate_to_minute(at);
        let oldest = at - horizon;
        while slot >= oldest {
            if self.matches(slot) {
                return Some(slot);
            }
            slot -= Duration::MINUTE;
        }
        None
    }

    /// The first slot after `at` (within about four years).
    pub fn next_after(&self, at: OffsetDateTime) -> Option<OffsetDateTime> {
        let mut slot = truncate_to_minute(at) + Duration::MINUTE;
        let limit = at + Duration::days(4 * 366);
        while slot <= limit {
            if self.matches(slot) {
                return Some(slot);
            }
            slot += Duration::MINUTE;
        }
        None
    }
}

fn truncate_to_minute(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_second(0)
        .and_then(|t| t.replace_nanosecond(0))
        .expect("zero is a valid second and nanosecond")
}

/// One scheduled job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub name: String,
    pub cron: Cron,
    pub argv: Vec<String>,
}

/// Parses a schedule file; an error names the line.
pub fn parse(text: &str) -> Result<Vec<Job>, String> {
    let mut jobs: Vec<Job> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |problem: String| format!("schedule line {}: {problem}", index + 1);
        let (name, rest) = line
            .split_once(':')
            .ok_or_else(|| at("expected `<name>: <cron> | <command>`".into()))?;
        let (cron, command) = rest
            .split_once('|')
            .ok_or_else(|| at("expected `| <command>` after the cron expression".into()))?;
        let name = name.trim().to_owned();
        if jobs.iter().any(|j| j.name == name) {
            return Err(at(format!("the job {name:?} is declared twice")));
        }
        let cron = Cron::parse(cron).map_err(at)?;
        let argv = shlex::split(command.trim())
            .filter(|a| !a.is_empty())
            .ok_or_else(|| at("the command is empty or has an unclosed quote".into()))?;
        jobs.push(Job { name, cron, argv });
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_weekly_job_fires_on_its_minute_only() {
        let cron = Cron::parse("0 3 * * 0").unwrap();
        // 2026-11-29 is a Sunday.
        assert!(cron.matches(datetime!(2026-11-29 03:00 UTC)));
        assert!(!cron.matches(datetime!(2026-11-29 03:01 UTC)));
        assert!(!cron.matches(datetime!(2026-11-30 03:00 UTC)));
        assert_eq!(
            cron.next_after(datetime!(2026-11-26 12:00 UTC)),
            Some(datetime!(2026-11-29 03:00 UTC))
        );
        assert_eq!(
            cron.latest_at_or_before(datetime!(2026-12-01 00:00 UTC), Duration::days(8)),
            Some(datetime!(2026-11-29 03:00 UTC))
        );
    }

    #[test]
    fn steps_lists_and_ranges_expand() {
        let cron = Cron::parse("*/15 9-17 1,15 * 1-5").unwrap();
        assert_eq!(
            cron.minutes.iter().copied().collect::<Vec<_>>(),
            [0, 15, 30, 45]
        );
        assert_eq!(cron.hours.len(), 9);
        // Day of month and day of week both given: either matches, as in cron.
        assert!(cron.matches(datetime!(2026-11-26 09:15 UTC)), "a Thursday");
        assert!(
            cron.matches(datetime!(2026-11-15 09:15 UTC)),
            "the 15th, a Sunday"
        );
    }

    #[test]
    fn a_bad_schedule_line_is_named() {
        for (text, problem) in [
            ("a: 0 3 * * | x", "five fields"),
            ("a: 61 3 * * * | x", "not in 0–59"),
            ("a: 0 3 * * *", "| <command>"),
            ("a: 0 3 * * * | x\na: 0 4 * * * | y", "declared twice"),
            ("a: 5-1 3 * * * | x", "backwards"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(problem), "{text:?}: {error}");
            assert!(error.starts_with("schedule line "), "{error}");
        }
    }
}
