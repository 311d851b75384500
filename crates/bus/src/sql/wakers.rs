//! Waking idle consumers: one `Notify` per topic, shared by a process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub(crate) struct Wakers {
    topics: Mutex<HashMap<String, Arc<Notify>>>,
    /// Consumers idling right now; watchers only poll while there are some.
    waiting: AtomicUsize,
    waiter_arrived: Notify,
}

impl Wakers {
    pub fn topic(&self, topic: &str) -> Arc<Notify> {
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.entry(topic.to_owned()).or_default().clone()
    }

    /// Wakes the consumers idling on `topic`.
    pub fn wake(&self, topic: &str) {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(notify) = topics.get(topic) {
            notify.notify_waiters();
        }
    }

    /// Wakes every idle consumer: something changed, we do not know where.
    pub fn wake_all(&self) {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        for notify in topics.values() {
            notify.notify_waiters();
        }
    }

    /// Marks a consumer as idling until the guard drops.
    pub fn waiting(&self) -> WaitingGuard<'_> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        self.waiter_arrived.notify_one();
        WaitingGuard(self)
    }

    /// Completes once at least one consumer is idling.
    pub async fn someone_waiting(&self) {
        while self.waiting.load(Ordering::SeqCst) == 0 {
            self.waiter_arrived.notified().await;
        }
    }

    pub fn anyone_waiting(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }
}

pub(crate) struct WaitingGuard<'a>(&'a Wakers);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}
