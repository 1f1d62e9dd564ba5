//! The store conformance suite (feature `test-util`): the behaviour every implementation of
//! [`DirectoryAdmin`], [`LoginStore`], [`OnceStore`] and [`RequestStore`] must have, written once and run by
//! fhirgate against [`MemoryStore`](crate::store::MemoryStore) and `PgStore`, and by a host
//! against its own store.
//!
//! Each check gets two handles on the same data ([`Stores::a`] and [`Stores::b`]): two
//! clones of one in-process store, or two instances with their own connections to one
//! database, so every atomic operation is also checked across instances. The races run 64
//! tasks at once over both handles; run the suite on a multi-threaded runtime.
//!
//! A check asserts and panics on the first difference (it is a test suite; failing loudly is
//! its job). Run every check, each on fresh, empty stores:
//!
//! ```
//! use fhirgate::MemoryStore;
//! use fhirgate::store::conformance::{self, Stores};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! conformance::run_all(|| async { Stores::shared(MemoryStore::new()) }).await;
//! # }
//! ```
//!
//! or one test per check from [`CHECKS`] (each has a `name` and a `run` function), so a
//! failure names its check.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod directory;
pub mod fixtures;
mod logins;
mod once;
mod races;
mod requests;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use time::OffsetDateTime;

use super::{
    CodeRedemption, DirectoryAdmin, LoginStore, OnceStore, RefreshRotation, RequestStore,
    StoreError,
};
use crate::model::ClientId;
use crate::secret::SecretHash;

pub use directory::*;
pub use logins::*;
pub use once::*;
pub use races::*;
pub use requests::*;

/// Every store trait at once: what a check needs of a handle.
pub trait Store: DirectoryAdmin + LoginStore + OnceStore + RequestStore {}
impl<T: DirectoryAdmin + LoginStore + OnceStore + RequestStore + ?Sized> Store for T {}

/// Two handles on the same, initially empty, data.
#[derive(Clone)]
pub struct Stores {
    /// The first handle.
    pub a: Arc<dyn Store>,
    /// The second handle (another instance on the same data, where the store has instances).
    pub b: Arc<dyn Store>,
}

impl Stores {
    /// Two handles on the same data.
    pub fn new(a: Arc<dyn Store>, b: Arc<dyn Store>) -> Self {
        Self { a, b }
    }

    /// Both handles are clones of `store` (an in-process store whose clones share data).
    pub fn shared<S: Store + Clone + 'static>(store: S) -> Self {
        Self {
            a: Arc::new(store.clone()),
            b: Arc::new(store),
        }
    }

    /// Handle `i` of a race: alternates between the two.
    fn nth(&self, i: usize) -> Arc<dyn Store> {
        if i.is_multiple_of(2) {
            self.a.clone()
        } else {
            self.b.clone()
        }
    }
}

/// A code presented to `store`, read as the engine reads it.
async fn redeem(
    store: &Arc<dyn Store>,
    code: &SecretHash,
    now: OffsetDateTime,
) -> Result<CodeRedemption, StoreError> {
    crate::store::redeem_code(store.as_ref(), code, now).await
}

/// A refresh token presented to `store`, read as the engine reads it.
async fn rotate(
    store: &Arc<dyn Store>,
    presented: &SecretHash,
    next: &SecretHash,
    client: Option<&ClientId>,
    now: OffsetDateTime,
) -> Result<RefreshRotation, StoreError> {
    crate::store::rotate_refresh_token(store.as_ref(), presented, next, client, now).await
}

/// The future of one check.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// One check of the suite.
#[derive(Clone, Copy)]
pub struct Check {
    /// Its name (the name of its function in this module).
    pub name: &'static str,
    /// Runs it on two handles of fresh stores; panics on a difference.
    pub run: for<'a> fn(&'a Stores) -> CheckFuture<'a>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        mod boxed {
            $(
                pub(super) fn $name(s: &super::Stores) -> super::CheckFuture<'_> {
                    Box::pin(super::$name(s))
                }
            )*
        }

        /// Every check, in the order [`run_all`] runs them.
        pub const CHECKS: &[Check] = &[$(Check { name: stringify!($name), run: boxed::$name }),*];
    };
}

checks!(
    users_are_unique_per_scope,
    update_user_is_compare_and_swap,
    memberships_are_listed_per_user_in_id_order,
    memberships_are_found_by_external_id_within_a_project,
    directory_records_round_trip,
    domains_are_keyed_by_lower_case,
    logins_are_created_once_and_found_by_their_hashes,
    update_login_is_compare_and_swap,
    update_login_can_rotate_the_handle,
    codes_are_redeemed_once,
    code_expiry_stage_and_revocation_refuse,
    raw_outcomes_report_only_this_calls_change,
    refresh_tokens_rotate_once_and_reuse_is_detected,
    refresh_client_condition_and_revoked_families,
    revocation_and_session_lists,
    expired_logins_are_purged,
    claims_are_single_use_until_they_expire,
    watermarks_only_rise,
    attempts_are_capped_per_window,
    expired_once_entries_are_purged,
    lookups_by_keys_with_nul_find_nothing,
    race_one_of_64_redeems_a_code,
    race_one_of_64_rotates_a_refresh_token,
    race_one_of_64_claims_a_key,
    race_one_of_64_raises_a_watermark,
    race_64_attempts_under_a_cap_of_10,
    race_one_of_64_compare_and_swaps_wins,
    race_one_of_64_creates_a_user_per_email,
    race_redemption_against_revocation,
    requests_are_consumed_once_with_their_secret,
    newer_requests_supersede_older_of_the_same_kind_and_user,
    expired_requests_are_refused_and_purged,
    race_one_of_64_consumes_a_request,
);

/// Runs every check, each on a fresh pair from `fresh`, naming each on standard error
/// before it runs; panics at the first check a store fails.
pub async fn run_all<F, Fut>(mut fresh: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Stores>,
{
    for check in CHECKS {
        let stores = fresh().await;
        eprintln!("store conformance: {}", check.name);
        (check.run)(&stores).await;
    }
}
