//! Credentials stage, external method: the identity provider's callback moves a login waiting
//! in [`External`] on — to the account's second factor or the Profile stage, as after a
//! password. The provider checks (code exchange, ID token, identity mapping) are
//! [`crate::idp`]'s; the transition is here.

use super::credentials::advance_authenticated;
use super::{External, Passed};
use crate::engine::Engine;
use crate::error::{LoginError, RequestError};
use crate::idp::{ExternalCallback, ExternalError};
use crate::model::{Amr, AuthMethod};
use crate::secret::SecretHash;

impl Engine {
    /// Handles the provider's redirect back (see [`crate::idp`]): resumes the login by its
    /// `state`, checks the browser binding, validates the provider's answer, and continues
    /// under a new handle. The `state` is single-use: any failure after it was recognised
    /// revokes the login.
    pub async fn external_callback(
        &self,
        callback: &ExternalCallback,
    ) -> Result<Passed, LoginError> {
        let state = callback
            .state
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or(ExternalError::MissingState)?;
        let login = self.resume::<External>(state).await.map_err(|e| match e {
            LoginError::Request(
                RequestError::UnknownLogin
                | RequestError::WrongStage { .. }
                | RequestError::LoginExpired
                | RequestError::LoginRevoked,
            ) => LoginError::External(ExternalError::InvalidState),
            other => other,
        })?;
        let id = login.id().clone();
        let result = async {
            let record = &login.stage.stored.record;
            let bound = match (&record.browser, &callback.browser) {
                (Some(expected), Some(presented)) => {
                    expected.ct_eq(&SecretHash::of_presented(presented))
                }
                _ => false,
            };
            if !bound {
                return Err(ExternalError::BrowserMismatch.into());
            }
            let user = self
                .federation()
                .identify_callback(record, callback)
                .await?;
            let now = self.now();
            let lifetime = self.config().login_lifetime;
            let user_id = user.id.clone();
            advance_authenticated(self.clone(), login.stage.stored, &user, move |r| {
                r.user = Some(user_id);
                r.auth_method = AuthMethod::External;
                r.auth_time = Some(now);
                r.amr = vec![Amr::Fed];
                r.external = None;
                r.expires_at = now.saturating_add(lifetime);
            })
            .await
        }
        .await;
        if result.is_err() {
            // The state is spent: this login cannot be tried again.
            let _ = self.login_store().revoke_login(&id).await;
        }
        result
    }
}
