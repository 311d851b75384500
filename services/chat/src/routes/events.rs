//! `GET /v1/rooms/{id}/events`: the room's live stream (Server-Sent Events).
//!
//! Numbered events (`message`, `card`, `message_edited`,
//! `message_deleted`) are read from the database, so the stream shows what
//! any instance (or the worker, attaching cards) wrote, and a client that
//! reconnects with `Last-Event-ID` misses nothing. A stream reads the
//! database itself only to catch up (when it opens, or if it fell behind);
//! then it follows its room's feed (`live::feed`), which reads each change
//! once for all the room's streams here: an idle stream costs no query,
//! and a post in another room does not wake it. `presence` and `typing` carry
//! no id: they are of the moment, and never replayed. A `Last-Event-ID` the
//! stream cannot resume from (past the room's last number, or before what
//! the archive left) is answered with a `reset` event: reload, then follow.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use dozen_auth::Authenticated;
use dozen_runtime::http::openapi::ErrorBody;
use dozen_runtime::http::ApiError;
use dozen_runtime::shutdown::Shutdown;
use futures::Stream;
use sqlx::AnyPool;
use tokio::sync::broadcast::error::RecvError;

use super::{display_name, known_id, require_member};
use crate::app::AppState;
use crate::live::feed::POLL;
use crate::live::{typing_event, RoomSignal, Watch};
use crate::model::{kind, Presence, User};
use crate::store::{self, RoomEvent};

/// A comment this often keeps proxies from closing a quiet stream, and
/// shows the server a client that went away.
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);
const BATCH: i64 = 100;

/// What the stream sends next.
enum Item {
    Numbered(RoomEvent),
    Presence(Arc<Presence>),
    Typing(User),
    /// The client's `Last-Event-ID` cannot be resumed from: it is past the
    /// room's last number, or events after it were archived. The client
    /// reloads the room; the stream goes on from `last_seq`.
    Reset {
        last_seq: i64,
        reason: &'static str,
    },
}

impl Item {
    fn into_sse(self) -> SseEvent {
        match self {
            Item::Numbered(event) => SseEvent::default()
                .id(event.seq.to_string())
                .event(event.kind)
                .data(event.body),
            Item::Presence(presence) => SseEvent::default()
                .event(kind::PRESENCE)
                .data(serde_json::to_string(&*presence).expect("plain data")),
            Item::Typing(user) => SseEvent::default()
                .event(kind::TYPING)
                .data(serde_json::to_string(&typing_event(user)).expect("plain data")),
            Item::Reset { last_seq, reason } => SseEvent::default()
                .id(last_seq.to_string())
                .event(kind::RESET)
                .data(serde_json::json!({ "last_seq": last_seq, "reason": reason }).to_string()),
        }
    }
}

struct Cursor {
    db: AnyPool,
    room_id: String,
    /// Whose stream it is: their own typing is not sent back to them.
    viewer: String,
    after: i64,
    ready: VecDeque<Item>,
    /// Whether this stream must read the database itself: it has not caught
    /// up yet, or fell behind its room's feed.
    behind: bool,
    /// Its own read failed: try again after [`POLL`].
    retry: bool,
    watch: Watch,
    presence_sent: Arc<Presence>,
    shutdown: Shutdown,
}

impl Cursor {
    /// The next item, waiting for one; `None` when the process stops.
    async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            if self.shutdown.is_triggered() {
                return None;
            }
            if std::mem::take(&mut self.behind) {
                self.watch.live().count_catch_up();
                match store::events_after(&self.db, &self.room_id, self.after, BATCH).await {
                    Ok(events) => {
                        self.behind = events.len() as i64 == BATCH;
                        self.retry = false;
                        self.after = events.last().map_or(self.after, |e| e.seq);
                        self.ready.extend(events.into_iter().map(Item::Numbered));
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(error = %error, "live stream could not read; retrying");
                        self.retry = true;
                    }
                }
            }
            tokio::select! {
                signal = self.watch.signals.recv() => match signal {
                    Ok(RoomSignal::Events(batch)) => match batch.after_seen(self.after) {
                        Some(unseen) => {
                            self.after = unseen.last().map_or(self.after, |e| e.seq);
                            self.ready.extend(unseen.iter().cloned().map(Item::Numbered));
                        }
                        None => self.behind = true,
                    },
                    // Batches were dropped for this stream: it reads them itself.
                    Err(RecvError::Lagged(_)) => self.behind = true,
                    Ok(RoomSignal::Typing(user)) => {
                        if user.id != self.viewer {
                            self.ready.push_back(Item::Typing(user));
                        }
                    }
                    Ok(RoomSignal::Presence(presence)) => {
                        let changed = presence != self.presence_sent;
                        // The room's shared copy, even when equal: a stream
                        // keeps no presence of its own.
                        self.presence_sent = presence.clone();
                        if changed {
                            self.ready.push_back(Item::Presence(presence));
                        }
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = tokio::time::sleep(POLL), if self.retry => self.behind = true,
                _ = self.shutdown.triggered() => return None,
            }
        }
    }
}

/// The `Last-Event-ID` asked for: `None` without one, 400 for one this
/// stream cannot have sent.
fn resume_from(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    match value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
    {
        Some(n) if n >= 0 => Ok(Some(n)),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_last_event_id",
            "Last-Event-ID must be the id of an event this stream sent",
        )),
    }
}

#[utoipa::path(
    get, path = "/v1/rooms/{id}/events", tag = "messages", security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The room's id"),
        ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event number"),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `message`, `card`, `message_edited`, `message_deleted` (numbered), `presence`, `typing`, `reset` (see docs/architecture.md)", content_type = "text/event-stream", body = String),
        (status = 400, description = "Last-Event-ID is not a number", body = ErrorBody),
        (status = 403, description = "Not a member of the room", body = ErrorBody),
        (status = 404, description = "No room has that id", body = ErrorBody),
    )
)]
/// Streams the room's events after `Last-Event-ID` (or from now), each with
/// its number as SSE `id` and its kind as SSE `event`; first who is online
/// (`presence`) and who is typing. The caller is online in the room while
/// the stream is open. Ends when the process drains.
pub(crate) async fn stream(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(room_id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let room_id = known_id(&room_id, "room")?;
    let resume = resume_from(&headers)?;
    require_member(&state, &room_id, &claims.sub).await?;
    let (last_seq, first_kept) = store::stream_window(&state.db, &room_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no room has that id"))?;
    let (after, reset) = match resume {
        None => (last_seq, None),
        Some(after) if after > last_seq => (last_seq, Some("ahead")),
        Some(after) if after + 1 < first_kept => (last_seq, Some("archived")),
        Some(after) => (after, None),
    };
    let viewer = User {
        id: claims.sub.clone(),
        username: display_name(&state, &claims).await?,
    };
    let watch = state.live.open(&room_id, viewer, last_seq).await;
    let mut ready = VecDeque::new();
    if let Some(reason) = reset {
        ready.push_back(Item::Reset { last_seq, reason });
    }
    ready.push_back(Item::Presence(watch.presence.clone()));
    for user in state.live.typing_now(&room_id).await {
        if user.id != claims.sub {
            ready.push_back(Item::Typing(user));
        }
    }
    let cursor = Cursor {
        db: state.db.clone(),
        room_id,
        viewer: claims.sub,
        after,
        ready,
        behind: true,
        retry: false,
        presence_sent: watch.presence.clone(),
        watch,
        shutdown: state.shutdown.clone(),
    };
    let events = futures::stream::unfold(cursor, |mut cursor| async move {
        let item = cursor.next().await?;
        Some((Ok(item.into_sse()), cursor))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
