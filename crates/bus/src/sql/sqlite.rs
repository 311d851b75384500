//! Waking consumers when another process commits to the SQLite file.
//!
//! `PRAGMA data_version` changes whenever another connection commits. One task
//! per bus checks it every few milliseconds, and only while some consumer is
//! idle, so an idle process costs nothing and a new event reaches a consumer
//! in another process within about one polling interval.

use std::sync::Arc;
use std::time::Duration;

use sqlx::AnyPool;

use super::wakers::Wakers;

const POLL_INTERVAL: Duration = Duration::from_millis(10);

pub(crate) fn watch_commits(pool: AnyPool, wakers: Arc<Wakers>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            wakers.someone_waiting().await;
            // data_version is per connection: hold one while watching.
            let Ok(mut conn) = pool.acquire().await else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            let mut last: Option<i64> = None;
            while wakers.anyone_waiting() {
                let Ok(version) = sqlx::query_scalar::<_, i64>("PRAGMA data_version")
                    .fetch_one(&mut *conn)
                    .await
                else {
                    break;
                };
                // The first reading after idling is a new baseline: wake once,
                // in case a commit slipped in before it.
                if last != Some(version) {
                    wakers.wake_all();
                    last = Some(version);
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        }
    })
}
