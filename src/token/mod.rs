//! Tokens: signing keys and the key set, access and ID token claims, issuance, and
//! verification for resource servers. Refresh tokens are opaque bearer secrets kept in the
//! login store (see [`crate::store::LoginStore::rotate_refresh`]).

pub mod claims;
mod keyring;
pub mod keys;
pub mod verify;

pub use claims::{AccessClaims, IdClaims};
pub use keyring::{KeyRing, Keys};
pub use keys::{
    Expectation, KeyError, KeySet, SigningAlgorithm, SigningKey, TokenError, token_hash,
};
pub use verify::{Principal, ScopeDecision, Subject, Verifier, VerifyError};
