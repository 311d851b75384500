//! `/healthz` (liveness), `/readyz` (readiness) and `/metrics`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::ServiceInfo;

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Check = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// How long one backing service may take to answer a readiness check: well
/// under the second a load balancer or the gateway waits for `/readyz`.
const CHECK_TIMEOUT: Duration = Duration::from_millis(500);

/// Ready means: not shutting down, and every check answers (all at once,
/// each within [`CHECK_TIMEOUT`]). What a service checks is its own: a web
/// process its database, a worker also its bus and its consumers.
#[derive(Clone)]
pub struct Readiness {
    shutdown: Shutdown,
    checks: Vec<(&'static str, Check)>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.checks.iter().map(|(name, _)| *name).collect();
        f.debug_struct("Readiness")
            .field("checks", &names)
            .finish_non_exhaustive()
    }
}

impl Readiness {
    pub fn new(shutdown: Shutdown) -> Self {
        Self {
            shutdown,
            checks: Vec::new(),
        }
    }

    /// Adds a backing service to check; `check` answers `Err(reason)` when it is down.
    pub fn with_check<F, Fut, E>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let check: Check = Arc::new(move || {
            let answer = check();
            Box::pin(async move { answer.await.map_err(|e| e.to_string()) })
        });
        self.checks.push((name, check));
        self
    }

    /// Adds a check that pings a shared handle (a pool, a bus, a mailer): `ping`
    /// gets a clone of `handle` each time.
    pub fn with_ping<T, F, Fut, E>(self, name: &'static str, handle: T, ping: F) -> Self
    where
        T: Clone + Send + Sync + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        self.with_check(name, move || ping(handle.clone()))
    }

    /// Whether the process should get traffic, and each check's answer.
    pub async fn report(&self) -> (bool, Value) {
        if self.shutdown.is_triggered() {
            return (false, json!({ "status": "shutting_down" }));
        }
        let answers =
            futures::future::join_all(self.checks.iter().map(|(name, check)| async move {
                let answer = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                    Ok(Ok(())) => "ok".to_owned(),
                    Ok(Err(reason)) => format!("failing: {reason}"),
                    Err(_) => format!("failing: no answer within {CHECK_TIMEOUT:?}"),
                };
                (*name, answer)
            }))
            .await;
        let ready = answers.iter().all(|(_, answer)| answer == "ok");
        let checks: Map<String, Value> = answers
            .into_iter()
            .map(|(name, answer)| (name.to_owned(), Value::from(answer)))
            .collect();
        let status = if ready { "ready" } else { "not_ready" };
        (ready, json!({ "status": status, "checks": checks }))
    }
}

/// What the standard endpoints need.
#[derive(Debug, Clone)]
pub struct Ops {
    info: ServiceInfo,
    readiness: Readiness,
    metrics: Metrics,
}

impl Ops {
    pub fn new(info: ServiceInfo, readiness: Readiness, metrics: Metrics) -> Self {
        Self {
            info,
            readiness,
            metrics,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub(super) fn router(self) -> Router {
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(Arc::new(self))
    }
}

async fn healthz(State(ops): State<Arc<Ops>>) -> Json<Value> {
    let mut body = json!({ "status": "ok" });
    if let (Value::Object(body), Ok(Value::Object(info))) =
        (&mut body, serde_json::to_value(&ops.info))
    {
        body.extend(info);
    }
    Json(body)
}

async fn readyz(State(ops): State<Arc<Ops>>) -> impl IntoResponse {
    let (ready, body) = ops.readiness.report().await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

async fn metrics(State(ops): State<Arc<Ops>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ops.metrics.render(),
    )
}
