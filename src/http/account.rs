//! Account management with a bearer token: `/auth/me`, `/auth/mfa/*` (status, setup,
//! enrolment, disable) and `/auth/revoke`. Only a first-party token manages the account.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::OperationOutcome;
use super::edge::{AuthJson, Authenticated, Limited, MfaRoutes};
use super::steps::{Answer, json_response, required, with_qr_code};
use crate::engine::Engine;
use crate::error::LoginError;
use crate::model::{LoginId, StageTag};
use crate::token::Subject;

/// The bodies of the account routes.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct AccountBody {
    token: Option<String>,
    login_id: Option<String>,
}

fn user_of(principal: &crate::token::Principal) -> Result<crate::model::UserId, OperationOutcome> {
    match &principal.subject {
        Subject::User(user) => Ok(user.clone()),
        Subject::Client(_) => Err(OperationOutcome::with_status(
            StatusCode::FORBIDDEN,
            "Only users have a second factor",
        )),
    }
}

/// Whether the token comes from the user's own application: a sign-in without a client (the
/// server's own sign-in) or a client marked [`first_party`]. Only such tokens manage the
/// account; a third-party app's token — whatever its scopes — must not replace the second
/// factor or end the user's sessions.
///
/// [`first_party`]: crate::model::ClientApplication::first_party
async fn is_first_party(
    engine: &Engine,
    principal: &crate::token::Principal,
) -> Result<bool, OperationOutcome> {
    Ok(match &principal.client {
        None => true,
        Some(id) => engine
            .directory()
            .client(id)
            .await
            .map_err(LoginError::from)?
            .is_some_and(|c| c.first_party),
    })
}

/// The account behind a first-party user token (403 otherwise).
pub(super) async fn account_holder(
    engine: &Engine,
    principal: &crate::token::Principal,
) -> Result<crate::model::UserId, OperationOutcome> {
    let user = user_of(principal)?;
    if !is_first_party(engine, principal).await? {
        return Err(OperationOutcome::with_status(
            StatusCode::FORBIDDEN,
            FIRST_PARTY_REQUIRED,
        ));
    }
    Ok(user)
}

/// The refusal of account management with a third-party token.
pub const FIRST_PARTY_REQUIRED: &str =
    "Account management needs a token from the project's own application";

/// `GET /auth/mfa/status`: whether the account has the second factor, and whether it must.
/// It never creates or shows a secret (`POST /auth/mfa/setup` starts an enrolment).
pub(crate) async fn mfa_status(
    State(engine): State<Engine>,
    Authenticated(principal): Authenticated,
) -> Answer {
    let user = account_holder(&engine, &principal).await?;
    let status = engine.mfa().status(&user).await?;
    let mut enrolled_methods = Vec::new();
    if status.enrolled {
        enrolled_methods.push("totp");
    }
    if status.email {
        enrolled_methods.push("email");
    }
    Ok(json_response(json!({
        "enrolled": status.enrolled,
        "mfaRequired": status.required,
        "enrolledMethods": enrolled_methods,
        "allowedMethods": ["totp", "email"],
    })))
}

/// `POST /auth/mfa/setup`: starts an enrolment — a fresh secret, shown this once as
/// `enrollUri` and `enrollQrCode` — to confirm with `POST /auth/mfa/enroll {token}`.
pub(crate) async fn mfa_setup(
    State(engine): State<Engine>,
    Authenticated(principal): Authenticated,
) -> Answer {
    let user = account_holder(&engine, &principal).await?;
    let uri = engine.mfa().begin_enrolment(&user).await?;
    Ok(json_response(with_qr_code(json!({}), &uri)))
}

/// `POST /auth/mfa/enroll {token}`.
pub(crate) async fn mfa_enroll(
    _: Limited<MfaRoutes>,
    State(engine): State<Engine>,
    Authenticated(principal): Authenticated,
    AuthJson(body): AuthJson<AccountBody>,
) -> Answer {
    let user = account_holder(&engine, &principal).await?;
    let token = required(&body.token, "Missing token", "token")?;
    engine.mfa().confirm_enrolment(&user, token).await?;
    Ok(OperationOutcome::all_ok().into_response())
}

/// `POST /auth/mfa/disable {token}`.
pub(crate) async fn mfa_disable(
    _: Limited<MfaRoutes>,
    State(engine): State<Engine>,
    Authenticated(principal): Authenticated,
    AuthJson(body): AuthJson<AccountBody>,
) -> Answer {
    let user = account_holder(&engine, &principal).await?;
    let token = required(&body.token, "Missing token", "token")?;
    engine.mfa().disable(&user, token).await?;
    Ok(OperationOutcome::all_ok().into_response())
}

/// `GET /auth/me`: the signed-in user, project, membership, profile and sessions.
pub(crate) async fn me(
    State(engine): State<Engine>,
    Authenticated(principal): Authenticated,
) -> Answer {
    let directory = engine.directory();
    let project = directory
        .project(&principal.project)
        .await
        .map_err(LoginError::from)?;
    let membership = directory
        .membership(&principal.membership)
        .await
        .map_err(LoginError::from)?;
    let mut body = json!({
        "project": {
            "resourceType": "Project",
            "id": principal.project.as_str(),
            "name": project.as_ref().map(|p| p.name.clone()).unwrap_or_default(),
            "superAdmin": project.as_ref().is_some_and(|p| p.super_admin),
        },
        "membership": {
            "resourceType": "ProjectMembership",
            "id": principal.membership.as_str(),
            "profile": { "reference": principal.profile.as_str() },
            "admin": membership.as_ref().is_some_and(|m| m.admin),
        },
        "profile": {
            "resourceType": principal.profile.resource_type(),
            "id": principal.profile.id(),
        },
        "config": { "resourceType": "UserConfiguration" },
    });
    let first_party = is_first_party(&engine, &principal).await?;
    if let (Subject::User(user_id), Some(obj)) = (&principal.subject, body.as_object_mut()) {
        let user = directory.user(user_id).await.map_err(LoginError::from)?;
        let now = engine.now();
        // The session list is account management: only for the user's own application.
        let sessions: Vec<Value> = if first_party {
            engine
                .login_store()
                .logins_of_user(user_id)
                .await
                .map_err(LoginError::from)?
                .into_iter()
                .filter(|l| l.stage == StageTag::Granted && !l.revoked && !l.expired_at(now))
                .map(|l| {
                    json!({
                        "id": l.id.as_str(),
                        "lastUpdated": l.created_at.unix_timestamp(),
                        "authMethod": l.auth_method,
                        "remoteAddress": l.params.remote_address.map(|a| a.to_string()),
                        "browser": l.params.user_agent.as_deref().and_then(super::user_agent::browser),
                        "os": l.params.user_agent.as_deref().and_then(super::user_agent::os),
                        "userAgent": l.params.user_agent,
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        obj.insert(
            "user".into(),
            json!({
                "resourceType": "User",
                "id": user_id.as_str(),
                "email": user.as_ref().map(|u| u.email.clone()),
            }),
        );
        // The user's active memberships in this project (the profiles they can switch to).
        let memberships: Vec<Value> = directory
            .memberships_of(user_id)
            .await
            .map_err(LoginError::from)?
            .into_iter()
            .filter(|m| m.active && m.project == principal.project)
            .map(|m| {
                let mut profile = json!({ "reference": m.profile.as_str() });
                if let (Some(display), Some(obj)) = (&m.profile_display, profile.as_object_mut()) {
                    obj.insert("display".into(), json!(display));
                }
                json!({
                    "resourceType": "ProjectMembership",
                    "id": m.id.as_str(),
                    "profile": profile,
                    "admin": m.admin,
                })
            })
            .collect();
        obj.insert(
            "security".into(),
            json!({
                "mfaEnrolled": user.as_ref().is_some_and(|u| u.mfa_enrolled()),
                "sessions": sessions,
                "memberships": memberships,
            }),
        );
    }
    Ok(json_response(body))
}

/// `POST /auth/revoke {loginId}`: ends one of the caller's own sessions.
pub(crate) async fn revoke(
    State(engine): State<Engine>,
    Authenticated(principal): Authenticated,
    AuthJson(body): AuthJson<AccountBody>,
) -> Answer {
    let id = required(&body.login_id, "Login ID is required.", "loginId")?;
    let user = account_holder(&engine, &principal).await?;
    let login = engine
        .login_store()
        .login(&LoginId::new(id))
        .await
        .map_err(LoginError::from)?
        .filter(|l| l.user.as_ref() == Some(&user))
        .ok_or_else(|| OperationOutcome::with_status(StatusCode::NOT_FOUND, "Not found"))?;
    engine.revoke_grant(&login.id).await.map_err(|e| {
        OperationOutcome::with_status(StatusCode::INTERNAL_SERVER_ERROR, e.description)
    })?;
    Ok(OperationOutcome::all_ok().into_response())
}

/// `POST /auth/mfa/send-email-challenge`: mails a code that proves the address, to enrol
/// (`/auth/mfa/enroll-email`) or remove (`/auth/mfa/disable-email`) email as a second factor.
pub(crate) async fn mfa_send_email_challenge(
    _: Limited<MfaRoutes>,
    State(engine): State<Engine>,
    Authenticated(principal): Authenticated,
) -> Answer {
    let user = account_holder(&engine, &principal).await?;
    engine
        .accounts()
        .send_enrolment_code(&user)
        .await
        .map_err(|e| super::password::refusal(&engine, e))?;
    Ok(OperationOutcome::all_ok().into_response())
}

/// `POST /auth/mfa/enroll-email {token}`: email becomes a second factor of the account.
pub(crate) async fn mfa_enroll_email(
    _: Limited<MfaRoutes>,
    State(engine): State<Engine>,
    Authenticated(principal): Authenticated,
    AuthJson(body): AuthJson<AccountBody>,
) -> Answer {
    let user = account_holder(&engine, &principal).await?;
    let token = required(&body.token, "Missing token", "token")?;
    engine
        .accounts()
        .enrol_email_factor(&user, token)
        .await
        .map_err(|e| super::password::refusal(&engine, e))?;
    Ok(OperationOutcome::all_ok().into_response())
}

/// `POST /auth/mfa/disable-email {token}`: removes email as a second factor.
pub(crate) async fn mfa_disable_email(
    _: Limited<MfaRoutes>,
    State(engine): State<Engine>,
    Authenticated(principal): Authenticated,
    AuthJson(body): AuthJson<AccountBody>,
) -> Answer {
    let user = account_holder(&engine, &principal).await?;
    let token = required(&body.token, "Missing token", "token")?;
    engine
        .accounts()
        .remove_email_factor(&user, token)
        .await
        .map_err(|e| super::password::refusal(&engine, e))?;
    Ok(OperationOutcome::all_ok().into_response())
}
