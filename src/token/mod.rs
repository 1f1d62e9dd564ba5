//! Tokens: signing keys and the key set, access and ID token claims, issuance, verification
//! for resource servers, and opaque refresh tokens.
