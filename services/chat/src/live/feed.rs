//! A room's feed on this instance: the one reader of the room's new events
//! for all its streams here, and the one reader of its presence.
//!
//! A feed sleeps until it is woken: by a post here, by another instance's
//! signal, or by the heartbeat. Then it reads what is new once and hands
//! it to every stream of the room here as one shared [`EventBatch`]. While
//! the subscription to the other instances is lost it polls every
//! [`POLL`] instead, one query for the room however many read it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, Notify};
use tokio::time::Instant;

use super::{Live, RoomSignal};
use crate::store::{self, RoomEvent};

/// How often a feed reads its room while it cannot hear the other
/// instances, and how soon it tries again after the database failed.
pub const POLL: Duration = Duration::from_millis(250);
/// A room's presence is read at most this often, however many streams
/// open or close: a thousand opening read it a few times, not a thousand.
pub const PRESENCE_EVERY: Duration = Duration::from_millis(250);
/// Events read by one query.
const BATCH: i64 = 100;

/// Every event of a room after `after`, up to the last one's number, in
/// order: a stream that has seen up to `after`, or further but not past
/// the last, takes the rest and misses nothing.
#[derive(Debug, PartialEq, Eq)]
pub struct EventBatch {
    pub after: i64,
    pub events: Vec<RoomEvent>,
}

impl EventBatch {
    /// What a stream that has seen up to `seen` takes from it: `None` when
    /// it missed events before the batch (it reads them itself).
    pub fn after_seen(&self, seen: i64) -> Option<&[RoomEvent]> {
        if seen < self.after {
            return None;
        }
        let first_unseen = self.events.partition_point(|e| e.seq <= seen);
        Some(&self.events[first_unseen..])
    }
}

/// What a feed is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wake {
    /// New events may be in the database.
    Events,
    /// Who is online may have changed.
    Presence,
}

/// A feed's to-do flags; a wake while it works is kept, never lost.
#[derive(Debug, Default)]
pub(super) struct Wakes {
    notify: Notify,
    events: AtomicBool,
    presence: AtomicBool,
    closed: AtomicBool,
}

impl Wakes {
    pub(super) fn wake(&self, wake: Wake) {
        match wake {
            Wake::Events => self.events.store(true, Ordering::Release),
            Wake::Presence => self.presence.store(true, Ordering::Release),
        }
        self.notify.notify_one();
    }

    /// The room's last stream here closed: the feed ends.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
    }
}

/// Runs `room_id`'s feed, from event number `head`, until [`Wakes::close`].
pub(super) async fn run(
    live: Live,
    room_id: String,
    mut head: i64,
    wakes: Arc<Wakes>,
    signals: broadcast::Sender<RoomSignal>,
) {
    let mut connected = live.inner.connected.subscribe();
    let mut presence_read: Option<Instant> = None;
    let mut retry = false;
    loop {
        if wakes.closed.load(Ordering::Acquire) {
            return;
        }
        if retry || wakes.events.swap(false, Ordering::AcqRel) {
            retry = !read_new(&live, &room_id, &mut head, &signals).await;
        }
        let presence_due = presence_read.map_or(Instant::now(), |at| at + PRESENCE_EVERY);
        let presence_owed = wakes.presence.load(Ordering::Acquire);
        if presence_owed && presence_due <= Instant::now() {
            wakes.presence.store(false, Ordering::Release);
            presence_read = Some(Instant::now());
            live.refresh_presence(&room_id).await;
            continue;
        }
        let polling = retry || !*connected.borrow_and_update();
        tokio::select! {
            () = wakes.notify.notified() => {}
            () = tokio::time::sleep(POLL), if polling => retry = true,
            () = tokio::time::sleep_until(presence_due), if presence_owed => {}
            changed = connected.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads everything after `head` and hands it to the streams; `false` when
/// the database failed (the feed tries again).
async fn read_new(
    live: &Live,
    room_id: &str,
    head: &mut i64,
    signals: &broadcast::Sender<RoomSignal>,
) -> bool {
    loop {
        live.inner.feed_reads.inc();
        match store::events_after(&live.inner.db, room_id, *head, BATCH).await {
            Ok(events) => {
                let Some(last) = events.last().map(|e| e.seq) else {
                    return true;
                };
                let full = events.len() as i64 == BATCH;
                let batch = EventBatch {
                    after: *head,
                    events,
                };
                *head = last;
                let _ = signals.send(RoomSignal::Events(Arc::new(batch)));
                if !full {
                    return true;
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, room_id, "a room's feed could not read; retrying");
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64) -> RoomEvent {
        RoomEvent {
            seq,
            kind: "message".into(),
            body: format!("{{\"n\":{seq}}}"),
        }
    }

    fn seqs(events: &[RoomEvent]) -> Vec<i64> {
        events.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn a_stream_takes_from_a_batch_only_what_it_has_not_seen() {
        let batch = EventBatch {
            after: 10,
            events: vec![event(11), event(12), event(14)],
        };
        assert_eq!(batch.after_seen(10).map(seqs), Some(vec![11, 12, 14]));
        assert_eq!(batch.after_seen(11).map(seqs), Some(vec![12, 14]));
        // A number left unused (a card for a message that went) is no gap.
        assert_eq!(batch.after_seen(13).map(seqs), Some(vec![14]));
        assert_eq!(batch.after_seen(14).map(seqs), Some(vec![]));
        assert_eq!(batch.after_seen(20).map(seqs), Some(vec![]));
    }

    #[test]
    fn a_stream_behind_a_batch_is_told_to_read_for_itself() {
        let batch = EventBatch {
            after: 10,
            events: vec![event(11)],
        };
        assert_eq!(batch.after_seen(9), None);
        assert_eq!(batch.after_seen(0), None);
    }
}
