//! `/oauth2/*` and `/.well-known/*`.

use axum::Json;
use axum::extract::State;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::OperationOutcome;
use super::edge::{Authenticated, ClientAddress, FormBody, bearer, cookie, header_text};
use crate::engine::Engine;
use crate::oauth::{AuthorizeOutcome, AuthorizeRequest, Form, OAuthError, TokenRequest};

async fn authorize(
    engine: &Engine,
    mut request: AuthorizeRequest,
    headers: &HeaderMap,
    address: ClientAddress,
    after_post: bool,
) -> Response {
    request.remote_address = address.0;
    request.user_agent = header_text(headers, header::USER_AGENT);
    let session = request
        .client_id()
        .and_then(|client| cookie(headers, &format!("medplum-{client}")));
    let redirect = |url: url::Url| {
        // RFC 9700 §4.12: never 307 after a POST that may carry credentials.
        let status = if after_post {
            StatusCode::SEE_OTHER
        } else {
            StatusCode::FOUND
        };
        let mut response = status.into_response();
        if let Ok(value) = HeaderValue::from_str(url.as_str()) {
            response.headers_mut().insert(header::LOCATION, value);
        }
        response
    };
    match engine.authorize(&request, session.as_deref()).await {
        AuthorizeOutcome::Redirect(url) | AuthorizeOutcome::SignIn(url) => redirect(url),
        AuthorizeOutcome::Refuse { status, message } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            message,
        )
            .into_response(),
    }
}

/// `GET /oauth2/authorize`.
pub(crate) async fn authorize_get(
    State(engine): State<Engine>,
    address: ClientAddress,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let request = AuthorizeRequest::parse(uri.query().unwrap_or_default());
    authorize(&engine, request, &headers, address, false).await
}

/// `POST /oauth2/authorize` (form body).
pub(crate) async fn authorize_post(
    State(engine): State<Engine>,
    address: ClientAddress,
    headers: HeaderMap,
    FormBody(body): FormBody,
) -> Response {
    let request = AuthorizeRequest::parse(&String::from_utf8_lossy(&body));
    authorize(&engine, request, &headers, address, true).await
}

fn token_request(
    headers: &HeaderMap,
    address: ClientAddress,
    body: &[u8],
) -> Result<TokenRequest, OAuthError> {
    let form = Form::parse(body)?;
    Ok(TokenRequest {
        authorization: header_text(headers, header::AUTHORIZATION),
        form,
        remote_address: address.0,
        user_agent: header_text(headers, header::USER_AGENT),
    })
}

/// `POST /oauth2/token`.
pub(crate) async fn token(
    State(engine): State<Engine>,
    address: ClientAddress,
    headers: HeaderMap,
    FormBody(body): FormBody,
) -> Response {
    match token_request(&headers, address, &body) {
        Ok(request) => engine.token(request).await.into_http(),
        Err(error) => error.to_response().into_http(),
    }
}

/// `POST /oauth2/introspect`.
pub(crate) async fn introspect(
    State(engine): State<Engine>,
    address: ClientAddress,
    headers: HeaderMap,
    FormBody(body): FormBody,
) -> Response {
    match token_request(&headers, address, &body) {
        Ok(request) => engine.introspect(&request).await.into_http(),
        Err(error) => error.to_response().into_http(),
    }
}

/// `POST /oauth2/revoke`.
pub(crate) async fn revoke(
    State(engine): State<Engine>,
    address: ClientAddress,
    headers: HeaderMap,
    FormBody(body): FormBody,
) -> Response {
    match token_request(&headers, address, &body) {
        Ok(request) => engine.revoke(&request).await.into_http(),
        Err(error) => error.to_response().into_http(),
    }
}

/// `GET|POST /oauth2/userinfo` with a bearer token.
pub(crate) async fn userinfo(State(engine): State<Engine>, headers: HeaderMap) -> Response {
    match bearer(&headers) {
        Some(token) => engine.userinfo(token).await.into_http(),
        None => {
            let mut error = OAuthError::new(
                crate::oauth::ErrorCode::InvalidToken,
                "Missing bearer token",
            );
            error.www_authenticate = Some("Bearer realm=\"fhirgate\"".to_owned());
            error.to_response().into_http()
        }
    }
}

/// `GET|POST /oauth2/logout`: revokes the grant (and its SSO session) and clears the cookie.
pub(crate) async fn logout(
    State(engine): State<Engine>,
    Authenticated(principal): Authenticated,
) -> Response {
    if let Err(error) = engine.logout(&principal).await {
        return error.to_response().into_http();
    }
    let mut response = OperationOutcome::all_ok().into_response();
    if let Some(client) = &principal.client {
        let clear = format!("medplum-{client}=; Path=/; Max-Age=0; Secure; HttpOnly");
        if let Ok(value) = HeaderValue::from_str(&clear) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// `GET /.well-known/openid-configuration`.
pub(crate) async fn openid_configuration(State(engine): State<Engine>) -> Response {
    Json(engine.discovery().openid_configuration()).into_response()
}

/// `GET /.well-known/oauth-authorization-server`.
pub(crate) async fn authorization_server(State(engine): State<Engine>) -> Response {
    Json(engine.discovery().authorization_server()).into_response()
}

/// `GET /.well-known/jwks.json`.
pub(crate) async fn jwks(State(engine): State<Engine>) -> Response {
    Json(engine.keys().jwks()).into_response()
}

/// `GET /.well-known/smart-configuration`.
pub(crate) async fn smart_configuration(State(engine): State<Engine>) -> Response {
    Json(engine.discovery().smart_configuration()).into_response()
}
