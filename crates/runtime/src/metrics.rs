//! Prometheus metrics: requests by route and status, their latency, and pool use.

use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
pub use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use sqlx::AnyPool;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
    state: &'static str,
}

type LatencyFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// The process's metrics registry; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<RwLock<Registry>>,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    pool_connections: Family<PoolLabels, Gauge>,
    pools: Arc<Mutex<Vec<(String, AnyPool)>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~16 s, doubling.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = LatencyFamily::new_with_constructor(latency_histogram as fn() -> Histogram);
        let pool_connections = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests, by method, route and status",
            latency.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Database pool connections by state (idle, in_use, max)",
            pool_connections.clone(),
        );
        Self {
            registry: Arc::new(RwLock::new(registry)),
            requests,
            latency,
            pool_connections,
            pools: Arc::default(),
        }
    }

    /// Records one answered request. `route` is the route template, never the raw path.
    /// Methods outside RFC 9110's and PATCH count as `OTHER`: a client may
    /// invent any method, and each would otherwise be a series of its own.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        const KNOWN: [&str; 9] = [
            "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
        ];
        let method = if KNOWN.contains(&method) {
            method
        } else {
            "OTHER"
        };
        let labels = RequestLabels {
            method: method.to_owned(),
            route: route.to_owned(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// A counter of the service's own, e.g. `password_checks` (exposed as `…_total`).
    pub fn counter(&self, name: &str, help: &str) -> Counter {
        let counter = Counter::default();
        if let Ok(mut registry) = self.registry.write() {
            registry.register(name, help, counter.clone());
        }
        counter
    }

    /// A gauge of the service's own, e.g. `chat_live_streams`.
    pub fn gauge(&self, name: &str, help: &str) -> Gauge {
        let gauge = Gauge::default();
        if let Ok(mut registry) = self.registry.write() {
            registry.register(name, help, gauge.clone());
        }
        gauge
    }

    /// Reports this pool's connections on every scrape.
    pub fn watch_pool(&self, name: &str, pool: AnyPool) {
        if let Ok(mut pools) = self.pools.lock() {
            pools.push((name.to_owned(), pool));
        }
    }

    /// The metrics in the Prometheus (OpenMetrics) text format.
    pub fn render(&self) -> String {
        if let Ok(pools) = self.pools.lock() {
            for (name, pool) in pools.iter() {
                let idle = pool.num_idle() as i64;
                let size = i64::from(pool.size());
                let max = i64::from(pool.options().get_max_connections());
                for (state, value) in [("idle", idle), ("in_use", size - idle), ("max", max)] {
                    self.pool_connections
                        .get_or_create(&PoolLabels {
                            pool: name.clone(),
                            state,
                        })
                        .set(value);
                }
            }
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        if let Ok(registry) = self.registry.read() {
            let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invented_methods_share_one_series_so_a_client_cannot_grow_the_metrics() {
        let metrics = Metrics::new();
        for method in ["GET", "XAAA1", "XAAA2", "BREW", "get"] {
            metrics.observe_request(method, "/v1/rooms", 200, Duration::from_millis(1));
        }
        let text = metrics.render();
        assert!(text.contains(r#"method="GET""#), "{text}");
        assert!(text.contains(r#"method="OTHER""#), "{text}");
        for invented in ["XAAA1", "XAAA2", "BREW", r#"method="get""#] {
            assert!(!text.contains(invented), "{invented} in {text}");
        }
    }
}
