//! The authorization endpoint (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2).
//!
//! `client_id` and an exactly registered `redirect_uri` are checked before anything else; a
//! request failing them is answered directly and never redirected (RFC 6749 §4.1.2.1). Every
//! redirect to the client carries `iss` (RFC 9207). A browser with a live single-sign-on
//! session for the client gets a code without signing in again — from a new grant, never by
//! reusing the session's own login; everyone else is sent to the sign-in page with the
//! request.

use std::collections::BTreeMap;
use std::net::IpAddr;

use url::Url;

use super::ErrorCode;
use crate::engine::Engine;
use crate::error::{LoginError, RequestError};
use crate::login::{LoginRequest, SingleSignOn};
use crate::model::{ClientApplication, ClientStatus, LoginRecord, StageTag};
use crate::secret::SecretHash;
use crate::token::claims::{ID_TOKEN_TYP, IdClaims};
use crate::token::keys::Expectation;

/// The parameters of an authorization request (query string for GET, form for POST).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthorizeRequest {
    params: BTreeMap<String, Vec<String>>,
    /// Client address.
    pub remote_address: Option<IpAddr>,
    /// User agent.
    pub user_agent: Option<String>,
}

impl std::fmt::Debug for AuthorizeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizeRequest")
            .field("params", &self.params.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl AuthorizeRequest {
    /// Reads a query string or form body (`application/x-www-form-urlencoded`).
    pub fn parse(encoded: &str) -> Self {
        let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in url::form_urlencoded::parse(encoded.as_bytes()).take(256) {
            params
                .entry(k.into_owned())
                .or_default()
                .push(v.into_owned());
        }
        Self {
            params,
            remote_address: None,
            user_agent: None,
        }
    }

    /// Builds a request from name/value pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            params.entry(k.to_owned()).or_default().push(v.to_owned());
        }
        Self {
            params,
            remote_address: None,
            user_agent: None,
        }
    }

    /// The `client_id` parameter, when given exactly once (for finding the client's
    /// single-sign-on cookie before the request is handled).
    pub fn client_id(&self) -> Option<&str> {
        self.one("client_id").ok().flatten()
    }

    /// A parameter's single value: `Ok(None)` when absent or empty (RFC 6749 §3.1),
    /// `Err(name)` when repeated.
    fn one(&self, name: &'static str) -> Result<Option<&str>, &'static str> {
        match self.params.get(name).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([v]) => Ok(Some(v.as_str()).filter(|v| !v.is_empty())),
            Some(_) => Err(name),
        }
    }

    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k.as_str(), v.as_str())))
    }
}

/// What the authorization endpoint answers. `Debug` redacts the code in a redirect.
#[derive(Clone, PartialEq, Eq)]
pub enum AuthorizeOutcome {
    /// Answer the browser directly, never redirecting: the client or redirect URI is
    /// unknown or invalid (or the response mode is unsupported).
    Refuse {
        /// HTTP status (400).
        status: u16,
        /// What is wrong.
        message: String,
    },
    /// Redirect to the client's redirect URI with a code or an error (`iss` included).
    Redirect(Url),
    /// Send the browser to the sign-in page, carrying the request.
    SignIn(Url),
}

impl std::fmt::Debug for AuthorizeOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refuse { status, message } => f
                .debug_struct("Refuse")
                .field("status", status)
                .field("message", message)
                .finish(),
            Self::Redirect(url) => f
                .debug_tuple("Redirect")
                .field(&crate::secret::redacted_url(url))
                .finish(),
            Self::SignIn(url) => f
                .debug_tuple("SignIn")
                .field(&crate::secret::redacted_url(url))
                .finish(),
        }
    }
}

impl Engine {
    /// Handles an authorization request. `session` is the client's single-sign-on cookie
    /// value, if the browser sent one.
    pub async fn authorize(
        &self,
        request: &AuthorizeRequest,
        session: Option<&str>,
    ) -> AuthorizeOutcome {
        // 1. Client and redirect URI: answered directly when wrong.
        let refuse = |message: &str| AuthorizeOutcome::Refuse {
            status: 400,
            message: message.to_owned(),
        };
        let client_id = match request.one("client_id") {
            Ok(Some(id)) if id.len() <= 512 => id,
            Ok(_) => return refuse("Missing client_id"),
            Err(_) => return refuse("client_id given more than once"),
        };
        let client = match self.directory().client(&client_id.into()).await {
            Ok(Some(client)) if client.status == ClientStatus::Active => client,
            Ok(Some(_)) => return refuse("Invalid client"),
            Ok(None) => return refuse("Client not found"),
            Err(_) => return refuse("Temporarily unavailable"),
        };
        let redirect_text = match request.one("redirect_uri") {
            Ok(Some(uri)) => uri,
            Ok(None) => return refuse("Missing redirect URI"),
            Err(_) => return refuse("redirect_uri given more than once"),
        };
        if !client.redirect_uri_registered(redirect_text) {
            return refuse("Invalid redirect URI");
        }
        let Ok(redirect_uri) = Url::parse(redirect_text) else {
            return refuse("Invalid redirect URI");
        };
        if let Ok(Some(mode)) = request.one("response_mode")
            && mode != "query"
        {
            return refuse("Unsupported response_mode");
        }

        // 2. From here on, errors go back to the client.
        let state = request.one("state").ok().flatten().map(str::to_owned);
        let answer = Answer {
            redirect_uri,
            state,
            issuer: self.config().oauth.issuer_id(),
        };
        match self
            .authorize_checked(request, &client, session, &answer)
            .await
        {
            Ok(outcome) => outcome,
            Err((code, description)) => {
                AuthorizeOutcome::Redirect(answer.error(code, &description))
            }
        }
    }

    async fn authorize_checked(
        &self,
        request: &AuthorizeRequest,
        client: &ClientApplication,
        session: Option<&str>,
        answer: &Answer,
    ) -> Result<AuthorizeOutcome, (ErrorCode, String)> {
        let invalid = |text: String| (ErrorCode::InvalidRequest, text);
        let one = |name: &'static str| {
            request
                .one(name)
                .map_err(|n| invalid(format!("Parameter {n} given more than once")))
        };
        for name in [
            "scope",
            "response_type",
            "nonce",
            "prompt",
            "max_age",
            "code_challenge",
            "code_challenge_method",
            "launch",
            "aud",
            "login_hint",
            "id_token_hint",
        ] {
            one(name)?;
        }
        if one("request")?.is_some() {
            return Err((
                ErrorCode::RequestNotSupported,
                "Request objects are not supported".to_owned(),
            ));
        }
        if one("request_uri")?.is_some() {
            return Err((
                ErrorCode::RequestUriNotSupported,
                "request_uri is not supported".to_owned(),
            ));
        }
        match one("response_type")? {
            None => return Err(invalid("Missing response_type".to_owned())),
            Some("code") => {}
            Some(_) => {
                return Err((
                    ErrorCode::UnsupportedResponseType,
                    "Only response_type=code is supported".to_owned(),
                ));
            }
        }
        let prompts: Vec<&str> = one("prompt")?
            .map(|p| p.split(' ').filter(|v| !v.is_empty()).collect())
            .unwrap_or_default();
        let prompt_none = prompts.contains(&"none");
        if prompt_none && prompts.len() > 1 {
            return Err(invalid(
                "prompt=none cannot be combined with other values".to_owned(),
            ));
        }
        let max_age = match one("max_age")? {
            None => None,
            Some(text) => Some(
                text.parse::<u32>()
                    .map_err(|_| invalid("max_age must be a non-negative integer".to_owned()))?,
            ),
        };
        let force_login = prompts.contains(&"login") || max_age == Some(0);
        let want_consent = prompts.contains(&"consent") || prompts.contains(&"select_account");
        if let Some(aud) = one("aud")?.or(one("resource")?)
            && aud.trim_end_matches('/') != self.config().oauth.audience().trim_end_matches('/')
        {
            return Err(invalid("Invalid audience".to_owned()));
        }

        // The login request the sign-in page (or single sign-on) will run: the same checks
        // as /auth/login, so both entry points refuse the same things.
        let login_request = LoginRequest {
            client_id: Some(client.id.to_string()),
            redirect_uri: Some(answer.redirect_uri.to_string()),
            scope: one("scope")?.map(str::to_owned),
            nonce: one("nonce")?.map(str::to_owned),
            code_challenge: one("code_challenge")?.map(str::to_owned),
            code_challenge_method: one("code_challenge_method")?.map(str::to_owned),
            launch: one("launch")?.map(str::to_owned),
            remote_address: request.remote_address,
            user_agent: request.user_agent.clone(),
            state: answer.state.clone(),
            ..LoginRequest::default()
        };
        let started = self
            .start(login_request)
            .await
            .map_err(|e| login_error(&e))?;
        let params = started.params().clone();

        // An existing session for this client, unless the request asks to sign in again.
        let live = match session {
            Some(cookie) if !force_login => self.live_session(cookie, client).await,
            _ => None,
        };
        let live = live.filter(|s| {
            max_age.is_none_or(|age| {
                s.auth_time
                    .is_some_and(|t| self.now() - t <= time::Duration::seconds(i64::from(age)))
            })
        });
        let live = match (live, one("id_token_hint")?) {
            (Some(s), Some(hint)) => {
                // The hint names a subject; it is never a credential by itself.
                let sub = self.hinted_subject(hint, client);
                if sub.as_deref() == s.user.as_ref().map(|u| u.as_str()) {
                    Some(s)
                } else {
                    None
                }
            }
            (live, _) => live,
        };

        match (live, prompt_none) {
            (Some(session), _) if !want_consent => {
                match self
                    .single_sign_on(&session, params)
                    .await
                    .map_err(|e| login_error(&e))?
                {
                    SingleSignOn::Granted(_, code) => {
                        Ok(AuthorizeOutcome::Redirect(answer.code(code.expose())))
                    }
                    // More than the session's user consented to: ask them.
                    SingleSignOn::ConsentRequired if prompt_none => Err((
                        ErrorCode::ConsentRequired,
                        "The request asks for more than the session was granted".to_owned(),
                    )),
                    SingleSignOn::ConsentRequired => {
                        Ok(AuthorizeOutcome::SignIn(self.sign_in_location(request)))
                    }
                }
            }
            (_, true) => Err((
                if want_consent {
                    ErrorCode::ConsentRequired
                } else {
                    ErrorCode::LoginRequired
                },
                "The user must sign in".to_owned(),
            )),
            _ => Ok(AuthorizeOutcome::SignIn(self.sign_in_location(request))),
        }
    }

    /// The session login behind an SSO cookie, if it is live and belongs to this client.
    async fn live_session(&self, cookie: &str, client: &ClientApplication) -> Option<LoginRecord> {
        if cookie.is_empty() || cookie.len() > 128 {
            return None;
        }
        let record = self
            .login_store()
            .login_by_session(&SecretHash::of_presented(cookie))
            .await
            .ok()??;
        let now = self.now();
        let session_live = record.session.as_ref().is_some_and(|s| now < s.expires_at);
        let usable = matches!(record.stage, StageTag::Authorized | StageTag::Granted)
            && !record.revoked
            && session_live
            && record.params.client.as_ref() == Some(&client.id)
            && record.membership.is_some();
        usable.then_some(record)
    }

    /// The `sub` of an ID token this server issued to `client` (expired ones included).
    fn hinted_subject(&self, hint: &str, client: &ClientApplication) -> Option<String> {
        let issuer = self.config().oauth.issuer_id();
        self.keys()
            .current()
            .verify::<IdClaims>(
                hint,
                &Expectation {
                    typ: ID_TOKEN_TYP,
                    issuer: &issuer,
                    audience: client.id.as_str(),
                    now: self.now(),
                    leeway_seconds: 366 * 24 * 3600,
                },
            )
            .ok()
            .map(|claims| claims.sub)
    }

    fn sign_in_location(&self, request: &AuthorizeRequest) -> Url {
        let mut url = self.sign_in_url().clone();
        {
            let mut query = url.query_pairs_mut();
            for (k, v) in request.pairs() {
                query.append_pair(k, v);
            }
        }
        url
    }
}

/// Builds redirects to the client.
struct Answer {
    redirect_uri: Url,
    state: Option<String>,
    issuer: String,
}

impl Answer {
    fn with(&self, pairs: &[(&str, &str)]) -> Url {
        let mut url = self.redirect_uri.clone();
        {
            let mut query = url.query_pairs_mut();
            for (k, v) in pairs {
                query.append_pair(k, v);
            }
            if let Some(state) = &self.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", &self.issuer);
        }
        url
    }

    fn code(&self, code: &str) -> Url {
        self.with(&[("code", code)])
    }

    fn error(&self, code: ErrorCode, description: &str) -> Url {
        let description = super::OAuthError::new(code, description).description;
        self.with(&[
            ("error", code.as_str()),
            ("error_description", &description),
        ])
    }
}

/// Maps a refusal of the login checks to the authorization error it is.
fn login_error(error: &LoginError) -> (ErrorCode, String) {
    let code = match error {
        LoginError::Request(RequestError::InvalidScope(_) | RequestError::ScopeNotRequested(_)) => {
            ErrorCode::InvalidScope
        }
        LoginError::Request(RequestError::LaunchNotFound) => ErrorCode::InvalidRequest,
        LoginError::Request(_) => ErrorCode::InvalidRequest,
        LoginError::Credentials(_) => ErrorCode::LoginRequired,
        LoginError::Policy(_) => ErrorCode::AccessDenied,
        LoginError::Throttled { .. } => ErrorCode::TemporarilyUnavailable,
        LoginError::Server(e) => match e.fault() {
            crate::error::Fault::Unavailable => ErrorCode::TemporarilyUnavailable,
            _ => ErrorCode::ServerError,
        },
        LoginError::External(e) => match e.fault() {
            crate::error::Fault::Server | crate::error::Fault::Upstream => ErrorCode::ServerError,
            _ => ErrorCode::AccessDenied,
        },
    };
    if code == ErrorCode::ServerError {
        // A store's or provider's message stays on the server.
        return (code, super::SERVER_ERROR_DESCRIPTION.to_owned());
    }
    (code, error.to_string())
}
