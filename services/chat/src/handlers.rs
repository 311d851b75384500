//! What the chat worker does with each event, once per event (the inbox).

use dozen_bus::{inbox, Event, EventType, HandlerError, Subscription};
use dozen_events::{CardCreated, UserSignedUp};
use sqlx::AnyPool;

use crate::model::{kind, Card, CardAttached};
use crate::store;

pub const DIRECTORY: &str = "chat.directory";
pub const CARDS: &str = "chat.cards";

/// The subscriptions the chat worker consumes.
pub fn subscriptions() -> [Subscription; 2] {
    [
        Subscription::new(DIRECTORY, UserSignedUp::TYPE),
        Subscription::new(CARDS, CardCreated::TYPE),
    ]
}

/// `user.signed_up`: the user joins chat's directory. Repeating it is harmless,
/// so no inbox record is kept.
pub async fn remember_user(db: &AnyPool, signed_up: UserSignedUp) -> Result<(), HandlerError> {
    store::remember_user(db, &signed_up.user_id, &signed_up.username).await?;
    Ok(())
}

/// `card.created`: the card joins its message and the room's live stream;
/// `Some(seq)`, its event's number, when it did (the caller tells the
/// streams). A card for a message that is gone (deleted, archived) is dropped.
pub async fn attach_card(
    db: &AnyPool,
    created: CardCreated,
    event: &Event,
) -> Result<Option<i64>, HandlerError> {
    let Some(mut tx) = inbox::claim(db, CARDS, &event.id).await? else {
        return Ok(None);
    };
    let Some(seq) = store::next_seq(&mut tx, &created.room_id).await? else {
        tx.commit().await?;
        return Ok(None);
    };
    let card = Card {
        url: created.url,
        title: created.title,
        description: created.description,
        image: created.image,
    };
    let message_here = store::message(&mut *tx, &created.message_id)
        .await?
        .is_some_and(|m| m.room_id == created.room_id);
    if !message_here || !store::attach_card(&mut tx, &created.message_id, &card).await? {
        // Nothing to show; the number taken stays unused, which readers never notice.
        tx.commit().await?;
        return Ok(None);
    }
    let attached = CardAttached {
        message_id: created.message_id,
        card,
    };
    store::append_event(
        &mut tx,
        &created.room_id,
        seq,
        kind::CARD,
        &attached.message_id,
        &attached,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(seq))
}
