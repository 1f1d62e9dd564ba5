//! Refusals of the external identity-provider paths (federation, Google, token exchange).

use crate::error::Fault;
use crate::transport::TransportError;

/// Why a login through an external identity provider was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExternalError {
    /// The callback carries no `state`.
    #[error("Missing state")]
    MissingState,
    /// The callback carries no `code`.
    #[error("Missing code")]
    MissingCode,
    /// The `state` is unknown, already used, expired or revoked.
    #[error("Invalid state")]
    InvalidState,
    /// The provider answered the authorization request with an error.
    #[error("The identity provider refused the sign-in: {0}")]
    ProviderRefused(String),
    /// The authorization response names another issuer than the provider the browser was
    /// sent to (a mix-up attack, RFC 9207).
    #[error("The authorization response came from another identity provider")]
    IssuerMismatch,
    /// The provider announces RFC 9207 `iss` in its authorization responses, and this one has
    /// none (a mix-up attack can strip it).
    #[error("The authorization response has no issuer")]
    MissingIssuer,
    /// The callback came to a browser other than the one that started the sign-in (login
    /// CSRF): its binding cookie is missing or different.
    #[error("The sign-in was started in another browser")]
    BrowserMismatch,
    /// An opaque subject token from a provider that signs its tokens, without introspection
    /// configured to show it was issued to us.
    #[error("The subject token must be a JWT signed by the identity provider")]
    OpaqueSubjectToken,
    /// The provider's introspection says the subject token is not active, or was issued to
    /// another client.
    #[error("The subject token is not active for this client")]
    InactiveSubjectToken,
    /// The provider's token or UserInfo endpoint answered with an error or something that is
    /// not a token response (Medplum's text).
    #[error("Failed to verify code - check your identity provider configuration")]
    ProviderError(String),
    /// The provider could not be reached (connection, timeout, oversized answer).
    #[error("The identity provider is unreachable: {0}")]
    Unreachable(TransportError),
    /// An ID token or JWT access token failed validation.
    #[error("Invalid identity token: {0}")]
    InvalidToken(String),
    /// The provider's answer names no subject.
    #[error("External token does not contain subject")]
    MissingSubject,
    /// The provider's answer names no email address.
    #[error("External token does not contain email address")]
    MissingEmail,
    /// The provider does not vouch for the email address.
    #[error("Email address is not verified by the identity provider")]
    EmailNotVerified,
    /// The email address is outside the domain whose configuration chose the provider.
    #[error("Email address does not match domain")]
    DomainMismatch,
    /// No account matches the identity (or it has no eligible membership).
    #[error("User not found")]
    UnknownIdentity,
    /// The Google client id is not one this server accepts.
    #[error("Invalid googleClientId")]
    UnknownGoogleClient,
    /// Neither the client nor the named domain has an identity provider.
    #[error("Identity provider not found")]
    NoProvider,
    /// The engine is not configured for this provider.
    #[error("identity provider configuration: {0}")]
    NotConfigured(String),
}

impl ExternalError {
    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        match self {
            ExternalError::MissingState
            | ExternalError::MissingCode
            | ExternalError::InvalidState
            | ExternalError::IssuerMismatch
            | ExternalError::MissingIssuer
            | ExternalError::BrowserMismatch
            | ExternalError::OpaqueSubjectToken
            | ExternalError::UnknownGoogleClient
            | ExternalError::NoProvider => Fault::Request,
            ExternalError::ProviderRefused(_)
            | ExternalError::InvalidToken(_)
            | ExternalError::MissingSubject
            | ExternalError::MissingEmail
            | ExternalError::EmailNotVerified
            | ExternalError::DomainMismatch
            | ExternalError::UnknownIdentity
            | ExternalError::InactiveSubjectToken => Fault::Credentials,
            ExternalError::ProviderError(_)
            | ExternalError::Unreachable(_)
            | ExternalError::NotConfigured(_) => Fault::Server,
        }
    }
}
