//! A bus that can be made to fail on demand, wrapped around a real one.
//!
//! It stands in for an outage where no real one can be made from the test
//! (a SQLite file is never "unreachable"); the network backends are also
//! tested with real outages (a cut TCP proxy, a broker restart).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dozen_bus::{Bus, BusError, DeadLetter, Delivery, Event, Subscription, SubscriptionStats};

#[derive(Debug)]
pub struct FlakyBus {
    inner: Arc<dyn Bus>,
    /// Every call fails as if the bus were unreachable.
    pub down: AtomicBool,
    /// The broker answers, but has lost the subscriptions and refuses to
    /// make them again (infrastructure-made queues that were deleted).
    pub subscriptions_lost: AtomicBool,
    /// The next publish goes through but reports failure, as when the
    /// connection drops before the broker's confirmation arrives.
    pub lose_next_confirm: AtomicBool,
}

impl FlakyBus {
    pub fn new(inner: Arc<dyn Bus>) -> Self {
        Self {
            inner,
            down: AtomicBool::new(false),
            subscriptions_lost: AtomicBool::new(false),
            lose_next_confirm: AtomicBool::new(false),
        }
    }

    fn check(&self) -> Result<(), BusError> {
        if self.down.load(Ordering::SeqCst) {
            Err(BusError::Unavailable("injected outage".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Bus for FlakyBus {
    async fn declare_topic(&self, topic: &str) -> Result<(), BusError> {
        self.check()?;
        self.inner.declare_topic(topic).await
    }
    async fn declare(&self, subscription: &Subscription) -> Result<(), BusError> {
        self.check()?;
        if self.subscriptions_lost.load(Ordering::SeqCst) {
            return Err(BusError::Backend(
                "injected: the queue cannot be made".into(),
            ));
        }
        self.inner.declare(subscription).await
    }
    async fn publish(&self, topic: &str, events: &[Event]) -> Result<(), BusError> {
        self.check()?;
        self.inner.publish(topic, events).await?;
        if self.lose_next_confirm.swap(false, Ordering::SeqCst) {
            return Err(BusError::Unavailable("injected lost confirmation".into()));
        }
        Ok(())
    }
    async fn republish(&self, topic: &str, events: &[Event]) -> Result<(), BusError> {
        self.check()?;
        self.inner.republish(topic, events).await
    }
    async fn receive(&self, s: &Subscription, max: usize) -> Result<Vec<Delivery>, BusError> {
        self.check()?;
        if self.subscriptions_lost.load(Ordering::SeqCst) {
            return Err(BusError::Missing(format!("injected: no queue {}", s.name)));
        }
        self.inner.receive(s, max).await
    }
    async fn wait(&self, s: &Subscription, max_wait: Duration) {
        self.inner.wait(s, max_wait).await
    }
    async fn ack(&self, s: &Subscription, d: &Delivery) -> Result<(), BusError> {
        self.check()?;
        self.inner.ack(s, d).await
    }
    async fn retry(
        &self,
        s: &Subscription,
        d: &Delivery,
        delay: Duration,
        e: &str,
    ) -> Result<(), BusError> {
        self.check()?;
        self.inner.retry(s, d, delay, e).await
    }
    async fn extend(&self, s: &Subscription, d: &Delivery, by: Duration) -> Result<(), BusError> {
        self.check()?;
        self.inner.extend(s, d, by).await
    }
    async fn dead_letter(&self, s: &Subscription, d: &Delivery, e: &str) -> Result<(), BusError> {
        self.check()?;
        self.inner.dead_letter(s, d, e).await
    }
    async fn ping(&self) -> Result<(), BusError> {
        self.check()?;
        self.inner.ping().await
    }
    async fn subscriptions(&self) -> Result<Vec<SubscriptionStats>, BusError> {
        self.inner.subscriptions().await
    }
    async fn dead_letters(&self, s: &str, limit: usize) -> Result<Vec<DeadLetter>, BusError> {
        self.inner.dead_letters(s, limit).await
    }
    async fn redrive(&self, s: &str, ids: Option<&[String]>) -> Result<u64, BusError> {
        self.inner.redrive(s, ids).await
    }
    async fn purge(&self, s: &str, ids: Option<&[String]>) -> Result<u64, BusError> {
        self.inner.purge(s, ids).await
    }
}
