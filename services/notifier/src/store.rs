//! notifier's database: its directory of users and the daily counts.

use sqlx::{Any, AnyConnection, AnyPool, Transaction};

pub type Tx = Transaction<'static, Any>;

/// A counter of the daily report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Signups,
    Messages,
    Mentions,
    Cards,
}

impl Count {
    pub const ALL: [Count; 4] = [
        Count::Signups,
        Count::Messages,
        Count::Mentions,
        Count::Cards,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Count::Signups => "signups",
            Count::Messages => "messages",
            Count::Mentions => "mentions",
            Count::Cards => "cards",
        }
    }
}

/// The UTC day (`YYYY-MM-DD`) of an RFC 3339 time.
pub fn day_of(time: &str) -> String {
    time.get(..10).unwrap_or_default().to_owned()
}

/// Adds `by` to a day's counter, in the handler's transaction.
pub async fn count(
    tx: &mut Transaction<'static, Any>,
    day: &str,
    counter: Count,
    by: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO daily_counts (day, name, count) VALUES ($1, $2, $3)
         ON CONFLICT (day, name) DO UPDATE SET count = daily_counts.count + excluded.count",
    )
    .bind(day)
    .bind(counter.name())
    .bind(by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Adds or updates a user in the directory.
pub async fn remember_user(
    tx: &mut AnyConnection,
    id: &str,
    username: &str,
    email: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, username, email) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET username = excluded.username, email = excluded.email",
    )
    .bind(id)
    .bind(username)
    .bind(email)
    .execute(tx)
    .await?;
    Ok(())
}

/// The e-mail address of `username`, if notifier has heard of them.
pub async fn email_of(
    tx: &mut AnyConnection,
    username: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT email FROM users WHERE username = $1")
        .bind(username)
        .fetch_optional(tx)
        .await
}

/// Records that `username` is mailed about `message_id`; `false` when
/// they were already (by the post or an earlier edit).
pub async fn first_mention_mail(
    tx: &mut AnyConnection,
    message_id: &str,
    username: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO mention_mails (message_id, username, sent_at) VALUES ($1, $2, $3)
         ON CONFLICT (message_id, username) DO NOTHING",
    )
    .bind(message_id)
    .bind(username)
    .bind(dozen_runtime::clock::now_millis())
    .execute(tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The sum of each counter over the days `from..=to` (`YYYY-MM-DD`).
pub async fn totals(
    pool: &AnyPool,
    from: &str,
    to: &str,
) -> Result<Vec<(Count, i64)>, sqlx::Error> {
    let mut totals = Vec::new();
    for counter in Count::ALL {
        let total: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM daily_counts
             WHERE name = $1 AND day >= $2 AND day <= $3",
        )
        .bind(counter.name())
        .bind(from)
        .bind(to)
        .fetch_one(pool)
        .await?;
        totals.push((counter, total));
    }
    Ok(totals)
}
