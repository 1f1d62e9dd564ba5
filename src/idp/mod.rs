//! External identity providers: OpenID Connect federation, Google sign-in, and the identity
//! mapping token exchange shares.
//!
//! The federation flow, as OIDC Core §3.1 and RFC 9700 require (Medplum trusted an unsigned
//! JSON `state` and an unverified ID token):
//!
//! 1. The Domain stage sends the browser to the provider with a `state` that is the login's
//!    own handle (256 random bits, stored hashed, single-use), a `nonce`, and a PKCE S256
//!    challenge whose verifier never leaves the server
//!    ([`Login::method`](crate::login::Login::method)).
//! 2. [`Engine::external_callback`](crate::Engine::external_callback) resumes that login by its `state` — the state is spent
//!    from then on, whatever happens — checks that the browser holds the login's binding
//!    cookie (set where the sign-in started), checks RFC 9207's `iss`, exchanges the code at the
//!    provider with the verifier and our client credentials, and validates the ID token:
//!    signature against the provider's JWKS (fetched through the
//!    [`Transport`], cached, refetched once on an unknown
//!    `kid`), asymmetric algorithms only, `iss`, `aud` (and `azp`), `exp`, `iat`, `nonce`.
//!    A provider without ID tokens is asked its UserInfo.
//! 3. The identity is mapped to an account: by subject to a membership's external id when
//!    the provider is configured to use the subject, otherwise by email — only when the
//!    provider says `email_verified`, and only inside the domain whose configuration chose
//!    the provider.
//! 4. The login continues with a **new** handle (the old one, the `state`, travelled through
//!    URLs) in the stage after a first factor: the account's own second factor when it has
//!    one, else the Profile stage.

mod error;
mod google;
mod tokens;

use std::fmt;

use serde_json::Value;

pub use crate::jose::jwks::REFETCH_INTERVAL;
pub use error::{ExternalError, ProviderSetup};
pub use google::GoogleConfig;
pub(crate) use tokens::{Expected, identity_of};

use crate::clock::Clock;
use crate::config::Config;
use crate::error::LoginError;
use crate::jose::JwksCache;
use crate::model::{
    IdentityProvider, LoginParams, LoginRecord, ProviderSource, User, normalize_email,
};
use crate::random::SecureRandom;
use crate::store::Directory;
use crate::transport::Transport;

/// What a provider told us about the person.
#[derive(Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// The issuer that vouches for it.
    pub issuer: Option<String>,
    /// The subject at that issuer (case-sensitive).
    pub subject: String,
    /// The email address, normalised.
    pub email: Option<String>,
    /// Whether the provider verified the email address.
    pub email_verified: bool,
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
}

impl fmt::Debug for ExternalIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalIdentity")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("email", &self.email)
            .field("email_verified", &self.email_verified)
            .finish_non_exhaustive()
    }
}

/// The query of the provider's redirect back to us (`/auth/external`), and the browser's
/// binding cookie. `Debug` shows whether `state`, `code` and the binding are present, not
/// their values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ExternalCallback {
    /// `state`: the login's handle.
    pub state: Option<String>,
    /// The authorization code.
    pub code: Option<String>,
    /// An error the provider answered instead of a code.
    pub error: Option<String>,
    /// RFC 9207 issuer of the response.
    pub iss: Option<String>,
    /// The value of the browser binding cookie (see
    /// [`ExternalRedirect::browser_binding`](crate::login::ExternalRedirect::browser_binding)).
    pub browser: Option<String>,
}

impl std::fmt::Debug for ExternalCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("ExternalCallback")
            .field("state", &redacted(&self.state))
            .field("code", &redacted(&self.code))
            .field("error", &self.error)
            .field("iss", &self.iss)
            .field("browser", &redacted(&self.browser))
            .finish()
    }
}

/// ID tokens older than this are refused at the callback (they were just issued).
const ID_TOKEN_MAX_AGE: time::Duration = time::Duration::minutes(10);

/// What the provider checks may touch: the configuration, the directory (to map an identity
/// to an account), the outbound transport and the process's JWKS cache, the clock, and
/// randomness (for an account Google sign-in creates). Nothing here moves a login: the
/// transitions are the login machine's, which calls these checks.
pub(crate) struct Federation<'a> {
    config: &'a Config,
    directory: &'a dyn Directory,
    transport: &'a dyn Transport,
    jwks: &'a JwksCache,
    clock: &'a dyn Clock,
    random: &'a dyn SecureRandom,
}

impl<'a> Federation<'a> {
    /// The checks over these parts.
    pub(crate) fn new(
        config: &'a Config,
        directory: &'a dyn Directory,
        transport: &'a dyn Transport,
        jwks: &'a JwksCache,
        clock: &'a dyn Clock,
        random: &'a dyn SecureRandom,
    ) -> Self {
        Self {
            config,
            directory,
            transport,
            jwks,
            clock,
            random,
        }
    }

    fn config(&self) -> &'a Config {
        self.config
    }

    fn directory(&self) -> &'a dyn Directory {
        self.directory
    }

    fn transport(&self) -> &'a dyn Transport {
        self.transport
    }

    fn jwks_cache(&self) -> &'a JwksCache {
        self.jwks
    }

    fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    fn random(&self) -> &'a dyn SecureRandom {
        self.random
    }
}

impl Federation<'_> {
    /// The provider a login was sent to, read again from its configuration (so its client
    /// secret is never copied into login records).
    pub(crate) async fn provider_of(
        &self,
        source: &ProviderSource,
    ) -> Result<IdentityProvider, LoginError> {
        let provider = match source {
            ProviderSource::Client(id) => self
                .directory()
                .client(id)
                .await?
                .and_then(|c| c.identity_provider),
            ProviderSource::Domain(domain) => self
                .directory()
                .domain(domain)
                .await?
                .and_then(|d| d.identity_provider),
        };
        Ok(provider.ok_or(ExternalError::NotConfigured(ProviderSetup::Removed))?)
    }

    /// The provider checks of a callback for the login waiting in `record`: the provider's
    /// error, RFC 9207 `iss`, the code exchange with our PKCE verifier, the ID token (or
    /// UserInfo), and the identity mapping. Returns the account, eligible for this login. The
    /// transition itself is [`Engine::external_callback`]'s.
    pub(crate) async fn identify_callback(
        &self,
        record: &LoginRecord,
        callback: &ExternalCallback,
    ) -> Result<User, LoginError> {
        let pending = record.external.clone().ok_or(ExternalError::InvalidState)?;
        let provider = self.provider_of(&pending.provider).await?;
        if let Some(error) = &callback.error {
            let error: String = error
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            return Err(ExternalError::ProviderRefused(error).into());
        }
        let code = callback
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or(ExternalError::MissingCode)?;
        // RFC 9207 §2.4: a response naming another issuer (simple string comparison) is a
        // mix-up; so is one without `iss` from a provider that always sends it.
        match (&callback.iss, &provider.issuer) {
            (Some(iss), Some(expected)) if iss != expected => {
                return Err(ExternalError::IssuerMismatch.into());
            }
            (None, _) if provider.iss_parameter_supported => {
                return Err(ExternalError::MissingIssuer.into());
            }
            _ => {}
        }
        let redirect_uri = self
            .config()
            .external_callback_url
            .clone()
            .ok_or(ExternalError::NotConfigured(ProviderSetup::NoCallbackUrl))?;
        let tokens = self
            .provider_code_exchange(
                &provider,
                code,
                &pending.pkce_verifier,
                redirect_uri.as_str(),
            )
            .await?;
        let identity = self
            .identity_from_tokens(&provider, &tokens, Some(&pending.nonce))
            .await?;
        let domain = match &pending.provider {
            ProviderSource::Domain(d) => Some(d.as_str()),
            ProviderSource::Client(_) => None,
        };
        let user = self
            .resolve_external_user(&record.params, &provider, domain, &identity)
            .await?;
        self.external_eligible(&user, &record.params).await?;
        Ok(user)
    }

    /// The identity in a token response: from the validated ID token, or — for a provider
    /// that issues none — from its UserInfo.
    pub(crate) async fn identity_from_tokens(
        &self,
        provider: &IdentityProvider,
        tokens: &Value,
        nonce: Option<&str>,
    ) -> Result<ExternalIdentity, LoginError> {
        let issuer = provider.issuer.as_deref();
        if let Some(id_token) = tokens.get("id_token").and_then(Value::as_str) {
            let (Some(issuer), Some(jwks_uri)) = (issuer, &provider.jwks_uri) else {
                return Err(ExternalError::NotConfigured(ProviderSetup::NoIssuerOrJwks).into());
            };
            let claims = self
                .verify_provider_jwt(
                    id_token,
                    jwks_uri,
                    &Expected {
                        issuers: &[issuer],
                        audiences: &[provider.client_id.as_str()],
                        authorized_party: Some(&provider.client_id),
                        nonce,
                        max_age: Some(ID_TOKEN_MAX_AGE),
                    },
                )
                .await?;
            return Ok(identity_of(&claims, Some(issuer))?);
        }
        let access_token = tokens
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ExternalError::ProviderError("the token response has no token".to_owned())
            })?;
        let claims = self.provider_userinfo(provider, access_token).await?;
        Ok(identity_of(&claims, issuer)?)
    }

    /// The account an external identity belongs to.
    pub(crate) async fn resolve_external_user(
        &self,
        params: &LoginParams,
        provider: &IdentityProvider,
        domain: Option<&str>,
        identity: &ExternalIdentity,
    ) -> Result<User, LoginError> {
        let directory = self.directory();
        if provider.use_subject {
            // Keyed by (issuer, subject): a subject is unique only at its issuer, so the
            // membership must name the issuer too — two providers of one project may both
            // have a subject "1234". The issuer was checked against the token.
            let issuer = provider
                .issuer
                .as_deref()
                .ok_or(ExternalError::NotConfigured(
                    ProviderSetup::SubjectWithoutIssuer,
                ))?;
            let project = params.project.as_ref().ok_or(ExternalError::NotConfigured(
                ProviderSetup::SubjectWithoutProject,
            ))?;
            let memberships: Vec<_> = directory
                .memberships_by_external_id(project, &identity.subject)
                .await?
                .into_iter()
                .filter(|m| m.external_issuer.as_deref() == Some(issuer))
                .collect();
            let [membership] = memberships.as_slice() else {
                return Err(ExternalError::UnknownIdentity.into());
            };
            return Ok(directory
                .user(&membership.user)
                .await?
                .ok_or(ExternalError::UnknownIdentity)?);
        }
        let email = identity
            .email
            .as_deref()
            .ok_or(ExternalError::MissingEmail)?;
        if !identity.email_verified {
            return Err(ExternalError::EmailNotVerified.into());
        }
        if let Some(domain) = domain {
            let email_domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
            if normalize_email(email_domain) != normalize_email(domain) {
                return Err(ExternalError::DomainMismatch.into());
            }
        }
        let mut user = match &params.project {
            Some(project) => directory.user_by_email(email, Some(project)).await?,
            None => None,
        };
        if user.is_none() {
            user = directory.user_by_email(email, None).await?;
        }
        Ok(user.ok_or(ExternalError::UnknownIdentity)?)
    }

    /// Refuses an identity that has no membership this login could act as.
    pub(crate) async fn external_eligible(
        &self,
        user: &User,
        params: &LoginParams,
    ) -> Result<(), LoginError> {
        let memberships = self.directory().memberships_of(&user.id).await?;
        if params.eligible(user, &memberships).next().is_none() {
            return Err(ExternalError::UnknownIdentity.into());
        }
        Ok(())
    }
}
