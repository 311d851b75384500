//! The stacks under load, each started as its users start it, seeded with
//! the same messages in one room, and answering the same two endpoints.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use dozen_testing::free_port;
use tokio::process::{Child, Command};

/// A stack serving `GET`/`POST {room}/messages`, until dropped.
#[derive(Debug)]
pub struct Stack {
    pub name: &'static str,
    /// `…/v1/rooms/<room>/messages`: the endpoint both loads use.
    pub messages_url: String,
    /// `http://127.0.0.1:<port>`, where it serves.
    pub base: String,
    pub token: String,
    /// The process serving it; killed on drop.
    pub _child: Child,
    _folder: Option<tempfile::TempDir>,
    /// The stack this one stands in front of (the gateway's chat).
    _behind: Option<Box<Stack>>,
}

/// Polls `url` until it answers 200, for up to `within`.
async fn wait_until_ok(url: &str, child: &mut Child, within: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    let http = reqwest::Client::new();
    while started.elapsed() < within {
        if let Some(status) = child.try_wait()? {
            bail!("the process serving {url} exited with {status}");
        }
        if let Ok(answer) = http.get(url).send().await {
            if answer.status().is_success() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{url} did not answer 200 within {within:?}")
}

async fn run_to_end(command: &mut Command, what: &str) -> anyhow::Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("run {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The talk's Node.js stack: copied from `source` into a folder of its own,
/// `npm ci`, seeded by its own `seed.js`, served with request logging off.
pub async fn node(source: &Path, database_url: &str, messages: u64) -> anyhow::Result<Stack> {
    let folder = tempfile::tempdir()?;
    for file in std::fs::read_dir(source).with_context(|| format!("{}", source.display()))? {
        let file = file?;
        if file.file_type()?.is_file() {
            std::fs::copy(file.path(), folder.path().join(file.file_name()))?;
        }
    }
    let secret = "bench-secret";
    let node_env = |command: &mut Command| {
        command
            .current_dir(folder.path())
            .env("DATABASE_URL", database_url)
            .env("JWT_SECRET", secret);
    };
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]);
    node_env(&mut npm);
    run_to_end(&mut npm, "npm ci").await?;
    let mut seed = Command::new("node");
    seed.args(["seed.js", &messages.to_string()]);
    node_env(&mut seed);
    run_to_end(&mut seed, "node seed.js").await?;
    let mut token = Command::new("node");
    token.arg("token.js");
    node_env(&mut token);
    let token = run_to_end(&mut token, "node token.js").await?;

    let port = free_port();
    let mut server = Command::new("node");
    server
        .arg("server.js")
        .env("PORT", port.to_string())
        .env("LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    node_env(&mut server);
    let mut child = server.spawn().context("start node server.js")?;
    let base = format!("http://127.0.0.1:{port}");
    wait_until_ok(
        &format!("{base}/healthz"),
        &mut child,
        Duration::from_secs(30),
    )
    .await?;
    Ok(Stack {
        name: "Node (talk's stack)",
        messages_url: format!("{base}/v1/rooms/bench/messages"),
        base,
        token,
        _child: child,
        _folder: Some(folder),
        _behind: None,
    })
}

/// What a chat stack runs on.
#[derive(Debug, Clone)]
pub struct ChatBacking {
    pub database_url: String,
    pub bus_url: String,
    pub cache_url: String,
}

/// chat as `dozen up` runs it (`chat migrate`, then `chat serve`), checking
/// tokens with a fixed JWKS; a user creates the room and posts `messages`
/// through the API, as a chat's users fill it.
pub async fn chat(
    binaries: &Path,
    backing: &ChatBacking,
    messages: u64,
    name: &'static str,
) -> anyhow::Result<Stack> {
    let signer = signer()?;
    let jwks = serde_json::to_string(&signer.jwks())?;
    let port = free_port();
    let chat = binaries.join("chat");
    let env = |command: &mut Command| {
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", &backing.database_url)
            .env("BUS_URL", &backing.bus_url)
            .env("CACHE_URL", &backing.cache_url)
            .env("JWKS", &jwks)
            .env("PORT", port.to_string())
            // As the Node stack runs with its request log off.
            .env("LOG_LEVEL", "warn");
    };
    let mut migrate = Command::new(&chat);
    migrate.arg("migrate");
    env(&mut migrate);
    run_to_end(&mut migrate, "chat migrate").await?;
    let mut serve = Command::new(&chat);
    serve
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    env(&mut serve);
    let mut child = serve.spawn().context("start chat serve")?;
    let base = format!("http://127.0.0.1:{port}");
    wait_until_ok(
        &format!("{base}/readyz"),
        &mut child,
        Duration::from_secs(30),
    )
    .await?;

    let token = signer
        .issue(&uuid::Uuid::new_v4().to_string(), "bench")?
        .token;
    let http = reqwest::Client::new();
    let room: serde_json::Value = http
        .post(format!("{base}/v1/rooms"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "name": format!("bench {}", uuid::Uuid::new_v4()) }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let room = room["id"].as_str().context("the room's id")?.to_owned();
    let messages_url = format!("{base}/v1/rooms/{room}/messages");
    seed(&http, &messages_url, &token, messages).await?;
    Ok(Stack {
        name,
        messages_url,
        base,
        token,
        _child: child,
        _folder: None,
        _behind: None,
    })
}

/// Posts `messages` through the API, 32 at a time.
pub async fn seed(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    messages: u64,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let posts = futures::stream::iter(1..=messages).map(|n| {
        let request = http
            .post(url)
            .bearer_auth(token)
            .json(&serde_json::json!({ "text": format!("seed message {n}") }));
        async move { request.send().await?.error_for_status().map(|_| ()) }
    });
    let mut posts = posts.buffer_unordered(32);
    while let Some(posted) = posts.next().await {
        posted?;
    }
    Ok(())
}

/// accounts' signer with the key of `dev.env` (public: development only):
/// the key of the JWKS every chat stack here is given.
pub fn signer() -> anyhow::Result<accounts::tokens::TokenSigner> {
    let dev_env = std::fs::read_to_string(repo_root().join("dev.env"))?;
    let pem = dev_env
        .lines()
        .find_map(|line| line.strip_prefix("JWT_PRIVATE_KEY="))
        .context("dev.env's JWT_PRIVATE_KEY")?;
    Ok(accounts::tokens::TokenSigner::new(
        pem,
        "dozen".into(),
        "dozen".into(),
        Duration::from_secs(24 * 3600),
    )?)
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// chat behind `web`'s gateway, as `dozen up` runs them: the same
/// endpoints under `/api/chat/`.
pub async fn gateway(
    binaries: &Path,
    backing: &ChatBacking,
    messages: u64,
    name: &'static str,
) -> anyhow::Result<Stack> {
    let chat = chat(binaries, backing, messages, name).await?;
    let direct = url::Url::parse(&chat.messages_url)?;
    let port = free_port();
    let mut web = Command::new(binaries.join("web"));
    web.arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PORT", port.to_string())
        .env("LOG_LEVEL", "warn")
        .env(
            "DOZEN_UPSTREAMS",
            format!("chat=127.0.0.1:{}", direct.port().context("chat's port")?),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    let mut child = web.spawn().context("start web serve")?;
    let base = format!("http://127.0.0.1:{port}");
    wait_until_ok(
        &format!("{base}/readyz"),
        &mut child,
        Duration::from_secs(30),
    )
    .await?;
    Ok(Stack {
        name,
        messages_url: format!("{base}/api/chat{}", direct.path()),
        base,
        token: chat.token.clone(),
        // chat keeps running while the gateway's child lives.
        _child: child,
        _folder: None,
        _behind: Some(Box::new(chat)),
    })
}
