//! Google sign-in (Medplum's `/auth/google`): a Google ID token, verified here — issuer,
//! audience among the configured Google client ids, signature against Google's JWKS through
//! the [`Transport`](crate::transport::Transport), expiry, and `email_verified` (which Medplum
//! ignored). Projects with the `google-auth-required` feature accept only such logins. The
//! transition is the login machine's ([`Login::google`](crate::login::Login::google)).

use url::Url;

use super::{Expected, ExternalError, ExternalIdentity, ProviderSetup, identity_of};
pub use crate::config::GoogleConfig;
use crate::error::LoginError;
use crate::model::{LoginParams, User, UserId};

impl super::Federation<'_> {
    /// Verifies a Google ID token (`googleCredential`) minted for `google_client_id`: one of
    /// the configured client ids, Google's issuer, a signature by Google's JWKS, unexpired,
    /// and a verified email. Returns the identity it vouches for.
    pub(crate) async fn google_identity(
        &self,
        google_client_id: &str,
        credential: &str,
    ) -> Result<ExternalIdentity, LoginError> {
        let google = &self.config().google;
        if !google.client_ids.iter().any(|id| id == google_client_id) {
            return Err(ExternalError::UnknownGoogleClient.into());
        }
        let jwks_uri = Url::parse(&google.jwks_uri)
            .map_err(|_| ExternalError::NotConfigured(ProviderSetup::GoogleJwksUri))?;
        let issuers: Vec<&str> = google.issuers.iter().map(String::as_str).collect();
        let claims = self
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
        if identity.email.is_none() {
            return Err(ExternalError::MissingEmail.into());
        }
        if !identity.email_verified {
            return Err(ExternalError::EmailNotVerified.into());
        }
        Ok(identity)
    }

    /// The account a verified Google identity signs in as: project-scoped first when the
    /// login names a project, then server-scoped; created (verified email, no password) only
    /// when `google.create_users` is set. It must have a membership this login may use.
    pub(crate) async fn google_account(
        &self,
        params: &LoginParams,
        identity: &ExternalIdentity,
    ) -> Result<User, LoginError> {
        let email = identity.email.clone().ok_or(ExternalError::MissingEmail)?;
        let directory = self.directory();
        let mut user = match &params.project {
            Some(project) => directory.user_by_email(&email, Some(project)).await?,
            None => None,
        };
        if user.is_none() {
            user = directory.user_by_email(&email, None).await?;
        }
        let user = match user {
            Some(user) => user,
            None if self.config().google.create_users => {
                let mut user = User::new(UserId::generate(self.random())?, &email);
                user.email_verified = true;
                user.first_name = identity.given_name.clone().unwrap_or_default();
                user.last_name = identity.family_name.clone().unwrap_or_default();
                directory.create_user(&user).await?;
                user
            }
            None => return Err(ExternalError::UnknownIdentity.into()),
        };
        self.external_eligible(&user, params).await?;
        Ok(user)
    }
}
