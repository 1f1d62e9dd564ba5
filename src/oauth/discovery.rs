//! Discovery documents: OpenID Provider metadata, RFC 8414 authorization-server metadata,
//! SMART App Launch `smart-configuration`, and the JWKS. They list exactly what the engine
//! supports, nothing more (Medplum advertised `plain` PKCE, `id_token` response types and
//! pairwise subjects it did not support).

use serde_json::{Value, json};

use super::client_auth::ASSERTION_ALGORITHMS;
use crate::config::OAuthConfig;
use crate::token::KeySet;

/// The discovery documents of an engine ([`Engine::discovery`](crate::Engine::discovery)).
pub struct Discovery<'a> {
    oauth: &'a OAuthConfig,
    keys: std::sync::Arc<KeySet>,
}

/// The endpoint paths, relative to the issuer (Medplum's layout).
pub mod paths {
    /// Authorization endpoint.
    pub const AUTHORIZE: &str = "oauth2/authorize";
    /// Token endpoint.
    pub const TOKEN: &str = "oauth2/token";
    /// UserInfo endpoint.
    pub const USERINFO: &str = "oauth2/userinfo";
    /// Introspection endpoint.
    pub const INTROSPECT: &str = "oauth2/introspect";
    /// Revocation endpoint.
    pub const REVOKE: &str = "oauth2/revoke";
    /// JWKS.
    pub const JWKS: &str = ".well-known/jwks.json";
}

const SCOPES: [&str; 12] = [
    "openid",
    "fhirUser",
    "profile",
    "email",
    "offline_access",
    "launch",
    "launch/patient",
    "launch/encounter",
    "patient/*.cruds",
    "user/*.cruds",
    "system/*.cruds",
    "patient/*.rs",
];

const AUTH_METHODS: [&str; 4] = [
    "none",
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];

impl<'a> Discovery<'a> {
    /// The documents for `oauth`, advertising the algorithms of `keys`.
    pub fn new(oauth: &'a OAuthConfig, keys: std::sync::Arc<KeySet>) -> Self {
        Self { oauth, keys }
    }

    fn signing_algorithms(&self) -> Vec<&'static str> {
        let keys = &self.keys;
        let mut algs: Vec<&'static str> = keys
            .jwks()
            .keys
            .iter()
            .filter_map(|k| k.common.key_algorithm)
            .filter_map(|a| match a {
                jsonwebtoken::jwk::KeyAlgorithm::ES256 => Some("ES256"),
                jsonwebtoken::jwk::KeyAlgorithm::EdDSA => Some("EdDSA"),
                jsonwebtoken::jwk::KeyAlgorithm::RS256 => Some("RS256"),
                _ => None,
            })
            .collect();
        algs.sort_unstable();
        algs.dedup();
        algs
    }

    /// `/.well-known/openid-configuration` (OpenID Connect Discovery 1.0).
    pub fn openid_configuration(&self) -> Value {
        let oauth = self.oauth;
        json!({
            "issuer": oauth.issuer_id(),
            "authorization_endpoint": oauth.endpoint(paths::AUTHORIZE),
            "token_endpoint": oauth.endpoint(paths::TOKEN),
            "userinfo_endpoint": oauth.endpoint(paths::USERINFO),
            "jwks_uri": oauth.endpoint(paths::JWKS),
            "introspection_endpoint": oauth.endpoint(paths::INTROSPECT),
            "revocation_endpoint": oauth.endpoint(paths::REVOKE),
            "scopes_supported": SCOPES,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": self.signing_algorithms(),
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
            "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
            "introspection_endpoint_auth_methods_supported": &AUTH_METHODS[1..],
            "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "amr",
                "fhirUser", "email", "email_verified", "name", "given_name", "family_name"
            ],
            "prompt_values_supported": ["none", "login", "consent"],
            "authorization_response_iss_parameter_supported": true,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "claims_parameter_supported": false,
        })
    }

    /// `/.well-known/oauth-authorization-server` (RFC 8414): the same metadata.
    pub fn authorization_server(&self) -> Value {
        self.openid_configuration()
    }

    /// `/.well-known/smart-configuration` (SMART App Launch 2.2): the required fields and
    /// the capabilities the engine really has.
    pub fn smart_configuration(&self) -> Value {
        let oauth = self.oauth;
        let mut capabilities = vec![
            "launch-ehr",
            "launch-standalone",
            "authorize-post",
            "client-public",
            "client-confidential-symmetric",
            "client-confidential-asymmetric",
            "sso-openid-connect",
            "context-banner",
            "context-ehr-patient",
            "context-ehr-encounter",
            "permission-offline",
            "permission-patient",
            "permission-user",
            "permission-v1",
            "permission-v2",
        ];
        if oauth.smart_style_url.is_some() {
            capabilities.push("context-style");
        }
        json!({
            "issuer": oauth.issuer_id(),
            "jwks_uri": oauth.endpoint(paths::JWKS),
            "authorization_endpoint": oauth.endpoint(paths::AUTHORIZE),
            "token_endpoint": oauth.endpoint(paths::TOKEN),
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
            "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
            "scopes_supported": SCOPES,
            "response_types_supported": ["code"],
            "introspection_endpoint": oauth.endpoint(paths::INTROSPECT),
            "revocation_endpoint": oauth.endpoint(paths::REVOKE),
            "code_challenge_methods_supported": ["S256"],
            "capabilities": capabilities,
        })
    }
}
