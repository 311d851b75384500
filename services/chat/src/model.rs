//! What the API answers and the live stream carries.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Room {
    pub id: String,
    pub name: String,
    pub created_by: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub members: i64,
    /// Whether the caller is a member.
    pub joined: bool,
    /// The number of the room's latest event (message, card, edit, deletion).
    pub last_seq: i64,
    /// The number up to which the caller has read (0 if not a member).
    pub last_read_seq: i64,
    /// Messages by others after `last_read_seq` (0 if not a member).
    pub unread: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Member {
    pub id: String,
    /// Null until chat has heard of the user.
    pub username: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoomDetail {
    #[serde(flatten)]
    pub room: Room,
    pub member_list: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Author {
    pub id: String,
    pub username: String,
}

/// A link preview attached to a message by the cards service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Card {
    pub url: String,
    pub title: String,
    pub description: Option<String>,
    pub image: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    pub id: String,
    pub room_id: String,
    /// The message's place in the room: later messages have larger numbers.
    pub seq: i64,
    pub author: Author,
    pub text: String,
    /// RFC 3339, UTC.
    pub sent_at: String,
    /// RFC 3339, UTC; when the author last changed the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    /// The id the author's client gave the message, echoed so it can match
    /// its own copy to the server's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    pub cards: Vec<Card>,
}

/// A card, as the live stream announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CardAttached {
    pub message_id: String,
    pub card: Card,
}

/// A deletion, as the live stream announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageDeleted {
    pub message_id: String,
}

/// A member of a room who is online or typing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    pub username: String,
}

/// Who has the room open now, as the live stream announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Presence {
    /// Sorted by username; the first 100 (`live::PRESENCE_LISTED`).
    pub online: Vec<User>,
    /// Everyone online, listed or not.
    pub count: usize,
}

/// Someone is typing in the room, as the live stream announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Typing {
    pub user: User,
    /// Show it for this long unless another `typing` or a message from the user comes.
    pub expires_in_ms: u64,
}

/// A room's unread count changed, as the activity stream announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Unread {
    pub room_id: String,
    pub last_seq: i64,
    pub last_read_seq: i64,
    pub unread: i64,
}

/// The kinds of room events, as SSE event names. The numbered ones (with an
/// SSE `id`) are kept and replayed; `presence` and `typing` are of the moment.
pub mod kind {
    pub const MESSAGE: &str = "message";
    pub const CARD: &str = "card";
    pub const MESSAGE_EDITED: &str = "message_edited";
    pub const MESSAGE_DELETED: &str = "message_deleted";
    pub const PRESENCE: &str = "presence";
    pub const TYPING: &str = "typing";
    /// On the activity stream: a room's unread count.
    pub const UNREAD: &str = "unread";
    /// The stream cannot resume from the client's `Last-Event-ID`: reload.
    pub const RESET: &str = "reset";
}
