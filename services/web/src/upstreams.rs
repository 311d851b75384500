//! The instances behind each service, which of them are ready, and whose turn it is.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dozen_runtime::config::ConfigError;

/// One instance: where it listens, and whether its `/readyz` said 200 last time.
#[derive(Debug)]
pub struct Instance {
    pub address: String,
    ready: AtomicBool,
}

impl Instance {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Out of the turn until its next readiness check says otherwise (it
    /// refused a connection).
    pub fn mark_unready(&self) {
        self.ready.store(false, Ordering::Relaxed);
    }
}

#[derive(Debug)]
struct Service {
    instances: Vec<Arc<Instance>>,
    turn: AtomicUsize,
}

/// Every service the gateway routes to. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Upstreams(Arc<BTreeMap<String, Service>>);

impl Upstreams {
    /// `accounts=127.0.0.1:8080;chat=127.0.0.1:8180,127.0.0.1:8181` (what
    /// `dozen up` sets as `DOZEN_UPSTREAMS`).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let mut services = BTreeMap::new();
        for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, addresses) = entry.split_once('=').ok_or_else(|| {
                ConfigError::new(
                    "DOZEN_UPSTREAMS",
                    format!("{entry:?} is not `service=host:port,…`"),
                )
            })?;
            let instances: Vec<Arc<Instance>> = addresses
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|address| {
                    Arc::new(Instance {
                        address: address.to_owned(),
                        // Believed ready until a check says otherwise.
                        ready: AtomicBool::new(true),
                    })
                })
                .collect();
            if instances.is_empty() {
                return Err(ConfigError::new(
                    "DOZEN_UPSTREAMS",
                    format!("{name} has no instances"),
                ));
            }
            services.insert(
                name.trim().to_owned(),
                Service {
                    instances,
                    turn: AtomicUsize::new(0),
                },
            );
        }
        Ok(Self(Arc::new(services)))
    }

    /// The service's instances in the order to try them: the ready ones,
    /// starting with the one whose turn it is, then the others — tried only
    /// when no ready one answers ("fail open", as a load balancer does when
    /// every target looks unhealthy: a readiness view a moment old must not
    /// turn a working service away).
    pub fn in_turn(&self, service: &str) -> Option<Vec<Arc<Instance>>> {
        let service = self.0.get(service)?;
        let count = service.instances.len();
        let first = service.turn.fetch_add(1, Ordering::Relaxed) % count;
        let rotated = (0..count).map(|i| service.instances[(first + i) % count].clone());
        let (ready, unready): (Vec<_>, Vec<_>) = rotated.partition(|i| i.is_ready());
        Some(ready.into_iter().chain(unready).collect())
    }

    /// Asks every instance's `/readyz` every `every`, until the process stops.
    pub async fn watch(
        self,
        client: reqwest::Client,
        every: Duration,
        shutdown: dozen_runtime::shutdown::Shutdown,
    ) {
        loop {
            for service in self.0.values() {
                for instance in &service.instances {
                    let ready = client
                        .get(format!("http://{}/readyz", instance.address))
                        .timeout(Duration::from_secs(1))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    instance.ready.store(ready, Ordering::Relaxed);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.triggered() => return,
            }
        }
    }
}
