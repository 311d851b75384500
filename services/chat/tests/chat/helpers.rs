//! A chat web process and worker of the test's own, users with tokens signed
//! by accounts' signer, and requests to the API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use accounts::tokens::TokenSigner;
use chat::{Settings, WorkerSettings};
use dozen_auth::Keys;
use dozen_bus::{Bus, BusSettings, Event, EventType, ProcessSettings};
use dozen_cache::CacheSettings;
use dozen_runtime::database::{self, DatabaseSettings};
use dozen_runtime::http::HttpSettings;
use dozen_runtime::logging::{LogFormat, LogSettings};
use dozen_runtime::shutdown::Shutdown;
pub use dozen_testing::{Backend, TestDatabase};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use sqlx::AnyPool;

pub fn signer() -> TokenSigner {
    let key = ed25519_dalek::SigningKey::from_bytes(&rand::random())
        .to_pkcs8_pem(Default::default())
        .unwrap()
        .to_string();
    TokenSigner::new(
        &key,
        "dozen".into(),
        "dozen".into(),
        Duration::from_secs(3600),
    )
    .unwrap()
}

pub fn database_settings(url: &str) -> DatabaseSettings {
    DatabaseSettings {
        url: url.parse().unwrap(),
        max_connections: 5,
        acquire_timeout: Duration::from_secs(10),
    }
}

fn log() -> LogSettings {
    LogSettings {
        format: LogFormat::Json,
        filter: "warn".into(),
    }
}

pub struct TestChat {
    pub address: String,
    pub client: reqwest::Client,
    pub signer: TokenSigner,
    pub db: AnyPool,
    pub bus: Arc<dyn Bus>,
    pub shutdown: Shutdown,
    /// What another instance of the web process needs to join this one.
    pub database_url: String,
    pub bus_url: String,
    pub cache_url: String,
    pub presence_ttl: Duration,
    pub _database: TestDatabase,
    pub _bus_database: TestDatabase,
    pub _cache_folder: tempfile::TempDir,
}

/// Where presence, typing and signals between instances live in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheBackend {
    /// A SQLite file of the test's own.
    Embedded,
    /// The Redis of `TEST_REDIS_URL`, under a prefix of the test's own.
    Redis,
    /// A Redis of the test's own on this port (`ChildServer::redis`), to stop.
    RedisOn(u16),
}

/// The cache's URL, or `None` (skipped, or a failure in CI) without a Redis.
fn cache_url(cache: CacheBackend, folder: &std::path::Path) -> Option<String> {
    match cache {
        CacheBackend::Embedded => Some(format!("sqlite://{}", folder.join("cache.db").display())),
        CacheBackend::Redis => {
            let url = dozen_testing::required_server("TEST_REDIS_URL", "Redis cache")?;
            Some(format!(
                "{url}?prefix=chat-test-{}",
                uuid::Uuid::new_v4().simple()
            ))
        }
        CacheBackend::RedisOn(port) => Some(format!("redis://127.0.0.1:{port}")),
    }
}

/// How a test's chat is set up.
#[derive(Debug, Clone)]
pub struct Setup {
    pub backend: Backend,
    pub cache: CacheBackend,
    pub presence_ttl: Duration,
}

impl Setup {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            cache: CacheBackend::Embedded,
            presence_ttl: Duration::from_secs(15),
        }
    }
}

impl Drop for TestChat {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// A user the test acts as.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub username: String,
    pub token: String,
}

/// chat's web process and worker on `backend`, with a SQLite bus and an
/// embedded cache of its own.
pub async fn spawn_chat(backend: Backend) -> TestChat {
    spawn_chat_with_keys(backend, |signer| Keys::fixed(signer.verifier())).await
}

pub async fn spawn_chat_with_keys(
    backend: Backend,
    keys: impl FnOnce(&TokenSigner) -> Keys,
) -> TestChat {
    spawn_with(Setup::new(backend), keys)
        .await
        .expect("the embedded cache needs no server")
}

/// chat as `setup` says; `None` when a server it needs is missing (a failure in CI).
pub async fn spawn(setup: Setup) -> Option<TestChat> {
    spawn_with(setup, |signer| Keys::fixed(signer.verifier())).await
}

async fn spawn_with(setup: Setup, keys: impl FnOnce(&TokenSigner) -> Keys) -> Option<TestChat> {
    let cache_folder = tempfile::tempdir().unwrap();
    let cache_url = cache_url(setup.cache, cache_folder.path())?;
    let backend = setup.backend;
    let database = TestDatabase::create(&backend).await;
    let bus_database = TestDatabase::create(&Backend::Sqlite).await;
    let db = database::connect_lazy(&database_settings(&database.url)).unwrap();
    chat::migrate(&db).await.unwrap();
    let signer = signer();
    let bus_settings = || BusSettings::new(bus_database.url.parse().unwrap());
    let shutdown = Shutdown::new();
    let app = chat::web(
        Settings {
            process: ProcessSettings {
                log: log(),
                http: HttpSettings::local(),
                database: database_settings(&database.url),
                bus: bus_settings(),
            },
            keys: keys(&signer),
            cache: CacheSettings {
                url: cache_url.parse().unwrap(),
            },
            presence_ttl: setup.presence_ttl,
        },
        shutdown.clone(),
    )
    .await
    .unwrap();
    let worker = chat::worker(
        WorkerSettings {
            process: ProcessSettings {
                log: log(),
                http: HttpSettings::local(),
                database: database_settings(&database.url),
                bus: bus_settings(),
            },
            cache: CacheSettings {
                url: cache_url.parse().unwrap(),
            },
        },
        shutdown.clone(),
    )
    .await
    .unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    tokio::spawn(worker.run_until_stopped());
    let bus = dozen_bus::connect(&bus_database.url.parse().unwrap())
        .await
        .unwrap();
    Some(TestChat {
        address,
        client: reqwest::Client::new(),
        signer,
        db,
        bus,
        shutdown,
        database_url: database.url.clone(),
        bus_url: bus_database.url.clone(),
        cache_url,
        presence_ttl: setup.presence_ttl,
        _database: database,
        _bus_database: bus_database,
        _cache_folder: cache_folder,
    })
}

impl TestChat {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Another web process on the same database, bus and cache, as
    /// `dozen up -m chat=2` runs it; stopped with `stop`. Returns its address.
    pub async fn another_instance(&self, stop: &Shutdown) -> String {
        let app = chat::web(
            Settings {
                process: ProcessSettings {
                    log: log(),
                    http: HttpSettings::local(),
                    database: database_settings(&self.database_url),
                    bus: BusSettings::new(self.bus_url.parse().unwrap()),
                },
                keys: Keys::fixed(self.signer.verifier()),
                cache: CacheSettings {
                    url: self.cache_url.parse().unwrap(),
                },
                presence_ttl: self.presence_ttl,
            },
            stop.clone(),
        )
        .await
        .unwrap();
        let address = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        address
    }

    /// A user with a token, whom chat has not heard of from accounts.
    pub fn user(&self, username: &str) -> TestUser {
        let id = uuid::Uuid::now_v7().to_string();
        let token = self.signer.issue(&id, username).unwrap().token;
        TestUser {
            id,
            username: username.into(),
            token,
        }
    }

    pub async fn post(&self, path: &str, user: &TestUser, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&user.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str, user: &TestUser) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap()
    }

    /// GETs `path` as `user` and reads the answer as JSON, whatever its status.
    pub async fn get_json(&self, path: &str, user: &TestUser) -> Value {
        self.get(path, user).await.json().await.unwrap()
    }

    pub async fn patch(&self, path: &str, user: &TestUser, body: &Value) -> Response {
        self.client
            .patch(self.url(path))
            .bearer_auth(&user.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put(&self, path: &str, user: &TestUser, body: &Value) -> Response {
        self.client
            .put(self.url(path))
            .bearer_auth(&user.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str, user: &TestUser) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap()
    }

    /// Puts `users` in chat's directory, as their signup events would.
    pub async fn known(&self, users: &[&TestUser]) {
        for user in users {
            sqlx::query("INSERT INTO users (id, username) VALUES ($1, $2)")
                .bind(&user.id)
                .bind(&user.username)
                .execute(&self.db)
                .await
                .unwrap();
        }
    }

    /// Creates a room as `owner`; returns its id.
    pub async fn room(&self, owner: &TestUser, name: &str) -> String {
        let response = self
            .post("/v1/rooms", owner, &json!({ "name": name }))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn join(&self, room: &str, user: &TestUser) {
        let response = self
            .post(&format!("/v1/rooms/{room}/members"), user, &json!({}))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// Posts `text` in `room`; returns the message as answered.
    pub async fn say(&self, room: &str, user: &TestUser, text: &str) -> Value {
        let response = self
            .post(
                &format!("/v1/rooms/{room}/messages"),
                user,
                &json!({ "text": text }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.unwrap()
    }

    /// Publishes `data` as its producer would (the worker's subscriptions declared first).
    pub async fn publish<T: EventType>(&self, data: &T) -> Event {
        let event = Event::new("test", data).unwrap();
        self.publish_event(&event).await;
        event
    }

    pub async fn publish_event(&self, event: &Event) {
        for sub in chat::handlers::subscriptions() {
            self.bus.declare(&sub).await.unwrap();
        }
        self.bus
            .publish(&event.event_type, std::slice::from_ref(event))
            .await
            .unwrap();
    }
}

/// Polls `check` until it gives `Some`, for up to `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sse {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl Sse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// Reads a `text/event-stream` answer event by event (comments skipped).
pub struct SseReader {
    response: Response,
    buffer: String,
}

impl SseReader {
    pub async fn open(chat: &TestChat, room: &str, user: &TestUser, last_id: Option<&str>) -> Self {
        let url = chat.url(&format!("/v1/rooms/{room}/events"));
        Self::open_url(&chat.client, &url, user, last_id).await
    }

    /// The stream at `url` (another instance's, or `/v1/activity`).
    pub async fn open_url(
        client: &reqwest::Client,
        url: &str,
        user: &TestUser,
        last_id: Option<&str>,
    ) -> Self {
        let mut request = client.get(url).bearer_auth(&user.token);
        if let Some(id) = last_id {
            request = request.header("last-event-id", id);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next numbered event (one with an SSE `id`: a message, a card,
    /// an edit, a deletion), or `None` if none comes within `within` or the
    /// stream ends. Events of the moment (`presence`, `typing`) are skipped.
    pub async fn next(&mut self, within: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let sse = self.next_any(deadline).await?;
            if sse.id.is_some() {
                return Some(sse);
            }
        }
    }

    /// The next event of `kind`, numbered or not, skipping others.
    pub async fn next_of(&mut self, kind: &str, within: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let sse = self.next_any(deadline).await?;
            if sse.event.as_deref() == Some(kind) {
                return Some(sse);
            }
        }
    }

    /// Every event that comes within `within`.
    pub async fn all_within(&mut self, within: Duration) -> Vec<Sse> {
        let deadline = tokio::time::Instant::now() + within;
        let mut all = Vec::new();
        while let Some(sse) = self.next_any(deadline).await {
            all.push(sse);
        }
        all
    }

    async fn next_any(&mut self, deadline: tokio::time::Instant) -> Option<Sse> {
        loop {
            let normalized = self.buffer.replace("\r\n", "\n");
            if let Some((frame, rest)) = normalized.split_once("\n\n") {
                let (frame, rest) = (frame.to_owned(), rest.to_owned());
                self.buffer = rest;
                let mut sse = Sse {
                    id: None,
                    event: None,
                    data: String::new(),
                };
                for line in frame.lines() {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "id" => sse.id = Some(value.to_owned()),
                        "event" => sse.event = Some(value.to_owned()),
                        "data" => sse.data.push_str(value),
                        _ => {}
                    }
                }
                if sse.id.is_some() || !sse.data.is_empty() {
                    return Some(sse);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// Events of one type that chat publishes, each checked against its schema.
pub struct Listener<T> {
    received: tokio::sync::mpsc::UnboundedReceiver<T>,
    stop: Shutdown,
}

impl<T> Drop for Listener<T> {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

impl<T: EventType + serde::de::DeserializeOwned + Send + 'static> Listener<T> {
    /// Subscribes `name` to `T`'s topic now: it gets what is published from now on.
    pub async fn start(chat: &TestChat, name: &str) -> Self {
        let subscription = dozen_bus::Subscription::new(name, T::TYPE);
        chat.bus.declare(&subscription).await.unwrap();
        let (sender, received) = tokio::sync::mpsc::unbounded_channel();
        let stop = Shutdown::new();
        let consumer = dozen_bus::Consumer::new(
            chat.bus.clone(),
            subscription,
            dozen_bus::typed(move |data: T, event| {
                let sender = sender.clone();
                async move {
                    dozen_events::contract::validate(T::TYPE, T::VERSION, &event.data)
                        .expect("the event matches its schema");
                    let _ = sender.send(data);
                    Ok(())
                }
            }),
        );
        tokio::spawn(consumer.run(stop.clone()));
        Self { received, stop }
    }

    pub async fn next(&mut self, within: Duration) -> T {
        tokio::time::timeout(within, self.received.recv())
            .await
            .unwrap_or_else(|_| panic!("no {} within {within:?}", T::TYPE))
            .expect("the listener runs")
    }

    /// Whether another comes within `within`.
    pub async fn more_within(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, self.received.recv())
            .await
            .is_ok()
    }
}
