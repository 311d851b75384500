//! Building and running the cards worker: its consumer, its outbox relay, and
//! an HTTP port for health, readiness and metrics only.

use axum::Router;
use dozen_bus::{typed, Backing, Consumer, Outbox, Relay};
use dozen_runtime::database::DatabaseError;
use dozen_runtime::http::{service_router, HttpServer, Ops};
use dozen_runtime::service_info;
use dozen_runtime::shutdown::Shutdown;
use sqlx::migrate::Migrator;
use sqlx::AnyPool;

use crate::previews::{self, Context};
use crate::settings::Settings;

/// The schema, embedded in the binary; portable across SQLite and PostgreSQL.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// A bound, ready-to-run cards worker.
pub struct Worker {
    server: HttpServer,
    ops: Router,
    consumer: Consumer,
    relay: Relay,
    db: AnyPool,
    shutdown: Shutdown,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("port", &self.server.port())
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub async fn build(settings: Settings, shutdown: Shutdown) -> anyhow::Result<Self> {
        let Backing {
            db,
            bus,
            metrics,
            readiness,
        } = Backing::attach("cards", &settings.database, &settings.bus, &shutdown).await?;
        let info = service_info!("cards").with_release_id(settings.http.release_id.clone());
        let outbox = Outbox::new();
        let relay = outbox.relay(db.clone(), bus.clone());
        let ctx = Context {
            db: db.clone(),
            fetcher: settings.fetcher,
            outbox,
            locks: Default::default(),
        };
        let consumer = Consumer::new(
            bus,
            previews::subscription(),
            typed(move |sent, event| {
                let ctx = ctx.clone();
                async move { previews::previews(&ctx, sent, &event).await }
            }),
        );
        let ops = service_router(
            Router::new(),
            Ops::new(info, readiness, metrics),
            &settings.http,
        );
        let server = HttpServer::bind(&settings.http).await?;
        Ok(Self {
            server,
            ops,
            consumer,
            relay,
            db,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Consumes until shutdown; the events in hand finish, then the relay
    /// publishes the cards they made, and the pool closes.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let relay_stop = Shutdown::new();
        let relay = tokio::spawn(self.relay.run(relay_stop.clone()));
        let consumer = tokio::spawn(self.consumer.run(self.shutdown.clone()));
        let served = self.server.serve(self.ops, self.shutdown).await;
        consumer.await?;
        relay_stop.trigger();
        relay.await?;
        self.db.close().await;
        Ok(served?)
    }
}

/// The release phase: the link cache, and the outbox and inbox tables.
pub async fn migrate(db: &AnyPool) -> Result<(), DatabaseError> {
    dozen_bus::outbox::migrate_service(db, &MIGRATOR).await
}
