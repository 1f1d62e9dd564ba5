//! JOSE, once: every signed JWT fhirgate reads — its own access and ID tokens, clients'
//! `private_key_jwt` assertions, identity providers' ID and access tokens — goes through the
//! same four parts.
//!
//! * [`jws`]: compact JWS parsing (three base64url parts, a JSON header, size caps, `crit`
//!   refused) and signature verification with the key's algorithm, never the header's alone.
//! * [`policy`]: which algorithms each use accepts — our tokens: the algorithm of the key the
//!   `kid` names; client assertions and provider tokens: asymmetric algorithms only, never
//!   `none` or HMAC — and whether a JWK fits an algorithm (key type and curve).
//! * [`claims`]: the registered claims (duplicate members refused), one NumericDate reading
//!   (an `exp` fraction rounds down, `nbf`/`iat` up, so a fraction never extends validity) and
//!   one check of times, issuer, audience, `azp` and `nonce` against an [`Expectation`].
//! * [`jwks`]: the one JWKS cache for keys fetched through the
//!   [`Transport`](crate::transport::Transport) — per URL, `Cache-Control` honoured up to a
//!   configured lifetime, a size cap with bounded eviction, and at most one refetch per URL every
//!   [`REFETCH_INTERVAL`](jwks::REFETCH_INTERVAL) for an unknown `kid` or after a failure, so
//!   forged `kid`s cannot turn the server into a request amplifier.
//!
//! The callers keep only what is theirs: the keys to try, the expectation, and how a refusal
//! reads to their client (an OAuth `invalid_client`, a provider error, a bearer refusal).

pub mod claims;
pub mod jwks;
pub mod jws;
pub mod policy;

pub use claims::{ClaimError, Expectation, Registered, TimeRules};
pub use jwks::{JwksCache, JwksError};
pub use jws::{Header, Jws, JwsError};
pub use policy::Use;
