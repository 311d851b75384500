//! The embedded cache: a SQLite file that the processes of one host share,
//! so development needs no server. Expiry is judged by this host's clock.
//!
//! Channels are a table of recent messages: each process that subscribes
//! polls it once every [`POLL`] for all of its subscribers, and messages are
//! pruned after [`KEEP_MESSAGES`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use dozen_runtime::clock::now_millis;
use dozen_runtime::database::{self, DatabaseSettings};
use sqlx::AnyPool;
use tokio::sync::{mpsc, OnceCell};

use crate::{
    hand_over, Backend, CacheError, CacheUrl, Delivery, Entry, Message, SUBSCRIBER_BUFFER,
};

/// How often a process reads the messages published since its last look.
pub const POLL: Duration = Duration::from_millis(100);
/// How long a message stays in the file for pollers to find.
pub const KEEP_MESSAGES: Duration = Duration::from_secs(60);

const SCHEMA: [&str; 3] = [
    "CREATE TABLE IF NOT EXISTS cache_entries (
        set_name   TEXT   NOT NULL,
        member     TEXT   NOT NULL,
        value      TEXT   NOT NULL,
        -- Milliseconds since the Unix epoch.
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (set_name, member)
    )",
    "CREATE TABLE IF NOT EXISTS cache_messages (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        channel    TEXT   NOT NULL,
        payload    TEXT   NOT NULL,
        created_at BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS cache_messages_by_age ON cache_messages (created_at)",
];

#[derive(Debug)]
struct Subscriber {
    prefix: String,
    sender: mpsc::Sender<Delivery>,
    gap_owed: bool,
}

#[derive(Debug)]
pub(crate) struct EmbeddedCache {
    pool: AnyPool,
    schema: OnceCell<()>,
    /// Started with the first subscription; runs while this handle or a subscription lives.
    polling: OnceCell<()>,
    /// This process's subscribers, fed by one poll.
    subscribers: Arc<Mutex<Vec<Subscriber>>>,
}

fn unavailable(error: sqlx::Error) -> CacheError {
    CacheError::Unavailable(error.to_string())
}

impl EmbeddedCache {
    pub(crate) fn open(url: &CacheUrl) -> Result<Self, CacheError> {
        let invalid = |reason: String| CacheError::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        let settings = DatabaseSettings {
            url: url.without_prefix().parse().map_err(invalid)?,
            max_connections: 4,
            acquire_timeout: Duration::from_secs(2),
        };
        let pool = database::connect_lazy(&settings).map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            pool,
            schema: OnceCell::new(),
            polling: OnceCell::new(),
            subscribers: Arc::default(),
        })
    }

    /// The pool, with the tables made on first use.
    async fn pool(&self) -> Result<&AnyPool, CacheError> {
        self.schema
            .get_or_try_init(|| async {
                for statement in SCHEMA {
                    sqlx::query(statement).execute(&self.pool).await?;
                }
                Ok::<_, sqlx::Error>(())
            })
            .await
            .map_err(unavailable)?;
        Ok(&self.pool)
    }
}

#[async_trait]
impl Backend for EmbeddedCache {
    async fn put(
        &self,
        set: &str,
        member: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let pool = self.pool().await?;
        let now = now_millis();
        let mut tx = pool.begin().await.map_err(unavailable)?;
        sqlx::query("DELETE FROM cache_entries WHERE set_name = $1 AND expires_at <= $2")
            .bind(set)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO cache_entries (set_name, member, value, expires_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (set_name, member)
             DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
        )
        .bind(set)
        .bind(member)
        .bind(value)
        .bind(now + ttl.as_millis() as i64)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    async fn remove(&self, set: &str, member: &str) -> Result<(), CacheError> {
        sqlx::query("DELETE FROM cache_entries WHERE set_name = $1 AND member = $2")
            .bind(set)
            .bind(member)
            .execute(self.pool().await?)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn members(&self, set: &str) -> Result<Vec<Entry>, CacheError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT member, value FROM cache_entries WHERE set_name = $1 AND expires_at > $2",
        )
        .bind(set)
        .bind(now_millis())
        .fetch_all(self.pool().await?)
        .await
        .map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .map(|(member, value)| Entry { member, value })
            .collect())
    }

    async fn publish(&self, channel: &str, payload: &str) -> Result<(), CacheError> {
        sqlx::query(
            "INSERT INTO cache_messages (channel, payload, created_at) VALUES ($1, $2, $3)",
        )
        .bind(channel)
        .bind(payload)
        .bind(now_millis())
        .execute(self.pool().await?)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn subscribe(&self, prefix: &str) -> Result<mpsc::Receiver<Delivery>, CacheError> {
        let pool = self.pool().await?.clone();
        self.polling
            .get_or_try_init(|| async {
                let seen = last_id(&pool).await?;
                tokio::spawn(poll(pool, self.subscribers.clone(), seen));
                Ok::<_, CacheError>(())
            })
            .await?;
        let (sender, receiver) = mpsc::channel(SUBSCRIBER_BUFFER);
        self.subscribers
            .lock()
            .expect("not poisoned")
            .push(Subscriber {
                prefix: prefix.to_owned(),
                sender,
                gap_owed: false,
            });
        Ok(receiver)
    }

    async fn ping(&self) -> Result<(), CacheError> {
        sqlx::query("SELECT 1")
            .execute(self.pool().await?)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

async fn last_id(pool: &AnyPool) -> Result<i64, CacheError> {
    sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM cache_messages")
        .fetch_one(pool)
        .await
        .map_err(unavailable)
}

/// Reads new messages for this process's subscribers, while the cache
/// handle lives or a subscription does. With no subscriber it only keeps up
/// with the newest id.
async fn poll(pool: AnyPool, subscribers: Arc<Mutex<Vec<Subscriber>>>, mut seen: i64) {
    let mut last_prune = now_millis();
    loop {
        tokio::time::sleep(POLL).await;
        let idle = subscribers.lock().expect("not poisoned").is_empty();
        if idle && Arc::strong_count(&subscribers) == 1 {
            return;
        }
        let rows: Result<Vec<(i64, String, String)>, _> = if idle {
            last_id(&pool).await.map(|id| {
                seen = id;
                Vec::new()
            })
        } else {
            sqlx::query_as(
                "SELECT id, channel, payload FROM cache_messages WHERE id > $1 ORDER BY id LIMIT 1000",
            )
            .bind(seen)
            .fetch_all(&pool)
            .await
            .map_err(unavailable)
        };
        match rows {
            Ok(rows) => deliver(
                &mut subscribers.lock().expect("not poisoned"),
                rows,
                &mut seen,
            ),
            Err(error) => {
                tracing::warn!(error = %error, "the embedded cache could not be read; retrying")
            }
        }
        if now_millis() - last_prune > KEEP_MESSAGES.as_millis() as i64 / 4 {
            last_prune = now_millis();
            let cutoff = last_prune - KEEP_MESSAGES.as_millis() as i64;
            if let Err(error) = sqlx::query("DELETE FROM cache_messages WHERE created_at < $1")
                .bind(cutoff)
                .execute(&pool)
                .await
            {
                tracing::warn!(error = %error, "old cache messages could not be pruned");
            }
        }
    }
}

/// Hands each row to the subscribers whose prefix it matches; forgets
/// subscribers that are gone.
fn deliver(subscribers: &mut Vec<Subscriber>, rows: Vec<(i64, String, String)>, seen: &mut i64) {
    for (id, channel, payload) in rows {
        *seen = id;
        subscribers.retain_mut(|s| {
            !channel.starts_with(&s.prefix)
                || hand_over(
                    &s.sender,
                    Delivery::Message(Message {
                        channel: channel.clone(),
                        payload: payload.clone(),
                    }),
                    &mut s.gap_owed,
                )
        });
    }
    subscribers.retain(|s| !s.sender.is_closed());
}
