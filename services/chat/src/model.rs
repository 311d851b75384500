//! What the API answers and the live stream carries.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    pub id: String,
    pub name: String,
    pub created_by: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub members: i64,
    /// Whether the caller is a member.
    pub joined: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: String,
    /// Null until chat has heard of the user.
    pub username: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomDetail {
    #[serde(flatten)]
    pub room: Room,
    pub member_list: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub id: String,
    pub username: String,
}

/// A link preview attached to a message by the cards service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Card {
    pub url: String,
    pub title: String,
    pub description: Option<String>,
    pub image: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    pub room_id: String,
    /// The message's place in the room: later messages have larger numbers.
    pub seq: i64,
    pub author: Author,
    pub text: String,
    /// RFC 3339, UTC.
    pub sent_at: String,
    pub cards: Vec<Card>,
}

/// A card, as the live stream announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardAttached {
    pub message_id: String,
    pub card: Card,
}

/// A deletion, as the live stream announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDeleted {
    pub message_id: String,
}

/// The kinds of room events, as SSE event names.
pub mod kind {
    pub const MESSAGE: &str = "message";
    pub const CARD: &str = "card";
    pub const MESSAGE_DELETED: &str = "message_deleted";
}
