//! The browser UI: what a first visit downloads, and how soon a page shows.
//!
//! Runs `dozen up` (the release binaries beside this one) on the
//! repository's Procfile and dev.env, makes a user and a room with 60
//! messages, then opens the pages in headless Chromium (Debian's, through
//! chromedriver), each run in a fresh profile so nothing is cached, after
//! one page of the site that loads none of the UI (so the browser's own
//! start-up is not counted):
//! - the login page: first contentful paint (the Paint Timing API);
//! - a room of a logged-in user: first contentful paint, and when its
//!   latest 50 messages are on screen (page time, read when a poll of the
//!   DOM every 5 ms first sees them).
//!
//! ```sh
//! cargo build --release --bins && cargo run --release -p dozen-bench --bin ui -- --runs 20
//! ```

use std::time::Duration;

use anyhow::Context;
use dozen_testing::up::{port_base, repo_file, DozenUp};
use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs = arg("--runs", 20);
    let release = std::env::current_exe()?
        .parent()
        .context("the binary's folder")?
        .to_owned();
    let base = port_base(4);
    let folder = tempfile::tempdir()?;
    for name in ["Procfile", "dev.env", "schedule"] {
        std::fs::write(folder.path().join(name), repo_file(name))?;
    }
    let up = DozenUp::start(
        &release.join("dozen"),
        folder,
        &["--port-base", &base.to_string()],
        &[(
            "JWKS_URL",
            format!("http://127.0.0.1:{}/.well-known/jwks.json", base + 100),
        )],
    );
    up.wait_for_within("every process is ready", 1, Duration::from_secs(60))
        .await;
    let site = format!("http://127.0.0.1:{base}");
    let (session, room) = seed(&site).await?;

    let weight = page_weight(&site).await?;
    let driver = chromedriver().await?;
    let mut login = Vec::new();
    let mut room_paint = Vec::new();
    let mut room_shown = Vec::new();
    for _ in 0..runs {
        let (browser, _profile) = browser(&driver).await?;
        // The browser's own start is not the page's: a first page that loads
        // nothing of the UI, as for the room below.
        browser.goto(&format!("{site}/healthz")).await?;
        browser.goto(&format!("{site}/")).await?;
        login.push(first_paint(&browser).await?);
        browser.close().await?;

        let (browser, _profile) = browser_with_session(&driver, &site, &session).await?;
        browser.goto(&format!("{site}/#/rooms/{room}")).await?;
        room_shown.push(messages_shown(&browser).await?);
        room_paint.push(first_paint(&browser).await?);
        browser.close().await?;
    }
    drop(up);

    println!(
        "page weight, first visit: {} bytes compressed ({} uncompressed), {} files",
        weight.0, weight.1, weight.2
    );
    println!("runs: {runs}, each in a fresh profile (nothing cached)");
    println!("| page | measure | median | p95 | min | max |");
    println!("|---|---|---|---|---|---|");
    for (page, what, samples) in [
        ("login", "first contentful paint", &mut login),
        (
            "room, 50 messages",
            "first contentful paint",
            &mut room_paint,
        ),
        ("room, 50 messages", "messages on screen", &mut room_shown),
    ] {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        println!(
            "| {page} | {what} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
            at(0.5),
            at(0.95),
            samples[0],
            samples[samples.len() - 1]
        );
    }
    Ok(())
}

/// A user, a room and 60 messages; the session as the UI keeps it.
async fn seed(site: &str) -> anyhow::Result<(Value, String)> {
    let client = reqwest::Client::new();
    let answer: Value = client
        .post(format!("{site}/api/accounts/v1/users"))
        .json(&json!({"username": "bench", "email": "bench@example.com", "password": "correct horse battery staple"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = answer["access_token"]
        .as_str()
        .context("a token")?
        .to_owned();
    let room: Value = client
        .post(format!("{site}/api/chat/v1/rooms"))
        .bearer_auth(&token)
        .json(&json!({"name": "bench"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let room = room["id"].as_str().context("a room")?.to_owned();
    for n in 1..=60 {
        client
            .post(format!("{site}/api/chat/v1/rooms/{room}/messages"))
            .bearer_auth(&token)
            .json(&json!({"text": format!("message {n}: the quick brown fox jumps over the lazy dog, @bench https://example.com/{n}")}))
            .send()
            .await?
            .error_for_status()?;
    }
    let session = json!({
        "token": token,
        "user": { "id": answer["user"]["id"], "username": "bench" },
        "expiresAt": 4_102_444_800_000_u64,
    });
    Ok((session, room))
}

/// Bytes of the page and everything it loads, compressed as a browser gets them.
async fn page_weight(site: &str) -> anyhow::Result<(usize, usize, usize)> {
    let client = reqwest::Client::new();
    let html = client.get(format!("{site}/")).send().await?.text().await?;
    let mut paths = vec!["/".to_owned()];
    paths.extend(
        html.split('"')
            .filter(|s| s.starts_with("/assets/"))
            .map(str::to_owned),
    );
    let (mut compressed, mut plain) = (0, 0);
    for path in &paths {
        let url = format!("{site}{path}");
        compressed += client
            .get(&url)
            .header("accept-encoding", "gzip")
            .send()
            .await?
            .bytes()
            .await?
            .len();
        plain += client.get(&url).send().await?.bytes().await?.len();
    }
    Ok((compressed, plain, paths.len()))
}

struct Driver {
    _child: tokio::process::Child,
    url: String,
}

async fn chromedriver() -> anyhow::Result<Driver> {
    let port = dozen_testing::free_port();
    let child = tokio::process::Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("chromedriver (apt-get install chromium chromium-driver)")?;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Driver {
        _child: child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

/// A browser in a fresh profile (removed when the guard is dropped).
async fn browser(driver: &Driver) -> anyhow::Result<(Client, tempfile::TempDir)> {
    let profile = tempfile::tempdir()?;
    let Value::Object(capabilities) = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1280,860",
                     format!("--user-data-dir={}", profile.path().display())],
        },
    }) else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await?;
    Ok((client, profile))
}

/// A fresh browser whose localStorage holds `session`, with nothing of the
/// UI cached: the session is set on a page that loads none of it.
async fn browser_with_session(
    driver: &Driver,
    site: &str,
    session: &Value,
) -> anyhow::Result<(Client, tempfile::TempDir)> {
    let (browser, profile) = browser(driver).await?;
    browser.goto(&format!("{site}/healthz")).await?;
    browser
        .execute(
            "localStorage.setItem('dozen.session', JSON.stringify(arguments[0]))",
            vec![session.clone()],
        )
        .await?;
    Ok((browser, profile))
}

/// The page's own clock (ms since navigation) when `script` first answers
/// a number, asked every 5 ms.
async fn page_time(browser: &Client, script: &str, what: &str) -> anyhow::Result<f64> {
    for _ in 0..2000 {
        if let Some(ms) = browser.execute(script, vec![]).await?.as_f64() {
            return Ok(ms);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    anyhow::bail!("no {what}")
}

async fn first_paint(browser: &Client) -> anyhow::Result<f64> {
    page_time(
        browser,
        "return performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null",
        "first contentful paint",
    )
    .await
}

async fn messages_shown(browser: &Client) -> anyhow::Result<f64> {
    page_time(
        browser,
        "return document.querySelectorAll('.messages > li[data-id]').length >= 50 ? performance.now() : null",
        "messages on screen",
    )
    .await
}
