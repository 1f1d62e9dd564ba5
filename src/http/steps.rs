//! What a sign-in step answers: the next step's fields (`login`, `mfaRequired`,
//! `memberships`, `code` …) in Medplum's shapes, shared by the password routes
//! ([`auth`](super::auth)) and the federated ones ([`external`](super::external)), and the
//! links and cookies of the external start route both of them hand out.

use std::net::IpAddr;

use axum::Json;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::edge::header_text;
use super::{HttpConfig, OperationOutcome};
use crate::config::ConfigError;
use crate::engine::Engine;
use crate::error::{LoginError, ServerError};
use crate::login::{
    AuthorizationCode, Authorized, EnrolmentUri, Login, LoginRequest, Passed, Profile,
    ProfileChoice,
};

pub(super) type Answer = Result<Response, OperationOutcome>;

/// The OAuth request a login starts from, as Medplum's clients send it: in `/auth/login`,
/// `/auth/google` and the `state` of `/auth/external/start`.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct OAuthFields {
    pub(super) project_id: Option<String>,
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

/// `{domain, authorizeUrl}`: the account signs in at an identity provider, so the browser
/// goes to our start route (as after Medplum's `/auth/method`) instead of giving a password.
/// A client appends its login request there as `state` (Medplum's clients do), and the start
/// route creates the login in that browser, with its binding cookie. Nothing is stored here.
pub(super) fn federated(engine: &Engine, domain: Option<&str>) -> Answer {
    Ok(json_response(json!({
        "domain": domain,
        "authorizeUrl": start_url(engine, domain)?.as_str(),
    })))
}

pub(super) async fn after_credentials(passed: Passed, config: &HttpConfig) -> Answer {
    match passed {
        Passed::SecondFactor(login) => Ok(json_response(json!({
            "login": login.handle().expose(),
            "mfaRequired": true,
            "mfaMethods": login.methods().await?,
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
pub(super) fn with_qr_code(fields: Value, uri: &EnrolmentUri) -> Value {
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
pub(super) async fn profile_result(login: Login<Profile>, config: &HttpConfig) -> Answer {
    match login.choose_if_single().await? {
        ProfileChoice::Chosen(login) => code_result(login.grant(None).await?, config).await,
        ProfileChoice::Choose { login, memberships } => membership_list(&login, &memberships).await,
    }
}

/// `{login, memberships}`.
pub(super) async fn membership_list(
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
pub(super) async fn membership_entry(
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
pub(super) async fn code_result(
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

/// The cookie that binds an external sign-in to the browser that started it. `__Host-`: only
/// over HTTPS (or a loopback origin), for the whole origin, never a subdomain's.
pub(crate) const BROWSER_COOKIE: &str = "__Host-fhirgate-idp";

/// `Set-Cookie` for the browser binding (`max_age` seconds; 0 clears it). `SameSite=Lax`: it
/// comes along when the provider sends the browser back with a top-level GET.
pub(super) fn browser_cookie(value: &str, max_age: i64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{BROWSER_COOKIE}={value}; Path=/; Max-Age={max_age}; Secure; HttpOnly; SameSite=Lax"
    ))
    .ok()
}

/// The start route: `<external_callback_url>/start`, with `?domain=<domain>` when a domain's
/// configuration chose the provider.
pub(super) fn start_url(engine: &Engine, domain: Option<&str>) -> Result<Url, OperationOutcome> {
    let mut url = engine
        .config()
        .external_callback_url
        .clone()
        .ok_or_else(|| {
            LoginError::from(ServerError::Config(ConfigError::Setting {
                setting: "external_callback_url",
                requirement: "must be set when a domain has an identity provider",
            }))
        })?;
    let path = format!("{}/start", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    if let Some(domain) = domain {
        url.query_pairs_mut().append_pair("domain", domain);
    }
    Ok(url)
}
