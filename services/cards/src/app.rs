//! Building and running the cards worker: its consumer, its outbox relay, and
//! an HTTP port for health, readiness and metrics only.

use dozen_bus::{typed, Backing, Consumer, Outbox, Process, Work};
use dozen_events::{MessageEdited, MessageSent};
use dozen_runtime::database::DatabaseError;
use dozen_runtime::service_info;
use dozen_runtime::shutdown::Shutdown;
use sqlx::migrate::Migrator;
use sqlx::AnyPool;

use crate::previews::{self, Context};
use crate::settings::Settings;

/// The schema, embedded in the binary; portable across SQLite and PostgreSQL.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// The worker process (`cards work`), bound and wired; connects to nothing yet.
pub async fn worker(settings: Settings, shutdown: Shutdown) -> anyhow::Result<Process> {
    let backing = Backing::attach("cards", &settings.process, &shutdown).await?;
    let outbox = Outbox::new();
    let relay = backing.relay(&outbox);
    let ctx = Context {
        db: backing.db.clone(),
        fetcher: settings.fetcher,
        outbox,
        locks: Default::default(),
    };
    let [posts, edits] = previews::subscriptions();
    let consumers = vec![
        Consumer::new(backing.bus.clone(), posts, {
            let ctx = ctx.clone();
            typed(move |sent: MessageSent, event| {
                let ctx = ctx.clone();
                async move {
                    previews::previews(&ctx, previews::SUBSCRIPTION, sent.into(), &event).await
                }
            })
        }),
        Consumer::new(
            backing.bus.clone(),
            edits,
            typed(move |edited: MessageEdited, event| {
                let ctx = ctx.clone();
                async move { previews::previews(&ctx, previews::EDITS, edited.into(), &event).await }
            }),
        ),
    ];
    let work = Work {
        relay: Some(relay),
        consumers,
        ..Work::default()
    };
    let info = service_info!("cards");
    Ok(Process::bind(info, &settings.process.http, backing, work, shutdown).await?)
}

/// The release phase: the link cache, and the outbox and inbox tables.
pub async fn migrate(db: &AnyPool) -> Result<(), DatabaseError> {
    dozen_bus::outbox::migrate_service(db, &MIGRATOR).await
}
