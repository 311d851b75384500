//! Wall-clock time as Dozen stores and shows it: milliseconds since the Unix
//! epoch in databases, RFC 3339 in UTC on the wire and in logs.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Now, as RFC 3339 in UTC.
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch as RFC 3339 in UTC (empty if out of range).
pub fn rfc3339_from_millis(millis: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// A moment an operator names on a command line, as milliseconds since the
/// Unix epoch: RFC 3339 (`2026-11-30T10:00:00Z`, any offset) or a time ago
/// (`90m`, `2h`, `7d`: humantime's units).
///
/// Errors: neither form, or a moment before the epoch.
pub fn parse_moment(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
            .ok()
            .filter(|millis| *millis >= 0)
            .ok_or_else(|| format!("{text:?} is before 1970"));
    }
    match humantime::parse_duration(text) {
        Ok(ago) => {
            let ago = i64::try_from(ago.as_millis()).unwrap_or(i64::MAX);
            Ok((now_millis() - ago).max(0))
        }
        Err(_) => Err(format!(
            "{text:?} is neither an RFC 3339 time (2026-11-30T10:00:00Z) nor a time ago (2h, 7d)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moment_is_an_rfc3339_time_or_a_time_ago() {
        assert_eq!(parse_moment("1970-01-01T00:00:01.5Z"), Ok(1_500));
        assert_eq!(parse_moment("1970-01-01T01:00:00+01:00"), Ok(0));
        let two_hours_ago = parse_moment("2h").unwrap();
        assert!((now_millis() - 7_200_000 - two_hours_ago).abs() < 5_000);
        for bad in [
            "",
            "yesterday",
            "2026-11-30",
            "10:00",
            "1969-12-31T23:59:59Z",
            "-2h",
        ] {
            assert!(parse_moment(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn milliseconds_print_as_rfc3339_in_utc() {
        assert_eq!(rfc3339_from_millis(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_millis(1_500), "1970-01-01T00:00:01.5Z");
        let now = now_millis();
        assert!(now > 1_700_000_000_000, "{now}");
    }
}
