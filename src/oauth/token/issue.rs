//! Turning a granted login into tokens: the access token (RFC 9068), the ID token (OpenID
//! Connect), and the token response with Medplum's extra fields.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::engine::Engine;
use crate::model::{Amr, ClientApplication, LoginRecord, User, random_uuid};
use crate::oauth::{OAuthError, OAuthResponse};
use crate::scope::{Scope, ScopeSet};
use crate::secret::BearerSecret;
use crate::token::claims::{ACCESS_TOKEN_TYP, AccessClaims, ID_TOKEN_TYP, IdClaims};
use crate::token::keys::token_hash;

/// What a token response carries besides the tokens' own claims.
pub(crate) struct Grant<'a> {
    /// The granted login (stage `Granted`, or a `client_credentials` login).
    pub record: &'a LoginRecord,
    /// The client, when the login has one.
    pub client: Option<&'a ClientApplication>,
    /// The scope of this access token (the grant's scope, or a narrowing of it on refresh).
    pub scope: &'a ScopeSet,
    /// The new refresh token, if one is issued.
    pub refresh_token: Option<&'a BearerSecret>,
    /// Whether this is a refresh (no `nonce` in the ID token then, OIDC Core §12.2).
    pub refreshing: bool,
}

/// A successful token response. `Debug` shows the claims, never the tokens.
#[derive(Clone)]
pub struct IssuedTokens {
    /// The signed access token.
    pub access_token: String,
    /// Its claims.
    pub access_claims: AccessClaims,
    /// The signed ID token, when `openid` was granted to a user login.
    pub id_token: Option<String>,
    /// The response to send.
    pub response: OAuthResponse,
}

impl std::fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("access_token", &"<redacted>")
            .field("access_claims", &self.access_claims)
            .field("id_token", &self.id_token.as_ref().map(|_| "<redacted>"))
            .field("response", &self.response)
            .finish()
    }
}

fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

impl Engine {
    /// Issues the tokens of a grant and builds the token response.
    pub(crate) async fn issue_tokens(&self, grant: Grant<'_>) -> Result<IssuedTokens, OAuthError> {
        let oauth = &self.config().oauth;
        let now = self.now();
        let record = grant.record;
        let mut lifetime = oauth.access_token_lifetime;
        if let Some(seconds) = grant.client.and_then(|c| c.access_token_lifetime) {
            lifetime = lifetime.min(time::Duration::seconds(seconds.max(1)));
        }
        let expires_at = now.saturating_add(lifetime);
        let subject = match (&record.user, &record.params.client) {
            (Some(user), _) => user.to_string(),
            (None, Some(client)) => client.to_string(),
            (None, None) => return Err(OAuthError::server_error("grant without a subject")),
        };
        let jti =
            random_uuid(self.random()).map_err(|e| OAuthError::server_error(e.to_string()))?;
        let claims = AccessClaims {
            iss: oauth.issuer_id(),
            sub: subject.clone(),
            aud: oauth.audience(),
            exp: unix(expires_at),
            iat: unix(now),
            jti,
            client_id: record.params.client.as_ref().map(|c| c.to_string()),
            scope: grant.scope.to_string(),
            login_id: record.id.to_string(),
            profile: record.profile.as_ref().map(|p| p.to_string()),
            project: record.project.as_ref().map(|p| format!("Project/{p}")),
            auth_time: record.auth_time.map(unix),
        };
        let keys = self.keys().current();
        let access_token = keys
            .sign(ACCESS_TOKEN_TYP, &claims)
            .map_err(|e| OAuthError::server_error(format!("signing failed: {e}")))?;

        let user = match (&record.user, wants_user_claims(grant.scope)) {
            (Some(id), true) => self
                .directory()
                .user(id)
                .await
                .map_err(|e| OAuthError::server_error(e.to_string()))?,
            _ => None,
        };
        let id_token = if grant.scope.contains(&Scope::OpenId) && record.user.is_some() {
            let id_claims = id_claims(
                self,
                &grant,
                &subject,
                user.as_ref(),
                &token_hash(keys.active().alg(), &access_token),
                now,
            );
            Some(
                keys.sign(ID_TOKEN_TYP, &id_claims)
                    .map_err(|e| OAuthError::server_error(format!("signing failed: {e}")))?,
            )
        } else {
            None
        };

        let mut body = Map::new();
        body.insert("access_token".into(), json!(access_token));
        body.insert("token_type".into(), json!("Bearer"));
        body.insert("expires_in".into(), json!(lifetime.whole_seconds()));
        body.insert("scope".into(), json!(grant.scope.to_string()));
        if let Some(id_token) = &id_token {
            body.insert("id_token".into(), json!(id_token));
        }
        if let Some(refresh) = grant.refresh_token {
            body.insert("refresh_token".into(), json!(refresh.expose()));
        }
        // Medplum's references carry the display name when there is one.
        let reference = |reference: String, display: Option<&String>| match display {
            Some(display) => json!({ "reference": reference, "display": display }),
            None => json!({ "reference": reference }),
        };
        if let Some(project) = &record.project {
            body.insert(
                "project".into(),
                reference(format!("Project/{project}"), record.project_name.as_ref()),
            );
        }
        if let Some(profile) = &record.profile {
            body.insert(
                "profile".into(),
                reference(profile.to_string(), record.profile_display.as_ref()),
            );
        }
        if let Some(patient) = &record.patient {
            body.insert("patient".into(), json!(patient.id()));
        }
        if let Some(encounter) = &record.encounter {
            body.insert("encounter".into(), json!(encounter.id()));
        }
        if let Some(style) = &oauth.smart_style_url {
            body.insert("smart_style_url".into(), json!(style));
        }
        if record.user.is_some() {
            body.insert(
                "need_patient_banner".into(),
                json!(record.patient.is_some()),
            );
        }
        Ok(IssuedTokens {
            access_token,
            access_claims: claims,
            id_token,
            response: OAuthResponse::json(200, Value::Object(body)),
        })
    }
}

fn wants_user_claims(scope: &ScopeSet) -> bool {
    scope.contains(&Scope::Email) || scope.contains(&Scope::Profile)
}

fn id_claims(
    engine: &Engine,
    grant: &Grant<'_>,
    subject: &str,
    user: Option<&User>,
    at_hash: &str,
    now: OffsetDateTime,
) -> IdClaims {
    let oauth = &engine.config().oauth;
    let record = grant.record;
    let scope = grant.scope;
    let mut amr: Vec<String> = record
        .amr
        .iter()
        .map(|a| {
            match a {
                Amr::Pwd => "pwd",
                Amr::Otp => "otp",
                Amr::Fed => "fed",
            }
            .to_owned()
        })
        .collect();
    if record.amr.len() > 1 {
        amr.push("mfa".to_owned());
    }
    let email = scope.contains(&Scope::Email);
    let profile = scope.contains(&Scope::Profile);
    IdClaims {
        iss: oauth.issuer_id(),
        sub: subject.to_owned(),
        aud: record
            .params
            .client
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_else(|| oauth.issuer_id()),
        exp: unix(now.saturating_add(oauth.id_token_lifetime)),
        iat: unix(now),
        auth_time: record.auth_time.map(unix).unwrap_or_else(|| unix(now)),
        nonce: if grant.refreshing {
            None
        } else {
            record.params.nonce.clone()
        },
        at_hash: Some(at_hash.to_owned()),
        amr,
        fhir_user: record
            .profile
            .as_ref()
            .filter(|_| scope.contains(&Scope::FhirUser))
            .map(|p| p.to_string()),
        email: user.filter(|_| email).map(|u| u.email.clone()),
        email_verified: user.filter(|_| email).map(|u| u.email_verified),
        given_name: user
            .filter(|u| profile && !u.first_name.is_empty())
            .map(|u| u.first_name.clone()),
        family_name: user
            .filter(|u| profile && !u.last_name.is_empty())
            .map(|u| u.last_name.clone()),
        login_id: record.id.to_string(),
    }
}
