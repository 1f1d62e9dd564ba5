//! The password lifecycle and email verification: `/auth/resetpassword`,
//! `/auth/setpassword`, `/auth/changepassword`, `/auth/verifyemail`.

use axum::extract::State;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::OperationOutcome;
use super::edge::{AuthJson, Authenticated, ClientAddress, Limited, LoginRoutes, ResetRoutes};
use super::steps::{Answer, required};
use crate::account::AccountError;
use crate::engine::Engine;
use crate::model::ProjectId;

/// The bodies of these routes (Medplum's field names).
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct PasswordBody {
    email: Option<String>,
    project_id: Option<String>,
    send_email: Option<bool>,
    id: Option<String>,
    secret: Option<String>,
    password: Option<String>,
    old_password: Option<String>,
    new_password: Option<String>,
    recaptcha_token: Option<String>,
}

/// An account refusal as an OperationOutcome, with `Retry-After` when throttled.
pub(super) fn refusal(engine: &Engine, error: AccountError) -> OperationOutcome {
    if let AccountError::Throttled { retry_after } = error {
        return OperationOutcome::throttled(engine.now(), retry_after);
    }
    error.into()
}

/// `POST /auth/resetpassword {email, projectId?, sendEmail?}`: "All OK" whether or not the
/// account exists. Only checks that depend on no account (a valid email, a domain without an
/// external provider) run before the answer; the lookup, the link and the mail run after it,
/// in a task of their own, so the answer's content and timing tell nothing.
pub(crate) async fn reset_password(
    _: Limited<ResetRoutes>,
    State(engine): State<Engine>,
    ClientAddress(remote): ClientAddress,
    AuthJson(body): AuthJson<PasswordBody>,
) -> Answer {
    let email = body.email.as_deref().unwrap_or_default();
    let accounts = engine.accounts();
    let email = accounts
        .check_reset_email(email)
        .await
        .map_err(|e| refusal(&engine, e))?;
    accounts
        .check_human(body.recaptcha_token.as_deref(), remote)
        .await
        .map_err(|e| refusal(&engine, e))?;
    let project = body
        .project_id
        .filter(|p| !p.is_empty() && p != "new")
        .map(ProjectId::new);
    let send_email = body.send_email.unwrap_or(true);
    let worker = engine.clone();
    tokio::spawn(async move {
        let accounts = worker.accounts();
        if let Err(error) = accounts
            .request_password_reset(&email, project.as_ref(), send_email, remote)
            .await
        {
            tracing::warn!(%error, "a password reset could not be completed");
        }
    });
    Ok(OperationOutcome::all_ok().into_response())
}

/// `POST /auth/setpassword {id, secret, password}`.
pub(crate) async fn set_password(
    _: Limited<ResetRoutes>,
    State(engine): State<Engine>,
    ClientAddress(remote): ClientAddress,
    AuthJson(body): AuthJson<PasswordBody>,
) -> Answer {
    let id = required(&body.id, "Invalid request ID", "id")?;
    let secret = required(&body.secret, "Missing secret", "secret")?;
    let password = required(&body.password, "Missing password", "password")?;
    engine
        .accounts()
        .set_password(id, secret, password, remote)
        .await
        .map_err(|e| refusal(&engine, e))?;
    Ok(OperationOutcome::all_ok().into_response())
}

/// `POST /auth/changepassword {oldPassword, newPassword}` with the owner's bearer token.
pub(crate) async fn change_password(
    _: Limited<LoginRoutes>,
    State(engine): State<Engine>,
    ClientAddress(remote): ClientAddress,
    Authenticated(principal): Authenticated,
    AuthJson(body): AuthJson<PasswordBody>,
) -> Answer {
    let user = super::account::account_holder(&engine, &principal).await?;
    let old = required(&body.old_password, "Missing oldPassword", "oldPassword")?;
    let new = required(&body.new_password, "Missing newPassword", "newPassword")?;
    engine
        .accounts()
        .change_password(&user, Some(&principal.login), old, new, remote)
        .await
        .map_err(|e| {
            let mut outcome = refusal(&engine, e);
            if outcome.expression == Some("password") {
                outcome.expression = Some("newPassword");
            }
            outcome
        })?;
    Ok(OperationOutcome::all_ok().into_response())
}

/// `POST /auth/verifyemail {id, secret}`.
pub(crate) async fn verify_email(
    _: Limited<ResetRoutes>,
    State(engine): State<Engine>,
    ClientAddress(remote): ClientAddress,
    AuthJson(body): AuthJson<PasswordBody>,
) -> Answer {
    let id = required(&body.id, "Invalid request ID", "id")?;
    let secret = required(&body.secret, "Missing secret", "secret")?;
    engine
        .accounts()
        .verify_email(id, secret, remote)
        .await
        .map_err(|e| refusal(&engine, e))?;
    Ok(OperationOutcome::all_ok().into_response())
}
