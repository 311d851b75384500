//! Sending mail: over SMTP, or into a folder of `.eml` files (the embedded default).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::settings::MailSettings;

/// Why a mail did not go.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("SMTP_URL is unusable: {0}")]
    BadUrl(String),
    #[error("bad address {0:?}")]
    BadAddress(String),
    #[error("cannot build the mail: {0}")]
    Build(#[from] lettre::error::Error),
    #[error("the SMTP server did not take the mail: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("cannot write the mail file: {0}")]
    File(#[from] lettre::transport::file::Error),
}

impl MailError {
    /// Whether sending the same mail again cannot help: the server refused
    /// it for good (a 5xx reply, RFC 5321 §4.2.1) or it cannot be built.
    /// A 4xx reply, a lost connection or a full disk may pass later.
    pub fn is_permanent(&self) -> bool {
        match self {
            MailError::BadAddress(_) | MailError::Build(_) => true,
            MailError::Smtp(error) => error.is_permanent(),
            MailError::BadUrl(_) | MailError::File(_) => false,
        }
    }
}

/// How long the SMTP server has to answer each command.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(AsyncFileTransport<Tokio1Executor>),
}

/// What sends mail, from `SMTP_URL`.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// One mail to send. `id` makes its `Message-ID`: the same event always
/// gives the same id, so a repeated mail is recognisable as one.
#[derive(Debug, Clone)]
pub struct Mail {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// The `Message-ID` header (RFC 5322 §3.6.4) of the mail whose id is `id`.
pub fn message_id(id: &str) -> String {
    format!("<{id}@dozen>")
}

impl Mailer {
    pub fn new(settings: &MailSettings) -> Result<Self, MailError> {
        let url = settings.url.expose();
        let transport = if let Some(folder) = url.strip_prefix("file://") {
            std::fs::create_dir_all(folder)
                .map_err(|e| MailError::BadUrl(format!("{folder}: {e}")))?;
            Transport::Files(AsyncFileTransport::new(folder))
        } else {
            Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| MailError::BadUrl(e.to_string()))?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build(),
            )
        };
        let from = settings
            .from
            .parse()
            .map_err(|_| MailError::BadAddress(settings.from.clone()))?;
        Ok(Self { transport, from })
    }

    pub async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|_| MailError::BadAddress(mail.to.clone()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&mail.subject)
            .message_id(Some(message_id(&mail.id)))
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(message).await?;
            }
            Transport::Files(files) => {
                files.send(message).await?;
            }
        }
        Ok(())
    }

    /// `Ok` when mail can go: the readiness check.
    pub async fn ping(&self) -> Result<(), MailError> {
        match &self.transport {
            Transport::Smtp(smtp) => smtp
                .test_connection()
                .await
                .map(|_| ())
                .map_err(MailError::Smtp),
            Transport::Files(_) => Ok(()),
        }
    }
}
