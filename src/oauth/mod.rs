//! The OAuth 2.0 / OpenID Connect endpoints' logic, free of I/O: typed requests in, typed
//! responses (status, headers, JSON body) out, so an HTTP layer only moves bytes.

mod authorize;
mod client_auth;
pub mod discovery;
pub use discovery::Discovery;
mod endpoints;
mod error;
mod form;
mod token;

pub use authorize::{AuthorizeOutcome, AuthorizeRequest};
pub use client_auth::{
    ASSERTION_ALGORITHMS, ASSERTION_LEEWAY, AuthenticatedClient, CLIENT_ASSERTION_TYPE_JWT_BEARER,
    ClientAuthenticator, JWKS_REFETCH_INTERVAL, MAX_ASSERTION_BYTES, MAX_ASSERTION_LIFETIME,
    MAX_JWKS_BYTES, PresentedCredentials, presented_credentials,
};
pub use error::{ErrorCode, OAuthError, SERVER_ERROR_DESCRIPTION};
pub use form::{Form, MAX_FORM_BYTES, MAX_FORM_PARAMS};
pub use token::{ACCESS_TOKEN_TYPE, IssuedTokens, TOKEN_EXCHANGE, TokenRequest};

/// A response from one of the endpoints: status, headers and a JSON body. Every response
/// carries `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1), since most of
/// them carry credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers (name, value).
    pub headers: Vec<(&'static str, String)>,
    /// JSON body.
    pub body: serde_json::Value,
}

impl std::fmt::Debug for OAuthResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens, codes and cookies are credentials: shown redacted.
        let headers: Vec<(&str, String)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if name.eq_ignore_ascii_case("location") {
                    url::Url::parse(value)
                        .map(|u| crate::secret::redacted_url(&u))
                        .unwrap_or_else(|_| "<redacted>".to_owned())
                } else if name.eq_ignore_ascii_case("set-cookie") {
                    "<redacted>".to_owned()
                } else {
                    value.clone()
                };
                (*name, shown)
            })
            .collect();
        f.debug_struct("OAuthResponse")
            .field("status", &self.status)
            .field("headers", &headers)
            .field("body", &crate::secret::redacted_json(&self.body))
            .finish()
    }
}

impl OAuthResponse {
    /// A JSON response with the no-store headers.
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![
                ("Content-Type", "application/json".to_owned()),
                ("Cache-Control", "no-store".to_owned()),
                ("Pragma", "no-cache".to_owned()),
            ],
            body,
        }
    }

    /// The value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
