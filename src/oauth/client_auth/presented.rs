//! Step 1: which credentials a token request presents — the `Authorization` header and the
//! form, read without touching any store.

use std::fmt;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use zeroize::Zeroizing;

use super::CLIENT_ASSERTION_TYPE_JWT_BEARER;
use crate::model::ClientAuthMethod;
use crate::oauth::{Form, OAuthError};
use crate::secret::{BearerSecret, SecretHash};

/// The longest `Authorization` header accepted (8 KiB).
pub(super) const MAX_AUTHORIZATION_BYTES: usize = 8 * 1024;

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
    pub(super) fn challenge(&self) -> Option<&'static str> {
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
