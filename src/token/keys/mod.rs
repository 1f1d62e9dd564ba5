//! Signing keys, the key set with rotation, the JWKS, and JWT signing and verification.
//!
//! - A [`SigningKey`] is an ES256 (P-256), EdDSA (Ed25519) or RS256 (RSA ≥ 2048 bits) private
//!   key. Its `kid` is the RFC 7638 SHA-256 thumbprint of its public JWK, so it depends on the
//!   public key only and is the same wherever the key is loaded. ES256 and EdDSA keys can be
//!   generated from the injected [`SecureRandom`](crate::random::SecureRandom); RSA keys are loaded from PEM or a JWK.
//! - A [`KeySet`] holds the *active* key (signs), at most one *next* key (published in the
//!   JWKS but not used to sign yet: OIDC Core 10.1.1, "publish before use") and *retired* keys
//!   (still verify and stay in the JWKS until their keep-until time, so tokens signed before a
//!   rotation stay valid until they expire).
//! - [`KeySet::sign`] writes a compact JWS whose header is exactly `alg`, `kid` and `typ`.
//! - [`KeySet::verify`] checks header, key, algorithm, type, signature and then `exp`, `nbf`,
//!   `iat`, `iss` and `aud` against an injected time, before deserializing the claims.
//!
//! EdDSA tokens carry `"alg":"EdDSA"` (RFC 8037), the name jsonwebtoken and most verifiers
//! implement; RFC 9864's fully specified `"Ed25519"` is accepted when *loading* a JWK but is
//! neither emitted nor accepted in token headers.

mod der;
mod generate;
mod material;
mod set;
mod signing_key;
#[cfg(test)]
mod tests;

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use sha2::{Digest, Sha256, Sha512};
use time::OffsetDateTime;

pub use set::KeySet;
pub use signing_key::{SigningKey, thumbprint};

/// The longest token [`KeySet::verify`] looks at, in bytes; longer input is `Malformed`.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// The JWS algorithms fhirgate signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    /// ECDSA with P-256 and SHA-256 (RFC 7518 §3.4): small keys and signatures, fast.
    Es256,
    /// EdDSA with Ed25519 (RFC 8037), written `"EdDSA"` in headers.
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3): required for OIDC ID tokens (OIDC Core
    /// 15.1) and SMART `sso-openid-connect`.
    Rs256,
}

impl SigningAlgorithm {
    /// The jsonwebtoken algorithm.
    pub fn jwt_alg(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::EdDsa => Algorithm::EdDSA,
            Self::Rs256 => Algorithm::RS256,
        }
    }

    /// The JOSE `alg` name: `"ES256"`, `"EdDSA"` or `"RS256"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
        }
    }

    /// The algorithm for a JOSE `alg` name (exact, case-sensitive), if it is one of ours.
    pub fn from_jose_name(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            "RS256" => Some(Self::Rs256),
            _ => None,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Loading, generating or using a signing key failed, or a key-set change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key material is malformed, inconsistent (the public key does not match the private
    /// key), too weak, or could not be generated.
    #[error("invalid signing key: {0}")]
    InvalidKey(String),
    /// The key kind, curve, algorithm or container is not supported.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The key is already in the key set, or a next key is already published.
    #[error("the key is already in the key set, or a next key is already published")]
    Duplicate,
    /// [`KeySet::promote_next`] was called with no next key published.
    #[error("no next key has been published")]
    NoNextKey,
    /// Signing failed (the claims did not serialize to a JSON object, or the backend failed).
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Why [`KeySet::verify`] refused a token. The texts are safe to log; they never contain the
/// token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a compact JWS with a JSON header and a JSON object payload, or too long, or it uses
    /// a `crit` header.
    #[error("the token is not a well-formed signed JWT")]
    Malformed,
    /// The header has no `kid`, or the `kid` names no key of the set (unknown, pruned, or
    /// retired past its keep-until time).
    #[error("the token names no key of this key set")]
    UnknownKey,
    /// The header `alg` is not the algorithm of the key its `kid` names (this includes `none`
    /// and every HMAC algorithm, which no key here has).
    #[error("the token's algorithm is not the algorithm of its key")]
    AlgorithmMismatch,
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// The header `typ` is missing or not the expected type.
    #[error("the token is not of the expected type")]
    WrongType,
    /// `iss` is not the expected issuer.
    #[error("the token's issuer is not the expected issuer")]
    WrongIssuer,
    /// `aud` does not contain the expected audience.
    #[error("the token is not meant for this audience")]
    WrongAudience,
    /// `exp` has passed (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` or `iat` lies in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// A required claim is missing.
    #[error("the token lacks the required claim `{0}`")]
    MissingClaim(&'static str),
}

/// What [`KeySet::verify`] requires of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expectation<'a> {
    /// The header `typ`, compared case-insensitively; `application/` may be added or left out
    /// (RFC 7515 §4.1.9, RFC 9068 §2.1): `"at+jwt"` accepts `"application/at+jwt"`.
    pub typ: &'a str,
    /// The exact `iss`.
    pub issuer: &'a str,
    /// A value `aud` must be or contain.
    pub audience: &'a str,
    /// The time to check `exp`, `nbf` and `iat` against.
    pub now: OffsetDateTime,
    /// Allowed clock skew in seconds (negative counts as zero).
    pub leeway_seconds: i64,
}

/// OIDC `at_hash` / `c_hash` (OIDC Core 3.1.3.6, 3.3.2.11): base64url of the left half of the
/// hash of the ASCII `value`, with the hash of the ID token's `alg`.
///
/// ES256 and RS256 use SHA-256 (16 bytes kept). EdDSA uses SHA-512 (32 bytes kept): Ed25519
/// signs with SHA-512, and OpenID Connect Core 1.0 errata set 2 names SHA-512 for EdDSA with
/// Ed25519. (Ed448 would be SHAKE256; it is not supported here.)
pub fn token_hash(alg: SigningAlgorithm, value: &str) -> String {
    match alg {
        SigningAlgorithm::Es256 | SigningAlgorithm::Rs256 => {
            let digest = Sha256::digest(value.as_bytes());
            let (left, _) = digest.as_slice().split_at(16);
            URL_SAFE_NO_PAD.encode(left)
        }
        SigningAlgorithm::EdDsa => {
            let digest = Sha512::digest(value.as_bytes());
            let (left, _) = digest.as_slice().split_at(32);
            URL_SAFE_NO_PAD.encode(left)
        }
    }
}
