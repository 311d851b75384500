//! The events Dozen's services exchange. Each is a topic; producers and
//! consumers share these types, and nothing else, about each other.
//!
//! Each type's contract is a JSON Schema of its `data` in `schemas/`, with
//! examples: producers' tests check what they emit against it
//! ([`contract::check`]), consumers' tests feed its examples to their handlers
//! ([`contract::examples`]). Adding an optional field is safe (consumers ignore
//! fields they do not know); renaming or removing one, or changing its meaning,
//! needs a new `VERSION` and a new schema file.

use dozen_bus::EventType;
use serde::{Deserialize, Serialize};

#[cfg(feature = "contracts")]
pub mod contract;

/// Every event type's schema: `(type, version, JSON Schema text)`.
pub const SCHEMAS: &[(&str, u32, &str)] = &[
    (
        UserSignedUp::TYPE,
        UserSignedUp::VERSION,
        include_str!("../schemas/user.signed_up.v1.schema.json"),
    ),
    (
        MessageSent::TYPE,
        MessageSent::VERSION,
        include_str!("../schemas/message.sent.v1.schema.json"),
    ),
    (
        CardCreated::TYPE,
        CardCreated::VERSION,
        include_str!("../schemas/card.created.v1.schema.json"),
    ),
    (
        MessageEdited::TYPE,
        MessageEdited::VERSION,
        include_str!("../schemas/message.edited.v1.schema.json"),
    ),
];

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

/// A message was posted in a room. Produced by chat, through its outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSent {
    pub message_id: String,
    pub room_id: String,
    pub author_id: String,
    pub author_username: String,
    pub text: String,
    /// Usernames mentioned with `@`, each once, in order of first mention.
    pub mentions: Vec<String>,
    /// `http` and `https` URLs in the text, each once.
    pub urls: Vec<String>,
    /// RFC 3339, UTC.
    pub sent_at: String,
}

impl EventType for MessageSent {
    const TYPE: &'static str = "message.sent";
    const VERSION: u32 = 1;

    fn subject(&self) -> Option<String> {
        Some(self.message_id.clone())
    }

    fn ordering_key(&self) -> Option<String> {
        Some(self.room_id.clone())
    }
}

/// The author changed a message's text. Produced by chat, through its
/// outbox, in the same transaction as the change. Carries the whole new
/// text, so a consumer needs no earlier event to act on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEdited {
    pub message_id: String,
    pub room_id: String,
    pub author_id: String,
    pub author_username: String,
    /// The text after the edit.
    pub text: String,
    /// Usernames mentioned with `@` in the new text, each once, in order of first mention.
    pub mentions: Vec<String>,
    /// `http` and `https` URLs in the new text, each once.
    pub urls: Vec<String>,
    /// RFC 3339, UTC: when the message was first posted.
    pub sent_at: String,
    /// RFC 3339, UTC.
    pub edited_at: String,
}

impl EventType for MessageEdited {
    const TYPE: &'static str = "message.edited";
    const VERSION: u32 = 1;

    fn subject(&self) -> Option<String> {
        Some(self.message_id.clone())
    }

    /// The room, as for `message.sent`: a message's post and its edits stay in order.
    fn ordering_key(&self) -> Option<String> {
        Some(self.room_id.clone())
    }
}

/// A link preview for a URL in a message. Produced by cards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardCreated {
    pub message_id: String,
    pub room_id: String,
    pub url: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
}

impl EventType for CardCreated {
    const TYPE: &'static str = "card.created";
    const VERSION: u32 = 1;

    fn subject(&self) -> Option<String> {
        Some(self.message_id.clone())
    }

    fn ordering_key(&self) -> Option<String> {
        Some(self.message_id.clone())
    }
}
