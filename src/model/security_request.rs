//! Security requests: the single-use secrets mailed to a user — a password-reset link, an
//! invitation, an email-verification link, a sign-in code.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::{LoginId, UserId};
use crate::secret::SecretHash;

/// What a security request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RequestKind {
    /// A password-reset link (`/auth/resetpassword` → `/auth/setpassword`).
    Reset,
    /// An invitation link that sets the invitee's password.
    Invite,
    /// A link that proves the user controls the address (`/auth/verifyemail`).
    VerifyEmail,
    /// A mailed one-time sign-in code, the email second factor (bound to a login, or to
    /// the enrolment of the factor when it has none).
    EmailCode,
}

impl RequestKind {
    /// How long a request of this kind stays valid: links one hour (reset) or seven days
    /// (invite, verify), codes ten minutes.
    pub fn lifetime(self) -> Duration {
        match self {
            RequestKind::Reset => Duration::hours(1),
            RequestKind::Invite | RequestKind::VerifyEmail => Duration::days(7),
            RequestKind::EmailCode => Duration::minutes(10),
        }
    }

    /// The kind as stored (Medplum's `UserSecurityRequest.type`, plus `email-code`).
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Reset => "reset",
            RequestKind::Invite => "invite",
            RequestKind::VerifyEmail => "verify-email",
            RequestKind::EmailCode => "email-code",
        }
    }

    /// The kind stored as `text`.
    pub fn parse(text: &str) -> Option<Self> {
        [
            RequestKind::Reset,
            RequestKind::Invite,
            RequestKind::VerifyEmail,
            RequestKind::EmailCode,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored security request. The secret the user received exists only as its hash; the
/// request is consumed once by [`RequestStore::consume_request`](crate::store::RequestStore::consume_request),
/// and only the newest request of a kind per user can be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityRequest {
    /// Identifier (a random UUID; travels in the link next to the secret).
    pub id: super::RequestId,
    /// What it is for.
    pub kind: RequestKind,
    /// Whose it is.
    pub user: UserId,
    /// The hash of the secret that was mailed.
    pub secret: SecretHash,
    /// The login a sign-in code belongs to (only that login may present it).
    pub login: Option<LoginId>,
    /// Where to send the browser after a verification link, if the requester said.
    pub redirect_uri: Option<String>,
    /// When it was issued.
    #[serde(with = "time::serde::timestamp")]
    pub created_at: OffsetDateTime,
    /// When it stops being valid.
    #[serde(with = "time::serde::timestamp")]
    pub expires_at: OffsetDateTime,
    /// Whether it was consumed.
    pub used: bool,
}

impl SecurityRequest {
    /// A fresh, unused request of `kind` for `user`, issued `now`, expiring after the kind's
    /// [lifetime](RequestKind::lifetime).
    pub fn new(
        id: super::RequestId,
        kind: RequestKind,
        user: UserId,
        secret: SecretHash,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            kind,
            user,
            secret,
            login: None,
            redirect_uri: None,
            created_at: now,
            expires_at: now + kind.lifetime(),
            used: false,
        }
    }
}
