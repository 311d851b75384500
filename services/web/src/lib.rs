//! Dozen's web service (`web serve` on `PORT`): the browser UI at `/`
//! (every asset embedded in the binary), and — in development — one address
//! for the whole system, routing `/api/<service>/…` to every ready instance
//! of that service. In production a load balancer routes `/api/…` and web
//! serves only the UI.

pub mod gateway;
pub mod manifest;
pub mod ui;
pub mod upstreams;

use std::time::Duration;

use dozen_runtime::config::{ConfigError, Env, FromEnv};
use dozen_runtime::http::{service_router, HttpServer, HttpSettings, Ops, Readiness};
use dozen_runtime::logging::LogSettings;
use dozen_runtime::metrics::Metrics;
use dozen_runtime::service_info;
use dozen_runtime::shutdown::Shutdown;

use crate::gateway::Gateway;
use crate::upstreams::Upstreams;

/// How often each instance's readiness is asked.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub struct Settings {
    pub log: LogSettings,
    pub http: HttpSettings,
    /// `DOZEN_UPSTREAMS`: `service=host:port,…;…` (set by `dozen up`).
    pub upstreams: Upstreams,
}

impl FromEnv for Settings {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            log: LogSettings::from_env(env)?,
            http: HttpSettings::from_env(env)?,
            upstreams: Upstreams::parse(env.raw("DOZEN_UPSTREAMS").unwrap_or_default())?,
        })
    }
}

/// The web process, bound; serves until shutdown and drains.
#[derive(Debug)]
pub struct Web {
    server: HttpServer,
    app: axum::Router,
    upstreams: Upstreams,
    client: reqwest::Client,
    shutdown: Shutdown,
}

impl Web {
    pub async fn bind(settings: Settings, shutdown: Shutdown) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        let gateway = Gateway {
            upstreams: settings.upstreams.clone(),
            client: client.clone(),
        };
        let info = service_info!("web").with_release_id(settings.http.release_id.clone());
        let app = service_router(
            gateway::router(gateway).merge(ui::router()),
            Ops::new(info, Readiness::new(shutdown.clone()), Metrics::new()),
            &settings.http,
        );
        Ok(Self {
            server: HttpServer::bind(&settings.http).await?,
            app,
            upstreams: settings.upstreams,
            client,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tokio::spawn(
            self.upstreams
                .watch(self.client, CHECK_EVERY, self.shutdown.clone()),
        );
        Ok(self.server.serve(self.app, self.shutdown).await?)
    }
}
