//! Starting accounts for a test, on SQLite or on PostgreSQL, and talking to it.

use std::time::Duration;

use accounts::tokens::TokenSigner;
use std::sync::Arc;

use accounts::Settings;
use dozen_bus::{Bus, BusSettings, ProcessSettings};
use dozen_runtime::database::{self, DatabaseSettings};
use dozen_runtime::http::HttpSettings;
use dozen_runtime::logging::{LogFormat, LogSettings};
use dozen_runtime::shutdown::Shutdown;
pub use dozen_testing::{Backend, TestDatabase};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

/// A fresh Ed25519 private key in PKCS#8 PEM form.
pub fn new_signing_key_pem() -> String {
    let seed: [u8; 32] = rand::random();
    ed25519_dalek::SigningKey::from_bytes(&seed)
        .to_pkcs8_pem(Default::default())
        .expect("encode key")
        .to_string()
}

/// Settings for an in-process app: loopback, port 0, the test's own database.
pub fn test_settings(database_url: &str, bus_url: &str, key_pem: &str) -> Settings {
    Settings {
        process: ProcessSettings {
            log: LogSettings {
                format: LogFormat::Json,
                filter: "warn".into(),
            },
            http: HttpSettings::local(),
            database: DatabaseSettings {
                url: database_url.parse().expect("database URL"),
                max_connections: 5,
                acquire_timeout: Duration::from_secs(5),
            },
            bus: BusSettings::new(bus_url.parse().expect("bus URL")),
        },
        tokens: TokenSigner::new(
            key_pem,
            "dozen".into(),
            "dozen".into(),
            Duration::from_secs(3600),
        )
        .expect("signing key"),
        throttle: accounts::throttle::ThrottleSettings::default(),
    }
}

/// A running accounts web process inside the test, and a client for it.
#[derive(Debug)]
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub key_pem: String,
    /// The bus the app publishes to.
    pub bus_url: String,
    /// Kept so temporary SQLite folders live as long as the app.
    pub _database: TestDatabase,
    pub _bus_database: TestDatabase,
    pub shutdown: Shutdown,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Like `spawn_app`, with a chance to change the settings first.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let database = TestDatabase::create(&backend).await;
    let settings = DatabaseSettings {
        url: database.url.parse().expect("database URL"),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
    };
    let pool = database::connect_lazy(&settings).expect("pool");
    accounts::migrate(&pool).await.expect("migrations");
    pool.close().await;
    start(database, adjust).await
}

/// An app whose database never answers: nothing listens on port 1.
pub async fn spawn_app_on_unreachable_database() -> TestApp {
    let database = TestDatabase::at("postgres://dozen@127.0.0.1:1/nothing");
    start(database, |settings| {
        settings.process.database.acquire_timeout = Duration::from_millis(500);
    })
    .await
}

async fn start(database: TestDatabase, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let key_pem = new_signing_key_pem();
    // The bus gets a SQLite file of its own, as it would a broker of its own.
    let bus_database = TestDatabase::create(&Backend::Sqlite).await;
    let mut settings = test_settings(&database.url, &bus_database.url, &key_pem);
    adjust(&mut settings);
    let bus_url = settings.process.bus.url.expose().to_owned();
    let shutdown = Shutdown::new();
    let app = accounts::web(settings, shutdown.clone())
        .await
        .expect("build app");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        key_pem,
        bus_url,
        _database: database,
        _bus_database: bus_database,
        shutdown,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// A user signed up by a test, with the password it chose.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub token: String,
}

impl TestApp {
    /// A connection of the test's own to the app's bus.
    pub async fn bus(&self) -> Arc<dyn Bus> {
        dozen_bus::connect(&self.bus_url.parse().expect("bus URL"))
            .await
            .expect("bus")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// GETs `path` and reads the answer as JSON, whatever its status.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request");
        response.json().await.expect("JSON answer")
    }

    /// POSTs a raw body with the given content type (none when `None`).
    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: String) -> Response {
        let mut request = self.client.post(self.url(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send().await.expect("request")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get_with_token(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn sign_up(&self, username: &str, email: &str, password: &str) -> Response {
        self.post_json(
            "/v1/users",
            &json!({ "username": username, "email": email, "password": password }),
        )
        .await
    }

    /// Signs up a new user that the test can log in as.
    pub async fn new_user(&self, username: &str) -> TestUser {
        let email = format!("{username}@example.com");
        let password = format!("{username}-password-123");
        let response = self.sign_up(username, &email, &password).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("json");
        TestUser {
            id: body["user"]["id"].as_str().expect("id").to_owned(),
            email,
            password,
            token: body["access_token"].as_str().expect("token").to_owned(),
        }
    }

    /// The `password_checks_total` counter from `/metrics`.
    pub async fn password_checks(&self) -> u64 {
        dozen_testing::metrics::scrape(&self.client, &self.url("/metrics"), "password_checks_total")
            .await
            .map_or(0, |checks| checks as u64)
    }

    pub async fn log_in(&self, body: Value) -> Response {
        self.post_json("/v1/sessions", &body).await
    }
}

/// Reads an error answer and checks it has the standard shape; returns `code`.
pub async fn error_code(response: Response) -> String {
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "error answers are JSON, got {content_type:?}"
    );
    let body: Value = response.json().await.expect("error body is JSON");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "error has a message: {body}");
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("error has a code: {body}"))
        .to_owned()
}
