//! Who is online and who is typing in a room: expiring sets in the cache,
//! kept by the instances that hold the users' streams.

use std::time::{Duration, Instant};

use dozen_runtime::shutdown::Shutdown;

use super::{Live, RoomSignal, Signal, TYPING_TTL};
use crate::model::{Presence, User};

/// A user's typing is announced at most this often by one instance: a
/// brake on a client that floods, short enough that typing right after
/// sending a message still shows (clients send it every few seconds).
const TYPING_EVERY: Duration = Duration::from_millis(250);

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
    pub(super) async fn refresh_presence(&self, room_id: &str) -> Presence {
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

    /// Every third of the presence TTL: refreshes the presence of the users
    /// here, and reads every watched room's, so those of a dead instance drop out.
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
            for room_id in self.watched() {
                self.refresh_presence(&room_id).await;
            }
        }
    }
}
