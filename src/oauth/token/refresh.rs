//! The `refresh_token` grant: opaque refresh tokens rotated by one atomic store operation; a
//! rotated-out token presented again revokes the whole family.

use super::{Grant, IssuedTokens};
use super::{MAX_TOKEN, TokenRequest, server};
use crate::engine::Engine;
use crate::login::access_policy;
use crate::oauth::client_auth::AuthenticatedClient;
use crate::oauth::{ErrorCode, OAuthError};
use crate::scope::ScopeSet;
use crate::secret::{BearerSecret, SecretHash};
use crate::store::{RefreshRotation, rotate_refresh_token};

impl Engine {
    pub(super) async fn refresh_token(
        &self,
        client: Option<AuthenticatedClient>,
        request: &TokenRequest,
    ) -> Result<IssuedTokens, OAuthError> {
        let form = &request.form;
        let presented = form
            .get("refresh_token")
            .ok_or_else(|| OAuthError::invalid_request("Missing refresh_token"))?;
        if presented.len() > MAX_TOKEN {
            return Err(OAuthError::invalid_grant("Invalid refresh token"));
        }
        let hash = SecretHash::of_presented(presented);
        let client_app = client.as_ref().map(|c| &c.client);
        let client_id = client_app.map(|c| c.id.clone());

        // Checks that must not burn the token run before the rotation.
        let current = self
            .login_store()
            .login_by_refresh(&hash)
            .await
            .map_err(server)?
            .filter(|r| !r.revoked && r.params.client == client_id)
            .ok_or_else(|| OAuthError::invalid_grant("Invalid refresh token"))?;
        let granted = ScopeSet::parse(current.granted_scope.as_deref().unwrap_or_default())
            .map_err(server)?;
        let scope = match form.get("scope") {
            None => granted.clone(),
            Some(text) => {
                let asked = ScopeSet::parse(text)
                    .map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.to_string()))?;
                if !granted.covers(&asked) {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidScope,
                        "The requested scope exceeds the grant",
                    ));
                }
                asked
            }
        };
        if !matches!(
            self.verifier()
                .liveness(&current.id)
                .await
                .map_err(server)?,
            crate::token::verify::Liveness::Live { .. }
        ) {
            return Err(OAuthError::invalid_grant(
                "The grant's membership or client is no longer active",
            ));
        }
        // The membership's IP rules hold for every token, not only at sign-in.
        if let Some(membership_id) = &current.membership {
            let membership = self
                .directory()
                .membership(membership_id)
                .await
                .map_err(server)?
                .ok_or_else(|| OAuthError::invalid_grant("Profile not found"))?;
            access_policy(self, &membership)
                .await
                .map_err(|e| OAuthError::invalid_grant(e.to_string()))?
                .check_ip(request.remote_address)
                .map_err(|e| OAuthError::invalid_grant(e.to_string()))?;
        }

        let next = BearerSecret::generate(self.random()).map_err(server)?;
        let record = match rotate_refresh_token(
            self.login_store(),
            &hash,
            &next.hash(),
            client_id.as_ref(),
            self.now(),
        )
        .await
        .map_err(server)?
        {
            RefreshRotation::Rotated(record) => record,
            RefreshRotation::Reused(record) => {
                self.revoke_grant(&record.id).await?;
                return Err(OAuthError::invalid_grant(
                    "Refresh token already used; the grant and its tokens are revoked",
                ));
            }
            RefreshRotation::Expired => {
                return Err(OAuthError::invalid_grant("Refresh token expired"));
            }
            RefreshRotation::Unknown => {
                return Err(OAuthError::invalid_grant("Invalid refresh token"));
            }
        };
        self.issue_tokens(Grant {
            record: &record,
            client: client_app,
            scope: &scope,
            refresh_token: Some(&next),
            refreshing: true,
        })
        .await
    }
}
