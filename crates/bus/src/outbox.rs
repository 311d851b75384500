//! The transactional outbox: an event is written in the same database
//! transaction as the state change it reports, and a relay inside the
//! producing process publishes it afterwards.
//!
//! Commit and event cannot disagree: if the process dies after the commit, the
//! row is still there and the relay publishes it after restart. Delivery is at
//! least once (a crash between publishing and deleting the row publishes it
//! again), which consumers absorb with the [`crate::inbox`].
//!
//! Only one relay per database works at a time (a lease row elects it), so
//! events leave in commit order; another instance takes over within
//! [`LEASE_TTL`] if the holder dies.
//!
//! A published row is kept, marked with its publish time, for the relay's
//! retention ([`DEFAULT_RETENTION`], `OUTBOX_RETENTION`): the service's own
//! log of what it published, which [`crate::republish`] sends again, with
//! the same event ids, after a broker lost events.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dozen_runtime::clock::now_millis;
use dozen_runtime::shutdown::Shutdown;
use sqlx::{AnyConnection, AnyPool, Row};
use tokio::sync::Notify;

use crate::backend::{Bus, BusError};
use crate::event::Event;

/// How long a relay's claim to the outbox lasts without renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often an idle relay looks for rows committed by other processes.
const IDLE_POLL: Duration = Duration::from_secs(1);
const BATCH: i64 = 256;
/// How long published events are kept for [`crate::republish`], unless set.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often the relay deletes what it has kept long enough.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Rows deleted per statement when pruning, so no delete holds the table long.
const PRUNE_BATCH: i64 = 1000;

fn is_postgres(pool: &AnyPool) -> bool {
    pool.connect_options()
        .database_url
        .scheme()
        .starts_with("postgres")
}

/// A service's release phase: its own migrations, then the outbox and inbox tables.
pub async fn migrate_service(
    pool: &AnyPool,
    migrator: &sqlx::migrate::Migrator,
) -> Result<(), dozen_runtime::database::DatabaseError> {
    dozen_runtime::database::migrate(pool, migrator).await?;
    migrate(pool)
        .await
        .map_err(|e| dozen_runtime::database::DatabaseError::Migrate(e.into()))
}

/// Creates the outbox and inbox tables in the service's own database; idempotent.
/// (`migrate_service` calls it.)
pub async fn migrate(pool: &AnyPool) -> Result<(), sqlx::Error> {
    let id_column = if is_postgres(pool) {
        "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    } else {
        "id INTEGER PRIMARY KEY"
    };
    let statements = [
        format!(
            "CREATE TABLE IF NOT EXISTS bus_outbox (
                {id_column},
                topic      TEXT NOT NULL,
                body       TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                published_at BIGINT)"
        ),
        "CREATE TABLE IF NOT EXISTS bus_outbox_lease (
            name       TEXT PRIMARY KEY,
            holder     TEXT NOT NULL,
            expires_at BIGINT NOT NULL)"
            .to_owned(),
        "CREATE TABLE IF NOT EXISTS bus_inbox (
            subscription TEXT NOT NULL,
            event_id     TEXT NOT NULL,
            handled_at   BIGINT NOT NULL,
            PRIMARY KEY (subscription, event_id))"
            .to_owned(),
    ];
    let mut tx = pool.begin().await?;
    for statement in &statements {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    // Outboxes made before published rows were kept lack the column.
    let has_published_at = sqlx::query("SELECT published_at FROM bus_outbox WHERE 1 = 0")
        .execute(pool)
        .await
        .is_ok();
    if !has_published_at {
        sqlx::query("ALTER TABLE bus_outbox ADD COLUMN published_at BIGINT")
            .execute(pool)
            .await?;
    }
    // The relay's reading: only the rows still to publish, however many are kept.
    sqlx::query(
        "CREATE INDEX IF NOT EXISTS bus_outbox_unpublished ON bus_outbox (id)
         WHERE published_at IS NULL",
    )
    .execute(pool)
    .await
    .map(|_| ())
}

/// The producing side: enqueue inside a transaction, then tell the relay.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    committed: Arc<Notify>,
}

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `event` to the caller's transaction; it is published to the topic
    /// named by its type once the transaction commits.
    pub async fn enqueue(&self, tx: &mut AnyConnection, event: &Event) -> Result<(), sqlx::Error> {
        let body = serde_json::to_string(event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query("INSERT INTO bus_outbox (topic, body, created_at) VALUES ($1, $2, $3)")
            .bind(&event.event_type)
            .bind(body)
            .bind(now_millis())
            .execute(tx)
            .await
            .map(|_| ())
    }

    /// Adds `events` to the caller's transaction in one statement per 1,000
    /// (a batch of posts committed together); as [`Outbox::enqueue`] each.
    pub async fn enqueue_all(
        &self,
        tx: &mut AnyConnection,
        events: &[Event],
    ) -> Result<(), sqlx::Error> {
        let now = now_millis();
        for chunk in events.chunks(1000) {
            let mut sql = String::from("INSERT INTO bus_outbox (topic, body, created_at) VALUES ");
            for i in 0..chunk.len() {
                let sep = if i == 0 { "" } else { ", " };
                sql.push_str(&format!(
                    "{sep}(${}, ${}, ${})",
                    3 * i + 1,
                    3 * i + 2,
                    3 * i + 3
                ));
            }
            let mut insert = sqlx::query(&sql);
            for event in chunk {
                let body =
                    serde_json::to_string(event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
                insert = insert.bind(&event.event_type).bind(body).bind(now);
            }
            insert.execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// Call after the commit: the relay publishes at once instead of at its next poll.
    pub fn committed(&self) {
        self.committed.notify_one();
    }

    /// The relay for this outbox, publishing from `pool` to `bus`, keeping
    /// published events for [`DEFAULT_RETENTION`] (see [`Relay::retention`]).
    pub fn relay(&self, pool: AnyPool, bus: Arc<dyn Bus>) -> Relay {
        Relay {
            pool,
            bus,
            committed: self.committed.clone(),
            holder: uuid::Uuid::new_v4().to_string(),
            declared: Mutex::default(),
            retention: DEFAULT_RETENTION,
            oldest_age: None,
        }
    }
}

/// Publishes outbox rows to the bus; runs inside the producing process.
pub struct Relay {
    pool: AnyPool,
    bus: Arc<dyn Bus>,
    committed: Arc<Notify>,
    holder: String,
    /// Topics already declared on the bus by this relay.
    declared: Mutex<HashSet<String>>,
    /// How long published rows are kept; zero deletes them once published.
    retention: Duration,
    /// Seconds the oldest event still to publish has waited (0: none waits).
    oldest_age: Option<dozen_runtime::metrics::Gauge>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("outbox database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Bus(#[from] BusError),
}

struct Pending {
    id: i64,
    topic: String,
    event: Event,
}

impl Relay {
    /// Keeps published events this long (zero: deletes them as soon as they
    /// are published, and [`crate::republish`] has nothing to send).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Reports in `metrics` how long the oldest event still to publish has
    /// waited, as `outbox_oldest_pending_event_age_seconds`: growing while
    /// the bus is down, the backlog to alert on (a web process stays ready
    /// meanwhile, its writes safe in the outbox).
    pub fn watched_by(mut self, metrics: &dozen_runtime::metrics::Metrics) -> Self {
        self.oldest_age = Some(metrics.gauge(
            "outbox_oldest_pending_event_age_seconds",
            "How long the oldest event in the outbox has waited to be published (0 when none waits)",
        ));
        self
    }

    /// Publishes until `shutdown`; then makes one last attempt to flush what is
    /// pending, hands the lease back and returns. Failures are retried with
    /// backoff while the bus or the database is unreachable.
    pub async fn run(self, shutdown: Shutdown) {
        let mut lease_renewed: Option<Instant> = None;
        let mut pruned: Option<Instant> = None;
        let mut pause = Duration::from_millis(100);
        let mut failing = false;
        loop {
            let stopping = shutdown.is_triggered();
            let committed = self.committed.notified();
            tokio::pin!(committed);
            committed.as_mut().enable();
            match self.step(&mut lease_renewed).await {
                Ok(published) => {
                    if failing {
                        tracing::info!("outbox relay recovered");
                        failing = false;
                    }
                    pause = Duration::from_millis(100);
                    if published > 0 {
                        continue;
                    }
                    if lease_renewed.is_some()
                        && pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY)
                    {
                        if let Err(error) = self.prune().await {
                            tracing::warn!(%error, "cannot delete the outbox's old published events");
                        }
                        pruned = Some(Instant::now());
                    }
                    if stopping {
                        break;
                    }
                    let idle = if lease_renewed.is_some() {
                        IDLE_POLL
                    } else {
                        LEASE_TTL / 3
                    };
                    tokio::select! {
                        () = committed => {}
                        () = tokio::time::sleep(idle) => {}
                        () = shutdown.triggered() => {}
                    }
                }
                Err(error) => {
                    if !failing {
                        tracing::warn!(error = %error, "outbox relay cannot publish; retrying with backoff");
                        failing = true;
                    }
                    if stopping {
                        tracing::warn!("stopping with events still in the outbox; they go out at the next start");
                        break;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = shutdown.triggered() => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        if lease_renewed.is_some() {
            let _ =
                sqlx::query("DELETE FROM bus_outbox_lease WHERE name = 'relay' AND holder = $1")
                    .bind(&self.holder)
                    .execute(&self.pool)
                    .await;
        }
        tracing::info!("outbox relay stopped");
    }

    /// One round: hold the lease, publish a batch, delete it. Returns how many
    /// events went out (0 when idle or when another relay holds the lease).
    async fn step(&self, lease_renewed: &mut Option<Instant>) -> Result<usize, RelayError> {
        let fresh = lease_renewed.is_some_and(|at| at.elapsed() < LEASE_TTL / 3);
        if !fresh {
            *lease_renewed = self.take_lease().await?.then(Instant::now);
        }
        if lease_renewed.is_none() {
            return Ok(0);
        }
        let rows = sqlx::query(
            "SELECT id, topic, body, created_at FROM bus_outbox WHERE published_at IS NULL
             ORDER BY id LIMIT $1",
        )
        .bind(BATCH)
        .fetch_all(&self.pool)
        .await?;
        if let Some(gauge) = &self.oldest_age {
            let oldest: Option<i64> = rows.first().map(|row| row.try_get(3)).transpose()?;
            gauge.set(oldest.map_or(0, |at| (now_millis() - at).max(0) / 1000));
        }
        let mut batch = Vec::with_capacity(rows.len());
        for row in rows {
            let body: String = row.try_get(2)?;
            batch.push(Pending {
                id: row.try_get(0)?,
                topic: row.try_get(1)?,
                event: serde_json::from_str(&body).map_err(BusError::from)?,
            });
        }
        // Publish runs of one topic together, keeping the order of the rows.
        let mut start = 0;
        while start < batch.len() {
            let topic = &batch[start].topic;
            let end = batch[start..]
                .iter()
                .position(|row| &row.topic != topic)
                .map_or(batch.len(), |n| start + n);
            let events: Vec<Event> = batch[start..end].iter().map(|r| r.event.clone()).collect();
            self.declare_once(topic).await?;
            self.bus.publish(topic, &events).await?;
            self.mark_published(&batch[start..end]).await?;
            start = end;
        }
        Ok(batch.len())
    }

    async fn declare_once(&self, topic: &str) -> Result<(), BusError> {
        let known = self.declared.lock().is_ok_and(|d| d.contains(topic));
        if !known {
            self.bus.declare_topic(topic).await?;
            if let Ok(mut declared) = self.declared.lock() {
                declared.insert(topic.to_owned());
            }
        }
        Ok(())
    }

    async fn take_lease(&self) -> Result<bool, sqlx::Error> {
        let now = now_millis();
        let taken = sqlx::query(
            "INSERT INTO bus_outbox_lease (name, holder, expires_at) VALUES ('relay', $1, $2)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE bus_outbox_lease.holder = excluded.holder OR bus_outbox_lease.expires_at < $3",
        )
        .bind(&self.holder)
        .bind(now + LEASE_TTL.as_millis() as i64)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(taken.rows_affected() > 0)
    }

    /// Marks `rows` published (or deletes them, keeping nothing).
    async fn mark_published(&self, rows: &[Pending]) -> Result<(), sqlx::Error> {
        let keep = !self.retention.is_zero();
        let first = if keep { 2 } else { 1 };
        let placeholders: Vec<String> = (first..first + rows.len())
            .map(|n| format!("${n}"))
            .collect();
        let change = if keep {
            "UPDATE bus_outbox SET published_at = $1"
        } else {
            "DELETE FROM bus_outbox"
        };
        let statement = format!("{change} WHERE id IN ({})", placeholders.join(", "));
        let mut query = sqlx::query(&statement);
        if keep {
            query = query.bind(now_millis());
        }
        for row in rows {
            query = query.bind(row.id);
        }
        query.execute(&self.pool).await.map(|_| ())
    }

    /// Deletes published rows older than the retention, oldest first. The
    /// relay publishes in id order, so publish times grow with the id: each
    /// round looks at the oldest published rows only, and stops at the first
    /// round that finds some too young.
    async fn prune(&self) -> Result<(), sqlx::Error> {
        let cutoff = now_millis() - i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        loop {
            let deleted = sqlx::query(
                "DELETE FROM bus_outbox WHERE id IN (
                     SELECT id FROM bus_outbox WHERE published_at IS NOT NULL ORDER BY id LIMIT $1)
                 AND published_at < $2",
            )
            .bind(PRUNE_BATCH)
            .bind(cutoff)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if deleted < PRUNE_BATCH as u64 {
                return Ok(());
            }
        }
    }
}
