//! What every service's `main` does around its commands: the exit code, and
//! the release phase.

use std::future::Future;
use std::process::ExitCode;

use sqlx::AnyPool;

use crate::database::{self, DatabaseError, MigrateSettings};
use crate::logging;

/// The process's exit code for a command's outcome; a failure is logged first.
pub fn exit_code(service: &str, outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "{service} failed");
            ExitCode::FAILURE
        }
    }
}

/// The start of a long-running process (`serve`, `work`): JSON logs, and a
/// shutdown that SIGTERM and Ctrl-C trigger.
pub fn start(
    service: &'static str,
    log: &crate::logging::LogSettings,
) -> crate::shutdown::Shutdown {
    logging::init(service, log);
    let shutdown = crate::shutdown::Shutdown::new();
    shutdown.trigger_on_signals();
    shutdown
}

/// `<service> migrate`, the release phase: connects and runs `migrate`
/// (the service's migrations and the bus tables), then returns.
pub async fn release_phase<F, Fut>(
    service: &'static str,
    settings: MigrateSettings,
    migrate: F,
) -> anyhow::Result<()>
where
    F: FnOnce(AnyPool) -> Fut,
    Fut: Future<Output = Result<(), DatabaseError>>,
{
    use anyhow::Context;
    logging::init(service, &settings.log);
    database::create_if_missing(&settings.database)
        .await
        .context("creating the database")?;
    let db = database::connect_lazy(&settings.database)?;
    migrate(db.clone())
        .await
        .context("migrating the database")?;
    db.close().await;
    tracing::info!("migrations applied");
    Ok(())
}
