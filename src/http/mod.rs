//! Medplum-compatible HTTP routes on axum (feature `axum`).
//!
//! [`router`] returns an [`axum::Router`] serving `/auth/*`, `/oauth2/*` and the
//! `/.well-known/*` documents with Medplum's request fields, response shapes and error texts,
//! so Medplum's own clients (its TypeScript SDK and React sign-in form) work unchanged.
//! `/auth/*` errors are FHIR OperationOutcomes; `/oauth2/*` errors are RFC 6749 JSON (or
//! redirects where the spec says so).
//!
//! The edge is handled here: a body size limit, content-type checks, malformed JSON and forms
//! answered with a clear 400 (never a panic), `Cache-Control: no-store` on every response,
//! the single-sign-on cookie `Secure; HttpOnly; SameSite`, the client address from a
//! configured trusted-proxy rule, an origin allow-list for CORS, and a `tracing` span per
//! request that never records secrets.
//!
//! [`Authenticated`] guards a host's own routes: it verifies the bearer access token and
//! hands the [`Principal`](crate::token::Principal) to the handler.

mod account;
mod auth;
mod edge;
mod error;
mod external;
mod invite;
mod oauth;
mod password;
mod register;
mod steps;
#[cfg(feature = "ui")]
pub mod ui;
mod user_agent;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};

use crate::engine::Engine;
use crate::model::IpMatch;

pub use account::FIRST_PARTY_REQUIRED;
pub use edge::{Authenticated, ClientAddress, no_store, trace};
pub use error::OperationOutcome;
pub use steps::READ_ONLY_EXTENSION;

/// Spawns a task on the current tokio runtime that calls [`Engine::purge_expired`] every
/// `every` (a few minutes is right); a failure is logged and retried at the next tick.
pub fn spawn_purger(engine: Engine, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match engine.purge_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(entries = n, "purged expired logins and claims"),
                Err(error) => tracing::warn!(%error, "purging expired entries failed"),
            }
        }
    })
}

/// How the routes behave at the edge.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Largest accepted request body (default 64 KiB).
    pub body_limit: usize,
    /// Proxies whose `X-Forwarded-For` is believed (default none: the peer address is the
    /// client address).
    pub trusted_proxies: Vec<IpMatch>,
    /// Browser origins allowed to call `/auth/*` and the token, UserInfo, introspection and
    /// revocation endpoints with credentials (CORS). Never the authorization endpoint.
    pub cors_origins: Vec<String>,
    /// `SameSite` of the single-sign-on cookie (default `Lax`; use `None` when the sign-in
    /// app and the API are on different sites, as in Medplum's hosted setup).
    pub cookie_same_site: SameSite,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit: 64 * 1024,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
            cookie_same_site: SameSite::Lax,
        }
    }
}

/// The `SameSite` attribute of the single-sign-on cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `Strict`.
    Strict,
    /// `Lax` (the default).
    Lax,
    /// `None` (cross-site; always with `Secure`).
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    engine: Engine,
    config: Arc<HttpConfig>,
}

impl AppState {
    /// State for the routes (and for a host's own routes using [`Authenticated`]).
    pub fn new(engine: Engine, config: HttpConfig) -> Self {
        Self {
            engine,
            config: Arc::new(config),
        }
    }
}

impl FromRef<AppState> for Engine {
    fn from_ref(state: &AppState) -> Engine {
        state.engine.clone()
    }
}

impl FromRef<AppState> for Arc<HttpConfig> {
    fn from_ref(state: &AppState) -> Arc<HttpConfig> {
        state.config.clone()
    }
}

/// All routes with the default edge configuration.
pub fn router(engine: Engine) -> Router {
    router_with(engine, HttpConfig::default())
}

/// All routes.
pub fn router_with(engine: Engine, config: HttpConfig) -> Router {
    let limit = config.body_limit;
    let state = AppState::new(engine, config);
    routes()
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            edge::cors,
        ))
        .layer(axum::middleware::from_fn(edge::no_store))
        .layer(axum::middleware::from_fn(edge::trace))
        .with_state(state)
}

/// The routes without state, for hosts that merge them into their own router and call
/// `.with_state(AppState::new(..))` themselves (plus the layers of [`router_with`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/method", post(auth::method))
        .route("/auth/login", post(auth::login))
        .route("/auth/external", get(external::callback))
        .route("/auth/external/start", get(external::start))
        .route("/auth/google", post(external::google))
        .route("/auth/exchange", post(external::exchange))
        .route("/auth/mfa/status", get(account::mfa_status))
        .route("/auth/mfa/setup", post(account::mfa_setup))
        .route("/auth/mfa/enroll", post(account::mfa_enroll))
        .route("/auth/mfa/verify", post(auth::mfa_verify))
        .route("/auth/mfa/login-enroll", post(auth::mfa_login_enroll))
        .route("/auth/mfa/disable", post(account::mfa_disable))
        .route(
            "/auth/mfa/send-email-challenge",
            post(account::mfa_send_email_challenge),
        )
        .route("/auth/mfa/enroll-email", post(account::mfa_enroll_email))
        .route("/auth/mfa/disable-email", post(account::mfa_disable_email))
        .route("/auth/mfa/send-email", post(auth::mfa_send_email))
        .route("/admin/projects/{project}/invite", post(invite::invite))
        .route("/auth/newuser", post(register::new_user))
        .route("/auth/newproject", post(register::new_project))
        .route("/auth/newpatient", post(register::new_patient))
        .route("/auth/resetpassword", post(password::reset_password))
        .route("/auth/setpassword", post(password::set_password))
        .route("/auth/changepassword", post(password::change_password))
        .route("/auth/verifyemail", post(password::verify_email))
        .route("/auth/profile", post(auth::profile))
        .route("/auth/scope", post(auth::scope))
        .route("/auth/me", get(account::me))
        .route("/auth/revoke", post(account::revoke))
        .route("/auth/login/{login}", get(auth::status))
        .route("/auth/clientinfo/{client}", get(auth::client_info))
        .route(
            "/oauth2/authorize",
            get(oauth::authorize_get).post(oauth::authorize_post),
        )
        .route("/oauth2/token", post(oauth::token))
        .route(
            "/oauth2/userinfo",
            get(oauth::userinfo).post(oauth::userinfo),
        )
        .route("/oauth2/logout", get(oauth::logout).post(oauth::logout))
        .route("/oauth2/introspect", post(oauth::introspect))
        .route("/oauth2/revoke", post(oauth::revoke))
        .route(
            "/.well-known/openid-configuration",
            get(oauth::openid_configuration),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::authorization_server),
        )
        .route("/.well-known/jwks.json", get(oauth::jwks))
        .route(
            "/.well-known/smart-configuration",
            get(oauth::smart_configuration),
        )
        .fallback(edge::not_found)
        .method_not_allowed_fallback(edge::method_not_allowed)
}
