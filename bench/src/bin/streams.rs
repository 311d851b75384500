//! Live streams at scale: one chat instance on PostgreSQL (Redis its cache)
//! holding thousands of open `GET /v1/rooms/{id}/events` streams of one
//! room, each of a user of its own.
//!
//! It measures, in one run: what the idle streams cost (chat's queries of
//! room events from its counters, the database's transactions from
//! `pg_stat_database`, chat's CPU from `/proc`), chat's memory per stream
//! (RSS before and after opening them), how long a post takes to reach
//! every reader (from sending the `POST` to each stream showing it), and
//! what posts in another room cost the streams (nothing should move).
//!
//! ```sh
//! cargo build --release --bin chat --bin streams && ./target/release/streams \
//!   [--streams 10000] [--posts 20]
//! ```
//! PostgreSQL is `BENCH_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, a new database per run),
//! Redis `BENCH_REDIS_URL` (default `redis://127.0.0.1:6379`). The open-file
//! limit is raised to its hard limit here (chat inherits it). Results go to
//! `bench/results/streams.md`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use dozen_bench::stacks::{self, ChatBacking};
use dozen_testing::{Backend, TestDatabase};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use sqlx::Connection;

fn arg(name: &str, default: usize) -> anyhow::Result<usize> {
    let args: Vec<String> = std::env::args().collect();
    Ok(args
        .iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(default))
}

/// What the readers saw: probe text → when it was posted, and each arrival.
#[derive(Default)]
struct Seen {
    posted: Mutex<HashMap<String, Instant>>,
    arrivals: Mutex<Vec<Duration>>,
    /// Streams that showed their first `presence`: open and caught up.
    open: AtomicUsize,
    /// Messages of the other room shown by any stream (there should be none).
    noise: AtomicUsize,
    ended: AtomicUsize,
}

/// Follows one stream until it ends, noting what it shows in `seen`.
async fn read(http: reqwest::Client, url: String, token: String, seen: Arc<Seen>) {
    let response = match http.get(&url).bearer_auth(&token).send().await {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => {
            eprintln!("a stream was refused: {}", response.status());
            seen.ended.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Err(error) => {
            eprintln!("a stream did not open: {error}");
            seen.ended.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let mut events = response.bytes_stream().eventsource();
    let mut counted = false;
    while let Some(Ok(event)) = events.next().await {
        match event.event.as_str() {
            "presence" if !counted => {
                counted = true;
                seen.open.fetch_add(1, Ordering::Relaxed);
            }
            "message" => {
                let arrived = Instant::now();
                // The text without parsing the whole message: the readers
                // share the machine with chat, so they do as little as they can.
                let Some(text) = text_of(&event.data) else {
                    continue;
                };
                if text.starts_with("noise") {
                    seen.noise.fetch_add(1, Ordering::Relaxed);
                } else if let Some(at) = seen.posted.lock().expect("not poisoned").get(text) {
                    seen.arrivals
                        .lock()
                        .expect("not poisoned")
                        .push(arrived - *at);
                }
            }
            _ => {}
        }
    }
    seen.ended.fetch_add(1, Ordering::Relaxed);
}

/// The `text` of a message event's JSON, if it is a plain string (as the
/// bench's posts are).
fn text_of(data: &str) -> Option<&str> {
    let start = data.find("\"text\":\"")? + "\"text\":\"".len();
    let end = start + data[start..].find('"')?;
    Some(&data[start..end])
}

/// A process's resident memory in MiB and its CPU time in seconds, from `/proc`.
fn usage(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("VmRSS")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the line, in clock ticks (USER_HZ, 100 on Linux).
    let after = stat.rsplit_once(')').context("stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok((rss_kib / 1024.0, ticks / 100.0))
}

/// chat's counter `name` (`…_total`) from its `/metrics`.
async fn counter(http: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<u64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let line = format!("{name}_total ");
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .with_context(|| format!("{name} in /metrics"))?
        .trim()
        .parse()?)
}

/// The database's committed and rolled back transactions so far.
async fn transactions(admin: &str, database: &str) -> anyhow::Result<i64> {
    let mut db = sqlx::PgConnection::connect(admin).await?;
    // Stats reach the view when a backend flushes them; ask for a fresh read.
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut db)
        .await?;
    let count: i64 = sqlx::query_scalar(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = $1",
    )
    .bind(database)
    .fetch_one(&mut db)
    .await?;
    Ok(count)
}

/// Idle costs over `window`: (chat's room-event queries, database
/// transactions/s, chat's CPU in % of one core).
async fn idle_cost(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    database: &str,
    pid: u32,
    window: Duration,
) -> anyhow::Result<(u64, f64, f64)> {
    let queries = || async {
        Ok::<_, anyhow::Error>(
            counter(http, base, "chat_live_feed_reads").await?
                + counter(http, base, "chat_live_catch_up_reads").await?,
        )
    };
    let (q0, x0, (_, cpu0)) = (
        queries().await?,
        transactions(admin, database).await?,
        usage(pid)?,
    );
    tokio::time::sleep(window).await;
    let (q1, x1, (_, cpu1)) = (
        queries().await?,
        transactions(admin, database).await?,
        usage(pid)?,
    );
    let seconds = window.as_secs_f64();
    Ok((
        q1 - q0,
        (x1 - x0) as f64 / seconds,
        (cpu1 - cpu0) / seconds * 100.0,
    ))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let streams = arg("--streams", 10_000)?;
    let posts = arg("--posts", 20)?;
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    rlimit::Resource::NOFILE.set(hard, hard)?;
    anyhow::ensure!(
        hard as usize > streams + 100,
        "the open-file limit ({hard}; was {soft}) is too low for {streams} streams"
    );
    let postgres = dozen_bench::postgres_url();
    let redis = dozen_bench::redis_url();
    let binaries = dozen_bench::binaries()?;
    let database = TestDatabase::create(&Backend::Postgres(postgres.clone())).await;
    let database_name = url::Url::parse(&database.url)?
        .path()
        .trim_start_matches('/')
        .to_owned();
    let backing = ChatBacking {
        database_url: database.url.clone(),
        bus_url: database.url.clone(),
        cache_url: format!("{redis}/?prefix=benchstreams{}", std::process::id()),
    };
    let chat = stacks::chat(&binaries, &backing, 0, "chat").await?;
    let pid = chat._child.id().context("chat's pid")?;
    let base = chat.base.clone();
    let room = chat
        .messages_url
        .rsplit('/')
        .nth(1)
        .context("the room in the url")?
        .to_owned();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let other_room: serde_json::Value = http
        .post(format!("{base}/v1/rooms"))
        .bearer_auth(&chat.token)
        .json(&serde_json::json!({ "name": "elsewhere" }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let other_room = other_room["id"]
        .as_str()
        .context("the room's id")?
        .to_owned();

    eprintln!("{streams} users join the room…");
    let signer = stacks::signer()?;
    let mut tokens = Vec::with_capacity(streams);
    for n in 0..streams {
        tokens.push(
            signer
                .issue(&uuid::Uuid::new_v4().to_string(), &format!("reader{n}"))?
                .token,
        );
    }
    let joins = futures::stream::iter(tokens.iter().cloned()).map(|token| {
        let request = http
            .post(format!("{base}/v1/rooms/{room}/members"))
            .bearer_auth(token);
        async move { request.send().await?.error_for_status().map(|_| ()) }
    });
    let mut joins = joins.buffer_unordered(64);
    while let Some(joined) = joins.next().await {
        joined?;
    }

    // PostgreSQL's backends flush their statistics within 10 s of going idle.
    let settle = Duration::from_secs(11);
    tokio::time::sleep(settle).await;
    let window = Duration::from_secs(10);
    let (rss_before, _) = usage(pid)?;
    let (_, tx_none, cpu_none) =
        idle_cost(&http, &base, &postgres, &database_name, pid, window).await?;

    eprintln!("opening {streams} streams…");
    let seen = Arc::new(Seen::default());
    let url = format!("{base}/v1/rooms/{room}/events");
    let opening = Instant::now();
    for (n, token) in tokens.iter().enumerate() {
        tokio::spawn(read(http.clone(), url.clone(), token.clone(), seen.clone()));
        // A few hundred opening at once, as a crowd arriving.
        if n % 200 == 199 {
            while seen.open.load(Ordering::Relaxed) + seen.ended.load(Ordering::Relaxed) + 400 < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    while seen.open.load(Ordering::Relaxed) + seen.ended.load(Ordering::Relaxed) < streams {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let opened_in = opening.elapsed();
    let open = seen.open.load(Ordering::Relaxed);
    anyhow::ensure!(open == streams, "only {open} of {streams} streams opened");
    // Let the presence of everyone arriving, and the statistics, settle.
    tokio::time::sleep(settle).await;
    let (rss_open, _) = usage(pid)?;
    let (queries_idle, tx_idle, cpu_idle) =
        idle_cost(&http, &base, &postgres, &database_name, pid, window).await?;

    eprintln!("posting in another room…");
    let post = |room: &str, text: String| {
        let request = http
            .post(format!("{base}/v1/rooms/{room}/messages"))
            .bearer_auth(&chat.token)
            .json(&serde_json::json!({ "text": text }));
        async move { request.send().await?.error_for_status().map(|_| ()) }
    };
    let noise_queries_before = counter(&http, &base, "chat_live_feed_reads").await?
        + counter(&http, &base, "chat_live_catch_up_reads").await?;
    let (_, cpu_before_noise) = usage(pid)?;
    for n in 0..posts {
        post(&other_room, format!("noise {n}")).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, cpu_after_noise) = usage(pid)?;
    let noise_queries = counter(&http, &base, "chat_live_feed_reads").await?
        + counter(&http, &base, "chat_live_catch_up_reads").await?
        - noise_queries_before;
    let noise_seconds = posts as f64 * 0.1 + 1.0;
    let cpu_noise = (cpu_after_noise - cpu_before_noise) / noise_seconds * 100.0;

    eprintln!("posting {posts} messages to the {streams} readers…");
    let feed_before = counter(&http, &base, "chat_live_feed_reads").await?;
    let catch_up_before = counter(&http, &base, "chat_live_catch_up_reads").await?;
    let (_, cpu_before_posts) = usage(pid)?;
    for n in 0..posts {
        let text = format!("probe {n}");
        seen.posted
            .lock()
            .expect("not poisoned")
            .insert(text.clone(), Instant::now());
        post(&room, text).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.arrivals.lock().expect("not poisoned").len() < streams * posts
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (rss_load, cpu_after_posts) = usage(pid)?;
    // chat's own work per delivery, whatever the readers' side costs the machine.
    let cpu_per_delivery_us =
        (cpu_after_posts - cpu_before_posts) * 1e6 / (streams * posts).max(1) as f64;
    let feed_reads = counter(&http, &base, "chat_live_feed_reads").await? - feed_before;
    let catch_up_reads = counter(&http, &base, "chat_live_catch_up_reads").await? - catch_up_before;
    let mut arrivals = seen.arrivals.lock().expect("not poisoned").clone();
    arrivals.sort();
    let noise = seen.noise.load(Ordering::Relaxed);

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let per_stream_kib = (rss_open - rss_before) * 1024.0 / streams as f64;
    let command = format!(
        "cargo build --release --bin chat --bin streams && ./target/release/streams --streams {streams} --posts {posts}"
    );
    let report = format!(
        "# Live streams at scale\n\n\
         One `chat serve` on PostgreSQL (its bus there too; Redis its cache), {streams} streams of one room open, \
         each of a user of its own; one run on {machine}, {date}.\n\n\
         ```sh\n{command}\n```\n\n\
         | | 0 streams | {streams} streams |\n|---|---|---|\n\
         | chat RSS | {rss_before:.1} MiB | {rss_open:.1} MiB ({per_stream_kib:.1} KiB per stream) |\n\
         | chat's queries of room events at idle (10 s) | – | {queries_idle} |\n\
         | database transactions/s at idle (`pg_stat_database`; the outbox relay's poll included) | {tx_none:.1} | {tx_idle:.1} |\n\
         | chat CPU at idle | {cpu_none:.1}% of a core | {cpu_idle:.1}% of a core |\n\n\
         Opening the {streams} streams took {opened_in:.1?} (a few hundred at once).\n\n\
         **{posts} posts to the room**, one every 500 ms, each read once by the room's feed for every stream: \
         {arrived} of {expected} arrivals; from sending the POST to a stream showing it: \
         p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms. \
         Queries meanwhile: {feed_reads} by the room's feed, {catch_up_reads} by streams on their own. \
         chat's CPU meanwhile: {cpu_per_delivery_us:.1} µs per message delivered to a reader (the post itself included). \
         chat RSS after: {rss_load:.1} MiB. The readers run on the same two cores, parsing every event.\n\n\
         **{posts} posts to another room**: {noise} shown by the streams, {noise_queries} queries for them, \
         chat CPU {cpu_noise:.1}% of a core meanwhile (the posts themselves included).\n\n\
         Before (the issue's figures, every stream polling every 250 ms and every post waking every stream): \
         900 idle streams cost 3,634 transactions/s and 23% of a core; 3,000 cost 12,000 transactions/s, \
         55% of a core and 151 MiB RSS, and a post reached the 3,000 readers at p99 414 ms.\n\n\
         Reading the numbers (2026-12-03, 5,000 streams): `perf record -g -p <chat's pid>` during the posts \
         shows chat's time mostly in the kernel's loopback TCP (on loopback the readers' receive path runs \
         in the sender's context); its own code is hyper's write path and the wake-ups. The memory per \
         stream is mostly hyper's per-connection buffers: `valgrind --tool=massif` with 1,000 streams \
         showed a 16 KiB read buffer and, before writes were made vectored at the edge, a 21 KiB write \
         buffer per connection; chat's own state per stream is small (the feed's batches and the \
         presence are shared). Idle CPU is the presence heartbeat: one cache write per user every \
         third of `PRESENCE_TTL`; sending them 64 at once lowered it to ~4.5% but, in bursts, raised \
         the posts' p99 to 200–250 ms, so they go one by one.\n",
        machine = dozen_bench::machine(),
        date = time::OffsetDateTime::now_utc().date(),
        arrived = arrivals.len(),
        expected = streams * posts,
        p50 = ms(percentile(&arrivals, 0.50)),
        p99 = ms(percentile(&arrivals, 0.99)),
        max = ms(arrivals.last().copied().unwrap_or_default()),
    );
    println!("{report}");
    let path = stacks::repo_root().join("bench/results/streams.md");
    std::fs::write(&path, &report).with_context(|| format!("write {}", path.display()))?;
    eprintln!("written to {}", path.display());
    Ok(())
}
