//! Building and running chat's processes: the web process (API, live
//! stream, outbox relay) and the worker (directory and cards).

use std::sync::Arc;

use axum::extract::FromRef;
use dozen_auth::Keys;
use dozen_bus::{typed, Backing, Consumer, Outbox, Process, Work};
use dozen_events::CardCreated;
use dozen_runtime::database::DatabaseError;
use dozen_runtime::service_info;
use dozen_runtime::shutdown::Shutdown;
use sqlx::migrate::Migrator;
use sqlx::AnyPool;

use crate::handlers;
use crate::known::Known;
use crate::live::{Announcer, Live};
use crate::posting::Poster;
use crate::settings::Settings;
use crate::WorkerSettings;

/// The schema, embedded in the binary; portable across SQLite and PostgreSQL.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// What every handler can reach. Cheap to clone (one `Arc`): axum clones
/// it for every request.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    pub db: AnyPool,
    pub keys: Keys,
    pub outbox: Outbox,
    /// Presence, typing, and the word between instances that a room changed.
    pub live: Live,
    /// Live streams end when it triggers, so the drain is not held up by them.
    pub shutdown: Shutdown,
    /// Memberships and names already read.
    pub known: Known,
    /// This process's writer of posts (group commit).
    pub poster: Poster,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
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

/// The web process (`chat serve`), bound and wired; connects to nothing yet.
/// Its live streams end as soon as the drain starts.
pub async fn web(settings: Settings, shutdown: Shutdown) -> anyhow::Result<Process> {
    let backing = Backing::attach("chat", &settings.process, &shutdown).await?;
    let outbox = Outbox::new();
    let relay = backing.relay(&outbox);
    let cache = dozen_cache::Cache::connect(&settings.cache.url)?;
    let live = Live::start(
        cache,
        backing.db.clone(),
        settings.presence_ttl,
        &backing.metrics,
        shutdown.clone(),
    );
    let state = AppState(Arc::new(Shared {
        db: backing.db.clone(),
        keys: settings.keys,
        poster: Poster::start(backing.db.clone(), outbox.clone(), live.clone()),
        outbox,
        live,
        shutdown: shutdown.clone(),
        known: Known::default(),
    }));
    let work = Work {
        api: dozen_runtime::http::also_under(crate::manifest::ROUTE, crate::routes::router(state)),
        relay: Some(relay),
        consumers: Vec::new(),
    };
    let info = service_info!("chat");
    Ok(Process::bind(info, &settings.process.http, backing, work, shutdown).await?)
}

/// The worker process (`chat work`), bound and wired; connects to nothing yet.
pub async fn worker(settings: WorkerSettings, shutdown: Shutdown) -> anyhow::Result<Process> {
    let backing = Backing::attach("chat", &settings.process, &shutdown).await?;
    let announcer = Announcer::new(dozen_cache::Cache::connect(&settings.cache.url)?);
    let [directory, cards] = handlers::subscriptions();
    let db = backing.db.clone();
    let consumers = vec![
        Consumer::new(backing.bus.clone(), directory, {
            let db = db.clone();
            typed(move |signed_up, _event| {
                let db = db.clone();
                async move { handlers::remember_user(&db, signed_up).await }
            })
        }),
        Consumer::new(backing.bus.clone(), cards, {
            typed(move |created: CardCreated, event| {
                let (db, announcer) = (db.clone(), announcer.clone());
                async move {
                    let room_id = created.room_id.clone();
                    if let Some(seq) = handlers::attach_card(&db, created, &event).await? {
                        announcer.changed(&room_id, seq).await;
                    }
                    Ok(())
                }
            })
        }),
    ];
    let work = Work {
        consumers,
        ..Work::default()
    };
    let info = service_info!("chat");
    Ok(Process::bind(info, &settings.process.http, backing, work, shutdown).await?)
}

/// The release phase: chat's tables, and the outbox and inbox tables.
pub async fn migrate(db: &AnyPool) -> Result<(), DatabaseError> {
    dozen_bus::outbox::migrate_service(db, &MIGRATOR).await
}
