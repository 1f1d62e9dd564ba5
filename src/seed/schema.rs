//! The seed document: what each entry may say, in Medplum's camelCase.

use serde::Deserialize;
use url::Url;

use super::SeedError;
use crate::config::Config;
use crate::model::{
    ClientAuthMethod, IdentityProvider, IdpTokenAuth, Interaction, IpAccessRule, PkcePolicy,
    Reference,
};

/// A seed document. README.md ("Seed file") documents every field; `examples/seed.json` uses
/// most of them.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub(super) projects: Vec<SeedProject>,
    #[serde(default)]
    pub(super) users: Vec<SeedUser>,
    #[serde(default)]
    pub(super) access_policies: Vec<SeedAccessPolicy>,
    #[serde(default)]
    pub(super) memberships: Vec<SeedMembership>,
    #[serde(default)]
    pub(super) clients: Vec<SeedClient>,
    #[serde(default)]
    pub(super) domains: Vec<SeedDomain>,
    /// Google sign-in (`/auth/google`).
    #[serde(default)]
    pub(super) google: Option<SeedGoogle>,
}

impl Seed {
    /// Parses a seed document. Unknown fields, wrong types and malformed references are
    /// refused with the position of the problem.
    pub fn from_json(text: &str) -> Result<Seed, SeedError> {
        serde_json::from_str(text).map_err(SeedError::parse)
    }

    /// [`Seed::from_json`] of a file's contents.
    pub fn from_file(path: &std::path::Path) -> Result<Seed, SeedError> {
        let text = std::fs::read_to_string(path).map_err(|e| SeedError {
            at: String::new(),
            problem: super::SeedProblem::Read {
                path: path.display().to_string(),
                kind: e.kind(),
            },
        })?;
        Self::from_json(&text)
    }

    /// [`Seed::from_json`] for a document already parsed as JSON.
    pub fn from_value(value: serde_json::Value) -> Result<Seed, SeedError> {
        serde_json::from_value(value).map_err(SeedError::parse)
    }

    /// Whether a client or a domain names an identity provider (signing in through it needs an
    /// outbound [`Transport`](crate::transport::Transport)).
    pub fn has_identity_providers(&self) -> bool {
        !self.domains.is_empty() || self.clients.iter().any(|c| c.identity_provider.is_some())
    }

    /// Applies the seed's engine settings to `config`: its Google sign-in client ids and
    /// whether Google sign-in creates accounts.
    pub fn configure(&self, config: &mut Config) {
        if let Some(google) = &self.google {
            config.google.client_ids = google.client_ids.clone();
            config.google.create_users = google.create_users;
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct SeedGoogle {
    pub(super) client_ids: Vec<String>,
    #[serde(default)]
    pub(super) create_users: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct SeedProject {
    pub(super) id: String,
    pub(super) name: String,
    #[serde(default)]
    pub(super) features: Vec<String>,
    /// The access policy of self-registered patients; without it the project does not
    /// allow open registration.
    #[serde(default)]
    pub(super) default_patient_access_policy: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct SeedUser {
    pub(super) id: String,
    pub(super) email: String,
    #[serde(default)]
    pub(super) first_name: Option<String>,
    #[serde(default)]
    pub(super) last_name: Option<String>,
    /// Plain text here; hashed with argon2id at load.
    #[serde(default)]
    pub(super) password: Option<String>,
    /// An enrolled TOTP factor (RFC 4648 base32, at least 128 bits).
    #[serde(default)]
    pub(super) totp_secret_base32: Option<String>,
    #[serde(default)]
    pub(super) mfa_required: bool,
    /// Project-scoped user.
    #[serde(default)]
    pub(super) project: Option<String>,
    #[serde(default)]
    pub(super) email_verified: Option<bool>,
}

impl std::fmt::Debug for SeedUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "totp_secret_base32",
                &self.totp_secret_base32.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct SeedAccessPolicy {
    pub(super) id: String,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) compartment: Option<Reference>,
    #[serde(default)]
    pub(super) resources: Vec<SeedResourcePolicy>,
    #[serde(default, alias = "ip_rules")]
    pub(super) ip_rules: Vec<IpAccessRule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct SeedResourcePolicy {
    #[serde(alias = "resource_type")]
    pub(super) resource_type: String,
    #[serde(default)]
    pub(super) compartment: Option<Reference>,
    #[serde(default)]
    pub(super) criteria: Option<String>,
    #[serde(default)]
    pub(super) readonly: bool,
    #[serde(default)]
    pub(super) interactions: Vec<Interaction>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct SeedMembership {
    pub(super) id: String,
    pub(super) project: String,
    pub(super) user: String,
    pub(super) profile: Reference,
    /// The profile's display name, shown when a profile is chosen at sign-in.
    #[serde(default)]
    pub(super) profile_display: Option<String>,
    #[serde(default)]
    pub(super) active: Option<bool>,
    #[serde(default)]
    pub(super) admin: bool,
    #[serde(default)]
    pub(super) access_policy: Option<String>,
    /// The subject an identity provider with `useSubject` knows the member by.
    #[serde(default)]
    pub(super) external_id: Option<String>,
    /// That provider's issuer (a subject matches only together with it).
    #[serde(default)]
    pub(super) external_issuer: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct SeedClient {
    pub(super) id: String,
    pub(super) project: String,
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) redirect_uris: Vec<String>,
    pub(super) allowed_scopes: String,
    #[serde(default)]
    pub(super) auth_method: ClientAuthMethod,
    /// Plain text here; stored as its SHA-256.
    #[serde(default)]
    pub(super) secret: Option<String>,
    #[serde(default)]
    pub(super) jwks: Option<jsonwebtoken::jwk::JwkSet>,
    #[serde(default)]
    pub(super) jwks_uri: Option<Url>,
    #[serde(default)]
    pub(super) pkce: Option<PkcePolicy>,
    #[serde(default)]
    pub(super) default_scope: Option<String>,
    /// The client's own identity provider (every login through it, and token exchange).
    #[serde(default)]
    pub(super) identity_provider: Option<SeedIdentityProvider>,
    /// The project's own application: its tokens may manage the account.
    #[serde(default)]
    pub(super) first_party: bool,
}

impl std::fmt::Debug for SeedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedClient")
            .field("id", &self.id)
            .field("project", &self.project)
            .field("auth_method", &self.auth_method)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct SeedDomain {
    pub(super) domain: String,
    pub(super) identity_provider: SeedIdentityProvider,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct SeedIdentityProvider {
    #[serde(default)]
    issuer: Option<String>,
    authorize_url: Url,
    token_url: Url,
    #[serde(default, alias = "userinfoUrl")]
    user_info_url: Option<Url>,
    #[serde(default)]
    jwks_uri: Option<Url>,
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    token_auth_method: Option<IdpTokenAuth>,
    #[serde(default)]
    use_subject: bool,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    access_token_audiences: Vec<String>,
    /// The provider sends RFC 9207 `iss` in its authorization responses.
    #[serde(default)]
    iss_parameter_supported: bool,
    /// RFC 7662 introspection, for exchanging opaque access tokens.
    #[serde(default)]
    introspection_url: Option<Url>,
}

impl std::fmt::Debug for SeedIdentityProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedIdentityProvider")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

impl SeedIdentityProvider {
    pub(super) fn to_provider(&self) -> IdentityProvider {
        IdentityProvider {
            issuer: self.issuer.clone(),
            authorize_url: self.authorize_url.clone(),
            token_url: self.token_url.clone(),
            userinfo_url: self.user_info_url.clone(),
            jwks_uri: self.jwks_uri.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            token_auth_method: self.token_auth_method.unwrap_or_default(),
            use_subject: self.use_subject,
            scope: self
                .scope
                .clone()
                .unwrap_or_else(|| "openid profile email".to_owned()),
            access_token_audiences: self.access_token_audiences.clone(),
            iss_parameter_supported: self.iss_parameter_supported,
            introspection_url: self.introspection_url.clone(),
        }
    }
}
