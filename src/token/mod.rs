//! Tokens: signing keys and the key set, access and ID token claims, issuance, verification
//! for resource servers, and opaque refresh tokens.

pub mod keys;

pub use keys::{
    Expectation, KeyError, KeySet, SigningAlgorithm, SigningKey, TokenError, token_hash,
};
