//! Registration: `/auth/newuser`, `/auth/newproject`, `/auth/newpatient`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header;
use serde::Deserialize;

use super::HttpConfig;
use super::edge::{AuthJson, ClientAddress, Limited, RegistrationRoutes, header_text};
use super::password::refusal;
use super::steps::{Answer, OAuthFields, after_credentials, code_result, required};
use crate::account::NewUser;
use crate::engine::Engine;
use crate::login::Profile;
use crate::model::ProjectId;

/// `POST /auth/newuser`: the sign-up form and the OAuth request it continues.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct NewUserBody {
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    password: Option<String>,
    recaptcha_token: Option<String>,
    #[serde(flatten)]
    oauth: OAuthFields,
    state: Option<String>,
}

/// `POST /auth/newproject` and `/auth/newpatient`.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct NewMembershipBody {
    login: Option<String>,
    project_name: Option<String>,
    project_id: Option<String>,
}

/// `POST /auth/newuser {firstName, lastName, email, password, recaptchaToken?, …login request
/// fields}` → the login, waiting for its first membership (`{login}`; `mfaRequired` or an
/// enrolment never apply to a new account).
pub(crate) async fn new_user(
    _: Limited<RegistrationRoutes>,
    State(engine): State<Engine>,
    State(config): State<Arc<HttpConfig>>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    AuthJson(mut body): AuthJson<NewUserBody>,
) -> Answer {
    if body.oauth.project_id.as_deref() == Some("new") {
        body.oauth.project_id = None;
    }
    let origin = header_text(&headers, header::ORIGIN);
    let details = NewUser {
        human_token: body.recaptcha_token,
        ..NewUser::new(
            body.first_name.as_deref().unwrap_or_default(),
            body.last_name.as_deref().unwrap_or_default(),
            body.email.as_deref().unwrap_or_default(),
            body.password.as_deref().unwrap_or_default(),
        )
    };
    let login = engine
        .start(
            body.oauth
                .into_request(address, &headers, origin, body.state),
        )
        .await?;
    let passed = engine
        .accounts()
        .register(login, details)
        .await
        .map_err(|e| refusal(&engine, e))?;
    after_credentials(passed, &config).await
}

/// `POST /auth/newproject {login, projectName}` → `{login, code}`.
pub(crate) async fn new_project(
    _: Limited<RegistrationRoutes>,
    State(engine): State<Engine>,
    State(config): State<Arc<HttpConfig>>,
    AuthJson(body): AuthJson<NewMembershipBody>,
) -> Answer {
    let handle = required(&body.login, "Login ID is required.", "login")?;
    let name = body.project_name.as_deref().unwrap_or_default();
    let login = engine.resume::<Profile>(handle).await?;
    let login = engine
        .accounts()
        .create_project(login, name)
        .await
        .map_err(|e| refusal(&engine, e))?;
    code_result(login.grant(None).await?, &config).await
}

/// `POST /auth/newpatient {login, projectId}` → `{login, code}`.
pub(crate) async fn new_patient(
    _: Limited<RegistrationRoutes>,
    State(engine): State<Engine>,
    State(config): State<Arc<HttpConfig>>,
    AuthJson(body): AuthJson<NewMembershipBody>,
) -> Answer {
    let handle = required(&body.login, "Missing login", "login")?;
    let project = required(&body.project_id, "Project ID is required", "projectId")?;
    let login = engine.resume::<Profile>(handle).await?;
    let login = engine
        .accounts()
        .create_patient(login, &ProjectId::new(project))
        .await
        .map_err(|e| refusal(&engine, e))?;
    code_result(login.grant(None).await?, &config).await
}
