//! The word between instances: what happened in a room, published on the
//! room's cache channel and heard by every other instance.

use std::time::Duration;

use dozen_cache::Delivery;
use dozen_runtime::shutdown::Shutdown;
use serde::{Deserialize, Serialize};

use super::feed::Wake;
use super::{Activity, Live, RoomSignal};
use crate::model::User;

/// The wait before a lost subscription to the cache is made again.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);
const CHANNEL: &str = "room:";

/// What one instance tells the others about a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum Signal {
    /// The room's events reached number `seq`.
    Changed {
        seq: i64,
    },
    Typing {
        user: User,
    },
    /// Someone opened or closed the room: read its presence again.
    Presence,
    /// A member moved their read marker.
    Read {
        user_id: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// The instance that sent it; it has already told its own streams.
    from: String,
    #[serde(flatten)]
    signal: Signal,
}

/// A process without streams of its own (the worker) telling the web
/// processes that a room changed. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Announcer {
    cache: dozen_cache::Cache,
    from: String,
}

/// How long a change not yet told is tried again, every [`TELL_AGAIN_AFTER`],
/// before it is left to the next change or the next reconnect.
const TELL_FOR: Duration = Duration::from_secs(60);
const TELL_AGAIN_AFTER: Duration = Duration::from_secs(1);

impl Announcer {
    pub fn new(cache: dozen_cache::Cache) -> Self {
        Self {
            cache,
            from: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// `room`'s events reached `seq`; told in the background while the
    /// cache is down, so the caller never waits on it.
    pub async fn changed(&self, room_id: &str, seq: i64) {
        let channel = format!("{CHANNEL}{room_id}");
        let payload = payload(&self.from, Signal::Changed { seq });
        if self.cache.publish(&channel, &payload).await.is_ok() {
            return;
        }
        tracing::warn!("web processes not told of a change: the cache is unavailable; retrying");
        let cache = self.cache.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + TELL_FOR;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(TELL_AGAIN_AFTER).await;
                if cache.publish(&channel, &payload).await.is_ok() {
                    return;
                }
            }
        });
    }
}

fn payload(from: &str, signal: Signal) -> String {
    let envelope = Envelope {
        from: from.to_owned(),
        signal,
    };
    serde_json::to_string(&envelope).expect("a signal is plain data")
}

impl Live {
    /// Something new is in `room`'s events, up to `seq`.
    pub async fn changed(&self, room_id: &str, seq: i64) {
        self.wake(room_id, Wake::Events);
        let _ = self.inner.activity.send(Activity {
            room_id: room_id.to_owned(),
            reader: None,
        });
        self.publish(room_id, Signal::Changed { seq }).await;
    }

    /// `user_id` read `room` up to a new place.
    pub async fn read(&self, room_id: &str, user_id: &str) {
        let _ = self.inner.activity.send(Activity {
            room_id: room_id.to_owned(),
            reader: Some(user_id.to_owned()),
        });
        self.publish(
            room_id,
            Signal::Read {
                user_id: user_id.to_owned(),
            },
        )
        .await;
    }

    pub(super) async fn publish(&self, room_id: &str, signal: Signal) {
        let changed = match signal {
            Signal::Changed { seq } => Some(seq),
            _ => None,
        };
        let payload = payload(&self.inner.instance, signal);
        if let Err(error) = self
            .inner
            .cache
            .publish(&format!("{CHANNEL}{room_id}"), &payload)
            .await
        {
            tracing::warn!(error = %error, "other instances not told: the cache is unavailable");
            if let Some(seq) = changed {
                self.owe(room_id, seq);
            }
        }
    }

    /// Remembers a change the others were not told of, to tell them with
    /// the next heartbeat: their feeds would not otherwise look.
    fn owe(&self, room_id: &str, seq: i64) {
        let mut owed = self.inner.owed.lock().expect("not poisoned");
        let at = owed.entry(room_id.to_owned()).or_insert(seq);
        *at = (*at).max(seq);
    }

    /// Tells the others of the changes [`Self::owe`] kept.
    pub(super) async fn pay_owed(&self) {
        let owed = std::mem::take(&mut *self.inner.owed.lock().expect("not poisoned"));
        for (room_id, seq) in owed {
            self.publish(&room_id, Signal::Changed { seq }).await;
        }
    }

    /// Follows the other instances' signals until `shutdown`.
    pub(super) async fn follow(self, shutdown: Shutdown) {
        while !shutdown.is_triggered() {
            let mut subscription = match self.inner.cache.subscribe(CHANNEL).await {
                Ok(subscription) => {
                    // What was written before is read once now.
                    self.inner.connected.send_replace(true);
                    self.missed_some();
                    subscription
                }
                Err(error) => {
                    tracing::warn!(error = %error, "cannot hear other instances; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(RESUBSCRIBE_AFTER) => continue,
                        () = shutdown.triggered() => return,
                    }
                }
            };
            loop {
                let delivery = tokio::select! {
                    delivery = subscription.next() => delivery,
                    () = shutdown.triggered() => return,
                };
                match delivery {
                    Some(Delivery::Message(message)) => {
                        let Some(room_id) = message.channel.strip_prefix(CHANNEL) else {
                            continue;
                        };
                        match serde_json::from_str::<Envelope>(&message.payload) {
                            Ok(envelope) if envelope.from != self.inner.instance => {
                                self.heard(room_id, envelope.signal);
                            }
                            Ok(_) => {}
                            Err(error) => {
                                tracing::warn!(error = %error, "an unreadable signal was ignored");
                            }
                        }
                    }
                    Some(Delivery::Lost) => {
                        self.inner.connected.send_replace(false);
                    }
                    Some(Delivery::Gap) => {
                        self.inner.connected.send_replace(true);
                        self.missed_some();
                    }
                    None => break,
                }
            }
            self.inner.connected.send_replace(false);
        }
    }

    fn heard(&self, room_id: &str, signal: Signal) {
        match signal {
            Signal::Changed { .. } => {
                self.wake(room_id, Wake::Events);
                let _ = self.inner.activity.send(Activity {
                    room_id: room_id.to_owned(),
                    reader: None,
                });
            }
            Signal::Typing { user } => self.tell_here(room_id, RoomSignal::Typing(user)),
            Signal::Presence => self.wake(room_id, Wake::Presence),
            Signal::Read { user_id } => {
                let _ = self.inner.activity.send(Activity {
                    room_id: room_id.to_owned(),
                    reader: Some(user_id),
                });
            }
        }
    }

    /// Signals were lost: every feed here reads again.
    fn missed_some(&self) {
        self.wake_all(Wake::Events);
        self.wake_all(Wake::Presence);
        for room_id in self.watched() {
            let _ = self.inner.activity.send(Activity {
                room_id,
                reader: None,
            });
        }
    }
}
