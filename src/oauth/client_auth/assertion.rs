//! `private_key_jwt`: a client assertion (RFC 7523) verified through [`crate::jose`] against
//! the client's registered JWKS or its `jwks_uri`, its `jti` claimed once.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use url::Url;

use super::*;
use crate::jose::claims::Audience;
use crate::jose::jwks::select;
use crate::jose::{ClaimError, Expectation, JwksError, Jws, JwsError, Registered, TimeRules, Use};
use crate::store::{OnceKey, OnceKind};
use crate::transport::TransportError;

/// The longest `jti` accepted.
pub(super) const MAX_JTI_CHARS: usize = 256;

impl ClientAuthenticator {
    /// RFC 7523 §3 with the SMART additions, through [`crate::jose`]. Unverified claims are
    /// checked first (their descriptions do not depend on the client existing); from the
    /// client lookup to the signature every failure reads [`INVALID_CLIENT`]; the `jti` is
    /// claimed last, so only a verified assertion can use one up.
    pub(super) async fn verify_assertion(
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

/// A client id in a `jti` key, with `%` and `:` escaped so `<client_id>:<jti>` is
/// unambiguous when the id itself contains a colon (as URL client ids do).
pub(super) fn escape_client_id(id: &str) -> String {
    id.replace('%', "%25").replace(':', "%3A")
}
