//! Client authentication at the token endpoint: `client_secret_basic` and
//! `client_secret_post` (RFC 6749 §2.3.1), `private_key_jwt` (RFC 7521 §4.2, RFC 7523 §2.2
//! and §3, SMART App Launch "client-confidential-asymmetric"), and public clients that present
//! only their `client_id`.
//!
//! Two steps, so an HTTP layer can reject a malformed request before touching any store:
//!
//! 1. [`presented_credentials`] reads the `Authorization` header and the form and says which
//!    single method the request uses (several at once is `invalid_request`, RFC 6749 §2.3).
//! 2. [`ClientAuthenticator::authenticate`] checks those credentials against the registered
//!    client: it must exist, be active, and use exactly its registered
//!    [`ClientAuthMethod`].
//!
//! Every failure to authenticate is `invalid_client` (RFC 6749 §5.2, RFC 7523 §3.2): 401 with
//! `WWW-Authenticate: Basic realm="fhirgate"` when the client used the `Authorization` header,
//! 400 otherwise. An unknown client, an inactive one, a method mismatch, a wrong secret and a
//! bad assertion signature all read "Invalid client", so the answer does not tell whether a
//! client id exists.
//!
//! Decisions where the sources leave room:
//!
//! * An `Authorization` header with a scheme other than `Basic` is `invalid_client` (401,
//!   `Basic` challenge): RFC 6749 §5.2 lists "unsupported authentication method" under
//!   `invalid_client`, and the challenge names the scheme we do support.
//! * A Basic header whose secret is empty is malformed (`invalid_client`, 401): public clients
//!   send `client_id` in the form.
//! * A one-element `aud` array holding an allowed value is accepted: it names the server as
//!   the sole audience just like the string form (RFC 7519 §4.1.3). Arrays with more or other
//!   values are refused (OpenID Connect Core errata 3 §9).
//! * A JWKS fetch that fails (timeout, non-200, not a JWK Set, too large) is `invalid_client`:
//!   publishing its keys is the client's job. Only a missing transport
//!   ([`TransportError::NotConfigured`]) is a `server_error`, since that is ours.

mod assertion;
mod presented;

use std::fmt;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};
use url::Url;

pub use presented::{PresentedCredentials, presented_credentials};

use super::OAuthError;
use crate::clock::Clock;
use crate::jose::JwksCache;
use crate::model::{ClientApplication, ClientAuthMethod, ClientId, ClientStatus};
use crate::secret::SecretHash;
use crate::store::{Directory, OnceStore};
use crate::transport::Transport;

/// The only `client_assertion_type` accepted (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE_JWT_BEARER: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Clock skew allowed on an assertion's `exp` and `nbf`.
pub const ASSERTION_LEEWAY: Duration = Duration::seconds(30);

/// How far ahead an assertion's `exp` may be (SMART: "no more than five minutes in the
/// future").
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::seconds(300);

/// The shortest interval between two fetches of one client's JWKS when an assertion names a
/// `kid` the cached set lacks, and after a failed fetch (the JWKS cache's).
pub const JWKS_REFETCH_INTERVAL: Duration = crate::jose::jwks::REFETCH_INTERVAL;

/// The largest JWKS document accepted from a `jwks_uri` (the JWKS cache's).
pub const MAX_JWKS_BYTES: usize = crate::jose::jwks::MAX_JWKS_BYTES;

/// The largest `client_assertion` accepted (16 KiB).
pub const MAX_ASSERTION_BYTES: usize = 16 * 1024;

/// The one description for every failure that must not reveal whether the client exists.
const INVALID_CLIENT: &str = "Invalid client";

/// A client that authenticated, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedClient {
    /// The client, as registered.
    pub client: ClientApplication,
    /// The method it used (always its registered one).
    pub method: ClientAuthMethod,
}

/// Checks presented client credentials against the registered clients.
///
/// Holds the world it needs — the directory (clients), the single-use store (assertion
/// `jti`s), the transport (fetching `jwks_uri`), the clock — plus this server's issuer
/// identifier and token endpoint URL (the audiences an assertion may name) and a per-client
/// cache of fetched JWKS. Build one per process and share it.
pub struct ClientAuthenticator {
    directory: Arc<dyn Directory>,
    once: Arc<dyn OnceStore>,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    issuer: Url,
    token_endpoint: Url,
    jwks: Arc<JwksCache>,
}

impl ClientAuthenticator {
    /// An authenticator. `issuer` is this server's issuer identifier and `token_endpoint` its
    /// token endpoint URL: an assertion's `aud` must be one of the two. Clients' `jwks_uri`
    /// sets come through `jwks`, the process's one JWKS cache.
    pub fn new(
        directory: Arc<dyn Directory>,
        once: Arc<dyn OnceStore>,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
        issuer: Url,
        token_endpoint: Url,
        jwks: Arc<JwksCache>,
    ) -> Self {
        crate::crypto::install_provider();
        Self {
            directory,
            once,
            transport,
            clock,
            issuer,
            token_endpoint,
            jwks,
        }
    }

    /// The issuer identifier assertions may name as `aud`.
    pub fn issuer(&self) -> &Url {
        &self.issuer
    }

    /// The token endpoint URL assertions may name as `aud`.
    pub fn token_endpoint(&self) -> &Url {
        &self.token_endpoint
    }

    /// Authenticates the client behind `presented`.
    ///
    /// Errors are `invalid_client` (401 with a `Basic` challenge when Basic was used), except
    /// `server_error` when a store fails or no transport is configured for a `jwks_uri`.
    pub async fn authenticate(
        &self,
        presented: &PresentedCredentials,
    ) -> Result<AuthenticatedClient, OAuthError> {
        let challenge = presented.challenge();
        let method = presented.method();
        match presented {
            PresentedCredentials::None { client_id } => {
                let Some(client_id) = client_id else {
                    return Err(OAuthError::invalid_client(
                        "Missing client_id or client authentication",
                        None,
                    ));
                };
                match self.active_client(client_id).await? {
                    Some(client) if client.auth_method == ClientAuthMethod::None => {
                        Ok(AuthenticatedClient { client, method })
                    }
                    _ => Err(OAuthError::invalid_client(INVALID_CLIENT, None)),
                }
            }
            PresentedCredentials::Basic { client_id, secret }
            | PresentedCredentials::BasicAndPost { client_id, secret }
            | PresentedCredentials::Post { client_id, secret } => {
                let client = self.active_client(client_id).await?;
                let presented_hash = secret.hash();
                // Both registered secrets are always compared, in constant time.
                let (current, retiring) = client
                    .as_ref()
                    .map(|c| (c.secret, c.retiring_secret))
                    .unwrap_or((None, None));
                let matched = secret_matches(current.map(|h| *h.hash()), &presented_hash)
                    | secret_matches(retiring.map(|h| *h.hash()), &presented_hash);
                match client {
                    Some(client) if matched && presented.satisfies(client.auth_method) => {
                        let method = client.auth_method;
                        Ok(AuthenticatedClient { client, method })
                    }
                    _ => Err(OAuthError::invalid_client(INVALID_CLIENT, challenge)),
                }
            }
            PresentedCredentials::Assertion {
                client_id,
                assertion,
            } => {
                let client = self
                    .verify_assertion(client_id.as_deref(), assertion)
                    .await?;
                Ok(AuthenticatedClient { client, method })
            }
        }
    }

    /// The client with this id if it exists and is active.
    async fn active_client(&self, id: &str) -> Result<Option<ClientApplication>, OAuthError> {
        let client = self
            .directory
            .client(&ClientId::new(id))
            .await
            .map_err(|_| OAuthError::server_error("Client lookup failed"))?;
        Ok(client.filter(|c| c.status == ClientStatus::Active))
    }
}

impl fmt::Debug for ClientAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuthenticator")
            .field("issuer", &self.issuer.as_str())
            .field("token_endpoint", &self.token_endpoint.as_str())
            .finish_non_exhaustive()
    }
}

/// Constant-time comparison against an optional registered hash; a missing one is compared
/// against a dummy so both comparisons always run.
fn secret_matches(registered: Option<SecretHash>, presented: &SecretHash) -> bool {
    let dummy = SecretHash::from_bytes([0; 32]);
    let equal = registered.as_ref().unwrap_or(&dummy).ct_eq(presented);
    equal & registered.is_some()
}

/// The signature algorithms accepted for client assertions (asymmetric only; never `none` or
/// HMAC), as published in discovery.
pub const ASSERTION_ALGORITHMS: [&str; 9] = crate::jose::policy::ASYMMETRIC_ALGORITHMS;

#[cfg(test)]
mod tests;
