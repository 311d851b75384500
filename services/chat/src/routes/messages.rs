//! Posting, reading (newest first, by cursor) and deleting messages.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use dozen_auth::Authenticated;
use dozen_bus::Event;
use dozen_events::MessageEdited;
use dozen_runtime::clock::{now_millis, rfc3339_from_millis};
use dozen_runtime::http::openapi::ErrorBody;
use dozen_runtime::http::{ApiError, FieldErrors};
use dozen_runtime::trace::TraceParent;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{display_name, known_id, require_member};
use crate::app::AppState;
use crate::model::{kind, Message, MessageDeleted};
use crate::posting::{Draft, PostError};
use crate::store::{self, MessageRow};
use crate::text;

pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 100;

/// The longest `client_id`.
pub const MAX_CLIENT_ID: usize = 64;

/// `POST /v1/rooms/{id}/messages` body.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct NewMessage {
    /// 1–4,000 characters as sent, no control character but tab and line
    /// breaks, and something to see; kept in Unicode NFC with line breaks
    /// as `\n`, trimmed.
    #[schema(value_type = String, required = true, example = "hello, see https://example.com/")]
    text: Option<String>,
    /// The client's own id for the message (an idempotency key): 1–64 of
    /// `A-Z a-z 0-9 - _ .`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", example = "c-0193a6")]
    client_id: Option<String>,
}

/// `PATCH /v1/rooms/{id}/messages/{message_id}` body.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct EditedMessage {
    /// The new text, by the rules of a posted message's.
    #[schema(value_type = String, required = true, example = "hello again")]
    text: Option<String>,
}

/// `client_id`: 1–64 of `A-Z a-z 0-9 - _ .`, or absent.
fn check_client_id(client_id: Option<&str>, errors: &mut FieldErrors) -> Option<String> {
    let id = client_id?;
    let valid = (1..=MAX_CLIENT_ID).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if valid {
        Some(id.to_owned())
    } else {
        errors.add(
            "client_id",
            format!("must be 1 to {MAX_CLIENT_ID} of A-Z, a-z, 0-9, '-', '_' and '.'"),
        );
        None
    }
}

/// The text, as [`text::message_text`] keeps it; its problems go to `errors`.
fn check_text(text: &Option<String>, errors: &mut FieldErrors) -> Option<String> {
    match text::message_text(errors.present("text", text)?) {
        Ok(text) => Some(text),
        Err(problems) => {
            for problem in problems {
                errors.add("text", problem);
            }
            None
        }
    }
}

#[utoipa::path(
    post, path = "/v1/rooms/{id}/messages", tag = "messages", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The room's id")),
    request_body = NewMessage,
    responses(
        (status = 201, description = "Posted", body = Message),
        (status = 200, description = "Posted before with this client_id: the stored message", body = Message),
        (status = 403, description = "Not a member of the room", body = ErrorBody),
        (status = 404, description = "No room has that id", body = ErrorBody),
        (status = 409, description = "The client_id names a message of the caller's in another room", body = ErrorBody),
    )
)]
/// `POST /v1/rooms/{id}/messages {text, client_id?}`: stores it and emits
/// `message.sent` in the same transaction (201). With a `client_id` the
/// author used before, nothing is stored again: the first message is
/// answered (200), so a client may retry a post whose answer it never got.
pub(crate) async fn post(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(room_id): Path<String>,
    trace: Option<Extension<TraceParent>>,
    Json(body): Json<NewMessage>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let room_id = known_id(&room_id, "room")?;
    let mut errors = FieldErrors::default();
    let text = check_text(&body.text, &mut errors);
    let client_id = check_client_id(body.client_id.as_deref(), &mut errors);
    errors.into_result()?;
    let text = text.expect("into_result reports a missing text");
    require_member(&state, &room_id, &claims.sub).await?;
    if let Some(earlier) =
        posted_before(&state, &claims.sub, client_id.as_deref(), &room_id).await?
    {
        return Ok((StatusCode::OK, Json(earlier)));
    }
    let author_username = display_name(&state, &claims).await?;
    let draft = Draft {
        mentions: mentioned_members(&state.db, &room_id, &text).await?,
        room_id: room_id.clone(),
        author_id: claims.sub.clone(),
        author_username,
        text,
        client_id: client_id.clone(),
        trace: trace.map(|Extension(trace)| trace),
    };
    let posted = match state.poster.post(draft).await {
        Ok(posted) => posted,
        Err(PostError::NoRoom) => return Err(ApiError::not_found("no room has that id")),
        Err(PostError::ClientIdTaken) => {
            // The same client_id raced itself: the other post won.
            return match posted_before(&state, &claims.sub, client_id.as_deref(), &room_id).await? {
                Some(earlier) => Ok((StatusCode::OK, Json(earlier))),
                None => Err(ApiError::internal(&PostError::ClientIdTaken)),
            };
        }
        Err(PostError::Database(error)) => return Err(error.into()),
        Err(PostError::Stopped) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "stopping",
                "this instance is stopping; try again",
            ))
        }
    };
    let message = posted.message;
    tracing::info!(message_id = %message.id, room_id = %room_id, event_id = %posted.event_id, "message sent");
    Ok((StatusCode::CREATED, Json(message)))
}

/// The message `author` posted before with `client_id`; 409 if that was in another room.
async fn posted_before(
    state: &AppState,
    author_id: &str,
    client_id: Option<&str>,
    room_id: &str,
) -> Result<Option<Message>, ApiError> {
    let Some(client_id) = client_id else {
        return Ok(None);
    };
    let Some(row) = store::message_by_client(&state.db, author_id, client_id).await? else {
        return Ok(None);
    };
    if row.room_id != room_id {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "client_id_taken",
            "that client_id names a message of yours in another room",
        ));
    }
    let cards = store::cards_of(&state.db, &row.id).await?;
    Ok(Some(row.into_message(cards)))
}

/// Who `text` mentions among the room's members: only they may be told of
/// it (a mention is no way to reach someone outside the room). Asks the
/// database only when `text` mentions someone.
async fn mentioned_members<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    room_id: &str,
    text: &str,
) -> Result<Vec<String>, ApiError> {
    let mentions = text::mentions(text);
    if mentions.is_empty() {
        return Ok(mentions);
    }
    let members = store::member_usernames(db, room_id).await?;
    Ok(mentions
        .into_iter()
        .filter(|name| members.contains(name))
        .collect())
}

/// The event for the outbox, continuing the request's trace.
fn event_of<T: dozen_bus::EventType + Serialize>(
    data: &T,
    trace: Option<Extension<TraceParent>>,
) -> Result<Event, ApiError> {
    let mut event = Event::new("chat", data).map_err(|e| ApiError::internal(&e))?;
    if let Some(Extension(trace)) = trace {
        event = event.with_trace(&trace);
    }
    Ok(event)
}

#[utoipa::path(
    patch, path = "/v1/rooms/{id}/messages/{message_id}", tag = "messages", security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The room's id"),
        ("message_id" = uuid::Uuid, Path, description = "The message's id"),
    ),
    request_body = EditedMessage,
    responses(
        (status = 200, description = "The message, edited (or unchanged: the same text)", body = Message),
        (status = 403, description = "Not a member, or not the author", body = ErrorBody),
        (status = 404, description = "No such room or message", body = ErrorBody),
    )
)]
/// `PATCH /v1/rooms/{id}/messages/{message_id} {text}`: only its author may.
/// The new text replaces the old everywhere (history, the stream's
/// `message_edited`); cards of links no longer in it go; `message.edited`
/// is emitted in the same transaction.
pub(crate) async fn edit(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path((room_id, message_id)): Path<(String, String)>,
    trace: Option<Extension<TraceParent>>,
    Json(body): Json<EditedMessage>,
) -> Result<Json<Message>, ApiError> {
    let room_id = known_id(&room_id, "room")?;
    let message_id = known_id(&message_id, "message")?;
    let mut errors = FieldErrors::default();
    let text = check_text(&body.text, &mut errors);
    errors.into_result()?;
    let text = text.expect("into_result reports a missing text");
    require_member(&state, &room_id, &claims.sub).await?;

    let mut tx = state.db.begin().await?;
    let seq = store::next_seq(&mut tx, &room_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no room has that id"))?;
    let mut row = authored_message(&mut tx, &room_id, &message_id, &claims.sub, "edit").await?;
    if row.text == text {
        drop(tx); // nothing changes
        let cards = store::cards_of(&state.db, &message_id).await?;
        return Ok(Json(row.into_message(cards)));
    }
    let edited_at = now_millis();
    store::edit_message(&mut tx, &message_id, &text, edited_at).await?;
    row.text = text;
    row.edited_at = Some(edited_at);
    let urls = text::urls(&row.text);
    let cards = store::keep_cards(&mut tx, &message_id, &urls).await?;
    let message = row.clone().into_message(cards);
    store::rewrite_events(&mut tx, &message).await?;
    store::append_event(
        &mut tx,
        &room_id,
        seq,
        kind::MESSAGE_EDITED,
        &message_id,
        &message,
    )
    .await?;
    let edited = MessageEdited {
        message_id: row.id.clone(),
        room_id: row.room_id.clone(),
        author_id: row.author_id.clone(),
        author_username: row.author_username.clone(),
        mentions: mentioned_members(&mut *tx, &room_id, &row.text).await?,
        urls,
        text: row.text,
        sent_at: rfc3339_from_millis(row.sent_at),
        edited_at: rfc3339_from_millis(edited_at),
    };
    let event = event_of(&edited, trace)?;
    state.outbox.enqueue(&mut tx, &event).await?;
    tx.commit().await?;
    state.outbox.committed();
    state.live.changed(&room_id, seq).await;
    tracing::info!(message_id = %message_id, event_id = %event.id, "message edited");
    Ok(Json(message))
}

/// The message, if it is in the room and `user` wrote it: else 404 or 403.
async fn authored_message(
    tx: &mut store::Tx,
    room_id: &str,
    message_id: &str,
    user_id: &str,
    what: &str,
) -> Result<MessageRow, ApiError> {
    let message = store::message(&mut **tx, message_id)
        .await?
        .filter(|m| m.room_id == room_id)
        .ok_or_else(|| ApiError::not_found("no message in this room has that id"))?;
    if message.author_id != user_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_the_author",
            format!("only its author may {what} a message"),
        ));
    }
    Ok(message)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Messages numbered below this: a page's `next_before`.
    #[param(value_type = Option<i64>, minimum = 1)]
    before: Option<String>,
    /// How many, 1–100 (50).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Page {
    messages: Vec<Message>,
    /// Pass as `before` for the next (older) page; null on the last page.
    next_before: Option<i64>,
}

#[utoipa::path(
    get, path = "/v1/rooms/{id}/messages", tag = "messages", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The room's id"), PageQuery),
    responses(
        (status = 200, description = "Newest first", body = Page),
        (status = 403, description = "Not a member of the room", body = ErrorBody),
        (status = 404, description = "No room has that id", body = ErrorBody),
        (status = 422, description = "`before` or `limit` out of range", body = ErrorBody),
    )
)]
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
        None => None,
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
        None => DEFAULT_PAGE,
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
#[utoipa::path(
    delete, path = "/v1/rooms/{id}/messages/{message_id}", tag = "messages", security(("bearer" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The room's id"),
        ("message_id" = uuid::Uuid, Path, description = "The message's id"),
    ),
    responses(
        (status = 204, description = "Deleted: its text and cards are gone from what any reader can fetch"),
        (status = 403, description = "Not a member, or not the author", body = ErrorBody),
        (status = 404, description = "No such room or message", body = ErrorBody),
    )
)]
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
    authored_message(&mut tx, &room_id, &message_id, &claims.sub, "delete").await?;
    store::delete_message(&mut tx, &message_id).await?;
    store::bury_events(&mut tx, &message_id).await?;
    store::append_event(
        &mut tx,
        &room_id,
        seq,
        kind::MESSAGE_DELETED,
        &message_id,
        &MessageDeleted {
            message_id: message_id.clone(),
        },
    )
    .await?;
    tx.commit().await?;
    state.live.changed(&room_id, seq).await;
    tracing::info!(message_id = %message_id, "message deleted");
    Ok(StatusCode::NO_CONTENT)
}
