//! The word between instances: what happened in a room, published on the
//! room's cache channel and heard by every other instance.

use std::time::Duration;

use dozen_cache::Delivery;
use dozen_runtime::shutdown::Shutdown;
use serde::{Deserialize, Serialize};

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

impl Live {
    /// Something new is in `room`'s events, up to `seq`.
    pub async fn changed(&self, room_id: &str, seq: i64) {
        self.tell_here(room_id, RoomSignal::Changed);
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
        let envelope = Envelope {
            from: self.inner.instance.clone(),
            signal,
        };
        let payload = serde_json::to_string(&envelope).expect("a signal is plain data");
        if let Err(error) = self
            .inner
            .cache
            .publish(&format!("{CHANNEL}{room_id}"), &payload)
            .await
        {
            tracing::warn!(error = %error, "other instances not told: the cache is unavailable");
        }
    }

    /// Follows the other instances' signals until `shutdown`.
    pub(super) async fn follow(self, shutdown: Shutdown) {
        while !shutdown.is_triggered() {
            let mut subscription = match self.inner.cache.subscribe(CHANNEL).await {
                Ok(subscription) => subscription,
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
                                self.heard(room_id, envelope.signal).await;
                            }
                            Ok(_) => {}
                            Err(error) => {
                                tracing::warn!(error = %error, "an unreadable signal was ignored");
                            }
                        }
                    }
                    Some(Delivery::Gap) => self.missed_some().await,
                    None => break,
                }
            }
        }
    }

    async fn heard(&self, room_id: &str, signal: Signal) {
        match signal {
            Signal::Changed { .. } => {
                self.tell_here(room_id, RoomSignal::Changed);
                let _ = self.inner.activity.send(Activity {
                    room_id: room_id.to_owned(),
                    reader: None,
                });
            }
            Signal::Typing { user } => self.tell_here(room_id, RoomSignal::Typing(user)),
            Signal::Presence => {
                if self.watched().contains(&room_id.to_owned()) {
                    self.refresh_presence(room_id).await;
                }
            }
            Signal::Read { user_id } => {
                let _ = self.inner.activity.send(Activity {
                    room_id: room_id.to_owned(),
                    reader: Some(user_id),
                });
            }
        }
    }

    /// Signals were lost: every stream here reads again.
    async fn missed_some(&self) {
        for room_id in self.watched() {
            self.tell_here(&room_id, RoomSignal::Changed);
            let _ = self.inner.activity.send(Activity {
                room_id: room_id.clone(),
                reader: None,
            });
            self.refresh_presence(&room_id).await;
        }
    }
}
