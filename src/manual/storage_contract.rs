//! # The storage contract
//!
//! The engine keeps no security property in memory: with several server instances, each
//! single-use value stays single-use only because the store makes it so. The traits in
//! [`crate::store`] are therefore not key-value interfaces but lists of *atomic decisions*,
//! each of which a store must make in one step across every instance sharing it.
//!
//! ## The traits
//!
//! | trait | used by | what it must do atomically |
//! |---|---|---|
//! | [`Directory`](crate::store::Directory) | the engine, at run time | `create_user` (unique id, unique email per scope) and `update_user` (compare-and-swap on the version) |
//! | [`DirectoryAdmin`](crate::store::DirectoryAdmin) | seeding, admin tools — never the engine | nothing beyond replacing a record |
//! | [`LoginStore`](crate::store::LoginStore) | the login machine and the token endpoint | `create_login` (unique id and hashes), `update_login` (compare-and-swap; the handle may change), `consume_code`, `rotate_refresh`, `revoke_*` |
//! | [`OnceStore`](crate::store::OnceStore) | throttles, TOTP, client assertions, external starts | `claim_once`, `claim_above`, `take_attempt` — claims, watermarks and attempt windows are separate spaces per key |
//!
//! ## Raw outcomes, one reading
//!
//! `consume_code` and `rotate_refresh` answer [`Presented`](crate::store::Presented): whether
//! *this* call made the change (`Changed`), or the login that holds the secret as it is now
//! (`Unchanged`, with `retired` for a rotated-out refresh token), or `NotFound`. A store does
//! not decide what a refusal means. [`CodeRedemption::classify`](crate::store::CodeRedemption::classify)
//! and [`RefreshRotation::classify`](crate::store::RefreshRotation::classify) do, once, for
//! every store: a redeemed code presented again is a replay (the engine revokes the grant),
//! a rotated-out refresh token is reuse (the family is revoked), an expired one expired, and
//! anything else unknown. Exactly one of any number of concurrent presentations may see
//! `Changed`.
//!
//! ## What a store stores
//!
//! Bearer secrets arrive as [`SecretHash`](crate::secret::SecretHash) values (SHA-256 of 256
//! random bits): a store never sees a login handle, a code, a refresh token or a session
//! secret, only their hashes, and looks logins up by them. Every hash a login can be found by
//! is unique across all logins. Records are plain data (`LoginRecord`, `User`, …) that a store
//! may serialise as it likes; a record that does not read back is
//! [`StoreError::Corrupt`](crate::store::StoreError::Corrupt), never a panic.
//!
//! ## Errors
//!
//! [`StoreError`](crate::store::StoreError) has three kinds, and the engine maps them by
//! [`Fault`](crate::Fault): `Unavailable` (the backing service cannot be reached or timed out:
//! 503 at the edge, the same request may succeed shortly), `Conflict` (a uniqueness rule:
//! the caller learns the value exists) and `Corrupt` (500). A failed operation must change
//! nothing.
//!
//! ## Checking a store
//!
//! The feature `test-util` publishes the suite both built-in stores pass,
//! `fhirgate::store::conformance`: 29
//! checks, races of 64 tasks over two handles on the same data included. Run it on fresh
//! stores for each check:
//!
//! ```ignore
//! fhirgate::store::conformance::run_all(|| async { Stores::new(a(), b()) }).await;
//! ```
//!
//! `examples/custom_store.rs` writes a `OnceStore` and checks it this way;
//! [`Combined`](crate::store::Combined) joins a host's own parts with the crate's.
