//! Posting, reading (newest first, by cursor) and deleting messages.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use dozen_auth::{Authenticated, Claims};
use dozen_bus::Event;
use dozen_events::MessageSent;
use dozen_runtime::clock::{now_millis, rfc3339_from_millis};
use dozen_runtime::http::{ApiError, FieldErrors};
use dozen_runtime::trace::TraceParent;
use serde::{Deserialize, Serialize};

use super::{known_id, require_member};
use crate::app::AppState;
use crate::model::{kind, Message, MessageDeleted};
use crate::store::{self, MessageRow};
use crate::text;

pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 100;

#[derive(Debug, Deserialize)]
pub(crate) struct NewMessage {
    text: Option<String>,
}

fn check_text(body: &NewMessage) -> Result<String, ApiError> {
    let mut errors = FieldErrors::default();
    let text = errors.present("text", &body.text).map(str::trim);
    if let Some(text) = text {
        let length = text.chars().count();
        if length == 0 {
            errors.add("text", "may not be empty");
        }
        if length > text::MAX_CHARS {
            errors.add(
                "text",
                format!("must be at most {} characters long", text::MAX_CHARS),
            );
        }
        if text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            errors.add("text", "may not contain control characters");
        }
    }
    errors.into_result()?;
    Ok(text.expect("into_result reports a missing text").to_owned())
}

/// The author's name: from chat's directory, or, before the signup event
/// has reached chat, from the token accounts signed.
async fn author_name(state: &AppState, claims: &Claims) -> Result<String, ApiError> {
    if let Some(name) = store::username(&state.db, &claims.sub).await? {
        return Ok(name);
    }
    Ok(claims
        .preferred_username
        .clone()
        .unwrap_or_else(|| claims.sub.clone()))
}

/// `POST /v1/rooms/{id}/messages {text}`: stores it and emits `message.sent`
/// in the same transaction.
pub(crate) async fn post(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(room_id): Path<String>,
    trace: Option<Extension<TraceParent>>,
    Json(body): Json<NewMessage>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let room_id = known_id(&room_id, "room")?;
    let text = check_text(&body)?;
    require_member(&state, &room_id, &claims.sub).await?;
    let author_username = author_name(&state, &claims).await?;

    let mut tx = state.db.begin().await?;
    let seq = store::next_seq(&mut tx, &room_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no room has that id"))?;
    let row = MessageRow {
        id: uuid::Uuid::now_v7().to_string(),
        room_id: room_id.clone(),
        seq,
        author_id: claims.sub.clone(),
        author_username,
        text,
        sent_at: now_millis(),
    };
    store::insert_message(&mut tx, &row).await?;
    let message = row.clone().into_message(Vec::new());
    store::append_event(&mut tx, &room_id, seq, kind::MESSAGE, &message).await?;
    let sent = MessageSent {
        message_id: row.id.clone(),
        room_id: row.room_id.clone(),
        author_id: row.author_id.clone(),
        author_username: row.author_username.clone(),
        mentions: text::mentions(&row.text),
        urls: text::urls(&row.text),
        text: row.text,
        sent_at: rfc3339_from_millis(row.sent_at),
    };
    let mut event = Event::new("chat", &sent).map_err(|e| ApiError::internal(&e))?;
    if let Some(Extension(trace)) = trace {
        event = event.with_trace(&trace);
    }
    state.outbox.enqueue(&mut tx, &event).await?;
    tx.commit().await?;
    state.outbox.committed();
    state.wake.wake();
    tracing::info!(message_id = %message.id, room_id = %room_id, event_id = %event.id, "message sent");
    Ok((StatusCode::CREATED, Json(message)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct PageQuery {
    before: Option<String>,
    limit: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Page {
    messages: Vec<Message>,
    /// Pass as `before` for the next (older) page; null on the last page.
    next_before: Option<i64>,
}

/// `GET /v1/rooms/{id}/messages?before=&limit=`: newest first. The cursor is
/// a message's number in the room, so messages posted meanwhile never shift a page.
pub(crate) async fn page(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(room_id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Page>, ApiError> {
    let room_id = known_id(&room_id, "room")?;
    let mut errors = FieldErrors::default();
    let before = match query.before.as_deref() {
        None | Some("") => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                errors.add(
                    "before",
                    "must be a positive whole number (a `next_before`)",
                );
                None
            }
        },
    };
    let limit = match query.limit.as_deref() {
        None | Some("") => DEFAULT_PAGE,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                errors.add(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_PAGE}"),
                );
                DEFAULT_PAGE
            }
        },
    };
    errors.into_result()?;
    require_member(&state, &room_id, &claims.sub).await?;
    let messages = store::page(&state.db, &room_id, before, limit).await?;
    let next_before = (messages.len() as i64 == limit)
        .then(|| messages.last().map(|m| m.seq))
        .flatten()
        .filter(|seq| *seq > 1);
    Ok(Json(Page {
        messages,
        next_before,
    }))
}

/// `DELETE /v1/rooms/{id}/messages/{message_id}`: only its author may.
pub(crate) async fn delete(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path((room_id, message_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let room_id = known_id(&room_id, "room")?;
    let message_id = known_id(&message_id, "message")?;
    require_member(&state, &room_id, &claims.sub).await?;
    let mut tx = state.db.begin().await?;
    let seq = store::next_seq(&mut tx, &room_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no room has that id"))?;
    let message = store::message(&mut *tx, &message_id)
        .await?
        .filter(|m| m.room_id == room_id)
        .ok_or_else(|| ApiError::not_found("no message in this room has that id"))?;
    if message.author_id != claims.sub {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_the_author",
            "only its author may delete a message",
        ));
    }
    store::delete_message(&mut tx, &message_id).await?;
    store::append_event(
        &mut tx,
        &room_id,
        seq,
        kind::MESSAGE_DELETED,
        &MessageDeleted {
            message_id: message_id.clone(),
        },
    )
    .await?;
    tx.commit().await?;
    state.wake.wake();
    tracing::info!(message_id = %message_id, "message deleted");
    Ok(StatusCode::NO_CONTENT)
}
