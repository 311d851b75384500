//! What every service process starts with: its own database, the bus, and
//! the metrics and readiness that watch them.

use std::sync::Arc;

use dozen_runtime::database::{self, DatabaseError};
use dozen_runtime::http::Readiness;
use dozen_runtime::metrics::Metrics;
use dozen_runtime::shutdown::Shutdown;
use sqlx::AnyPool;

use crate::backend::{Bus, BusError};
use crate::outbox::{Outbox, Relay};
use crate::process::ProcessSettings;

/// Why the backing services cannot be attached (a URL is unusable).
#[derive(Debug, thiserror::Error)]
pub enum BackingError {
    #[error(transparent)]
    Database(#[from] DatabaseError),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// A service's backing services, attached by URL; nothing is connected yet.
pub struct Backing {
    pub db: AnyPool,
    pub bus: Arc<dyn Bus>,
    /// With the pool's gauges.
    pub metrics: Metrics,
    /// Checking the database; add the service's own checks to it.
    pub readiness: Readiness,
    /// How long the relay keeps published events (`OUTBOX_RETENTION`).
    pub outbox_retention: std::time::Duration,
}

impl Backing {
    pub async fn attach(
        service: &str,
        settings: &ProcessSettings,
        shutdown: &Shutdown,
    ) -> Result<Self, BackingError> {
        let db = database::connect_lazy(&settings.database)?;
        let bus = crate::settings::connect(&settings.bus.url).await?;
        let metrics = Metrics::new();
        metrics.watch_pool(service, db.clone());
        // The bus is not a web process's concern: its writes wait in the
        // outbox while the bus is down. A process with consumers adds it
        // (`Process::bind`).
        let readiness =
            Readiness::new(shutdown.clone()).with_ping("database", db.clone(), |db| async move {
                database::ping(&db).await
            });
        Ok(Self {
            db,
            bus,
            metrics,
            readiness,
            outbox_retention: settings.bus.outbox_retention,
        })
    }

    /// The relay of `outbox`: from this process's database to its bus,
    /// keeping what it published for `OUTBOX_RETENTION`, its backlog's age
    /// in this process's metrics.
    pub fn relay(&self, outbox: &Outbox) -> Relay {
        outbox
            .relay(self.db.clone(), self.bus.clone())
            .retention(self.outbox_retention)
            .watched_by(&self.metrics)
    }
}

impl std::fmt::Debug for Backing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backing")
            .field("bus", &self.bus)
            .finish_non_exhaustive()
    }
}
