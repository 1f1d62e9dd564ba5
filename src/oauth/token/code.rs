//! The `authorization_code` grant: one atomic consumption of the code, its bindings (client,
//! redirect URI, PKCE), then the tokens — and a refresh token when the grant gets one.

use super::{Grant, IssuedTokens};
use super::{MAX_TOKEN, server};
use crate::engine::Engine;
use crate::model::{ClientApplication, LoginRecord, RefreshPolicy, RefreshState};
use crate::oauth::client_auth::AuthenticatedClient;
use crate::oauth::{Form, OAuthError};
use crate::pkce;
use crate::scope::{Scope, ScopeSet};
use crate::secret::{BearerSecret, SecretHash};
use crate::store::{CodeRedemption, redeem_code};

impl Engine {
    pub(super) async fn authorization_code(
        &self,
        client: Option<AuthenticatedClient>,
        form: &Form,
    ) -> Result<IssuedTokens, OAuthError> {
        let code = form
            .get("code")
            .ok_or_else(|| OAuthError::invalid_request("Missing code"))?;
        if code.len() > MAX_TOKEN {
            return Err(OAuthError::invalid_grant("Invalid code"));
        }
        let now = self.now();
        let record = match redeem_code(self.login_store(), &SecretHash::of_presented(code), now)
            .await
            .map_err(server)?
        {
            CodeRedemption::Redeemed(record) => record,
            CodeRedemption::Replayed(record) => {
                self.revoke_grant(&record.id).await?;
                return Err(OAuthError::invalid_grant(
                    "Code already used; the grant and its tokens are revoked",
                ));
            }
            CodeRedemption::Expired => return Err(OAuthError::invalid_grant("Code expired")),
            CodeRedemption::Unknown => return Err(OAuthError::invalid_grant("Invalid code")),
        };
        // The code is spent. A request that does not match its bindings burns it and the
        // grant: the legitimate client starts again rather than an attacker winning a race.
        if let Err(error) = check_bindings(&record, client.as_ref(), form) {
            self.revoke_grant(&record.id).await?;
            return Err(error);
        }
        self.tokens_for_redeemed(record, client.as_ref().map(|c| &c.client), now)
            .await
    }

    /// The token response for a login whose code was just consumed: a refresh token when
    /// the grant gets one, the grant's deadline stretched to what was issued, then the tokens.
    pub(super) async fn tokens_for_redeemed(
        &self,
        record: LoginRecord,
        client_app: Option<&ClientApplication>,
        now: time::OffsetDateTime,
    ) -> Result<IssuedTokens, OAuthError> {
        let granted =
            ScopeSet::parse(record.granted_scope.as_deref().unwrap_or_default()).map_err(server)?;
        let refresh = self.refresh_policy(&record, client_app, &granted).await?;
        let mut stored = record.clone();
        let refresh_token = match refresh {
            true => Some(BearerSecret::generate(self.random()).map_err(server)?),
            false => None,
        };
        let oauth = &self.config().oauth;
        let access_end = now.saturating_add(oauth.access_token_lifetime);
        stored.refresh = refresh_token.as_ref().map(|t| RefreshState {
            current: t.hash(),
            expires_at: now.saturating_add(oauth.refresh_lifetime),
        });
        // The grant lives as long as anything issued from it can be used.
        stored.expires_at = [
            Some(access_end),
            stored.refresh.as_ref().map(|r| r.expires_at),
            stored.session.as_ref().map(|s| s.expires_at),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(access_end);
        stored.version = record.version.saturating_add(1);
        // Only a revocation can change a just-granted login. If a replay of this very code
        // revoked it in the meantime, this redemption still gets its one token response —
        // with tokens that are already dead (the replay revoked every token from the code) and
        // no refresh token, since none was stored.
        let persisted = self
            .login_store()
            .update_login(&stored, record.version)
            .await
            .map_err(server)?;
        let refresh_token = if persisted { refresh_token } else { None };
        self.issue_tokens(Grant {
            record: &stored,
            client: client_app,
            scope: &granted,
            refresh_token: refresh_token.as_ref(),
            refreshing: false,
        })
        .await
    }

    /// Whether a grant gets a refresh token: per the client's setting (by default only when
    /// `offline_access` — or Medplum's `offline` — was granted), never for a super-admin
    /// project.
    pub(super) async fn refresh_policy(
        &self,
        record: &LoginRecord,
        client: Option<&ClientApplication>,
        granted: &ScopeSet,
    ) -> Result<bool, OAuthError> {
        let offline = granted.contains(&Scope::OfflineAccess)
            || granted.contains(&Scope::Other("offline".to_owned()));
        let wanted = match client.map(|c| c.refresh_tokens).unwrap_or_default() {
            RefreshPolicy::OfflineAccess => offline,
            RefreshPolicy::Always => true,
            RefreshPolicy::Never => false,
        };
        if !wanted {
            return Ok(false);
        }
        let super_admin = match &record.project {
            Some(p) => self
                .directory()
                .project(p)
                .await
                .map_err(server)?
                .is_some_and(|p| p.super_admin),
            None => false,
        };
        Ok(!super_admin)
    }
}

/// The code's bindings: the client it was issued to, the redirect URI of the authorization
/// request, and the PKCE challenge.
fn check_bindings(
    record: &LoginRecord,
    client: Option<&AuthenticatedClient>,
    form: &Form,
) -> Result<(), OAuthError> {
    let presented = client.map(|c| &c.client.id);
    if record.params.client.as_ref() != presented {
        return Err(OAuthError::invalid_grant(
            "The code was issued to another client",
        ));
    }
    if let Some(uri) = &record.params.redirect_uri
        && form.get("redirect_uri") != Some(uri.as_str())
    {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    let verifier = form.get("code_verifier");
    match (&record.params.code_challenge, verifier) {
        (Some(challenge), Some(verifier)) => {
            if !pkce::verify(challenge, verifier) {
                return Err(OAuthError::invalid_grant("Invalid code_verifier"));
            }
        }
        (Some(_), None) => return Err(OAuthError::invalid_grant("Missing code_verifier")),
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier sent for a code issued without a code_challenge",
            ));
        }
        (None, None) => {
            // Only a confidential client that authenticated may redeem without PKCE.
            if client.is_none_or(|c| c.client.is_public()) {
                return Err(OAuthError::invalid_grant("Missing code_verifier"));
            }
        }
    }
    Ok(())
}
