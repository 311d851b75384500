//! Disposability (factor IX): one shutdown signal shared by every part of a process.
//!
//! The first SIGTERM or SIGINT triggers [`Shutdown`]: readiness turns false,
//! the server stops accepting connections and lets in-flight requests finish,
//! workers stop taking new work. A second signal means "now": the process exits
//! at once, as an operator pressing Ctrl-C twice expects.

use tokio_util::sync::CancellationToken;

/// A cloneable handle that every task can watch or trigger.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn trigger(&self) {
        self.0.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Completes once shutdown has been triggered.
    pub async fn triggered(&self) {
        self.0.cancelled().await;
    }

    /// Triggers on the first SIGTERM or SIGINT; exits the process on the second.
    pub fn trigger_on_signals(&self) {
        let shutdown = self.clone();
        let mut signals = Signals::install();
        tokio::spawn(async move {
            let first = signals.next().await;
            tracing::info!(signal = first, "shutdown signal received: draining");
            shutdown.trigger();
            let second = signals.next().await;
            tracing::warn!(signal = second, "second signal received: exiting at once");
            std::process::exit(if second == "SIGINT" { 130 } else { 143 });
        });
    }
}

/// Handlers installed once, so a second signal is never missed between two waits.
#[cfg(unix)]
struct Signals(Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>);

#[cfg(unix)]
impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        Self(
            signal(SignalKind::terminate())
                .ok()
                .zip(signal(SignalKind::interrupt()).ok()),
        )
    }

    async fn next(&mut self) -> &'static str {
        let Some((term, int)) = &mut self.0 else {
            // Without handlers the process can only be stopped by force.
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Self {
        Self
    }

    async fn next(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
