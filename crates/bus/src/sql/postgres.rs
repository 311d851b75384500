//! Waking consumers with PostgreSQL's `LISTEN/NOTIFY`.
//!
//! Publishing sends `NOTIFY dozen_bus, '<topic>'` in its transaction, so the
//! notification leaves at commit. One listener per bus wakes the local
//! consumers of that topic; after a lost connection it wakes them all, since
//! notifications sent meanwhile are gone.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::AnyConnection;

use super::wakers::Wakers;

const CHANNEL: &str = "dozen_bus";

pub(crate) async fn notify(conn: &mut AnyConnection, topic: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(topic)
        .execute(conn)
        .await
        .map(|_| ())
}

pub(crate) fn listen(url: String, wakers: Arc<Wakers>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let mut listener = match PgListener::connect(&url).await {
                Ok(listener) => listener,
                Err(_) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if listener.listen(CHANNEL).await.is_err() {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            wakers.wake_all();
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => wakers.wake(notification.payload()),
                    // The connection was lost and re-established: we may have missed some.
                    Ok(None) => wakers.wake_all(),
                    Err(_) => break,
                }
            }
        }
    })
}
