//! Standard middleware: request context and JSON error bodies.

use std::any::Any;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, Response, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use tracing::Instrument;

use super::error::{code_for, ApiError};
use crate::metrics::Metrics;
use crate::trace::TraceParent;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The routes load balancers, process runners and Prometheus call.
const OPERATIONS_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The request's id: the caller's `x-request-id` when it is sane, else a new UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

fn accepted_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let sane = (1..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    sane.then(|| text.to_owned())
}

/// Gives the request an id and a trace context, a span that every log line inside it carries, one
/// "request finished" line, request metrics, and echoes the id in the answer.
pub async fn request_context(
    State(metrics): State<Metrics>,
    mut request: Request,
    next: Next,
) -> Response<Body> {
    let request_id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(accepted_request_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));
    // Continue the caller's trace, or start one; handlers pass it on to events.
    let trace = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(TraceParent::parse)
        .map_or_else(TraceParent::new, |parent| parent.child());
    let method = request.method().clone();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        trace_id = trace.trace_id(),
        method = %method,
        path = %request.uri().path(),
    );
    request.extensions_mut().insert(trace);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();

    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let status = response.status().as_u16();
    metrics.observe_request(method.as_str(), &route, status, elapsed);
    span.in_scope(|| {
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        if response.status().is_server_error() {
            tracing::error!(status, route, latency_ms, "request finished");
        } else if OPERATIONS_ROUTES.contains(&route.as_str()) {
            // Probes and scrapes come every few seconds from every prober:
            // at info they would drown the requests people make.
            tracing::debug!(status, route, latency_ms, "request finished");
        } else {
            tracing::info!(status, route, latency_ms, "request finished");
        }
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    // No answer is ever to be read as another type than it says (a JSON
    // error as HTML, say).
    response
        .headers_mut()
        .entry(axum::http::header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    response
}

/// Copies the matched route template into the response, where the outer
/// middleware (which runs before routing) can read it for metrics.
pub async fn remember_route(
    matched: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response<Body> {
    let mut response = next.run(request).await;
    if let Some(matched) = matched {
        response.extensions_mut().insert(matched);
    }
    response
}

/// Turns any 4xx/5xx that is not already JSON — axum's own rejections, 404s,
/// 405s, timeouts — into the standard `{"error": {"code", "message"}}` body.
pub async fn json_errors(request: Request, next: Next) -> Response<Body> {
    let response = next.run(request).await;
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_error || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let replacement = ApiError::new(status, code_for(status), message).into_response();
    let (new_parts, body) = replacement.into_parts();
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.extend(new_parts.headers);
    Response::from_parts(parts, body)
}

/// A panicking handler is a bug: answer 500 with the standard body and log it.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = detail, "handler panicked");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the server could not complete the request",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_request_ids_are_kept_and_odd_ones_replaced() {
        let ok = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(accepted_request_id(&ok).as_deref(), Some("abc-123_x.y:z"));
        for bad in ["", "has space", "quote\"", &"x".repeat(129)] {
            let value = HeaderValue::from_str(bad).unwrap();
            assert_eq!(accepted_request_id(&value), None, "{bad:?}");
        }
    }
}
