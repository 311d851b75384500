//! Waking consumers when another process commits to the SQLite file.
//!
//! `PRAGMA data_version` changes whenever another connection commits. One task
//! per bus checks it, and only while some consumer is idle: every 10 ms for a
//! second after the last change, then every 50 ms. A busy bus answers fast; a
//! quiet one costs a few cheap queries a second, and a new event still
//! reaches a consumer in another process within 50 ms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::AnyPool;

use super::wakers::Wakers;

const POLL_BUSY: Duration = Duration::from_millis(10);
const POLL_QUIET: Duration = Duration::from_millis(50);
/// How long after the last change polling stays fast.
const BUSY_FOR: Duration = Duration::from_secs(1);

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
            let mut changed_at = Instant::now();
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
                    changed_at = Instant::now();
                }
                let busy = changed_at.elapsed() < BUSY_FOR;
                tokio::time::sleep(if busy { POLL_BUSY } else { POLL_QUIET }).await;
            }
        }
    })
}
