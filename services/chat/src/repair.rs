//! `chat repair`: chat's derived state computed again from its sources,
//! after events were lost or data was restored by hand.
//!
//! - **Room numbers**: a room's `last_seq` is at least the number of every
//!   message and event in it (else the next post would collide), and no
//!   read marker is past it.
//! - **Directory**: an author chat has no name for is known by the name on
//!   their newest message (the signup event, if it comes, still wins);
//!   members who never posted are counted — `accounts republish --topic
//!   user.signed_up` brings them.
//! - **Cards**: a message with links and no card at all has its
//!   `message.sent` and `message.edited` events sent again from chat's
//!   outbox log (same ids), so cards previews them if it never had them; if
//!   cards made the card and its `card.created` was lost, `cards republish`
//!   is the repair.
//!
//! Every step is safe to repeat; `--dry-run` counts and changes nothing.

use std::collections::HashSet;
use std::fmt;
use std::io::IsTerminal;

use dozen_bus::republish::{self, Selection, Summary};
use dozen_bus::{Bus, EventType, ReleaseSettings};
use dozen_events::{MessageEdited, MessageSent};
use dozen_runtime::text::counted;
use sqlx::AnyPool;

use crate::{store, text};

/// What `chat repair` found, and mended unless dry.
#[derive(Debug, Default)]
pub struct Repaired {
    pub dry_run: bool,
    /// Rooms whose last number was behind what they hold.
    pub rooms_renumbered: u64,
    /// Read markers that were past their room's last number.
    pub markers_lowered: u64,
    /// Authors put in the directory by the name on their messages.
    pub users_learned: u64,
    /// Members chat still has no name for.
    pub members_unknown: u64,
    /// Messages with links and no card.
    pub messages_without_cards: u64,
    /// Their events, sent again from the outbox log.
    pub events: Summary,
}

impl fmt::Display for Repaired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mended, learned) = if self.dry_run {
            ("to mend", "to learn")
        } else {
            ("mended", "learned")
        };
        writeln!(
            f,
            "room numbers: {} and {} {mended}",
            counted(self.rooms_renumbered, "room", "rooms"),
            counted(self.markers_lowered, "read marker", "read markers")
        )?;
        write!(
            f,
            "directory: {} {learned} by the name on their messages",
            counted(self.users_learned, "author", "authors")
        )?;
        if self.members_unknown > 0 {
            write!(
                f,
                "; {} still unknown by name (accounts republish --topic user.signed_up)",
                counted(self.members_unknown, "member", "members")
            )?;
        }
        writeln!(f)?;
        // Chat cannot tell an event cards never had from links that give no
        // card (a page down, not HTML): both are asked again, and cards
        // ignores the copy of an event it handled.
        write!(
            f,
            "cards: {} with links and no card (a lost event, or links that give none); {}",
            counted(self.messages_without_cards, "message", "messages"),
            self.events
        )
    }
}

/// Runs every step on chat's database `db`, sending events again on `bus`.
/// `since` bounds the messages the cards step looks at (ms since the epoch).
pub async fn run(
    db: &AnyPool,
    bus: &dyn Bus,
    since: Option<i64>,
    dry_run: bool,
    on_sent: impl FnMut(u64),
) -> Result<Repaired, republish::RepublishError> {
    let mut repaired = Repaired {
        dry_run,
        ..Repaired::default()
    };
    (repaired.rooms_renumbered, repaired.markers_lowered) = room_numbers(db, dry_run).await?;
    (repaired.users_learned, repaired.members_unknown) = directory(db, dry_run).await?;
    let uncarded = messages_without_cards(db, since.unwrap_or(0)).await?;
    repaired.messages_without_cards = uncarded.len() as u64;
    let selection = Selection {
        since,
        dry_run,
        ..Selection::default()
    };
    repaired.events = republish::republish_where(
        db,
        bus,
        &selection,
        |topic, event| {
            (topic == MessageSent::TYPE || topic == MessageEdited::TYPE)
                && event.data["message_id"]
                    .as_str()
                    .is_some_and(|id| uncarded.contains(id))
        },
        on_sent,
    )
    .await?;
    Ok(repaired)
}

/// The highest number a room holds, from its events and its messages.
const HELD: &str = "(SELECT MAX(n) FROM (
        SELECT MAX(seq) AS n FROM room_events e WHERE e.room_id = rooms.id
        UNION ALL SELECT MAX(seq) AS n FROM messages m WHERE m.room_id = rooms.id) AS held)";

async fn room_numbers(db: &AnyPool, dry_run: bool) -> Result<(u64, u64), sqlx::Error> {
    const MARKER_PAST: &str =
        "last_read_seq > (SELECT r.last_seq FROM rooms r WHERE r.id = members.room_id)";
    if dry_run {
        let rooms: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM rooms WHERE last_seq < {HELD}"
        ))
        .fetch_one(db)
        .await?;
        let markers: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM members WHERE {MARKER_PAST}"))
                .fetch_one(db)
                .await?;
        return Ok((rooms as u64, markers as u64));
    }
    let rooms = sqlx::query(&format!(
        "UPDATE rooms SET last_seq = {HELD} WHERE last_seq < {HELD}"
    ))
    .execute(db)
    .await?
    .rows_affected();
    let markers = sqlx::query(&format!(
        "UPDATE members SET last_read_seq =
             (SELECT r.last_seq FROM rooms r WHERE r.id = members.room_id)
         WHERE {MARKER_PAST}"
    ))
    .execute(db)
    .await?
    .rows_affected();
    Ok((rooms, markers))
}

async fn directory(db: &AnyPool, dry_run: bool) -> Result<(u64, u64), sqlx::Error> {
    let authors: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.author_id, m.author_username FROM messages m
         WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = m.author_id)
         ORDER BY m.sent_at DESC",
    )
    .fetch_all(db)
    .await?;
    let mut learned = HashSet::new();
    for (id, username) in authors {
        // Newest first: the name an author last posted under.
        if learned.insert(id.clone()) && !dry_run {
            store::learn_user(db, &id, &username).await?;
        }
    }
    let unknown: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT m.user_id) FROM members m
         WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = m.user_id)",
    )
    .fetch_one(db)
    .await?;
    // A dry run has put no one in: those it would learn are among the unknown.
    let still_unknown = if dry_run {
        let learnable_members: i64 = sqlx::query_scalar(
            "SELECT COUNT(DISTINCT m.user_id) FROM members m
             WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = m.user_id)
             AND EXISTS (SELECT 1 FROM messages x WHERE x.author_id = m.user_id)",
        )
        .fetch_one(db)
        .await?;
        unknown - learnable_members
    } else {
        unknown
    };
    Ok((learned.len() as u64, still_unknown.max(0) as u64))
}

/// Ids of the messages sent at or after `since` whose text has links and
/// that have no card.
async fn messages_without_cards(db: &AnyPool, since: i64) -> Result<HashSet<String>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.id, m.text FROM messages m WHERE m.sent_at >= $1
         AND NOT EXISTS (SELECT 1 FROM cards c WHERE c.message_id = m.id)",
    )
    .bind(since)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter(|(_, text)| !text::urls(text).is_empty())
        .map(|(id, _)| id)
        .collect())
}

/// `chat repair [--since …] [--dry-run]`: prints what it found and mended.
pub async fn command(
    settings: ReleaseSettings,
    since: Option<i64>,
    dry_run: bool,
) -> anyhow::Result<()> {
    dozen_runtime::logging::init("chat", &settings.migrate.log);
    let db = dozen_runtime::database::connect_lazy(&settings.migrate.database)?;
    let bus = dozen_bus::connect(&settings.bus.url).await?;
    let progress = if std::io::stdout().is_terminal() {
        indicatif::ProgressBar::new_spinner().with_message("events republished")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let repaired = run(&db, bus.as_ref(), since, dry_run, |n| progress.inc(n)).await?;
    progress.finish_and_clear();
    db.close().await;
    println!("{repaired}");
    Ok(())
}
