//! The token endpoint: `authorization_code`, `refresh_token`, `client_credentials` and RFC
//! 8693 token exchange, one file per grant.
//!
//! Every single-use value is consumed by one atomic store call before anything is issued:
//! the code by [`consume_code`](crate::store::LoginStore::consume_code), the refresh token by
//! [`rotate_refresh`](crate::store::LoginStore::rotate_refresh). A replayed code or a reused
//! refresh token revokes the whole grant, and with it every token issued from it.

mod client_credentials;
mod code;
mod exchange;
mod issue;
mod refresh;

pub(crate) use issue::Grant;
pub use issue::IssuedTokens;

use std::net::IpAddr;

use super::client_auth::{AuthenticatedClient, PresentedCredentials, presented_credentials};
use super::{Form, OAuthError, OAuthResponse};
use crate::audit::AuditKind;
use crate::engine::{AuditContext, Engine};
use crate::model::{ClientId, LoginId};

/// A request to the token endpoint.
#[derive(Clone)]
pub struct TokenRequest {
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The form body.
    pub form: Form,
    /// Client address.
    pub remote_address: Option<IpAddr>,
    /// User agent.
    pub user_agent: Option<String>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The `Authorization` header carries client credentials: only its scheme is shown.
        let scheme = self
            .authorization
            .as_deref()
            .map(|h| h.split_whitespace().next().unwrap_or_default());
        f.debug_struct("TokenRequest")
            .field("authorization", &scheme.map(|s| format!("{s} <redacted>")))
            .field("form", &self.form)
            .field("remote_address", &self.remote_address)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

impl TokenRequest {
    /// A request from a form body alone.
    pub fn from_form(form: Form) -> Self {
        Self {
            authorization: None,
            form,
            remote_address: None,
            user_agent: None,
        }
    }
}

/// RFC 8693 token exchange.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 token type of access tokens.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Longest accepted code or refresh token.
const MAX_TOKEN: usize = 256;

/// At most `max` bytes of `text`, cut at a character boundary (for audit fields taken from
/// requests).
fn truncated(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

fn server(e: impl std::fmt::Display) -> OAuthError {
    OAuthError::server_error(e.to_string())
}

impl Engine {
    /// Answers a token request: the token response, or an RFC 6749 error response. Both
    /// carry `Cache-Control: no-store`.
    pub async fn token(&self, request: TokenRequest) -> OAuthResponse {
        match self.token_grant(&request).await {
            Ok(issued) => issued.response,
            Err(error) => error.to_response(),
        }
    }

    /// The typed form of [`Engine::token`]. A refusal is reported to the audit sink
    /// ([`AuditKind::TokenRefused`]) with its error code and description — which never carry
    /// a secret — the grant type and the client id the request named.
    pub async fn token_grant(&self, request: &TokenRequest) -> Result<IssuedTokens, OAuthError> {
        let result = self.answer_token_request(request).await;
        if let Err(error) = &result {
            let client = presented_credentials(request.authorization.as_deref(), &request.form)
                .ok()
                .and_then(|p| p.client_id().map(|id| ClientId::new(truncated(id, 128))));
            self.audit(
                AuditKind::TokenRefused {
                    grant_type: truncated(request.form.get("grant_type").unwrap_or_default(), 128)
                        .to_owned(),
                    error: error.code.as_str().to_owned(),
                    description: error.description.clone(),
                    detail: error.detail.clone(),
                },
                AuditContext {
                    client,
                    remote_address: request.remote_address,
                    ..AuditContext::default()
                },
            );
        }
        result
    }

    async fn answer_token_request(
        &self,
        request: &TokenRequest,
    ) -> Result<IssuedTokens, OAuthError> {
        let form = &request.form;
        let grant_type = form
            .get("grant_type")
            .ok_or_else(|| OAuthError::invalid_request("Missing grant_type"))?;
        let presented = presented_credentials(request.authorization.as_deref(), form)?;
        let client = self.identify_client(&presented).await?;
        match grant_type {
            "authorization_code" => self.authorization_code(client, form).await,
            "refresh_token" => self.refresh_token(client, request).await,
            "client_credentials" => self.client_credentials(client, request).await,
            TOKEN_EXCHANGE => {
                let client = client.map(|c| c.client).ok_or_else(|| {
                    OAuthError::invalid_client("Token exchange needs a client", None)
                })?;
                let subject = form
                    .get("subject_token")
                    .ok_or_else(|| OAuthError::invalid_request("Missing subject_token"))?;
                if form.get("subject_token_type") != Some(ACCESS_TOKEN_TYPE) {
                    return Err(OAuthError::invalid_request(format!(
                        "subject_token_type must be {ACCESS_TOKEN_TYPE}"
                    )));
                }
                if form.get("actor_token").is_some() {
                    return Err(OAuthError::invalid_request(
                        "Delegation (actor_token) is not supported",
                    ));
                }
                self.exchange_external_token(
                    &client,
                    subject,
                    form.get("scope"),
                    form.get("membership_id"),
                    request.remote_address,
                )
                .await
            }
            other => Err(OAuthError::new(
                super::ErrorCode::UnsupportedGrantType,
                format!("Unsupported grant_type {other}"),
            )),
        }
    }

    /// Authenticates the client, or accepts "no client" (a login started without one, as
    /// Medplum's own app does: it sends an empty `client_id`).
    pub(crate) async fn identify_client(
        &self,
        presented: &PresentedCredentials,
    ) -> Result<Option<AuthenticatedClient>, OAuthError> {
        if let PresentedCredentials::None { client_id: None } = presented {
            return Ok(None);
        }
        Ok(Some(
            self.client_authenticator().authenticate(presented).await?,
        ))
    }

    /// Revokes a grant: its login, and so every access and refresh token issued from it.
    pub(crate) async fn revoke_grant(&self, login: &LoginId) -> Result<(), OAuthError> {
        self.login_store()
            .revoke_login(login)
            .await
            .map_err(server)?;
        self.verifier().forget(login);
        Ok(())
    }
}
