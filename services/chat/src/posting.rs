//! Posting by group commit: the posts that arrive while a transaction is
//! being written go into the next one together.
//!
//! A room's next number is taken under its row's lock until commit (that is
//! what keeps numbers visible in order), so posts to one room, one
//! transaction each, queue behind each other for four round trips apiece.
//! Here one writer takes every waiting post (up to [`MAX_BATCH`]), takes
//! each room's numbers with one `UPDATE` (rooms in id order, so two
//! instances never deadlock), inserts the messages, their room events and
//! their `message.sent` events with one statement each, and commits once.
//! Each post is answered after that commit: a 201 still means committed.
//! If the batch fails, its posts are written again one by one, so one bad
//! post (a `client_id` racing itself) fails alone.

use std::collections::BTreeMap;

use dozen_bus::{Event, Outbox};
use dozen_events::MessageSent;
use dozen_runtime::clock::{now_millis, rfc3339_from_millis};
use dozen_runtime::trace::TraceParent;
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use crate::live::Live;
use crate::model::{kind, Message};
use crate::store::{self, MessageRow, NewRoomEvent};
use crate::text;

/// The most posts one transaction takes.
pub const MAX_BATCH: usize = 256;

/// A post, checked and ready to store.
#[derive(Debug, Clone)]
pub struct Draft {
    pub room_id: String,
    pub author_id: String,
    pub author_username: String,
    /// As [`text::message_text`] keeps it.
    pub text: String,
    pub client_id: Option<String>,
    /// The members it mentions (lower-case usernames).
    pub mentions: Vec<String>,
    pub trace: Option<TraceParent>,
}

/// A post, stored and committed.
#[derive(Debug, Clone)]
pub struct Posted {
    pub message: Message,
    /// The id of its `message.sent` event.
    pub event_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("no room has that id")]
    NoRoom,
    /// The author posted this `client_id` before (or at the same moment).
    #[error("the client_id was used before")]
    ClientIdTaken,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("the writer stopped")]
    Stopped,
}

type Reply = oneshot::Sender<Result<Posted, PostError>>;

/// The way in to this process's writer. Cheap to clone; the writer stops
/// once every clone is gone and it has answered what it took.
#[derive(Debug, Clone)]
pub struct Poster {
    queue: mpsc::Sender<(Draft, Reply)>,
}

impl Poster {
    /// Starts the writer on `db`; it tells `outbox` and `live` of each commit.
    pub fn start(db: AnyPool, outbox: Outbox, live: Live) -> Self {
        let (queue, waiting) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_all(db, outbox, live, waiting));
        Self { queue }
    }

    /// Stores `draft`; returns once it is committed.
    pub async fn post(&self, draft: Draft) -> Result<Posted, PostError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send((draft, reply))
            .await
            .map_err(|_| PostError::Stopped)?;
        answer.await.map_err(|_| PostError::Stopped)?
    }
}

async fn write_all(
    db: AnyPool,
    outbox: Outbox,
    live: Live,
    mut waiting: mpsc::Receiver<(Draft, Reply)>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (drafts, replies): (Vec<Draft>, Vec<Reply>) =
            std::mem::take(&mut batch).into_iter().unzip();
        let results = match write(&db, &outbox, &drafts).await {
            Ok(results) => results,
            Err(_) if drafts.len() > 1 => {
                let mut one_by_one = Vec::with_capacity(drafts.len());
                for draft in &drafts {
                    one_by_one.push(
                        match write(&db, &outbox, std::slice::from_ref(draft)).await {
                            Ok(mut result) => result.remove(0),
                            Err(error) => Err(error),
                        },
                    );
                }
                one_by_one
            }
            Err(error) => vec![Err(error)],
        };
        let mut rooms: BTreeMap<String, i64> = BTreeMap::new();
        for result in results.iter().flatten() {
            let seq = rooms.entry(result.message.room_id.clone()).or_default();
            *seq = (*seq).max(result.message.seq);
        }
        if !rooms.is_empty() {
            outbox.committed();
        }
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result); // a request that went away needs no answer
        }
        // Telling the other instances is a round trip to the cache: not one
        // the next batch waits for.
        let live = live.clone();
        tokio::spawn(async move {
            for (room_id, seq) in rooms {
                live.changed(&room_id, seq).await;
            }
        });
    }
}

/// Writes `drafts` in one transaction: per draft, its result (a missing
/// room fails only its own posts); `Err` when the transaction failed.
async fn write(
    db: &AnyPool,
    outbox: &Outbox,
    drafts: &[Draft],
) -> Result<Vec<Result<Posted, PostError>>, PostError> {
    let mut by_room: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, draft) in drafts.iter().enumerate() {
        by_room.entry(draft.room_id.as_str()).or_default().push(i);
    }
    let mut tx = db.begin().await?;
    let mut seqs: Vec<Option<i64>> = vec![None; drafts.len()];
    for (room_id, posts) in &by_room {
        let count = posts.len() as i64;
        if let Some(last) = store::take_seqs(&mut tx, room_id, count).await? {
            for (k, &i) in posts.iter().enumerate() {
                seqs[i] = Some(last - count + 1 + k as i64);
            }
        }
    }
    let sent_at = now_millis();
    let mut rows = Vec::with_capacity(drafts.len());
    for (draft, seq) in drafts.iter().zip(&seqs) {
        if let Some(seq) = seq {
            rows.push(MessageRow {
                id: uuid::Uuid::now_v7().to_string(),
                room_id: draft.room_id.clone(),
                seq: *seq,
                author_id: draft.author_id.clone(),
                author_username: draft.author_username.clone(),
                text: draft.text.clone(),
                sent_at,
                edited_at: None,
                client_id: draft.client_id.clone(),
            });
        }
    }
    store::insert_messages(&mut tx, &rows).await.map_err(
        |error| match store::is_unique_violation(&error) {
            true => PostError::ClientIdTaken,
            false => error.into(),
        },
    )?;
    let messages: Vec<Message> = rows
        .iter()
        .map(|row| row.clone().into_message(Vec::new()))
        .collect();
    let room_events = messages
        .iter()
        .map(|message| {
            Ok(NewRoomEvent {
                room_id: &message.room_id,
                seq: message.seq,
                kind: kind::MESSAGE,
                message_id: &message.id,
                body: store::json(message)?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    store::append_events(&mut tx, &room_events).await?;
    let placed = drafts.iter().zip(&seqs).filter(|(_, seq)| seq.is_some());
    let events = placed
        .zip(&rows)
        .map(|((draft, _), row)| sent_event(draft, row))
        .collect::<Result<Vec<_>, _>>()?;
    outbox.enqueue_all(&mut tx, &events).await?;
    tx.commit().await?;

    let mut posted = messages.into_iter().zip(events);
    Ok(seqs
        .iter()
        .map(|seq| match seq {
            None => Err(PostError::NoRoom),
            Some(_) => {
                let (message, event) = posted.next().expect("one message per placed draft");
                Ok(Posted {
                    message,
                    event_id: event.id,
                })
            }
        })
        .collect())
}

/// `message.sent` for `row`, continuing the request's trace.
fn sent_event(draft: &Draft, row: &MessageRow) -> Result<Event, sqlx::Error> {
    let sent = MessageSent {
        message_id: row.id.clone(),
        room_id: row.room_id.clone(),
        author_id: row.author_id.clone(),
        author_username: row.author_username.clone(),
        mentions: draft.mentions.clone(),
        urls: text::urls(&row.text),
        text: row.text.clone(),
        sent_at: rfc3339_from_millis(row.sent_at),
    };
    let mut event = Event::new("chat", &sent).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    if let Some(trace) = &draft.trace {
        event = event.with_trace(trace);
    }
    Ok(event)
}
