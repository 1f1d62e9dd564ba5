//! Outbound email: the [`Mailer`] trait the engine sends password-reset links, invitations,
//! verification links and second-factor codes through, an in-memory [`Outbox`] for tests
//! and the demo, and (feature `smtp`) [`SmtpMailer`] on `lettre` with rustls.
//!
//! A mailer is injected like a store ([`EngineBuilder::mailer`](crate::EngineBuilder::mailer));
//! without one the engine uses [`NoMailer`], which refuses every message — an account route
//! that must send mail then fails closed instead of pretending. The texts are built by
//! [`template`], branded with the project's name (never "Medplum").

mod outbox;
#[cfg(feature = "smtp")]
mod smtp;
pub mod template;

use std::fmt;

use async_trait::async_trait;

pub use outbox::Outbox;
#[cfg(feature = "smtp")]
pub use smtp::{SmtpConfig, SmtpMailer, SmtpSecurity};

/// One message: a recipient, a subject, and the same content as plain text and HTML.
///
/// `Debug` shows the recipient and subject only: bodies carry single-use links and codes.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    /// The recipient's address.
    pub to: String,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body (escaped by the templates).
    pub html: String,
}

impl fmt::Debug for Mail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("subject", &self.subject)
            .field("text", &"<redacted>")
            .field("html", &"<redacted>")
            .finish()
    }
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// No mailer is configured ([`NoMailer`]).
    #[error("no mailer is configured")]
    NotConfigured,
    /// The recipient or sender address is not a valid mailbox.
    #[error("invalid address: {0}")]
    Address(String),
    /// The mail server could not be reached, refused the message, or timed out.
    #[error("mail delivery failed: {0}")]
    Delivery(String),
}

/// Sends mail. Implementations must not log bodies.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one message.
    async fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

/// The default mailer: refuses every message with [`MailError::NotConfigured`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMailer;

#[async_trait]
impl Mailer for NoMailer {
    async fn send(&self, _mail: &Mail) -> Result<(), MailError> {
        Err(MailError::NotConfigured)
    }
}
