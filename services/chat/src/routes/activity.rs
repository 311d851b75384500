//! The caller's rooms as they change: `GET /v1/activity` (unread counts,
//! live), `PUT /v1/rooms/{id}/read` (the read marker) and
//! `POST /v1/rooms/{id}/typing`.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::Json;
use dozen_auth::Authenticated;
use dozen_runtime::http::openapi::ErrorBody;
use dozen_runtime::http::{ApiError, FieldErrors};
use futures::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;

use super::events::KEEP_ALIVE;
use super::{display_name, known_id, require_member};
use crate::app::AppState;
use crate::model::{kind, Room, Unread, User};
use crate::store;

fn unread_of(room: &Room) -> Unread {
    Unread {
        room_id: room.id.clone(),
        last_seq: room.last_seq,
        last_read_seq: room.last_read_seq,
        unread: room.unread,
    }
}

fn unread_event(unread: &Unread) -> SseEvent {
    SseEvent::default()
        .event(kind::UNREAD)
        .data(serde_json::to_string(unread).expect("plain data"))
}

#[utoipa::path(
    get, path = "/v1/activity", tag = "activity", security(("bearer" = [])),
    responses((status = 200, description = "Server-Sent Events: `unread` (data: Unread) for each of the caller's rooms, then whenever one changes", content_type = "text/event-stream", body = String))
)]
/// `GET /v1/activity`: an `unread` event for each room the caller is a
/// member of when the stream opens, then one whenever a room's count
/// changes (a message by another, the caller reading on any device).
/// Reopen it after joining a room.
pub(crate) async fn stream(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    // Subscribed before the first read, so nothing falls between the two.
    let activity = state.live.activity();
    let rooms = store::joined_rooms(&state.db, &claims.sub, super::rooms::JOINED_LISTED).await?;
    let followed: HashSet<String> = rooms.iter().map(|r| r.id.clone()).collect();
    let ready: VecDeque<Unread> = rooms.iter().map(unread_of).collect();
    let viewer = claims.sub;
    let shutdown = state.shutdown.clone();
    let start = (ready, activity);
    let events = futures::stream::unfold(start, move |(mut ready, mut activity)| {
        let (state, viewer, followed, shutdown) = (
            state.clone(),
            viewer.clone(),
            followed.clone(),
            shutdown.clone(),
        );
        async move {
            loop {
                if let Some(unread) = ready.pop_front() {
                    return Some((Ok(unread_event(&unread)), (ready, activity)));
                }
                let changed: Vec<String> = tokio::select! {
                    received = activity.recv() => match received {
                        Ok(a) if followed.contains(&a.room_id)
                            && a.reader.as_ref().is_none_or(|r| *r == viewer) => vec![a.room_id],
                        Ok(_) => continue,
                        Err(RecvError::Lagged(_)) => followed.iter().cloned().collect(),
                        Err(RecvError::Closed) => return None,
                    },
                    () = shutdown.triggered() => return None,
                };
                for room_id in changed {
                    match store::room(&state.db, &viewer, &room_id).await {
                        Ok(Some(room)) => ready.push_back(unread_of(&room)),
                        Ok(None) => {}
                        Err(error) => {
                            tracing::warn!(error = %error, "activity stream could not read")
                        }
                    }
                }
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// A JSON number that is a whole number (`12`, and `12.0`, which JSON Schema
/// counts as an integer too) within `i64`.
fn whole_number(value: &serde_json::Value) -> Option<i64> {
    if let Some(n) = value.as_i64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    // 2^63 is the first float past i64::MAX.
    (f.fract() == 0.0 && f >= i64::MIN as f64 && f < 9_223_372_036_854_775_808.0)
        .then_some(f as i64)
}

/// `PUT /v1/rooms/{id}/read` body.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ReadMarker {
    /// The number read up to: a message's `seq` or a stream event's id.
    #[schema(value_type = i64, required = true, minimum = 0, maximum = 9223372036854775807_i64, example = 42)]
    seq: Option<serde_json::Value>,
}

#[utoipa::path(
    put, path = "/v1/rooms/{id}/read", tag = "activity", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The room's id")),
    request_body = ReadMarker,
    responses(
        (status = 200, description = "The room's unread count now", body = Unread),
        (status = 403, description = "Not a member of the room", body = ErrorBody),
        (status = 404, description = "No room has that id", body = ErrorBody),
    )
)]
/// `PUT /v1/rooms/{id}/read {seq}`: the caller has read the room up to
/// event number `seq` (a message's `seq`, or a stream event's id). The
/// marker only moves forward, and never past the room's last number.
/// Answers the room's unread count after it.
pub(crate) async fn read(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(room_id): Path<String>,
    Json(body): Json<ReadMarker>,
) -> Result<Json<Unread>, ApiError> {
    let room_id = known_id(&room_id, "room")?;
    let mut errors = FieldErrors::default();
    let seq = match body.seq.as_ref().map(whole_number) {
        Some(Some(seq)) if seq >= 0 => Some(seq),
        Some(_) => {
            errors.add("seq", "must be a whole number, 0 or more");
            None
        }
        None => {
            errors.add("seq", "is required");
            None
        }
    };
    errors.into_result()?;
    let seq = seq.expect("into_result reports a missing seq");
    if !store::mark_read(&state.db, &room_id, &claims.sub, seq).await? {
        require_member(&state, &room_id, &claims.sub).await?;
    }
    state.live.read(&room_id, &claims.sub).await;
    let room = store::room(&state.db, &claims.sub, &room_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no room has that id"))?;
    Ok(Json(unread_of(&room)))
}

#[utoipa::path(
    post, path = "/v1/rooms/{id}/typing", tag = "activity", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The room's id")),
    responses(
        (status = 204, description = "The room's streams show the caller typing for 6 s"),
        (status = 403, description = "Not a member of the room", body = ErrorBody),
        (status = 404, description = "No room has that id", body = ErrorBody),
    )
)]
/// `POST /v1/rooms/{id}/typing`: the caller is typing in the room; the
/// room's streams show it for a few seconds. Clients send it at most every
/// few seconds while the user types.
pub(crate) async fn typing(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(room_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let room_id = known_id(&room_id, "room")?;
    require_member(&state, &room_id, &claims.sub).await?;
    let user = User {
        username: display_name(&state, &claims).await?,
        id: claims.sub,
    };
    state.live.typing(&room_id, user).await;
    Ok(StatusCode::NO_CONTENT)
}
