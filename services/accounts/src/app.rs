//! Building and running the accounts web process.

use std::sync::Arc;

use axum::extract::FromRef;
use axum::Router;
use dozen_auth::Keys;
use dozen_bus::{Backing, Outbox, Relay};
use dozen_runtime::database::DatabaseError;
use dozen_runtime::http::{service_router, HttpServer, Ops};
use dozen_runtime::service_info;
use dozen_runtime::shutdown::Shutdown;
use sqlx::migrate::Migrator;
use sqlx::AnyPool;

use crate::password::Passwords;
use crate::settings::Settings;
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

/// A bound, ready-to-run accounts web process.
#[derive(Debug)]
pub struct Application {
    server: HttpServer,
    app: Router,
    db: AnyPool,
    relay: Relay,
    shutdown: Shutdown,
}

impl Application {
    /// Binds the port and wires everything; connects to nothing yet.
    pub async fn build(settings: Settings, shutdown: Shutdown) -> anyhow::Result<Self> {
        let Backing {
            db,
            bus,
            metrics,
            readiness,
        } = Backing::attach("accounts", &settings.database, &settings.bus, &shutdown).await?;
        let info = service_info!("accounts").with_release_id(settings.http.release_id.clone());
        let outbox = Outbox::new();
        let relay = outbox.relay(db.clone(), bus);
        let signer = Arc::new(settings.tokens);
        let state = AppState {
            db: db.clone(),
            keys: Keys::fixed(signer.verifier()),
            signer,
            passwords: Passwords::new(metrics.counter(
                "password_checks",
                "Password verifications, including the decoy ones for unknown users",
            )),
            outbox,
        };
        let app = service_router(
            crate::routes::router(state),
            Ops::new(info, readiness, metrics),
            &settings.http,
        );
        let server = HttpServer::bind(&settings.http).await?;
        Ok(Self {
            server,
            app,
            db,
            relay,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Serves until shutdown and drains; then the relay flushes what the last
    /// requests committed, and the pool closes.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        // The relay stops only after the server has drained, so no event
        // committed by an in-flight request is left behind for long.
        let relay_stop = Shutdown::new();
        let relay = tokio::spawn(self.relay.run(relay_stop.clone()));
        let served = self.server.serve(self.app, self.shutdown).await;
        relay_stop.trigger();
        relay.await?;
        self.db.close().await;
        Ok(served?)
    }
}

/// The release phase: applies the embedded migrations and creates the
/// outbox tables.
pub async fn migrate(db: &AnyPool) -> Result<(), DatabaseError> {
    dozen_bus::outbox::migrate_service(db, &MIGRATOR).await
}
