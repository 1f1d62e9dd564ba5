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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use time::{Duration, OffsetDateTime};
use url::Url;
use zeroize::Zeroizing;

use super::{Form, OAuthError};
use crate::clock::Clock;
use crate::model::{ClientApplication, ClientAuthMethod, ClientId, ClientStatus};
use crate::secret::{BearerSecret, SecretHash};
use crate::store::{Directory, OnceKey, OnceStore};
use crate::transport::{HttpRequest, Transport, TransportError};

/// The only `client_assertion_type` accepted (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE_JWT_BEARER: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Clock skew allowed on an assertion's `exp` and `nbf`.
pub const ASSERTION_LEEWAY: Duration = Duration::seconds(30);

/// How far ahead an assertion's `exp` may be (SMART: "no more than five minutes in the
/// future").
pub const MAX_ASSERTION_LIFETIME: Duration = Duration::seconds(300);

/// The shortest interval between two fetches of one client's JWKS when an assertion names a
/// `kid` the cached set lacks, and after a failed fetch.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::seconds(10);

/// The largest JWKS document accepted from a `jwks_uri` (256 KiB).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

/// The largest `client_assertion` accepted (16 KiB).
pub const MAX_ASSERTION_BYTES: usize = 16 * 1024;

/// The longest `Authorization` header accepted (8 KiB).
const MAX_AUTHORIZATION_BYTES: usize = 8 * 1024;
/// The longest `jti` accepted.
const MAX_JTI_CHARS: usize = 256;
/// The most clients whose JWKS is cached at once.
const MAX_CACHED_CLIENTS: usize = 10_000;
/// The one description for every failure that must not reveal whether the client exists.
const INVALID_CLIENT: &str = "Invalid client";
/// The `OnceKey` kind under which assertion `jti`s are claimed.
const JTI_KIND: &str = "client-assertion-jti";

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
    jwks_cache_ttl: Duration,
    cache: Mutex<HashMap<ClientId, CachedJwks>>,
}

/// One client's fetched key set.
struct CachedJwks {
    /// The URL it came from (a changed registration misses the cache).
    uri: Url,
    /// The last set fetched successfully.
    keys: Option<Arc<JwkSet>>,
    /// Until when `keys` may be used without fetching again.
    fresh_until: OffsetDateTime,
    /// When the last fetch (successful or not) was made.
    last_fetch: OffsetDateTime,
    /// Whether the last fetch failed.
    last_failed: bool,
}

impl ClientAuthenticator {
    /// An authenticator. `issuer` is this server's issuer identifier and `token_endpoint` its
    /// token endpoint URL: an assertion's `aud` must be one of the two. A fetched JWKS is
    /// reused for `jwks_cache_ttl`, or less when its `Cache-Control` says so.
    pub fn new(
        directory: Arc<dyn Directory>,
        once: Arc<dyn OnceStore>,
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
        issuer: Url,
        token_endpoint: Url,
        jwks_cache_ttl: Duration,
    ) -> Self {
        crate::crypto::install_provider();
        Self {
            directory,
            once,
            transport,
            clock,
            issuer,
            token_endpoint,
            jwks_cache_ttl: jwks_cache_ttl.max(Duration::ZERO),
            cache: Mutex::new(HashMap::new()),
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

    /// RFC 7523 §3 with the SMART additions. Unverified claims are checked first (their
    /// descriptions do not depend on the client existing); from the client lookup to the
    /// signature every failure reads [`INVALID_CLIENT`]; the `jti` is claimed last, so only a
    /// verified assertion can use one up.
    async fn verify_assertion(
        &self,
        form_client_id: Option<&str>,
        assertion: &str,
    ) -> Result<ClientApplication, OAuthError> {
        let fail = |description: &str| OAuthError::invalid_client(description, None);
        if assertion.len() > MAX_ASSERTION_BYTES {
            return Err(fail("client_assertion is too large"));
        }
        let (header_part, payload_part) = split_compact_jws(assertion)
            .ok_or_else(|| fail("client_assertion is not a single compact signed JWT"))?;

        let header: AssertionHeader = decode_part(header_part)
            .ok_or_else(|| fail("client_assertion has a malformed header"))?;
        let alg = allowed_algorithm(&header.alg).ok_or_else(|| {
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
        if header.crit.is_some() {
            return Err(fail(
                "client assertion has critical header parameters, which are not supported",
            ));
        }
        let Some(kid) = header.kid.as_deref().filter(|k| !k.is_empty()) else {
            return Err(fail("client assertion header must name a kid"));
        };

        let claims: serde_json::Map<String, Value> = decode_part(payload_part)
            .ok_or_else(|| fail("client_assertion has a malformed payload"))?;
        let iss = claims.get("iss").and_then(Value::as_str);
        let sub = claims.get("sub").and_then(Value::as_str);
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
        if !self.audience_allowed(claims.get("aud")) {
            return Err(fail(
                "client assertion aud must be this server's token endpoint or issuer, as its sole audience",
            ));
        }
        let now = self.clock.now().unix_timestamp();
        let Some(exp) = claims.get("exp").and_then(numeric_date) else {
            return Err(fail("client assertion must have a numeric exp"));
        };
        if now > exp.saturating_add(ASSERTION_LEEWAY.whole_seconds()) {
            return Err(fail("client assertion has expired"));
        }
        if exp.saturating_sub(now) > MAX_ASSERTION_LIFETIME.whole_seconds() {
            return Err(fail(
                "client assertion exp is more than 5 minutes in the future",
            ));
        }
        if let Some(nbf) = claims.get("nbf") {
            match numeric_date(nbf) {
                Some(nbf) if nbf <= now.saturating_add(ASSERTION_LEEWAY.whole_seconds()) => {}
                Some(_) => return Err(fail("client assertion is not valid yet (nbf)")),
                None => return Err(fail("client assertion nbf must be numeric")),
            }
        }
        let Some(jti) = claims
            .get("jti")
            .and_then(Value::as_str)
            .filter(|j| !j.is_empty())
        else {
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
            select_key(jwks, kid, alg)
                .cloned()
                .ok_or_else(|| fail(INVALID_CLIENT))?
        } else if let Some(uri) = &client.jwks_uri {
            self.key_from_uri(&client.id, uri, kid, alg).await?
        } else {
            return Err(fail(INVALID_CLIENT));
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| fail(INVALID_CLIENT))?;
        let mut validation = Validation::new(alg);
        // Time, audience and issuer were checked above against the injected clock;
        // jsonwebtoken's own checks use the system clock.
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        jsonwebtoken::decode::<Value>(assertion, &key, &validation)
            .map_err(|_| fail(INVALID_CLIENT))?;

        // Remembered for as long as the assertion is acceptable, the last second included.
        let claim_until = OffsetDateTime::from_unix_timestamp(
            exp.saturating_add(ASSERTION_LEEWAY.whole_seconds())
                .saturating_add(1),
        )
        .map_err(|_| fail("client assertion exp is out of range"))?;
        let key = OnceKey::new(JTI_KIND, &format!("{}:{jti}", escape_client_id(iss)));
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

    /// Whether `aud` names this server (token endpoint or issuer) as its sole audience.
    fn audience_allowed(&self, aud: Option<&Value>) -> bool {
        let single = match aud {
            Some(Value::String(s)) => s.as_str(),
            Some(Value::Array(values)) if values.len() == 1 => {
                match values.first().and_then(Value::as_str) {
                    Some(s) => s,
                    None => return false,
                }
            }
            _ => return false,
        };
        url_names(&self.token_endpoint, single) || url_names(&self.issuer, single)
    }

    /// The key for `kid`/`alg` from the client's `jwks_uri`: from the cache while fresh, with
    /// one rate-limited refetch when the `kid` is unknown.
    async fn key_from_uri(
        &self,
        client: &ClientId,
        uri: &Url,
        kid: &str,
        alg: Algorithm,
    ) -> Result<Jwk, OAuthError> {
        let now = self.clock.now();
        let (cached, may_fetch) = {
            let cache = self.lock_cache();
            match cache.get(client).filter(|e| e.uri == *uri) {
                Some(entry) if entry.fresh_until > now && entry.keys.is_some() => (
                    entry.keys.clone(),
                    now - entry.last_fetch >= JWKS_REFETCH_INTERVAL,
                ),
                Some(entry) => (
                    None,
                    !(entry.last_failed && now - entry.last_fetch < JWKS_REFETCH_INTERVAL),
                ),
                None => (None, true),
            }
        };
        if let Some(keys) = cached {
            match count_keys(&keys, kid, alg) {
                1 => {
                    return select_key(&keys, kid, alg)
                        .cloned()
                        .ok_or_else(|| OAuthError::invalid_client(INVALID_CLIENT, None));
                }
                0 if may_fetch => {}
                _ => return Err(OAuthError::invalid_client(INVALID_CLIENT, None)),
            }
        } else if !may_fetch {
            return Err(OAuthError::invalid_client(
                "The client's JWKS could not be fetched; retry later",
                None,
            ));
        }
        let keys = self.fetch_jwks(client, uri, now).await?;
        select_key(&keys, kid, alg)
            .cloned()
            .ok_or_else(|| OAuthError::invalid_client(INVALID_CLIENT, None))
    }

    /// Fetches a JWKS through the transport and records the outcome in the cache.
    async fn fetch_jwks(
        &self,
        client: &ClientId,
        uri: &Url,
        now: OffsetDateTime,
    ) -> Result<Arc<JwkSet>, OAuthError> {
        if uri.scheme() != "https" {
            return Err(OAuthError::invalid_client(
                "The client's jwks_uri must use https",
                None,
            ));
        }
        let mut request = HttpRequest::get(uri.clone());
        request.headers.push((
            "Accept".to_owned(),
            "application/jwk-set+json, application/json".to_owned(),
        ));
        let outcome = match self.transport.send(request).await {
            Err(TransportError::NotConfigured) => {
                return Err(OAuthError::server_error(
                    "No transport is configured to fetch client JWKS",
                ));
            }
            Err(TransportError::TooLarge) => Err("the response is too large".to_owned()),
            Err(e) => Err(e.to_string()),
            Ok(response) if response.status != 200 => {
                Err(format!("HTTP status {}", response.status))
            }
            Ok(response) if response.body.len() > MAX_JWKS_BYTES => {
                Err("the response is too large".to_owned())
            }
            Ok(response) => match serde_json::from_slice::<JwkSet>(&response.body) {
                Ok(keys) => {
                    let ttl = response
                        .header("Cache-Control")
                        .and_then(cache_control_max_age)
                        .map_or(self.jwks_cache_ttl, |max_age| {
                            max_age.min(self.jwks_cache_ttl)
                        });
                    Ok((Arc::new(keys), ttl))
                }
                Err(_) => Err("the response is not a JWK Set".to_owned()),
            },
        };

        let mut cache = self.lock_cache();
        if !cache.contains_key(client) && cache.len() >= MAX_CACHED_CLIENTS {
            evict(&mut cache, now);
        }
        let entry = cache
            .entry(client.clone())
            .and_modify(|e| {
                if e.uri != *uri {
                    e.uri = uri.clone();
                    e.keys = None;
                    e.fresh_until = now;
                }
            })
            .or_insert_with(|| CachedJwks {
                uri: uri.clone(),
                keys: None,
                fresh_until: now,
                last_fetch: now,
                last_failed: false,
            });
        entry.last_fetch = now;
        match outcome {
            Ok((keys, ttl)) => {
                entry.keys = Some(keys.clone());
                entry.fresh_until = now.saturating_add(ttl);
                entry.last_failed = false;
                Ok(keys)
            }
            Err(reason) => {
                // Keys that are still fresh stay usable for their other kids.
                entry.last_failed = true;
                Err(OAuthError::invalid_client(
                    format!("Could not fetch the client's JWKS: {reason}"),
                    None,
                ))
            }
        }
    }

    fn lock_cache(&self) -> MutexGuard<'_, HashMap<ClientId, CachedJwks>> {
        // The cache holds no invariant a panic could break halfway.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for ClientAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuthenticator")
            .field("issuer", &self.issuer.as_str())
            .field("token_endpoint", &self.token_endpoint.as_str())
            .field("jwks_cache_ttl", &self.jwks_cache_ttl)
            .finish_non_exhaustive()
    }
}

/// The JOSE header fields an assertion's checks need.
#[derive(Deserialize)]
struct AssertionHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    jku: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
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
pub const ASSERTION_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// The signature algorithms accepted for assertions: asymmetric only, never `none` or HMAC.
fn allowed_algorithm(alg: &str) -> Option<Algorithm> {
    Some(match alg {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// Splits a compact JWS into its header and payload parts: exactly three dot-separated
/// base64url parts (the signature may be empty here; it fails verification later).
fn split_compact_jws(token: &str) -> Option<(&str, &str)> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let base64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (!header.is_empty()
        && !payload.is_empty()
        && base64url(header)
        && base64url(payload)
        && base64url(signature))
    .then_some((header, payload))
}

/// Decodes one base64url JSON part.
fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A JWT NumericDate (seconds, possibly fractional) as whole seconds.
fn numeric_date(value: &Value) -> Option<i64> {
    if let Some(i) = value.as_i64() {
        return Some(i);
    }
    let f = value.as_f64()?;
    // `as` saturates; the range checks afterwards refuse absurd values anyway.
    f.is_finite().then(|| f.floor() as i64)
}

/// Whether `text` names `url`: exactly its serialisation, or — for a URL with an empty path,
/// which `Url` always serialises with a trailing `/` — the same without that slash.
fn url_names(url: &Url, text: &str) -> bool {
    let serialised = url.as_str();
    text == serialised
        || (url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none()
            && serialised.strip_suffix('/') == Some(text))
}

/// The number of keys in `keys` with this `kid` and a type that fits `alg`.
fn count_keys(keys: &JwkSet, kid: &str, alg: Algorithm) -> usize {
    keys.keys
        .iter()
        .filter(|k| k.common.key_id.as_deref() == Some(kid) && key_type_fits(k, alg))
        .count()
}

/// SMART key selection: exactly one key with this `kid` and a `kty` (and curve) consistent
/// with `alg`; that key must also not be restricted to another algorithm or use.
fn select_key<'a>(keys: &'a JwkSet, kid: &str, alg: Algorithm) -> Option<&'a Jwk> {
    let mut candidates = keys
        .keys
        .iter()
        .filter(|k| k.common.key_id.as_deref() == Some(kid) && key_type_fits(k, alg));
    let (Some(key), None) = (candidates.next(), candidates.next()) else {
        return None;
    };
    let common = &key.common;
    let alg_ok = common
        .key_algorithm
        .is_none_or(|a| a == KeyAlgorithm::from(alg));
    let use_ok = common
        .public_key_use
        .as_ref()
        .is_none_or(|u| *u == PublicKeyUse::Signature);
    let ops_ok = common
        .key_operations
        .as_ref()
        .is_none_or(|ops| ops.contains(&KeyOperations::Verify));
    (alg_ok && use_ok && ops_ok).then_some(key)
}

fn key_type_fits(key: &Jwk, alg: Algorithm) -> bool {
    match (&key.algorithm, alg) {
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519
        }
        _ => false,
    }
}

/// The `max-age` a `Cache-Control` value allows (`no-store` and `no-cache` allow none).
fn cache_control_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',') {
        let directive = directive.trim();
        let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
        let name = name.trim();
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age")
            && let Ok(seconds) = arg.trim().trim_matches('"').parse::<u32>()
        {
            max_age = Some(Duration::seconds(i64::from(seconds)));
        }
    }
    max_age
}

/// Drops expired cache entries, and the least recently fetched one if none had expired.
fn evict(cache: &mut HashMap<ClientId, CachedJwks>, now: OffsetDateTime) {
    cache.retain(|_, e| e.fresh_until > now);
    if cache.len() >= MAX_CACHED_CLIENTS {
        let oldest = cache
            .iter()
            .min_by_key(|(_, e)| e.last_fetch)
            .map(|(id, _)| id.clone());
        if let Some(id) = oldest {
            cache.remove(&id);
        }
    }
}

/// A client id in a `jti` key, with `%` and `:` escaped so `<client_id>:<jti>` is
/// unambiguous when the id itself contains a colon (as URL client ids do).
fn escape_client_id(id: &str) -> String {
    id.replace('%', "%25").replace(':', "%3A")
}

#[cfg(test)]
mod tests;
