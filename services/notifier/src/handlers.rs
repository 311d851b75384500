//! What notifier does with each event. Each effect happens once per event
//! (the inbox), in one transaction with the record of it.
//!
//! A mail cannot join a database transaction, so it is kept first: the
//! handler's transaction queues it in `mails` with the rest of the event's
//! effects, and once that has committed [`deliver`] sends what the event left
//! pending, marking each mail as it goes. No transaction stays open while an
//! SMTP server works, a redelivered event sends only what did not go, and
//! only a crash between the server's acceptance and the mark repeats a mail —
//! with the same `Message-ID`, derived from the event id (the message id for
//! mentions), so the repeat is recognisable.

use std::sync::Arc;

use dozen_bus::{inbox, Event, HandlerError, Subscription};
use dozen_events::{CardCreated, MessageEdited, MessageSent, UserSignedUp};
use sqlx::AnyPool;

use crate::mail::{Mail, Mailer};
use crate::store::{self, day_of, Claim, Count, Sending};

pub const WELCOME: &str = "notifier.welcome";
pub const MENTIONS: &str = "notifier.mentions";
pub const CARDS: &str = "notifier.cards";
pub const EDITS: &str = "notifier.edits";

/// The subscriptions notifier consumes.
pub fn subscriptions() -> [Subscription; 4] {
    use dozen_bus::EventType;
    [
        Subscription::new(WELCOME, UserSignedUp::TYPE),
        Subscription::new(MENTIONS, MessageSent::TYPE),
        Subscription::new(CARDS, CardCreated::TYPE),
        Subscription::new(EDITS, MessageEdited::TYPE),
    ]
}

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct Context {
    pub db: AnyPool,
    pub mailer: Arc<Mailer>,
}

/// Sends the mails `event` queued and that have not gone yet. A mail the
/// server refuses for good (a 5xx reply, an address that cannot be one) is
/// marked refused and never tried again; any other failure leaves it pending
/// and fails the delivery as transient, so it is tried again — as is a mail
/// another delivery of the same event is sending right now, until that one
/// has settled it.
async fn deliver(ctx: &Context, event: &Event) -> Result<(), HandlerError> {
    let mut unsent = None;
    for mail in store::pending_mails(&ctx.db, &event.id).await? {
        match store::claim_mail(&ctx.db, &mail.id).await? {
            Claim::Mine => {}
            Claim::Done => continue,
            Claim::Busy => {
                unsent = Some(format!(
                    "mail {} is being sent by another delivery",
                    mail.id
                ));
                continue;
            }
        }
        let error = match ctx.mailer.send(&mail).await {
            Ok(()) => {
                store::record(&ctx.db, &mail.id, Sending::Sent, None).await?;
                continue;
            }
            Err(error) => error,
        };
        let reason = error.to_string();
        if error.is_permanent() {
            tracing::warn!(mail = %mail.id, %error, "mail refused; it is not tried again");
            store::record(&ctx.db, &mail.id, Sending::Refused, Some(&reason)).await?;
        } else {
            store::record(&ctx.db, &mail.id, Sending::Failed, Some(&reason)).await?;
            unsent = Some(reason);
        }
    }
    match unsent {
        Some(reason) => Err(HandlerError::transient(reason)),
        None => Ok(()),
    }
}

/// `user.signed_up`: remember the user, count the signup, send one welcome mail.
pub async fn welcome(
    ctx: &Context,
    signed_up: UserSignedUp,
    event: &Event,
) -> Result<(), HandlerError> {
    if let Some(mut tx) = inbox::claim(&ctx.db, WELCOME, &event.id).await? {
        store::remember_user(
            &mut tx,
            &signed_up.user_id,
            &signed_up.username,
            &signed_up.email,
        )
        .await?;
        store::count(&mut tx, &day_of(&event.time), Count::Signups, 1).await?;
        let mail = Mail {
            id: format!("{}.welcome", event.id),
            to: signed_up.email.clone(),
            subject: format!("Welcome to Dozen, {}", signed_up.username),
            body: format!(
                "Hello {},\n\nyour Dozen account is ready. Sign in, join a room and say hello.\n\n— Dozen\n",
                signed_up.username
            ),
        };
        store::queue_mail(&mut tx, &event.id, &mail).await?;
        tx.commit().await?;
    }
    deliver(ctx, event).await
}

/// What a mention mail needs to know of a message, posted or edited.
struct Mentioning<'a> {
    message_id: &'a str,
    author_username: &'a str,
    text: &'a str,
    mentions: &'a [String],
}

/// Queues a mail, inside `tx`, for each mentioned user notifier knows (not
/// the author) who has no mail about this message yet. Returns how many.
async fn queue_mentions(
    tx: &mut store::Tx,
    event: &Event,
    message: Mentioning<'_>,
) -> Result<i64, HandlerError> {
    let mut queued = 0;
    for username in message
        .mentions
        .iter()
        .filter(|u| u.as_str() != message.author_username)
    {
        let Some(email) = store::email_of(&mut *tx, username).await? else {
            continue;
        };
        let mail = Mail {
            id: format!("{}.mention.{username}", message.message_id),
            to: email,
            subject: format!("{} mentioned you", message.author_username),
            body: format!(
                "{} mentioned you in a room:\n\n{}\n\n— Dozen\n",
                message.author_username, message.text
            ),
        };
        if store::queue_mail(&mut *tx, &event.id, &mail).await? {
            queued += 1;
        }
    }
    Ok(queued)
}

/// `message.sent`: count it, and mail each mentioned user notifier knows
/// (not the author), once.
pub async fn mentions(ctx: &Context, sent: MessageSent, event: &Event) -> Result<(), HandlerError> {
    if let Some(mut tx) = inbox::claim(&ctx.db, MENTIONS, &event.id).await? {
        let day = day_of(&event.time);
        store::count(&mut tx, &day, Count::Messages, 1).await?;
        let message = Mentioning {
            message_id: &sent.message_id,
            author_username: &sent.author_username,
            text: &sent.text,
            mentions: &sent.mentions,
        };
        let queued = queue_mentions(&mut tx, event, message).await?;
        store::count(&mut tx, &day, Count::Mentions, queued).await?;
        tx.commit().await?;
    }
    deliver(ctx, event).await
}

/// `message.edited`: mail the users the new text mentions who were not
/// mailed about the message before; an edit is not a new message.
pub async fn edited(
    ctx: &Context,
    edited: MessageEdited,
    event: &Event,
) -> Result<(), HandlerError> {
    if let Some(mut tx) = inbox::claim(&ctx.db, EDITS, &event.id).await? {
        let message = Mentioning {
            message_id: &edited.message_id,
            author_username: &edited.author_username,
            text: &edited.text,
            mentions: &edited.mentions,
        };
        let queued = queue_mentions(&mut tx, event, message).await?;
        store::count(&mut tx, &day_of(&event.time), Count::Mentions, queued).await?;
        tx.commit().await?;
    }
    deliver(ctx, event).await
}

/// `card.created`: count it.
pub async fn card(ctx: &Context, _card: CardCreated, event: &Event) -> Result<(), HandlerError> {
    let Some(mut tx) = inbox::claim(&ctx.db, CARDS, &event.id).await? else {
        return Ok(());
    };
    store::count(&mut tx, &day_of(&event.time), Count::Cards, 1).await?;
    tx.commit().await?;
    Ok(())
}
