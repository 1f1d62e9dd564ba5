//! External identity providers: `/auth/external/start`, the `/auth/external` callback,
//! `/auth/google` and `/auth/exchange`.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use url::Url;

use super::HttpConfig;
use super::edge::{AuthJson, ClientAddress, cookie, header_text};
use super::error::OperationOutcome;
use super::steps::{
    Answer, BROWSER_COOKIE, OAuthFields, after_credentials, browser_cookie, federated, required,
    sso_cookie,
};
use crate::engine::Engine;
use crate::error::LoginError;
use crate::idp::ExternalCallback;
use crate::login::GoogleSignIn;
use crate::login::{HandOff, Passed, ProfileChoice};
use crate::oauth::{ACCESS_TOKEN_TYPE, Form, TOKEN_EXCHANGE, TokenRequest};
/// Longest `state` accepted at `/auth/external/start` (Medplum's JSON login request).
const MAX_START_STATE: usize = 8 * 1024;

/// A 302 to `url`.
fn redirect(url: &Url) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(url.as_str()) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The query of `/auth/external/start`.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct StartQuery {
    domain: Option<String>,
    /// Medplum's clients put their login request here, as JSON.
    state: Option<String>,
}

/// Medplum's login request, as its clients serialise it into `state`.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct StartRequest {
    domain: Option<String>,
    #[serde(flatten)]
    oauth: OAuthFields,
    /// The client's OAuth `state`, echoed when the callback redirects to `redirectUri` (an
    /// extension, as in `/auth/login`).
    state: Option<String>,
}

/// `GET /auth/external/start?domain=…&state=<login request JSON>`: creates the login (with
/// the same checks as `/auth/login`) and sends the browser to the identity provider with a
/// server-side `state`, `nonce` and PKCE pair, setting the browser binding cookie (the
/// callback is accepted only with it). Whatever the client put into the provider parameters
/// (`state`, `code_challenge`, `client_id` …) is not forwarded. This is the only place a
/// federated login is created: `/auth/method`, `/auth/login` and `/auth/google` answer this
/// URL for a federated email.
pub(crate) async fn start(
    State(engine): State<Engine>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Query(query): Query<StartQuery>,
) -> Answer {
    let request: StartRequest = match query.state.as_deref().filter(|s| !s.is_empty()) {
        None => StartRequest::default(),
        Some(text) if text.len() > MAX_START_STATE => {
            return Err(OperationOutcome::bad_request(
                "Invalid state",
                Some("state"),
            ));
        }
        Some(text) => serde_json::from_str(text)
            .map_err(|_| OperationOutcome::bad_request("Invalid state", Some("state")))?,
    };
    let domain = request.domain.or(query.domain);
    // A top-level navigation (the browser follows `authorizeUrl`): no `Origin` to check.
    let login = engine
        .start(
            request
                .oauth
                .into_request(address, &headers, None, request.state),
        )
        .await?;
    let redirect_to = login.federate(domain.as_deref()).await?;
    let mut response = redirect(&redirect_to.authorize_url);
    let lifetime = (redirect_to.login.record().expires_at - engine.now()).whole_seconds();
    if let Some(value) = browser_cookie(redirect_to.browser_binding.expose(), lifetime.max(1)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// The query of the provider's redirect back.
#[derive(Default, Deserialize)]
#[serde(default)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    iss: Option<String>,
}

/// `GET /auth/external`: the provider's redirect back. Validates it (see [`crate::idp`]) —
/// only from the browser holding the binding cookie — then:
///
/// * no second factor, one eligible membership and a redirect URI registered (exactly) for
///   the client → 302 to it with `code`, the client's `state` and `iss` (RFC 9207), and the
///   single-sign-on cookie;
/// * otherwise → 302 to the sign-in page with `login=<hand-off reference>`: single-use, valid
///   for a minute, accepted only from this browser at `GET /auth/login/{login}`, which answers
///   with the login's state and a fresh handle. No login handle goes into a URL.
pub(crate) async fn callback(
    State(engine): State<Engine>,
    State(config): State<Arc<HttpConfig>>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Answer {
    let passed = engine
        .external_callback(&ExternalCallback {
            state: query.state,
            code: query.code,
            error: query.error,
            iss: query.iss,
            browser: cookie(&headers, BROWSER_COOKIE),
        })
        .await?;
    let sign_in = |handoff: HandOff| -> Result<Response, OperationOutcome> {
        let mut url = engine.sign_in_url().clone();
        url.query_pairs_mut().append_pair("login", handoff.expose());
        Ok(redirect(&url))
    };
    let login = match passed {
        Passed::SecondFactor(login) => return sign_in(login.hand_off().await?),
        Passed::Enrolment(login, _) => return sign_in(login.hand_off().await?),
        Passed::Profile(login) => login,
    };
    let params = login.record().params.clone();
    let registered = match (&params.redirect_uri, &params.client) {
        (Some(uri), Some(client)) => engine
            .directory()
            .client(client)
            .await
            .map_err(LoginError::from)?
            .filter(|c| c.redirect_uri_registered(uri))
            .and_then(|_| Url::parse(uri).ok()),
        _ => None,
    };
    let Some(mut target) = registered else {
        // Nowhere to send a code: the sign-in page picks the login up and continues.
        return sign_in(login.hand_off().await?);
    };
    let login = match login.choose_if_single().await? {
        ProfileChoice::Chosen(login) => login,
        ProfileChoice::Choose { login, .. } => return sign_in(login.hand_off().await?),
    };
    let (login, code) = login.grant(None).await?;
    {
        let mut pairs = target.query_pairs_mut();
        pairs.append_pair("code", code.expose());
        if let Some(state) = &params.state {
            pairs.append_pair("state", state);
        }
        pairs.append_pair("iss", &engine.config().oauth.issuer_id());
    }
    let mut response = redirect(&target);
    if let Some(cookie) = sso_cookie(&login, &config) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    // The binding has done its job.
    if let Some(cleared) = browser_cookie("", 0) {
        response.headers_mut().append(header::SET_COOKIE, cleared);
    }
    Ok(response)
}

/// `POST /auth/google`.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct GoogleBody {
    google_client_id: Option<String>,
    google_credential: Option<String>,
    #[serde(flatten)]
    oauth: OAuthFields,
}

/// `POST /auth/google {googleClientId, googleCredential, …}`: a Google ID token instead of a
/// password; answers as `/auth/login` does.
pub(crate) async fn google(
    State(engine): State<Engine>,
    State(config): State<Arc<HttpConfig>>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    AuthJson(body): AuthJson<GoogleBody>,
) -> Answer {
    let google_client_id = required(
        &body.google_client_id,
        "Missing googleClientId",
        "googleClientId",
    )?;
    let credential = required(
        &body.google_credential,
        "Missing googleCredential",
        "googleCredential",
    )?;
    let origin = header_text(&headers, header::ORIGIN);
    let login = engine
        .start(body.oauth.into_request(address, &headers, origin, None))
        .await?;
    match login.google(google_client_id, credential).await? {
        GoogleSignIn::Authenticated(passed) => after_credentials(passed, &config).await,
        GoogleSignIn::External { domain, .. } => federated(&engine, domain.as_deref()),
    }
}

/// `POST /auth/exchange`.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct ExchangeBody {
    external_access_token: Option<String>,
    client_id: Option<String>,
    scope: Option<String>,
    membership_id: Option<String>,
}

/// `POST /auth/exchange {externalAccessToken, clientId}`: Medplum's JSON form of the token
/// exchange grant, answered exactly as `/oauth2/token` answers it — including client
/// authentication: a confidential client must authenticate (HTTP Basic), as at the token
/// endpoint.
pub(crate) async fn exchange(
    State(engine): State<Engine>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    AuthJson(body): AuthJson<ExchangeBody>,
) -> Response {
    let token = match required(
        &body.external_access_token,
        "Missing externalAccessToken",
        "externalAccessToken",
    ) {
        Ok(token) => token,
        Err(outcome) => return outcome.into_response(),
    };
    let client_id = match required(&body.client_id, "Missing clientId", "clientId") {
        Ok(id) => id,
        Err(outcome) => return outcome.into_response(),
    };
    let authorization = header_text(&headers, header::AUTHORIZATION);
    // With HTTP Basic too: a `clientId` naming another client than the header is refused.
    let mut pairs = vec![
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", token),
        ("subject_token_type", ACCESS_TOKEN_TYPE),
        ("client_id", client_id),
    ];
    if let Some(scope) = body.scope.as_deref().filter(|s| !s.is_empty()) {
        pairs.push(("scope", scope));
    }
    if let Some(id) = body.membership_id.as_deref().filter(|s| !s.is_empty()) {
        pairs.push(("membership_id", id));
    }
    let request = TokenRequest {
        authorization,
        form: Form::from_pairs(&pairs),
        remote_address: address,
        user_agent: header_text(&headers, header::USER_AGENT),
    };
    engine.token(request).await.into_http()
}
