//! Google sign-in (Medplum's `/auth/google`): a Google ID token, verified here — issuer,
//! audience among the configured Google client ids, signature against Google's JWKS through
//! the [`Transport`](crate::transport::Transport), expiry, and `email_verified` (which Medplum
//! ignored). Projects with the `google-auth-required` feature accept only such logins.

use url::Url;

use super::{Expected, ExternalError, identity_of};
use crate::error::LoginError;
use crate::login::{Authenticated, Domain, Login, create_authenticated, new_record};
use crate::model::{Amr, AuthMethod, User, UserId};

/// Google sign-in settings.
#[derive(Debug, Clone)]
pub struct GoogleConfig {
    /// The OAuth client ids (of Google Cloud projects) whose ID tokens are accepted. Empty:
    /// Google sign-in is off.
    pub client_ids: Vec<String>,
    /// Google's JWKS.
    pub jwks_uri: String,
    /// Issuers Google uses.
    pub issuers: Vec<String>,
    /// Create a server-scoped account for a verified Google email that has none. Off by
    /// default: accounts are normally created by invitation.
    pub create_users: bool,
}

impl Default for GoogleConfig {
    fn default() -> Self {
        Self {
            client_ids: Vec::new(),
            jwks_uri: "https://www.googleapis.com/oauth2/v3/certs".to_owned(),
            issuers: vec![
                "https://accounts.google.com".to_owned(),
                "accounts.google.com".to_owned(),
            ],
            create_users: false,
        }
    }
}

/// What a Google sign-in leads to.
// Returned once per sign-in and matched at once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum GoogleSignIn {
    /// Google's word is accepted: the login continues as after a password — with the
    /// account's own second factor when it has one (Google's MFA is not ours to trust).
    Authenticated(Authenticated),
    /// The person's organisation signs in at its own identity provider (configured for the
    /// client or for the email's domain): send the browser there instead. A Google account
    /// for the same address does not bypass the organisation's provider — its MFA, its
    /// offboarding. Medplum answers `{domain, authorizeUrl}` here too. Nothing is stored:
    /// see [`Method::External`](crate::login::Method::External).
    External {
        /// The login, still in the Domain stage.
        login: Login<Domain>,
        /// The email domain whose configuration chose the provider (`None` when the client's
        /// configuration did).
        domain: Option<String>,
    },
}

impl Login<Domain> {
    /// Signs in with a Google ID token (`googleCredential`) minted for `google_client_id`.
    /// The token is verified first; an email whose client or domain has its own identity
    /// provider is then sent there ([`GoogleSignIn::External`]).
    pub async fn google(
        self,
        google_client_id: &str,
        credential: &str,
    ) -> Result<GoogleSignIn, LoginError> {
        let engine = self.engine.clone();
        let google = engine.config().google.clone();
        if !google.client_ids.iter().any(|id| id == google_client_id) {
            return Err(ExternalError::UnknownGoogleClient.into());
        }
        let jwks_uri = Url::parse(&google.jwks_uri)
            .map_err(|_| ExternalError::NotConfigured("google.jwks_uri is not a URL".to_owned()))?;
        let issuers: Vec<&str> = google.issuers.iter().map(String::as_str).collect();
        let claims = engine
            .verify_provider_jwt(
                credential,
                &jwks_uri,
                &Expected {
                    issuers: &issuers,
                    audiences: &[google_client_id],
                    authorized_party: Some(google_client_id),
                    nonce: None,
                    max_age: None,
                },
            )
            .await?;
        let identity = identity_of(&claims, None)?;
        let email = identity.email.clone().ok_or(ExternalError::MissingEmail)?;
        if !identity.email_verified {
            return Err(ExternalError::EmailNotVerified.into());
        }
        if let Some((_, source)) = self.provider_for_email(&email).await? {
            let domain = match source {
                crate::model::ProviderSource::Domain(domain) => Some(domain),
                crate::model::ProviderSource::Client(_) => None,
            };
            return Ok(GoogleSignIn::External {
                login: self,
                domain,
            });
        }
        let params = self.params().clone();
        let directory = engine.directory();
        let mut user = match &params.project {
            Some(project) => directory.user_by_email(&email, Some(project)).await?,
            None => None,
        };
        if user.is_none() {
            user = directory.user_by_email(&email, None).await?;
        }
        let user = match user {
            Some(user) => user,
            None if google.create_users => {
                let mut user = User::new(UserId::generate(engine.random())?, &email);
                user.email_verified = true;
                user.first_name = identity.given_name.clone().unwrap_or_default();
                user.last_name = identity.family_name.clone().unwrap_or_default();
                directory.create_user(&user).await?;
                user
            }
            None => return Err(ExternalError::UnknownIdentity.into()),
        };
        engine.external_eligible(&user, &params).await?;

        let record = new_record(&engine, params, AuthMethod::Google, &user, Amr::Fed)?;
        Ok(GoogleSignIn::Authenticated(
            create_authenticated(engine, record, &user).await?,
        ))
    }
}
