//! The `client_credentials` grant: a confidential client acting for itself, through its own
//! membership, within the scopes it may be granted.

use super::{Grant, IssuedTokens};
use super::{TokenRequest, server};
use crate::engine::Engine;
use crate::login::access_policy;
use crate::model::{ClientApplication, Reference, UserId};
use crate::oauth::client_auth::AuthenticatedClient;
use crate::oauth::{ErrorCode, OAuthError};
use crate::scope::{ScopeSet, effective_policy};

impl Engine {
    pub(super) async fn client_credentials(
        &self,
        client: Option<AuthenticatedClient>,
        request: &TokenRequest,
    ) -> Result<IssuedTokens, OAuthError> {
        let unauthorized = |text: &str| OAuthError::new(ErrorCode::UnauthorizedClient, text);
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
            .map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.to_string()))?;

        let record = crate::login::client_grant(
            self,
            &client,
            &membership,
            &requested,
            &granted,
            request.remote_address,
            request.user_agent.clone(),
        )
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
    let invalid_scope = |text: &str| OAuthError::new(ErrorCode::InvalidScope, text);
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
