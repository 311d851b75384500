//! `chat archive` throughput, next to a bare baseline on the same data.
//!
//! Dozen: `chat::archive::run` — journaled batches of 5,000, gzip JSON Lines
//! with cards, one object per batch, delete + journal mark per batch.
//! Bare: one SELECT of every old message, the same gzip JSON Lines written one
//! file per room and day, one DELETE — no journal, no batches, no cards: the
//! least work that moves the same messages, and none of the crash safety.
//!
//! ```sh
//! cargo run --release -p dozen-bench --bin archive -- [--messages 100000] [--backends sqlite,postgres]
//! ```
//! PostgreSQL is `BENCH_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! a fresh database is made for each run.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use chat::archive::{Destination, Plan};
use dozen_runtime::database::{connect_lazy, DatabaseSettings};
use dozen_testing::{Backend, TestDatabase};
use flate2::write::GzEncoder;
use sqlx::AnyPool;

const DAY_MS: i64 = 24 * 3600 * 1000;
const ROOMS: i64 = 10;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let option = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let messages: i64 = option("--messages").map_or(Ok(100_000), |v| v.parse())?;
    let backends = option("--backends").unwrap_or_else(|| "sqlite,postgres".into());
    println!("| database | messages | Dozen (messages/s) | bare (messages/s) | Dozen / bare |");
    println!("|---|---|---|---|---|");
    for backend in backends.split(',') {
        let backend = match backend {
            "sqlite" => Backend::Sqlite,
            "postgres" => Backend::Postgres(dozen_bench::postgres_url()),
            other => anyhow::bail!("unknown backend {other}"),
        };
        let dozen = rate(messages, &backend, Way::Dozen).await?;
        let bare = rate(messages, &backend, Way::Bare).await?;
        println!(
            "| {} | {messages} | {dozen:.0} | {bare:.0} | {:.0}% |",
            if matches!(backend, Backend::Sqlite) {
                "SQLite"
            } else {
                "PostgreSQL"
            },
            100.0 * dozen / bare
        );
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Way {
    Dozen,
    Bare,
}

/// Messages per second moving `messages` freshly seeded ones.
async fn rate(messages: i64, backend: &Backend, way: Way) -> anyhow::Result<f64> {
    let database = TestDatabase::create(backend).await;
    let db = connect_lazy(&DatabaseSettings {
        url: database.url.parse().map_err(anyhow::Error::msg)?,
        max_connections: 4,
        acquire_timeout: Duration::from_secs(30),
    })?;
    chat::migrate(&db).await?;
    seed(&db, messages).await?;
    let cold = tempfile::tempdir()?;
    let started = Instant::now();
    match way {
        Way::Dozen => {
            let to = Destination::parse(&format!("file://{}", cold.path().display()))?;
            let plan = Plan {
                progress: false,
                ..Plan::new(Duration::from_secs(90 * 24 * 3600))
            };
            let summary = chat::archive::run(&db, &to, &plan).await?;
            anyhow::ensure!(summary.messages == messages, "{summary}");
        }
        Way::Bare => bare(&db, cold.path()).await?,
    }
    let seconds = started.elapsed().as_secs_f64();
    db.close().await;
    Ok(messages as f64 / seconds)
}

/// `messages` messages sent 91 to 120 days ago, over ten rooms.
async fn seed(db: &AnyPool, messages: i64) -> anyhow::Result<()> {
    let now = dozen_runtime::clock::now_millis();
    for room in 0..ROOMS {
        sqlx::query(
            "INSERT INTO rooms (id, name, created_by, created_at) VALUES ($1, $1, 'bench', 0)",
        )
        .bind(format!("room-{room}"))
        .execute(db)
        .await?;
    }
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $1 - 1)
         INSERT INTO messages (id, room_id, seq, author_id, author_username, text, sent_at)
         SELECT 'm-' || i, 'room-' || (i % 10), i / 10 + 1, 'author', 'alice',
                'message ' || i || ': the quick brown fox jumps over the lazy dog',
                $2 + (i * $3) / $1
         FROM n",
    )
    .bind(messages)
    .bind(now - 120 * DAY_MS)
    .bind(29 * DAY_MS)
    .execute(db)
    .await?;
    Ok(())
}

type Row = (String, String, i64, String, String, String, i64);

async fn bare(db: &AnyPool, folder: &std::path::Path) -> anyhow::Result<()> {
    let cutoff = dozen_runtime::clock::now_millis() - 90 * DAY_MS;
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, room_id, seq, author_id, author_username, text, sent_at FROM messages
         WHERE sent_at < $1 ORDER BY room_id, seq",
    )
    .bind(cutoff)
    .fetch_all(db)
    .await?;
    let mut partitions: BTreeMap<(String, i64), Vec<Row>> = BTreeMap::new();
    for row in rows {
        partitions
            .entry((row.1.clone(), row.6.div_euclid(DAY_MS)))
            .or_default()
            .push(row);
    }
    for ((room, day), rows) in partitions {
        let mut gzip = GzEncoder::new(Vec::new(), flate2::Compression::default());
        for (id, room_id, seq, author_id, author_username, text, sent_at) in rows {
            let line = serde_json::json!({
                "id": id, "room_id": room_id, "seq": seq, "author_id": author_id,
                "author_username": author_username, "text": text,
                "sent_at": dozen_runtime::clock::rfc3339_from_millis(sent_at),
            });
            serde_json::to_writer(&mut gzip, &line)?;
            gzip.write_all(b"\n")?;
        }
        let path = folder.join(format!("{room}-{day}.jsonl.gz"));
        std::fs::write(path, gzip.finish()?)?;
    }
    sqlx::query("DELETE FROM messages WHERE sent_at < $1")
        .bind(cutoff)
        .execute(db)
        .await?;
    Ok(())
}
