//! Building and running the accounts web process.

use std::sync::Arc;

use axum::extract::FromRef;
use dozen_auth::Keys;
use dozen_bus::{Backing, Outbox, Process, Work};
use dozen_runtime::database::DatabaseError;
use dozen_runtime::service_info;
use dozen_runtime::shutdown::Shutdown;
use sqlx::migrate::Migrator;
use sqlx::AnyPool;

use crate::password::Passwords;
use crate::settings::Settings;
use crate::throttle::ThrottleSettings;
use crate::tokens::TokenSigner;

/// The schema, embedded in the binary; portable across SQLite and PostgreSQL.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: AnyPool,
    pub signer: Arc<TokenSigner>,
    pub keys: Keys,
    pub passwords: Passwords,
    pub outbox: Outbox,
    pub throttle: ThrottleSettings,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl FromRef<AppState> for Keys {
    fn from_ref(state: &AppState) -> Self {
        state.keys.clone()
    }
}

/// The web process (`accounts serve`), bound and wired; connects to nothing yet.
pub async fn web(settings: Settings, shutdown: Shutdown) -> anyhow::Result<Process> {
    let backing = Backing::attach("accounts", &settings.process, &shutdown).await?;
    let outbox = Outbox::new();
    let relay = backing.relay(&outbox);
    let signer = Arc::new(settings.tokens);
    let state = AppState {
        db: backing.db.clone(),
        keys: Keys::fixed(signer.verifier()),
        signer,
        passwords: Passwords::new(backing.metrics.counter(
            "password_checks",
            "Password verifications, including the decoy ones for unknown users",
        )),
        outbox,
        throttle: settings.throttle,
    };
    let work = Work {
        api: dozen_runtime::http::also_under(crate::manifest::ROUTE, crate::routes::router(state)),
        relay: Some(relay),
        consumers: Vec::new(),
    };
    let info = service_info!("accounts");
    Ok(Process::bind(info, &settings.process.http, backing, work, shutdown).await?)
}

/// The release phase: applies the embedded migrations and creates the
/// outbox tables.
pub async fn migrate(db: &AnyPool) -> Result<(), DatabaseError> {
    dozen_bus::outbox::migrate_service(db, &MIGRATOR).await
}
