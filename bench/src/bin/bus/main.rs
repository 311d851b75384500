//! End-to-end bus throughput and latency, next to a bare baseline of the same store.
//!
//! Dozen: outbox commit → relay → bus → consumer → handler done.
//! Bare, on SQL: plain INSERTs into one table, consumers taking rows with one
//! DELETE … RETURNING each (SKIP LOCKED on PostgreSQL), polling every 1 ms.
//! Bare, on a broker: its own client publishing each event with a confirmed
//! publish to one queue, consumers acknowledging each (see `bare_brokers`).
//! Throughput runs write from 8 concurrent producers; latency runs from one,
//! at a fixed rate.
//!
//! ```sh
//! AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench \
//! cargo run --release -p dozen-bench --bin bus -- [--events 5000] [--backends sqlite,postgres,nats,rabbitmq,sns+sqs]
//! ```
//! PostgreSQL is `BENCH_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! a fresh database is made for each run. NATS, RabbitMQ and moto (for SNS+SQS)
//! are servers of the run's own, started and stopped by it; on brokers, Dozen's
//! producers commit to a SQLite outbox. The table goes to `bench/results/bus.md`.

mod bare_brokers;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use dozen_bus::{Consumer, Event, EventType, Outbox, Subscription};
use dozen_runtime::database::{connect_lazy, DatabaseSettings};
use dozen_runtime::shutdown::Shutdown;
use dozen_testing::{Backend, ChildServer, TestDatabase};
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;

#[derive(Serialize, Deserialize)]
struct Tick {
    n: u64,
    /// Nanoseconds since the run began, taken as the producer starts the write.
    sent_ns: u64,
}

impl EventType for Tick {
    const TYPE: &'static str = "bench.tick";
    const VERSION: u32 = 1;
}

/// Concurrent writers in the throughput runs, as a web process has concurrent requests.
const PRODUCERS: u64 = 8;

/// Writes events `0..events` with `write`: from [`PRODUCERS`] concurrent
/// writers, or from one at `rate` per second. Returns when it started.
async fn produce<F, Fut>(events: u64, rate: Option<u64>, write: F) -> anyhow::Result<Instant>
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let started = Instant::now();
    let producers = if rate.is_some() { 1 } else { PRODUCERS };
    let mut writers = Vec::new();
    for first in 0..producers {
        let write = write.clone();
        writers.push(tokio::spawn(async move {
            for n in (first..events).step_by(producers as usize) {
                pace(started, n, rate).await;
                write(n).await?;
            }
            anyhow::Ok(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    Ok(started)
}

/// Waits for event `n`'s turn at `rate` per second (no wait without a rate).
async fn pace(started: Instant, n: u64, rate: Option<u64>) {
    if let Some(rate) = rate {
        let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
    }
}

/// Event `n`, stamped with the time it is written.
fn tick(n: u64) -> Result<Event, serde_json::Error> {
    Event::new(
        "bench",
        &Tick {
            n,
            sent_ns: clock(),
        },
    )
}

fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

struct Row {
    backend: &'static str,
    scenario: String,
    dozen: String,
    bare: String,
    ratio: String,
}

async fn pool(database: &TestDatabase, connections: u32) -> anyhow::Result<AnyPool> {
    let settings = DatabaseSettings {
        url: database.url.parse().map_err(anyhow::Error::msg)?,
        max_connections: connections,
        acquire_timeout: Duration::from_secs(30),
    };
    Ok(connect_lazy(&settings)?)
}

/// Handler-side record: how many done, and each event's commit-to-handler latency.
#[derive(Clone, Default)]
struct Record {
    done: Arc<AtomicUsize>,
    latencies: Arc<Mutex<Vec<u64>>>,
}

impl Record {
    fn done(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    fn note(&self, sent_ns: u64) {
        self.latencies
            .lock()
            .unwrap()
            .push(clock().saturating_sub(sent_ns));
        self.done.fetch_add(1, Ordering::SeqCst);
    }

    async fn wait_for(&self, count: usize) {
        while self.done.load(Ordering::SeqCst) < count {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    fn percentiles(&self) -> (f64, f64) {
        let mut all = self.latencies.lock().unwrap().clone();
        all.sort_unstable();
        let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)] as f64 / 1e6;
        (at(0.50), at(0.99))
    }
}

/// Where the bus lives: a SQL database made for each run, or a broker.
enum Target {
    Sql(Backend),
    Broker(String),
}

impl Target {
    /// The producer's database, and the bus's (the database kept alive with its URL).
    async fn stores(&self) -> (TestDatabase, Option<TestDatabase>, String) {
        match self {
            Target::Sql(backend) => {
                let bus = TestDatabase::create(backend).await;
                let url = bus.url.clone();
                (TestDatabase::create(backend).await, Some(bus), url)
            }
            Target::Broker(url) => (
                TestDatabase::create(&Backend::Sqlite).await,
                None,
                url.clone(),
            ),
        }
    }
}

fn bus_url(url: &str) -> anyhow::Result<dozen_bus::BusUrl> {
    url.parse().map_err(anyhow::Error::msg)
}

/// How Dozen's producers hand events to the bus.
#[derive(Clone, Copy, PartialEq)]
enum Produce {
    /// Committed through the outbox; the relay publishes (end to end).
    Outbox,
    /// `Bus::publish`, one event per call, as the bare clients do (the adapter alone).
    Publish,
}

/// Dozen: returns (events/s, record) for `events` events produced at `rate`
/// per second (None: as fast as possible) through `consumers` consumers.
async fn dozen(
    target: &Target,
    how: Produce,
    events: u64,
    consumers: usize,
    rate: Option<u64>,
) -> anyhow::Result<(f64, Record)> {
    let (producer_db, _bus_db, url) = target.stores().await;
    let producer = pool(&producer_db, PRODUCERS as u32).await?;
    dozen_bus::outbox::migrate(&producer).await?;
    let bus = dozen_bus::connect(&bus_url(&url)?).await?;
    let sub = Subscription::new("bench", Tick::TYPE).max_in_flight(64);
    bus.declare(&sub).await?;

    let record = Record::default();
    let stop = Shutdown::new();
    let mut tasks = Vec::new();
    for _ in 0..consumers {
        let record = record.clone();
        let consumer = Consumer::new(
            dozen_bus::connect(&bus_url(&url)?).await?,
            sub.clone(),
            move |event: Event| {
                let record = record.clone();
                async move {
                    record.note(
                        event
                            .decode::<Tick>()
                            .map_err(dozen_bus::HandlerError::permanent)?
                            .sent_ns,
                    );
                    Ok(())
                }
            },
        );
        tasks.push(tokio::spawn(consumer.run(stop.clone())));
    }
    let outbox = Outbox::new();
    if how == Produce::Outbox {
        tasks.push(tokio::spawn(
            outbox
                .relay(producer.clone(), bus.clone())
                .run(stop.clone()),
        ));
    }

    let started = produce(events, rate, move |n| {
        let (producer, outbox, bus) = (producer.clone(), outbox.clone(), bus.clone());
        async move {
            // Stamped as the transaction starts: the latency includes the commit.
            let event = tick(n)?;
            if how == Produce::Publish {
                bus.publish(Tick::TYPE, &[event]).await?;
                return Ok(());
            }
            let mut tx = producer.begin().await?;
            outbox.enqueue(&mut tx, &event).await?;
            tx.commit().await?;
            outbox.committed();
            Ok(())
        }
    })
    .await?;
    record.wait_for(events as usize).await;
    let rate = events as f64 / started.elapsed().as_secs_f64();
    stop.trigger();
    for task in tasks {
        task.await?;
    }
    Ok((rate, record))
}

/// The ceiling of the outbox path on a broker: the producers' commits into
/// the SQLite outbox alone, as [`dozen`] makes them, with no relay and no
/// consumer (events/s).
async fn outbox_commits(events: u64) -> anyhow::Result<f64> {
    let database = TestDatabase::create(&Backend::Sqlite).await;
    let producer = pool(&database, PRODUCERS as u32).await?;
    dozen_bus::outbox::migrate(&producer).await?;
    let outbox = Outbox::new();
    let started = produce(events, None, move |n| {
        let (producer, outbox) = (producer.clone(), outbox.clone());
        async move {
            let event = tick(n)?;
            let mut tx = producer.begin().await?;
            outbox.enqueue(&mut tx, &event).await?;
            tx.commit().await?;
            Ok(())
        }
    })
    .await?;
    Ok(events as f64 / started.elapsed().as_secs_f64())
}

/// The bare baseline of the target.
async fn bare(
    target: &Target,
    events: u64,
    consumers: usize,
    rate: Option<u64>,
) -> anyhow::Result<(f64, Record)> {
    match target {
        Target::Sql(backend) => bare_sql(backend, events, consumers, rate).await,
        Target::Broker(url) if url.starts_with("nats:") => {
            bare_brokers::nats(url, events, consumers, rate).await
        }
        Target::Broker(url) if url.starts_with("amqp:") => {
            bare_brokers::rabbitmq(url, events, consumers, rate).await
        }
        Target::Broker(url) => bare_brokers::sns_sqs(url, events, consumers, rate).await,
    }
}

/// The bare store: INSERT, and consumers each taking rows with one statement.
async fn bare_sql(
    backend: &Backend,
    events: u64,
    consumers: usize,
    rate: Option<u64>,
) -> anyhow::Result<(f64, Record)> {
    let database = TestDatabase::create(backend).await;
    let pool = pool(&database, PRODUCERS as u32 + 4).await?;
    let is_postgres = matches!(backend, Backend::Postgres(_));
    let (id, lock) = if is_postgres {
        (
            "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
            "FOR UPDATE SKIP LOCKED",
        )
    } else {
        ("id INTEGER PRIMARY KEY", "")
    };
    sqlx::query(&format!("CREATE TABLE bare ({id}, body TEXT NOT NULL)"))
        .execute(&pool)
        .await?;
    let take = format!("DELETE FROM bare WHERE id IN (SELECT id FROM bare ORDER BY id LIMIT 64 {lock}) RETURNING body");
    let record = Record::default();
    let mut tasks = Vec::new();
    for _ in 0..consumers {
        let (pool, take, record) = (pool.clone(), take.clone(), record.clone());
        tasks.push(tokio::spawn(async move {
            while record.done.load(Ordering::SeqCst) < events as usize {
                let bodies: Vec<String> = sqlx::query_scalar(&take)
                    .fetch_all(&pool)
                    .await
                    .unwrap_or_default();
                if bodies.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                for body in bodies {
                    let event: Event = serde_json::from_str(&body).expect("event");
                    record.note(event.decode::<Tick>().expect("tick").sent_ns);
                }
            }
        }));
    }
    let started = produce(events, rate, move |n| {
        let pool = pool.clone();
        async move {
            let event = tick(n)?;
            sqlx::query("INSERT INTO bare (body) VALUES ($1)")
                .bind(serde_json::to_string(&event)?)
                .execute(&pool)
                .await?;
            Ok(())
        }
    })
    .await?;
    finish(started, events, record, tasks).await
}

/// Waits until all `events` are handled; returns the rate since `started`
/// and the record, once the consumer `tasks` have ended.
async fn finish(
    started: Instant,
    events: u64,
    record: Record,
    tasks: Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<(f64, Record)> {
    record.wait_for(events as usize).await;
    let rate = events as f64 / started.elapsed().as_secs_f64();
    for task in tasks {
        task.await?;
    }
    Ok((rate, record))
}

/// This process's CPU time (user + system), from /proc.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) end with ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// CPU used by four idle consumers (and the bus's wake-up machinery) over 5 s.
async fn idle_cpu(target: &Target) -> anyhow::Result<f64> {
    let (_producer_db, _bus_db, url) = target.stores().await;
    let url = bus_url(&url)?;
    let sub = Subscription::new("idle", Tick::TYPE);
    dozen_bus::connect(&url).await?.declare(&sub).await?;
    let stop = Shutdown::new();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let consumer = Consumer::new(
            dozen_bus::connect(&url).await?,
            sub.clone(),
            |_event: Event| async { Ok(()) },
        );
        tasks.push(tokio::spawn(consumer.run(stop.clone())));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (cpu, wall) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let used = (cpu_time() - cpu).as_secs_f64() / wall.elapsed().as_secs_f64();
    stop.trigger();
    for task in tasks {
        task.await?;
    }
    Ok(100.0 * used)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let events: u64 = arg("--events")
        .map_or(Ok(5000), |v| v.parse())
        .context("--events")?;
    let backends = arg("--backends").unwrap_or_else(|| "sqlite,postgres".into());
    let postgres_url = dozen_bench::postgres_url();
    clock();

    let mut rows = Vec::new();
    for name in backends.split(',') {
        // Brokers of the run's own: nothing left over from other runs, nothing left behind.
        let server;
        let (label, backend) = match name {
            "sqlite" => ("sqlite", Target::Sql(Backend::Sqlite)),
            "postgres" => (
                "postgres",
                Target::Sql(Backend::Postgres(postgres_url.clone())),
            ),
            "nats" => {
                server = ChildServer::nats().context("nats-server")?;
                (
                    "nats",
                    Target::Broker(format!("nats://127.0.0.1:{}", server.port())),
                )
            }
            "rabbitmq" => {
                server = ChildServer::rabbitmq().context("RabbitMQ")?;
                let url = format!("amqp://guest:guest@127.0.0.1:{}/%2f", server.port());
                ("rabbitmq", Target::Broker(url))
            }
            "sns+sqs" => {
                server = ChildServer::moto().context("moto_server")?;
                let url = format!(
                    "sns+sqs://?region=us-east-1&endpoint=http://127.0.0.1:{}",
                    server.port()
                );
                ("sns+sqs (moto)", Target::Broker(url))
            }
            other => anyhow::bail!("unknown backend {other}"),
        };
        // On a broker the adapter alone is what compares with a bare client;
        // the outbox row adds the producer's SQLite commit and the relay.
        let broker = matches!(backend, Target::Broker(_));
        let ways: &[(Produce, &str)] = if broker {
            &[(Produce::Publish, "publish"), (Produce::Outbox, "outbox")]
        } else {
            &[(Produce::Outbox, "outbox")]
        };
        if broker {
            let ceiling = outbox_commits(events).await?;
            let (dozen_rate, _) = dozen(&backend, Produce::Outbox, events, 1, None).await?;
            eprintln!("{label} outbox commits alone: {ceiling:.0}/s; through the relay: {dozen_rate:.0}/s");
            rows.push(Row {
                backend: label,
                scenario: format!(
                    "throughput via outbox, 1 consumer, next to the producers' outbox commits alone (SQLite, no relay, no consumer), {events} events"
                ),
                dozen: format!("{dozen_rate:.0} events/s"),
                bare: format!("{ceiling:.0} events/s"),
                ratio: format!("{:.0}%", 100.0 * dozen_rate / ceiling),
            });
        }
        for consumers in [1, 4] {
            let (bare_rate, _) = bare(&backend, events, consumers, None).await?;
            for &(how, way) in ways {
                let (dozen_rate, _) = dozen(&backend, how, events, consumers, None).await?;
                eprintln!("{label} throughput ({way}), {consumers} consumer(s): dozen {dozen_rate:.0}/s, bare {bare_rate:.0}/s");
                rows.push(Row {
                    backend: label,
                    scenario: format!(
                        "throughput via {way}, {consumers} consumer(s), {events} events"
                    ),
                    dozen: format!("{dozen_rate:.0} events/s"),
                    bare: format!("{bare_rate:.0} events/s"),
                    ratio: format!("{:.0}%", 100.0 * dozen_rate / bare_rate),
                });
            }
        }
        let (rate, paced) = (200, 1000.min(events));
        let (_, bare_record) = bare(&backend, paced, 1, Some(rate)).await?;
        let (b50, b99) = bare_record.percentiles();
        for &(how, way) in ways {
            let (_, dozen_record) = dozen(&backend, how, paced, 1, Some(rate)).await?;
            let (d50, d99) = dozen_record.percentiles();
            eprintln!("{label} latency ({way}) at {rate}/s: dozen p50 {d50:.2} ms p99 {d99:.2} ms, bare p50 {b50:.2} ms p99 {b99:.2} ms");
            rows.push(Row {
                backend: label,
                scenario: format!("{way} → handler latency at {rate} events/s, 1 consumer"),
                dozen: format!("p50 {d50:.2} ms, p99 {d99:.2} ms"),
                bare: if broker {
                    format!("p50 {b50:.2} ms, p99 {b99:.2} ms")
                } else {
                    format!("p50 {b50:.2} ms, p99 {b99:.2} ms (1 ms polling)")
                },
                ratio: "—".into(),
            });
        }
        let idle = idle_cpu(&backend).await?;
        eprintln!("{label} idle: {idle:.2}% of one CPU");
        rows.push(Row {
            backend: label,
            scenario: "CPU of 4 idle consumers, 5 s".into(),
            dozen: format!("{idle:.2}% of one CPU"),
            bare: "—".into(),
            ratio: "—".into(),
        });
    }

    let date = time::OffsetDateTime::now_utc().date();
    let mut table = String::from(
        "| backend | scenario | Dozen | bare (store or client) | Dozen / bare |\n|---|---|---|---|---|\n",
    );
    for row in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            row.backend, row.scenario, row.dozen, row.bare, row.ratio
        ));
    }
    println!("{table}");
    let machine = dozen_bench::machine();
    let report = format!("\n## {date} — {machine}\n\nCommand: `cargo run --release -p dozen-bench --bin bus -- --events {events} --backends {backends}`\n\n{table}");
    let path = "bench/results/bus.md";
    let mut existing = std::fs::read_to_string(path).unwrap_or_else(|_| {
        "# Bus benchmark\n\nDozen: outbox commit → relay → bus → consumer → handler done, one transaction per event, \
         8 concurrent producers for throughput, one paced producer for latency.\n\
         Bare: the same events INSERTed into one table and taken by consumers with one DELETE … RETURNING \
         (SKIP LOCKED on PostgreSQL), polling every 1 ms: no outbox, no fan-out, no leases, no retries.\n".into()
    });
    existing.push_str(&report);
    std::fs::write(path, existing)?;
    Ok(())
}
