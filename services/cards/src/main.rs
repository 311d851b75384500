use std::process::ExitCode;

use cards::{ReleaseSettings, Settings};
use clap::{Parser, Subcommand};
use dozen_bus::Process;
use dozen_runtime::config::{load_or_exit, Env};

const SERVICE: &str = "cards";

/// Dozen cards: link previews for the URLs in messages.
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
    /// Consume `message.sent` and publish cards until stopped (the `worker`
    /// process type); health, readiness and metrics on $PORT.
    Work,
    /// Apply the database migrations embedded in this binary and declare the
    /// subscriptions on the bus, then exit (the release phase).
    Migrate,
    /// Send events this service published before again, from its outbox's
    /// log (kept for OUTBOX_RETENTION), with their own ids: the repair after
    /// the bus lost events. Consumers that handled an event absorb the copy.
    Republish(dozen_bus::republish::Selection),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = Env::from_process();
    let outcome = match cli.command {
        Command::Describe => {
            println!("{}", cards::manifest::manifest().to_json());
            Ok(())
        }
        Command::Work => work(load_or_exit(SERVICE, &env)).await,
        Command::Migrate => migrate(load_or_exit(SERVICE, &env)).await,
        Command::Republish(selection) => {
            let topics = cards::manifest::manifest().publishes;
            dozen_bus::republish::run(SERVICE, &topics, load_or_exit(SERVICE, &env), selection)
                .await
        }
    };
    dozen_runtime::command::exit_code(SERVICE, outcome)
}

async fn work(settings: Settings) -> anyhow::Result<()> {
    let log = settings.process.log.clone();
    Process::run(SERVICE, &log, |shutdown| cards::worker(settings, shutdown)).await
}

async fn migrate(settings: ReleaseSettings) -> anyhow::Result<()> {
    let subscriptions = cards::previews::subscriptions();
    dozen_bus::release_phase(SERVICE, settings, &subscriptions, |db| async move {
        cards::migrate(&db).await
    })
    .await
}
