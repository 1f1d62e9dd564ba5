//! Fixtures as data (feature `seed`): projects, users, access policies, memberships, clients,
//! domains with identity providers, and Google sign-in settings, in one JSON document — the
//! demo server's seed file, also what a host or a test uses to set up a directory.
//!
//! Three steps: [`Seed::from_json`] parses (unknown fields are refused),
//! [`Seed::validate`] checks every entry against the others and the password policy without
//! writing anything, and [`Seed::load`] validates, hashes the passwords and writes through the
//! administrative trait [`DirectoryAdmin`](crate::store::DirectoryAdmin) of any store. Every refusal names the entry it is
//! about (`users[2]: email "x" is not an email address`), so nothing is half-written by a seed
//! that does not check out.
//!
//! ```
//! use fhirgate::seed::Seed;
//! use fhirgate::{Engine, MemoryStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let seed = Seed::from_json(r#"{
//!     "projects": [{ "id": "clinic", "name": "Clinic" }],
//!     "users": [{ "id": "alice", "email": "alice@example.org", "password": "correct horse battery" }],
//!     "memberships": [{ "id": "m1", "project": "clinic", "user": "alice",
//!                       "profile": "Practitioner/alice" }]
//! }"#)?;
//! let store = MemoryStore::new();
//! let engine = Engine::builder().store(store.clone()).build()?;
//! let summary = seed.load_for(&engine, &store).await?;
//! assert_eq!(summary.users[0].email, "alice@example.org");
//! # Ok(()) }
//! ```

mod error;
mod load;
mod schema;

pub use error::{SeedError, SeedProblem};
pub use load::{ClientSummary, Summary, UserSummary};
pub use schema::Seed;
