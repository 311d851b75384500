//! A consumer: the worker loop that takes events from a subscription and runs
//! a handler on each, with the delivery policy of the contract (see the crate docs).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use dozen_runtime::shutdown::Shutdown;
use futures::FutureExt;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::backend::{Bus, BusError, Delivery};
use crate::event::{DecodeError, Event, EventType};
use crate::subscription::Subscription;

/// Why a handler did not finish its work.
#[derive(Debug)]
pub struct HandlerError {
    message: String,
    permanent: bool,
}

impl HandlerError {
    /// Worth retrying: a backing service was down, a lock timed out…
    pub fn transient(error: impl std::fmt::Display) -> Self {
        Self {
            message: error.to_string(),
            permanent: false,
        }
    }

    /// Retrying cannot help (the event is malformed): dead-letter it at once.
    pub fn permanent(error: impl std::fmt::Display) -> Self {
        Self {
            message: error.to_string(),
            permanent: true,
        }
    }

    pub fn is_permanent(&self) -> bool {
        self.permanent
    }
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Any error a handler meets with `?` is transient — retried until it
/// passes — except a database error that retrying cannot mend (a violated
/// constraint, a row that is not there, a value that does not decode).
impl<E: std::error::Error + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        let permanent = (&error as &dyn std::any::Any)
            .downcast_ref::<sqlx::Error>()
            .is_some_and(cannot_be_mended);
        Self {
            message: error.to_string(),
            permanent,
        }
    }
}

/// Whether a database error comes back however often the same work is tried.
fn cannot_be_mended(error: &sqlx::Error) -> bool {
    use sqlx::error::ErrorKind;
    match error {
        sqlx::Error::Database(database) => matches!(
            database.kind(),
            ErrorKind::UniqueViolation
                | ErrorKind::ForeignKeyViolation
                | ErrorKind::NotNullViolation
                | ErrorKind::CheckViolation
        ),
        sqlx::Error::RowNotFound
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::Encode(_)
        | sqlx::Error::TypeNotFound { .. } => true,
        _ => false,
    }
}

pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;

/// What a consumer runs for each event.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, event: Event) -> HandlerFuture;
}

impl<F, Fut> Handler for F
where
    F: Fn(Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    fn handle(&self, event: Event) -> HandlerFuture {
        Box::pin(self(event))
    }
}

/// A handler for one event type: decodes the data first; data that does not
/// decode is a poison event and goes straight to the dead-letter queue.
pub fn typed<T, F, Fut>(handler: F) -> impl Handler
where
    T: EventType + Send + 'static,
    F: Fn(T, Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    let handler = Arc::new(handler);
    move |event: Event| {
        let handler = handler.clone();
        async move {
            let data = event
                .decode::<T>()
                .map_err(|e: DecodeError| HandlerError::permanent(e))?;
            handler(data, event).await
        }
    }
}

/// How long an idle consumer waits before looking again without a wake-up.
const IDLE_WAIT: Duration = Duration::from_secs(5);

/// Whether a consumer can take events now, for readiness: `None` while it
/// can, else why not (the bus is down, its subscription cannot be declared).
#[derive(Debug, Default)]
pub struct ConsumerHealth {
    problem: std::sync::Mutex<Option<String>>,
}

impl ConsumerHealth {
    pub fn problem(&self) -> Option<String> {
        self.problem.lock().ok().and_then(|p| p.clone())
    }

    fn set(&self, problem: Option<String>) {
        if let Ok(mut current) = self.problem.lock() {
            *current = problem;
        }
    }
}

/// Runs a handler over a subscription until shutdown.
pub struct Consumer {
    bus: Arc<dyn Bus>,
    subscription: Arc<Subscription>,
    handler: Arc<dyn Handler>,
    health: Arc<ConsumerHealth>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("subscription", &self.subscription.name)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    pub fn new(bus: Arc<dyn Bus>, subscription: Subscription, handler: impl Handler) -> Self {
        Self {
            bus,
            subscription: Arc::new(subscription),
            handler: Arc::new(handler),
            health: Arc::default(),
        }
    }

    pub fn subscription(&self) -> &Subscription {
        &self.subscription
    }

    /// Whether it can take events now; shared with readiness.
    pub fn health(&self) -> Arc<ConsumerHealth> {
        self.health.clone()
    }

    /// Declares the subscription (idempotent), retrying with backoff until
    /// the bus takes it; `false` if shutdown came first.
    async fn declare(&self, shutdown: &Shutdown) -> bool {
        let sub = &self.subscription;
        let mut pause = Duration::from_millis(100);
        loop {
            match self.bus.declare(sub).await {
                Ok(()) => return true,
                Err(error) => {
                    tracing::warn!(subscription = sub.name, error = %error, "cannot declare the subscription yet");
                    self.health
                        .set(Some(format!("cannot declare {}: {error}", sub.name)));
                }
            }
            if sleep_or_shutdown(pause, shutdown).await {
                return false;
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// Declares the subscription, then handles events until `shutdown`
    /// triggers; then takes no more, lets the events in hand finish and
    /// settles them, and returns. A bus that is down is retried, never fatal;
    /// a subscription the broker lost (deleted, or the broker restarted on an
    /// empty store) is declared again.
    pub async fn run(self, shutdown: Shutdown) {
        let sub = self.subscription.clone();
        if !self.declare(&shutdown).await {
            return;
        }
        let permits = Arc::new(Semaphore::new(sub.max_in_flight));
        let mut in_hand = JoinSet::new();
        let (acks, pending_acks) = mpsc::unbounded_channel();
        let acknowledger = tokio::spawn(acknowledge(self.bus.clone(), sub.clone(), pending_acks));
        let mut pause = Duration::from_millis(100);
        while !shutdown.is_triggered() {
            while in_hand.try_join_next().is_some() {}
            let free = permits.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = in_hand.join_next() => {}
                    () = shutdown.triggered() => break,
                }
                continue;
            }
            let received = self.bus.receive(&sub, free).await;
            self.health.set(
                received
                    .as_ref()
                    .err()
                    .map(|error| format!("cannot receive from {}: {error}", sub.name)),
            );
            match received {
                Ok(batch) if batch.is_empty() => {
                    tokio::select! {
                        () = self.bus.wait(&sub, IDLE_WAIT) => {}
                        () = shutdown.triggered() => break,
                    }
                }
                Ok(batch) => {
                    pause = Duration::from_millis(100);
                    for delivery in batch {
                        let permit = permits.clone().acquire_owned().await;
                        let (bus, sub, handler, acks, shutdown) = (
                            self.bus.clone(),
                            sub.clone(),
                            self.handler.clone(),
                            acks.clone(),
                            shutdown.clone(),
                        );
                        in_hand.spawn(async move {
                            process(&*bus, &sub, &*handler, delivery, &acks, &shutdown).await;
                            drop(permit);
                        });
                    }
                }
                Err(BusError::Missing(what)) => {
                    tracing::warn!(
                        subscription = sub.name,
                        missing = what,
                        "the broker has lost the subscription; declaring it again"
                    );
                    if !self.declare(&shutdown).await {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(subscription = sub.name, error = %error, "cannot receive; retrying");
                    if sleep_or_shutdown(pause, &shutdown).await {
                        break;
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        let draining = in_hand.len();
        if draining > 0 {
            tracing::info!(
                subscription = sub.name,
                events = draining,
                "draining events in hand"
            );
        }
        while in_hand.join_next().await.is_some() {}
        drop(acks);
        let _ = acknowledger.await;
        tracing::info!(subscription = sub.name, "consumer stopped");
    }
}

/// Sends acks in batches: whatever piled up while the last batch was on its
/// way goes in the next one, so a busy consumer pays one round trip for many
/// events and an idle one acks each event at once. Returns when every sender
/// is gone and all is sent.
async fn acknowledge(
    bus: Arc<dyn Bus>,
    sub: Arc<Subscription>,
    mut pending: mpsc::UnboundedReceiver<Delivery>,
) {
    const MAX_BATCH: usize = 256;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if let Err(error) = bus.ack_batch(&sub, &batch).await {
            // Unacknowledged, the events come back after the visibility timeout.
            tracing::warn!(subscription = sub.name, events = batch.len(), error = %error, "could not acknowledge");
        }
        batch.clear();
    }
}

/// Sleeps, or returns `true` at once when shutdown triggers.
async fn sleep_or_shutdown(duration: Duration, shutdown: &Shutdown) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => false,
        () = shutdown.triggered() => true,
    }
}

/// Runs the handler on one delivery and settles it: a success goes to the
/// acknowledger (acks are sent in batches); a permanent failure (or a
/// panic: a bug this event sets off) is dead-lettered at once; a transient
/// failure is retried here, with backoff, for as long as it takes — the
/// event stays this consumer's meanwhile, so other events go on and it is
/// never dead-lettered for a fault that passes. At shutdown it is handed
/// back to the bus for another consumer.
///
/// An event whose deliveries keep coming back unsettled — its handler hung
/// or its process died on each of `max_attempts` deliveries — is dead-lettered.
async fn process(
    bus: &dyn Bus,
    sub: &Subscription,
    handler: &dyn Handler,
    delivery: Delivery,
    acks: &mpsc::UnboundedSender<Delivery>,
    shutdown: &Shutdown,
) {
    let event = &delivery.event;
    let span = tracing::info_span!(
        "event",
        subscription = sub.name,
        event_id = event.id,
        event_type = event.event_type,
        trace_id = event.trace_id().unwrap_or_default(),
        attempt = delivery.attempt,
    );
    async {
        if delivery.attempt > sub.max_attempts {
            let error = "delivered again and again without being settled: its handler hung or its process died each time";
            tracing::error!(error, "dead-lettering event");
            settled(bus.dead_letter(sub, &delivery, error).await);
            return;
        }
        let mut failures = 0;
        loop {
            let outcome = AssertUnwindSafe(handler.handle(event.clone()))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err(HandlerError::permanent("the handler panicked")));
            let error = match outcome {
                Ok(()) => {
                    // The acknowledger outlives every handler task: sending cannot fail.
                    let _ = acks.send(delivery.clone());
                    return;
                }
                Err(error) if error.permanent => {
                    tracing::error!(error = %error, "dead-lettering event");
                    settled(bus.dead_letter(sub, &delivery, &error.message).await);
                    return;
                }
                Err(error) => error,
            };
            failures += 1;
            let delay = sub.retry_delay(failures);
            tracing::warn!(
                error = %error,
                failures,
                retry_in_ms = delay.as_millis() as u64,
                "handler failed; will retry"
            );
            if !hold_while_waiting(bus, sub, &delivery, delay, shutdown).await {
                // Shutting down: another consumer takes it from here.
                settled(bus.retry(sub, &delivery, Duration::ZERO, &error.message).await);
                return;
            }
        }
    }
    .instrument(span)
    .await;
}

/// Waits `delay`, keeping the event invisible to other consumers meanwhile
/// (extended every half visibility timeout). `false` if shutdown came first.
async fn hold_while_waiting(
    bus: &dyn Bus,
    sub: &Subscription,
    delivery: &Delivery,
    delay: Duration,
    shutdown: &Shutdown,
) -> bool {
    let step = (sub.visibility_timeout / 2).max(Duration::from_millis(100));
    let mut left = delay;
    loop {
        if let Err(error) = bus.extend(sub, delivery, sub.visibility_timeout).await {
            // Another consumer may take it meanwhile: the inbox keeps the effect single.
            tracing::warn!(error = %error, "could not keep hold of the event");
        }
        let wait = left.min(step);
        if sleep_or_shutdown(wait, shutdown).await {
            return false;
        }
        left = left.saturating_sub(wait);
        if left.is_zero() {
            return true;
        }
    }
}

fn settled(outcome: Result<(), crate::backend::BusError>) {
    if let Err(error) = outcome {
        // Unsettled, the event comes back after the visibility timeout.
        tracing::warn!(error = %error, "could not settle the event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_that_retrying_cannot_mend_are_permanent_and_the_rest_transient() {
        let permanent = |e: sqlx::Error| HandlerError::from(e).is_permanent();
        assert!(permanent(sqlx::Error::RowNotFound));
        assert!(permanent(sqlx::Error::ColumnNotFound("x".into())));
        assert!(!permanent(sqlx::Error::PoolTimedOut));
        assert!(!permanent(sqlx::Error::Io(std::io::Error::other("reset"))));
        let not_database = HandlerError::from(std::io::Error::other("smtp down"));
        assert!(!not_database.is_permanent());
    }
}
