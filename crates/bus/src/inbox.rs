//! The inbox: an event's effect happens once, however often it is delivered.
//!
//! [`claim`] records the event id in the consumer's own database and hands
//! back the open transaction; the handler makes its change in that same
//! transaction and commits. A redelivered event finds its id recorded and is
//! skipped; a handler that fails rolls the record back with its change.

use sqlx::{Any, AnyPool, Transaction};

use dozen_runtime::clock::now_millis;

/// Begins the effect of `event_id` for `subscription`, or `None` when it
/// already happened. Commit the transaction to make the effect (and the
/// record of it) permanent.
pub async fn claim(
    pool: &AnyPool,
    subscription: &str,
    event_id: &str,
) -> Result<Option<Transaction<'static, Any>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let recorded = sqlx::query(
        "INSERT INTO bus_inbox (subscription, event_id, handled_at) VALUES ($1, $2, $3)
         ON CONFLICT (subscription, event_id) DO NOTHING",
    )
    .bind(subscription)
    .bind(event_id)
    .bind(now_millis())
    .execute(&mut *tx)
    .await?;
    if recorded.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(None);
    }
    Ok(Some(tx))
}
