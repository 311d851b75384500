//! What notifier does with each event. Each effect happens once per event
//! (the inbox), in one transaction with the record of it.
//!
//! A mail cannot join a database transaction: the transaction stays open while
//! the SMTP server takes the mail and commits right after, so only a crash in
//! that window repeats a mail — with the same `Message-ID`, derived from the
//! event id, so the repeat is recognisable.

use std::sync::Arc;

use dozen_bus::{inbox, Event, HandlerError, Subscription};
use dozen_events::{CardCreated, MessageSent, UserSignedUp};
use sqlx::AnyPool;

use crate::mail::{Mail, Mailer};
use crate::store::{self, day_of, Count};

pub const WELCOME: &str = "notifier.welcome";
pub const MENTIONS: &str = "notifier.mentions";
pub const CARDS: &str = "notifier.cards";

/// The subscriptions notifier consumes.
pub fn subscriptions() -> [Subscription; 3] {
    use dozen_bus::EventType;
    [
        Subscription::new(WELCOME, UserSignedUp::TYPE),
        Subscription::new(MENTIONS, MessageSent::TYPE),
        Subscription::new(CARDS, CardCreated::TYPE),
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

/// `message.sent`: count it, and mail each mentioned user notifier knows
/// (not the author), once.
pub async fn mentions(ctx: &Context, sent: MessageSent, event: &Event) -> Result<(), HandlerError> {
    let Some(mut tx) = inbox::claim(&ctx.db, MENTIONS, &event.id).await? else {
        return Ok(());
    };
    let day = day_of(&event.time);
    store::count(&mut tx, &day, Count::Messages, 1).await?;
    let mut mailed = 0;
    for username in sent.mentions.iter().filter(|u| **u != sent.author_username) {
        let Some(email) = store::email_of(&mut tx, username).await? else {
            continue;
        };
        let mail = Mail {
            id: format!("{}.mention.{username}", event.id),
            to: email,
            subject: format!("{} mentioned you", sent.author_username),
            body: format!(
                "{} mentioned you in a room:\n\n{}\n\n— Dozen\n",
                sent.author_username, sent.text
            ),
        };
        ctx.mailer.send(&mail).await.map_err(mail_failed)?;
        mailed += 1;
    }
    store::count(&mut tx, &day, Count::Mentions, mailed).await?;
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
