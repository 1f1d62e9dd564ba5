//! Talking to a provider: the code exchange, UserInfo, and validating the JWTs it issues
//! (OpenID Connect Core §3.1.3.7).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::DecodingKey;
use serde_json::Value;
use time::Duration;
use url::Url;

use super::{ExternalError, ExternalIdentity, ProviderSetup};
use crate::jose::claims::Audience;
use crate::jose::{ClaimError, Expectation, JwksError, Jws, JwsError, TimeRules, Use};
use crate::model::{IdentityProvider, IdpTokenAuth};
use crate::transport::{HttpMethod, HttpRequest, TransportError};

/// What a provider's JWT must be to be believed.
pub(crate) struct Expected<'a> {
    /// Accepted issuers (exact string comparison).
    pub issuers: &'a [&'a str],
    /// The audiences that name us: at least one must be among the token's.
    pub audiences: &'a [&'a str],
    /// For ID tokens (OIDC Core 3.1.3.7): our client id, which must be the `azp` when the
    /// token has several audiences. `None` for access tokens (RFC 9068 asks only `aud`).
    pub authorized_party: Option<&'a str>,
    /// The nonce sent with the authorization request, for ID tokens from a code flow.
    pub nonce: Option<&'a str>,
    /// How old `iat` may be (ID tokens fresh from a code exchange); `None` to skip.
    pub max_age: Option<Duration>,
}

fn invalid(reason: &str) -> ExternalError {
    ExternalError::InvalidToken(reason.to_owned())
}

/// The largest token accepted from a provider (16 KiB).
const MAX_PROVIDER_TOKEN: usize = 16 * 1024;

impl super::Federation<'_> {
    /// Verifies a provider's JWT against its JWKS and `expected`, through [`crate::jose`];
    /// returns its claims.
    pub(crate) async fn verify_provider_jwt(
        &self,
        token: &str,
        jwks_uri: &Url,
        expected: &Expected<'_>,
    ) -> Result<Value, ExternalError> {
        let jws = Jws::parse(token, MAX_PROVIDER_TOKEN).map_err(|e| match e {
            JwsError::TooLarge => invalid("the token is too long"),
            _ => invalid("not a JWT"),
        })?;
        let alg = Use::ProviderToken
            .algorithm(&jws.header.alg)
            .ok_or_else(|| invalid("the signature algorithm is not allowed"))?;
        let jwk = self
            .jwks_cache()
            .key(
                self.transport(),
                jwks_uri,
                jws.header.kid.as_deref(),
                alg,
                self.now(),
            )
            .await
            .map_err(|e| match e {
                JwksError::Transport(e) => ExternalError::Unreachable(e),
                JwksError::TooLarge => ExternalError::Unreachable(TransportError::TooLarge),
                JwksError::Status(status) => {
                    ExternalError::ProviderError(format!("the JWKS answered {status}"))
                }
                JwksError::NotAJwkSet => {
                    ExternalError::ProviderError("the JWKS is not a JWK Set".to_owned())
                }
                _ => invalid("no key of the identity provider matches the token"),
            })?;
        let key =
            DecodingKey::from_jwk(&jwk).map_err(|_| invalid("the provider's key is unusable"))?;
        if !jws.verify(&key, alg) {
            return Err(invalid("bad signature"));
        }
        let audiences = expected.audiences;
        jws.registered()
            .map_err(|_| invalid("malformed claims"))?
            .check(
                &Expectation {
                    issuers: expected.issuers,
                    audience: Audience::AnyOf(audiences),
                    authorized_party: expected.authorized_party,
                    nonce: expected.nonce,
                    times: TimeRules {
                        leeway_seconds: self.config().oauth.leeway.whole_seconds(),
                        max_age_seconds: expected.max_age.map(|d| d.whole_seconds()),
                        max_ahead_seconds: None,
                    },
                },
                self.now(),
            )
            .map_err(|e| {
                invalid(match e {
                    ClaimError::WrongIssuer | ClaimError::Missing("iss") => "wrong issuer",
                    ClaimError::WrongAudience | ClaimError::Missing("aud") => "wrong audience",
                    ClaimError::Malformed("aud") => "wrong audience",
                    ClaimError::AuthorizedParty => {
                        "several audiences without us as the authorized party"
                    }
                    ClaimError::Missing("exp") | ClaimError::Malformed("exp") => "no expiry",
                    ClaimError::Expired => "expired",
                    ClaimError::NotYetValid => "not yet valid",
                    ClaimError::IssuedInFuture => "issued in the future",
                    ClaimError::Missing("iat") => "no issue time",
                    ClaimError::TooOld => "issued too long ago",
                    ClaimError::WrongNonce => "wrong nonce",
                    _ => "malformed claims",
                })
            })?;
        jws.claims::<Value>()
            .map_err(|_| invalid("malformed claims"))
    }

    /// Exchanges an authorization code at the provider's token endpoint (RFC 6749 §4.1.3),
    /// with our PKCE verifier and client authentication per its configuration.
    pub(crate) async fn provider_code_exchange(
        &self,
        provider: &IdentityProvider,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<Value, ExternalError> {
        let (headers, body) = code_exchange_request(provider, code, verifier, redirect_uri);
        let response = self
            .transport()
            .send(HttpRequest {
                method: HttpMethod::Post,
                url: provider.token_url.clone(),
                headers,
                body,
            })
            .await
            .map_err(ExternalError::Unreachable)?;
        if !(200..300).contains(&response.status) {
            return Err(ExternalError::ProviderError(format!(
                "the token endpoint answered {}",
                response.status
            )));
        }
        let body: Value = serde_json::from_slice(&response.body).map_err(|_| {
            ExternalError::ProviderError("the token endpoint answered no JSON".to_owned())
        })?;
        if !body.is_object() {
            return Err(ExternalError::ProviderError(
                "the token endpoint answered no JSON object".to_owned(),
            ));
        }
        Ok(body)
    }

    /// RFC 7662 introspection of an opaque access token at the provider, authenticated as we
    /// are at its token endpoint. The token must be `active`, unexpired, and issued to us:
    /// its `aud` names one of `audiences` or its `client_id` is our client id at the provider.
    pub(crate) async fn provider_introspect(
        &self,
        provider: &IdentityProvider,
        token: &str,
        audiences: &[&str],
    ) -> Result<(), ExternalError> {
        let url = provider
            .introspection_url
            .clone()
            .ok_or(ExternalError::NotConfigured(ProviderSetup::NoIntrospection))?;
        let (headers, body) = introspection_request(provider, token);
        let response = self
            .transport()
            .send(HttpRequest {
                method: HttpMethod::Post,
                url,
                headers,
                body,
            })
            .await
            .map_err(ExternalError::Unreachable)?;
        if response.status != 200 {
            return Err(ExternalError::ProviderError(format!(
                "introspection answered {}",
                response.status
            )));
        }
        let answer: Value = serde_json::from_slice(&response.body).map_err(|_| {
            ExternalError::ProviderError("introspection answered no JSON".to_owned())
        })?;
        if answer.get("active") != Some(&Value::Bool(true)) {
            return Err(ExternalError::InactiveSubjectToken);
        }
        if let Some(exp) = answer.get("exp").and_then(Value::as_i64)
            && self.now().unix_timestamp() >= exp
        {
            return Err(ExternalError::InactiveSubjectToken);
        }
        let named: Vec<&str> = match answer.get("aud") {
            Some(Value::String(a)) => vec![a.as_str()],
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let for_us = named.iter().any(|a| audiences.contains(a))
            || answer.get("client_id").and_then(Value::as_str) == Some(&provider.client_id);
        if !for_us {
            return Err(ExternalError::InactiveSubjectToken);
        }
        Ok(())
    }

    /// The provider's UserInfo for an access token it issued.
    pub(crate) async fn provider_userinfo(
        &self,
        provider: &IdentityProvider,
        access_token: &str,
    ) -> Result<Value, ExternalError> {
        let url = provider
            .userinfo_url
            .clone()
            .ok_or(ExternalError::NotConfigured(ProviderSetup::NoUserInfo))?;
        let response = self
            .transport()
            .send(HttpRequest {
                method: HttpMethod::Get,
                url,
                headers: vec![
                    ("Authorization".to_owned(), format!("Bearer {access_token}")),
                    ("Accept".to_owned(), "application/json".to_owned()),
                ],
                body: Vec::new(),
            })
            .await
            .map_err(ExternalError::Unreachable)?;
        match response.status {
            200 => {}
            401 | 403 => {
                return Err(ExternalError::InvalidToken(
                    "the provider does not accept the token".to_owned(),
                ));
            }
            other => {
                return Err(ExternalError::ProviderError(format!(
                    "UserInfo answered {other}"
                )));
            }
        }
        let claims: Value = serde_json::from_slice(&response.body)
            .map_err(|_| ExternalError::ProviderError("UserInfo answered no JSON".to_owned()))?;
        if !claims.is_object() {
            return Err(ExternalError::ProviderError(
                "UserInfo answered no JSON object".to_owned(),
            ));
        }
        Ok(claims)
    }
}

/// The identity a provider's claims describe.
pub(crate) fn identity_of(
    claims: &Value,
    issuer: Option<&str>,
) -> Result<ExternalIdentity, ExternalError> {
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let subject = text("sub").ok_or(ExternalError::MissingSubject)?;
    // Some providers send "true" as a string.
    let email_verified = match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    Ok(ExternalIdentity {
        issuer: claims
            .get("iss")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| issuer.map(str::to_owned)),
        subject,
        email: text("email").map(|e| crate::model::normalize_email(&e)),
        email_verified,
        given_name: text("given_name"),
        family_name: text("family_name"),
    })
}

/// The headers and form body of the code exchange at the provider's token endpoint.
fn code_exchange_request(
    provider: &IdentityProvider,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
) -> (Vec<(String, String)>, Vec<u8>) {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_verifier", verifier);
    with_client_auth(provider, form)
}

/// The headers and form body of an RFC 7662 introspection request.
fn introspection_request(
    provider: &IdentityProvider,
    token: &str,
) -> (Vec<(String, String)>, Vec<u8>) {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("token", token)
        .append_pair("token_type_hint", "access_token");
    with_client_auth(provider, form)
}

/// Headers and form body of a request to the provider that authenticates us as its client
/// (`client_secret_basic` or `client_secret_post`, per the configuration).
fn with_client_auth(
    provider: &IdentityProvider,
    mut form: url::form_urlencoded::Serializer<'_, String>,
) -> (Vec<(String, String)>, Vec<u8>) {
    let mut headers = vec![
        (
            "Content-Type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        ),
        ("Accept".to_owned(), "application/json".to_owned()),
    ];
    let secret = provider.client_secret.clone().unwrap_or_default();
    match provider.token_auth_method {
        IdpTokenAuth::ClientSecretBasic => {
            let enc =
                |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
            let credentials = format!("{}:{}", enc(&provider.client_id), enc(&secret));
            headers.push((
                "Authorization".to_owned(),
                format!("Basic {}", STANDARD.encode(credentials)),
            ));
        }
        IdpTokenAuth::ClientSecretPost => {
            form.append_pair("client_id", &provider.client_id)
                .append_pair("client_secret", &secret);
        }
    }
    (headers, form.finish().into_bytes())
}
