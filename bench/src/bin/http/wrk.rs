//! Running `wrk` (Debian's) and reading what it prints.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};

/// One load run: `threads`, `connections`, for `duration`, optionally with a Lua script.
#[derive(Debug, Clone)]
pub struct Load {
    pub threads: u32,
    pub connections: u32,
    pub duration: Duration,
}

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Requests answered per second (wrk's `Requests/sec`).
    pub rps: f64,
    /// 99th percentile latency, milliseconds (wrk's `--latency` distribution).
    pub p99_ms: f64,
    /// Answers that were not 2xx or 3xx.
    pub failed: u64,
    /// Requests answered in all.
    pub requests: u64,
}

impl Load {
    /// Runs wrk against `url` with `Authorization: Bearer <token>`, and
    /// `script` (POST) when given. A run with a failed answer is an error:
    /// a figure for failing requests means nothing.
    pub fn run(&self, url: &str, token: &str, script: Option<&Path>) -> anyhow::Result<Measured> {
        let mut wrk = Command::new("wrk");
        wrk.arg(format!("-t{}", self.threads))
            .arg(format!("-c{}", self.connections))
            .arg(format!("-d{}s", self.duration.as_secs().max(1)))
            .arg("--latency")
            .env("TOKEN", token);
        match script {
            Some(script) => wrk.arg("-s").arg(script),
            None => wrk.arg("-H").arg(format!("Authorization: Bearer {token}")),
        };
        let output = wrk
            .arg(url)
            .output()
            .context("run wrk (Debian: apt-get install wrk)")?;
        let text = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!(
                "wrk failed: {}{}",
                text,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let measured = parse(&text).with_context(|| format!("read wrk's output:\n{text}"))?;
        if measured.failed > 0 {
            bail!(
                "{} of {} answers to {url} were not 2xx:\n{text}",
                measured.failed,
                measured.requests
            );
        }
        Ok(measured)
    }
}

/// Reads wrk's report (`--latency`).
pub fn parse(report: &str) -> anyhow::Result<Measured> {
    let mut rps = None;
    let mut p99_ms = None;
    let mut requests = None;
    let mut failed = 0;
    for line in report.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", value] => rps = Some(value.parse()?),
            ["99%", value] => p99_ms = Some(millis(value)?),
            ["Non-2xx", "or", "3xx", "responses:", value] => failed = value.parse()?,
            [count, "requests", "in", ..] => requests = Some(count.parse()?),
            _ => {}
        }
    }
    Ok(Measured {
        rps: rps.context("no Requests/sec line")?,
        p99_ms: p99_ms.context("no 99% line (run with --latency)")?,
        failed,
        requests: requests.context("no '<n> requests in' line")?,
    })
}

/// wrk's durations: `812.00us`, `3.21ms`, `1.02s`, `2.00m`.
fn millis(value: &str) -> anyhow::Result<f64> {
    let split = value
        .find(|c: char| c.is_ascii_alphabetic())
        .context("a unit")?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse()?;
    Ok(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        other => bail!("unknown unit {other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 10s test @ http://127.0.0.1:3000/v1/rooms/bench/messages
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.51ms    3.10ms  61.20ms   88.15%
    Req/Sec     1.70k   150.22     2.01k    71.00%
  Latency Distribution
     50%    8.97ms
     75%   10.52ms
     90%   12.88ms
     99%    1.02s
  33871 requests in 10.01s, 11.60MB read
  Non-2xx or 3xx responses: 12
Requests/sec:   3383.94
Transfer/sec:      1.16MB
";

    #[test]
    fn a_report_gives_its_rate_its_p99_in_milliseconds_and_its_failures() {
        let measured = parse(REPORT).unwrap();
        assert_eq!(
            measured,
            Measured {
                rps: 3383.94,
                p99_ms: 1020.0,
                failed: 12,
                requests: 33871,
            }
        );
    }

    #[test]
    fn every_unit_wrk_prints_becomes_milliseconds() {
        assert_eq!(millis("812.00us").unwrap(), 0.812);
        assert_eq!(millis("3.50ms").unwrap(), 3.5);
        assert_eq!(millis("2.00m").unwrap(), 120_000.0);
        assert!(millis("3.5h").is_err());
        assert!(millis("fast").is_err());
    }

    #[test]
    fn a_report_without_the_latency_distribution_is_refused() {
        let without: String = REPORT
            .lines()
            .filter(|l| !l.contains("99%"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(parse(&without).is_err());
    }
}
