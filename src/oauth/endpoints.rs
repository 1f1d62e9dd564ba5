//! Introspection (RFC 7662), revocation (RFC 7009), UserInfo (OpenID Connect Core §5.3) and
//! logout.

use serde_json::{Map, Value, json};

use super::client_auth::{PresentedCredentials, presented_credentials};
use super::token::TokenRequest;
use super::{ErrorCode, OAuthError, OAuthResponse};
use crate::engine::Engine;
use crate::model::ClientId;
use crate::scope::Scope;
use crate::secret::SecretHash;
use crate::token::claims::{ACCESS_TOKEN_TYP, AccessClaims};
use crate::token::keys::Expectation;
use crate::token::{Principal, Subject, VerifyError};

fn server(e: impl std::fmt::Display) -> OAuthError {
    OAuthError::server_error(e.to_string())
}

impl Engine {
    /// Token introspection for resource servers. The caller must authenticate as a client, or
    /// present a live access token as a bearer (SMART). Anything but a live access token of
    /// this server answers exactly `{"active": false}`.
    pub async fn introspect(&self, request: &TokenRequest) -> OAuthResponse {
        match self.introspect_checked(request).await {
            Ok(body) => OAuthResponse::json(200, body),
            Err(error) => error.to_response(),
        }
    }

    async fn introspect_checked(&self, request: &TokenRequest) -> Result<Value, OAuthError> {
        let bearer = request
            .authorization
            .as_deref()
            .and_then(|h| h.strip_prefix("Bearer "));
        match bearer {
            Some(token) => {
                self.verifier().verify(token.trim()).await.map_err(|_| {
                    let mut e = OAuthError::new(ErrorCode::InvalidToken, "Invalid bearer token");
                    e.www_authenticate = Some("Bearer realm=\"fhirgate\"".to_owned());
                    e
                })?;
            }
            None => {
                let presented =
                    presented_credentials(request.authorization.as_deref(), &request.form)?;
                if matches!(presented, PresentedCredentials::None { .. }) {
                    return Err(OAuthError::invalid_client(
                        "Introspection requires client authentication",
                        Some("Basic"),
                    ));
                }
                let client = self.client_authenticator().authenticate(&presented).await?;
                if client.client.is_public() {
                    return Err(OAuthError::invalid_client(
                        "Introspection requires client authentication",
                        Some("Basic"),
                    ));
                }
            }
        }
        let token = request
            .form
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("Missing token"))?;
        Ok(match self.verifier().verify(token).await {
            Ok(principal) => self.introspection_body(&principal),
            Err(_) => json!({ "active": false }),
        })
    }

    fn introspection_body(&self, p: &Principal) -> Value {
        let oauth = &self.config().oauth;
        let mut body = Map::new();
        body.insert("active".into(), json!(true));
        body.insert("scope".into(), json!(p.scope.to_string()));
        if let Some(client) = &p.client {
            body.insert("client_id".into(), json!(client.as_str()));
        }
        let sub = match &p.subject {
            Subject::User(u) => u.as_str(),
            Subject::Client(c) => c.as_str(),
        };
        body.insert("sub".into(), json!(sub));
        body.insert("token_type".into(), json!("Bearer"));
        body.insert("exp".into(), json!(p.expires_at.unix_timestamp()));
        body.insert("iat".into(), json!(p.issued_at.unix_timestamp()));
        body.insert("iss".into(), json!(oauth.issuer_id()));
        body.insert("aud".into(), json!(oauth.audience()));
        body.insert("jti".into(), json!(p.token_id));
        body.insert("fhirUser".into(), json!(p.profile.as_str()));
        if let Some(patient) = &p.patient {
            body.insert("patient".into(), json!(patient.id()));
        }
        if let Some(encounter) = &p.encounter {
            body.insert("encounter".into(), json!(encounter.id()));
        }
        Value::Object(body)
    }

    /// Token revocation: a refresh token or an access token; either revokes its whole grant.
    /// Answers 200 for unknown and already-revoked tokens; refuses a token issued to another
    /// client.
    pub async fn revoke(&self, request: &TokenRequest) -> OAuthResponse {
        match self.revoke_checked(request).await {
            Ok(()) => OAuthResponse::json(200, json!({})),
            Err(error) => error.to_response(),
        }
    }

    async fn revoke_checked(&self, request: &TokenRequest) -> Result<(), OAuthError> {
        let presented = presented_credentials(request.authorization.as_deref(), &request.form)?;
        let caller: Option<ClientId> = self.identify_client(&presented).await?.map(|c| c.client.id);
        let token = request
            .form
            .get("token")
            .ok_or_else(|| OAuthError::invalid_request("Missing token"))?;
        if token.len() > 8192 {
            return Ok(());
        }
        let foreign = || {
            OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "The token was not issued to this client",
            )
        };
        // A refresh token (the hint is only a hint: both kinds are tried).
        if let Some(record) = self
            .login_store()
            .login_by_refresh(&SecretHash::of_presented(token))
            .await
            .map_err(server)?
        {
            if record.params.client != caller {
                return Err(foreign());
            }
            return self.revoke_grant(&record.id).await;
        }
        // An access token, valid or recently expired.
        let oauth = &self.config().oauth;
        let issuer = oauth.issuer_id();
        let audience = oauth.audience();
        let claims = self.keys().current().verify::<AccessClaims>(
            token,
            &Expectation {
                typ: ACCESS_TOKEN_TYP,
                issuer: &issuer,
                audience: &audience,
                now: self.now(),
                leeway_seconds: oauth.access_token_lifetime.whole_seconds(),
            },
        );
        if let Ok(claims) = claims {
            if claims.client_id.map(ClientId::new) != caller {
                return Err(foreign());
            }
            return self.revoke_grant(&claims.login_id.as_str().into()).await;
        }
        Ok(())
    }

    /// OpenID Connect UserInfo for a bearer access token: the same `sub` as the tokens, and
    /// standard claims by granted scope. Refusals carry an RFC 6750 challenge.
    pub async fn userinfo(&self, bearer: &str) -> OAuthResponse {
        match self.userinfo_checked(bearer).await {
            Ok(body) => OAuthResponse::json(200, body),
            Err(error) => error.to_response(),
        }
    }

    async fn userinfo_checked(&self, bearer: &str) -> Result<Value, OAuthError> {
        let principal = self.verifier().verify(bearer).await.map_err(bearer_error)?;
        if !principal.scope.contains(&Scope::OpenId) {
            let mut e = OAuthError::new(
                ErrorCode::InsufficientScope,
                "UserInfo needs the openid scope",
            );
            e.www_authenticate = Some(
                "Bearer realm=\"fhirgate\", error=\"insufficient_scope\", scope=\"openid\""
                    .to_owned(),
            );
            return Err(e);
        }
        let mut body = Map::new();
        match &principal.subject {
            Subject::Client(client) => {
                body.insert("sub".into(), json!(client.as_str()));
            }
            Subject::User(id) => {
                body.insert("sub".into(), json!(id.as_str()));
                let user = self
                    .directory()
                    .user(id)
                    .await
                    .map_err(server)?
                    .ok_or_else(|| bearer_error(VerifyError::Inactive))?;
                if principal.scope.contains(&Scope::FhirUser)
                    || principal.scope.contains(&Scope::Profile)
                {
                    body.insert("fhirUser".into(), json!(principal.profile.as_str()));
                }
                if principal.scope.contains(&Scope::Profile) {
                    let name = format!("{} {}", user.first_name, user.last_name);
                    let name = name.trim();
                    if !name.is_empty() {
                        body.insert("name".into(), json!(name));
                    }
                    if !user.first_name.is_empty() {
                        body.insert("given_name".into(), json!(user.first_name));
                    }
                    if !user.last_name.is_empty() {
                        body.insert("family_name".into(), json!(user.last_name));
                    }
                    body.insert("profile".into(), json!(principal.profile.as_str()));
                }
                if principal.scope.contains(&Scope::Email) {
                    body.insert("email".into(), json!(user.email));
                    body.insert("email_verified".into(), json!(user.email_verified));
                }
            }
        }
        Ok(Value::Object(body))
    }

    /// Signs out: revokes the grant behind the access token and the single-sign-on session it
    /// came from, so neither its tokens nor the browser session work again.
    pub async fn logout(&self, principal: &Principal) -> Result<(), OAuthError> {
        let record = self
            .login_store()
            .login(&principal.login)
            .await
            .map_err(server)?;
        self.revoke_grant(&principal.login).await?;
        if let Some(parent) = record.and_then(|r| r.parent) {
            self.revoke_grant(&parent).await?;
        }
        Ok(())
    }
}

/// A refused bearer token as an RFC 6750 error (401 with a challenge).
pub(crate) fn bearer_error(error: VerifyError) -> OAuthError {
    if let VerifyError::Store(e) = &error {
        return OAuthError::server_error(e.to_string());
    }
    let mut e = OAuthError::new(ErrorCode::InvalidToken, error.to_string());
    e.www_authenticate = Some(error.challenge());
    e
}
