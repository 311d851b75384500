//! Creating, listing, showing and joining rooms.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use dozen_auth::{Authenticated, Claims};
use dozen_runtime::http::openapi::ErrorBody;
use dozen_runtime::http::{ApiError, FieldErrors};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::known_id;
use crate::app::AppState;
use crate::model::{Room, RoomDetail};
use crate::store;
use crate::text;

/// Rooms the caller has not joined, listed at most (newest first).
const OTHERS_LISTED: i64 = 200;
/// Rooms the caller has joined, listed at most.
pub const JOINED_LISTED: i64 = 1000;

/// `POST /v1/rooms` body.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct NewRoom {
    /// 1–64 characters as sent, none of them control or invisible
    /// formatting characters, and something to see; kept in Unicode NFC,
    /// trimmed; unique whatever its case.
    #[schema(value_type = String, required = true, example = "general")]
    name: Option<String>,
}

/// `GET /v1/rooms`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Rooms {
    rooms: Vec<Room>,
}

/// `POST /v1/rooms {name}`: the creator is its first member.
#[utoipa::path(
    post, path = "/v1/rooms", tag = "rooms", security(("bearer" = [])),
    request_body = NewRoom,
    responses(
        (status = 201, description = "Made, with the caller its first member", body = RoomDetail),
        (status = 409, description = "A room has that name (whatever its case)", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Json(body): Json<NewRoom>,
) -> Result<(StatusCode, Json<RoomDetail>), ApiError> {
    let mut errors = FieldErrors::default();
    let name = match errors.present("name", &body.name).map(text::room_name) {
        Some(Ok(name)) => Some(name),
        Some(Err(problems)) => {
            for problem in problems {
                errors.add("name", problem);
            }
            None
        }
        None => None,
    };
    errors.into_result()?;
    let (name, key) = name.expect("into_result reports a bad or missing name");
    let id = uuid::Uuid::now_v7().to_string();
    if !store::create_room(&state.db, &id, &name, &key, &claims.sub).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "room_name_taken",
            "a room with that name exists",
        ));
    }
    tracing::info!(room_id = %id, "room created");
    learn_member(&state, &claims).await?;
    Ok((
        StatusCode::CREATED,
        Json(detail(&state, &claims.sub, &id).await?),
    ))
}

/// `GET /v1/rooms`: every room the caller joined (1,000 at most), then the
/// 200 newest others; newest first within each, each saying whether the
/// caller joined it.
#[utoipa::path(
    get, path = "/v1/rooms", tag = "rooms", security(("bearer" = [])),
    responses((status = 200, description = "Joined rooms, then others", body = Rooms))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<Json<Rooms>, ApiError> {
    let mut rooms: Vec<Room> = store::joined_rooms(&state.db, &claims.sub, JOINED_LISTED).await?;
    rooms.extend(store::other_rooms(&state.db, &claims.sub, OTHERS_LISTED).await?);
    Ok(Json(Rooms { rooms }))
}

/// `GET /v1/rooms/{id}`: the room and its members; any signed-in user may look before joining.
#[utoipa::path(
    get, path = "/v1/rooms/{id}", tag = "rooms", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The room's id")),
    responses(
        (status = 200, body = RoomDetail),
        (status = 404, description = "No room has that id", body = ErrorBody),
    )
)]
pub(crate) async fn show(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<RoomDetail>, ApiError> {
    let id = known_id(&id, "room")?;
    Ok(Json(detail(&state, &claims.sub, &id).await?))
}

/// `POST /v1/rooms/{id}/members`: the caller joins; joining again changes nothing.
#[utoipa::path(
    post, path = "/v1/rooms/{id}/members", tag = "rooms", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The room's id")),
    responses(
        (status = 200, description = "A member now", body = RoomDetail),
        (status = 404, description = "No room has that id", body = ErrorBody),
    )
)]
pub(crate) async fn join(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<RoomDetail>, ApiError> {
    let id = known_id(&id, "room")?;
    if store::room(&state.db, &claims.sub, &id).await?.is_none() {
        return Err(ApiError::not_found("no room has that id"));
    }
    store::join(&state.db, &id, &claims.sub).await?;
    learn_member(&state, &claims).await?;
    Ok(Json(detail(&state, &claims.sub, &id).await?))
}

/// A member whose signup event has not reached chat (yet, or ever: a lost
/// event) is known by the name in their token, so others can mention them.
async fn learn_member(state: &AppState, claims: &Claims) -> Result<(), ApiError> {
    if let Some(username) = &claims.preferred_username {
        store::learn_user(&state.db, &claims.sub, username).await?;
    }
    Ok(())
}

async fn detail(state: &AppState, viewer: &str, id: &str) -> Result<RoomDetail, ApiError> {
    let room = store::room(&state.db, viewer, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no room has that id"))?;
    let member_list = store::members(&state.db, id).await?;
    Ok(RoomDetail { room, member_list })
}
