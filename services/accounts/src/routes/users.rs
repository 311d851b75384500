//! Signing up and reading users.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use dozen_auth::Authenticated;
use dozen_bus::Event;
use dozen_events::UserSignedUp;
use dozen_runtime::clock::{now_millis, rfc3339_from_millis};
use dozen_runtime::http::openapi::ErrorBody;
use dozen_runtime::http::ApiError;
use dozen_runtime::trace::TraceParent;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::sessions::{session_for, Session};
use crate::app::AppState;
use crate::store::{self, InsertError, UserRow};
use crate::validation::{check_email, check_password, check_username, FieldErrors};

/// `POST /v1/users` body. Fields are optional here so a missing one is
/// reported with the others, in the standard 422 shape; the document says
/// they are required, with the rules `validation` applies.
#[derive(Deserialize, ToSchema)]
pub(crate) struct SignupRequest {
    /// 3–32 of `a-z`, `0-9`, `_`.
    #[schema(example = "alice", value_type = String, required = true)]
    username: Option<String>,
    /// An address such as name@example.com; kept in lower case.
    #[schema(example = "alice@example.com", value_type = String, required = true)]
    email: Option<String>,
    /// 10–128 characters, compared in Unicode NFKC.
    #[schema(example = "correct horse battery", value_type = String, required = true)]
    password: Option<String>,
}

/// A user as the user themself sees it.
#[derive(Serialize, ToSchema)]
pub(crate) struct User {
    id: String,
    username: String,
    email: String,
    /// RFC 3339, UTC.
    created_at: String,
}

/// A user as anyone signed in may see it.
#[derive(Serialize, ToSchema)]
pub(crate) struct PublicUser {
    id: String,
    username: String,
    created_at: String,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            created_at: rfc3339_from_millis(row.created_at),
            id: row.id,
            username: row.username,
            email: row.email,
        }
    }
}

impl From<UserRow> for PublicUser {
    fn from(row: UserRow) -> Self {
        Self {
            created_at: rfc3339_from_millis(row.created_at),
            id: row.id,
            username: row.username,
        }
    }
}

/// Sign up: creates the user and answers with a session token.
#[utoipa::path(
    post, path = "/v1/users", tag = "users",
    request_body = SignupRequest,
    responses(
        (status = 201, description = "Signed up", body = Session),
        (status = 409, description = "Username or e-mail taken", body = ErrorBody),
    )
)]
pub(crate) async fn sign_up(
    State(state): State<AppState>,
    trace: Option<Extension<TraceParent>>,
    Json(body): Json<SignupRequest>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    let mut errors = FieldErrors::default();
    let username = errors.present("username", &body.username);
    if let Some(username) = username {
        check_username(&mut errors, username);
    }
    let email = errors
        .present("email", &body.email)
        .map(|email| check_email(&mut errors, email));
    let password = errors.present("password", &body.password);
    if let Some(password) = password {
        check_password(&mut errors, password);
    }
    errors.into_result()?;
    let (Some(username), Some(email), Some(password)) = (username, email, password) else {
        unreachable!("into_result reports every missing field");
    };

    let password_hash = state
        .passwords
        .hash(password.to_owned())
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let row = UserRow {
        id: uuid::Uuid::now_v7().to_string(),
        username: username.to_owned(),
        email,
        password_hash,
        created_at: now_millis(),
    };
    let tx = state.db.begin().await?;
    let mut tx = store::insert(&state.db, tx, &row)
        .await
        .map_err(|e| match e {
            InsertError::UsernameTaken => ApiError::new(
                StatusCode::CONFLICT,
                "username_taken",
                "that username is taken",
            ),
            InsertError::EmailTaken => ApiError::new(
                StatusCode::CONFLICT,
                "email_taken",
                "an account with that e-mail address exists",
            ),
            InsertError::Database(e) => e.into(),
        })?;
    let signed_up = UserSignedUp {
        user_id: row.id.clone(),
        username: row.username.clone(),
        email: row.email.clone(),
        signed_up_at: rfc3339_from_millis(row.created_at),
    };
    let mut event = Event::new("accounts", &signed_up).map_err(|e| ApiError::internal(&e))?;
    if let Some(Extension(trace)) = trace {
        event = event.with_trace(&trace);
    }
    state.outbox.enqueue(&mut tx, &event).await?;
    tx.commit().await?;
    state.outbox.committed();
    tracing::info!(user_id = %row.id, event_id = %event.id, "user signed up");
    Ok((StatusCode::CREATED, Json(session_for(&state, row)?)))
}

/// The signed-in user, with private fields.
#[utoipa::path(
    get, path = "/v1/users/me", tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, body = User),
        (status = 404, description = "The user no longer exists", body = ErrorBody),
    )
)]
pub(crate) async fn me(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<Json<User>, ApiError> {
    let row = store::by_id(&state.db, &claims.sub)
        .await?
        .ok_or_else(|| ApiError::not_found("the signed-in user no longer exists"))?;
    Ok(Json(row.into()))
}

/// Any user's public fields.
#[utoipa::path(
    get, path = "/v1/users/{id}", tag = "users",
    security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, body = PublicUser),
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
pub(crate) async fn by_id(
    State(state): State<AppState>,
    _: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<PublicUser>, ApiError> {
    let row = store::by_id(&state.db, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no user has that id"))?;
    Ok(Json(row.into()))
}
