//! Why a seed was refused: the entry, and what is wrong with it.

use std::fmt;

use crate::error::LoginError;
use crate::model::ClientAuthMethod;
use crate::scope::ScopeError;
use crate::store::StoreError;

/// A seed that cannot be loaded: where (`users[2]`, `clients[0]`; empty for a document that
/// does not parse) and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub struct SeedError {
    /// The entry, as a path into the document.
    pub at: String,
    /// What is wrong with it.
    pub problem: SeedProblem,
}

impl fmt::Display for SeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "{}: {}", self.at, self.problem)
        }
    }
}

impl SeedError {
    pub(super) fn new(at: &str, problem: SeedProblem) -> Self {
        Self {
            at: at.to_owned(),
            problem,
        }
    }

    pub(super) fn parse(error: serde_json::Error) -> Self {
        Self {
            at: String::new(),
            problem: SeedProblem::Parse {
                line: error.line(),
                column: error.column(),
                message: error.to_string(),
            },
        }
    }
}

/// What is wrong with a seed entry. The texts are the demo server's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedProblem {
    /// The document is not a seed: malformed JSON, an unknown field, a wrong type.
    #[error("{message}")]
    Parse {
        /// Line of the problem (1-based).
        line: usize,
        /// Column of the problem (1-based).
        column: usize,
        /// serde's description, with the position.
        message: String,
    },
    /// The seed file cannot be read.
    #[error("cannot read seed file ({kind})")]
    Read {
        /// The file.
        path: String,
        /// Why.
        kind: std::io::ErrorKind,
    },
    /// An id that is not a FHIR id.
    #[error("id {id:?} must be 1-64 characters of A-Z a-z 0-9 - .")]
    BadId {
        /// The id.
        id: String,
    },
    /// The id is used by an earlier entry of the same list.
    #[error("duplicate id {id:?}")]
    DuplicateId {
        /// The id.
        id: String,
    },
    /// An access policy names something that is not a resource type.
    #[error("resourceType {resource_type:?} must be * or a FHIR resource type")]
    BadResourceType {
        /// The value.
        resource_type: String,
    },
    /// Not an email address.
    #[error("email {email:?} is not an email address")]
    BadEmail {
        /// The value.
        email: String,
    },
    /// The email address is taken in the same scope.
    #[error("email {email} is already used{}", project.as_ref().map(|p| format!(" in project {p}")).unwrap_or_default())]
    EmailTaken {
        /// The normalised address.
        email: String,
        /// The project, for a project-scoped user.
        project: Option<String>,
    },
    /// A project that is not in `projects`.
    #[error("project {project:?} is not in projects")]
    UnknownProject {
        /// The id.
        project: String,
    },
    /// The password policy refuses the password, or hashing failed.
    #[error("password refused: {0}")]
    Password(LoginError),
    /// `totpSecretBase32` is not base32.
    #[error("totpSecretBase32 is not base32 (A-Z and 2-7)")]
    TotpNotBase32,
    /// `totpSecretBase32` is too short.
    #[error(
        "totpSecretBase32 is {bytes} bytes; at least {min} (26 base32 characters) are required"
    )]
    TotpTooShort {
        /// Its length.
        bytes: usize,
        /// The minimum.
        min: usize,
    },
    /// A client id that is also a user id.
    #[error("id {id:?} is also a user id (a client acts as the user with its own id)")]
    ClientIsUser {
        /// The id.
        id: String,
    },
    /// `allowedScopes` or `defaultScope` does not parse.
    #[error("{field}: {error}")]
    BadScope {
        /// The field.
        field: &'static str,
        /// Why.
        error: ScopeError,
    },
    /// `defaultScope` asks for more than `allowedScopes`.
    #[error("defaultScope is not within allowedScopes")]
    DefaultScopeTooWide,
    /// A redirect URI with a fragment (RFC 6749 §3.1.2).
    #[error("redirect URI {uri:?} has a fragment")]
    RedirectFragment {
        /// The URI.
        uri: String,
    },
    /// A redirect URI that does not parse.
    #[error("redirect URI {uri:?}: {error}")]
    BadRedirect {
        /// The URI.
        uri: String,
        /// Why.
        error: url::ParseError,
    },
    /// A public client with credentials.
    #[error("a public client (authMethod none) has no secret, jwks or jwksUri")]
    PublicClientCredentials,
    /// A public client without PKCE.
    #[error("a public client must use PKCE (pkce \"required\")")]
    PublicClientWithoutPkce,
    /// A client secret shorter than 16 characters.
    #[error("secret must be at least 16 characters (it is stored as an unsalted SHA-256)")]
    ShortSecret,
    /// A secret method without a secret.
    #[error("authMethod {0} needs a secret")]
    MissingSecret(ClientAuthMethod),
    /// `private_key_jwt` without keys.
    #[error("private_key_jwt needs jwks or jwksUri")]
    NoKeys,
    /// A `jwksUri` that is not https.
    #[error("jwksUri must be https")]
    JwksUriNotHttps,
    /// A project-scoped user's membership in another project.
    #[error("user {user:?} belongs to project {project:?} only")]
    UserOfOtherProject {
        /// The user.
        user: String,
        /// Its project.
        project: String,
    },
    /// A client's membership that is not the client acting as itself in its project.
    #[error("a client's membership has profile {expected} and the client's project")]
    ClientMembership {
        /// The profile it must have.
        expected: String,
    },
    /// A membership of nobody.
    #[error("user {user:?} is neither in users nor a client id")]
    UnknownMember {
        /// The id.
        user: String,
    },
    /// A membership naming an access policy that is not in `accessPolicies`.
    #[error("accessPolicy {policy:?} is not in accessPolicies")]
    UnknownAccessPolicy {
        /// The id.
        policy: String,
    },
    /// Not a domain name.
    #[error("domain {domain:?} is not a domain name")]
    BadDomain {
        /// The value.
        domain: String,
    },
    /// The domain is configured twice.
    #[error("duplicate domain {domain:?}")]
    DuplicateDomain {
        /// The lower-cased domain.
        domain: String,
    },
    /// The store refused to write the entry.
    #[error(transparent)]
    Store(StoreError),
}
