//! Refusals of account operations, grouped by who is at fault.

use time::OffsetDateTime;

use super::BreachCheckError;
use crate::credential::password::PasswordPolicyError;
use crate::error::{Fault, ServerError};
use crate::mail::MailError;
use crate::store::StoreError;

/// Why a security-request link (or mailed code) was refused. The texts are Medplum's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkRefusal {
    /// No request has this id.
    #[error("Not found")]
    NotFound,
    /// The request was consumed before — or a newer one of its kind replaced it (Medplum
    /// marks replaced requests used, so its clients show the same text).
    #[error("Already used")]
    Used,
    /// Its lifetime is over.
    #[error("Expired")]
    Expired,
    /// The secret is not the request's.
    #[error("Incorrect secret")]
    IncorrectSecret,
    /// A verification link presented to set a password.
    #[error("Invalid request type")]
    WrongKindForPassword,
    /// A reset or invitation link presented to verify an address.
    #[error("Invalid user security request type")]
    WrongKindForVerification,
    /// A mailed code is wrong, expired, used or replaced.
    #[error("Invalid MFA token")]
    InvalidCode,
}

/// Why a new or current password was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordRefusal {
    /// The new password breaks the policy (too short, too long).
    #[error(transparent)]
    Policy(#[from] PasswordPolicyError),
    /// The new password is on the breached/common list.
    #[error("Password found in breach database")]
    Breached,
    /// The current password is wrong.
    #[error("Incorrect password")]
    Incorrect,
    /// The account has no password to change (it signs in through a provider).
    #[error("Existing password not set")]
    NotSet,
}

/// Why a registration, invitation, or a project or patient created with them was refused. The texts are
/// Medplum's where it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrationRefusal {
    /// The server does not let people register (`AccountsConfig::registration_enabled`).
    #[error("Registration is disabled")]
    Disabled,
    /// The project has no default patient access policy.
    #[error("Project does not allow open registration")]
    ProjectClosed,
    /// A name outside 1 to 128 characters.
    #[error("First name must be between 1 and 128 characters")]
    FirstName,
    /// A name outside 1 to 128 characters.
    #[error("Last name must be between 1 and 128 characters")]
    LastName,
    /// An account with this email exists in the scope (Medplum says so, too).
    #[error("Email already registered")]
    EmailTaken,
    /// The email's domain signs in through an external identity provider.
    #[error("Email domain signs in through an identity provider; register there")]
    ExternalDomain,
    /// A human check is configured and no token came.
    #[error("Recaptcha token is required")]
    HumanTokenMissing,
    /// The human check refused the token.
    #[error("Recaptcha failed")]
    HumanCheckFailed,
    /// The login already acts as a membership.
    #[error("Login already has a membership")]
    AlreadyMember,
    /// A project name outside 4 to 72 characters.
    #[error("Project name must be between 4 and 72 characters")]
    ProjectName,
    /// A patient registers only into the project their account is scoped to.
    #[error("User must be scoped to the project")]
    NotScopedToProject,
    /// The project does not exist.
    #[error("Project not found")]
    UnknownProject,
    /// Only an active admin of the project may invite into it.
    #[error("Forbidden")]
    NotProjectAdmin,
    /// The invitee already has a membership in the project.
    #[error("User is already a member of this project")]
    AlreadyInProject,
    /// Invitations make Practitioner, Patient or RelatedPerson profiles.
    #[error("Invalid resource type; expected Practitioner, Patient or RelatedPerson")]
    ProfileType,
    /// The access policy named does not exist.
    #[error("Access policy not found")]
    UnknownAccessPolicy,
    /// Projects and memberships cannot be created: the engine has no
    /// [`DirectoryAdmin`](crate::store::DirectoryAdmin).
    #[error("Registration is not available on this server")]
    NoDirectoryAdmin,
}

/// Every refusal of an [`Accounts`](super::Accounts) operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// The email address is not valid (3 to 72 characters, one `@`).
    #[error("Valid email address between 3 and 72 characters is required")]
    InvalidEmail,
    /// The email's domain signs in through an external identity provider.
    #[error("Cannot reset password for external auth. Contact your system administrator.")]
    ExternalAuth,
    /// A link or code was refused.
    #[error(transparent)]
    Link(#[from] LinkRefusal),
    /// A password was refused.
    #[error(transparent)]
    Password(#[from] PasswordRefusal),
    /// A registration was refused.
    #[error(transparent)]
    Registration(#[from] RegistrationRefusal),
    /// The login machine refused (the request's client, scope, redirect URI, or a step).
    #[error(transparent)]
    SignIn(#[from] crate::error::LoginError),
    /// The human check could not answer.
    #[error(transparent)]
    HumanCheck(#[from] super::HumanCheckError),
    /// The user the request is for no longer exists.
    #[error("User not found")]
    UserNotFound,
    /// Too many attempts from this address or on this account.
    #[error("Too many attempts; try again later")]
    Throttled {
        /// When the current window ends.
        retry_after: OffsetDateTime,
    },
    /// A mail could not be sent.
    #[error(transparent)]
    Mail(#[from] MailError),
    /// The host's breach check could not answer.
    #[error(transparent)]
    BreachCheck(#[from] BreachCheckError),
    /// The server failed.
    #[error(transparent)]
    Server(#[from] ServerError),
}

impl AccountError {
    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        match self {
            AccountError::InvalidEmail | AccountError::UserNotFound => Fault::Request,
            AccountError::ExternalAuth => Fault::Policy,
            AccountError::Link(LinkRefusal::IncorrectSecret | LinkRefusal::InvalidCode) => {
                Fault::Credentials
            }
            AccountError::Link(_) => Fault::Request,
            AccountError::Password(PasswordRefusal::Incorrect) => Fault::Credentials,
            AccountError::Password(_) => Fault::Request,
            AccountError::Throttled { .. } => Fault::Throttled,
            AccountError::Registration(RegistrationRefusal::NoDirectoryAdmin) => Fault::Server,
            AccountError::Registration(
                RegistrationRefusal::Disabled
                | RegistrationRefusal::ProjectClosed
                | RegistrationRefusal::ExternalDomain,
            ) => Fault::Policy,
            AccountError::Registration(RegistrationRefusal::HumanCheckFailed) => Fault::Credentials,
            AccountError::Registration(_) => Fault::Request,
            AccountError::SignIn(e) => e.fault(),
            AccountError::HumanCheck(_) => Fault::Upstream,
            AccountError::Mail(MailError::Address(_)) => Fault::Request,
            AccountError::Mail(MailError::Delivery(_)) | AccountError::BreachCheck(_) => {
                Fault::Upstream
            }
            AccountError::Mail(_) => Fault::Server,
            AccountError::Server(e) => e.fault(),
        }
    }
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        AccountError::Server(ServerError::Store(e))
    }
}

impl From<crate::random::RandomError> for AccountError {
    fn from(e: crate::random::RandomError) -> Self {
        AccountError::Server(ServerError::Random(e))
    }
}

impl From<crate::credential::password::HashError> for AccountError {
    fn from(e: crate::credential::password::HashError) -> Self {
        AccountError::Server(ServerError::Hashing(e))
    }
}

impl From<PasswordPolicyError> for AccountError {
    fn from(e: PasswordPolicyError) -> Self {
        AccountError::Password(PasswordRefusal::Policy(e))
    }
}
