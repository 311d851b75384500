//! A notifier worker of the test's own, the bus it consumes, and the mail it sent.

use std::time::Duration;

use dozen_bus::{Bus, BusSettings, Event, EventType, ProcessSettings};
use dozen_runtime::config::{Env, FromEnv, Secret};
use dozen_runtime::database::{self, DatabaseSettings};
use dozen_runtime::http::HttpSettings;
use dozen_runtime::logging::LogSettings;
use dozen_runtime::shutdown::Shutdown;
pub use dozen_testing::mail::{maildir, mails_in, wait_for_mails};
use dozen_testing::{Backend, ChildServer, TestDatabase};
use notifier::{MailSettings, Settings};

pub struct TestNotifier {
    pub address: String,
    pub db: sqlx::AnyPool,
    pub bus: std::sync::Arc<dyn Bus>,
    pub shutdown: Shutdown,
    pub database: TestDatabase,
    pub _bus_database: TestDatabase,
}

impl Drop for TestNotifier {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

pub fn mail_settings(smtp_url: &str) -> MailSettings {
    MailSettings {
        url: Secret::new(smtp_url.to_owned()),
        from: "Dozen <no-reply@dozen.test>".into(),
    }
}

/// A worker on SQLite (its database and its bus), sending mail to `smtp_url`.
pub async fn spawn_notifier(smtp_url: &str) -> TestNotifier {
    let database = TestDatabase::create(&Backend::Sqlite).await;
    let bus_database = TestDatabase::create(&Backend::Sqlite).await;
    let database_settings = DatabaseSettings {
        url: database.url.parse().unwrap(),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(10),
    };
    let db = database::connect_lazy(&database_settings).unwrap();
    notifier::migrate(&db).await.unwrap();
    let env = Env::from_pairs([("PORT", "0")]);
    let settings = Settings {
        process: ProcessSettings {
            log: LogSettings::from_env(&env).unwrap(),
            http: HttpSettings::from_env(&env).unwrap(),
            database: database_settings,
            bus: BusSettings::new(bus_database.url.parse().unwrap()),
        },
        mail: mail_settings(smtp_url),
    };
    let shutdown = Shutdown::new();
    let worker = notifier::worker(settings, shutdown.clone()).await.unwrap();
    let address = format!("http://127.0.0.1:{}", worker.port());
    tokio::spawn(worker.run_until_stopped());
    let bus = dozen_bus::connect(&bus_database.url.parse().unwrap())
        .await
        .unwrap();
    TestNotifier {
        address,
        db,
        bus,
        shutdown,
        database,
        _bus_database: bus_database,
    }
}

impl TestNotifier {
    /// Publishes `data` as an event, as its producer would; returns the event.
    pub async fn publish<T: EventType>(&self, data: &T) -> Event {
        let event = Event::new("test", data).unwrap();
        self.publish_event(&event).await;
        event
    }

    pub async fn publish_event(&self, event: &Event) {
        // Declared first, as the worker does: a topic keeps nothing for subscriptions to come.
        for sub in notifier::handlers::subscriptions() {
            self.bus.declare(&sub).await.unwrap();
        }
        self.bus
            .publish(&event.event_type, std::slice::from_ref(event))
            .await
            .unwrap();
    }
}

pub fn smtp_url(smtp: &ChildServer) -> String {
    format!("smtp://127.0.0.1:{}", smtp.port())
}
