//! OAuth client applications, external identity providers and domain configurations.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use url::{Host, Url};

use super::{ClientId, ProjectId};

/// An OAuth client registered with a project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientApplication {
    /// The `client_id`.
    pub id: ClientId,
    /// The project the client belongs to; logins through it are restricted to this project.
    pub project: ProjectId,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Only active clients can start logins or obtain tokens.
    #[serde(default)]
    pub status: ClientStatus,
    /// The scopes the client may be granted, space-separated (SMART v1/v2 and OpenID scopes).
    /// A login's granted scope is always within these.
    #[serde(default)]
    pub allowed_scopes: String,
    /// Scope used when an authorization request names none.
    #[serde(default)]
    pub default_scope: Option<String>,
    /// Registered redirect URIs, matched exactly (a loopback URI may differ in port only).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// How the client uses PKCE.
    #[serde(default)]
    pub pkce: PkcePolicy,
    /// Origins allowed to start logins from a browser; empty means any.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// An external identity provider every login through this client must use.
    #[serde(default)]
    pub identity_provider: Option<IdentityProvider>,
}

impl ClientApplication {
    /// An active client with PKCE required and nothing allowed yet.
    pub fn new(id: ClientId, project: ProjectId) -> Self {
        Self {
            id,
            project,
            name: String::new(),
            status: ClientStatus::Active,
            allowed_scopes: String::new(),
            default_scope: None,
            redirect_uris: Vec::new(),
            pkce: PkcePolicy::Required,
            allowed_origins: Vec::new(),
            identity_provider: None,
        }
    }

    /// Whether `uri` is one of the registered redirect URIs: an exact string match, or — for
    /// an `http` loopback URI (`127.0.0.1`, `[::1]`, `localhost`) — a match in everything but
    /// the port (RFC 8252 §7.3, RFC 9700 §4.1.3).
    pub fn redirect_uri_registered(&self, uri: &str) -> bool {
        self.redirect_uris
            .iter()
            .any(|registered| registered == uri || loopback_port_variant(registered, uri))
    }

    /// Whether a browser `Origin` may start a login through this client.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins.is_empty() || self.allowed_origins.iter().any(|o| o == origin)
    }
}

fn loopback_port_variant(registered: &str, presented: &str) -> bool {
    let (Ok(a), Ok(b)) = (Url::parse(registered), Url::parse(presented)) else {
        return false;
    };
    let loopback = match a.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => d == "localhost",
        None => false,
    };
    loopback
        && a.scheme() == "http"
        && b.scheme() == "http"
        && a.host() == b.host()
        && a.username() == b.username()
        && a.password() == b.password()
        && a.path() == b.path()
        && a.query() == b.query()
        && a.fragment().is_none()
        && b.fragment().is_none()
}

/// Whether a client may be used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientStatus {
    /// In service.
    #[default]
    Active,
    /// Switched off by an administrator.
    Off,
    /// Disabled because of a configuration error.
    Error,
}

/// How a client uses PKCE (RFC 7636).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PkcePolicy {
    /// S256 required (the default, and the only choice for public clients).
    #[default]
    Required,
    /// S256 accepted but not required (a confidential client that authenticates itself).
    Optional,
    /// **Insecure**: `plain` accepted besides S256, for legacy clients (such as Medplum's SDK
    /// without WebCrypto) that cannot hash. Named so nobody enables it by accident.
    InsecureAllowPlain,
}

/// An external OpenID Connect / OAuth 2.0 identity provider.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityProvider {
    /// The provider's issuer identifier (checked against ID tokens).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Authorization endpoint.
    pub authorize_url: Url,
    /// Token endpoint.
    pub token_url: Url,
    /// UserInfo endpoint.
    #[serde(default)]
    pub userinfo_url: Option<Url>,
    /// JWKS of the provider's signing keys.
    #[serde(default)]
    pub jwks_uri: Option<Url>,
    /// Our client id at the provider.
    pub client_id: String,
    /// Our client secret at the provider (redacted from `Debug`).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// How we authenticate to the provider's token endpoint.
    #[serde(default)]
    pub token_auth_method: IdpTokenAuth,
    /// Match accounts by the provider's subject (`sub` → membership external id) instead of
    /// by verified email.
    #[serde(default)]
    pub use_subject: bool,
    /// Scopes requested from the provider.
    #[serde(default = "default_idp_scope")]
    pub scope: String,
}

fn default_idp_scope() -> String {
    "openid profile email".to_owned()
}

impl fmt::Debug for IdentityProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityProvider")
            .field("issuer", &self.issuer)
            .field("authorize_url", &self.authorize_url.as_str())
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("token_auth_method", &self.token_auth_method)
            .field("use_subject", &self.use_subject)
            .finish_non_exhaustive()
    }
}

/// Client authentication towards an external provider's token endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdpTokenAuth {
    /// HTTP Basic (the default).
    #[default]
    ClientSecretBasic,
    /// Credentials in the form body.
    ClientSecretPost,
}

/// Sends every email of a domain to an external identity provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainConfiguration {
    /// The email domain, lower-case (`example.org`).
    pub domain: String,
    /// The provider for that domain.
    #[serde(default)]
    pub identity_provider: Option<IdentityProvider>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(uris: &[&str]) -> ClientApplication {
        let mut c = ClientApplication::new(ClientId::new("c"), ProjectId::new("p"));
        c.redirect_uris = uris.iter().map(|s| (*s).to_owned()).collect();
        c
    }

    #[test]
    fn redirect_uris_match_exactly() {
        let c = client(&["https://app.example.org/cb"]);
        assert!(c.redirect_uri_registered("https://app.example.org/cb"));
        for bad in [
            "https://app.example.org/cb/",
            "https://app.example.org/cb?x=1",
            "https://app.example.org/cb#f",
            "https://app.example.org:8443/cb",
            "http://app.example.org/cb",
            "https://APP.example.org/cb",
            "https://app.example.org/c",
            "https://app.example.org/cbx",
        ] {
            assert!(!c.redirect_uri_registered(bad), "{bad}");
        }
    }

    #[test]
    fn loopback_redirects_may_change_port_only() {
        let c = client(&[
            "http://127.0.0.1/cb",
            "http://localhost:9615",
            "http://[::1]:80/x",
        ]);
        assert!(c.redirect_uri_registered("http://127.0.0.1:53121/cb"));
        assert!(c.redirect_uri_registered("http://localhost:1234"));
        assert!(c.redirect_uri_registered("http://localhost:1234/"));
        assert!(c.redirect_uri_registered("http://[::1]:5000/x"));
        assert!(!c.redirect_uri_registered("http://127.0.0.1:53121/other"));
        assert!(!c.redirect_uri_registered("https://127.0.0.1:53121/cb"));
        assert!(!c.redirect_uri_registered("http://127.0.0.2:53121/cb"));
        assert!(!c.redirect_uri_registered("http://localhost.evil.org:1234"));
    }

    #[test]
    fn idp_secret_is_redacted() {
        let idp = IdentityProvider {
            issuer: None,
            authorize_url: Url::parse("https://idp.example.org/authorize").unwrap(),
            token_url: Url::parse("https://idp.example.org/token").unwrap(),
            userinfo_url: None,
            jwks_uri: None,
            client_id: "cid".into(),
            client_secret: Some("hunter2-secret".into()),
            token_auth_method: IdpTokenAuth::ClientSecretBasic,
            use_subject: false,
            scope: default_idp_scope(),
        };
        assert!(!format!("{idp:?}").contains("hunter2"));
    }
}
