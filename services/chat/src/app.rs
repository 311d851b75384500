//! Building and running chat's processes: the web process (API, live
//! stream, outbox relay) and the worker (directory and cards).

use axum::extract::FromRef;
use axum::Router;
use dozen_auth::Keys;
use dozen_bus::{typed, Backing, Consumer, Outbox, Relay};
use dozen_runtime::database::DatabaseError;
use dozen_runtime::http::{service_router, HttpServer, Ops};
use dozen_runtime::service_info;
use dozen_runtime::shutdown::Shutdown;
use sqlx::migrate::Migrator;
use sqlx::AnyPool;
use tokio::task::JoinSet;

use crate::handlers;
use crate::routes::events::Wake;
use crate::settings::{Settings, WorkerSettings};

/// The schema, embedded in the binary; portable across SQLite and PostgreSQL.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: AnyPool,
    pub keys: Keys,
    pub outbox: Outbox,
    pub wake: Wake,
    /// Live streams end when it triggers, so the drain is not held up by them.
    pub shutdown: Shutdown,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl FromRef<AppState> for Keys {
    fn from_ref(state: &AppState) -> Self {
        state.keys.clone()
    }
}

/// A bound, ready-to-run chat web process.
#[derive(Debug)]
pub struct Application {
    server: HttpServer,
    app: Router,
    db: AnyPool,
    relay: Relay,
    shutdown: Shutdown,
}

impl Application {
    /// Binds the port and wires everything; connects to nothing yet.
    pub async fn build(settings: Settings, shutdown: Shutdown) -> anyhow::Result<Self> {
        let Backing {
            db,
            bus,
            metrics,
            readiness,
        } = Backing::attach("chat", &settings.database, &settings.bus, &shutdown).await?;
        let info = service_info!("chat").with_release_id(settings.http.release_id.clone());
        let outbox = Outbox::new();
        let relay = outbox.relay(db.clone(), bus);
        let state = AppState {
            db: db.clone(),
            keys: settings.keys,
            outbox,
            wake: Wake::default(),
            shutdown: shutdown.clone(),
        };
        let app = service_router(
            crate::routes::router(state),
            Ops::new(info, readiness, metrics),
            &settings.http,
        );
        let server = HttpServer::bind(&settings.http).await?;
        Ok(Self {
            server,
            app,
            db,
            relay,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Serves until shutdown and drains; then the relay flushes what the last
    /// requests committed, and the pool closes.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let relay_stop = Shutdown::new();
        let relay = tokio::spawn(self.relay.run(relay_stop.clone()));
        let served = self.server.serve(self.app, self.shutdown).await;
        relay_stop.trigger();
        relay.await?;
        self.db.close().await;
        Ok(served?)
    }
}

/// A bound, ready-to-run chat worker.
pub struct Worker {
    server: HttpServer,
    ops: Router,
    consumers: Vec<Consumer>,
    db: AnyPool,
    shutdown: Shutdown,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("port", &self.server.port())
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub async fn build(settings: WorkerSettings, shutdown: Shutdown) -> anyhow::Result<Self> {
        let Backing {
            db,
            bus,
            metrics,
            readiness,
        } = Backing::attach("chat", &settings.database, &settings.bus, &shutdown).await?;
        let info = service_info!("chat").with_release_id(settings.http.release_id.clone());
        let [directory, cards] = handlers::subscriptions();
        let consumers = vec![
            Consumer::new(bus.clone(), directory, {
                let db = db.clone();
                typed(move |signed_up, _event| {
                    let db = db.clone();
                    async move { handlers::remember_user(&db, signed_up).await }
                })
            }),
            Consumer::new(bus, cards, {
                let db = db.clone();
                typed(move |created, event| {
                    let db = db.clone();
                    async move { handlers::attach_card(&db, created, &event).await }
                })
            }),
        ];
        let ops = service_router(
            Router::new(),
            Ops::new(info, readiness, metrics),
            &settings.http,
        );
        let server = HttpServer::bind(&settings.http).await?;
        Ok(Self {
            server,
            ops,
            consumers,
            db,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Consumes until shutdown; the events in hand finish, then the pool closes.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let mut consumers = JoinSet::new();
        for consumer in self.consumers {
            consumers.spawn(consumer.run(self.shutdown.clone()));
        }
        let served = self.server.serve(self.ops, self.shutdown).await;
        while consumers.join_next().await.is_some() {}
        self.db.close().await;
        Ok(served?)
    }
}

/// The release phase: chat's tables, and the outbox and inbox tables.
pub async fn migrate(db: &AnyPool) -> Result<(), DatabaseError> {
    dozen_bus::outbox::migrate_service(db, &MIGRATOR).await
}
