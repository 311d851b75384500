//! `message.sent` (and `message.edited`) → a `card.created` for each URL
//! that makes a card, once per message and URL: an edit previews only the
//! links it adds.
//!
//! Pages are fetched before the transaction (a fetch takes seconds; a
//! transaction should not), one fetch per URL at a time in this process, and
//! each outcome cached at once; then the event is claimed in the inbox and the
//! cards put in the outbox, in one transaction. A URL that fails is cached as
//! failed for an hour and yields no card: the event is still acknowledged, so
//! a bad link causes no retry storm, however many messages carry it.

use dozen_bus::{inbox, Event, EventType, HandlerError, Outbox, Subscription, TraceParent};
use dozen_events::{CardCreated, MessageEdited, MessageSent};
use dozen_runtime::clock::{now_millis, now_rfc3339};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use sqlx::AnyPool;

use crate::fetch::Fetcher;
use crate::parse::{preview, Preview};

pub const SUBSCRIPTION: &str = "cards.previews";
pub const EDITS: &str = "cards.edits";
/// URLs of one message that get a card; the rest are ignored.
pub const MAX_URLS: usize = 5;
const CARD_KEPT_MS: i64 = 24 * 3600 * 1000;
const FAILURE_KEPT_MS: i64 = 3600 * 1000;

/// The subscriptions the cards worker consumes: posts, then edits.
pub fn subscriptions() -> [Subscription; 2] {
    [
        Subscription::new(SUBSCRIPTION, MessageSent::TYPE),
        Subscription::new(EDITS, MessageEdited::TYPE),
    ]
}

/// The links of a message, as posted or as edited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    pub message_id: String,
    pub room_id: String,
    pub urls: Vec<String>,
}

impl From<MessageSent> for Links {
    fn from(sent: MessageSent) -> Self {
        Self {
            message_id: sent.message_id,
            room_id: sent.room_id,
            urls: sent.urls,
        }
    }
}

impl From<MessageEdited> for Links {
    fn from(edited: MessageEdited) -> Self {
        Self {
            message_id: edited.message_id,
            room_id: edited.room_id,
            urls: edited.urls,
        }
    }
}

/// What a URL gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Card(Preview),
    Failed(String),
}

/// Locks that let one fetch of a URL run at a time (by hash: a few URLs share one).
#[derive(Debug, Clone)]
pub struct FetchLocks(Arc<[tokio::sync::Mutex<()>]>);

impl Default for FetchLocks {
    fn default() -> Self {
        Self((0..64).map(|_| tokio::sync::Mutex::new(())).collect())
    }
}

impl FetchLocks {
    async fn lock(&self, url: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        url.hash(&mut hasher);
        self.0[hasher.finish() as usize % self.0.len()].lock().await
    }
}

#[derive(Debug, Clone)]
pub struct Context {
    pub db: AnyPool,
    pub fetcher: Fetcher,
    pub outbox: Outbox,
    pub locks: FetchLocks,
}

/// The cached outcome of `url`, while it is fresh.
async fn cached(db: &AnyPool, url: &str) -> Result<Option<Outcome>, sqlx::Error> {
    type Row = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        i64,
    );
    let row: Option<Row> = sqlx::query_as(
        "SELECT title, description, image, failure, fetched_at FROM link_cache WHERE url = $1",
    )
    .bind(url)
    .fetch_optional(db)
    .await?;
    let now = now_millis();
    Ok(row.and_then(
        |(title, description, image, failure, fetched_at)| match (title, failure) {
            (Some(title), _) if now - fetched_at < CARD_KEPT_MS => Some(Outcome::Card(Preview {
                title,
                description,
                image,
            })),
            (None, Some(failure)) if now - fetched_at < FAILURE_KEPT_MS => {
                Some(Outcome::Failed(failure))
            }
            _ => None,
        },
    ))
}

async fn remember(db: &AnyPool, url: &str, outcome: &Outcome) -> Result<(), sqlx::Error> {
    let (title, description, image, failure) = match outcome {
        Outcome::Card(p) => (
            Some(p.title.clone()),
            p.description.clone(),
            p.image.clone(),
            None,
        ),
        Outcome::Failed(why) => (None, None, None, Some(why.clone())),
    };
    sqlx::query(
        "INSERT INTO link_cache (url, title, description, image, failure, fetched_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (url) DO UPDATE SET title = excluded.title, description = excluded.description,
             image = excluded.image, failure = excluded.failure, fetched_at = excluded.fetched_at",
    )
    .bind(url)
    .bind(title)
    .bind(description)
    .bind(image)
    .bind(failure)
    .bind(now_millis())
    .execute(db)
    .await?;
    Ok(())
}

/// The outcome of `url`: cached, or fetched (once at a time) and cached.
async fn outcome(ctx: &Context, url: &str) -> Result<Outcome, sqlx::Error> {
    if let Some(outcome) = cached(&ctx.db, url).await? {
        return Ok(outcome);
    }
    let _only_fetch = ctx.locks.lock(url).await;
    // Whoever held the lock may have fetched it meanwhile.
    if let Some(outcome) = cached(&ctx.db, url).await? {
        return Ok(outcome);
    }
    let outcome = fetch(&ctx.fetcher, url).await;
    remember(&ctx.db, url, &outcome).await?;
    Ok(outcome)
}

async fn fetch(fetcher: &Fetcher, url: &str) -> Outcome {
    match fetcher.fetch(url).await {
        Ok(page) => match preview(&page.html, &page.url) {
            Some(card) => Outcome::Card(card),
            None => Outcome::Failed("the page has no title".into()),
        },
        Err(error) => {
            tracing::info!(url, error = %error, "no card");
            Outcome::Failed(error.to_string())
        }
    }
}

/// Records that `message_id` has a card for `url`; `false` if it had.
async fn first_card(
    tx: &mut sqlx::AnyConnection,
    message_id: &str,
    url: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO message_cards (message_id, url, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (message_id, url) DO NOTHING",
    )
    .bind(message_id)
    .bind(url)
    .bind(now_millis())
    .execute(tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Handles one `message.sent` or `message.edited` of `subscription`.
pub async fn previews(
    ctx: &Context,
    subscription: &str,
    links: Links,
    event: &Event,
) -> Result<(), HandlerError> {
    let mut outcomes = Vec::new();
    for url in links.urls.iter().take(MAX_URLS) {
        outcomes.push((url, outcome(ctx, url).await?));
    }
    let Some(mut tx) = inbox::claim(&ctx.db, subscription, &event.id).await? else {
        return Ok(());
    };
    let trace = event.traceparent.as_deref().and_then(TraceParent::parse);
    for (url, outcome) in &outcomes {
        if let Outcome::Card(card) = outcome {
            if !first_card(&mut tx, &links.message_id, url).await? {
                continue;
            }
            let created = CardCreated {
                message_id: links.message_id.clone(),
                room_id: links.room_id.clone(),
                url: (*url).clone(),
                title: card.title.clone(),
                description: card.description.clone(),
                image: card.image.clone(),
                created_at: now_rfc3339(),
            };
            let mut card_event = Event::new("cards", &created)?;
            if let Some(trace) = &trace {
                card_event = card_event.with_trace(trace);
            }
            ctx.outbox.enqueue(&mut tx, &card_event).await?;
        }
    }
    tx.commit().await?;
    ctx.outbox.committed();
    Ok(())
}
