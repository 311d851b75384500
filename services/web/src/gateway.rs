//! `/api/<service>/<path>` → `<path>` on a ready instance of the service,
//! round robin. A request that could not be delivered at all (the
//! connection was refused) goes to the next instance whatever its method,
//! and the refusing instance counts as not ready until its next check. A
//! request that may be repeated (GET, HEAD, PUT, DELETE, OPTIONS) also goes
//! to the next instance when one fails mid-way or is draining (503); others
//! are sent once. The request id goes along.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Router};
use dozen_runtime::http::{ApiError, RequestId};
use futures::TryStreamExt;

use crate::upstreams::Upstreams;

#[derive(Debug, Clone)]
pub struct Gateway {
    pub upstreams: Upstreams,
    pub client: reqwest::Client,
}

/// Larger bodies are refused (413) rather than buffered.
const MAX_FORWARDED_BODY: usize = 1024 * 1024;

pub fn router(gateway: Gateway) -> Router {
    Router::new()
        .route("/api/{service}", any(forward_root))
        .route("/api/{service}/{*path}", any(forward))
        .with_state(gateway)
}

fn repeatable(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    )
}

async fn forward_root(
    state: State<Gateway>,
    Path(service): Path<String>,
    request_id: Option<Extension<RequestId>>,
    request: Request,
) -> Result<Response, ApiError> {
    forward(state, Path((service, String::new())), request_id, request).await
}

async fn forward(
    State(gateway): State<Gateway>,
    Path((service, path)): Path<(String, String)>,
    request_id: Option<Extension<RequestId>>,
    request: Request,
) -> Result<Response, ApiError> {
    let instances = gateway
        .upstreams
        .in_turn(&service)
        .ok_or_else(|| ApiError::not_found(format!("no service is called {service:?}")))?;
    if instances.is_empty() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_ready_instance",
            format!("no instance of {service} is ready; try again shortly"),
        ));
    }
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, MAX_FORWARDED_BODY)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the body is too large",
            )
        })?;
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let repeatable = repeatable(&parts.method);
    let mut last_failure = None;
    for instance in &instances {
        let mut upstream = gateway
            .client
            .request(
                parts.method.clone(),
                format!("http://{}/{path}{query}", instance.address),
            )
            .body(body.clone());
        for (name, value) in &parts.headers {
            if !hop_by_hop(name) {
                upstream = upstream.header(name, value);
            }
        }
        if let Some(Extension(RequestId(id))) = &request_id {
            upstream = upstream.header("x-request-id", id);
        }
        match upstream.send().await {
            Ok(answer) if answer.status() == StatusCode::SERVICE_UNAVAILABLE && repeatable => {
                last_failure = Some(format!("{} is draining", instance.address));
            }
            Ok(answer) => return Ok(relay(answer)),
            // Refused: nothing was delivered, so any request may go elsewhere.
            Err(error) if error.is_connect() => {
                instance.mark_unready();
                last_failure = Some(format!("{}: {error}", instance.address));
            }
            Err(error) if repeatable => {
                last_failure = Some(format!("{}: {error}", instance.address));
            }
            Err(error) => {
                last_failure = Some(format!("{}: {error}", instance.address));
                break;
            }
        }
        tracing::info!(
            service,
            failure = last_failure.as_deref(),
            "trying the next instance"
        );
    }
    tracing::warn!(
        service,
        failure = last_failure.as_deref(),
        "no instance answered"
    );
    Err(ApiError::new(
        StatusCode::BAD_GATEWAY,
        "bad_gateway",
        format!("no instance of {service} answered"),
    ))
}

fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "content-length"
    )
}

/// The upstream's answer as it comes (streamed, so live streams stay live).
fn relay(answer: reqwest::Response) -> Response {
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = Body::from_stream(answer.bytes_stream().map_err(std::io::Error::other));
    let mut response = (status, body).into_response();
    for (name, value) in &headers {
        if !hop_by_hop(name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}
