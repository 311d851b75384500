//! `/api/<service>/<path>` → the same path, as received (still
//! percent-encoded), on a ready instance of the service, round robin — as a
//! load balancer routing by path sends it: each service answers its public
//! API under `/api/<service>` and nothing else there (not `/metrics`). A
//! path with a dot segment (`.`, `..`, also encoded) or an encoded `/` or
//! `\` in a segment is refused (400), so nothing can reach outside its
//! service's prefix. `X-Forwarded-For` gets the caller's address, as a
//! proxy's should. A request that could not be delivered at all (the
//! connection was refused) goes to the next instance whatever its method,
//! and the refusing instance counts as not ready until its next check. A
//! request that may be repeated (GET, HEAD, PUT, DELETE, OPTIONS) also goes
//! to the next instance when one fails mid-way or is draining (503); others
//! are sent once. The request id goes along.

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Router};
use dozen_runtime::http::{ApiError, PeerAddress, RequestId};
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
    send(state, service, request_id, request).await
}

async fn forward(
    state: State<Gateway>,
    Path((service, _)): Path<(String, String)>,
    request_id: Option<Extension<RequestId>>,
    request: Request,
) -> Result<Response, ApiError> {
    send(state, service, request_id, request).await
}

/// Whether a segment of a raw path could step out of its place once a
/// server or a URL parser decodes it: `.` and `..` (in any encoding the URL
/// standard treats as such), or an encoded `/` or `\\` inside.
fn escapes(raw_path: &str) -> bool {
    raw_path.split('/').any(|segment| {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
        decoded == "." || decoded == ".." || decoded.contains(['/', '\\'])
    })
}

async fn send(
    State(gateway): State<Gateway>,
    service: String,
    request_id: Option<Extension<RequestId>>,
    request: Request,
) -> Result<Response, ApiError> {
    let instances = gateway
        .upstreams
        .in_turn(&service)
        .ok_or_else(|| ApiError::not_found(format!("no service is called {service:?}")))?;
    let none_ready = !instances.iter().any(|i| i.is_ready());
    let (parts, body) = request.into_parts();
    // As received: still encoded, prefix and all.
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), ToString::to_string);
    if escapes(parts.uri.path()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_path",
            "the path has a dot segment or an encoded slash in a segment",
        ));
    }
    let forwarded_for = forwarded_for(&parts);
    let body = axum::body::to_bytes(body, MAX_FORWARDED_BODY)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the body is too large",
            )
        })?;
    let repeatable = repeatable(&parts.method);
    let mut last_failure = None;
    for instance in &instances {
        let mut upstream = gateway
            .client
            .request(
                parts.method.clone(),
                format!("http://{}{path_and_query}", instance.address),
            )
            .body(body.clone());
        for (name, value) in &parts.headers {
            if !hop_by_hop(name) && name != "x-forwarded-for" {
                upstream = upstream.header(name, value);
            }
        }
        if let Some(chain) = &forwarded_for {
            upstream = upstream.header("x-forwarded-for", chain);
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
    if none_ready {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_ready_instance",
            format!("no instance of {service} is ready; try again shortly"),
        ));
    }
    Err(ApiError::new(
        StatusCode::BAD_GATEWAY,
        "bad_gateway",
        format!("no instance of {service} answered"),
    ))
}

/// The caller's `X-Forwarded-For` chain with the caller's own address at its end.
fn forwarded_for(parts: &axum::http::request::Parts) -> Option<HeaderValue> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<PeerAddress>>()?
        .0
         .0
        .ip();
    let earlier: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect();
    let chain = if earlier.is_empty() {
        peer.to_string()
    } else {
        format!("{}, {peer}", earlier.join(", "))
    };
    HeaderValue::from_str(&chain).ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_that_could_step_out_of_its_prefix_is_caught_in_every_encoding() {
        for bad in [
            "/api/accounts/v1/users/..%2F..%2Fmetrics",
            "/api/accounts/../metrics",
            "/api/accounts/./v1",
            "/api/accounts/%2e%2e/metrics",
            "/api/accounts/%2E%2e/metrics",
            "/api/accounts/.%2e/metrics",
            "/api/accounts/v1/users/%2fetc",
            "/api/accounts/v1/users/a%5cb",
            "/api/accounts/..",
        ] {
            assert!(escapes(bad), "{bad}");
        }
        for good in [
            "/api/accounts/v1/users/me",
            "/api/accounts/v1/users/...",
            "/api/accounts/.well-known/jwks.json",
            "/api/chat/v1/rooms/%252e%252e",
            "/api/chat/v1/rooms/caf%C3%A9",
            "/api/chat/v1/rooms/%zz%",
            "/api/chat/v1/rooms/%",
        ] {
            assert!(!escapes(good), "{good}");
        }
    }
}
