//! The key set: the active key, at most one published next key, retired keys until their
//! keep-until time; the JWKS; compact JWS signing and verification through [`crate::jose`].

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::{Expectation, KeyError, MAX_TOKEN_BYTES, SigningKey, TokenError};
use crate::jose::{self, ClaimError, Jws, Use};

/// The signing and verification keys, with rotation. A plain value: the engine wraps it in a
/// lock. `Debug` shows kids and states only.
#[derive(Clone)]
pub struct KeySet {
    active: SigningKey,
    next: Option<SigningKey>,
    retired: Vec<Retired>,
}

#[derive(Clone)]
pub(super) struct Retired {
    key: SigningKey,
    keep_until: OffsetDateTime,
}

/// The protected header [`KeySet::sign`] writes: these three members and nothing else.
#[derive(Serialize)]
pub(super) struct SignHeader<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'a str,
}

impl KeySet {
    /// A key set with `active` as its only key.
    pub fn new(active: SigningKey) -> KeySet {
        KeySet {
            active,
            next: None,
            retired: Vec::new(),
        }
    }

    /// The key that signs.
    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// The published next key, if any.
    pub fn next(&self) -> Option<&SigningKey> {
        self.next.as_ref()
    }

    /// The retired keys with the time each is kept until.
    pub fn retired(&self) -> impl Iterator<Item = (&SigningKey, OffsetDateTime)> + '_ {
        self.retired.iter().map(|r| (&r.key, r.keep_until))
    }

    /// Publishes `key` as the next key: it appears in the JWKS and verifies, but does not sign
    /// until [`KeySet::promote_next`] (OIDC Core 10.1.1: publish a key before using it, so
    /// that relying parties caching the JWKS have it by then).
    ///
    /// Fails with [`KeyError::Duplicate`] if a next key is already published or a key with
    /// the same kid is in the set (active or retired).
    pub fn publish_next(&mut self, key: SigningKey) -> Result<(), KeyError> {
        if self.next.is_some() || self.all_keys().any(|k| k.kid() == key.kid()) {
            return Err(KeyError::Duplicate);
        }
        self.next = Some(key);
        Ok(())
    }

    /// Makes the next key the active one. The old active key is retired: it keeps verifying
    /// and stays in the JWKS until `now + keep_retired_for`, which should be at least the
    /// longest lifetime of a token it signed (OIDC Core 10.1.1).
    pub fn promote_next(
        &mut self,
        now: OffsetDateTime,
        keep_retired_for: time::Duration,
    ) -> Result<(), KeyError> {
        let next = self.next.take().ok_or(KeyError::NoNextKey)?;
        let old = std::mem::replace(&mut self.active, next);
        self.retired.push(Retired {
            key: old,
            keep_until: now.saturating_add(keep_retired_for),
        });
        Ok(())
    }

    /// Drops the retired keys whose keep-until time is before `now`.
    pub fn prune(&mut self, now: OffsetDateTime) {
        self.retired.retain(|r| now <= r.keep_until);
    }

    /// Every key: active, next, then retired.
    fn all_keys(&self) -> impl Iterator<Item = &SigningKey> + '_ {
        std::iter::once(&self.active)
            .chain(self.next.iter())
            .chain(self.retired.iter().map(|r| &r.key))
    }

    /// The public JWKS: active, next and retired keys, each with `kid`, `alg` and
    /// `use: "sig"`, no private members; the kids are distinct.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.all_keys().map(|k| k.public_jwk().clone()).collect(),
        }
    }

    /// [`KeySet::jwks`] as JSON, the body of the `jwks_uri` response.
    pub fn jwks_json(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> =
            self.all_keys().map(|k| k.public_json().clone()).collect();
        serde_json::json!({ "keys": keys })
    }

    /// Signs `claims` (which must serialize to a JSON object) with the active key. The header
    /// is `{"alg":…,"kid":…,"typ":…}` and nothing else: no `jku`, `jwk`, `x5u` or `x5c`
    /// (OIDC Core §2).
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, KeyError> {
        let key = &self.active;
        let header = SignHeader {
            alg: key.alg().as_str(),
            kid: key.kid(),
            typ,
        };
        let header_json =
            serde_json::to_vec(&header).map_err(|e| KeyError::Signing(e.to_string()))?;
        let payload = serde_json::to_vec(claims).map_err(|e| KeyError::Signing(e.to_string()))?;
        if payload.first() != Some(&b'{') {
            return Err(KeyError::Signing(
                "the claims must serialize to a JSON object".to_owned(),
            ));
        }
        let mut token = URL_SAFE_NO_PAD.encode(header_json);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature =
            jsonwebtoken::crypto::sign(token.as_bytes(), key.encoding(), key.alg().jwt_alg())
                .map_err(|e| KeyError::Signing(e.to_string()))?;
        token.push('.');
        token.push_str(&signature);
        Ok(token)
    }

    /// The key a token names, if it may verify at `now`: the active or next key, or a retired
    /// key not past its keep-until time.
    fn key_for(&self, kid: &str, now: OffsetDateTime) -> Option<&SigningKey> {
        if self.active.kid() == kid {
            return Some(&self.active);
        }
        if let Some(next) = &self.next
            && next.kid() == kid
        {
            return Some(next);
        }
        self.retired
            .iter()
            .find(|r| r.key.kid() == kid && now <= r.keep_until)
            .map(|r| &r.key)
    }

    /// Verifies a compact JWS signed by a key of this set and returns its claims.
    ///
    /// In order: the token is three base64url parts with a JSON header (else `Malformed`;
    /// `crit` is refused); the header `alg` is one of ours (else `AlgorithmMismatch`); `kid`
    /// names a key of the set (else `UnknownKey`); `alg` is *that key's* algorithm (else
    /// `AlgorithmMismatch`); `typ` matches (else `WrongType`); the signature verifies with
    /// that key and algorithm only (else `BadSignature`); the payload is a JSON object
    /// (else `Malformed`); `exp` is present and `now < exp + leeway`; `nbf`, if present,
    /// `nbf <= now + leeway`; `iat`, if present, `iat <= now + leeway`; `iss` equals the
    /// expected issuer exactly; `aud` (a string or an array of strings) contains the expected
    /// audience. Only then are the claims deserialized into `T` (failure: `Malformed`).
    ///
    /// Times are whole seconds; a fractional NumericDate is rounded towards rejection.
    pub fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        expected: &Expectation<'_>,
    ) -> Result<T, TokenError> {
        let jws = Jws::parse(token, MAX_TOKEN_BYTES).map_err(|_| TokenError::Malformed)?;
        let header = &jws.header;
        let header_alg = Use::OurTokens
            .algorithm(&header.alg)
            .ok_or(TokenError::AlgorithmMismatch)?;
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        let key = self
            .key_for(kid, expected.now)
            .ok_or(TokenError::UnknownKey)?;
        // The algorithm is the key's, never the header's.
        if header_alg != key.alg().jwt_alg() {
            return Err(TokenError::AlgorithmMismatch);
        }
        if !header.typ_is(expected.typ) {
            return Err(TokenError::WrongType);
        }
        if !jws.verify(key.decoding(), key.alg().jwt_alg()) {
            return Err(TokenError::BadSignature);
        }
        let registered = jws.registered().map_err(|_| TokenError::Malformed)?;
        registered
            .check(
                &jose::Expectation {
                    issuers: &[expected.issuer],
                    audience: jose::claims::Audience::AnyOf(&[expected.audience]),
                    authorized_party: None,
                    nonce: None,
                    times: jose::TimeRules {
                        leeway_seconds: expected.leeway_seconds,
                        max_age_seconds: None,
                        max_ahead_seconds: None,
                    },
                },
                expected.now,
            )
            .map_err(|e| match e {
                ClaimError::Expired => TokenError::Expired,
                ClaimError::NotYetValid | ClaimError::IssuedInFuture => TokenError::NotYetValid,
                ClaimError::WrongIssuer => TokenError::WrongIssuer,
                ClaimError::WrongAudience => TokenError::WrongAudience,
                ClaimError::Missing(claim) => TokenError::MissingClaim(claim),
                _ => TokenError::Malformed,
            })?;
        jws.claims().map_err(|_| TokenError::Malformed)
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct RetiredList<'a>(&'a [Retired]);
        impl fmt::Debug for RetiredList<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list()
                    .entries(self.0.iter().map(|r| (r.key.kid(), r.keep_until)))
                    .finish()
            }
        }
        f.debug_struct("KeySet")
            .field("active", &self.active.kid())
            .field("next", &self.next.as_ref().map(SigningKey::kid))
            .field("retired", &RetiredList(&self.retired))
            .finish()
    }
}
