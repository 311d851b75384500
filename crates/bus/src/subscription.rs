//! A subscription: a named, durable queue bound to a topic, and how it is consumed.

use std::time::Duration;

/// Declared in code by the consuming service; created on the bus at start.
///
/// Every subscription of a topic gets every event (fan-out); the consumers of
/// one subscription compete for its events (each event goes to one of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Unique on the bus, e.g. `notifier.welcome`.
    pub name: String,
    /// The topic it is bound to, e.g. `user.signed_up`.
    pub topic: String,
    /// Deliveries before an event goes to the dead-letter queue.
    pub max_attempts: u32,
    /// Delay before the first redelivery after a failure; doubled each time.
    pub backoff_initial: Duration,
    /// The longest redelivery delay.
    pub backoff_max: Duration,
    /// An event not acknowledged within this time (its consumer died) is redelivered.
    pub visibility_timeout: Duration,
    /// Events one consumer handles at once.
    pub max_in_flight: usize,
    /// Events with the same ordering key are handled one at a time, in publish order.
    pub ordered: bool,
}

impl Subscription {
    pub fn new(name: &str, topic: &str) -> Self {
        Self {
            name: name.to_owned(),
            topic: topic.to_owned(),
            max_attempts: 5,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            visibility_timeout: Duration::from_secs(30),
            max_in_flight: 16,
            ordered: false,
        }
    }

    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.backoff_initial = initial;
        self.backoff_max = max.max(initial);
        self
    }

    pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
        self.visibility_timeout = timeout;
        self
    }

    pub fn max_in_flight(mut self, limit: usize) -> Self {
        self.max_in_flight = limit.max(1);
        self
    }

    pub fn ordered(mut self) -> Self {
        self.ordered = true;
        self
    }

    /// The delay before redelivering after failed attempt `attempt` (1-based):
    /// exponential, capped, with jitter between half and all of it so that
    /// consumers failing together do not retry together.
    /// The subscription as a service's manifest declares it (what
    /// infrastructure code must create: SQS counts visibility in whole seconds).
    pub fn declared(&self) -> dozen_manifest::Subscription {
        dozen_manifest::Subscription {
            name: self.name.clone(),
            topic: self.topic.clone(),
            max_attempts: self.max_attempts,
            visibility_timeout_seconds: self.visibility_timeout.as_secs_f64().ceil() as u64,
        }
    }

    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let full = self
            .backoff_initial
            .saturating_mul(1 << exponent)
            .min(self.backoff_max);
        let half = full / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_within_jitter_and_stop_at_the_cap() {
        let sub =
            Subscription::new("s", "t").backoff(Duration::from_millis(100), Duration::from_secs(1));
        for (attempt, full_ms) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            let delay = sub.retry_delay(attempt).as_millis() as u64;
            assert!(
                (full_ms / 2..=full_ms).contains(&delay),
                "attempt {attempt}: {delay} ms"
            );
        }
    }
}
