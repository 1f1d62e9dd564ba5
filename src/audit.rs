//! Structured audit events.
//!
//! The engine reports every security-relevant decision to an [`AuditSink`]: sign-in success and
//! failure with the reason (which the caller never sees — it always reads "Email or password is
//! invalid"), second-factor passes and failures, profile choices, issued codes. Events carry
//! ids, never secrets. A host renders them as log lines, FHIR AuditEvents, or metrics.

use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;
use time::OffsetDateTime;

use crate::model::{ClientId, LoginId, MembershipId, UserId};

/// One audited decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    /// When it happened (engine clock).
    #[serde(with = "time::serde::timestamp")]
    pub at: OffsetDateTime,
    /// The login concerned, once one exists.
    pub login: Option<LoginId>,
    /// The user concerned, when known.
    pub user: Option<UserId>,
    /// The client the login runs through.
    pub client: Option<ClientId>,
    /// The client address.
    pub remote_address: Option<IpAddr>,
    /// What happened.
    pub kind: AuditKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AuditKind {
    /// The password was right and the account eligible.
    PasswordAccepted,
    /// A password sign-in was refused.
    PasswordRejected {
        /// Why (never shown to the caller).
        reason: SignInFailure,
    },
    /// A stored hash was upgraded to the current argon2 parameters.
    PasswordRehashed,
    /// A login was sent to an external identity provider.
    ExternalRedirect {
        /// The provider's authorization endpoint host.
        provider: String,
    },
    /// The TOTP factor passed.
    SecondFactorPassed,
    /// A TOTP code was refused.
    SecondFactorRejected {
        /// Why.
        reason: SecondFactorFailure,
    },
    /// A TOTP secret was issued (its URI shown once).
    MfaEnrolmentStarted,
    /// The TOTP factor was confirmed.
    MfaEnrolled,
    /// The TOTP factor was removed.
    MfaDisabled,
    /// A password-reset link was issued for an account.
    PasswordResetRequested,
    /// A password was set through a reset link; every login of the user was revoked.
    PasswordReset {
        /// How many logins (sessions, refresh-token families) were ended.
        sessions_ended: u64,
    },
    /// The owner changed the password; every other login was revoked.
    PasswordChanged {
        /// How many logins were ended.
        sessions_ended: u64,
    },
    /// An address was proven through a verification link.
    EmailVerified,
    /// A project admin invited the user into a project.
    InvitationSent {
        /// The project.
        project: crate::model::ProjectId,
    },
    /// An invitation was accepted (its link set the password).
    InvitationAccepted,
    /// A second-factor method was added to the account (`email`).
    MfaMethodAdded {
        /// The method.
        method: String,
    },
    /// A second-factor method was removed from the account.
    MfaMethodRemoved {
        /// The method.
        method: String,
    },
    /// A person registered an account.
    Registered,
    /// A registered user created a project (and became its admin).
    ProjectCreated {
        /// The new project.
        project: crate::model::ProjectId,
    },
    /// A registered user became a patient of a project open to registration.
    PatientRegistered {
        /// The project.
        project: crate::model::ProjectId,
    },
    /// A membership was chosen.
    ProfileChosen {
        /// The membership.
        membership: MembershipId,
    },
    /// A membership choice was refused.
    ProfileRefused {
        /// The refusal text.
        reason: String,
    },
    /// An authorization code was issued.
    CodeIssued {
        /// The granted scope.
        scope: String,
    },
    /// The token endpoint refused a request. The event's `client` is the client id the
    /// request named, authenticated or not.
    TokenRefused {
        /// The `grant_type` parameter as sent (at most 128 bytes; empty when missing).
        grant_type: String,
        /// The RFC 6749 error code answered.
        error: String,
        /// The error description answered (never a secret).
        description: String,
        /// For a `server_error`, what failed inside the server (the answer only says that
        /// something did).
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
}

/// Why a password sign-in failed (for the audit trail only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignInFailure {
    /// No account with that email in the login's scope.
    UnknownUser,
    /// The password did not match.
    WrongPassword,
    /// The account has no password (external sign-in only).
    NoPassword,
    /// The stored hash is malformed, unsupported or above the verification caps.
    StoredHashRejected,
    /// The password matched but no membership is eligible for this login.
    NoEligibleMembership,
    /// Too many attempts for this account.
    Throttled,
}

/// Why a TOTP code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecondFactorFailure {
    /// The code matches no step in the window.
    WrongCode,
    /// The code's step was already used (or an older one after a newer one).
    Replayed,
    /// The attempt cap for the login or the user was reached.
    TooManyAttempts,
}

/// Receives audit events. Must not block for long: it runs inline with the login step.
pub trait AuditSink: Send + Sync {
    /// Records one event.
    fn record(&self, event: AuditEvent);
}

/// Discards every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAudit;

impl AuditSink for NoAudit {
    fn record(&self, _event: AuditEvent) {}
}

/// Keeps events in memory: for tests and small embedded deployments.
#[derive(Debug, Default)]
pub struct MemoryAudit {
    events: Mutex<Vec<AuditEvent>>,
}

impl MemoryAudit {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every event so far.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Just the kinds, in order.
    pub fn kinds(&self) -> Vec<AuditKind> {
        self.events().into_iter().map(|e| e.kind).collect()
    }
}

impl AuditSink for MemoryAudit {
    fn record(&self, event: AuditEvent) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }
}

/// Audit events as `tracing` log lines (feature `tracing`, on with `axum`): target
/// `fhirgate::audit`, level info, the event as JSON in the field `event`.
#[cfg(feature = "tracing")]
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingAudit;

#[cfg(feature = "tracing")]
impl AuditSink for TracingAudit {
    fn record(&self, event: AuditEvent) {
        match serde_json::to_string(&event) {
            Ok(text) => tracing::info!(target: "fhirgate::audit", event = %text, "audit"),
            Err(error) => tracing::warn!(%error, "audit event not serialisable"),
        }
    }
}

impl std::fmt::Debug for dyn AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditSink")
    }
}
