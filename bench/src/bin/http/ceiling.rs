//! The bare ceilings: the statements each endpoint runs, driven straight at
//! the database by a small Rust client (sqlx, as chat uses it) from as many
//! concurrent tasks as wrk has connections — no HTTP, no JSON, no auth.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::AnyPool;

use crate::wrk::Measured;

/// What a ceiling drives: one unit of an endpoint's database work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// A page of 50: the statement `GET …/messages?limit=50` runs.
    Page,
    /// One post in its own transaction: take the room's next number, the
    /// message, its room event, its outbox row; commit.
    Post,
    /// One single-row INSERT, committed: what the Node stack's POST does.
    Insert,
}

/// Runs `work` against `room` from `tasks` tasks for `duration`.
pub async fn run(
    pool: &AnyPool,
    room: &str,
    work: Work,
    tasks: u32,
    duration: Duration,
) -> anyhow::Result<Measured> {
    if work == Work::Insert {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS bench_inserts (id TEXT PRIMARY KEY, room_id TEXT, text TEXT)",
        )
        .execute(pool)
        .await?;
    }
    let room: Arc<str> = room.into();
    let warm_until = Instant::now() + Duration::from_secs(2);
    let until = warm_until + duration;
    let mut runners = Vec::new();
    for _ in 0..tasks {
        let (pool, room) = (pool.clone(), room.clone());
        runners.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let started = Instant::now();
                if started >= until {
                    break;
                }
                once(&pool, &room, work).await?;
                if started >= warm_until {
                    latencies.push(started.elapsed());
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for runner in runners {
        latencies.extend(runner.await??);
    }
    latencies.sort();
    let p99 = latencies
        .get(latencies.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default();
    Ok(Measured {
        rps: latencies.len() as f64 / duration.as_secs_f64(),
        p99_ms: p99.as_secs_f64() * 1000.0,
        failed: 0,
        requests: latencies.len() as u64,
    })
}

async fn once(pool: &AnyPool, room: &str, work: Work) -> Result<(), sqlx::Error> {
    let id = uuid::Uuid::now_v7().to_string();
    match work {
        Work::Page => {
            sqlx::query(chat::PAGE_SELECT)
                .bind(room)
                .bind(i64::MAX)
                .bind(50_i64)
                .fetch_all(pool)
                .await?;
        }
        Work::Post => {
            let mut tx = pool.begin().await?;
            let seq: i64 = sqlx::query_scalar(
                "UPDATE rooms SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq",
            )
            .bind(room)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO messages (id, room_id, seq, author_id, author_username, text, sent_at)
                 VALUES ($1, $2, $3, 'ceiling', 'ceiling', 'hello from the ceiling', 0)",
            )
            .bind(&id)
            .bind(room)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO room_events (room_id, seq, kind, body, created_at, message_id)
                 VALUES ($1, $2, 'message', '{\"text\":\"hello from the ceiling\"}', 0, $3)",
            )
            .bind(room)
            .bind(seq)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO bus_outbox (topic, body, created_at, published_at)
                 VALUES ('bench.ceiling', '{}', 0, 0)",
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Work::Insert => {
            sqlx::query(
                "INSERT INTO bench_inserts (id, room_id, text) VALUES ($1, $2, 'hello from the ceiling')",
            )
            .bind(&id)
            .bind(room)
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}
