//! What this instance has learned from the database and may take again
//! without asking: who is a member of which room, and users' names.
//!
//! Membership is only ever added (nobody leaves a room, no room is
//! deleted), so a membership seen once stays true; what is not known is
//! asked of the database each time, so a member who joined through another
//! instance is never refused. Names can change (the signup event is their
//! authority), so they are kept for [`NAME_FOR`] only.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a user's name is taken from memory.
pub const NAME_FOR: Duration = Duration::from_secs(10);
/// Past this many entries a table starts again empty: memory stays bounded
/// whatever the number of users and rooms.
pub const MAX_ENTRIES: usize = 100_000;

type MembersByRoom = HashMap<String, HashSet<String>>;

#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Room id → the members seen there (looked up without allocating),
    /// and how many they are in all.
    members: Arc<Mutex<(MembersByRoom, usize)>>,
    names: Arc<Mutex<HashMap<String, (String, Instant)>>>,
}

impl Known {
    /// Whether `user_id` is known to be in `room_id` (`false`: ask the database).
    pub fn is_member(&self, room_id: &str, user_id: &str) -> bool {
        let members = self.members.lock().expect("not poisoned");
        members
            .0
            .get(room_id)
            .is_some_and(|users| users.contains(user_id))
    }

    pub fn member(&self, room_id: &str, user_id: &str) {
        let (by_room, count) = &mut *self.members.lock().expect("not poisoned");
        if *count >= MAX_ENTRIES {
            by_room.clear();
            *count = 0;
        }
        if by_room
            .entry(room_id.to_owned())
            .or_default()
            .insert(user_id.to_owned())
        {
            *count += 1;
        }
    }

    /// `user_id`'s name, if learned less than [`NAME_FOR`] ago.
    pub fn name(&self, user_id: &str) -> Option<String> {
        let names = self.names.lock().expect("not poisoned");
        names
            .get(user_id)
            .filter(|(_, at)| at.elapsed() < NAME_FOR)
            .map(|(name, _)| name.clone())
    }

    pub fn named(&self, user_id: &str, name: &str) {
        let mut names = self.names.lock().expect("not poisoned");
        if names.len() >= MAX_ENTRIES {
            names.retain(|_, (_, at)| at.elapsed() < NAME_FOR);
            if names.len() >= MAX_ENTRIES {
                names.clear();
            }
        }
        names.insert(user_id.to_owned(), (name.to_owned(), Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_membership_once_seen_is_known_and_others_are_not() {
        let known = Known::default();
        known.member("room", "alice");
        assert!(known.is_member("room", "alice"));
        assert!(!known.is_member("room", "bob"));
        assert!(!known.is_member("other", "alice"));
    }

    #[test]
    fn the_tables_never_grow_past_their_bound() {
        let known = Known::default();
        for n in 0..MAX_ENTRIES + 10 {
            known.member("room", &n.to_string());
            known.named(&n.to_string(), "x");
        }
        let (by_room, count) = &*known.members.lock().unwrap();
        assert!(*count <= MAX_ENTRIES);
        assert_eq!(by_room.values().map(HashSet::len).sum::<usize>(), *count);
        assert!(known.names.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
