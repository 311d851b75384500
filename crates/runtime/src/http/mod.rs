//! The web process: port binding (factor VII), standard routes and middleware,
//! and a graceful drain on shutdown (factor IX).

mod client;
mod edge;
mod error;
mod fields;
mod middleware;
pub mod openapi;
mod ops;

use std::future::IntoFuture;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

pub use client::{ClientAddress, TrustedProxyHops};
pub use edge::PeerAddress;
pub use error::{code_for, ApiError};
pub use fields::FieldErrors;
pub use middleware::RequestId;
pub use ops::{Ops, Readiness};

use crate::config::{ConfigError, Env, FromEnv};
use crate::shutdown::Shutdown;
use dozen_manifest::Var;

/// `HOST` (default `0.0.0.0`), `PORT` (required; 0 picks a free port),
/// `REQUEST_TIMEOUT` (default 30s), `MAX_BODY_BYTES` (default 65536),
/// `SHUTDOWN_TIMEOUT` (default 25s), `SHUTDOWN_DELAY` (default 1s, within
/// the timeout), `RELEASE_ID` (optional, shown by `/healthz`),
/// `TRUSTED_PROXY_HOPS` (default 0: see [`TrustedProxyHops`]).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub host: IpAddr,
    pub port: u16,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub shutdown_timeout: Duration,
    /// How long the server goes on serving after SIGTERM while `/readyz`
    /// answers 503, so that whatever routes to it stops first.
    pub shutdown_delay: Duration,
    pub release_id: Option<String>,
    pub trusted_proxy_hops: TrustedProxyHops,
}

impl FromEnv for HttpSettings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            host: env.or("HOST", IpAddr::from([0, 0, 0, 0]))?,
            port: env.required("PORT")?,
            request_timeout: env.duration_or("REQUEST_TIMEOUT", Duration::from_secs(30))?,
            max_body_bytes: env.or("MAX_BODY_BYTES", 64 * 1024)?,
            shutdown_timeout: env.duration_or("SHUTDOWN_TIMEOUT", Duration::from_secs(25))?,
            shutdown_delay: env.duration_or("SHUTDOWN_DELAY", DEFAULT_SHUTDOWN_DELAY)?,
            release_id: env.optional("RELEASE_ID")?,
            trusted_proxy_hops: TrustedProxyHops(env.or("TRUSTED_PROXY_HOPS", 0)?),
        })
    }
}

impl HttpSettings {
    /// The variables [`HttpSettings::from_env`] reads, for the service's manifest.
    pub fn vars() -> Vec<Var> {
        vec![
            Var::platform(
                "PORT",
                "8080",
                "the port to serve on; the process runner sets it",
            ),
            Var::optional("HOST", "the address to bind (default 0.0.0.0)"),
            Var::optional(
                "REQUEST_TIMEOUT",
                "longest a request may take (default 30s)",
            ),
            Var::optional("MAX_BODY_BYTES", "largest request body (default 65536)"),
            Var::optional(
                "SHUTDOWN_TIMEOUT",
                "longest the drain after SIGTERM may take (default 25s)",
            ),
            Var::optional(
                "SHUTDOWN_DELAY",
                "after SIGTERM, how long to go on serving while /readyz answers 503, so load balancers stop sending first (default 1s)",
            ),
            Var::platform("RELEASE_ID", "dev", "the release, shown by /healthz"),
            Var::optional(
                "TRUSTED_PROXY_HOPS",
                "how many proxies in front append X-Forwarded-For: the client is that many from the right (default 0: the peer)",
            ),
        ]
    }

    /// Settings for tests and embedding: loopback, a free port, the defaults.
    pub fn local() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            request_timeout: Duration::from_secs(30),
            max_body_bytes: 64 * 1024,
            shutdown_timeout: Duration::from_secs(25),
            shutdown_delay: Duration::ZERO,
            release_id: None,
            trusted_proxy_hops: TrustedProxyHops(0),
        }
    }
}

/// Long enough for the `dozen up` gateway, which asks every half second,
/// to see `/readyz` turn 503 before the listener closes.
const DEFAULT_SHUTDOWN_DELAY: Duration = Duration::from_secs(1);

/// A bound listener, ready to serve a router.
#[derive(Debug)]
pub struct HttpServer {
    listener: TcpListener,
    address: SocketAddr,
    shutdown_timeout: Duration,
    shutdown_delay: Duration,
}

impl HttpServer {
    /// Binds `HOST:PORT` and logs the port actually bound (the first log line).
    pub async fn bind(settings: &HttpSettings) -> std::io::Result<Self> {
        let listener = TcpListener::bind((settings.host, settings.port)).await?;
        let address = listener.local_addr()?;
        tracing::info!(address = %address, port = address.port(), "listening");
        Ok(Self {
            listener,
            address,
            shutdown_timeout: settings.shutdown_timeout,
            shutdown_delay: settings.shutdown_delay.min(settings.shutdown_timeout),
        })
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` triggers; then goes on serving for the
    /// shutdown delay (readiness answers 503 meanwhile, so load balancers and
    /// the gateway stop sending), stops accepting and lets in-flight requests
    /// finish — all within the shutdown timeout.
    pub async fn serve(self, app: Router, shutdown: Shutdown) -> std::io::Result<()> {
        let drain = shutdown.clone();
        let delay = self.shutdown_delay;
        let server = axum::serve(
            edge::EdgeListener(self.listener),
            app.into_make_service_with_connect_info::<edge::PeerAddress>(),
        )
        .with_graceful_shutdown(async move {
            drain.triggered().await;
            if !delay.is_zero() {
                tracing::info!(
                    delay_ms = delay.as_millis() as u64,
                    "not ready; serving a moment more before the listener closes"
                );
                tokio::time::sleep(delay).await;
            }
        })
        .into_future();
        let deadline = async {
            shutdown.triggered().await;
            tokio::time::sleep(self.shutdown_timeout).await;
        };
        tokio::select! {
            result = server => {
                tracing::info!("http server drained");
                result
            }
            () = deadline => {
                tracing::warn!(
                    timeout_ms = self.shutdown_timeout.as_millis() as u64,
                    "shutdown timeout reached; abandoning requests still in flight"
                );
                Ok(())
            }
        }
    }
}

/// The service's own routes plus `/healthz`, `/readyz`, `/metrics`, wrapped in
/// the standard middleware (outermost first): request context (id, span, log
/// line, metrics) → JSON error bodies → panic guard → timeout → body limit.
/// `api` at its own paths and again under `prefix` (`/api/chat`), so a load
/// balancer or ingress that routes by path prefix needs no rewriting.
pub fn also_under(prefix: &str, api: Router) -> Router {
    api.clone().nest(prefix, api)
}

pub fn service_router(api: Router, ops: Ops, settings: &HttpSettings) -> Router {
    let metrics = ops.metrics().clone();
    api.merge(ops.router())
        .route_layer(axum::middleware::from_fn(middleware::remember_route))
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            settings.request_timeout,
        ))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::from_fn(middleware::json_errors))
        .layer(axum::middleware::from_fn_with_state(
            settings.trusted_proxy_hops,
            client::remember_client,
        ))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            middleware::request_context,
        ))
}
