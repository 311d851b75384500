//! Posting and reading messages over HTTP: chat next to the talk's Node.js
//! stack, and next to the bare ceiling of the same database work, in one run.
//!
//! Each stack is started as its users start it, seeded with the same number
//! of messages in one room, then loaded by `wrk` (2 threads, 32 connections,
//! 10 s after a 2 s warm-up): `GET …/messages?limit=50`, then
//! `POST …/messages {"text":"hello from wrk"}` (the Node stack's `post.lua`
//! for both). The ceilings drive the same statements at the same database
//! from 32 tasks of a small Rust client (see `ceiling`).
//!
//! ```sh
//! cargo build --release -p chat -p web -p dozen-bench && ./target/release/http \
//!   [--stacks node,chat,gateway,sqlite] [--duration 10] [--connections 32] [--messages 10000]
//! ```
//! PostgreSQL is `BENCH_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! a new database per stack; Redis (`BENCH_REDIS_URL`, default
//! `redis://127.0.0.1:6379`) is chat's cache. The table goes to
//! `bench/results/http.md`, the plot to `bench/results/http.svg`.

mod ceiling;
mod plot;
mod wrk;

use std::time::Duration;

use anyhow::Context;
use dozen_runtime::database::DatabaseSettings;
use dozen_testing::{Backend, TestDatabase};

use dozen_bench::stacks::{self, ChatBacking, Stack};
use wrk::{Load, Measured};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub stack: String,
    pub endpoint: &'static str,
    pub measured: Measured,
}

const GET: &str = "GET ?limit=50";
const POST: &str = "POST";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stacks = arg("--stacks").unwrap_or_else(|| "node,chat,gateway,sqlite".into());
    let duration = Duration::from_secs(arg("--duration").map_or(Ok(10), |d| d.parse())?);
    let connections: u32 = arg("--connections").map_or(Ok(32), |c| c.parse())?;
    let messages: u64 = arg("--messages").map_or(Ok(10_000), |m| m.parse())?;
    let postgres = dozen_bench::postgres_url();
    let redis = dozen_bench::redis_url();
    let binaries = dozen_bench::binaries()?;
    let load = Load {
        threads: 2,
        connections,
        duration,
    };
    let warm_up = Load {
        duration: Duration::from_secs(2),
        ..load.clone()
    };
    let script = stacks::repo_root().join("../shared/baselines/node-talk-stack/post.lua");
    let source = script.parent().expect("the stack's folder").to_owned();
    let mut rows = Vec::new();
    let mut ceilings = Vec::new();
    let backend = Backend::Postgres(postgres.clone());

    for name in stacks.split(',') {
        let database = TestDatabase::create(&match name {
            "sqlite" => Backend::Sqlite,
            _ => backend.clone(),
        })
        .await;
        let pg_backing = ChatBacking {
            database_url: database.url.clone(),
            bus_url: database.url.clone(),
            cache_url: format!("{redis}/?prefix=benchhttp{}", std::process::id()),
        };
        let stack = match name {
            "node" => stacks::node(&source, &database.url, messages).await?,
            "chat" => stacks::chat(&binaries, &pg_backing, messages, "chat").await?,
            "gateway" => {
                stacks::gateway(&binaries, &pg_backing, messages, "chat through the gateway")
                    .await?
            }
            "sqlite" => {
                let folder = database
                    .url
                    .strip_prefix("sqlite://")
                    .and_then(|f| f.rsplit_once('/'))
                    .context("the database's folder")?
                    .0
                    .to_owned();
                let embedded = ChatBacking {
                    database_url: database.url.clone(),
                    bus_url: format!("sqlite://{folder}/bus.db"),
                    cache_url: format!("sqlite://{folder}/cache.db"),
                };
                stacks::chat(&binaries, &embedded, messages, "chat on SQLite").await?
            }
            other => anyhow::bail!("unknown stack {other:?} (node, chat, gateway, sqlite)"),
        };
        eprintln!("{}: seeded; loading", stack.name);
        let get_url = format!("{}?limit=50", stack.messages_url);
        warm_up.run(&get_url, &stack.token, None)?;
        let get = load.run(&get_url, &stack.token, None)?;
        warm_up.run(&stack.messages_url, &stack.token, Some(&script))?;
        let post = load.run(&stack.messages_url, &stack.token, Some(&script))?;
        for (endpoint, measured) in [(GET, get), (POST, post)] {
            eprintln!("  {endpoint}: {measured:?}");
            rows.push(Row {
                stack: stack.name.to_owned(),
                endpoint,
                measured,
            });
        }
        let room = stack_room(&stack);
        drop(stack);
        if matches!(name, "chat" | "sqlite") {
            let pool = dozen_runtime::database::connect_lazy(&DatabaseSettings {
                url: database.url.parse().map_err(anyhow::Error::msg)?,
                max_connections: connections,
                acquire_timeout: Duration::from_secs(30),
            })?;
            let label = if name == "sqlite" {
                "SQLite"
            } else {
                "PostgreSQL"
            };
            for (endpoint, work, what) in [
                (GET, ceiling::Work::Page, "the page's SELECT"),
                (
                    POST,
                    ceiling::Work::Post,
                    "a post's statements, one transaction each",
                ),
                (
                    POST,
                    ceiling::Work::Insert,
                    "one single-row INSERT (the Node stack's work)",
                ),
            ] {
                let measured = ceiling::run(&pool, &room, work, connections, duration).await?;
                eprintln!("  ceiling {label} {what}: {measured:?}");
                ceilings.push((format!("{label}: {what}"), endpoint, measured));
            }
        }
    }
    report(&rows, &ceilings, &stacks, &load, messages)
}

/// The room id in a stack's messages URL (the Node stack's is `bench`).
fn stack_room(stack: &Stack) -> String {
    stack
        .messages_url
        .trim_end_matches("/messages")
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn report(
    rows: &[Row],
    ceilings: &[(String, &'static str, Measured)],
    stacks: &str,
    load: &Load,
    messages: u64,
) -> anyhow::Result<()> {
    let node = |endpoint: &str| {
        rows.iter()
            .find(|r| r.stack.starts_with("Node") && r.endpoint == endpoint)
            .map(|r| r.measured.rps)
    };
    let mut table =
        String::from("| stack | endpoint | requests/s | p99 | × Node |\n|---|---|---|---|---|\n");
    for row in rows {
        let ratio =
            node(row.endpoint).map_or("–".into(), |n| format!("{:.1}×", row.measured.rps / n));
        table.push_str(&format!(
            "| {} | `{}` | {:.0} | {:.1} ms | {} |\n",
            row.stack, row.endpoint, row.measured.rps, row.measured.p99_ms, ratio
        ));
    }
    let mut bare = String::from(
        "| ceiling (no HTTP, no JSON, no auth) | for | per second | p99 | chat's share of it |\n|---|---|---|---|---|\n",
    );
    for (what, endpoint, measured) in ceilings {
        let store = what.split(':').next().unwrap_or_default();
        let stack = if store == "SQLite" {
            "chat on SQLite"
        } else {
            "chat"
        };
        let share = rows
            .iter()
            .find(|r| r.stack == stack && r.endpoint == *endpoint)
            .map_or("–".into(), |r| {
                format!("{:.0}%", 100.0 * r.measured.rps / measured.rps)
            });
        bare.push_str(&format!(
            "| {what} | `{endpoint}` | {:.0} | {:.1} ms | {share} |\n",
            measured.rps, measured.p99_ms
        ));
    }
    println!("{table}\n{bare}");
    let machine = dozen_bench::machine();
    let date = time::OffsetDateTime::now_utc().date();
    let command = format!(
        "./target/release/http --stacks {stacks} --duration {} --connections {} --messages {messages}",
        load.duration.as_secs(),
        load.connections
    );
    let results = stacks::repo_root().join("bench/results");
    let report = format!(
        "\n## {date} — {machine}\n\nCommand: `cargo build --release -p chat -p web -p dozen-bench && {command}`\n\n\
         wrk -t{} -c{} -d{}s after a 2 s warm-up; {messages} messages in the room.\n\n{table}\n{bare}\n![requests per second and p99](http.svg)\n",
        load.threads,
        load.connections,
        load.duration.as_secs()
    );
    let path = results.join("http.md");
    let mut existing = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# HTTP benchmark: posting and reading messages\n\n\
         chat next to the talk's Node.js stack (`../shared/baselines/node-talk-stack`: express 4.16, \
         body-parser, jwt-simple, pg; request logging off), and next to the bare ceiling of the same \
         database work: the endpoint's statements driven by a small Rust client (sqlx) from as many \
         tasks as wrk has connections. Every stack on the same machine in the same run; \
         see `bench/src/bin/http/`.\n"
            .into()
    });
    existing.push_str(&report);
    std::fs::write(&path, existing)?;
    plot::draw(rows, &results.join("http.svg"))?;
    Ok(())
}
