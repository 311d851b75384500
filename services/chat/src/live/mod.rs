//! What is live in chat beyond its database, shared by every chat instance
//! through the cache (`CACHE_URL`):
//!
//! - **presence** and **typing**: expiring sets in the cache. The instance
//!   that holds a user's stream refreshes their presence every third of the
//!   TTL, so an instance that dies takes its users offline within the TTL;
//! - **signals**: one cache channel per room (`room:<id>`) saying that
//!   something happened there (a new event number, someone typing, presence
//!   changed, a member read). Each instance subscribes once, and wakes only
//!   its own streams of that room and its own users' activity streams.
//! - **feeds**: one per room with streams open here ([`feed`]). Woken by a
//!   signal, it reads the room's new events once and hands them to every
//!   stream of the room here, so a post costs one query per instance, not
//!   one per reader, and an idle room costs none. The database stays the
//!   record: while the subscription to the cache is lost, feeds poll it,
//!   and when it is back every feed reads again, so a lost signal delays an
//!   event but never loses one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dozen_cache::Cache;
use dozen_runtime::metrics::{Counter, Gauge, Metrics};
use dozen_runtime::shutdown::Shutdown;
use sqlx::AnyPool;
use tokio::sync::{broadcast, watch};

use crate::model::{Presence, Typing, User};

pub mod feed;
mod presence;
mod signals;

pub use feed::EventBatch;
use feed::Wakes;
pub use presence::PRESENCE_LISTED;
pub use signals::Announcer;
use signals::Signal;

/// How long "typing" shows after the last keystroke announced.
pub const TYPING_TTL: Duration = Duration::from_secs(6);

/// What a stream of a room is told. Cloned for every stream of the room,
/// so what is big is shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomSignal {
    /// New events, read once by the room's feed for every stream here.
    Events(Arc<EventBatch>),
    Typing(User),
    Presence(Arc<Presence>),
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
    /// The record the feeds read.
    db: AnyPool,
    /// Whether the subscription to the other instances' signals is up;
    /// while it is not, feeds poll the database.
    connected: watch::Sender<bool>,
    /// This process's name among the instances.
    instance: String,
    presence_ttl: Duration,
    rooms: Mutex<HashMap<String, WatchedRoom>>,
    activity: broadcast::Sender<Activity>,
    typing_sent: Mutex<HashMap<(String, String), Instant>>,
    /// Changes the other instances could not be told of yet: room → number.
    owed: Mutex<HashMap<String, i64>>,
    streams: Gauge,
    /// Queries by the rooms' feeds, and by streams catching up on their own.
    feed_reads: Counter,
    catch_up_reads: Counter,
}

/// A room that has streams open on this instance.
struct WatchedRoom {
    signals: broadcast::Sender<RoomSignal>,
    /// What its feed has to do.
    wakes: Arc<Wakes>,
    streams: usize,
    /// The users with the room open here, and their number of streams.
    here: HashMap<String, (User, usize)>,
    /// What this instance's streams were last told.
    announced: Option<Arc<Presence>>,
}

impl Live {
    /// Starts following the other instances and refreshing this one's
    /// presence, until `shutdown`. Nothing waits for the cache: while it is
    /// down, presence and typing are missing and the feeds poll `db`.
    pub fn start(
        cache: Cache,
        db: AnyPool,
        presence_ttl: Duration,
        metrics: &Metrics,
        shutdown: Shutdown,
    ) -> Self {
        let live = Self {
            inner: Arc::new(Inner {
                cache,
                db,
                connected: watch::channel(false).0,
                instance: uuid::Uuid::new_v4().to_string(),
                presence_ttl,
                rooms: Mutex::default(),
                activity: broadcast::channel(1024).0,
                typing_sent: Mutex::default(),
                owed: Mutex::default(),
                streams: metrics.gauge("chat_live_streams", "Room streams open on this instance"),
                feed_reads: metrics.counter(
                    "chat_live_feed_reads",
                    "Queries of new room events by the rooms' feeds, one for all a room's streams here",
                ),
                catch_up_reads: metrics.counter(
                    "chat_live_catch_up_reads",
                    "Queries of room events by one stream catching up (on opening, or having fallen behind)",
                ),
            }),
        };
        tokio::spawn(live.clone().follow(shutdown.clone()));
        tokio::spawn(live.clone().heartbeat(shutdown));
        live
    }

    /// Opens `room` for `user`: they are online there until the [`Watch`] is
    /// dropped (or this instance dies and the TTL runs out). `last_seq` is
    /// the room's last event number as the caller just read it: where the
    /// room's feed starts if this is its first stream here. Registered
    /// before the first await, so a request dropped half-way leaves nothing
    /// behind.
    pub async fn open(&self, room_id: &str, user: User, last_seq: i64) -> Watch {
        let (signals, first_here, announced) = {
            let mut rooms = self.inner.rooms.lock().expect("not poisoned");
            let room = rooms.entry(room_id.to_owned()).or_insert_with(|| {
                let signals = broadcast::channel(256).0;
                let wakes = Arc::new(Wakes::default());
                tokio::spawn(feed::run(
                    self.clone(),
                    room_id.to_owned(),
                    last_seq,
                    wakes.clone(),
                    signals.clone(),
                ));
                WatchedRoom {
                    signals,
                    wakes,
                    streams: 0,
                    here: HashMap::new(),
                    announced: None,
                }
            });
            room.streams += 1;
            let here = room
                .here
                .entry(user.id.clone())
                .or_insert((user.clone(), 0));
            here.1 += 1;
            (
                room.signals.subscribe(),
                here.1 == 1,
                room.announced.clone(),
            )
        };
        self.inner.streams.inc();
        let mut watch = Watch {
            signals,
            presence: Arc::new(Presence {
                online: Vec::new(),
                count: 0,
            }),
            live: self.clone(),
            room_id: room_id.to_owned(),
            user_id: user.id.clone(),
        };
        if first_here {
            self.put_presence(room_id, &user).await;
            self.publish(room_id, Signal::Presence).await;
        }
        watch.presence = match announced {
            // Others have it open here: what they were told, with the
            // opener; the feed reads it again soon, for all at once, so a
            // thousand streams opening read it a few times, not a thousand.
            Some(announced) => {
                if first_here {
                    self.wake(room_id, feed::Wake::Presence);
                }
                Arc::new(presence::with(&announced, &user))
            }
            None => self.refresh_presence(room_id).await,
        };
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

    /// Gives `room`'s feed here something to do, if it has one.
    fn wake(&self, room_id: &str, wake: feed::Wake) {
        let rooms = self.inner.rooms.lock().expect("not poisoned");
        if let Some(room) = rooms.get(room_id) {
            room.wakes.wake(wake);
        }
    }

    /// Wakes every feed here.
    fn wake_all(&self, wake: feed::Wake) {
        let rooms = self.inner.rooms.lock().expect("not poisoned");
        for room in rooms.values() {
            room.wakes.wake(wake);
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
                if let Some(room) = rooms.remove(room_id) {
                    room.wakes.close();
                }
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
            live.wake(&room_id, feed::Wake::Presence);
        });
    }

    /// A stream read the database on its own, to catch up.
    pub fn count_catch_up(&self) {
        self.inner.catch_up_reads.inc();
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
    pub presence: Arc<Presence>,
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

impl Watch {
    /// The instance's live state it belongs to.
    pub fn live(&self) -> &Live {
        &self.live
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
