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

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use time::{Duration, OffsetDateTime};
use url::Url;
use zeroize::Zeroizing;

use super::{Form, OAuthError};
use crate::clock::Clock;
use crate::jose::claims::Audience;
use crate::jose::jwks::select;
use crate::jose::{
    ClaimError, Expectation, JwksCache, JwksError, Jws, JwsError, Registered, TimeRules, Use,
};
use crate::model::{ClientApplication, ClientAuthMethod, ClientId, ClientStatus};
use crate::secret::{BearerSecret, SecretHash};
use crate::store::{Directory, OnceKey, OnceKind, OnceStore};
use crate::transport::{Transport, TransportError};

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

/// The longest `Authorization` header accepted (8 KiB).
const MAX_AUTHORIZATION_BYTES: usize = 8 * 1024;
/// The longest `jti` accepted.
const MAX_JTI_CHARS: usize = 256;
/// The one description for every failure that must not reveal whether the client exists.
const INVALID_CLIENT: &str = "Invalid client";

/// Standard base64 that accepts the padding or its absence (RFC 7617 clients differ).
const BASIC_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What a token-endpoint request presents to authenticate its client: exactly one method.
///
/// `Debug` never shows a secret or an assertion; there is no `PartialEq`, so nothing compares
/// secrets in variable time.
#[derive(Clone)]
pub enum PresentedCredentials {
    /// No credentials: a public client, identified by the form's `client_id` if any.
    None {
        /// The form's `client_id`.
        client_id: Option<String>,
    },
    /// `client_secret_basic`: `Authorization: Basic`, both halves form-urldecoded.
    Basic {
        /// The client id from the header.
        client_id: String,
        /// The secret from the header.
        secret: BearerSecret,
    },
    /// The same client id and secret both in an HTTP Basic header and in the form, as
    /// Medplum's TypeScript client sends them after `setBasicAuth`: one credential presented
    /// twice, accepted for a client registered with either secret method.
    BasicAndPost {
        /// The client id (equal in header and form).
        client_id: String,
        /// The secret (equal in header and form).
        secret: BearerSecret,
    },
    /// `client_secret_post`: `client_id` and `client_secret` in the form.
    Post {
        /// The form's `client_id`.
        client_id: String,
        /// The form's `client_secret`.
        secret: BearerSecret,
    },
    /// `private_key_jwt`: a signed JWT in `client_assertion`.
    Assertion {
        /// The form's `client_id`, if sent (it must then equal the assertion's `iss`).
        client_id: Option<String>,
        /// The compact JWS.
        assertion: String,
    },
}

impl PresentedCredentials {
    /// The method these credentials use.
    pub fn method(&self) -> ClientAuthMethod {
        match self {
            PresentedCredentials::None { .. } => ClientAuthMethod::None,
            PresentedCredentials::Basic { .. } | PresentedCredentials::BasicAndPost { .. } => {
                ClientAuthMethod::ClientSecretBasic
            }
            PresentedCredentials::Post { .. } => ClientAuthMethod::ClientSecretPost,
            PresentedCredentials::Assertion { .. } => ClientAuthMethod::PrivateKeyJwt,
        }
    }

    /// The client id named outside an assertion (the header's or the form's), if any. An
    /// assertion's own `iss` is known only once it is verified.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            PresentedCredentials::None { client_id }
            | PresentedCredentials::Assertion { client_id, .. } => client_id.as_deref(),
            PresentedCredentials::Basic { client_id, .. }
            | PresentedCredentials::BasicAndPost { client_id, .. }
            | PresentedCredentials::Post { client_id, .. } => Some(client_id),
        }
    }

    /// Whether a client registered with `registered` may authenticate with these
    /// credentials: the method used must be the registered one, except that a secret sent
    /// identically in the header and the form satisfies either secret method.
    pub fn satisfies(&self, registered: ClientAuthMethod) -> bool {
        match self {
            PresentedCredentials::BasicAndPost { .. } => matches!(
                registered,
                ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost
            ),
            other => other.method() == registered,
        }
    }

    /// The challenge scheme for an `invalid_client` answer: `Basic` when the client used the
    /// `Authorization` header.
    fn challenge(&self) -> Option<&'static str> {
        match self {
            PresentedCredentials::Basic { .. } | PresentedCredentials::BasicAndPost { .. } => {
                Some("Basic")
            }
            _ => None,
        }
    }
}

impl fmt::Debug for PresentedCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PresentedCredentials::None { client_id } => f
                .debug_struct("None")
                .field("client_id", client_id)
                .finish(),
            PresentedCredentials::Basic { client_id, .. } => f
                .debug_struct("Basic")
                .field("client_id", client_id)
                .field("secret", &"<redacted>")
                .finish(),
            PresentedCredentials::BasicAndPost { client_id, .. } => f
                .debug_struct("BasicAndPost")
                .field("client_id", client_id)
                .field("secret", &"<redacted>")
                .finish(),
            PresentedCredentials::Post { client_id, .. } => f
                .debug_struct("Post")
                .field("client_id", client_id)
                .field("secret", &"<redacted>")
                .finish(),
            PresentedCredentials::Assertion {
                client_id,
                assertion,
            } => f
                .debug_struct("Assertion")
                .field("client_id", client_id)
                .field("assertion_len", &assertion.len())
                .finish_non_exhaustive(),
        }
    }
}

/// Reads the client credentials of a token-endpoint request: the `Authorization` header (the
/// HTTP layer passes its one value, and refuses a request with several) and the form's
/// `client_id`, `client_secret`, `client_assertion_type` and `client_assertion`.
///
/// The same client id and secret in the header and in the form are one credential
/// ([`PresentedCredentials::BasicAndPost`]), not two methods.
///
/// Errors:
/// * `invalid_request` — more than one method in the request (two different credentials); a form `client_id` that
///   differs from the Basic one; `client_secret` without `client_id`; `client_assertion`
///   without `client_assertion_type` or the reverse; an assertion type other than
///   [`CLIENT_ASSERTION_TYPE_JWT_BEARER`].
/// * `invalid_client` (401, `Basic` challenge) — a malformed Basic header, or another scheme.
pub fn presented_credentials(
    authorization: Option<&str>,
    form: &Form,
) -> Result<PresentedCredentials, OAuthError> {
    let basic = authorization.map(parse_basic).transpose()?;
    let form_id = form.get("client_id");
    let form_secret = form.get("client_secret");
    let assertion = form.get("client_assertion");
    let assertion_type = form.get("client_assertion_type");
    let uses_assertion = assertion.is_some() || assertion_type.is_some();

    // One credential sent twice (Medplum's client after `setBasicAuth`): the same id and
    // secret in the header and the form. Two different credentials stay two methods.
    if let (Some((client_id, secret)), Some(form_secret)) = (&basic, form_secret)
        && !uses_assertion
        && form_id == Some(client_id.as_str())
        && secret.hash().ct_eq(&SecretHash::of_presented(form_secret))
    {
        return Ok(PresentedCredentials::BasicAndPost {
            client_id: client_id.clone(),
            secret: secret.clone(),
        });
    }

    let methods = usize::from(basic.is_some())
        + usize::from(form_secret.is_some())
        + usize::from(uses_assertion);
    if methods > 1 {
        return Err(OAuthError::invalid_request(
            "Multiple client authentication methods in one request",
        ));
    }

    if let Some((client_id, secret)) = basic {
        if form_id.is_some_and(|id| id != client_id) {
            return Err(OAuthError::invalid_request(
                "client_id does not match the Authorization header",
            ));
        }
        return Ok(PresentedCredentials::Basic { client_id, secret });
    }
    if let Some(secret) = form_secret {
        let Some(client_id) = form_id else {
            return Err(OAuthError::invalid_request(
                "client_secret requires client_id",
            ));
        };
        return Ok(PresentedCredentials::Post {
            client_id: client_id.to_owned(),
            secret: BearerSecret::from_presented(secret),
        });
    }
    if uses_assertion {
        let Some(assertion_type) = assertion_type else {
            return Err(OAuthError::invalid_request("Missing client_assertion_type"));
        };
        if assertion_type != CLIENT_ASSERTION_TYPE_JWT_BEARER {
            return Err(OAuthError::invalid_request(
                "Unsupported client_assertion_type",
            ));
        }
        let Some(assertion) = assertion else {
            return Err(OAuthError::invalid_request("Missing client_assertion"));
        };
        return Ok(PresentedCredentials::Assertion {
            client_id: form_id.map(str::to_owned),
            assertion: assertion.to_owned(),
        });
    }
    Ok(PresentedCredentials::None {
        client_id: form_id.map(str::to_owned),
    })
}

/// Parses `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1, RFC 7617).
fn parse_basic(header: &str) -> Result<(String, BearerSecret), OAuthError> {
    let malformed = || OAuthError::invalid_client("Malformed Basic credentials", Some("Basic"));
    if header.len() > MAX_AUTHORIZATION_BYTES {
        return Err(malformed());
    }
    let header = header.trim();
    let (scheme, rest) = header.split_once([' ', '\t']).unwrap_or((header, ""));
    if !scheme.eq_ignore_ascii_case("Basic") {
        return Err(OAuthError::invalid_client(
            "Unsupported authentication scheme at the token endpoint; use Basic",
            Some("Basic"),
        ));
    }
    let decoded = Zeroizing::new(BASIC_BASE64.decode(rest.trim()).map_err(|_| malformed())?);
    let text = std::str::from_utf8(&decoded).map_err(|_| malformed())?;
    let (id, secret) = text.split_once(':').ok_or_else(malformed)?;
    let id = form_urldecode(id).ok_or_else(malformed)?;
    let secret = form_urldecode(secret).ok_or_else(malformed)?;
    if id.is_empty() || secret.is_empty() {
        return Err(malformed());
    }
    Ok((
        id.to_string(),
        BearerSecret::from_presented(secret.as_str()),
    ))
}

/// Strict `application/x-www-form-urlencoded` decoding of one component: `+` is a space,
/// `%XX` a byte; a stray `%` or bytes that are not UTF-8 make it malformed.
fn form_urldecode(text: &str) -> Option<Zeroizing<String>> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len()));
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.next().and_then(hex_value)?;
                let lo = bytes.next().and_then(hex_value)?;
                out.push((hi << 4) | lo);
            }
            _ => out.push(b),
        }
    }
    let text = std::str::from_utf8(&out).ok()?;
    Some(Zeroizing::new(text.to_owned()))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

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

    /// RFC 7523 §3 with the SMART additions, through [`crate::jose`]. Unverified claims are
    /// checked first (their descriptions do not depend on the client existing); from the
    /// client lookup to the signature every failure reads [`INVALID_CLIENT`]; the `jti` is
    /// claimed last, so only a verified assertion can use one up.
    async fn verify_assertion(
        &self,
        form_client_id: Option<&str>,
        assertion: &str,
    ) -> Result<ClientApplication, OAuthError> {
        let fail = |description: &str| OAuthError::invalid_client(description, None);
        let jws = Jws::parse(assertion, MAX_ASSERTION_BYTES).map_err(|e| {
            fail(match e {
                JwsError::TooLarge => "client_assertion is too large",
                JwsError::NotCompact => "client_assertion is not a single compact signed JWT",
                JwsError::Critical => {
                    "client assertion has critical header parameters, which are not supported"
                }
                _ => "client_assertion has a malformed header",
            })
        })?;
        let header = &jws.header;
        let alg = Use::ClientAssertion.algorithm(&header.alg).ok_or_else(|| {
            fail(&format!(
                "Unsupported client assertion algorithm {}",
                header.alg.chars().take(16).collect::<String>()
            ))
        })?;
        if header
            .typ
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("JWT"))
        {
            return Err(fail("client assertion typ must be JWT"));
        }
        let Some(kid) = header.kid.as_deref().filter(|k| !k.is_empty()) else {
            return Err(fail("client assertion header must name a kid"));
        };

        let claims = jws
            .registered()
            .map_err(|_| fail("client_assertion has a malformed payload"))?;
        let iss = Registered::text(claims.iss.as_ref());
        let sub = Registered::text(claims.sub.as_ref());
        let (Some(iss), Some(sub)) = (iss, sub) else {
            return Err(fail("client assertion must have iss and sub"));
        };
        if iss != sub || iss.is_empty() {
            return Err(fail(
                "client assertion iss and sub must both be the client_id",
            ));
        }
        if form_client_id.is_some_and(|id| id != iss) {
            return Err(fail("client_id does not match the client assertion issuer"));
        }
        let audiences = self.audiences();
        let audiences: Vec<&str> = audiences.iter().map(String::as_str).collect();
        let times = claims
            .check(
                &Expectation {
                    issuers: &[],
                    audience: Audience::SoleOf(&audiences),
                    authorized_party: None,
                    nonce: None,
                    times: TimeRules {
                        leeway_seconds: ASSERTION_LEEWAY.whole_seconds(),
                        max_age_seconds: None,
                        max_ahead_seconds: Some(MAX_ASSERTION_LIFETIME.whole_seconds()),
                    },
                },
                self.clock.now(),
            )
            .map_err(|e| {
                fail(match e {
                    ClaimError::WrongAudience
                    | ClaimError::Missing("aud")
                    | ClaimError::Malformed("aud") => {
                        "client assertion aud must be this server's token endpoint or issuer, as its sole audience"
                    }
                    ClaimError::Missing("exp") | ClaimError::Malformed("exp") => {
                        "client assertion must have a numeric exp"
                    }
                    ClaimError::Expired => "client assertion has expired",
                    ClaimError::TooFarAhead => {
                        "client assertion exp is more than 5 minutes in the future"
                    }
                    ClaimError::NotYetValid => "client assertion is not valid yet (nbf)",
                    ClaimError::Malformed("nbf") => "client assertion nbf must be numeric",
                    ClaimError::IssuedInFuture | ClaimError::Malformed("iat") => {
                        "client assertion iat must not be in the future"
                    }
                    _ => "client assertion claims are invalid",
                })
            })?;
        let Some(jti) = Registered::text(claims.jti.as_ref()).filter(|j| !j.is_empty()) else {
            return Err(fail("client assertion must have a jti"));
        };
        if jti.chars().count() > MAX_JTI_CHARS {
            return Err(fail("client assertion jti is too long"));
        }

        // From here on, one answer whether or not the client exists.
        let Some(client) = self
            .active_client(iss)
            .await?
            .filter(|c| c.auth_method == ClientAuthMethod::PrivateKeyJwt)
        else {
            return Err(fail(INVALID_CLIENT));
        };
        if let Some(jku) = header.jku.as_deref()
            && client
                .jwks_uri
                .as_ref()
                .is_none_or(|uri| uri.as_str() != jku)
        {
            return Err(fail(INVALID_CLIENT));
        }
        let jwk = if let Some(jwks) = &client.jwks {
            select(jwks, Some(kid), alg)
                .cloned()
                .ok_or_else(|| fail(INVALID_CLIENT))?
        } else if let Some(uri) = &client.jwks_uri {
            self.key_from_uri(uri, kid, alg).await?
        } else {
            return Err(fail(INVALID_CLIENT));
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| fail(INVALID_CLIENT))?;
        if !jws.verify(&key, alg) {
            return Err(fail(INVALID_CLIENT));
        }

        // Remembered for as long as the assertion is acceptable, the last second included.
        let claim_until = OffsetDateTime::from_unix_timestamp(
            times
                .exp
                .saturating_add(ASSERTION_LEEWAY.whole_seconds())
                .saturating_add(1),
        )
        .map_err(|_| fail("client assertion exp is out of range"))?;
        let key = OnceKey::new(
            OnceKind::ClientAssertionJti,
            &format!("{}:{jti}", escape_client_id(iss)),
        );
        let first = self
            .once
            .claim_once(&key, claim_until, self.clock.now())
            .await
            .map_err(|_| OAuthError::server_error("Single-use store failed"))?;
        if !first {
            return Err(fail("client assertion was already used (jti replay)"));
        }
        Ok(client)
    }

    /// The values an assertion's `aud` may be: the token endpoint and the issuer, each also
    /// without the trailing `/` a URL with an empty path serialises with.
    fn audiences(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(4);
        for url in [&self.token_endpoint, &self.issuer] {
            let serialised = url.as_str();
            out.push(serialised.to_owned());
            if url.path() == "/"
                && url.query().is_none()
                && url.fragment().is_none()
                && let Some(bare) = serialised.strip_suffix('/')
            {
                out.push(bare.to_owned());
            }
        }
        out
    }

    /// The key for `kid`/`alg` from the client's `jwks_uri`, through the JWKS cache.
    async fn key_from_uri(&self, uri: &Url, kid: &str, alg: Algorithm) -> Result<Jwk, OAuthError> {
        if uri.scheme() != "https" {
            return Err(OAuthError::invalid_client(
                "The client's jwks_uri must use https",
                None,
            ));
        }
        let now = self.clock.now();
        self.jwks
            .key(self.transport.as_ref(), uri, Some(kid), alg, now)
            .await
            .map_err(|e| match e {
                JwksError::Transport(TransportError::NotConfigured) => {
                    OAuthError::server_error("No transport is configured to fetch client JWKS")
                }
                JwksError::NoMatchingKey => OAuthError::invalid_client(INVALID_CLIENT, None),
                JwksError::RetryLater => OAuthError::invalid_client(
                    "The client's JWKS could not be fetched; retry later",
                    None,
                ),
                other => OAuthError::invalid_client(
                    format!("Could not fetch the client's JWKS: {other}"),
                    None,
                ),
            })
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

/// A client id in a `jti` key, with `%` and `:` escaped so `<client_id>:<jti>` is
/// unambiguous when the id itself contains a colon (as URL client ids do).
fn escape_client_id(id: &str) -> String {
    id.replace('%', "%25").replace(':', "%3A")
}

#[cfg(test)]
mod tests;
