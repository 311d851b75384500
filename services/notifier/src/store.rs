//! notifier's database: its directory of users and the daily counts.

use dozen_runtime::clock::now_millis;
use sqlx::{Any, AnyConnection, AnyPool, Transaction};

use crate::mail::Mail;

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

/// Keeps `mail` to be sent for `event_id`; `false` when a mail with its id
/// was kept before (the same recipient, for the same reason).
pub async fn queue_mail(
    tx: &mut AnyConnection,
    event_id: &str,
    mail: &Mail,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO mails (id, event_id, recipient, subject, body, state, created_at)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&mail.id)
    .bind(event_id)
    .bind(&mail.to)
    .bind(&mail.subject)
    .bind(&mail.body)
    .bind(now_millis())
    .execute(tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The mails `event_id` asked for that are not sent (nor refused) yet.
pub async fn pending_mails(pool: &AnyPool, event_id: &str) -> Result<Vec<Mail>, sqlx::Error> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT id, recipient, subject, body FROM mails
         WHERE event_id = $1 AND state = 'pending' ORDER BY created_at, id",
    )
    .bind(event_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, to, subject, body)| Mail {
            id,
            to,
            subject,
            body,
        })
        .collect())
}

/// How long a delivery has to send a mail before another may try it (its
/// process may have died): the mailer's SMTP timeout and a margin.
const SENDING_LEASE_MS: i64 = crate::mail::SMTP_TIMEOUT.as_millis() as i64 + 5_000;

/// Whether a delivery may send a pending mail now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This delivery sends it; [`record`] says how it went.
    Mine,
    /// Another delivery is sending it.
    Busy,
    /// It was sent or refused meanwhile.
    Done,
}

/// Takes mail `id` for [`SENDING_LEASE_MS`], so that no other delivery sends it meanwhile.
pub async fn claim_mail(pool: &AnyPool, id: &str) -> Result<Claim, sqlx::Error> {
    let now = now_millis();
    let taken = sqlx::query(
        "UPDATE mails SET sending_until = $2
         WHERE id = $1 AND state = 'pending' AND (sending_until IS NULL OR sending_until < $3)",
    )
    .bind(id)
    .bind(now + SENDING_LEASE_MS)
    .bind(now)
    .execute(pool)
    .await?;
    if taken.rows_affected() == 1 {
        return Ok(Claim::Mine);
    }
    let state: String = sqlx::query_scalar("SELECT state FROM mails WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await?;
    Ok(if state == "pending" {
        Claim::Busy
    } else {
        Claim::Done
    })
}

/// The `Message-ID`s of the mails a delivery took and has not marked: after
/// a crash, the mails the SMTP server may have taken without notifier
/// knowing, which the next delivery sends again.
pub async fn mails_being_sent(pool: &AnyPool) -> Result<Vec<String>, sqlx::Error> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM mails WHERE state = 'pending' AND sending_until IS NOT NULL",
    )
    .fetch_all(pool)
    .await?;
    Ok(ids.iter().map(|id| crate::mail::message_id(id)).collect())
}

/// What came of one try to send a mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sending {
    Sent,
    /// The server refused it for good; it is not tried again.
    Refused,
    /// It may go later.
    Failed,
}

/// Records what came of sending mail `id` (and gives up its claim).
pub async fn record(
    pool: &AnyPool,
    id: &str,
    outcome: Sending,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    let state = match outcome {
        Sending::Sent => "sent",
        Sending::Refused => "refused",
        Sending::Failed => "pending",
    };
    sqlx::query(
        "UPDATE mails SET state = $2, attempts = attempts + 1, last_error = $3, sending_until = NULL,
             done_at = CASE WHEN $2 = 'pending' THEN NULL ELSE $4 END
         WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(error)
    .bind(now_millis())
    .execute(pool)
    .await?;
    Ok(())
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
