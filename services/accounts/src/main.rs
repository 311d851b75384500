use std::process::ExitCode;

use accounts::{MigrateSettings, Settings};
use clap::{Parser, Subcommand};
use dozen_bus::Process;
use dozen_runtime::config::{load_or_exit, Env};

const SERVICE: &str = "accounts";

/// Dozen accounts: users, credentials and session tokens.
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
    /// Serve the HTTP API on $PORT (the `web` process type).
    Serve,
    /// Apply the database migrations embedded in this binary, then exit (the release phase).
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
            println!("{}", accounts::manifest::manifest().to_json());
            Ok(())
        }
        Command::Serve => serve(load_or_exit(SERVICE, &env)).await,
        Command::Migrate => migrate(load_or_exit(SERVICE, &env)).await,
        Command::Republish(selection) => {
            let topics = accounts::manifest::manifest().publishes;
            dozen_bus::republish::run(SERVICE, &topics, load_or_exit(SERVICE, &env), selection)
                .await
        }
    };
    dozen_runtime::command::exit_code(SERVICE, outcome)
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let log = settings.process.log.clone();
    Process::run(SERVICE, &log, |shutdown| accounts::web(settings, shutdown)).await
}

async fn migrate(settings: MigrateSettings) -> anyhow::Result<()> {
    dozen_runtime::command::release_phase(SERVICE, settings, |db| async move {
        accounts::migrate(&db).await
    })
    .await
}
