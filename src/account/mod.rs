//! Account self-service: password resets, password changes, email verification — the
//! attack-prone parts of an identity system, built so that:
//!
//! * every mailed secret is a [`SecurityRequest`]: 256 random bits, stored only as a hash,
//!   expiring (links 1 h or 7 days, codes 10 minutes), consumed by one atomic store
//!   operation, and only the newest of its kind per user is valid;
//! * asking for a reset reveals nothing: the answer and its timing do not depend on whether
//!   the account exists (the HTTP layer does the work after answering);
//! * a new password passes the [policy](crate::credential::password::PasswordPolicy) and the
//!   [breach check](BreachedPasswords) before it is hashed, and setting one through a link
//!   ends every session and refresh-token family of the user; changing one ends every
//!   other;
//! * registration creates an account and continues into the same login machine (a login
//!   waiting in the Profile stage), and creating a project or a patient membership then goes
//!   through the same `choose`/`grant` path as any sign-in;
//! * every change is an [audit event](crate::audit::AuditKind).
//!
//! [`Engine::accounts`](crate::Engine::accounts) hands out the facet.

mod breach;
mod email_mfa;
mod error;
mod human;
mod invite;
mod links;
mod password;
mod register;
mod verify;

use std::net::IpAddr;

pub use breach::{BreachCheckError, BreachedPasswords, CommonPasswords, NoBreachCheck};
pub use error::{AccountError, LinkRefusal, PasswordRefusal, RegistrationRefusal};
pub use human::{HumanCheck, HumanCheckError, Recaptcha};
pub use invite::{Invitation, Invited};
pub use register::NewUser;

use crate::engine::{AuditContext, Engine};
use crate::model::{SecurityRequest, UserId};

/// Account operations of one engine. Get one with [`Engine::accounts`](crate::Engine::accounts).
#[derive(Debug, Clone, Copy)]
pub struct Accounts<'a> {
    engine: &'a Engine,
}

/// What [`Accounts::request_password_reset`] did. A caller answering a client must not
/// let this show: both are "All OK".
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResetOutcome {
    /// A link was issued (and mailed, when asked).
    Issued {
        /// The user.
        user: UserId,
        /// The link (for tests and for hosts that deliver it themselves with
        /// `send_email: false`). Contains the secret: never log it.
        link: crate::secret::BearerSecret,
    },
    /// No password account has this email in this scope; nothing was stored or sent.
    NoAccount,
}

impl<'a> Accounts<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Self { engine }
    }

    fn audit(&self, kind: crate::audit::AuditKind, user: &UserId, remote: Option<IpAddr>) {
        self.engine.audit(
            kind,
            AuditContext {
                user: Some(user.clone()),
                remote_address: remote,
                ..AuditContext::default()
            },
        );
    }
}

/// Checks an email the way Medplum's validators do (3 to 72 characters, one `@` with text on
/// both sides, no spaces) and normalises it (trimmed, lower-cased).
pub fn valid_email(email: &str) -> Option<String> {
    let email = crate::model::normalize_email(email);
    let length = email.chars().count();
    let (local, domain) = email.split_once('@')?;
    let ok = (3..=72).contains(&length)
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(email)
}

/// The link and its request, ready to store and mail.
pub(crate) struct Issued {
    pub(crate) request: SecurityRequest,
    pub(crate) link: crate::secret::BearerSecret,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_like_medplum() {
        assert_eq!(
            valid_email(" Alice@Example.ORG "),
            Some("alice@example.org".into())
        );
        for bad in [
            "",
            "a",
            "@x",
            "x@",
            "a@b@c",
            "a b@c.d",
            "a@.x",
            &format!("{}@x.org", "a".repeat(70)),
        ] {
            assert_eq!(valid_email(bad), None, "{bad}");
        }
    }
}
