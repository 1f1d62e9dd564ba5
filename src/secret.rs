//! Bearer secrets and their stored hashes.
//!
//! Every value that lets its holder act — a login handle, an authorization code, a refresh
//! secret, a reset token — is a [`BearerSecret`]: at least 256 bits from the injected CSPRNG,
//! shown once to the caller, and stored only as its SHA-256 [`SecretHash`]. Lookups go by hash,
//! so the store never sees the secret and a timing difference in an index lookup says nothing
//! about the secret itself; where two hashes are compared directly, the comparison is constant
//! time.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::random::{RandomError, SecureRandom};

/// Number of random bytes in every bearer secret (256 bits).
pub const SECRET_BYTES: usize = 32;

/// A bearer secret: shown once to its holder, stored only as a [`SecretHash`].
///
/// `Debug` never prints the value, and the memory is wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct BearerSecret(String);

impl BearerSecret {
    /// Draws a fresh secret of [`SECRET_BYTES`] random bytes, encoded as unpadded base64url
    /// (43 characters).
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, RandomError> {
        let mut bytes = [0u8; SECRET_BYTES];
        rng.fill(&mut bytes)?;
        let encoded = URL_SAFE_NO_PAD.encode(bytes);
        bytes.zeroize();
        Ok(Self(encoded))
    }

    /// Wraps a secret presented by a caller (for hashing and lookup).
    pub fn from_presented(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for handing to its holder exactly once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 of the secret: what is stored and looked up.
    pub fn hash(&self) -> SecretHash {
        SecretHash::of(self.0.as_bytes())
    }
}

impl fmt::Debug for BearerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerSecret(<redacted>)")
    }
}

/// SHA-256 of a bearer secret. Safe to store and to log (it reveals nothing usable).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// Hashes arbitrary bytes.
    pub fn of(bytes: &[u8]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_slice());
        Self(out)
    }

    /// Hashes a secret as presented by a caller, without keeping the secret.
    pub fn of_presented(secret: &str) -> Self {
        Self::of(secret.as_bytes())
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Builds a hash from its raw digest (for stores reading it back).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// Unpadded base64url of the digest (the serialised form).
    pub fn to_base64(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// Parses the serialised form.
    pub fn from_base64(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(array))
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.to_base64();
        write!(f, "SecretHash({}…)", text.get(..8).unwrap_or(&text))
    }
}

impl Serialize for SecretHash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for SecretHash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_base64(&text)
            .ok_or_else(|| serde::de::Error::custom("expected a base64url SHA-256 digest"))
    }
}

/// Constant-time equality of two byte strings (lengths are not secret).
pub fn ct_eq_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Names of the parameters and JSON members that carry credentials in OAuth traffic: their
/// values never appear in `Debug` output.
pub(crate) const SECRET_NAMES: &[&str] = &[
    "access_token",
    "refresh_token",
    "id_token",
    "code",
    "client_secret",
    "login",
    "token",
];

/// `url` for `Debug`: the values of [`SECRET_NAMES`] query parameters redacted.
pub(crate) fn redacted_url(url: &url::Url) -> String {
    if url.query().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if SECRET_NAMES.contains(&k.as_ref()) {
                "<redacted>".to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    shown.query_pairs_mut().clear().extend_pairs(pairs);
    shown.to_string()
}

/// A JSON body for `Debug`: the values of top-level [`SECRET_NAMES`] members redacted.
pub(crate) fn redacted_json(body: &serde_json::Value) -> serde_json::Value {
    match body {
        serde_json::Value::Object(members) => serde_json::Value::Object(
            members
                .iter()
                .map(|(k, v)| {
                    let v = if SECRET_NAMES.contains(&k.as_str()) {
                        serde_json::Value::String("<redacted>".to_owned())
                    } else {
                        v.clone()
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    #[test]
    fn generated_secrets_are_256_bit_base64url_and_differ() {
        let a = BearerSecret::generate(&OsRandom).unwrap();
        let b = BearerSecret::generate(&OsRandom).unwrap();
        assert_eq!(a.expose().len(), 43);
        assert!(
            a.expose()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a, b);
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let a = BearerSecret::from_presented("super-secret-value");
        assert!(!format!("{a:?}").contains("super-secret"));
    }

    #[test]
    fn hash_round_trips_through_serde_and_matches_presented() {
        let a = BearerSecret::from_presented("abc");
        let h = a.hash();
        assert!(h.ct_eq(&SecretHash::of_presented("abc")));
        let json = serde_json::to_string(&h).unwrap();
        let back: SecretHash = serde_json::from_str(&json).unwrap();
        assert_eq!(h, back);
        assert!(serde_json::from_str::<SecretHash>("\"short\"").is_err());
    }
}
