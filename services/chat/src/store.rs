//! chat's tables. SQL here runs on SQLite and PostgreSQL alike.

use std::collections::HashMap;
use std::fmt::Write as _;

use dozen_runtime::clock::{now_millis, rfc3339_from_millis};
use sqlx::{Any, AnyPool, Executor, FromRow, Transaction};

use crate::model::{kind, Author, Card, Member, Message, MessageDeleted, Room};

pub type Tx = Transaction<'static, Any>;

pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

// --- the directory of users -------------------------------------------------

/// Records `id → username`; the signup event is the authority, so it overwrites.
pub async fn remember_user<'e>(
    db: impl Executor<'e, Database = Any>,
    id: &str,
    username: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO users (id, username) VALUES ($1, $2)
         ON CONFLICT (id) DO UPDATE SET username = excluded.username",
    )
    .bind(id)
    .bind(username)
    .execute(db)
    .await?;
    Ok(())
}

/// Records `id → username` unless chat knows `id` already: what a token
/// accounts signed says, until (or in case) the signup event arrives.
pub async fn learn_user<'e>(
    db: impl Executor<'e, Database = Any>,
    id: &str,
    username: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO users (id, username) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
        .bind(id)
        .bind(username)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn username(db: &AnyPool, id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

// --- rooms and members ------------------------------------------------------

#[derive(Debug, FromRow)]
struct RoomRow {
    id: String,
    name: String,
    created_by: String,
    created_at: i64,
    last_seq: i64,
    members: i64,
    joined: i64,
    last_read_seq: i64,
    unread: i64,
}

impl From<RoomRow> for Room {
    fn from(row: RoomRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            created_by: row.created_by,
            created_at: rfc3339_from_millis(row.created_at),
            members: row.members,
            joined: row.joined > 0,
            last_seq: row.last_seq,
            last_read_seq: row.last_read_seq,
            unread: row.unread,
        }
    }
}

/// A room as `$1` sees it; unread counts only others' messages after the
/// viewer's read marker.
const ROOM_SELECT: &str = "SELECT r.id, r.name, r.created_by, r.created_at, r.last_seq,
        (SELECT COUNT(*) FROM members m WHERE m.room_id = r.id) AS members,
        CAST(CASE WHEN me.user_id IS NULL THEN 0 ELSE 1 END AS BIGINT) AS joined,
        CAST(COALESCE(me.last_read_seq, 0) AS BIGINT) AS last_read_seq,
        CAST(CASE WHEN me.user_id IS NULL THEN 0 ELSE
            (SELECT COUNT(*) FROM messages g
             WHERE g.room_id = r.id AND g.seq > me.last_read_seq AND g.author_id <> me.user_id)
        END AS BIGINT) AS unread
    FROM rooms r LEFT JOIN members me ON me.room_id = r.id AND me.user_id = $1";

/// Creates a room with its creator as first member. `Ok(false)`: the name
/// (or another with the same `key`) is taken.
pub async fn create_room(
    db: &AnyPool,
    id: &str,
    name: &str,
    key: &str,
    creator: &str,
) -> Result<bool, sqlx::Error> {
    let now = now_millis();
    let mut tx = db.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO rooms (id, name, name_key, created_by, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(name)
    .bind(key)
    .bind(creator)
    .bind(now)
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(e) if is_unique_violation(&e) => return Ok(false),
        other => other?,
    };
    sqlx::query("INSERT INTO members (room_id, user_id, joined_at) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(creator)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// The rooms `viewer` has not joined, newest first.
pub async fn other_rooms(db: &AnyPool, viewer: &str, limit: i64) -> Result<Vec<Room>, sqlx::Error> {
    let rows: Vec<RoomRow> = sqlx::query_as(&format!(
        "{ROOM_SELECT} WHERE me.user_id IS NULL ORDER BY r.created_at DESC, r.id DESC LIMIT $2"
    ))
    .bind(viewer)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Room::from).collect())
}

/// The rooms `viewer` is a member of, newest first.
pub async fn joined_rooms(
    db: &AnyPool,
    viewer: &str,
    limit: i64,
) -> Result<Vec<Room>, sqlx::Error> {
    let rows: Vec<RoomRow> = sqlx::query_as(&format!(
        "{ROOM_SELECT} WHERE me.user_id IS NOT NULL ORDER BY r.created_at DESC, r.id DESC LIMIT $2"
    ))
    .bind(viewer)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Room::from).collect())
}

pub async fn room(db: &AnyPool, viewer: &str, id: &str) -> Result<Option<Room>, sqlx::Error> {
    let row: Option<RoomRow> = sqlx::query_as(&format!("{ROOM_SELECT} WHERE r.id = $2"))
        .bind(viewer)
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(row.map(Room::from))
}

pub async fn members(db: &AnyPool, room_id: &str) -> Result<Vec<Member>, sqlx::Error> {
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT m.user_id, u.username FROM members m LEFT JOIN users u ON u.id = m.user_id
         WHERE m.room_id = $1 ORDER BY m.joined_at, m.user_id",
    )
    .bind(room_id)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, username)| Member { id, username })
        .collect())
}

/// The usernames (lower case) of the room's members chat knows by name.
pub async fn member_usernames<'e>(
    db: impl Executor<'e, Database = Any>,
    room_id: &str,
) -> Result<std::collections::HashSet<String>, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT u.username FROM members m JOIN users u ON u.id = m.user_id WHERE m.room_id = $1",
    )
    .bind(room_id)
    .fetch_all(db)
    .await?;
    Ok(names.into_iter().map(|n| n.to_lowercase()).collect())
}

pub async fn is_member(db: &AnyPool, room_id: &str, user_id: &str) -> Result<bool, sqlx::Error> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM members WHERE room_id = $1 AND user_id = $2")
            .bind(room_id)
            .bind(user_id)
            .fetch_optional(db)
            .await?;
    Ok(found.is_some())
}

/// Moves `user`'s read marker in `room` up to `seq` (never down, never past
/// the room's last number). `false` when `user` is not a member.
pub async fn mark_read(
    db: &AnyPool,
    room_id: &str,
    user_id: &str,
    seq: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE members SET last_read_seq = (
             SELECT CASE WHEN r.last_seq < $3 THEN r.last_seq ELSE $3 END FROM rooms r WHERE r.id = $1)
         WHERE room_id = $1 AND user_id = $2 AND last_read_seq < $3",
    )
    .bind(room_id)
    .bind(user_id)
    .bind(seq)
    .execute(db)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(true);
    }
    is_member(db, room_id, user_id).await
}

/// Adds a member; joining twice is no change.
pub async fn join(db: &AnyPool, room_id: &str, user_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO members (room_id, user_id, joined_at) VALUES ($1, $2, $3)
         ON CONFLICT (room_id, user_id) DO NOTHING",
    )
    .bind(room_id)
    .bind(user_id)
    .bind(now_millis())
    .execute(db)
    .await?;
    Ok(())
}

// --- what happens in a room -------------------------------------------------

/// Takes the room's next number, locking its row until the transaction ends.
/// Call it first in a transaction: SQLite then takes its write lock at once.
pub async fn next_seq(tx: &mut Tx, room_id: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("UPDATE rooms SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq")
        .bind(room_id)
        .fetch_optional(&mut **tx)
        .await
}

pub(crate) fn json(body: &impl serde::Serialize) -> Result<String, sqlx::Error> {
    serde_json::to_string(body).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// Records a room event about `message_id` for the live stream, under the
/// number just taken.
pub async fn append_event(
    tx: &mut Tx,
    room_id: &str,
    seq: i64,
    kind: &str,
    message_id: &str,
    body: &impl serde::Serialize,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO room_events (room_id, seq, kind, body, created_at, message_id)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(room_id)
    .bind(seq)
    .bind(kind)
    .bind(json(body)?)
    .bind(now_millis())
    .bind(message_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The earlier events that showed a message now show `message` as it is
/// (after an edit: no replay shows superseded text).
pub async fn rewrite_events(tx: &mut Tx, message: &Message) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE room_events SET body = $2 WHERE message_id = $1 AND kind IN ($3, $4)")
        .bind(&message.id)
        .bind(json(message)?)
        .bind(kind::MESSAGE)
        .bind(kind::MESSAGE_EDITED)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Every earlier event of a deleted message — the message, its edits, its
/// cards — becomes a tombstone: a replay shows that it went, not what it said.
pub async fn bury_events(tx: &mut Tx, message_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE room_events SET kind = $2, body = $3 WHERE message_id = $1 AND kind <> $2")
        .bind(message_id)
        .bind(kind::MESSAGE_DELETED)
        .bind(json(&MessageDeleted {
            message_id: message_id.to_owned(),
        })?)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Where a room's stream stands: `(last_seq, first_kept_seq)`, or `None` for no room.
pub async fn stream_window(db: &AnyPool, room_id: &str) -> Result<Option<(i64, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT last_seq, first_kept_seq FROM rooms WHERE id = $1")
        .bind(room_id)
        .fetch_optional(db)
        .await
}

/// A room event, as stored.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct RoomEvent {
    pub seq: i64,
    pub kind: String,
    pub body: String,
}

pub async fn events_after(
    db: &AnyPool,
    room_id: &str,
    after: i64,
    limit: i64,
) -> Result<Vec<RoomEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT seq, kind, body FROM room_events WHERE room_id = $1 AND seq > $2
         ORDER BY seq LIMIT $3",
    )
    .bind(room_id)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

// --- messages and cards -----------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct MessageRow {
    pub id: String,
    pub room_id: String,
    pub seq: i64,
    pub author_id: String,
    pub author_username: String,
    pub text: String,
    pub sent_at: i64,
    pub edited_at: Option<i64>,
    pub client_id: Option<String>,
}

pub(crate) const MESSAGE_COLUMNS: &str =
    "id, room_id, seq, author_id, author_username, text, sent_at, edited_at, client_id";

impl MessageRow {
    pub fn into_message(self, cards: Vec<Card>) -> Message {
        Message {
            id: self.id,
            room_id: self.room_id,
            seq: self.seq,
            author: Author {
                id: self.author_id,
                username: self.author_username,
            },
            text: self.text,
            sent_at: rfc3339_from_millis(self.sent_at),
            edited_at: self.edited_at.map(rfc3339_from_millis),
            client_id: self.client_id,
            cards,
        }
    }
}

/// `($1, …, $cols), ($cols+1, …)`: the VALUES of a multi-row INSERT.
fn placeholders(rows: usize, cols: usize) -> String {
    let mut values = String::with_capacity(rows * cols * 5);
    for row in 0..rows {
        values.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..cols {
            let sep = if col == 0 { "" } else { ", " };
            let _ = write!(values, "{sep}${}", row * cols + col + 1);
        }
        values.push(')');
    }
    values
}

/// The most rows one multi-row INSERT of [`insert_messages`] takes: 9
/// columns each stays well under SQLite's 32,766 bound parameters.
pub const MAX_ROWS_PER_INSERT: usize = 256;

/// Takes `count` numbers at once in `room_id`: `Some(last)`, the numbers
/// being `last - count + 1 ..= last`, with the row locked until the
/// transaction ends (as [`next_seq`]); `None` for no room.
pub async fn take_seqs(tx: &mut Tx, room_id: &str, count: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("UPDATE rooms SET last_seq = last_seq + $2 WHERE id = $1 RETURNING last_seq")
        .bind(room_id)
        .bind(count)
        .fetch_optional(&mut **tx)
        .await
}

/// Inserts messages in one statement per [`MAX_ROWS_PER_INSERT`].
pub async fn insert_messages(tx: &mut Tx, rows: &[MessageRow]) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(MAX_ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES {}",
            placeholders(chunk.len(), 9)
        );
        let mut insert = sqlx::query(&sql);
        for row in chunk {
            insert = insert
                .bind(&row.id)
                .bind(&row.room_id)
                .bind(row.seq)
                .bind(&row.author_id)
                .bind(&row.author_username)
                .bind(&row.text)
                .bind(row.sent_at)
                .bind(row.edited_at)
                .bind(&row.client_id);
        }
        insert.execute(&mut **tx).await?;
    }
    Ok(())
}

/// A room event to record (see [`append_event`]).
#[derive(Debug, Clone)]
pub struct NewRoomEvent<'a> {
    pub room_id: &'a str,
    pub seq: i64,
    pub kind: &'a str,
    pub message_id: &'a str,
    /// The event's body, JSON.
    pub body: String,
}

/// Records room events in one statement per [`MAX_ROWS_PER_INSERT`].
pub async fn append_events(tx: &mut Tx, events: &[NewRoomEvent<'_>]) -> Result<(), sqlx::Error> {
    let now = now_millis();
    for chunk in events.chunks(MAX_ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO room_events (room_id, seq, kind, body, created_at, message_id) VALUES {}",
            placeholders(chunk.len(), 6)
        );
        let mut insert = sqlx::query(&sql);
        for event in chunk {
            insert = insert
                .bind(event.room_id)
                .bind(event.seq)
                .bind(event.kind)
                .bind(&event.body)
                .bind(now)
                .bind(event.message_id);
        }
        insert.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The message `author` posted with `client_id`, if any.
pub async fn message_by_client(
    db: &AnyPool,
    author_id: &str,
    client_id: &str,
) -> Result<Option<MessageRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE author_id = $1 AND client_id = $2"
    ))
    .bind(author_id)
    .bind(client_id)
    .fetch_optional(db)
    .await
}

/// Replaces a message's text, noting when.
pub async fn edit_message(
    tx: &mut Tx,
    id: &str,
    text: &str,
    edited_at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE messages SET text = $2, edited_at = $3 WHERE id = $1")
        .bind(id)
        .bind(text)
        .bind(edited_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The message's cards, oldest first.
pub async fn cards_of(db: &AnyPool, message_id: &str) -> Result<Vec<Card>, sqlx::Error> {
    let found: Vec<CardRow> = sqlx::query_as(
        "SELECT message_id, url, title, description, image FROM cards
         WHERE message_id = $1 ORDER BY created_at, url",
    )
    .bind(message_id)
    .fetch_all(db)
    .await?;
    Ok(cards_by_message(found)
        .remove(message_id)
        .unwrap_or_default())
}

/// The message's cards; those whose URL is not in `keep` are removed first.
pub async fn keep_cards(
    tx: &mut Tx,
    message_id: &str,
    keep: &[String],
) -> Result<Vec<Card>, sqlx::Error> {
    let found: Vec<CardRow> = sqlx::query_as(
        "SELECT message_id, url, title, description, image FROM cards
         WHERE message_id = $1 ORDER BY created_at, url",
    )
    .bind(message_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut kept = Vec::new();
    for card in cards_by_message(found)
        .remove(message_id)
        .unwrap_or_default()
    {
        if keep.contains(&card.url) {
            kept.push(card);
            continue;
        }
        sqlx::query("DELETE FROM cards WHERE message_id = $1 AND url = $2")
            .bind(message_id)
            .bind(&card.url)
            .execute(&mut **tx)
            .await?;
    }
    Ok(kept)
}

pub async fn message<'e>(
    db: impl Executor<'e, Database = Any>,
    id: &str,
) -> Result<Option<MessageRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await
}

/// A page of a room's messages with their cards, in one statement: `$1`
/// the room, `$2` numbers below it, `$3` how many; newest first, each
/// message's cards oldest first (a message without one has NULL card columns).
pub const PAGE_SELECT: &str =
    "SELECT m.id, m.room_id, m.seq, m.author_id, m.author_username, m.text,
        m.sent_at, m.edited_at, m.client_id, c.url, c.title, c.description, c.image
    FROM (SELECT id, room_id, seq, author_id, author_username, text, sent_at, edited_at, client_id
          FROM messages WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3) m
    LEFT JOIN cards c ON c.message_id = m.id
    ORDER BY m.seq DESC, c.created_at, c.url";

#[derive(FromRow)]
struct PageRow {
    #[sqlx(flatten)]
    message: MessageRow,
    url: Option<String>,
    title: Option<String>,
    description: Option<String>,
    image: Option<String>,
}

/// Up to `limit` messages of a room below `before` (all when `None`), newest first.
pub async fn page(
    db: &AnyPool,
    room_id: &str,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Message>, sqlx::Error> {
    let rows: Vec<PageRow> = sqlx::query_as(PAGE_SELECT)
        .bind(room_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(db)
        .await?;
    let mut page: Vec<Message> = Vec::new();
    for row in rows {
        let card = match (row.url, row.title) {
            (Some(url), Some(title)) => Some(Card {
                url,
                title,
                description: row.description,
                image: row.image,
            }),
            _ => None,
        };
        match page.last_mut() {
            Some(last) if last.id == row.message.id => last.cards.extend(card),
            _ => page.push(row.message.into_message(card.into_iter().collect())),
        }
    }
    Ok(page)
}

/// `(message_id, url, title, description, image)`, as selected from `cards`.
pub(crate) type CardRow = (String, String, String, Option<String>, Option<String>);

pub(crate) fn cards_by_message(rows: Vec<CardRow>) -> HashMap<String, Vec<Card>> {
    let mut by_message: HashMap<String, Vec<Card>> = HashMap::new();
    for (message_id, url, title, description, image) in rows {
        by_message.entry(message_id).or_default().push(Card {
            url,
            title,
            description,
            image,
        });
    }
    by_message
}

pub async fn delete_message(tx: &mut Tx, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM cards WHERE message_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM messages WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Attaches a card; `false` when the message already has one for that URL.
pub async fn attach_card(tx: &mut Tx, message_id: &str, card: &Card) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO cards (message_id, url, title, description, image, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (message_id, url) DO NOTHING",
    )
    .bind(message_id)
    .bind(&card.url)
    .bind(&card.title)
    .bind(&card.description)
    .bind(&card.image)
    .bind(now_millis())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}
