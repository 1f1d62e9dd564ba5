//! RFC 8693 token exchange at the token endpoint (and Medplum's `/auth/exchange`): an access
//! token from the client's identity provider for tokens of ours.

use std::net::IpAddr;

use super::IssuedTokens;
use super::{ACCESS_TOKEN_TYPE, server};
use crate::engine::Engine;
use crate::login::Login;
use crate::model::{ClientApplication, LoginParams};
use crate::oauth::{ErrorCode, OAuthError};
use crate::scope::ScopeSet;
use crate::store::{CodeRedemption, redeem_code};

impl Engine {
    /// RFC 8693 token exchange (also Medplum's `/auth/exchange`): an access token from the
    /// client's identity provider — checked at the provider: as a JWT against its JWKS with
    /// our client id (or one of the provider's `access_token_audiences`) as audience, or
    /// through its UserInfo — for tokens of ours, for the
    /// account the identity maps to (as in federation) in the client's project.
    pub async fn exchange_external_token(
        &self,
        client: &ClientApplication,
        subject_token: &str,
        scope: Option<&str>,
        membership_id: Option<&str>,
        remote_address: Option<IpAddr>,
    ) -> Result<IssuedTokens, OAuthError> {
        let provider = client.identity_provider.clone().ok_or_else(|| {
            OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "The client has no identity provider",
            )
        })?;
        let external = |e: crate::error::LoginError| login_refusal(&e);
        let audiences: Vec<&str> = std::iter::once(provider.client_id.as_str())
            .chain(provider.access_token_audiences.iter().map(String::as_str))
            .collect();
        let is_jwt = subject_token.split('.').count() == 3;
        let identity = match (&provider.issuer, &provider.jwks_uri) {
            (Some(issuer), Some(jwks_uri)) if is_jwt => {
                let claims = self
                    .federation()
                    .verify_provider_jwt(
                        subject_token,
                        jwks_uri,
                        &crate::idp::Expected {
                            issuers: &[issuer.as_str()],
                            audiences: &audiences,
                            authorized_party: None,
                            nonce: None,
                            max_age: None,
                        },
                    )
                    .await
                    .map_err(|e| external(e.into()))?;
                crate::idp::identity_of(&claims, Some(issuer)).map_err(|e| external(e.into()))?
            }
            _ => {
                // An opaque token: UserInfo tells who it is for, not whom it was issued to. A
                // provider that signs its tokens could have minted it for any of its apps, so
                // only its introspection (naming us) makes it acceptable.
                if provider.introspection_url.is_some() {
                    self.federation()
                        .provider_introspect(&provider, subject_token, &audiences)
                        .await
                        .map_err(|e| external(e.into()))?;
                } else if provider.issuer.is_some() && provider.jwks_uri.is_some() {
                    return Err(external(
                        crate::idp::ExternalError::OpaqueSubjectToken.into(),
                    ));
                }
                let claims = self
                    .federation()
                    .provider_userinfo(&provider, subject_token)
                    .await
                    .map_err(|e| external(e.into()))?;
                crate::idp::identity_of(&claims, provider.issuer.as_deref())
                    .map_err(|e| external(e.into()))?
            }
        };
        let requested = match scope {
            Some(text) => text.to_owned(),
            None => client
                .default_scope
                .clone()
                .unwrap_or_else(|| "openid".to_owned()),
        };
        let params = LoginParams {
            client: Some(client.id.clone()),
            project: Some(client.project.clone()),
            scope: ScopeSet::parse(&requested)
                .map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.to_string()))?
                .to_string(),
            remote_address,
            ..LoginParams::default()
        };
        let user = self
            .federation()
            .resolve_external_user(&params, &provider, None, &identity)
            .await
            .map_err(external)?;
        // The account's own second factor cannot be asked for here: an account that has one
        // (or must enrol) signs in interactively.
        if user.has_second_factor() || user.mfa_required {
            return Err(OAuthError::invalid_grant(
                "The account uses a second factor: sign in interactively",
            ));
        }
        let memberships = self
            .directory()
            .memberships_of(&user.id)
            .await
            .map_err(server)?;
        let eligible: Vec<_> = params.eligible(&user, &memberships).collect();
        let chosen = match membership_id {
            Some(id) => eligible
                .iter()
                .find(|m| m.id.as_str() == id)
                .map(|m| m.id.clone())
                .ok_or_else(|| OAuthError::invalid_request("Invalid membership_id"))?,
            None => match eligible.as_slice() {
                [only] => only.id.clone(),
                [] => return Err(OAuthError::invalid_request("User not found")),
                _ => {
                    return Err(OAuthError::invalid_request(
                        "Several memberships are eligible: choose one with membership_id",
                    ));
                }
            },
        };
        // Into the machine: a login waiting at Profile, the membership chosen with every
        // check, the grant (a code, redeemed at once), then the token response.
        let login = Login::exchanged(self, params, &user)
            .await
            .map_err(external)?;
        let login = login.choose(&chosen).await.map_err(external)?;
        let (_, code) = login.grant_without_session().await.map_err(external)?;
        let now = self.now();
        let record = match redeem_code(self.login_store(), &code.hash(), now)
            .await
            .map_err(server)?
        {
            CodeRedemption::Redeemed(record) => record,
            _ => return Err(server("the exchanged grant's code was not redeemable")),
        };
        let mut issued = self.tokens_for_redeemed(record, Some(client), now).await?;
        if let Some(body) = issued.response.body.as_object_mut() {
            body.insert(
                "issued_token_type".to_owned(),
                serde_json::json!(ACCESS_TOKEN_TYPE),
            );
        }
        Ok(issued)
    }
}

/// A refused login step as the token endpoint answers it (RFC 8693 §2.2.2: an unacceptable
/// subject token is `invalid_request`).
fn login_refusal(error: &crate::error::LoginError) -> OAuthError {
    use crate::error::Fault;
    match error.fault() {
        // An unreachable provider may answer the same request shortly; one that answered
        // with an error will not.
        Fault::Upstream
            if matches!(
                error,
                crate::error::LoginError::External(crate::idp::ExternalError::Unreachable(_))
            ) =>
        {
            OAuthError::new(ErrorCode::TemporarilyUnavailable, error.to_string())
        }
        Fault::Throttled | Fault::Unavailable => {
            OAuthError::new(ErrorCode::TemporarilyUnavailable, error.to_string())
        }
        Fault::Request | Fault::Credentials | Fault::Policy => {
            OAuthError::invalid_request(error.to_string())
        }
        _ => OAuthError::server_error(error.to_string()),
    }
}
