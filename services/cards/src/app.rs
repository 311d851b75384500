//! Building and running the cards worker: its consumer, its outbox relay, and
//! an HTTP port for health, readiness and metrics only.

use dozen_bus::{typed, Backing, Consumer, Outbox, Process, Work};
use dozen_runtime::database::DatabaseError;
use dozen_runtime::service_info;
use dozen_runtime::shutdown::Shutdown;
use sqlx::migrate::Migrator;
use sqlx::AnyPool;

use crate::previews::{self, Context};
use crate::settings::Settings;

/// The schema, embedded in the binary; portable across SQLite and PostgreSQL.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// A bound, ready-to-run cards worker.
#[derive(Debug)]
pub struct Worker(Process);

impl Worker {
    pub async fn build(settings: Settings, shutdown: Shutdown) -> anyhow::Result<Self> {
        let backing = Backing::attach("cards", &settings.process, &shutdown).await?;
        let outbox = Outbox::new();
        let relay = outbox.relay(backing.db.clone(), backing.bus.clone());
        let ctx = Context {
            db: backing.db.clone(),
            fetcher: settings.fetcher,
            outbox,
            locks: Default::default(),
        };
        let consumer = Consumer::new(
            backing.bus.clone(),
            previews::subscription(),
            typed(move |sent, event| {
                let ctx = ctx.clone();
                async move { previews::previews(&ctx, sent, &event).await }
            }),
        );
        let work = Work {
            relay: Some(relay),
            consumers: vec![consumer],
            ..Work::default()
        };
        let info = service_info!("cards");
        Ok(Self(
            Process::bind(info, &settings.process.http, backing, work, shutdown).await?,
        ))
    }

    pub fn port(&self) -> u16 {
        self.0.port()
    }

    /// Consumes until shutdown; the events in hand finish, then the relay
    /// publishes what they committed, and the pool closes.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.0.run_until_stopped().await
    }
}

/// The release phase: the link cache, and the outbox and inbox tables.
pub async fn migrate(db: &AnyPool) -> Result<(), DatabaseError> {
    dozen_bus::outbox::migrate_service(db, &MIGRATOR).await
}
