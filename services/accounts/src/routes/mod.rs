//! The HTTP API of accounts.

pub(crate) mod keys;
pub(crate) mod sessions;
pub(crate) mod users;

use axum::routing::{get, post};
use axum::Router;

use crate::app::AppState;

/// The service's own routes, without the standard ones and middleware, so
/// tests can drive it without a socket.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/users", post(users::sign_up))
        .route("/v1/users/me", get(users::me))
        .route("/v1/users/{id}", get(users::by_id))
        .route("/v1/sessions", post(sessions::log_in))
        .route("/.well-known/jwks.json", get(keys::jwks))
        .route("/openapi.json", get(crate::openapi::document))
        .with_state(state)
}
