//! Which signature algorithms each use of JWTs accepts, and which keys fit them.

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};

/// The uses fhirgate reads JWTs for, each with its algorithm policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Use {
    /// Our own access and ID tokens: only the algorithms we sign with, and then only the one
    /// of the key the `kid` names (checked by the caller against its key).
    OurTokens,
    /// Clients' `private_key_jwt` assertions: asymmetric algorithms only.
    ClientAssertion,
    /// Identity providers' ID tokens and access tokens: asymmetric algorithms only.
    ProviderToken,
}

/// The asymmetric JWS algorithms accepted from others, as published in discovery. `none` and
/// HMAC are never accepted: an HMAC "signature" keyed with a public key is forgeable.
pub const ASYMMETRIC_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

impl Use {
    /// The algorithm `name` (a header's `alg`) stands for, if this use accepts it.
    pub fn algorithm(self, name: &str) -> Option<Algorithm> {
        let alg = match name {
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
        };
        match self {
            Use::OurTokens => {
                matches!(alg, Algorithm::ES256 | Algorithm::EdDSA | Algorithm::RS256).then_some(alg)
            }
            Use::ClientAssertion | Use::ProviderToken => Some(alg),
        }
    }
}

/// Whether `key` can verify `alg`: RSA for RS*/PS*, P-256 for ES256, P-384 for ES384,
/// Ed25519 for EdDSA.
pub fn fits(key: &Jwk, alg: Algorithm) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_and_hmac_are_never_accepted() {
        for name in ["none", "HS256", "HS384", "HS512", "", "es256"] {
            for usage in [Use::OurTokens, Use::ClientAssertion, Use::ProviderToken] {
                assert_eq!(usage.algorithm(name), None, "{usage:?} {name}");
            }
        }
        assert_eq!(Use::OurTokens.algorithm("PS256"), None);
        assert_eq!(
            Use::ProviderToken.algorithm("PS256"),
            Some(Algorithm::PS256)
        );
        for name in ASYMMETRIC_ALGORITHMS {
            assert!(Use::ClientAssertion.algorithm(name).is_some(), "{name}");
        }
    }
}
