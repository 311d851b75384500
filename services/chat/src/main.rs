use std::process::ExitCode;
use std::time::Duration;

use chat::archive::{self, Destination, Plan};
use chat::{ArchiveSettings, ReleaseSettings, Settings, WorkerSettings};
use clap::{Parser, Subcommand};
use dozen_bus::Process;
use dozen_runtime::config::{load_or_exit, Env};

const SERVICE: &str = "chat";

/// Dozen chat: rooms, messages, their cards and a live stream.
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
    /// Serve the HTTP API and live streams on $PORT (the `web` process type).
    Serve,
    /// Keep the user directory and attach cards until stopped (the `worker`
    /// process type); health, readiness and metrics on $PORT.
    Work,
    /// Apply the database migrations embedded in this binary and declare the
    /// subscriptions on the bus, then exit (the release phase).
    Migrate,
    /// Send events this service published before again, from its outbox's
    /// log (kept for OUTBOX_RETENTION), with their own ids: the repair after
    /// the bus lost events. Consumers that handled an event absorb the copy.
    Republish(dozen_bus::republish::Selection),
    /// Compute chat's derived state again from its sources: room numbers,
    /// the names of authors missing from the directory, and cards for
    /// messages with links and none (their events sent again). Safe to repeat.
    Repair {
        /// Look at messages sent at or after this for missing cards: an RFC
        /// 3339 time or a time ago (`2h`); default: all.
        #[arg(long, value_parser = dozen_runtime::clock::parse_moment, value_name = "TIME")]
        since: Option<i64>,
        /// Count what is wrong; change and send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Move messages older than a cutoff to cold storage (`ARCHIVE_URL`),
    /// then delete them here. Safe to interrupt and run again: it resumes, and nothing is lost
    /// or archived twice.
    Archive {
        /// Archive messages older than this, e.g. `90d`, `12h`.
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: Duration,
        /// Count what would move; write and delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Messages per archived object (and per delete).
        #[arg(long, default_value_t = archive::DEFAULT_BATCH, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        batch: i64,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = Env::from_process();
    let outcome = match cli.command {
        Command::Describe => {
            println!("{}", chat::manifest::manifest().to_json());
            Ok(())
        }
        Command::Serve => serve(load_or_exit(SERVICE, &env)).await,
        Command::Work => work(load_or_exit(SERVICE, &env)).await,
        Command::Migrate => migrate(load_or_exit(SERVICE, &env)).await,
        Command::Republish(selection) => {
            let topics = chat::manifest::manifest().publishes;
            dozen_bus::republish::run(SERVICE, &topics, load_or_exit(SERVICE, &env), selection)
                .await
        }
        Command::Repair { since, dry_run } => {
            chat::repair::command(load_or_exit(SERVICE, &env), since, dry_run).await
        }
        Command::Archive {
            older_than,
            dry_run,
            batch,
        } => {
            let plan = Plan {
                batch,
                dry_run,
                ..Plan::new(older_than)
            };
            run_archive(load_or_exit(SERVICE, &env), plan).await
        }
    };
    dozen_runtime::command::exit_code(SERVICE, outcome)
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let log = settings.process.log.clone();
    Process::run(SERVICE, &log, |shutdown| chat::web(settings, shutdown)).await
}

async fn work(settings: WorkerSettings) -> anyhow::Result<()> {
    let log = settings.process.log.clone();
    Process::run(SERVICE, &log, |shutdown| chat::worker(settings, shutdown)).await
}

async fn migrate(settings: ReleaseSettings) -> anyhow::Result<()> {
    let subscriptions = chat::handlers::subscriptions();
    dozen_bus::release_phase(SERVICE, settings, &subscriptions, |db| async move {
        chat::migrate(&db).await
    })
    .await
}

async fn run_archive(settings: ArchiveSettings, plan: Plan) -> anyhow::Result<()> {
    dozen_runtime::logging::init(SERVICE, &settings.log);
    let destination = Destination::parse(&settings.destination)?;
    let db = dozen_runtime::database::connect_lazy(&settings.database)?;
    let summary = archive::run(&db, &destination, &plan).await?;
    db.close().await;
    println!("{summary}");
    Ok(())
}
