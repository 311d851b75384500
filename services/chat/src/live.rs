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

use dozen_cache::{Cache, Delivery};
use dozen_runtime::metrics::{Gauge, Metrics};
use dozen_runtime::shutdown::Shutdown;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::model::{Presence, Typing, User};

/// How long "typing" shows after the last keystroke announced.
pub const TYPING_TTL: Duration = Duration::from_secs(6);
/// A user's typing is announced at most this often by one instance: a
/// brake on a client that floods, short enough that typing right after
/// sending a message still shows (clients send it every few seconds).
const TYPING_EVERY: Duration = Duration::from_millis(250);
/// The wait before a lost subscription to the cache is made again.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);
const CHANNEL: &str = "room:";

/// What one instance tells the others about a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Signal {
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

    /// Who is typing in `room` now.
    pub async fn typing_now(&self, room_id: &str) -> Vec<User> {
        match self.inner.cache.members(&format!("typing:{room_id}")).await {
            Ok(entries) => entries
                .into_iter()
                .filter_map(|e| serde_json::from_str(&e.value).ok())
                .collect(),
            Err(error) => {
                tracing::warn!(error = %error, "who is typing is unknown: the cache is unavailable");
                Vec::new()
            }
        }
    }

    /// Something new is in `room`'s events, up to `seq`.
    pub async fn changed(&self, room_id: &str, seq: i64) {
        self.tell_here(room_id, RoomSignal::Changed);
        let _ = self.inner.activity.send(Activity {
            room_id: room_id.to_owned(),
            reader: None,
        });
        self.publish(room_id, Signal::Changed { seq }).await;
    }

    /// `user` is typing in `room`.
    pub async fn typing(&self, room_id: &str, user: User) {
        let key = (room_id.to_owned(), user.id.clone());
        {
            let mut sent = self.inner.typing_sent.lock().expect("not poisoned");
            let now = Instant::now();
            if sent.get(&key).is_some_and(|at| now - *at < TYPING_EVERY) {
                return;
            }
            sent.retain(|_, at| now - *at < TYPING_EVERY);
            sent.insert(key, now);
        }
        let value = serde_json::to_string(&user).expect("a user is plain data");
        if let Err(error) = self
            .inner
            .cache
            .put(&format!("typing:{room_id}"), &user.id, &value, TYPING_TTL)
            .await
        {
            tracing::warn!(error = %error, "typing not kept: the cache is unavailable");
        }
        self.tell_here(room_id, RoomSignal::Typing(user.clone()));
        self.publish(room_id, Signal::Typing { user }).await;
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

    async fn publish(&self, room_id: &str, signal: Signal) {
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

    async fn put_presence(&self, room_id: &str, user: &User) {
        let value = serde_json::to_string(user).expect("a user is plain data");
        let member = format!("{}@{}", user.id, self.inner.instance);
        if let Err(error) = self
            .inner
            .cache
            .put(
                &format!("presence:{room_id}"),
                &member,
                &value,
                self.inner.presence_ttl,
            )
            .await
        {
            tracing::warn!(error = %error, "presence not kept: the cache is unavailable");
        }
    }

    /// Reads who is in `room`, and tells this instance's streams if it changed.
    async fn refresh_presence(&self, room_id: &str) -> Presence {
        let presence = match self
            .inner
            .cache
            .members(&format!("presence:{room_id}"))
            .await
        {
            Ok(entries) => {
                let mut online: Vec<User> = entries
                    .into_iter()
                    .filter_map(|e| serde_json::from_str(&e.value).ok())
                    .collect();
                online.sort_by(|a, b| (&a.username, &a.id).cmp(&(&b.username, &b.id)));
                online.dedup_by(|a, b| a.id == b.id);
                Presence {
                    count: online.len(),
                    online,
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, "presence unknown: the cache is unavailable");
                // Those here are surely online.
                self.here(room_id)
            }
        };
        let mut rooms = self.inner.rooms.lock().expect("not poisoned");
        if let Some(room) = rooms.get_mut(room_id) {
            if room.announced.as_ref() != Some(&presence) {
                room.announced = Some(presence.clone());
                let _ = room.signals.send(RoomSignal::Presence(presence.clone()));
            }
        }
        presence
    }

    fn here(&self, room_id: &str) -> Presence {
        let rooms = self.inner.rooms.lock().expect("not poisoned");
        let mut online: Vec<User> = rooms
            .get(room_id)
            .map(|r| r.here.values().map(|(user, _)| user.clone()).collect())
            .unwrap_or_default();
        online.sort_by(|a, b| (&a.username, &a.id).cmp(&(&b.username, &b.id)));
        Presence {
            count: online.len(),
            online,
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

    /// Follows the other instances' signals until `shutdown`.
    async fn follow(self, shutdown: Shutdown) {
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

    fn watched(&self) -> Vec<String> {
        let rooms = self.inner.rooms.lock().expect("not poisoned");
        rooms.keys().cloned().collect()
    }

    /// Every third of the presence TTL: refreshes the presence of the users
    /// here, and reads every watched room's, so those of a dead instance drop out.
    async fn heartbeat(self, shutdown: Shutdown) {
        let every = self.inner.presence_ttl / 3;
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.triggered() => return,
            }
            let here: Vec<(String, User)> = {
                let rooms = self.inner.rooms.lock().expect("not poisoned");
                rooms
                    .iter()
                    .flat_map(|(room_id, room)| {
                        room.here
                            .values()
                            .map(move |(user, _)| (room_id.clone(), user.clone()))
                    })
                    .collect()
            };
            for (room_id, user) in &here {
                self.put_presence(room_id, user).await;
            }
            for room_id in self.watched() {
                self.refresh_presence(&room_id).await;
            }
        }
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
