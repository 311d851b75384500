//! `GET /v1/rooms/{id}/events`: the room's live stream (Server-Sent Events).
//!
//! The stream reads the room's numbered events from the database, so it shows
//! what any instance (or the worker, attaching cards) wrote, and a client that
//! reconnects with `Last-Event-ID` misses nothing. This process's own writes
//! wake its streams at once; others' are seen within [`POLL`].

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use dozen_auth::Authenticated;
use dozen_runtime::http::ApiError;
use dozen_runtime::shutdown::Shutdown;
use futures::Stream;
use sqlx::AnyPool;
use tokio::sync::Notify;

use super::{known_id, require_member};
use crate::app::AppState;
use crate::store::{self, RoomEvent};

pub const POLL: Duration = Duration::from_millis(250);
const KEEP_ALIVE: Duration = Duration::from_secs(15);
const BATCH: i64 = 100;

/// Wakes this process's streams when it wrote something.
#[derive(Debug, Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    pub fn wake(&self) {
        self.0.notify_waiters();
    }
}

struct Cursor {
    db: AnyPool,
    room_id: String,
    after: i64,
    ready: VecDeque<RoomEvent>,
    wake: Wake,
    shutdown: Shutdown,
}

impl Cursor {
    /// The next event, waiting for one; `None` when the process stops.
    async fn next(&mut self) -> Option<RoomEvent> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            if self.shutdown.is_triggered() {
                return None;
            }
            // Registered before the read, so a write right after it still wakes us.
            let woken = self.wake.0.notified();
            match store::events_after(&self.db, &self.room_id, self.after, BATCH).await {
                Ok(events) if !events.is_empty() => {
                    self.after = events.last().map_or(self.after, |e| e.seq);
                    self.ready.extend(events);
                    continue;
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %error, "live stream could not read; retrying")
                }
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = self.shutdown.triggered() => return None,
            }
        }
    }
}

/// Streams the room's events after `Last-Event-ID` (or from now), each with
/// its number as SSE `id` and its kind (`message`, `card`, `message_deleted`)
/// as SSE `event`. Ends when the process drains.
pub(crate) async fn stream(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(room_id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let room_id = known_id(&room_id, "room")?;
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(value) => match value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
        {
            Some(n) if n >= 0 => Some(n),
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_last_event_id",
                    "Last-Event-ID must be the id of an event this stream sent",
                ))
            }
        },
    };
    require_member(&state, &room_id, &claims.sub).await?;
    let after = match resume {
        Some(after) => after,
        None => store::last_seq(&state.db, &room_id).await?,
    };
    let cursor = Cursor {
        db: state.db.clone(),
        room_id,
        after,
        ready: VecDeque::new(),
        wake: state.wake.clone(),
        shutdown: state.shutdown.clone(),
    };
    let events = futures::stream::unfold(cursor, |mut cursor| async move {
        let event = cursor.next().await?;
        let sse = SseEvent::default()
            .id(event.seq.to_string())
            .event(event.kind)
            .data(event.body);
        Some((Ok(sse), cursor))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
