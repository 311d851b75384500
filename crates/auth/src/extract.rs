//! `Authenticated`: an axum extractor that requires a valid bearer token.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use dozen_runtime::http::ApiError;

use crate::verifier::{Claims, TokenVerifier};

/// The verified claims of the request's `Authorization: Bearer …` token.
///
/// The router's state must give an `Arc<TokenVerifier>` (via `FromRef`).
/// Without a valid token the request is answered 401 with the standard error body.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

/// The 401 answer, with `WWW-Authenticate` as RFC 6750 asks.
#[derive(Debug)]
pub struct AuthRejection(ApiError);

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer error="invalid_token""#),
        );
        response
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    S: Send + Sync,
    Arc<TokenVerifier>: FromRef<S>,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| {
                AuthRejection(ApiError::unauthorized(
                    "an Authorization: Bearer <token> header is required",
                ))
            })?;
        let verifier = Arc::<TokenVerifier>::from_ref(state);
        verifier
            .verify(token)
            .map(Authenticated)
            .map_err(|e| AuthRejection(ApiError::unauthorized(e.to_string())))
    }
}
