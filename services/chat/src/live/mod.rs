//! What is live in chat beyond its database, shared by every chat instance
//! through the cache (`CACHE_URL`):
//!
//! - **presence** and **typing**: expiring sets in the cache. The instance
//!   that holds a user's stream refreshes their presence every third of the
//!   TTL, so an instance that dies takes its users offline within the TTL;
//! - **signals**: one cache channel per room (`room:<id>`) saying that
//!   something happened there (a new event number, someone typing, presence
//!   changed, a member read). Each instance subscribes once, and wakes only
//!   its own streams of that room and its own users' activity streams. The
//!   database stays the record: a woken stream reads it, so a lost signal
//!   delays an event (the stream's poll finds it) but never loses one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dozen_cache::Cache;
use dozen_runtime::metrics::{Gauge, Metrics};
use dozen_runtime::shutdown::Shutdown;
use tokio::sync::broadcast;

use crate::model::{Presence, Typing, User};

mod presence;
mod signals;

use signals::Signal;

/// How long "typing" shows after the last keystroke announced.
pub const TYPING_TTL: Duration = Duration::from_secs(6);

/// What a stream of a room is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomSignal {
    /// Something new may be in the database: read it.
    Changed,
    Typing(User),
    Presence(Presence),
}

/// Something happened in a room that may change a member's unread count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    pub room_id: String,
    /// Set when only this member's view changed (they read).
    pub reader: Option<String>,
}

/// This instance's live state and its link to the others. Cheap to clone.
#[derive(Clone)]
pub struct Live {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("instance", &self.inner.instance)
            .finish_non_exhaustive()
    }
}

struct Inner {
    cache: Cache,
    /// This process's name among the instances.
    instance: String,
    presence_ttl: Duration,
    rooms: Mutex<HashMap<String, WatchedRoom>>,
    activity: broadcast::Sender<Activity>,
    typing_sent: Mutex<HashMap<(String, String), Instant>>,
    streams: Gauge,
}

/// A room that has streams open on this instance.
struct WatchedRoom {
    signals: broadcast::Sender<RoomSignal>,
    streams: usize,
    /// The users with the room open here, and their number of streams.
    here: HashMap<String, (User, usize)>,
    /// What this instance's streams were last told.
    announced: Option<Presence>,
}

impl Live {
    /// Starts following the other instances and refreshing this one's
    /// presence, until `shutdown`. Nothing waits for the cache: while it is
    /// down, presence and typing are missing and streams fall back to their
    /// poll.
    pub fn start(
        cache: Cache,
        presence_ttl: Duration,
        metrics: &Metrics,
        shutdown: Shutdown,
    ) -> Self {
        let live = Self {
            inner: Arc::new(Inner {
                cache,
                instance: uuid::Uuid::new_v4().to_string(),
                presence_ttl,
                rooms: Mutex::default(),
                activity: broadcast::channel(1024).0,
                typing_sent: Mutex::default(),
                streams: metrics.gauge("chat_live_streams", "Room streams open on this instance"),
            }),
        };
        tokio::spawn(live.clone().follow(shutdown.clone()));
        tokio::spawn(live.clone().heartbeat(shutdown));
        live
    }

    /// Opens `room` for `user`: they are online there until the [`Watch`] is
    /// dropped (or this instance dies and the TTL runs out). Registered
    /// before the first await, so a request dropped half-way leaves nothing
    /// behind.
    pub async fn open(&self, room_id: &str, user: User) -> Watch {
        let (signals, first_here) = {
            let mut rooms = self.inner.rooms.lock().expect("not poisoned");
            let room = rooms
                .entry(room_id.to_owned())
                .or_insert_with(|| WatchedRoom {
                    signals: broadcast::channel(256).0,
                    streams: 0,
                    here: HashMap::new(),
                    announced: None,
                });
            room.streams += 1;
            let here = room
                .here
                .entry(user.id.clone())
                .or_insert((user.clone(), 0));
            here.1 += 1;
            (room.signals.subscribe(), here.1 == 1)
        };
        self.inner.streams.inc();
        let mut watch = Watch {
            signals,
            presence: Presence {
                online: Vec::new(),
                count: 0,
            },
            live: self.clone(),
            room_id: room_id.to_owned(),
            user_id: user.id.clone(),
        };
        if first_here {
            self.put_presence(room_id, &user).await;
            self.publish(room_id, Signal::Presence).await;
        }
        watch.presence = self.refresh_presence(room_id).await;
        watch
    }

    /// Every room's activity on any instance, from now on.
    pub fn activity(&self) -> broadcast::Receiver<Activity> {
        self.inner.activity.subscribe()
    }

    fn tell_here(&self, room_id: &str, signal: RoomSignal) {
        let rooms = self.inner.rooms.lock().expect("not poisoned");
        if let Some(room) = rooms.get(room_id) {
            let _ = room.signals.send(signal);
        }
    }

    /// A stream closed.
    fn close(&self, room_id: &str, user_id: &str) {
        self.inner.streams.dec();
        let last_here = {
            let mut rooms = self.inner.rooms.lock().expect("not poisoned");
            let Some(room) = rooms.get_mut(room_id) else {
                return;
            };
            room.streams -= 1;
            let last_here = match room.here.get_mut(user_id) {
                Some((_, streams)) if *streams > 1 => {
                    *streams -= 1;
                    false
                }
                Some(_) => {
                    room.here.remove(user_id);
                    true
                }
                None => false,
            };
            if room.streams == 0 {
                rooms.remove(room_id);
            }
            last_here
        };
        if !last_here {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let live = self.clone();
        let (room_id, member) = (
            room_id.to_owned(),
            format!("{user_id}@{}", self.inner.instance),
        );
        runtime.spawn(async move {
            if let Err(error) = live
                .inner
                .cache
                .remove(&format!("presence:{room_id}"), &member)
                .await
            {
                tracing::warn!(error = %error, "presence not cleared: the cache is unavailable");
            }
            live.publish(&room_id, Signal::Presence).await;
            live.refresh_presence(&room_id).await;
        });
    }

    fn watched(&self) -> Vec<String> {
        let rooms = self.inner.rooms.lock().expect("not poisoned");
        rooms.keys().cloned().collect()
    }
}

/// An open room stream: the room's signals for it, and its user's presence.
pub struct Watch {
    pub signals: broadcast::Receiver<RoomSignal>,
    /// Who was online when it opened, the opener included.
    pub presence: Presence,
    live: Live,
    room_id: String,
    user_id: String,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("room_id", &self.room_id)
            .finish_non_exhaustive()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.live.close(&self.room_id, &self.user_id);
    }
}

/// A `typing` event for the stream.
pub fn typing_event(user: User) -> Typing {
    Typing {
        user,
        expires_in_ms: TYPING_TTL.as_millis() as u64,
    }
}
