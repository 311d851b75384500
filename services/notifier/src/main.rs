use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use dozen_bus::Process;
use dozen_runtime::config::{load_or_exit, Env};
use dozen_runtime::database;
use dozen_runtime::logging;
use notifier::mail::Mailer;
use notifier::report::Report;
use notifier::{ReleaseSettings, ReportSettings, Settings};

const SERVICE: &str = "notifier";

/// Dozen notifier: welcome and @mention e-mails from events, and the daily report.
///
/// Configuration comes from environment variables only; see docs/operations.md.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print what this service needs to run (commands, variables, topics,
    /// subscriptions) as JSON, for `dozen export`.
    Describe,
    /// Consume events and send mail until stopped (the `worker` process type);
    /// health, readiness and metrics on $PORT.
    Work,
    /// Apply the database migrations embedded in this binary and declare the
    /// subscriptions on the bus, then exit (the release phase).
    Migrate,
    /// E-mail the counts of a period ending now to `REPORT_TO` (an admin process).
    Report {
        /// How far back: `24h`, `7d`, `90m`…
        #[arg(long, default_value = "24h", value_parser = parse_period)]
        period: Duration,
    },
}

fn parse_period(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not like 24h or 7d"))?;
    let seconds = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit is m, h or d")),
    };
    Ok(Duration::from_secs(number * seconds))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = Env::from_process();
    let outcome = match cli.command {
        Command::Describe => {
            println!("{}", notifier::manifest::manifest().to_json());
            Ok(())
        }
        Command::Work => work(load_or_exit(SERVICE, &env)).await,
        Command::Migrate => migrate(load_or_exit(SERVICE, &env)).await,
        Command::Report { period } => report(load_or_exit(SERVICE, &env), period).await,
    };
    dozen_runtime::command::exit_code(SERVICE, outcome)
}

async fn work(settings: Settings) -> anyhow::Result<()> {
    let log = settings.process.log.clone();
    Process::run(SERVICE, &log, |shutdown| {
        notifier::worker(settings, shutdown)
    })
    .await
}

async fn migrate(settings: ReleaseSettings) -> anyhow::Result<()> {
    let subscriptions = notifier::handlers::subscriptions();
    dozen_bus::release_phase(SERVICE, settings, &subscriptions, |db| async move {
        notifier::migrate(&db).await
    })
    .await
}

async fn report(settings: ReportSettings, period: Duration) -> anyhow::Result<()> {
    logging::init(SERVICE, &settings.log);
    let db = database::connect_lazy(&settings.database)?;
    let mailer = Mailer::new(&settings.mail)?;
    let report = Report::gather(&db, period, time::OffsetDateTime::now_utc())
        .await
        .context("reading the counts")?;
    report
        .send(&mailer, &settings.to)
        .await
        .context("sending the report")?;
    print!("{}", report.text());
    tracing::info!(to = settings.to, "report sent");
    Ok(())
}
