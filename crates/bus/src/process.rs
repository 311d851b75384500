//! A service's long-running process, whatever its type: a web process (an
//! API and an outbox relay) or a worker (consumers, perhaps a relay, and a
//! port for health, readiness and metrics only). The order of its stop is
//! the same for both, and lives here once.

use axum::Router;
use dozen_manifest::Var;
use dozen_runtime::config::{ConfigError, Env, FromEnv};
use std::time::{Duration, Instant};

use dozen_runtime::database::{DatabaseError, DatabaseSettings, MigrateSettings};
use dozen_runtime::http::{service_router, HttpServer, HttpSettings, Ops};
use dozen_runtime::logging::LogSettings;
use dozen_runtime::shutdown::Shutdown;
use dozen_runtime::ServiceInfo;
use sqlx::AnyPool;
use tokio::task::JoinSet;

use crate::backing::Backing;
use crate::consumer::Consumer;
use crate::outbox::Relay;
use crate::settings::BusSettings;
use crate::subscription::Subscription;

/// What every long-running process reads from the environment: how it logs,
/// its port, its database and the bus. A service's settings add their own.
#[derive(Debug)]
pub struct ProcessSettings {
    pub log: LogSettings,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub bus: BusSettings,
}

impl FromEnv for ProcessSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            log: LogSettings::from_env(env)?,
            http: HttpSettings::from_env(env)?,
            database: DatabaseSettings::from_env(env)?,
            bus: BusSettings::from_env(env)?,
        })
    }
}

impl ProcessSettings {
    /// The variables [`ProcessSettings::from_env`] reads, for the service's manifest.
    pub fn vars() -> Vec<Var> {
        [
            LogSettings::vars(),
            HttpSettings::vars(),
            DatabaseSettings::vars(),
            BusSettings::vars(),
        ]
        .concat()
    }
}

/// What `<service> migrate` reads when the service consumes events (its
/// database, and the bus where its subscriptions are declared), and what
/// `<service> republish` reads (the outbox's database, and the bus).
#[derive(Debug)]
pub struct ReleaseSettings {
    pub migrate: MigrateSettings,
    pub bus: BusSettings,
}

impl FromEnv for ReleaseSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            migrate: MigrateSettings::from_env(env)?,
            bus: BusSettings::from_env(env)?,
        })
    }
}

/// How long the release phase waits for the bus before it fails.
const RELEASE_BUS_PATIENCE: Duration = Duration::from_secs(60);

/// The release phase of a service that consumes events: its migrations,
/// then its `subscriptions` declared (idempotent), so that a subscription
/// exists before the first event it must see is published, whichever
/// process starts first. With `create=false` in an `sns+sqs://` URL the
/// infrastructure made them, and they are not declared here.
///
/// Errors: the migrations failed, or the bus did not take a declaration
/// within a minute.
pub async fn release_phase<F, Fut>(
    service: &'static str,
    settings: ReleaseSettings,
    subscriptions: &[Subscription],
    migrate: F,
) -> anyhow::Result<()>
where
    F: FnOnce(AnyPool) -> Fut,
    Fut: std::future::Future<Output = Result<(), DatabaseError>>,
{
    use anyhow::Context;
    dozen_runtime::command::release_phase(service, settings.migrate, migrate).await?;
    if !settings.bus.url.creates_resources() {
        return Ok(());
    }
    let bus = crate::settings::connect(&settings.bus.url).await?;
    let deadline = Instant::now() + RELEASE_BUS_PATIENCE;
    for sub in subscriptions {
        let mut pause = Duration::from_millis(200);
        loop {
            match bus.declare(sub).await {
                Ok(()) => break,
                Err(error) if Instant::now() < deadline => {
                    tracing::warn!(subscription = sub.name, %error, "cannot declare the subscription yet");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(error) => return Err(error).with_context(|| format!("declaring {}", sub.name)),
            }
        }
    }
    tracing::info!(
        subscriptions = subscriptions.len(),
        "subscriptions declared"
    );
    Ok(())
}

/// What a process does beyond the standard routes.
#[derive(Debug, Default)]
pub struct Work {
    /// The service's own routes (none for a worker).
    pub api: Router,
    /// Publishes what the process commits to its outbox.
    pub relay: Option<Relay>,
    pub consumers: Vec<Consumer>,
}

/// A bound, ready-to-run process.
pub struct Process {
    server: HttpServer,
    router: Router,
    db: AnyPool,
    work: Work,
    shutdown: Shutdown,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("port", &self.server.port())
            .field("consumers", &self.work.consumers.len())
            .finish_non_exhaustive()
    }
}

impl Process {
    /// Binds `PORT` and wires `work` with the standard routes; connects to nothing yet.
    pub async fn bind(
        info: ServiceInfo,
        http: &HttpSettings,
        backing: Backing,
        mut work: Work,
        shutdown: Shutdown,
    ) -> std::io::Result<Self> {
        let info = info.with_release_id(http.release_id.clone());
        let api = std::mem::take(&mut work.api);
        let mut readiness = backing.readiness;
        if !work.consumers.is_empty() {
            // Ready to consume: the bus answers, and every consumer can take events.
            readiness =
                readiness.with_ping(
                    "bus",
                    backing.bus.clone(),
                    |bus| async move { bus.ping().await },
                );
            let healths: Vec<_> = work.consumers.iter().map(Consumer::health).collect();
            // Ready only while every consumer can take events.
            readiness = readiness.with_check("consumers", move || {
                let problems: Vec<String> = healths.iter().filter_map(|h| h.problem()).collect();
                async move {
                    if problems.is_empty() {
                        Ok(())
                    } else {
                        Err(problems.join("; "))
                    }
                }
            });
        }
        let router = service_router(api, Ops::new(info, readiness, backing.metrics), http);
        let server = HttpServer::bind(http).await?;
        Ok(Self {
            server,
            router,
            db: backing.db,
            work,
            shutdown,
        })
    }

    /// `<service> serve` or `work`: logs and signal handling set up, then the
    /// process `build` makes runs until stopped.
    pub async fn run<F, Fut>(
        service: &'static str,
        log: &LogSettings,
        build: F,
    ) -> anyhow::Result<()>
    where
        F: FnOnce(Shutdown) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<Process>>,
    {
        let shutdown = dozen_runtime::command::start(service, log);
        build(shutdown).await?.run_until_stopped().await?;
        tracing::info!("stopped");
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Runs until shutdown, then stops in order: the server drains its
    /// requests and the consumers settle the events in hand; then the relay
    /// publishes what they committed, and the pool closes.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let relay_stop = Shutdown::new();
        let relay = self
            .work
            .relay
            .map(|relay| tokio::spawn(relay.run(relay_stop.clone())));
        let mut consumers = JoinSet::new();
        for consumer in self.work.consumers {
            consumers.spawn(consumer.run(self.shutdown.clone()));
        }
        let served = self.server.serve(self.router, self.shutdown).await;
        while consumers.join_next().await.is_some() {}
        relay_stop.trigger();
        if let Some(relay) = relay {
            relay.await?;
        }
        self.db.close().await;
        Ok(served?)
    }
}
