//! `/auth/*`: Medplum's sign-in steps, with its field names, response shapes and texts.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap};
use serde::Deserialize;
use serde_json::json;

use super::edge::{AuthJson, ClientAddress, Limited, LoginRoutes, MfaRoutes, header_text};
use super::steps::{
    Answer, BROWSER_COOKIE, OAuthFields, after_credentials, browser_cookie, code_result, federated,
    json_response, membership_list, profile_result, required, start_url, with_qr_code,
};
use super::{HttpConfig, OperationOutcome};
use crate::engine::Engine;
use crate::error::{LoginError, RequestError};
use crate::login::{Authorized, Consent, Enrolment, Method, Profile, SecondFactor, Waiting};
use crate::model::StageTag;

/// `POST /auth/login` (and the fields `/auth/method` may carry).
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct LoginBody {
    email: Option<String>,
    password: Option<String>,
    #[serde(flatten)]
    oauth: OAuthFields,
    /// The client's OAuth `state` (an extension: echoed when the server itself redirects
    /// to `redirectUri`, after an external identity provider).
    state: Option<String>,
}

/// Bodies that continue a login.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct StepBody {
    login: Option<String>,
    token: Option<String>,
    profile: Option<String>,
    scope: Option<String>,
    login_id: Option<String>,
    /// The second factor a code is for (`totp` or `email`).
    method: Option<String>,
}

/// `POST /auth/method {email}` → `{domain, authorizeUrl}` for a domain with an identity
/// provider, `{}` otherwise. The `authorizeUrl` is our `/auth/external/start` for the domain:
/// Medplum's clients append their login request as `state`, and the start route creates the
/// login and sends the browser on to the provider with a server-side state.
pub(crate) async fn method(
    _: Limited<LoginRoutes>,
    State(engine): State<Engine>,
    AuthJson(body): AuthJson<LoginBody>,
) -> Answer {
    let email = body.email.unwrap_or_default();
    Ok(json_response(
        match engine.domain_provider(&email).await? {
            Some((domain, _)) => json!({
                "domain": domain,
                "authorizeUrl": start_url(&engine, Some(&domain))?.as_str(),
            }),
            None => json!({}),
        },
    ))
}

/// `POST /auth/login`.
pub(crate) async fn login(
    _: Limited<LoginRoutes>,
    State(engine): State<Engine>,
    State(config): State<Arc<HttpConfig>>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    AuthJson(body): AuthJson<LoginBody>,
) -> Answer {
    let origin = header_text(&headers, header::ORIGIN);
    let login = engine
        .start(
            body.oauth
                .into_request(address, &headers, origin, body.state),
        )
        .await?;
    let login = match login
        .method(body.email.as_deref().unwrap_or_default())
        .await?
    {
        Method::Password(login) => login,
        Method::External { domain, .. } => return federated(&engine, domain.as_deref()),
    };
    let passed = login
        .password(body.password.as_deref().unwrap_or_default())
        .await?;
    after_credentials(passed, &config).await
}

/// `POST /auth/mfa/verify {login, token}`.
pub(crate) async fn mfa_verify(
    _: Limited<MfaRoutes>,
    State(engine): State<Engine>,
    State(config): State<Arc<HttpConfig>>,
    AuthJson(body): AuthJson<StepBody>,
) -> Answer {
    let handle = required(&body.login, "Missing login", "login")?;
    let token = required(&body.token, "Missing token", "token")?;
    let login = engine.resume::<SecondFactor>(handle).await?;
    // `method` picks the factor; without it, TOTP when the account has it, else email.
    let email = match body.method.as_deref() {
        Some("email") => true,
        Some(_) => false,
        None => !login.methods().await?.contains(&"totp"),
    };
    let login = if email {
        login.email_code(token).await?
    } else {
        login.totp(token).await?
    };
    profile_result(login, &config).await
}

/// `POST /auth/mfa/send-email {login}`: mails a sign-in code for a login waiting for its
/// second factor (an account with email as a factor).
pub(crate) async fn mfa_send_email(
    _: Limited<MfaRoutes>,
    State(engine): State<Engine>,
    AuthJson(body): AuthJson<StepBody>,
) -> Answer {
    let handle = required(&body.login, "Missing login", "login")?;
    let login = engine.resume::<SecondFactor>(handle).await?;
    engine
        .accounts()
        .send_sign_in_code(&login)
        .await
        .map_err(|e| super::password::refusal(&engine, e))?;
    Ok(axum::response::IntoResponse::into_response(
        super::OperationOutcome::all_ok(),
    ))
}

/// `POST /auth/mfa/login-enroll {login, token}`.
pub(crate) async fn mfa_login_enroll(
    _: Limited<MfaRoutes>,
    State(engine): State<Engine>,
    State(config): State<Arc<HttpConfig>>,
    AuthJson(body): AuthJson<StepBody>,
) -> Answer {
    let handle = required(&body.login, "Missing login", "login")?;
    let token = required(&body.token, "Missing token", "token")?;
    let login = engine.resume::<Enrolment>(handle).await?;
    profile_result(login.enrol(token).await?, &config).await
}

/// `POST /auth/profile {login, profile}`.
pub(crate) async fn profile(
    State(engine): State<Engine>,
    State(config): State<Arc<HttpConfig>>,
    AuthJson(body): AuthJson<StepBody>,
) -> Answer {
    let handle = required(&body.login, "Missing login", "login")?;
    let membership = required(&body.profile, "Missing profile", "profile")?;
    let login = engine.resume::<Profile>(handle).await?;
    let login = login.choose(&membership.into()).await?;
    code_result(login.grant(None).await?, &config).await
}

/// `POST /auth/scope {login, scope}`: consent narrows the grant (before or after the code).
pub(crate) async fn scope(
    State(engine): State<Engine>,
    State(config): State<Arc<HttpConfig>>,
    AuthJson(body): AuthJson<StepBody>,
) -> Answer {
    let handle = required(&body.login, "Missing login", "login")?;
    let scope = required(&body.scope, "Missing scope", "scope")?;
    match engine.resume::<Consent>(handle).await {
        Ok(login) => code_result(login.grant(Some(scope)).await?, &config).await,
        Err(LoginError::Request(RequestError::WrongStage {
            found: StageTag::Authorized,
            ..
        })) => {
            // The code was issued: the consent narrows what it will grant, and no second code
            // or cookie comes from the handle.
            let login = engine
                .resume::<Authorized>(handle)
                .await?
                .narrow(scope)
                .await?;
            Ok(json_response(json!({
                "login": login.handle().expose(),
                "scope": login.granted_scope(),
            })))
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /auth/login/{login}`: where a login stands (Medplum's status endpoint). The handle in
/// the path is spent (the answer carries a new one), and the answer reports the stage only:
/// never a code, a cookie or an enrolment secret — except when this request picks up a
/// hand-off from an identity provider's callback, in the browser that started it, which
/// continues the login exactly once.
pub(crate) async fn status(
    State(engine): State<Engine>,
    State(config): State<Arc<HttpConfig>>,
    headers: HeaderMap,
    Path(handle): Path<String>,
) -> Answer {
    let browser = super::edge::cookie(&headers, BROWSER_COOKIE);
    let waiting = engine.resume_waiting(&handle, browser.as_deref()).await?;
    let (mut response, picked_up) = match waiting {
        Waiting::SecondFactor(login, picked_up) => (
            json_response(json!({
                "login": login.handle().expose(),
                "mfaRequired": true,
                "mfaMethods": login.methods().await?,
            })),
            picked_up,
        ),
        Waiting::Enrolment(login, true) => {
            // The callback could not show the secret; this single pickup does.
            let (login, uri) = login.restart().await?;
            let body = with_qr_code(
                json!({ "login": login.handle().expose(), "mfaEnrollRequired": true }),
                &uri,
            );
            (json_response(body), true)
        }
        Waiting::Enrolment(login, false) => (
            json_response(json!({
                "login": login.handle().expose(),
                "mfaEnrollRequired": true,
            })),
            false,
        ),
        Waiting::Profile(login, true) => (profile_result(login, &config).await?, true),
        Waiting::Profile(login, false) => {
            let memberships = login.memberships().await?;
            (membership_list(&login, &memberships).await?, false)
        }
        Waiting::Scope(login, true) => {
            (code_result(login.grant(None).await?, &config).await?, true)
        }
        Waiting::Scope(login, false) => (
            json_response(json!({
                "login": login.handle().expose(),
                "scope": login.requested_scope(),
            })),
            false,
        ),
    };
    if picked_up && let Some(cleared) = browser_cookie("", 0) {
        response.headers_mut().append(header::SET_COOKIE, cleared);
    }
    Ok(response)
}

/// `GET /auth/clientinfo/{client}`: what a sign-in form shows about a client.
pub(crate) async fn client_info(
    State(engine): State<Engine>,
    Path(client): Path<String>,
) -> Answer {
    if client.len() > 512 {
        return Err(OperationOutcome::with_status(
            StatusCode::NOT_FOUND,
            "Not found",
        ));
    }
    match engine
        .directory()
        .client(&client.as_str().into())
        .await
        .map_err(LoginError::from)?
    {
        Some(c) => Ok(json_response(json!({ "welcomeString": c.name }))),
        None => Err(OperationOutcome::with_status(
            StatusCode::NOT_FOUND,
            "Not found",
        )),
    }
}
