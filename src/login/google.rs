//! Credentials stage, Google method (Medplum's `/auth/google`): a Google ID token instead of a
//! password. The token checks and the account lookup are [`crate::idp`]'s; the transition —
//! to the account's own second factor or the Profile stage, as after a password — is here.

use super::credentials::{create_authenticated, new_record};
use super::{Domain, Login, Passed};
use crate::error::LoginError;
use crate::model::{Amr, AuthMethod, ProviderSource};

/// What a Google sign-in leads to.
// Returned once per sign-in and matched at once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum GoogleSignIn {
    /// Google's word is accepted: the login continues as after a password — with the
    /// account's own second factor when it has one (Google's MFA is not ours to trust).
    Authenticated(Passed),
    /// The person's organisation signs in at its own identity provider (configured for the
    /// client or for the email's domain): send the browser there instead. A Google account
    /// for the same address does not bypass the organisation's provider — its MFA, its
    /// offboarding. Medplum answers `{domain, authorizeUrl}` here too. Nothing is stored:
    /// see [`Method::External`](super::Method::External).
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
        let identity = self
            .engine
            .federation()
            .google_identity(google_client_id, credential)
            .await?;
        let email = identity.email.clone().unwrap_or_default();
        if let Some((_, source)) = self.provider_for_email(&email).await? {
            let domain = match source {
                ProviderSource::Domain(domain) => Some(domain),
                ProviderSource::Client(_) => None,
            };
            return Ok(GoogleSignIn::External {
                login: self,
                domain,
            });
        }
        let Login { engine, stage } = self;
        let params = stage.into_params();
        let user = engine
            .federation()
            .google_account(&params, &identity)
            .await?;
        let record = new_record(&engine, params, AuthMethod::Google, &user, Amr::Fed)?;
        Ok(GoogleSignIn::Authenticated(
            create_authenticated(engine, record, &user).await?,
        ))
    }
}
