//! What notifier does with each event. Each effect happens once per event
//! (the inbox), in one transaction with the record of it.
//!
//! A mail cannot join a database transaction: the transaction stays open while
//! the SMTP server takes the mail and commits right after, so only a crash in
//! that window repeats a mail — with the same `Message-ID`, derived from the
//! event id (the message id for mentions), so the repeat is recognisable.

use std::sync::Arc;

use dozen_bus::{inbox, Event, HandlerError, Subscription};
use dozen_events::{CardCreated, MessageEdited, MessageSent, UserSignedUp};
use sqlx::AnyPool;

use crate::mail::{Mail, Mailer};
use crate::store::{self, day_of, Count};

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

fn mail_failed(error: crate::mail::MailError) -> HandlerError {
    HandlerError::transient(error)
}

/// `user.signed_up`: remember the user, count the signup, send one welcome mail.
pub async fn welcome(
    ctx: &Context,
    signed_up: UserSignedUp,
    event: &Event,
) -> Result<(), HandlerError> {
    let Some(mut tx) = inbox::claim(&ctx.db, WELCOME, &event.id).await? else {
        return Ok(());
    };
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
    ctx.mailer.send(&mail).await.map_err(mail_failed)?;
    tx.commit().await?;
    Ok(())
}

/// What a mention mail needs to know of a message, posted or edited.
struct Mentioning<'a> {
    message_id: &'a str,
    author_username: &'a str,
    text: &'a str,
    mentions: &'a [String],
}

/// Mails each mentioned user notifier knows (not the author) who has not
/// been mailed about this message yet, inside `tx`. Returns how many.
async fn mail_mentions(
    ctx: &Context,
    tx: &mut store::Tx,
    message: Mentioning<'_>,
) -> Result<i64, HandlerError> {
    let mut mailed = 0;
    for username in message
        .mentions
        .iter()
        .filter(|u| u.as_str() != message.author_username)
    {
        let Some(email) = store::email_of(&mut *tx, username).await? else {
            continue;
        };
        if !store::first_mention_mail(&mut *tx, message.message_id, username).await? {
            continue;
        }
        let mail = Mail {
            id: format!("{}.mention.{username}", message.message_id),
            to: email,
            subject: format!("{} mentioned you", message.author_username),
            body: format!(
                "{} mentioned you in a room:\n\n{}\n\n— Dozen\n",
                message.author_username, message.text
            ),
        };
        ctx.mailer.send(&mail).await.map_err(mail_failed)?;
        mailed += 1;
    }
    Ok(mailed)
}

/// `message.sent`: count it, and mail each mentioned user notifier knows
/// (not the author), once.
pub async fn mentions(ctx: &Context, sent: MessageSent, event: &Event) -> Result<(), HandlerError> {
    let Some(mut tx) = inbox::claim(&ctx.db, MENTIONS, &event.id).await? else {
        return Ok(());
    };
    let day = day_of(&event.time);
    store::count(&mut tx, &day, Count::Messages, 1).await?;
    let message = Mentioning {
        message_id: &sent.message_id,
        author_username: &sent.author_username,
        text: &sent.text,
        mentions: &sent.mentions,
    };
    let mailed = mail_mentions(ctx, &mut tx, message).await?;
    store::count(&mut tx, &day, Count::Mentions, mailed).await?;
    tx.commit().await?;
    Ok(())
}

/// `message.edited`: mail the users the new text mentions who were not
/// mailed about the message before; an edit is not a new message.
pub async fn edited(
    ctx: &Context,
    edited: MessageEdited,
    event: &Event,
) -> Result<(), HandlerError> {
    let Some(mut tx) = inbox::claim(&ctx.db, EDITS, &event.id).await? else {
        return Ok(());
    };
    let message = Mentioning {
        message_id: &edited.message_id,
        author_username: &edited.author_username,
        text: &edited.text,
        mentions: &edited.mentions,
    };
    let mailed = mail_mentions(ctx, &mut tx, message).await?;
    store::count(&mut tx, &day_of(&event.time), Count::Mentions, mailed).await?;
    tx.commit().await?;
    Ok(())
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
