//! Logging in: credentials in, session token out.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dozen_runtime::http::openapi::ErrorBody;
use dozen_runtime::http::{ApiError, ClientAddress};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::users::User;
use crate::app::AppState;
use crate::store::{self, UserRow};
use crate::throttle::Attempt;
use crate::validation::FieldErrors;

/// `POST /v1/sessions` body as read: any field may be missing, and each
/// missing one is reported in the standard 422 shape.
#[derive(Deserialize)]
pub(crate) struct LoginRequest {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

/// `POST /v1/sessions` body as documented: a `username` or an `email`
/// (one, not both), and the `password`.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documentation only; the handler reads `LoginRequest`
pub(crate) enum Login {
    ByUsername(ByUsername),
    ByEmail(ByEmail),
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ByUsername {
    #[schema(example = "alice")]
    username: String,
    #[schema(example = "correct horse battery")]
    password: String,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ByEmail {
    /// Compared in lower case, without surrounding white space.
    #[schema(example = "alice@example.com")]
    email: String,
    #[schema(example = "correct horse battery")]
    password: String,
}

/// A session: the user and a bearer token for them.
#[derive(Serialize, ToSchema)]
pub(crate) struct Session {
    user: User,
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until the token expires.
    expires_in: u64,
}

pub(crate) fn session_for(state: &AppState, row: UserRow) -> Result<Session, ApiError> {
    let issued = state
        .signer
        .issue(&row.id, &row.username)
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Session {
        user: row.into(),
        access_token: issued.token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
    })
}

/// Log in with a username or an e-mail address and a password.
///
/// A wrong password and an unknown user get the same answer in the same
/// time; so do too many attempts for an account or from an address (429,
/// with `Retry-After` in seconds), whether the account exists or not.
#[utoipa::path(
    post, path = "/v1/sessions", tag = "sessions",
    request_body = Login,
    responses(
        (status = 200, description = "Logged in", body = Session),
        (status = 401, description = "Wrong credentials", body = ErrorBody),
        (status = 429, description = "Too many attempts for this account or from this address; wait `Retry-After` seconds",
            body = ErrorBody,
            headers(("retry-after" = u64, description = "Seconds until an attempt is counted afresh"))),
    )
)]
pub(crate) async fn log_in(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    Json(body): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let mut errors = FieldErrors::default();
    let password = errors.present("password", &body.password);
    let login = match (body.username.as_deref(), body.email.as_deref()) {
        (Some(username), None) => Some(LoginName::Username(username)),
        (None, Some(email)) => Some(LoginName::Email(email.trim().to_ascii_lowercase())),
        (None, None) => {
            errors.add("username", "is required (or give an email instead)");
            None
        }
        (Some(_), Some(_)) => {
            errors.add("username", "give either a username or an email, not both");
            None
        }
    };
    errors.into_result()?;
    let (Some(login), Some(password)) = (login, password) else {
        unreachable!("into_result reports every missing field");
    };

    let attempt = Attempt::new(login.name(), address);
    if let Err(throttled) = attempt.count(&state.db, &state.throttle).await? {
        let seconds = throttled.retry_after.as_secs();
        let mut answer = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("too many login attempts; try again in {seconds} s"),
        )
        .into_response();
        answer
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return Ok(answer);
    }
    let row = match &login {
        LoginName::Username(username) => store::by_username(&state.db, username).await?,
        LoginName::Email(email) => store::by_email(&state.db, email).await?,
    };
    let stored = row.as_ref().map(|r| r.password_hash.clone());
    let matches = state
        .passwords
        .verify(password.to_owned(), stored)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    match row {
        Some(row) if matches => {
            attempt.succeeded(&state.db).await?;
            Ok(Json(session_for(&state, row)?).into_response())
        }
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "the username, e-mail or password is wrong",
        )),
    }
}

enum LoginName<'a> {
    Username(&'a str),
    Email(String),
}

impl LoginName<'_> {
    /// What the attempt is counted by.
    fn name(&self) -> &str {
        match self {
            LoginName::Username(username) => username,
            LoginName::Email(email) => email,
        }
    }
}
