//! The token endpoint: `authorization_code`, `refresh_token` and `client_credentials`.
//!
//! Every single-use value is consumed by one atomic store call before anything is issued:
//! the code by [`consume_code`](crate::store::LoginStore::consume_code), the refresh token by
//! [`rotate_refresh`](crate::store::LoginStore::rotate_refresh). A replayed code or a reused
//! refresh token revokes the whole grant, and with it every token issued from it.

use std::net::IpAddr;

use super::client_auth::{AuthenticatedClient, PresentedCredentials, presented_credentials};
use super::{Form, OAuthError, OAuthResponse};
use crate::audit::AuditKind;
use crate::engine::{AuditContext, Engine};
use crate::login::access_policy;
use crate::model::{
    AuthMethod, ClientApplication, ClientId, LoginId, LoginParams, LoginRecord, Reference,
    RefreshPolicy, RefreshState, StageTag, UserId,
};
use crate::pkce;
use crate::scope::{Scope, ScopeSet, effective_policy};
use crate::secret::{BearerSecret, SecretHash};
use crate::store::{CodeRedemption, RefreshRotation};
use crate::token::{Grant, IssuedTokens};

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
        Ok(Some(self.inner.clients.authenticate(presented).await?))
    }

    async fn authorization_code(
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
        let record = match self
            .login_store()
            .consume_code(&SecretHash::of_presented(code), now)
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
        let client_app = client.as_ref().map(|c| &c.client);
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
    async fn refresh_policy(
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

    async fn refresh_token(
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
                    .map_err(|e| OAuthError::new(super::ErrorCode::InvalidScope, e.to_string()))?;
                if !granted.covers(&asked) {
                    return Err(OAuthError::new(
                        super::ErrorCode::InvalidScope,
                        "The requested scope exceeds the grant",
                    ));
                }
                asked
            }
        };
        if !matches!(
            self.liveness(&current.id).await.map_err(server)?,
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
        let record = match self
            .login_store()
            .rotate_refresh(&hash, &next.hash(), client_id.as_ref(), self.now())
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

    async fn client_credentials(
        &self,
        client: Option<AuthenticatedClient>,
        request: &TokenRequest,
    ) -> Result<IssuedTokens, OAuthError> {
        let unauthorized = |text: &str| OAuthError::new(super::ErrorCode::UnauthorizedClient, text);
        let client = client
            .map(|c| c.client)
            .ok_or_else(|| OAuthError::invalid_client("Client authentication is required", None))?;
        if client.is_public() {
            return Err(unauthorized(
                "Public clients cannot use the client_credentials grant",
            ));
        }
        let requested = client_credentials_scope(&client, request.form.get("scope"))?;
        // A client acts through its own membership: user = the client's id, profile =
        // ClientApplication/<id> (Medplum's model).
        let profile = Reference::new("ClientApplication", client.id.as_str())
            .map_err(|_| unauthorized("The client id cannot be a FHIR id"))?;
        let membership = self
            .directory()
            .memberships_of(&UserId::new(client.id.as_str()))
            .await
            .map_err(server)?
            .into_iter()
            .find(|m| m.active && m.project == client.project && m.profile == profile)
            .ok_or_else(|| unauthorized("The client has no active membership in its project"))?;
        let policy = access_policy(self, &membership)
            .await
            .map_err(|e| OAuthError::invalid_request(e.to_string()))?;
        policy
            .check_ip(request.remote_address)
            .map_err(|e| OAuthError::invalid_request(e.to_string()))?;
        let granted = requested.narrow_to_policy(&policy);
        effective_policy(&policy, &granted, None)
            .map_err(|e| OAuthError::new(super::ErrorCode::InvalidScope, e.to_string()))?;

        let now = self.now();
        let handle = BearerSecret::generate(self.random()).map_err(server)?;
        let mut record = LoginRecord::new(
            LoginId::generate(self.random()).map_err(server)?,
            handle.hash(),
            LoginParams {
                client: Some(client.id.clone()),
                project: Some(client.project.clone()),
                scope: requested.to_string(),
                remote_address: request.remote_address,
                user_agent: request.user_agent.clone(),
                ..LoginParams::default()
            },
            AuthMethod::Client,
            now,
            now.saturating_add(self.config().oauth.access_token_lifetime),
        );
        record.stage = StageTag::Granted;
        record.auth_time = Some(now);
        record.membership = Some(membership.id.clone());
        record.project = Some(membership.project.clone());
        record.profile = Some(membership.profile.clone());
        record.granted_scope = Some(granted.to_string());
        self.login_store()
            .create_login(&record)
            .await
            .map_err(server)?;
        self.issue_tokens(Grant {
            record: &record,
            client: Some(&client),
            scope: &granted,
            refresh_token: None,
            refreshing: false,
        })
        .await
    }

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
                super::ErrorCode::UnauthorizedClient,
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
                    self.provider_introspect(&provider, subject_token, &audiences)
                        .await
                        .map_err(|e| external(e.into()))?;
                } else if provider.issuer.is_some() && provider.jwks_uri.is_some() {
                    return Err(external(
                        crate::idp::ExternalError::OpaqueSubjectToken.into(),
                    ));
                }
                let claims = self
                    .provider_userinfo(&provider, subject_token)
                    .await
                    .map_err(|e| external(e.into()))?;
                crate::idp::identity_of(&claims, provider.issuer.as_deref())
                    .map_err(|e| external(e.into()))?
            }
        };
        let now = self.now();
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
                .map_err(|e| OAuthError::new(super::ErrorCode::InvalidScope, e.to_string()))?
                .to_string(),
            remote_address,
            ..LoginParams::default()
        };
        let user = self
            .resolve_external_user(&params, &provider, None, &identity)
            .await
            .map_err(external)?;
        // The account's own second factor cannot be asked for here: an account that has one
        // (or must enrol) signs in interactively.
        if user.mfa_enrolled() || user.mfa_required {
            return Err(OAuthError::invalid_grant(
                "The account uses a second factor: sign in interactively",
            ));
        }
        let memberships = self
            .directory()
            .memberships_of(&user.id)
            .await
            .map_err(server)?;
        let eligible: Vec<_> = crate::login::eligible(&user, &params, &memberships).collect();
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
        let handle = BearerSecret::generate(self.random()).map_err(server)?;
        let mut record = LoginRecord::new(
            LoginId::generate(self.random()).map_err(server)?,
            handle.hash(),
            params,
            AuthMethod::External,
            now,
            now.saturating_add(self.config().oauth.access_token_lifetime),
        );
        record.user = Some(user.id.clone());
        record.auth_time = Some(now);
        record.amr = vec![crate::model::Amr::Fed];
        let (membership, patient, encounter) =
            crate::login::check_membership(self, &record, &chosen)
                .await
                .map_err(external)?;
        record.membership = Some(membership.id);
        record.project = Some(membership.project);
        record.profile = Some(membership.profile);
        record.patient = patient;
        record.encounter = encounter;
        let granted = crate::login::granted_scope(self, &record, None)
            .await
            .map_err(external)?;
        record.granted_scope = Some(granted.to_string());
        record.stage = StageTag::Granted;
        let refresh = match self.refresh_policy(&record, Some(client), &granted).await? {
            true => Some(BearerSecret::generate(self.random()).map_err(server)?),
            false => None,
        };
        if let Some(token) = &refresh {
            let expires_at = now.saturating_add(self.config().oauth.refresh_lifetime);
            record.refresh = Some(RefreshState {
                current: token.hash(),
                expires_at,
            });
            record.expires_at = record.expires_at.max(expires_at);
        }
        self.login_store()
            .create_login(&record)
            .await
            .map_err(server)?;
        let mut issued = self
            .issue_tokens(Grant {
                record: &record,
                client: Some(client),
                scope: &granted,
                refresh_token: refresh.as_ref(),
                refreshing: false,
            })
            .await?;
        if let Some(body) = issued.response.body.as_object_mut() {
            body.insert(
                "issued_token_type".to_owned(),
                serde_json::json!(ACCESS_TOKEN_TYPE),
            );
        }
        Ok(issued)
    }

    /// Revokes a grant: its login, and so every access and refresh token issued from it.
    pub(crate) async fn revoke_grant(&self, login: &LoginId) -> Result<(), OAuthError> {
        self.login_store()
            .revoke_login(login)
            .await
            .map_err(server)?;
        self.inner.liveness.forget(login);
        Ok(())
    }
}

/// A refused login step as the token endpoint answers it (RFC 8693 §2.2.2: an unacceptable
/// subject token is `invalid_request`).
fn login_refusal(error: &crate::error::LoginError) -> OAuthError {
    use crate::error::Fault;
    match error.fault() {
        Fault::Server => {
            let mut e = OAuthError::server_error(error.to_string());
            if matches!(
                error,
                crate::error::LoginError::External(crate::idp::ExternalError::Unreachable(_))
            ) {
                e = OAuthError::new(super::ErrorCode::TemporarilyUnavailable, error.to_string());
            }
            e
        }
        Fault::Throttled => {
            OAuthError::new(super::ErrorCode::TemporarilyUnavailable, error.to_string())
        }
        _ => OAuthError::invalid_request(error.to_string()),
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

/// The scope a `client_credentials` request asks for, checked against the client.
///
/// Without a `scope` parameter the client's `default_scope` is used, else every scope it is
/// allowed (RFC 6749 §3.3 lets the server pick a default; Medplum's `startClientLogin` never
/// sends one). A client acting for itself has no patient in context, so `patient/` scopes are
/// left out of a default and dropped from a request that also asks for something else — the
/// token's `scope` then says what was granted (§3.3). A request for nothing but `patient/`
/// scopes cannot be served and is `invalid_scope`. A requested scope outside what the client
/// is allowed is `invalid_scope` whatever its context.
fn client_credentials_scope(
    client: &ClientApplication,
    asked: Option<&str>,
) -> Result<ScopeSet, OAuthError> {
    let invalid_scope = |text: &str| OAuthError::new(super::ErrorCode::InvalidScope, text);
    let allowed = ScopeSet::parse(&client.allowed_scopes).map_err(|_| server("client scope"))?;
    let Some(text) = asked else {
        let default = match &client.default_scope {
            Some(text) => ScopeSet::parse(text).map_err(|_| server("client default scope"))?,
            None => allowed.clone(),
        };
        // A default outside the allowed scopes is a registration mistake: grant only the
        // part the client may have.
        return Ok(default.without_patient_scopes().intersect(&allowed));
    };
    let requested = ScopeSet::parse(text).map_err(|e| invalid_scope(&e.to_string()))?;
    if !allowed.covers(&requested) {
        return Err(invalid_scope(
            "The requested scope exceeds what the client may be granted",
        ));
    }
    let without_patient = requested.without_patient_scopes();
    if without_patient.is_empty() && !requested.is_empty() {
        return Err(invalid_scope(
            "Missing patient context: a client acting for itself has no patient; ask for \
             system/ or user/ scopes",
        ));
    }
    Ok(without_patient)
}
