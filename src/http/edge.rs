//! The edge: extractors with clear refusals, the bearer guard, client addresses,
//! `no-store`, CORS, tracing, and the fallbacks for unknown routes and wrong methods.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{
    ConnectInfo, FromRef, FromRequest, FromRequestParts, MatchedPath, Request, State,
};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::{AppState, HttpConfig, OperationOutcome};
use crate::engine::Engine;
use crate::token::Principal;

/// The text of header `name`, if present and visible ASCII.
pub(super) fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A JSON body for `/auth/*`: `application/json` required; any rejection (wrong type,
/// malformed, too large, wrong shape) is an OperationOutcome with a clear text.
pub(crate) struct AuthJson<T>(pub T);

impl<S, T> FromRequest<S> for AuthJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = OperationOutcome;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(AuthJson(value)),
            Err(rejection) => Err(json_refusal(&rejection)),
        }
    }
}

fn json_refusal(rejection: &JsonRejection) -> OperationOutcome {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => OperationOutcome::with_status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        ),
        JsonRejection::JsonSyntaxError(_) => {
            OperationOutcome::bad_request("Malformed JSON body", None)
        }
        JsonRejection::JsonDataError(e) => {
            OperationOutcome::bad_request(format!("Invalid request body: {}", e.body_text()), None)
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            OperationOutcome::with_status(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
        }
        other => OperationOutcome::with_status(other.status(), other.body_text()),
    }
}

/// A form body for `/oauth2/*`: `application/x-www-form-urlencoded` required.
pub(crate) struct FormBody(pub axum::body::Bytes);

impl<S> FromRequest<S> for FormBody
where
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let form_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form_type {
            return Err(crate::oauth::OAuthError::invalid_request(
                "Content-Type must be application/x-www-form-urlencoded",
            )
            .to_response()
            .into_http());
        }
        match axum::body::Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(FormBody(bytes)),
            Err(rejection) => {
                let status = rejection.status();
                let mut error = crate::oauth::OAuthError::invalid_request(
                    if status == StatusCode::PAYLOAD_TOO_LARGE {
                        "Request body too large".to_owned()
                    } else {
                        rejection.body_text()
                    },
                );
                error.status = status.as_u16();
                Err(error.to_response().into_http())
            }
        }
    }
}

impl crate::oauth::OAuthResponse {
    /// As an HTTP response.
    pub fn into_http(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self.body)).into_response();
        let headers = response.headers_mut();
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        response
    }
}

/// The client's address: the peer, or — when the peer is a trusted proxy — the nearest
/// untrusted address in `X-Forwarded-For`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub Option<IpAddr>);

impl<S> FromRequestParts<S> for ClientAddress
where
    S: Send + Sync,
    Arc<HttpConfig>: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let config = Arc::<HttpConfig>::from_ref(state);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(ClientAddress(client_address(peer, &parts.headers, &config)))
    }
}

fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    config: &HttpConfig,
) -> Option<IpAddr> {
    let trusted = |ip: Option<IpAddr>| config.trusted_proxies.iter().any(|rule| rule.matches(ip));
    if peer.is_none() || !trusted(peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    // From the right: the first address not belonging to a trusted proxy.
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !trusted(Some(*ip)))
        .or(peer)
}

/// The bearer token of a request, if it has one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Guards a route with a bearer access token: the handler receives the verified
/// [`Principal`]; anything else is answered 401 with an RFC 6750 challenge.
///
/// ```text
/// async fn read_patient(Authenticated(principal): Authenticated, Path(id): Path<String>) -> Json<Value> { … }
/// let app = fhirgate::http::router(engine.clone())
///     .merge(Router::new().route("/fhir/R4/Patient/{id}", get(read_patient)).with_state(state));
/// ```
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

impl<S> FromRequestParts<S> for Authenticated
where
    S: Send + Sync,
    Engine: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let engine = Engine::from_ref(state);
        let Some(token) = bearer(&parts.headers) else {
            let mut response =
                OperationOutcome::with_status(StatusCode::UNAUTHORIZED, "Unauthorized")
                    .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"fhirgate\""),
            );
            return Err(response);
        };
        match engine.verifier().verify(token).await {
            Ok(principal) => Ok(Authenticated(principal)),
            Err(error) => {
                let status = match error.fault() {
                    // RFC 6750 §3.1: a bad bearer token is a 401 with a challenge.
                    crate::error::Fault::Credentials => StatusCode::UNAUTHORIZED,
                    fault => super::error::status_of(fault),
                };
                if status != StatusCode::UNAUTHORIZED {
                    tracing::warn!(%error, "bearer token could not be checked");
                    let text = if status == StatusCode::SERVICE_UNAVAILABLE {
                        super::error::UNAVAILABLE_TEXT
                    } else {
                        "Internal server error"
                    };
                    return Err(OperationOutcome::with_status(status, text).into_response());
                }
                let mut response =
                    OperationOutcome::with_status(status, "Unauthorized").into_response();
                if let Ok(value) = HeaderValue::from_str(&error.challenge()) {
                    response
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, value);
                }
                Err(response)
            }
        }
    }
}

/// Middleware: `Cache-Control: no-store` and `Pragma: no-cache` on every response (most carry
/// credentials; the rest gain nothing from caching). Use it on a host's own routes with
/// `axum::middleware::from_fn(fhirgate::http::no_store)`.
pub async fn no_store(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Middleware: one `tracing` span per request with method, route and status — never the
/// query string, body or headers, which carry credentials. Use it on a host's own routes with
/// `axum::middleware::from_fn(fhirgate::http::trace)`.
pub async fn trace(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "<unmatched>".to_owned());
    let span = tracing::info_span!("request", method = %request.method(), route = %route);
    async move {
        let start = Instant::now();
        let response = next.run(request).await;
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
            "response"
        );
        response
    }
    .instrument(span)
    .await
}

/// CORS for an allow-list of origins, with credentials; never on the authorization endpoint
/// (RFC 9700 §2.6).
pub(crate) async fn cors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let path = request.uri().path().to_owned();
    let allowed = origin.as_ref().filter(|o| {
        !path.starts_with("/oauth2/authorize") && state.config.cors_origins.iter().any(|a| a == *o)
    });
    let Some(origin) = allowed.cloned() else {
        return next.run(request).await;
    };
    let preflight = request.method() == Method::OPTIONS;
    let mut response = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    if preflight {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    response
}

/// Unknown routes: a 404 OperationOutcome.
pub(crate) async fn not_found() -> OperationOutcome {
    OperationOutcome::with_status(StatusCode::NOT_FOUND, "Not found")
}

/// A known route with the wrong method: 405 OperationOutcome.
pub(crate) async fn method_not_allowed() -> OperationOutcome {
    OperationOutcome::with_status(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}

/// The value of cookie `name`, if the request carries it.
pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 10.0.0.5"),
        );
        let config = HttpConfig {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
            ..HttpConfig::default()
        };
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_address(Some(proxy), &headers, &config),
            Some("203.0.113.9".parse().unwrap())
        );
        let stranger: IpAddr = "198.51.100.7".parse().unwrap();
        assert_eq!(
            client_address(Some(stranger), &headers, &config),
            Some(stranger)
        );
        assert_eq!(
            client_address(Some(proxy), &headers, &HttpConfig::default()),
            Some(proxy)
        );
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&headers), None);
    }
}

/// Which [`RouteGroup`](crate::credential::throttle::RouteGroup) a route belongs to, as a
/// type, for [`Limited`].
pub(crate) trait Group {
    const GROUP: crate::credential::throttle::RouteGroup;
}

macro_rules! groups {
    ($($name:ident => $group:ident),* $(,)?) => {$(
        /// A route group marker for [`Limited`].
        pub(crate) struct $name;
        impl Group for $name {
            const GROUP: crate::credential::throttle::RouteGroup =
                crate::credential::throttle::RouteGroup::$group;
        }
    )*};
}

groups!(
    LoginRoutes => SignIn,
    RegistrationRoutes => Registration,
    ResetRoutes => Reset,
    MfaRoutes => Mfa,
);

/// Counts the request against its client address's limit for route group `G` before
/// anything else is read (the body is not parsed, nothing is hashed): over the limit the
/// request is answered `429` with `Retry-After`.
pub(crate) struct Limited<G>(std::marker::PhantomData<G>);

impl<S, G> FromRequestParts<S> for Limited<G>
where
    S: Send + Sync,
    G: Group,
    Engine: FromRef<S>,
    Arc<HttpConfig>: FromRef<S>,
{
    type Rejection = OperationOutcome;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let engine = Engine::from_ref(state);
        let Ok(ClientAddress(address)) = ClientAddress::from_request_parts(parts, state).await;
        let now = engine.now();
        match crate::credential::throttle::take_route_request(
            engine.once_store(),
            &engine.config().throttle,
            G::GROUP,
            address,
            now,
        )
        .await
        {
            Ok(None) => Ok(Limited(std::marker::PhantomData)),
            Ok(Some(retry_after)) => {
                tracing::info!(group = G::GROUP.as_str(), "route group limit reached");
                Err(OperationOutcome::throttled(now, retry_after))
            }
            Err(error) => Err(crate::error::LoginError::from(error).into()),
        }
    }
}
