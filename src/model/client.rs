//! OAuth client applications, external identity providers and domain configurations.

use std::fmt;
use std::net::IpAddr;

use jsonwebtoken::jwk::JwkSet;
use serde::{Deserialize, Serialize};
use url::{Host, Url};

use super::{ClientId, ProjectId};
use crate::random::{RandomError, SecureRandom};
use crate::secret::{BearerSecret, SecretHash};

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
    /// How the client authenticates at the token endpoint: exactly one method per client.
    /// The default, [`ClientAuthMethod::None`], makes it a public client.
    #[serde(default)]
    pub auth_method: ClientAuthMethod,
    /// SHA-256 of the client secret (for `client_secret_basic` / `client_secret_post`);
    /// never the secret itself.
    #[serde(default)]
    pub secret: Option<ClientSecretHash>,
    /// The previous secret, still accepted while the client rotates to [`secret`](Self::secret).
    /// Remove it to end the rotation.
    #[serde(default)]
    pub retiring_secret: Option<ClientSecretHash>,
    /// The client's public keys, inline, for `private_key_jwt`.
    #[serde(default)]
    pub jwks: Option<JwkSet>,
    /// Where the client publishes its public keys for `private_key_jwt`, fetched through the
    /// host's [`Transport`](crate::transport::Transport). Used when [`jwks`](Self::jwks) is
    /// `None`; must be `https`.
    #[serde(default)]
    pub jwks_uri: Option<Url>,
    /// Access token lifetime in seconds; `None` means the engine's default.
    #[serde(default)]
    pub access_token_lifetime: Option<i64>,
    /// When the client gets refresh tokens.
    #[serde(default)]
    pub refresh_tokens: RefreshPolicy,
    /// The project's own application (its sign-in and account pages): only its tokens — and
    /// those of a sign-in without a client, the server's own — may manage the account
    /// (second factors, sessions). A third-party app's token, whatever its scopes, may not.
    #[serde(default)]
    pub first_party: bool,
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
            auth_method: ClientAuthMethod::None,
            secret: None,
            retiring_secret: None,
            jwks: None,
            jwks_uri: None,
            access_token_lifetime: None,
            refresh_tokens: RefreshPolicy::OfflineAccess,
            first_party: false,
        }
    }

    /// Whether this is a public client: one that cannot keep a secret and authenticates with
    /// nothing but its `client_id` ([`ClientAuthMethod::None`]).
    pub fn is_public(&self) -> bool {
        self.auth_method == ClientAuthMethod::None
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

/// How a client authenticates at the token endpoint (the `token_endpoint_auth_method` of
/// RFC 7591 §2). Each client has exactly one; a request using another is refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// A public client: presents its `client_id` only, and must use PKCE.
    #[default]
    None,
    /// The secret in an HTTP Basic `Authorization` header (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// The secret as the `client_secret` form parameter (RFC 6749 §2.3.1).
    ClientSecretPost,
    /// A JWT signed with the client's private key (RFC 7523 §2.2, SMART asymmetric client
    /// authentication), verified with [`ClientApplication::jwks`] or
    /// [`ClientApplication::jwks_uri`].
    PrivateKeyJwt,
}

impl ClientAuthMethod {
    /// The registered name (`none`, `client_secret_basic`, `client_secret_post`,
    /// `private_key_jwt`).
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMethod::None => "none",
            ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
            ClientAuthMethod::ClientSecretPost => "client_secret_post",
            ClientAuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

impl fmt::Display for ClientAuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stored form of a client secret: its SHA-256, never the secret.
///
/// Client secrets are generated with [`generate_client_secret`] (256 random bits), so an
/// unsalted fast hash is enough: there is nothing to brute-force offline. Serialised as the
/// base64url digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ClientSecretHash(SecretHash);

impl ClientSecretHash {
    /// Hashes a secret (to register it).
    pub fn of(secret: &str) -> Self {
        Self(SecretHash::of_presented(secret))
    }

    /// Wraps a stored digest.
    pub fn from_hash(hash: SecretHash) -> Self {
        Self(hash)
    }

    /// The digest.
    pub fn hash(&self) -> &SecretHash {
        &self.0
    }

    /// Whether `presented` is the secret, compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.ct_eq(&SecretHash::of_presented(presented))
    }
}

/// Draws a new client secret: the secret to show the client's owner once, and the hash to
/// store in [`ClientApplication::secret`].
pub fn generate_client_secret(
    rng: &dyn SecureRandom,
) -> Result<(BearerSecret, ClientSecretHash), RandomError> {
    let secret = BearerSecret::generate(rng)?;
    let hash = ClientSecretHash::from_hash(secret.hash());
    Ok((secret, hash))
}

/// When a client is issued refresh tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshPolicy {
    /// Only when the grant includes `offline_access` (the default).
    #[default]
    OfflineAccess,
    /// Never.
    Never,
    /// With every authorization-code token response.
    Always,
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
    /// For token exchange: further `aud` values that name this server in the provider's
    /// access tokens (an Okta authorization server's audience such as `api://fhirgate`, an
    /// Entra application ID URI). Our `client_id` at the provider is always accepted; ID
    /// tokens must name `client_id` whatever this says.
    #[serde(default)]
    pub access_token_audiences: Vec<String>,
    /// The provider puts `iss` in its authorization responses (its discovery document's
    /// `authorization_response_iss_parameter_supported`, RFC 9207 §3): a callback without
    /// `iss` is then refused, as a mix-up attack would strip it.
    #[serde(default)]
    pub iss_parameter_supported: bool,
    /// The provider's token introspection endpoint (RFC 7662). Token exchange accepts an
    /// opaque (non-JWT) subject token from a provider with an issuer and JWKS only when this
    /// is set: the provider must then say the token is active and was issued to our client.
    #[serde(default)]
    pub introspection_url: Option<Url>,
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
            .field("access_token_audiences", &self.access_token_audiences)
            .field("iss_parameter_supported", &self.iss_parameter_supported)
            .field(
                "introspection_url",
                &self.introspection_url.as_ref().map(Url::as_str),
            )
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
    fn new_clients_are_public_and_deserialise_with_defaults() {
        let c = ClientApplication::new(ClientId::new("c"), ProjectId::new("p"));
        assert!(c.is_public());
        assert_eq!(c.auth_method.as_str(), "none");
        assert_eq!(c.refresh_tokens, RefreshPolicy::OfflineAccess);
        let c: ClientApplication = serde_json::from_str(r#"{"id":"c","project":"p"}"#).unwrap();
        assert_eq!(c.auth_method, ClientAuthMethod::None);
        assert!(c.secret.is_none() && c.jwks.is_none() && c.jwks_uri.is_none());
        let c: ClientApplication = serde_json::from_str(
            r#"{"id":"c","project":"p","auth_method":"private_key_jwt","refresh_tokens":"never",
                "jwks_uri":"https://app.example.org/jwks.json"}"#,
        )
        .unwrap();
        assert_eq!(c.auth_method, ClientAuthMethod::PrivateKeyJwt);
        assert_eq!(c.refresh_tokens, RefreshPolicy::Never);
        assert!(!c.is_public());
    }

    #[test]
    fn client_secrets_are_stored_as_hashes_and_compared() {
        let (secret, hash) = generate_client_secret(&crate::random::OsRandom).unwrap();
        assert!(hash.matches(secret.expose()));
        assert!(!hash.matches("wrong"));
        assert_eq!(hash, ClientSecretHash::of(secret.expose()));
        let json = serde_json::to_string(&hash).unwrap();
        assert!(!json.contains(secret.expose()));
        let back: ClientSecretHash = serde_json::from_str(&json).unwrap();
        assert_eq!(back, hash);
        let mut c = ClientApplication::new(ClientId::new("c"), ProjectId::new("p"));
        c.auth_method = ClientAuthMethod::ClientSecretBasic;
        c.secret = Some(hash);
        let stored = serde_json::to_value(&c).unwrap();
        assert_eq!(stored["auth_method"], "client_secret_basic");
        assert_eq!(stored["secret"], hash.hash().to_base64());
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
            access_token_audiences: Vec::new(),
            iss_parameter_supported: false,
            introspection_url: None,
        };
        assert!(!format!("{idp:?}").contains("hunter2"));
    }
}
