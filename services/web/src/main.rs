use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dozen_runtime::config::{load_or_exit, Env};
use web::{Settings, Web};

const SERVICE: &str = "web";

/// Dozen web: the whole system at one address in development.
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
    /// Serve on $PORT, routing /api/<service>/… to the services' ready instances.
    Serve,
    /// Print what this service needs to run (commands, variables) as JSON,
    /// for `dozen export`.
    Describe,
}

#[tokio::main]
async fn main() -> ExitCode {
    if let Command::Describe = Cli::parse().command {
        println!("{}", web::manifest::manifest().to_json());
        return ExitCode::SUCCESS;
    }
    let settings: Settings = load_or_exit(SERVICE, &Env::from_process());
    let outcome = async {
        let shutdown = dozen_runtime::command::start(SERVICE, &settings.log);
        Web::bind(settings, shutdown)
            .await?
            .run_until_stopped()
            .await?;
        tracing::info!("stopped");
        Ok(())
    }
    .await;
    dozen_runtime::command::exit_code(SERVICE, outcome)
}
