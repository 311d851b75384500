//! The public keys that verify accounts' tokens.

use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::response::IntoResponse;
use axum::Json;

use crate::app::AppState;

/// The JWK Set (RFC 7517) other services verify tokens with.
#[utoipa::path(
    get, path = "/.well-known/jwks.json", tag = "keys",
    responses((status = 200, description = "The public signing keys, as a JWK Set", content_type = "application/json"))
)]
pub(crate) async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    // Verifiers may cache briefly; a rotated key shows up within five minutes.
    (
        [(CACHE_CONTROL, "public, max-age=300")],
        Json(state.signer.jwks()),
    )
}
