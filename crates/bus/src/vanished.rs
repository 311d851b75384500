//! Topics a broker forgot: when a publisher finds the stream, exchange or
//! topic of a topic it published to before gone (a broker restarted on an
//! empty store, a wiped volume, a deleted vhost) — or, where the broker says
//! so, that no queue takes the events of a topic whose events queues took
//! before — it does not re-create the topic or drop the events at once. Made again by the publisher, the topic would have no subscription
//! yet and drop what is published to it; the consumers declare topic and
//! subscription together as soon as they notice, and until then the publish
//! fails, so the outbox keeps the events and its relay tries again. A topic
//! nobody subscribes to any more is re-created after [`GRACE`].

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::backend::BusError;

/// How long a publisher leaves a forgotten topic to its consumers.
pub const GRACE: Duration = Duration::from_secs(30);

/// What one bus connection knows of the topics it published to.
#[derive(Debug, Default)]
pub struct Vanished {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Topics this process found on the broker (or made) before.
    seen: HashSet<String>,
    /// Topics found gone, since when.
    gone_since: HashMap<String, Instant>,
}

impl Vanished {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this process has published to `topic` before, so that its
    /// absence now means the broker lost it.
    pub fn seen(&self, topic: &str) -> bool {
        self.state().seen.contains(topic)
    }

    /// `topic` exists on the broker (found, or made).
    pub fn found(&self, topic: &str) {
        let mut state = self.state();
        state.gone_since.remove(topic);
        state.seen.insert(topic.to_owned());
    }

    /// `topic`, seen before, is not on the broker: `Ok` when the publisher may
    /// make it again (its consumers had [`GRACE`] to do so), else the error
    /// that fails the publish.
    pub fn may_recreate(&self, topic: &str) -> Result<(), BusError> {
        let mut state = self.state();
        let since = *state
            .gone_since
            .entry(topic.to_owned())
            .or_insert_with(Instant::now);
        if since.elapsed() >= GRACE {
            return Ok(());
        }
        Err(BusError::Missing(format!(
            "topic {topic:?}: the broker has lost it or its subscriptions; waiting for them to be declared again (at most {GRACE:?})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_never_seen_is_not_held_back_and_a_forgotten_one_is_until_the_grace_ends() {
        let vanished = Vanished::default();
        assert!(!vanished.seen("t"));
        vanished.found("t");
        assert!(vanished.seen("t"));
        assert!(matches!(
            vanished.may_recreate("t"),
            Err(BusError::Missing(_))
        ));
        // As if the grace had begun long ago.
        vanished
            .state()
            .gone_since
            .insert("t".into(), Instant::now() - GRACE);
        assert!(vanished.may_recreate("t").is_ok());
        vanished.found("t");
        assert!(vanished.state().gone_since.is_empty());
    }
}
