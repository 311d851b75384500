//! `Authenticated`: an axum extractor that requires a valid bearer token.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use dozen_runtime::http::ApiError;

use crate::keys::{CheckError, Keys};
use crate::verifier::Claims;

/// The verified claims of the request's `Authorization: Bearer …` token.
///
/// The router's state must give the [`Keys`] (via `FromRef`). Without a valid
/// token the request is answered 401 with the standard error body; when no
/// keys can be had (accounts unreachable), 503.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

/// The 401 answer, with `WWW-Authenticate` as RFC 6750 asks.
#[derive(Debug)]
pub struct AuthRejection(ApiError);

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        let unauthorized = self.0.status() == axum::http::StatusCode::UNAUTHORIZED;
        let mut response = self.0.into_response();
        if unauthorized {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer error="invalid_token""#),
            );
        }
        response
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    S: Send + Sync,
    Keys: FromRef<S>,
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
        match Keys::from_ref(state).check(token).await {
            Ok(claims) => Ok(Authenticated(claims)),
            Err(CheckError::Token(e)) => Err(AuthRejection(ApiError::unauthorized(e.to_string()))),
            Err(e @ CheckError::KeysUnavailable(_)) => {
                Err(AuthRejection(ApiError::unavailable(&e)))
            }
        }
    }
}
