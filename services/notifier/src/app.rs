//! Building and running the notifier worker: its consumers, and an HTTP port
//! for health, readiness and metrics only.

use std::sync::Arc;

use dozen_bus::{typed, Backing, Consumer, Process, Work};
use dozen_runtime::database::DatabaseError;
use dozen_runtime::service_info;
use dozen_runtime::shutdown::Shutdown;
use sqlx::migrate::Migrator;
use sqlx::AnyPool;

use crate::handlers::{self, Context};
use crate::mail::Mailer;
use crate::settings::Settings;

/// The schema, embedded in the binary; portable across SQLite and PostgreSQL.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// The worker process (`notifier work`), bound and wired; connects to nothing yet.
pub async fn worker(settings: Settings, shutdown: Shutdown) -> anyhow::Result<Process> {
    let mut backing = Backing::attach("notifier", &settings.process, &shutdown).await?;
    let mailer = Arc::new(Mailer::new(&settings.mail)?);
    backing.readiness = backing
        .readiness
        .with_ping("mail", mailer.clone(), |mailer| async move {
            mailer.ping().await
        });
    let ctx = Context {
        db: backing.db.clone(),
        mailer,
    };
    let [welcome, mentions, cards, edits] = handlers::subscriptions();
    let consumers = vec![
        Consumer::new(backing.bus.clone(), welcome, {
            let ctx = ctx.clone();
            typed(move |data, event| {
                let ctx = ctx.clone();
                async move { handlers::welcome(&ctx, data, &event).await }
            })
        }),
        Consumer::new(backing.bus.clone(), mentions, {
            let ctx = ctx.clone();
            typed(move |data, event| {
                let ctx = ctx.clone();
                async move { handlers::mentions(&ctx, data, &event).await }
            })
        }),
        Consumer::new(backing.bus.clone(), cards, {
            let ctx = ctx.clone();
            typed(move |data, event| {
                let ctx = ctx.clone();
                async move { handlers::card(&ctx, data, &event).await }
            })
        }),
        Consumer::new(backing.bus.clone(), edits, {
            let ctx = ctx.clone();
            typed(move |data, event| {
                let ctx = ctx.clone();
                async move { handlers::edited(&ctx, data, &event).await }
            })
        }),
    ];
    let work = Work {
        consumers,
        ..Work::default()
    };
    let info = service_info!("notifier");
    Ok(Process::bind(info, &settings.process.http, backing, work, shutdown).await?)
}

/// The release phase: applies the embedded migrations and creates the inbox tables.
pub async fn migrate(db: &AnyPool) -> Result<(), DatabaseError> {
    dozen_bus::outbox::migrate_service(db, &MIGRATOR).await
}
