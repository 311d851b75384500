//! Who is online and who is typing in a room: expiring sets in the cache,
//! kept by the instances that hold the users' streams.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dozen_runtime::shutdown::Shutdown;

use super::{Live, RoomSignal, Signal, TYPING_TTL};
use crate::model::{Presence, User};

/// A user's typing is announced at most this often by one instance: a
/// brake on a client that floods, short enough that typing right after
/// sending a message still shows (clients send it every few seconds).
const TYPING_EVERY: Duration = Duration::from_millis(250);

/// The most users a `presence` event names (the first by username); its
/// `count` is everyone's. A room of thousands online sends a short event.
pub const PRESENCE_LISTED: usize = 100;

/// Who is online, from users named once each: `online` sorted by
/// (username, id) and cut at [`PRESENCE_LISTED`].
fn listed(mut online: Vec<User>, count: usize) -> Presence {
    online.sort_by(|a, b| (&a.username, &a.id).cmp(&(&b.username, &b.id)));
    online.truncate(PRESENCE_LISTED);
    Presence { online, count }
}

/// `presence` with `user` in it, as it is about to be read again.
pub(super) fn with(presence: &Presence, user: &User) -> Presence {
    if presence.online.iter().any(|u| u.id == user.id) {
        return presence.clone();
    }
    let mut online = presence.online.clone();
    online.push(user.clone());
    listed(online, presence.count + 1)
}

impl Live {
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

    pub(super) async fn put_presence(&self, room_id: &str, user: &User) {
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
    pub(super) async fn refresh_presence(&self, room_id: &str) -> Arc<Presence> {
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
                // One user may be here through several instances.
                online.sort_by(|a, b| a.id.cmp(&b.id));
                online.dedup_by(|a, b| a.id == b.id);
                let count = online.len();
                listed(online, count)
            }
            Err(error) => {
                tracing::warn!(error = %error, "presence unknown: the cache is unavailable");
                // Those here are surely online.
                self.here(room_id)
            }
        };
        let presence = Arc::new(presence);
        let mut rooms = self.inner.rooms.lock().expect("not poisoned");
        if let Some(room) = rooms.get_mut(room_id) {
            if room.announced.as_deref() != Some(&presence) {
                room.announced = Some(presence.clone());
                let _ = room.signals.send(RoomSignal::Presence(presence.clone()));
            }
        }
        presence
    }

    fn here(&self, room_id: &str) -> Presence {
        let rooms = self.inner.rooms.lock().expect("not poisoned");
        let online: Vec<User> = rooms
            .get(room_id)
            .map(|r| r.here.values().map(|(user, _)| user.clone()).collect())
            .unwrap_or_default();
        let count = online.len();
        listed(online, count)
    }

    /// Every third of the presence TTL: refreshes the presence of the users
    /// here, and has every watched room's read, so those of a dead instance
    /// drop out.
    pub(super) async fn heartbeat(self, shutdown: Shutdown) {
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
            self.wake_all(super::feed::Wake::Presence);
            self.pay_owed().await;
        }
    }
}
