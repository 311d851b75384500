//! The SQL backends: `sqlite://` (embedded, several processes on one host) and
//! `postgres://` (many hosts). One implementation over sqlx's `Any` driver; the
//! dialects differ only in [`queries`], and in how idle consumers are woken:
//! SQLite watches `PRAGMA data_version` ([`sqlite`]), PostgreSQL uses
//! `LISTEN/NOTIFY` ([`postgres`]).

mod postgres;
mod queries;
mod sqlite;
mod wakers;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dozen_runtime::database::{self, DatabaseSettings};
use sqlx::{AnyPool, Row};
use tokio::sync::OnceCell;

use crate::backend::{Bus, BusError, DeadLetter, Delivery, SubscriptionStats};
use crate::event::Event;
use crate::subscription::Subscription;
use queries::{Dialect, Queries};
pub(crate) use wakers::Wakers;

/// Events per INSERT: well under both databases' limits on bound parameters.
const PUBLISH_CHUNK: usize = 200;

/// Queues in a SQL database.
#[derive(Debug)]
pub struct SqlBus {
    pool: AnyPool,
    dialect: Dialect,
    queries: Queries,
    schema: OnceCell<()>,
    wakers: Arc<Wakers>,
    /// The task that wakes idle consumers when other processes publish.
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for SqlBus {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

fn unavailable(error: sqlx::Error) -> BusError {
    match error {
        sqlx::Error::Database(e) => BusError::Backend(e.to_string()),
        other => BusError::Unavailable(other.to_string()),
    }
}

impl SqlBus {
    /// A bus on the database at `url`; connects lazily, so a database that is
    /// down at start only delays delivery.
    pub fn connect(url: &str) -> Result<Self, BusError> {
        let settings = DatabaseSettings {
            url: url
                .parse()
                .map_err(|_| BusError::UnsupportedUrl(url.to_owned()))?,
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
        };
        let dialect = match settings.url.backend() {
            database::Backend::Sqlite => Dialect::Sqlite,
            database::Backend::Postgres => Dialect::Postgres,
        };
        let pool =
            database::connect_lazy(&settings).map_err(|e| BusError::Unavailable(e.to_string()))?;
        let wakers = Arc::new(Wakers::default());
        let watcher = match dialect {
            Dialect::Sqlite => sqlite::watch_commits(pool.clone(), wakers.clone()),
            Dialect::Postgres => postgres::listen(settings.url.expose().to_owned(), wakers.clone()),
        };
        Ok(Self {
            pool,
            dialect,
            queries: Queries::new(dialect),
            schema: OnceCell::new(),
            wakers,
            watcher,
        })
    }

    /// Creates the tables on first use; retried on the next call if it fails.
    async fn ready(&self) -> Result<&AnyPool, BusError> {
        self.schema
            .get_or_try_init(|| async {
                let mut tx = self.pool.begin().await.map_err(unavailable)?;
                if self.dialect == Dialect::Postgres {
                    // Serialise concurrent first starts: CREATE IF NOT EXISTS races otherwise.
                    sqlx::query("SELECT pg_advisory_xact_lock(7250812)")
                        .execute(&mut *tx)
                        .await
                        .map_err(unavailable)?;
                }
                for statement in &self.queries.schema {
                    sqlx::query(statement)
                        .execute(&mut *tx)
                        .await
                        .map_err(unavailable)?;
                }
                tx.commit().await.map_err(unavailable)
            })
            .await?;
        Ok(&self.pool)
    }

    async fn wake_others(&self, tx: &mut sqlx::AnyConnection, topic: &str) -> Result<(), BusError> {
        if self.dialect == Dialect::Postgres {
            postgres::notify(tx, topic).await.map_err(unavailable)?;
        }
        Ok(())
    }

    /// Settles a delivery this consumer still holds (its lease matches).
    async fn settle(
        &self,
        subscription: &Subscription,
        delivery: &Delivery,
        outcome: Outcome<'_>,
    ) -> Result<(), BusError> {
        let (id, lease) = parse_receipt(&delivery.receipt)?;
        let query = match outcome {
            Outcome::Ack => sqlx::query(&self.queries.ack).bind(id).bind(lease),
            Outcome::Retry { delay, error } => sqlx::query(&self.queries.retry)
                .bind(id)
                .bind(lease)
                .bind(delay.as_millis() as i64)
                .bind(error.to_owned()),
            Outcome::Extend { by } => sqlx::query(&self.queries.extend)
                .bind(id)
                .bind(lease)
                .bind(by.as_millis() as i64),
            Outcome::DeadLetter { error } => sqlx::query(&self.queries.dead_letter)
                .bind(id)
                .bind(lease)
                .bind(error.to_owned()),
        };
        let pool = self.ready().await?;
        let done = query.execute(pool).await.map_err(unavailable)?;
        if done.rows_affected() == 0 {
            tracing::warn!(
                subscription = subscription.name,
                event_id = delivery.event.id,
                "delivery no longer held (visibility timeout passed); it will be redelivered"
            );
        }
        // An ordered subscription's next event for this key may now be free.
        if subscription.ordered {
            self.wakers.wake(&subscription.topic);
        }
        Ok(())
    }
}

enum Outcome<'a> {
    Ack,
    Extend { by: Duration },
    Retry { delay: Duration, error: &'a str },
    DeadLetter { error: &'a str },
}

fn parse_receipt(receipt: &str) -> Result<(i64, String), BusError> {
    let (id, lease) = receipt
        .split_once(':')
        .ok_or_else(|| BusError::BadReceipt(receipt.to_owned()))?;
    let id = id
        .parse()
        .map_err(|_| BusError::BadReceipt(receipt.to_owned()))?;
    Ok((id, lease.to_owned()))
}

#[async_trait]
impl Bus for SqlBus {
    async fn declare_topic(&self, _topic: &str) -> Result<(), BusError> {
        // A topic is the set of subscriptions naming it: nothing to create.
        self.ready().await.map(|_| ())
    }

    async fn declare(&self, subscription: &Subscription) -> Result<(), BusError> {
        let pool = self.ready().await?;
        sqlx::query(&self.queries.declare)
            .bind(&subscription.name)
            .bind(&subscription.topic)
            .execute(pool)
            .await
            .map_err(unavailable)?;
        let existing: String = sqlx::query_scalar(&self.queries.topic_of)
            .bind(&subscription.name)
            .fetch_one(pool)
            .await
            .map_err(unavailable)?;
        if existing != subscription.topic {
            return Err(BusError::TopicMismatch {
                name: subscription.name.clone(),
                existing,
                requested: subscription.topic.clone(),
            });
        }
        Ok(())
    }

    async fn publish(&self, topic: &str, events: &[Event]) -> Result<(), BusError> {
        if events.is_empty() {
            return Ok(());
        }
        let pool = self.ready().await?;
        let mut tx = match self.dialect {
            // Take the write lock up front: no upgrade from reader to writer mid-way.
            Dialect::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => pool.begin().await,
        }
        .map_err(unavailable)?;
        for chunk in events.chunks(PUBLISH_CHUNK) {
            let statement = self.queries.publish(chunk.len());
            let mut query = sqlx::query(&statement).bind(topic);
            for (sequence, event) in chunk.iter().enumerate() {
                query = query
                    .bind(sequence as i64)
                    .bind(&event.id)
                    .bind(event.partitionkey.as_deref())
                    .bind(serde_json::to_string(event)?);
            }
            query.execute(&mut *tx).await.map_err(unavailable)?;
        }
        self.wake_others(&mut tx, topic).await?;
        tx.commit().await.map_err(unavailable)?;
        self.wakers.wake(topic);
        Ok(())
    }

    async fn receive(
        &self,
        subscription: &Subscription,
        max: usize,
    ) -> Result<Vec<Delivery>, BusError> {
        let pool = self.ready().await?;
        let lease = uuid::Uuid::new_v4().simple().to_string();
        let rows = sqlx::query(&self.queries.receive)
            .bind(&subscription.name)
            .bind(i64::from(subscription.ordered))
            .bind(max as i64)
            .bind(subscription.visibility_timeout.as_millis() as i64)
            .bind(&lease)
            .fetch_all(pool)
            .await
            .map_err(unavailable)?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get(0).map_err(unavailable)?;
            let body: String = row.try_get(1).map_err(unavailable)?;
            let attempts: i64 = row.try_get(2).map_err(unavailable)?;
            deliveries.push((
                id,
                Delivery {
                    event: serde_json::from_str(&body)?,
                    attempt: attempts as u32,
                    receipt: format!("{id}:{lease}"),
                },
            ));
        }
        deliveries.sort_by_key(|(id, _)| *id);
        Ok(deliveries.into_iter().map(|(_, d)| d).collect())
    }

    async fn wait(&self, subscription: &Subscription, max_wait: Duration) {
        let notify = self.wakers.topic(&subscription.topic);
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let _watching = self.wakers.waiting();
        // Anything published before `enable` is seen here; anything after wakes us.
        let next: Option<i64> = match self.ready().await {
            Ok(pool) => sqlx::query_scalar(&self.queries.next_visible)
                .bind(&subscription.name)
                .bind(i64::from(subscription.ordered))
                .fetch_one(pool)
                .await
                .ok()
                .flatten(),
            Err(_) => None,
        };
        let wait = match next {
            Some(ms) if ms <= 0 => return,
            Some(ms) => Duration::from_millis(ms as u64 + 1).min(max_wait),
            None => max_wait,
        };
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep(wait) => {}
        }
    }

    async fn ack(&self, subscription: &Subscription, delivery: &Delivery) -> Result<(), BusError> {
        self.settle(subscription, delivery, Outcome::Ack).await
    }

    async fn ack_batch(
        &self,
        subscription: &Subscription,
        deliveries: &[Delivery],
    ) -> Result<(), BusError> {
        // Deliveries from one receive share a lease: one DELETE per lease.
        let mut by_lease: Vec<(String, Vec<i64>)> = Vec::new();
        for delivery in deliveries {
            let (id, lease) = parse_receipt(&delivery.receipt)?;
            match by_lease.iter_mut().find(|(l, _)| *l == lease) {
                Some((_, ids)) => ids.push(id),
                None => by_lease.push((lease, vec![id])),
            }
        }
        let pool = self.ready().await?;
        for (lease, ids) in by_lease {
            let placeholders: Vec<String> = (2..ids.len() + 2).map(|n| format!("${n}")).collect();
            let statement = format!(
                "DELETE FROM bus_messages WHERE lease = $1 AND id IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&statement).bind(lease);
            for id in ids {
                query = query.bind(id);
            }
            query.execute(pool).await.map_err(unavailable)?;
        }
        if subscription.ordered {
            self.wakers.wake(&subscription.topic);
        }
        Ok(())
    }

    async fn retry(
        &self,
        subscription: &Subscription,
        delivery: &Delivery,
        delay: Duration,
        error: &str,
    ) -> Result<(), BusError> {
        self.settle(subscription, delivery, Outcome::Retry { delay, error })
            .await
    }

    async fn dead_letter(
        &self,
        subscription: &Subscription,
        delivery: &Delivery,
        error: &str,
    ) -> Result<(), BusError> {
        self.settle(subscription, delivery, Outcome::DeadLetter { error })
            .await
    }

    async fn extend(
        &self,
        subscription: &Subscription,
        delivery: &Delivery,
        by: Duration,
    ) -> Result<(), BusError> {
        self.settle(subscription, delivery, Outcome::Extend { by })
            .await
    }

    async fn ping(&self) -> Result<(), BusError> {
        let pool = self.ready().await?;
        database::ping(pool).await.map_err(unavailable)
    }

    async fn subscriptions(&self) -> Result<Vec<SubscriptionStats>, BusError> {
        let pool = self.ready().await?;
        let rows = sqlx::query(&self.queries.stats)
            .fetch_all(pool)
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|row| {
                Ok(SubscriptionStats {
                    name: row.try_get(0)?,
                    topic: row.try_get(1)?,
                    depth: row.try_get::<i64, _>(2)? as u64,
                    in_flight: row.try_get::<i64, _>(3)? as u64,
                    dead_letters: row.try_get::<i64, _>(4)? as u64,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(unavailable)
    }

    async fn dead_letters(
        &self,
        subscription: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, BusError> {
        let pool = self.ready().await?;
        let rows = sqlx::query(&self.queries.dead_letters)
            .bind(subscription)
            .bind(limit as i64)
            .fetch_all(pool)
            .await
            .map_err(unavailable)?;
        let mut letters = Vec::with_capacity(rows.len());
        for row in rows {
            let body: String = row.try_get(0).map_err(unavailable)?;
            let attempts: i64 = row.try_get(1).map_err(unavailable)?;
            let dead_at: Option<i64> = row.try_get(3).map_err(unavailable)?;
            letters.push(DeadLetter {
                subscription: subscription.to_owned(),
                event: serde_json::from_str(&body)?,
                attempts: attempts as u32,
                last_error: row.try_get(2).map_err(unavailable)?,
                dead_at: dead_at.map(dozen_runtime::clock::rfc3339_from_millis),
            });
        }
        Ok(letters)
    }

    async fn redrive(
        &self,
        subscription: &str,
        event_ids: Option<&[String]>,
    ) -> Result<u64, BusError> {
        let moved = self
            .for_each_id(
                &self.queries.redrive_all,
                &self.queries.redrive_one,
                subscription,
                event_ids,
            )
            .await?;
        if moved > 0 {
            let pool = self.ready().await?;
            let topic: Option<String> = sqlx::query_scalar(&self.queries.topic_of)
                .bind(subscription)
                .fetch_optional(pool)
                .await
                .map_err(unavailable)?;
            if let Some(topic) = topic {
                let mut conn = pool.acquire().await.map_err(unavailable)?;
                self.wake_others(&mut conn, &topic).await?;
                self.wakers.wake(&topic);
            }
        }
        Ok(moved)
    }

    async fn purge(
        &self,
        subscription: &str,
        event_ids: Option<&[String]>,
    ) -> Result<u64, BusError> {
        self.for_each_id(
            &self.queries.purge_all,
            &self.queries.purge_one,
            subscription,
            event_ids,
        )
        .await
    }
}

impl SqlBus {
    /// Runs `all` for the subscription, or `one` once per event id, in one transaction.
    async fn for_each_id(
        &self,
        all: &str,
        one: &str,
        subscription: &str,
        event_ids: Option<&[String]>,
    ) -> Result<u64, BusError> {
        let pool = self.ready().await?;
        let mut tx = pool.begin().await.map_err(unavailable)?;
        let mut affected = 0;
        match event_ids {
            None => {
                affected += sqlx::query(all)
                    .bind(subscription)
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?
                    .rows_affected();
            }
            Some(ids) => {
                for id in ids {
                    affected += sqlx::query(one)
                        .bind(subscription)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(unavailable)?
                        .rows_affected();
                }
            }
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(affected)
    }
}
