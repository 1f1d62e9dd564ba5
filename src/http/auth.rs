//! `/auth/*`: Medplum's sign-in steps, with its field names, response shapes and texts.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::edge::{AuthJson, Authenticated, ClientAddress, header_text};
use super::{HttpConfig, OperationOutcome};
use crate::engine::Engine;
use crate::error::{LoginError, RequestError};
use crate::login::{
    AuthorizationCode, Authorized, Consent, Enrolment, EnrolmentUri, Login, LoginRequest, Method,
    Passed, Profile, ProfileChoice, SecondFactor, Waiting,
};
use crate::model::{LoginId, StageTag};
use crate::token::Subject;

pub(super) type Answer = Result<Response, OperationOutcome>;

/// The OAuth request a login starts from, as Medplum's clients send it: in `/auth/login`,
/// `/auth/google` and the `state` of `/auth/external/start`.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct OAuthFields {
    project_id: Option<String>,
    client_id: Option<String>,
    resource_type: Option<String>,
    scope: Option<String>,
    nonce: Option<String>,
    launch: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    redirect_uri: Option<String>,
}

impl OAuthFields {
    /// The login request: these fields, the client's address, the request's `User-Agent`,
    /// `origin` and the client's `state`.
    pub(super) fn into_request(
        self,
        remote_address: Option<IpAddr>,
        headers: &HeaderMap,
        origin: Option<String>,
        state: Option<String>,
    ) -> LoginRequest {
        LoginRequest {
            client_id: self.client_id,
            project_id: self.project_id,
            redirect_uri: self.redirect_uri,
            scope: self.scope,
            nonce: self.nonce,
            code_challenge: self.code_challenge,
            code_challenge_method: self.code_challenge_method,
            resource_type: self.resource_type,
            launch: self.launch,
            remote_address,
            user_agent: header_text(headers, header::USER_AGENT),
            origin,
            state,
        }
    }
}

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
}

pub(super) fn required<'a>(
    value: &'a Option<String>,
    text: &str,
    field: &'static str,
) -> Result<&'a str, OperationOutcome> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OperationOutcome::bad_request(text, Some(field)))
}

pub(super) fn json_response(body: Value) -> Response {
    Json(body).into_response()
}

/// `POST /auth/method {email}` → `{domain, authorizeUrl}` for a domain with an identity
/// provider, `{}` otherwise. The `authorizeUrl` is our `/auth/external/start` for the domain:
/// Medplum's clients append their login request as `state`, and the start route creates the
/// login and sends the browser on to the provider with a server-side state.
pub(crate) async fn method(
    State(engine): State<Engine>,
    AuthJson(body): AuthJson<LoginBody>,
) -> Answer {
    let email = body.email.unwrap_or_default();
    Ok(json_response(
        match engine.domain_provider(&email).await? {
            Some((domain, _)) => json!({
                "domain": domain,
                "authorizeUrl": super::external::start_url(&engine, Some(&domain))?.as_str(),
            }),
            None => json!({}),
        },
    ))
}

/// `POST /auth/login`.
pub(crate) async fn login(
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

/// `{domain, authorizeUrl}`: the account signs in at an identity provider, so the browser
/// goes to our start route (as after Medplum's `/auth/method`) instead of giving a password.
/// A client appends its login request there as `state` (Medplum's clients do), and the start
/// route creates the login in that browser, with its binding cookie. Nothing is stored here.
pub(super) fn federated(engine: &Engine, domain: Option<&str>) -> Answer {
    Ok(json_response(json!({
        "domain": domain,
        "authorizeUrl": super::external::start_url(engine, domain)?.as_str(),
    })))
}

pub(super) async fn after_credentials(passed: Passed, config: &HttpConfig) -> Answer {
    match passed {
        Passed::SecondFactor(login) => Ok(json_response(json!({
            "login": login.handle().expose(),
            "mfaRequired": true,
        }))),
        Passed::Enrolment(login, uri) => Ok(json_response(with_qr_code(
            json!({
                "login": login.handle().expose(),
                "mfaEnrollRequired": true,
            }),
            &uri,
        ))),
        Passed::Profile(login) => profile_result(login, config).await,
    }
}

/// `enrollUri` and Medplum's `enrollQrCode` (a PNG data URL of the URI, which Medplum's
/// sign-in form needs before it shows the enrolment step) added to `fields`.
fn with_qr_code(fields: Value, uri: &EnrolmentUri) -> Value {
    let mut body = match fields {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    body.insert("enrollUri".into(), json!(uri.expose()));
    match uri.qr_code_data_url() {
        Ok(png) => {
            body.insert("enrollQrCode".into(), json!(png));
        }
        // Only a URI longer than any of ours could fail; the URI alone still enrols.
        Err(error) => tracing::warn!(%error, "no QR code for an enrolment URI"),
    }
    Value::Object(body)
}

/// After the credentials: the code when one membership is eligible, else the list.
async fn profile_result(login: Login<Profile>, config: &HttpConfig) -> Answer {
    match login.choose_if_single().await? {
        ProfileChoice::Chosen(login) => code_result(login.grant(None).await?, config).await,
        ProfileChoice::Choose { login, memberships } => membership_list(&login, &memberships).await,
    }
}

/// `{login, memberships}`.
async fn membership_list(
    login: &Login<Profile>,
    memberships: &[crate::model::ProjectMembership],
) -> Answer {
    let engine = login.engine();
    let mut list = Vec::with_capacity(memberships.len());
    for m in memberships {
        list.push(membership_entry(engine, m).await?);
    }
    Ok(json_response(json!({
        "login": login.handle().expose(),
        "memberships": list,
    })))
}

/// The FHIR extension that marks a membership whose access policy allows no change
/// (fhirgate's; Medplum's clients ignore extensions they do not know).
pub const READ_ONLY_EXTENSION: &str = "urn:fhirgate:membership-read-only";

/// One entry of the `memberships` list, shaped like Medplum's ProjectMembership: the project
/// and profile as references with their display names, the access policy when one is set,
/// and [`READ_ONLY_EXTENSION`] when that policy allows only reads.
async fn membership_entry(
    engine: &Engine,
    m: &crate::model::ProjectMembership,
) -> Result<Value, OperationOutcome> {
    let directory = engine.directory();
    let project = directory
        .project(&m.project)
        .await
        .map_err(LoginError::from)?;
    let reference = |reference: String, display: Option<&str>| {
        let mut map = serde_json::Map::new();
        map.insert("reference".into(), json!(reference));
        if let Some(display) = display {
            map.insert("display".into(), json!(display));
        }
        Value::Object(map)
    };
    let mut entry = serde_json::Map::new();
    entry.insert("resourceType".into(), json!("ProjectMembership"));
    entry.insert("id".into(), json!(m.id.as_str()));
    entry.insert(
        "project".into(),
        reference(
            format!("Project/{}", m.project),
            Some(
                project
                    .as_ref()
                    .map(|p| p.name.as_str())
                    .unwrap_or_default(),
            ),
        ),
    );
    entry.insert(
        "profile".into(),
        reference(m.profile.as_str().to_owned(), m.profile_display.as_deref()),
    );
    if let Some(id) = &m.access_policy {
        let policy = directory
            .access_policy(id)
            .await
            .map_err(LoginError::from)?;
        let name = policy.as_ref().and_then(|p| p.name.as_deref());
        entry.insert(
            "accessPolicy".into(),
            reference(format!("AccessPolicy/{id}"), name),
        );
        if policy.is_some_and(|p| p.is_read_only()) {
            entry.insert(
                "extension".into(),
                json!([{ "url": READ_ONLY_EXTENSION, "valueBoolean": true }]),
            );
        }
    }
    Ok(Value::Object(entry))
}

/// `{login, code}`, with the single-sign-on cookie when the login has a client.
async fn code_result(
    (login, code): (Login<Authorized>, AuthorizationCode),
    config: &HttpConfig,
) -> Answer {
    let mut response = json_response(json!({
        "login": login.handle().expose(),
        "code": code.expose(),
    }));
    if let Some(cookie) = sso_cookie(&login, config) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// The single-sign-on cookie for a login that has a client and a session.
pub(super) fn sso_cookie(login: &Login<Authorized>, config: &HttpConfig) -> Option<HeaderValue> {
    let (Some(session), Some(client)) = (login.sso_session(), &login.record().params.client) else {
        return None;
    };
    let max_age = login.engine().config().oauth.sso_lifetime.whole_seconds();
    let cookie = format!(
        "medplum-{client}={}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite={}",
        session.expose(),
        config.cookie_same_site.as_str()
    );
    HeaderValue::from_str(&cookie).ok()
}

/// `POST /auth/mfa/verify {login, token}`.
pub(crate) async fn mfa_verify(
    State(engine): State<Engine>,
    State(config): State<Arc<HttpConfig>>,
    AuthJson(body): AuthJson<StepBody>,
) -> Answer {
    let handle = required(&body.login, "Missing login", "login")?;
    let token = required(&body.token, "Missing token", "token")?;
    let login = engine.resume::<SecondFactor>(handle).await?;
    profile_result(login.totp(token).await?, &config).await
}

/// `POST /auth/mfa/login-enroll {login, token}`.
pub(crate) async fn mfa_login_enroll(
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
    let browser = super::edge::cookie(&headers, super::external::BROWSER_COOKIE);
    let waiting = engine.resume_waiting(&handle, browser.as_deref()).await?;
    let (mut response, picked_up) = match waiting {
        Waiting::SecondFactor(login, picked_up) => (
            json_response(json!({
                "login": login.handle().expose(),
                "mfaRequired": true,
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
    if picked_up && let Some(cleared) = super::external::browser_cookie("", 0) {
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
async fn account_holder(
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
    let status = engine.mfa_status(&user).await?;
    Ok(json_response(json!({
        "enrolled": status.enrolled,
        "mfaRequired": status.required,
    })))
}

/// `POST /auth/mfa/setup`: starts an enrolment — a fresh secret, shown this once as
/// `enrollUri` and `enrollQrCode` — to confirm with `POST /auth/mfa/enroll {token}`.
pub(crate) async fn mfa_setup(
    State(engine): State<Engine>,
    Authenticated(principal): Authenticated,
) -> Answer {
    let user = account_holder(&engine, &principal).await?;
    let uri = engine.begin_mfa_enrolment(&user).await?;
    Ok(json_response(with_qr_code(json!({}), &uri)))
}

/// `POST /auth/mfa/enroll {token}`.
pub(crate) async fn mfa_enroll(
    State(engine): State<Engine>,
    Authenticated(principal): Authenticated,
    AuthJson(body): AuthJson<StepBody>,
) -> Answer {
    let user = account_holder(&engine, &principal).await?;
    let token = required(&body.token, "Missing token", "token")?;
    engine.confirm_mfa_enrolment(&user, token).await?;
    Ok(OperationOutcome::all_ok().into_response())
}

/// `POST /auth/mfa/disable {token}`.
pub(crate) async fn mfa_disable(
    State(engine): State<Engine>,
    Authenticated(principal): Authenticated,
    AuthJson(body): AuthJson<StepBody>,
) -> Answer {
    let user = account_holder(&engine, &principal).await?;
    let token = required(&body.token, "Missing token", "token")?;
    engine.disable_mfa(&user, token).await?;
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
        obj.insert(
            "security".into(),
            json!({
                "mfaEnrolled": user.as_ref().is_some_and(|u| u.mfa_enrolled()),
                "sessions": sessions,
            }),
        );
    }
    Ok(json_response(body))
}

/// `POST /auth/revoke {loginId}`: ends one of the caller's own sessions.
pub(crate) async fn revoke(
    State(engine): State<Engine>,
    Authenticated(principal): Authenticated,
    AuthJson(body): AuthJson<StepBody>,
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
