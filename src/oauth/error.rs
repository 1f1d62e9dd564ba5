//! OAuth 2.0 errors as RFC 6749 §5.2 / §4.1.2.1, RFC 6750, RFC 7009 and OpenID Connect define
//! them: a code a client can act on, a description, the HTTP status, and the
//! `WWW-Authenticate` challenge where one is due.

use std::fmt;

use serde_json::json;

use super::OAuthResponse;

/// An OAuth error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// `invalid_request`.
    InvalidRequest,
    /// `invalid_client`.
    InvalidClient,
    /// `invalid_grant`.
    InvalidGrant,
    /// `unauthorized_client`.
    UnauthorizedClient,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `invalid_scope`.
    InvalidScope,
    /// `access_denied`.
    AccessDenied,
    /// `unsupported_response_type`.
    UnsupportedResponseType,
    /// `server_error`.
    ServerError,
    /// `temporarily_unavailable`.
    TemporarilyUnavailable,
    /// `login_required` (OpenID Connect).
    LoginRequired,
    /// `interaction_required` (OpenID Connect).
    InteractionRequired,
    /// `consent_required` (OpenID Connect).
    ConsentRequired,
    /// `request_not_supported` (OpenID Connect).
    RequestNotSupported,
    /// `request_uri_not_supported` (OpenID Connect).
    RequestUriNotSupported,
    /// `invalid_token` (RFC 6750).
    InvalidToken,
    /// `insufficient_scope` (RFC 6750).
    InsufficientScope,
    /// `unsupported_token_type` (RFC 7009).
    UnsupportedTokenType,
}

impl ErrorCode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::InteractionRequired => "interaction_required",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::RequestNotSupported => "request_not_supported",
            ErrorCode::RequestUriNotSupported => "request_uri_not_supported",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::UnsupportedTokenType => "unsupported_token_type",
        }
    }

    fn default_status(self) -> u16 {
        match self {
            ErrorCode::ServerError => 500,
            ErrorCode::TemporarilyUnavailable => 503,
            ErrorCode::InvalidToken => 401,
            ErrorCode::InsufficientScope => 403,
            _ => 400,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The description every `server_error` answers with.
pub const SERVER_ERROR_DESCRIPTION: &str = "The server could not complete the request";

/// An OAuth error response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    /// The error code.
    pub code: ErrorCode,
    /// A human-readable description (restricted to the characters RFC 6749 allows).
    pub description: String,
    /// HTTP status.
    pub status: u16,
    /// `WWW-Authenticate` challenge, for 401 answers.
    pub www_authenticate: Option<String>,
    /// What went wrong inside the server, for the audit log and the operator: never sent to
    /// the client (a `server_error` answers a generic description).
    pub detail: Option<String>,
}

impl OAuthError {
    /// An error with the code's usual status (400 for most).
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: sanitize(&description.into()),
            status: code.default_status(),
            www_authenticate: None,
            detail: None,
        }
    }

    /// `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_grant`.
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    /// `invalid_client`. When the client tried to authenticate with an `Authorization`
    /// header (`scheme`, e.g. `Basic`), RFC 6749 §5.2 requires 401 with a challenge for that
    /// scheme; otherwise it is a 400.
    pub fn invalid_client(description: impl Into<String>, scheme: Option<&str>) -> Self {
        let mut error = Self::new(ErrorCode::InvalidClient, description);
        if let Some(scheme) = scheme {
            error.status = 401;
            error.www_authenticate = Some(format!("{scheme} realm=\"fhirgate\""));
        }
        error
    }

    /// `server_error` (500), for failures that are nobody's fault but ours. The client reads
    /// [`SERVER_ERROR_DESCRIPTION`]; `detail` (a store's or signer's message, which may name
    /// tables, hosts or keys) stays in [`OAuthError::detail`] for the audit log.
    pub fn server_error(detail: impl Into<String>) -> Self {
        let mut error = Self::new(ErrorCode::ServerError, SERVER_ERROR_DESCRIPTION);
        error.detail = Some(detail.into());
        error
    }

    /// The JSON body: `{"error": …, "error_description": …}`.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "error": self.code.as_str(),
            "error_description": self.description,
        })
    }

    /// The whole response, with `Cache-Control: no-store` and the challenge if any.
    pub fn to_response(&self) -> OAuthResponse {
        let mut response = OAuthResponse::json(self.status, self.body());
        if let Some(challenge) = &self.www_authenticate {
            response
                .headers
                .push(("WWW-Authenticate", challenge.clone()));
        }
        response
    }
}

/// Keeps only the characters RFC 6749 §4.1.2.1 allows in `error_description`
/// (%x20-21 / %x23-5B / %x5D-7E): no quotes, backslashes or control characters.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{20}'..='\u{21}' | '\u{23}'..='\u{5B}' | '\u{5D}'..='\u{7E}' => c,
            _ => ' ',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_client_over_basic_is_401_with_a_challenge() {
        let e = OAuthError::invalid_client("bad secret", Some("Basic"));
        assert_eq!(e.status, 401);
        let r = e.to_response();
        assert!(
            r.headers
                .contains(&("WWW-Authenticate", "Basic realm=\"fhirgate\"".into()))
        );
        assert!(r.headers.contains(&("Cache-Control", "no-store".into())));
        assert_eq!(r.body["error"], "invalid_client");
        assert_eq!(OAuthError::invalid_client("x", None).status, 400);
    }

    #[test]
    fn server_errors_keep_their_detail_out_of_the_answer() {
        let e = OAuthError::server_error("db error: relation fhirgate_logins does not exist");
        assert_eq!(e.description, SERVER_ERROR_DESCRIPTION);
        let body = e.to_response().body.to_string();
        assert!(!body.contains("fhirgate_logins"), "{body}");
        assert_eq!(
            e.detail.as_deref(),
            Some("db error: relation fhirgate_logins does not exist")
        );
    }

    #[test]
    fn descriptions_keep_only_allowed_characters() {
        let e = OAuthError::invalid_request("bad \"value\"\\\n\there é");
        assert_eq!(e.description, "bad  value    here  ");
    }
}
