//! `POST /admin/projects/{project}/invite`: a project admin invites a person.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::OperationOutcome;
use super::edge::{AuthJson, Authenticated, Limited, RegistrationRoutes};
use super::password::refusal;
use super::steps::{Answer, json_response, membership_entry, required};
use crate::account::{AccountError, Invitation, RegistrationRefusal};
use crate::engine::Engine;
use crate::model::{AccessPolicyId, ProjectId};

/// Medplum's invite request.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct InviteBody {
    resource_type: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    send_email: Option<bool>,
    scope: Option<String>,
    membership: Option<MembershipFields>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct MembershipFields {
    admin: Option<bool>,
    access_policy: Option<ReferenceField>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct ReferenceField {
    reference: Option<String>,
}

/// Invites `email` into the project; answers the new ProjectMembership. Needs a first-party
/// token of an active admin membership of that project (403 "Forbidden" otherwise); an
/// invitee already in the project is 409, as in Medplum.
pub(crate) async fn invite(
    _: Limited<RegistrationRoutes>,
    State(engine): State<Engine>,
    Path(project): Path<String>,
    Authenticated(principal): Authenticated,
    AuthJson(body): AuthJson<InviteBody>,
) -> Answer {
    super::account::account_holder(&engine, &principal).await?;
    let email = required(
        &body.email,
        "Valid email address between 3 and 72 characters is required",
        "email",
    )?;
    let mut invitation = Invitation::new(email);
    if let Some(kind) = body.resource_type {
        invitation.resource_type = kind;
    }
    invitation.first_name = body.first_name.unwrap_or_default();
    invitation.last_name = body.last_name.unwrap_or_default();
    invitation.send_email = body.send_email.unwrap_or(true);
    invitation.project_scoped = body.scope.as_deref() == Some("project");
    if let Some(membership) = body.membership {
        invitation.admin = membership.admin.unwrap_or(false);
        invitation.access_policy = membership
            .access_policy
            .and_then(|r| r.reference)
            .map(|r| AccessPolicyId::new(r.trim_start_matches("AccessPolicy/")));
    }
    let invited = engine
        .accounts()
        .invite(&principal.membership, &ProjectId::new(project), invitation)
        .await
        .map_err(|error| {
            let status = match &error {
                AccountError::Registration(RegistrationRefusal::NotProjectAdmin) => {
                    Some(StatusCode::FORBIDDEN)
                }
                AccountError::Registration(RegistrationRefusal::AlreadyInProject) => {
                    Some(StatusCode::CONFLICT)
                }
                _ => None,
            };
            let mut outcome = refusal(&engine, error);
            if let Some(status) = status {
                outcome = OperationOutcome::with_status(status, outcome.text);
            }
            outcome
        })?;
    Ok(json_response(
        membership_entry(&engine, &invited.membership).await?,
    ))
}
