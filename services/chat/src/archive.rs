//! `chat archive`: moves messages older than a cutoff to cold storage, as
//! gzip-compressed JSON Lines, one object per batch, under
//! `messages/room=<id>/day=<YYYY-MM-DD>/<first>-<last>.jsonl.gz`.
//!
//! Each batch is first written to the journal (`archive_batches`) with the
//! exact rows it covers, then uploaded, then deleted in one transaction with
//! the journal's `done` mark. A run that crashes anywhere leaves either a
//! finished batch or a journal entry the next run completes first, uploading
//! the same rows under the same name: nothing lost, nothing twice.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use dozen_runtime::clock::{now_millis, rfc3339_from_millis};
use dozen_runtime::text::counted;
use flate2::write::GzEncoder;
use flate2::Compression;
use indicatif::{ProgressBar, ProgressStyle};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use serde::Serialize;
use sqlx::{AnyPool, FromRow};

use crate::model::Card;
use crate::store::{cards_by_message, CardRow, MessageRow, MESSAGE_COLUMNS};

const DAY_MS: i64 = 24 * 3600 * 1000;
pub const DEFAULT_BATCH: i64 = 5000;

/// Where archived messages go: `file://<folder>` or `s3://<bucket>[/<prefix>]`
/// (credentials, region and endpoint from the usual `AWS_*` variables).
#[derive(Debug, Clone)]
pub struct Destination {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: ObjectPath,
    pub url: String,
}

impl Destination {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        if let Some(folder) = url.strip_prefix("file://") {
            anyhow::ensure!(!folder.is_empty(), "{url}: a file:// URL needs a folder");
            std::fs::create_dir_all(folder).with_context(|| format!("creating {folder}"))?;
            let store = object_store::local::LocalFileSystem::new_with_prefix(folder)
                .with_context(|| format!("opening {folder}"))?;
            return Ok(Self {
                store: Arc::new(store),
                prefix: ObjectPath::default(),
                url: url.to_owned(),
            });
        }
        let parsed = url::Url::parse(url).with_context(|| format!("{url} is not a URL"))?;
        anyhow::ensure!(
            parsed.scheme() == "s3",
            "{url}: the archive goes to file://<folder> or s3://<bucket>/<prefix>"
        );
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_url(url)
            .build()
            .with_context(|| format!("configuring {url}"))?;
        Ok(Self {
            store: Arc::new(store),
            prefix: ObjectPath::from(parsed.path().trim_matches('/')),
            url: url.to_owned(),
        })
    }
}

/// What to archive.
#[derive(Debug, Clone)]
pub struct Plan {
    pub older_than: Duration,
    /// Messages per object (and per delete).
    pub batch: i64,
    pub dry_run: bool,
    /// A progress bar on stderr; only wanted when a person is watching.
    pub progress: bool,
}

impl Plan {
    pub fn new(older_than: Duration) -> Self {
        Self {
            older_than,
            batch: DEFAULT_BATCH,
            dry_run: false,
            progress: std::io::stdout().is_terminal(),
        }
    }
}

/// What a run did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub dry_run: bool,
    /// RFC 3339: messages sent before it were archived.
    pub cutoff: String,
    pub messages: i64,
    pub rooms: i64,
    /// (room, day) partitions touched.
    pub partitions: i64,
    pub objects: i64,
    /// Compressed bytes written.
    pub bytes: i64,
    /// Batches left by an interrupted run, completed first.
    pub resumed: i64,
    pub hot_before: i64,
    pub hot_after: i64,
    pub elapsed: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.dry_run {
            "would archive"
        } else {
            "archived"
        };
        writeln!(
            f,
            "{verb} {} sent before {} from {} ({})",
            counted(self.messages, "message", "messages"),
            self.cutoff,
            counted(self.rooms, "room", "rooms"),
            counted(self.partitions, "room-day", "room-days")
        )?;
        if !self.dry_run {
            let seconds = self.elapsed.as_secs_f64().max(0.001);
            writeln!(
                f,
                "wrote {}, {} bytes compressed, in {:.1} s ({:.0} messages/s); resumed {}",
                counted(self.objects, "object", "objects"),
                self.bytes,
                seconds,
                self.messages as f64 / seconds,
                counted(self.resumed, "interrupted batch", "interrupted batches")
            )?;
        }
        write!(
            f,
            "hot database: {} messages before, {} after",
            self.hot_before, self.hot_after
        )
    }
}

/// One message as archived.
#[derive(Debug, Serialize)]
struct Archived {
    id: String,
    room_id: String,
    seq: i64,
    author_id: String,
    author_username: String,
    text: String,
    sent_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_at: Option<String>,
    cards: Vec<Card>,
}

/// A batch: the room's messages numbered `first..=last` sent in `[from, until)`.
#[derive(Debug, Clone, FromRow)]
struct Batch {
    object_key: String,
    room_id: String,
    day: String,
    first_seq: i64,
    last_seq: i64,
    cutoff: i64,
}

impl Batch {
    fn window(&self) -> anyhow::Result<(i64, i64)> {
        let date = time::Date::parse(
            &self.day,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .with_context(|| format!("journal day {:?}", self.day))?;
        let from = date.midnight().assume_utc().unix_timestamp() * 1000;
        Ok((from, (from + DAY_MS).min(self.cutoff)))
    }
}

/// Runs the plan against `db`, writing to `to`.
pub async fn run(db: &AnyPool, to: &Destination, plan: &Plan) -> anyhow::Result<Summary> {
    let started = Instant::now();
    let cutoff = now_millis() - i64::try_from(plan.older_than.as_millis())?;
    let (messages, rooms, partitions) = extent(db, cutoff).await?;
    let mut summary = Summary {
        dry_run: plan.dry_run,
        cutoff: rfc3339_from_millis(cutoff),
        messages,
        rooms,
        partitions,
        hot_before: count_messages(db).await?,
        ..Summary::default()
    };
    if plan.dry_run {
        summary.hot_after = summary.hot_before;
        return Ok(summary);
    }
    let progress = if plan.progress {
        let bar = ProgressBar::new(messages as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} messages, {per_sec}, eta {eta}")
                .expect("a valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut moved = 0;
    let pending: Vec<Batch> = sqlx::query_as(
        "SELECT object_key, room_id, day, first_seq, last_seq, cutoff FROM archive_batches
         WHERE done = 0 ORDER BY created_at, object_key",
    )
    .fetch_all(db)
    .await?;
    for batch in pending {
        let (count, bytes) = finish(db, to, &batch).await?;
        summary.resumed += 1;
        summary.objects += 1;
        summary.bytes += bytes;
        moved += count;
        progress.inc(count as u64);
    }
    while let Some(batch) = next_batch(db, to, cutoff, plan.batch).await? {
        let (count, bytes) = finish(db, to, &batch).await?;
        summary.objects += 1;
        summary.bytes += bytes;
        moved += count;
        progress.inc(count as u64);
    }
    progress.finish_and_clear();
    prune_room_events(db, cutoff, plan.batch).await?;
    summary.messages = moved;
    summary.hot_after = count_messages(db).await?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

async fn count_messages(db: &AnyPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM messages")
        .fetch_one(db)
        .await
}

/// Messages, rooms and (room, day) partitions before the cutoff.
async fn extent(db: &AnyPool, cutoff: i64) -> Result<(i64, i64, i64), sqlx::Error> {
    let (messages, rooms): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT room_id) FROM messages WHERE sent_at < $1")
            .bind(cutoff)
            .fetch_one(db)
            .await?;
    let partitions: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT room_id, sent_at / 86400000 AS day FROM messages
         WHERE sent_at < $1 GROUP BY room_id, sent_at / 86400000) partitions",
    )
    .bind(cutoff)
    .fetch_one(db)
    .await?;
    Ok((messages, rooms, partitions))
}

/// Journals the next batch: the oldest message's room and day, up to `size`
/// of its messages in order. `None` when nothing is older than the cutoff.
async fn next_batch(
    db: &AnyPool,
    to: &Destination,
    cutoff: i64,
    size: i64,
) -> anyhow::Result<Option<Batch>> {
    let oldest: Option<(String, i64)> = sqlx::query_as(
        "SELECT room_id, sent_at FROM messages WHERE sent_at < $1 ORDER BY sent_at LIMIT 1",
    )
    .bind(cutoff)
    .fetch_optional(db)
    .await?;
    let Some((room_id, sent_at)) = oldest else {
        return Ok(None);
    };
    let from = sent_at.div_euclid(DAY_MS) * DAY_MS;
    let until = (from + DAY_MS).min(cutoff);
    let (first_seq, last_seq): (i64, i64) = sqlx::query_as(
        "SELECT MIN(seq), MAX(seq) FROM (SELECT seq FROM messages
         WHERE room_id = $1 AND sent_at >= $2 AND sent_at < $3 ORDER BY seq LIMIT $4) batch",
    )
    .bind(&room_id)
    .bind(from)
    .bind(until)
    .bind(size)
    .fetch_one(db)
    .await?;
    let day = rfc3339_from_millis(from)[..10].to_owned();
    let object_key = to
        .prefix
        .child("messages")
        .child(format!("room={room_id}"))
        .child(format!("day={day}"))
        .child(format!("{first_seq:012}-{last_seq:012}.jsonl.gz"))
        .to_string();
    let batch = Batch {
        object_key,
        room_id,
        day,
        first_seq,
        last_seq,
        cutoff,
    };
    sqlx::query(
        "INSERT INTO archive_batches
            (object_key, room_id, day, first_seq, last_seq, messages, cutoff, done, created_at)
         VALUES ($1, $2, $3, $4, $5, 0, $6, 0, $7)",
    )
    .bind(&batch.object_key)
    .bind(&batch.room_id)
    .bind(&batch.day)
    .bind(batch.first_seq)
    .bind(batch.last_seq)
    .bind(batch.cutoff)
    .bind(now_millis())
    .execute(db)
    .await?;
    Ok(Some(batch))
}

const BATCH_FILTER: &str =
    "room_id = $1 AND seq BETWEEN $2 AND $3 AND sent_at >= $4 AND sent_at < $5";

/// How often a batch is written again because its messages changed (an
/// edit, a deletion, a card) between its upload and its delete.
const ATTEMPTS: usize = 5;

/// Uploads the batch's messages under its name, then deletes them and marks
/// it done in one transaction. The delete gives back what it removed: if a
/// message was edited, deleted or given a card after the upload, the
/// transaction is undone and the batch written again, so the archive holds
/// what the database last held. Returns (messages, compressed bytes).
async fn finish(db: &AnyPool, to: &Destination, batch: &Batch) -> anyhow::Result<(i64, i64)> {
    let (from, until) = batch.window()?;
    let delete_cards = format!(
        "DELETE FROM cards WHERE message_id IN (SELECT id FROM messages WHERE {BATCH_FILTER})
         RETURNING message_id, url, title, description, image"
    );
    let delete_messages =
        format!("DELETE FROM messages WHERE {BATCH_FILTER} RETURNING {MESSAGE_COLUMNS}");
    let bind = |query| {
        sqlx::query(query)
            .bind(batch.room_id.clone())
            .bind(batch.first_seq)
            .bind(batch.last_seq)
            .bind(from)
            .bind(until)
    };
    for _ in 0..ATTEMPTS {
        let rows: Vec<MessageRow> = sqlx::query_as(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE {BATCH_FILTER} ORDER BY seq"
        ))
        .bind(&batch.room_id)
        .bind(batch.first_seq)
        .bind(batch.last_seq)
        .bind(from)
        .bind(until)
        .fetch_all(db)
        .await?;
        let cards = cards_of(db, batch, from, until).await?;
        let compressed = encode(&rows, &cards)?;
        let bytes = compressed.len() as i64;
        to.store
            .put(
                &ObjectPath::from(batch.object_key.as_str()),
                PutPayload::from(compressed),
            )
            .await
            .with_context(|| format!("writing {} to {}", batch.object_key, to.url))?;

        let mut tx = db.begin().await?;
        let deleted_cards: Vec<CardRow> = bind(&delete_cards)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(CardRow::from_row)
            .collect::<Result<_, _>>()?;
        let mut deleted: Vec<MessageRow> = bind(&delete_messages)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(MessageRow::from_row)
            .collect::<Result<_, _>>()?;
        deleted.sort_by_key(|m| m.seq);
        if deleted != rows || !same_cards(cards_by_message(deleted_cards), &cards) {
            // Changed since the upload: undone, and written again.
            drop(tx);
            continue;
        }
        sqlx::query("UPDATE archive_batches SET done = 1, messages = $2 WHERE object_key = $1")
            .bind(&batch.object_key)
            .bind(rows.len() as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok((rows.len() as i64, bytes));
    }
    anyhow::bail!(
        "the messages of {} kept changing while they were archived; run again",
        batch.object_key
    )
}

/// One gzip JSON Lines object: a line per message, with its cards.
fn encode(rows: &[MessageRow], cards: &HashMap<String, Vec<Card>>) -> anyhow::Result<Vec<u8>> {
    let mut gzip = GzEncoder::new(Vec::new(), Compression::default());
    for row in rows {
        let record = Archived {
            cards: cards.get(&row.id).cloned().unwrap_or_default(),
            id: row.id.clone(),
            room_id: row.room_id.clone(),
            seq: row.seq,
            author_id: row.author_id.clone(),
            author_username: row.author_username.clone(),
            text: row.text.clone(),
            sent_at: rfc3339_from_millis(row.sent_at),
            edited_at: row.edited_at.map(rfc3339_from_millis),
        };
        serde_json::to_writer(&mut gzip, &record)?;
        gzip.write_all(b"\n")?;
    }
    Ok(gzip.finish()?)
}

/// The same cards per message, whatever their order.
fn same_cards(a: HashMap<String, Vec<Card>>, b: &HashMap<String, Vec<Card>>) -> bool {
    let sorted = |cards: &[Card]| {
        let mut all: Vec<_> = cards.iter().map(|c| format!("{c:?}")).collect();
        all.sort();
        all
    };
    a.len() == b.len()
        && a.iter().all(|(message, cards)| {
            b.get(message)
                .is_some_and(|other| sorted(cards) == sorted(other))
        })
}

async fn cards_of(
    db: &AnyPool,
    batch: &Batch,
    from: i64,
    until: i64,
) -> Result<HashMap<String, Vec<Card>>, sqlx::Error> {
    let found: Vec<CardRow> = sqlx::query_as(&format!(
        "SELECT message_id, url, title, description, image FROM cards
         WHERE message_id IN (SELECT id FROM messages WHERE {BATCH_FILTER})
         ORDER BY created_at, url"
    ))
    .bind(&batch.room_id)
    .bind(batch.first_seq)
    .bind(batch.last_seq)
    .bind(from)
    .bind(until)
    .fetch_all(db)
    .await?;
    Ok(cards_by_message(found))
}

/// The live stream's record of the archived past goes too, in batches.
/// Streams then cannot replay from before what is left: each room's
/// `first_kept_seq` moves up to its first event still kept.
async fn prune_room_events(db: &AnyPool, cutoff: i64, size: i64) -> Result<(), sqlx::Error> {
    loop {
        let deleted = sqlx::query(
            "DELETE FROM room_events WHERE (room_id, seq) IN
                (SELECT room_id, seq FROM room_events WHERE created_at < $1 LIMIT $2)",
        )
        .bind(cutoff)
        .bind(size)
        .execute(db)
        .await?;
        if deleted.rows_affected() == 0 {
            sqlx::query(
                "UPDATE rooms SET first_kept_seq = COALESCE(
                     (SELECT MIN(e.seq) FROM room_events e WHERE e.room_id = rooms.id),
                     last_seq + 1)
                 WHERE first_kept_seq < COALESCE(
                     (SELECT MIN(e.seq) FROM room_events e WHERE e.room_id = rooms.id),
                     last_seq + 1)",
            )
            .execute(db)
            .await?;
            return Ok(());
        }
    }
}
