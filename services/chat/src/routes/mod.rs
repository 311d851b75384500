//! The HTTP API of chat. Every route needs a signed-in user; reading and
//! posting in a room needs membership.

pub(crate) mod activity;
pub(crate) mod events;
pub(crate) mod messages;
pub(crate) mod rooms;

use axum::routing::{get, post, put};
use axum::Router;
use dozen_auth::Claims;
use dozen_runtime::http::ApiError;

use crate::app::AppState;
use crate::store;

/// The service's own routes, without the standard ones and middleware.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/rooms", post(rooms::create).get(rooms::list))
        .route("/v1/rooms/{id}", get(rooms::show))
        .route("/v1/rooms/{id}/members", post(rooms::join))
        .route(
            "/v1/rooms/{id}/messages",
            post(messages::post).get(messages::page),
        )
        .route(
            "/v1/rooms/{id}/messages/{message_id}",
            axum::routing::patch(messages::edit).delete(messages::delete),
        )
        .route("/v1/rooms/{id}/events", get(events::stream))
        .route("/v1/rooms/{id}/read", put(activity::read))
        .route("/v1/rooms/{id}/typing", post(activity::typing))
        .route("/v1/activity", get(activity::stream))
        .route("/openapi.json", get(crate::openapi::document))
        .with_state(state)
}

/// Ids are UUIDs; anything else names nothing (and never reaches the database).
pub(crate) fn known_id(id: &str, what: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(id)
        .map(|id| id.to_string())
        .map_err(|_| ApiError::not_found(format!("no {what} has that id")))
}

/// 404 when the room does not exist, 403 when `user` is not in it.
pub(crate) async fn require_member(
    state: &AppState,
    room_id: &str,
    user_id: &str,
) -> Result<(), ApiError> {
    if state.known.is_member(room_id, user_id) {
        return Ok(());
    }
    if store::is_member(&state.db, room_id, user_id).await? {
        state.known.member(room_id, user_id);
        return Ok(());
    }
    if store::room(&state.db, user_id, room_id).await?.is_none() {
        return Err(ApiError::not_found("no room has that id"));
    }
    Err(ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "not_a_member",
        "join the room first",
    ))
}

/// The user's name as others see it: from chat's directory, or, before the
/// signup event has reached chat, from the token accounts signed.
pub(crate) async fn display_name(state: &AppState, claims: &Claims) -> Result<String, ApiError> {
    if let Some(name) = state.known.name(&claims.sub) {
        return Ok(name);
    }
    if let Some(name) = store::username(&state.db, &claims.sub).await? {
        state.known.named(&claims.sub, &name);
        return Ok(name);
    }
    Ok(claims
        .preferred_username
        .clone()
        .unwrap_or_else(|| claims.sub.clone()))
}
