//! The events Dozen's services exchange. Each is a topic; producers and
//! consumers share these types, and nothing else, about each other.
//!
//! Adding a field is safe (consumers ignore fields they do not know); renaming
//! or removing one, or changing its meaning, needs a new `VERSION`.

use dozen_bus::EventType;
use serde::{Deserialize, Serialize};

/// A user signed up. Produced by accounts, in the same transaction as the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSignedUp {
    pub user_id: String,
    pub username: String,
    pub email: String,
    /// RFC 3339, UTC.
    pub signed_up_at: String,
}

impl EventType for UserSignedUp {
    const TYPE: &'static str = "user.signed_up";
    const VERSION: u32 = 1;

    fn subject(&self) -> Option<String> {
        Some(self.user_id.clone())
    }

    fn ordering_key(&self) -> Option<String> {
        Some(self.user_id.clone())
    }
}
