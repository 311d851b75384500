//! Building and running the notifier worker: its consumers, and an HTTP port
//! for health, readiness and metrics only.

use std::sync::Arc;

use axum::Router;
use dozen_bus::{typed, Backing, Consumer};
use dozen_runtime::database::DatabaseError;
use dozen_runtime::http::{service_router, HttpServer, Ops};
use dozen_runtime::service_info;
use dozen_runtime::shutdown::Shutdown;
use sqlx::migrate::Migrator;
use sqlx::AnyPool;
use tokio::task::JoinSet;

use crate::handlers::{self, Context};
use crate::mail::Mailer;
use crate::settings::Settings;

/// The schema, embedded in the binary; portable across SQLite and PostgreSQL.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// A bound, ready-to-run notifier worker.
pub struct Worker {
    server: HttpServer,
    ops: Router,
    consumers: Vec<Consumer>,
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
    /// Binds the ops port and wires the consumers; connects to nothing yet.
    pub async fn build(settings: Settings, shutdown: Shutdown) -> anyhow::Result<Self> {
        let Backing {
            db,
            bus,
            metrics,
            readiness,
        } = Backing::attach("notifier", &settings.database, &settings.bus, &shutdown).await?;
        let mailer = Arc::new(Mailer::new(&settings.mail)?);
        let readiness = readiness.with_ping("mail", mailer.clone(), |mailer| async move {
            mailer.ping().await
        });
        let info = service_info!("notifier").with_release_id(settings.http.release_id.clone());
        let ctx = Context {
            db: db.clone(),
            mailer,
        };
        let [welcome, mentions, cards] = handlers::subscriptions();
        let consumers = vec![
            Consumer::new(bus.clone(), welcome, {
                let ctx = ctx.clone();
                typed(move |data, event| {
                    let ctx = ctx.clone();
                    async move { handlers::welcome(&ctx, data, &event).await }
                })
            }),
            Consumer::new(bus.clone(), mentions, {
                let ctx = ctx.clone();
                typed(move |data, event| {
                    let ctx = ctx.clone();
                    async move { handlers::mentions(&ctx, data, &event).await }
                })
            }),
            Consumer::new(bus, cards, {
                let ctx = ctx.clone();
                typed(move |data, event| {
                    let ctx = ctx.clone();
                    async move { handlers::card(&ctx, data, &event).await }
                })
            }),
        ];
        let ops = service_router(
            Router::new(),
            Ops::new(info, readiness, metrics),
            &settings.http,
        );
        let server = HttpServer::bind(&settings.http).await?;
        Ok(Self {
            server,
            ops,
            consumers,
            db,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Consumes until shutdown; then lets the events in hand finish (each
    /// mail in flight is sent and recorded once), and closes the pool.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let mut consumers = JoinSet::new();
        for consumer in self.consumers {
            consumers.spawn(consumer.run(self.shutdown.clone()));
        }
        let served = self.server.serve(self.ops, self.shutdown).await;
        while consumers.join_next().await.is_some() {}
        self.db.close().await;
        Ok(served?)
    }
}

/// The release phase: applies the embedded migrations and creates the inbox tables.
pub async fn migrate(db: &AnyPool) -> Result<(), DatabaseError> {
    dozen_bus::outbox::migrate_service(db, &MIGRATOR).await
}
