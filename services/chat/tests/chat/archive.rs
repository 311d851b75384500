//! `chat archive`: old messages to cold storage and out of the hot database.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chat::archive::{self, Destination, Plan};
use dozen_runtime::clock::now_millis;
use dozen_runtime::database;
use dozen_testing::ChildServer;
use flate2::read::GzDecoder;
use futures::TryStreamExt;
use object_store::ObjectStore;
use serde_json::Value;
use sqlx::AnyPool;

use crate::helpers::{database_settings, Backend, TestDatabase};

const DAY_MS: i64 = 24 * 3600 * 1000;
const ROOMS: usize = 10;

/// A migrated database with `old` messages sent 91 to ~120 days ago (spread
/// over rooms and days, every tenth with a card) and `recent` ones from today.
async fn seeded(backend: &Backend, old: usize, recent: usize) -> (TestDatabase, AnyPool) {
    let database = TestDatabase::create(backend).await;
    let db = database::connect_lazy(&database_settings(&database.url)).unwrap();
    chat::migrate(&db).await.unwrap();
    let now = now_millis();
    let mut tx = db.begin().await.unwrap();
    for r in 0..ROOMS {
        sqlx::query("INSERT INTO rooms (id, name, created_by, created_at, last_seq) VALUES ($1, $2, 'u', 0, $3)")
            .bind(room_id(r))
            .bind(format!("room {r}"))
            .bind((old + recent) as i64)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    const CHUNK: usize = 500;
    let total = old + recent;
    for start in (0..total).step_by(CHUNK) {
        let rows: Vec<usize> = (start..(start + CHUNK).min(total)).collect();
        let placeholders: Vec<String> = (0..rows.len())
            .map(|i| {
                let p = i * 5;
                format!(
                    "(${}, ${}, ${}, 'author', 'alice', ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO messages (id, room_id, seq, author_id, author_username, text, sent_at) VALUES {}",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for &n in &rows {
            // Oldest first: message n of the old ones is ~(120 - n/old·29) days old.
            let sent_at = if n < old {
                now - 120 * DAY_MS + (n as i64 * 29 * DAY_MS) / old as i64
            } else {
                now - 1000 + n as i64 % 1000
            };
            query = query
                .bind(message_id(n))
                .bind(room_id(n % ROOMS))
                .bind((n / ROOMS) as i64 + 1)
                .bind(format!(
                    "message {n}: the quick brown fox jumps over the lazy dog"
                ))
                .bind(sent_at);
        }
        query.execute(&mut *tx).await.unwrap();
    }
    for n in (0..old).step_by(10) {
        sqlx::query("INSERT INTO cards (message_id, url, title, created_at) VALUES ($1, 'https://example.com/', 'Example', 0)")
            .bind(message_id(n))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    (database, db)
}

fn room_id(r: usize) -> String {
    format!("00000000-0000-7000-8000-{r:012}")
}

fn message_id(n: usize) -> String {
    format!("00000000-0000-7000-9000-{n:012}")
}

async fn count(db: &AnyPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(db)
        .await
        .unwrap()
}

/// Every archived line, by object name; checks each line sits in its object's partition.
async fn archived(store: &dyn ObjectStore) -> HashMap<String, Vec<Value>> {
    let objects: Vec<_> = store.list(None).try_collect().await.unwrap();
    let mut by_object = HashMap::new();
    for object in objects {
        let name = object.location.to_string();
        let bytes = store
            .get(&object.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let mut text = String::new();
        GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for line in &lines {
            let room = line["room_id"].as_str().unwrap();
            let day = &line["sent_at"].as_str().unwrap()[..10];
            assert!(
                name.contains(&format!("room={room}/day={day}/")),
                "{name} holds a message of {room} on {day}"
            );
        }
        by_object.insert(name, lines);
    }
    by_object
}

/// Ids archived, each checked to appear once.
fn ids_once(by_object: &HashMap<String, Vec<Value>>) -> HashSet<String> {
    let mut seen = HashSet::new();
    for line in by_object.values().flatten() {
        let id = line["id"].as_str().unwrap().to_owned();
        assert!(seen.insert(id.clone()), "{id} was archived twice");
    }
    seen
}

fn folder_store(folder: &Path) -> object_store::local::LocalFileSystem {
    object_store::local::LocalFileSystem::new_with_prefix(folder).unwrap()
}

fn plan() -> Plan {
    Plan {
        progress: false,
        ..Plan::new(Duration::from_secs(90 * 24 * 3600))
    }
}

async fn used_pages(db: &AnyPool) -> i64 {
    sqlx::query_scalar("SELECT (SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count FROM pragma_freelist_count())")
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_moves_100000_old_messages_to_files_with_counts_matching_and_the_hot_database_shrunk(
) {
    const OLD: usize = 100_000;
    const RECENT: usize = 500;
    let (_database, db) = seeded(&Backend::Sqlite, OLD, RECENT).await;
    let cold = tempfile::tempdir().unwrap();
    let to = Destination::parse(&format!("file://{}", cold.path().display())).unwrap();
    let pages_before = used_pages(&db).await;

    let started = Instant::now();
    let summary = archive::run(&db, &to, &plan()).await.unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "archived {OLD} messages in {:.2} s: {:.0} messages/s (debug build)\n{summary}",
        elapsed.as_secs_f64(),
        OLD as f64 / elapsed.as_secs_f64()
    );

    assert_eq!(summary.messages, OLD as i64);
    assert_eq!(summary.rooms, ROOMS as i64);
    assert_eq!(summary.hot_before, (OLD + RECENT) as i64);
    assert_eq!(summary.hot_after, RECENT as i64);
    assert_eq!(count(&db, "messages").await, RECENT as i64);
    assert_eq!(
        count(&db, "cards").await,
        0,
        "the old messages' cards went with them"
    );
    let by_object = archived(&folder_store(cold.path())).await;
    assert_eq!(by_object.len() as i64, summary.objects);
    let ids = ids_once(&by_object);
    assert_eq!(ids.len(), OLD);
    assert!((0..OLD).all(|n| ids.contains(&message_id(n))));
    let with_cards = by_object
        .values()
        .flatten()
        .filter(|line| line["cards"][0]["title"] == "Example")
        .count();
    assert_eq!(with_cards, OLD / 10);
    let pages_after = used_pages(&db).await;
    assert!(
        pages_after * 4 < pages_before,
        "the hot database shrank: {pages_before} pages in use before, {pages_after} after"
    );
}

async fn a_dry_run_counts_what_would_move_and_changes_nothing(backend: Backend) {
    let (_database, db) = seeded(&backend, 3000, 100).await;
    let cold = tempfile::tempdir().unwrap();
    let to = Destination::parse(&format!("file://{}", cold.path().display())).unwrap();
    let summary = archive::run(
        &db,
        &to,
        &Plan {
            dry_run: true,
            ..plan()
        },
    )
    .await
    .unwrap();
    assert_eq!(summary.messages, 3000);
    assert_eq!(summary.rooms, ROOMS as i64);
    assert!(
        summary.partitions >= 29 && summary.partitions <= 30 * ROOMS as i64,
        "{summary}"
    );
    assert_eq!(summary.objects, 0);
    assert_eq!(count(&db, "messages").await, 3100);
    assert!(archived(&folder_store(cold.path())).await.is_empty());
    assert!(
        summary
            .to_string()
            .starts_with("would archive 3000 messages"),
        "{summary}"
    );
}

async fn archiving_twice_archives_each_message_once(backend: Backend) {
    let (_database, db) = seeded(&backend, 3000, 100).await;
    let cold = tempfile::tempdir().unwrap();
    let to = Destination::parse(&format!("file://{}", cold.path().display())).unwrap();
    let small = Plan {
        batch: 100,
        ..plan()
    };
    let first = archive::run(&db, &to, &small).await.unwrap();
    let second = archive::run(&db, &to, &small).await.unwrap();
    assert_eq!((first.messages, second.messages), (3000, 0));
    assert_eq!(second.objects, 0);
    assert_eq!(
        ids_once(&archived(&folder_store(cold.path())).await).len(),
        3000
    );
    assert_eq!(count(&db, "messages").await, 100);
}

/// A folder store that, right after its first upload, edits the first
/// message of that batch and deletes its last: what users do while a batch
/// is between upload and delete. Remembers the two ids.
#[derive(Debug)]
struct ChangedDuringUpload {
    inner: object_store::local::LocalFileSystem,
    db: AnyPool,
    changed: std::sync::Mutex<Option<(String, String)>>,
}

impl ChangedDuringUpload {
    /// `messages/room=<id>/day=<day>/<first>-<last>.jsonl.gz` → (room, first, last).
    fn batch_of(location: &str) -> (String, i64, i64) {
        let room = location
            .split("room=")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap();
        let range = location
            .rsplit('/')
            .next()
            .unwrap()
            .trim_end_matches(".jsonl.gz");
        let (first, last) = range.split_once('-').unwrap();
        (
            room.to_owned(),
            first.parse().unwrap(),
            last.parse().unwrap(),
        )
    }

    async fn id_at(&self, room: &str, seq: i64) -> String {
        sqlx::query_scalar("SELECT id FROM messages WHERE room_id = $1 AND seq = $2")
            .bind(room)
            .bind(seq)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}

impl std::fmt::Display for ChangedDuringUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChangedDuringUpload({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for ChangedDuringUpload {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        let put = self.inner.put_opts(location, payload, opts).await;
        if self.changed.lock().unwrap().is_some() {
            return put;
        }
        let (room, first, last) = Self::batch_of(location.as_ref());
        assert!(last > first, "a batch of two or more: {location}");
        let (edited, deleted) = (
            self.id_at(&room, first).await,
            self.id_at(&room, last).await,
        );
        sqlx::query("UPDATE messages SET text = 'edited meanwhile', edited_at = $2 WHERE id = $1")
            .bind(&edited)
            .bind(now_millis())
            .execute(&self.db)
            .await
            .unwrap();
        for table in ["cards WHERE message_id", "messages WHERE id"] {
            sqlx::query(&format!("DELETE FROM {table} = $1"))
                .bind(&deleted)
                .execute(&self.db)
                .await
                .unwrap();
        }
        *self.changed.lock().unwrap() = Some((edited, deleted));
        put
    }
    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.inner.get_opts(location, options).await
    }
    async fn delete(&self, location: &object_store::path::Path) -> object_store::Result<()> {
        self.inner.delete(location).await
    }
    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
    ) -> object_store::Result<()> {
        self.inner.copy(from, to).await
    }
    async fn copy_if_not_exists(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
    ) -> object_store::Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }
}

async fn edits_and_deletions_made_while_a_batch_is_archived_end_up_in_the_archive(
    backend: Backend,
) {
    let (_database, db) = seeded(&backend, 3000, 0).await;
    // Edited long before: the archive keeps when.
    sqlx::query("UPDATE messages SET text = 'edited before', edited_at = 1 WHERE id = $1")
        .bind(message_id(2000))
        .execute(&db)
        .await
        .unwrap();
    let cold = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(ChangedDuringUpload {
        inner: folder_store(cold.path()),
        db: db.clone(),
        changed: std::sync::Mutex::new(None),
    });
    let to = Destination {
        store: store.clone(),
        prefix: object_store::path::Path::from(""),
        url: "test://changed-during-upload".into(),
    };
    let summary = archive::run(&db, &to, &plan()).await.unwrap();
    let (edited, deleted) = store.changed.lock().unwrap().clone().unwrap();
    assert_eq!(summary.messages, 2999);
    assert_eq!(count(&db, "messages").await, 0);
    let by_object = archived(&folder_store(cold.path())).await;
    let lines: HashMap<String, Value> = by_object
        .values()
        .flatten()
        .map(|l| (l["id"].as_str().unwrap().to_owned(), l.clone()))
        .collect();
    assert_eq!(lines.len(), 2999);
    assert_eq!(lines[&edited]["text"], "edited meanwhile");
    assert!(lines[&edited]["edited_at"].is_string());
    assert!(
        !lines.contains_key(&deleted),
        "a deleted message stays deleted"
    );
    assert_eq!(lines[&message_id(2000)]["text"], "edited before");
    assert_eq!(
        lines[&message_id(2000)]["edited_at"],
        "1970-01-01T00:00:00.001Z"
    );
    assert!(lines[&message_id(1)].get("edited_at").is_none());
}

dozen_testing::on_every_database!(
    edits_and_deletions_made_while_a_batch_is_archived_end_up_in_the_archive,
    a_dry_run_counts_what_would_move_and_changes_nothing,
    archiving_twice_archives_each_message_once,
);

fn archive_command(database_url: &str, to: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat"));
    command
        .args(["archive", "--older-than", "90d"])
        .env_clear()
        .env("ARCHIVE_URL", to)
        .env("DATABASE_URL", database_url)
        .env("LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_killed_halfway_and_run_again_loses_nothing_and_archives_nothing_twice() {
    const OLD: usize = 20_000;
    let (database, db) = seeded(&Backend::Sqlite, OLD, 10).await;
    let cold = tempfile::tempdir().unwrap();
    let to = format!("file://{}", cold.path().display());
    let store = folder_store(cold.path());

    let mut first = archive_command(&database.url, &to)
        .args(["--batch", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while archived(&store).await.len() < 20 {
        assert!(Instant::now() < deadline, "the archive made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let left = count(&db, "messages").await;
    assert!(left > 10, "killed halfway ({left} messages left)");

    let second = archive_command(&database.url, &to)
        .args(["--batch", "100"])
        .output()
        .await
        .unwrap();
    let summary = String::from_utf8_lossy(&second.stdout);
    assert!(
        second.status.success(),
        "{summary}{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(summary.contains("archived "), "{summary}");
    let ids = ids_once(&archived(&store).await);
    assert_eq!(ids.len(), OLD, "every old message archived once");
    assert_eq!(count(&db, "messages").await, 10);
    let pending: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM archive_batches WHERE done = 0")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_writes_to_s3_on_a_local_stand_in() {
    let Some(moto) = ChildServer::moto() else {
        return;
    };
    let endpoint = format!("http://127.0.0.1:{}", moto.port());
    let created = reqwest::Client::new()
        .put(format!("{endpoint}/cold-messages"))
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success(), "{created:?}");
    let (database, db) = seeded(&Backend::Sqlite, 2000, 10).await;

    let run = archive_command(&database.url, "s3://cold-messages/chat")
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .output()
        .await
        .unwrap();
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&endpoint)
        .with_allow_http(true)
        .with_bucket_name("cold-messages")
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    let by_object = archived(&s3).await;
    assert!(
        by_object
            .keys()
            .all(|k| k.starts_with("chat/messages/room=")),
        "{:?}",
        by_object.keys()
    );
    assert_eq!(ids_once(&by_object).len(), 2000);
    assert_eq!(count(&db, "messages").await, 10);
}
