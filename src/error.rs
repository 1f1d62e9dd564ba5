//! Errors, grouped by who is at fault.
//!
//! [`LoginError`] is what every login step and second-factor operation returns. Its variants
//! say whose fault a refusal is — the caller's request, the user's credentials, a policy, a
//! throttle, or the server — so a host maps it to a status without string matching. Where
//! Medplum has a text for a refusal, the `Display` of the variant is exactly that text, so
//! Medplum's clients show what they always showed.

use time::OffsetDateTime;

use crate::credential::password::{HashError, PasswordPolicyError};
use crate::credential::totp::TotpError;
use crate::model::StageTag;
use crate::random::RandomError;
use crate::scope::ScopeError;
use crate::store::StoreError;
use crate::transport::TransportError;

/// Who is at fault for a refusal; alone decides the HTTP status at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The request was malformed, out of order, or named something that does not exist (400).
    Request,
    /// The user did not prove who they are (400 with Medplum's texts, 401 for bearer auth).
    Credentials,
    /// Identity is proven but a policy refuses (403).
    Policy,
    /// Too many attempts; retry later (429).
    Throttled,
    /// A dependency of this server is unavailable or saturated for now — the store cannot be
    /// reached, every password-hashing worker is busy — and the same request may succeed
    /// shortly (503).
    Unavailable,
    /// An upstream service this request relies on failed: an identity provider could not be
    /// reached or answered with an error (502).
    Upstream,
    /// The server failed: corrupt data, randomness, configuration (500).
    Server,
}

/// Every refusal of a login step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// The caller's request is at fault.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The user's credentials did not pass.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// A policy refuses.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Too many attempts.
    #[error("Too many attempts; try again later")]
    Throttled {
        /// When the current window ends.
        retry_after: OffsetDateTime,
    },
    /// The server failed.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// An external identity provider path refused (its own fault grouping).
    #[error(transparent)]
    External(#[from] ExternalError),
}

impl LoginError {
    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        match self {
            LoginError::Request(_) => Fault::Request,
            LoginError::Credentials(_) => Fault::Credentials,
            LoginError::Policy(_) => Fault::Policy,
            LoginError::Throttled { .. } => Fault::Throttled,
            LoginError::Server(e) => e.fault(),
            LoginError::External(e) => e.fault(),
        }
    }

    /// The request field the refusal is about, for FHIR OperationOutcome `expression`
    /// (Medplum's field names).
    pub fn field(&self) -> Option<&'static str> {
        match self {
            LoginError::Request(e) => e.field(),
            LoginError::Credentials(CredentialError::InvalidCredentials) => None,
            LoginError::Credentials(_) => Some("token"),
            _ => None,
        }
    }
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> Self {
        LoginError::Server(ServerError::Store(e))
    }
}

impl From<RandomError> for LoginError {
    fn from(e: RandomError) -> Self {
        LoginError::Server(ServerError::Random(e))
    }
}

impl From<HashError> for LoginError {
    fn from(e: HashError) -> Self {
        LoginError::Server(ServerError::Hashing(e))
    }
}

impl From<PasswordPolicyError> for LoginError {
    fn from(e: PasswordPolicyError) -> Self {
        LoginError::Request(RequestError::Password(e))
    }
}

impl From<ScopeError> for LoginError {
    fn from(e: ScopeError) -> Self {
        LoginError::Request(RequestError::InvalidScope(e))
    }
}

/// The request is malformed, out of order, or names something unknown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Missing or malformed email address.
    #[error("Valid email address is required")]
    InvalidEmail,
    /// The password breaks the password policy (empty, too short, too long).
    #[error(transparent)]
    Password(PasswordPolicyError),
    /// No client with that id.
    #[error("Client not found")]
    UnknownClient,
    /// The client is switched off.
    #[error("Invalid client")]
    ClientInactive,
    /// The project named does not exist or is not the client's project.
    #[error("Invalid projectId")]
    InvalidProject,
    /// The browser origin is not allowed for this client.
    #[error("Invalid origin")]
    InvalidOrigin,
    /// The redirect URI is not registered for the client (or no client was named).
    #[error("Invalid redirect URI")]
    InvalidRedirectUri,
    /// PKCE is required and no code challenge was sent.
    #[error("Missing code challenge: PKCE with S256 is required")]
    MissingCodeChallenge,
    /// The code challenge is malformed, or a method was sent without a challenge.
    #[error("Invalid code challenge")]
    InvalidCodeChallenge,
    /// A challenge was sent without a method, or with an unknown method.
    #[error("Invalid code challenge method")]
    InvalidCodeChallengeMethod,
    /// `plain` PKCE was sent for a client not explicitly marked insecure.
    #[error(
        "Invalid code challenge method: plain is refused, use S256 (a client that cannot hash needs the insecure_allow_plain PKCE setting)"
    )]
    PlainPkceRefused,
    /// The scope string is malformed, or a consent asks for more than was requested.
    #[error("Invalid scope: {0}")]
    InvalidScope(ScopeError),
    /// A consent asked for scopes that were not requested (the scopes are kept here for the
    /// host's logs; the text is Medplum's "Invalid scope").
    #[error("Invalid scope")]
    ScopeNotRequested(String),
    /// The SMART launch context does not exist.
    #[error("Launch not found")]
    LaunchNotFound,
    /// The profile type filter is not a resource type name.
    #[error("Invalid resourceType")]
    InvalidResourceType,
    /// A text field is longer than the library accepts.
    #[error("Field {field} is too long (at most {max} characters)")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The maximum.
        max: usize,
    },
    /// A text field contains control characters (NUL, newlines, …).
    #[error("Field {field} must not contain control characters")]
    ControlCharacters {
        /// The field.
        field: &'static str,
    },
    /// The login handle is unknown (never issued, purged, or mistyped).
    #[error("Login not found")]
    UnknownLogin,
    /// The login's deadline passed.
    #[error("Login expired")]
    LoginExpired,
    /// The login was revoked.
    #[error("Login revoked")]
    LoginRevoked,
    /// The login exists but waits in another stage.
    #[error("{}", wrong_stage_text(*expected, *found))]
    WrongStage {
        /// The stage the operation needs.
        expected: StageTag,
        /// The stage the login is in.
        found: StageTag,
    },
    /// The login's code was issued: nothing more comes from its handle.
    #[error("Login already granted")]
    AlreadyGranted,
    /// The login waits for an external identity provider's callback.
    #[error("Login is waiting for the identity provider")]
    WaitingForProvider,
    /// Another request changed the login first; start the step again.
    #[error("Login was changed by a concurrent request; retry")]
    Conflict,
    /// The membership does not exist.
    #[error("Profile not found")]
    ProfileNotFound,
    /// The membership is not the user's, or not eligible for this login.
    #[error("Invalid profile")]
    InvalidProfile,
    /// The user already has a confirmed second factor.
    #[error("Already enrolled")]
    AlreadyEnrolled,
    /// The user has no second factor to verify or disable.
    #[error("User not enrolled in MFA")]
    NotEnrolled,
    /// The account must keep a second factor (`mfaRequired`) and this is its last one.
    #[error("Cannot remove the last MFA factor because MFA is required")]
    LastFactorRequired,
    /// No enrolment was started (no pending secret).
    #[error("Secret not found")]
    SecretNotFound,
    /// The user does not exist (authenticated operations only; never at sign-in).
    #[error("User not found")]
    UnknownUser,
}

fn wrong_stage_text(expected: StageTag, found: StageTag) -> String {
    match found {
        StageTag::Granted => "Login granted".to_owned(),
        // Medplum's setLoginMembership and the scope step, worded by whether a membership
        // was chosen.
        StageTag::Scope | StageTag::Authorized if expected == StageTag::Profile => {
            "Login profile already set".to_owned()
        }
        StageTag::Profile if expected == StageTag::Scope => "Login profile not set".to_owned(),
        StageTag::Authorized
            if !matches!(expected, StageTag::SecondFactor | StageTag::Enrolment) =>
        {
            "Login already has a code".to_owned()
        }
        StageTag::Profile | StageTag::Scope
            if matches!(expected, StageTag::SecondFactor | StageTag::Enrolment) =>
        {
            "Login already verified".to_owned()
        }
        _ => format!(
            "Login is waiting for {}, not {}",
            found.name(),
            expected.name()
        ),
    }
}

impl RequestError {
    /// The Medplum request field the error is about.
    pub fn field(&self) -> Option<&'static str> {
        Some(match self {
            RequestError::InvalidEmail => "email",
            RequestError::Password(_) => "password",
            RequestError::UnknownClient | RequestError::ClientInactive => "clientId",
            RequestError::InvalidProject => "projectId",
            RequestError::InvalidRedirectUri => "redirectUri",
            RequestError::MissingCodeChallenge | RequestError::InvalidCodeChallenge => {
                "codeChallenge"
            }
            RequestError::InvalidCodeChallengeMethod | RequestError::PlainPkceRefused => {
                "codeChallengeMethod"
            }
            RequestError::InvalidScope(_) | RequestError::ScopeNotRequested(_) => "scope",
            RequestError::LaunchNotFound => "launch",
            RequestError::InvalidResourceType => "resourceType",
            RequestError::TooLong { field, .. } | RequestError::ControlCharacters { field } => {
                field
            }
            RequestError::UnknownLogin
            | RequestError::LoginExpired
            | RequestError::LoginRevoked
            | RequestError::WrongStage { .. }
            | RequestError::AlreadyGranted
            | RequestError::WaitingForProvider
            | RequestError::Conflict => "login",
            RequestError::ProfileNotFound | RequestError::InvalidProfile => "profile",
            RequestError::AlreadyEnrolled
            | RequestError::NotEnrolled
            | RequestError::SecretNotFound
            | RequestError::LastFactorRequired => "token",
            RequestError::InvalidOrigin | RequestError::UnknownUser => return None,
        })
    }
}

/// The user did not prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// Unknown email, wrong password, password-less account or no eligible membership: one
    /// answer at one cost, so none of them can be told apart.
    #[error("Email or password is invalid")]
    InvalidCredentials,
    /// A wrong, expired or replayed TOTP code during sign-in.
    #[error("Invalid MFA token")]
    InvalidMfaToken,
    /// A wrong TOTP code while enrolling or disabling the factor.
    #[error("Invalid token")]
    InvalidToken,
}

/// Identity is proven but a policy refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The chosen membership is inactive.
    #[error("Profile not active")]
    ProfileNotActive,
    /// The client address is blocked by the membership's access policy.
    #[error("IP address not allowed")]
    IpNotAllowed,
    /// The project requires Google sign-in.
    #[error("Google authentication is required")]
    GoogleAuthRequired,
    /// A `patient/` scope was granted but no patient is in context.
    #[error("Missing patient context")]
    MissingPatientContext,
    /// The membership names an access policy that does not exist.
    #[error(
        "Cannot authenticate: Invalid access policy configuration. Please contact your administrator to update your project membership."
    )]
    InvalidAccessPolicy,
    /// The client's configured scopes cannot be parsed.
    #[error("Client scope configuration is invalid")]
    InvalidClientScope,
}

/// The server failed; nothing the caller did.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A store operation failed.
    #[error(transparent)]
    Store(StoreError),
    /// The random source failed.
    #[error(transparent)]
    Random(RandomError),
    /// The password hashing pool failed or is saturated.
    #[error(transparent)]
    Hashing(HashError),
    /// TOTP computation failed (a stored secret is unusable).
    #[error(transparent)]
    Totp(TotpError),
    /// The engine is not configured for this operation.
    #[error(transparent)]
    Config(crate::config::ConfigError),
}

impl ServerError {
    /// [`Fault::Unavailable`] for a store that cannot be reached and a saturated hashing
    /// pool; [`Fault::Server`] for everything else.
    pub fn fault(&self) -> Fault {
        match self {
            ServerError::Store(StoreError::Unavailable(_))
            | ServerError::Hashing(HashError::Busy) => Fault::Unavailable,
            _ => Fault::Server,
        }
    }
}

impl From<TotpError> for LoginError {
    fn from(e: TotpError) -> Self {
        LoginError::Server(ServerError::Totp(e))
    }
}

/// Why a login through an external identity provider was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
    NotConfigured(ProviderSetup),
}

/// What is missing from an identity provider's configuration (a server-side fault).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderSetup {
    /// The provider the login was sent to has been removed from its client or domain.
    #[error("the identity provider is no longer configured")]
    Removed,
    /// `external_callback_url` is not set.
    #[error("external_callback_url is not configured")]
    NoCallbackUrl,
    /// `google.jwks_uri` is not a URL.
    #[error("google.jwks_uri is not a URL")]
    GoogleJwksUri,
    /// ID tokens arrived, and the provider has no `issuer` or `jwks_uri` to check them with.
    #[error("validating ID tokens needs the provider's issuer and jwks_uri")]
    NoIssuerOrJwks,
    /// The provider matches accounts by subject but has no `issuer`.
    #[error("a provider matching by subject needs its issuer")]
    SubjectWithoutIssuer,
    /// The provider matches accounts by subject, and the login names no project.
    #[error("a provider matching by subject needs a login bound to a project")]
    SubjectWithoutProject,
    /// An opaque token needs introspection and the provider has no endpoint for it.
    #[error("the provider has no introspection endpoint")]
    NoIntrospection,
    /// The provider has no UserInfo endpoint.
    #[error("the provider has no UserInfo endpoint")]
    NoUserInfo,
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
            ExternalError::ProviderError(_) | ExternalError::Unreachable(_) => Fault::Upstream,
            ExternalError::NotConfigured(_) => Fault::Server,
        }
    }
}
