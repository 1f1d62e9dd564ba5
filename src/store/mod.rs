//! Storage traits: identity data, logins, and single-use values.
//!
//! The engine never builds a security property out of get-then-put. Each trait exposes the
//! atomic operations security needs — *update this login if its version is still N*, *consume
//! this code once*, *claim this key once*, *advance this watermark*, *take an attempt if under
//! the limit* — so a correct implementation keeps single-use values single-use however many
//! server instances share it. [`MemoryStore`] implements all three traits for one process;
//! `PgStore` (feature `postgres`) implements them on PostgreSQL, each atomic operation as
//! one SQL statement.
//!
//! All traits are object safe (`Arc<dyn Directory>` and so on) and `Send + Sync`.

mod memory;
#[cfg(feature = "postgres")]
mod postgres;

use std::fmt;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::model::{
    AccessPolicy, AccessPolicyId, ClientApplication, ClientId, DomainConfiguration, LaunchId,
    LoginId, LoginRecord, MembershipId, Project, ProjectId, ProjectMembership, SmartLaunch, User,
    UserId,
};
use crate::secret::SecretHash;

pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PgOptions, PgStore};

/// A store could not do what was asked. The engine maps every variant to a server-side
/// failure: nothing here is the caller's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backing service is unreachable or failed (connection lost, timeout).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was violated (same id, same email in the same scope, same handle).
    #[error("store conflict: {0}")]
    Conflict(String),
    /// Stored data could not be read back.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// Read and maintain identity data: users, projects, memberships, clients, domain
/// configurations, access policies and launch contexts.
#[async_trait]
pub trait Directory: Send + Sync {
    /// The user with this (normalised) email in exactly this scope: project-scoped in
    /// `project` when it is `Some`, server-scoped when it is `None`.
    async fn user_by_email(
        &self,
        email: &str,
        project: Option<&ProjectId>,
    ) -> Result<Option<User>, StoreError>;
    /// A user by id.
    async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError>;
    /// Creates a user. Fails with [`StoreError::Conflict`] when the id exists or the email is
    /// taken in the same scope.
    async fn create_user(&self, user: &User) -> Result<(), StoreError>;
    /// Replaces a user if its stored version is still `expected_version`; the stored copy
    /// gets version `expected_version + 1`. Returns `false` (and changes nothing) otherwise.
    async fn update_user(&self, user: &User, expected_version: u64) -> Result<bool, StoreError>;
    /// Every membership of a user (at most a few hundred; active or not).
    async fn memberships_of(&self, user: &UserId) -> Result<Vec<ProjectMembership>, StoreError>;
    /// A membership by id.
    async fn membership(&self, id: &MembershipId) -> Result<Option<ProjectMembership>, StoreError>;
    /// The memberships of `project` whose `external_id` is exactly `external_id` (the
    /// subject an external identity provider uses for the member).
    async fn memberships_by_external_id(
        &self,
        project: &ProjectId,
        external_id: &str,
    ) -> Result<Vec<ProjectMembership>, StoreError>;
    /// Creates or replaces a membership.
    async fn put_membership(&self, membership: &ProjectMembership) -> Result<(), StoreError>;
    /// A project by id.
    async fn project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError>;
    /// Creates or replaces a project.
    async fn put_project(&self, project: &Project) -> Result<(), StoreError>;
    /// A client by id.
    async fn client(&self, id: &ClientId) -> Result<Option<ClientApplication>, StoreError>;
    /// Creates or replaces a client.
    async fn put_client(&self, client: &ClientApplication) -> Result<(), StoreError>;
    /// The configuration of a (lower-case) email domain.
    async fn domain(&self, domain: &str) -> Result<Option<DomainConfiguration>, StoreError>;
    /// Creates or replaces a domain configuration (keyed by its lower-cased domain).
    async fn put_domain(&self, domain: &DomainConfiguration) -> Result<(), StoreError>;
    /// An access policy by id.
    async fn access_policy(&self, id: &AccessPolicyId) -> Result<Option<AccessPolicy>, StoreError>;
    /// Creates or replaces an access policy.
    async fn put_access_policy(&self, policy: &AccessPolicy) -> Result<(), StoreError>;
    /// A SMART launch context by id.
    async fn launch(&self, id: &LaunchId) -> Result<Option<SmartLaunch>, StoreError>;
    /// Creates or replaces a launch context.
    async fn put_launch(&self, launch: &SmartLaunch) -> Result<(), StoreError>;
}

/// What happened when a code was presented to [`LoginStore::consume_code`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// First and only redemption: the returned record is already stored as
    /// [`StageTag::Granted`](crate::model::StageTag::Granted) with the code marked redeemed.
    Redeemed(LoginRecord),
    /// The code was redeemed before: a replay. The record is returned so the caller can
    /// revoke the login and every token issued from it.
    Replayed(LoginRecord),
    /// The code exists but its lifetime is over (nothing was changed).
    Expired,
    /// No such code, or its login was revoked.
    Unknown,
}

/// What happened when a refresh token was presented to [`LoginStore::rotate_refresh`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshRotation {
    /// The token was the family's current one: it is now retired, `next` is current, and the
    /// login's version was bumped. The updated record is returned.
    Rotated(LoginRecord),
    /// The token was rotated out before: a replay of a stolen or leaked token, or a client
    /// bug. The record is returned so the caller can revoke the family. Nothing changed.
    Reused(LoginRecord),
    /// The family's absolute lifetime is over (nothing changed).
    Expired,
    /// No such token, or its login was revoked.
    Unknown,
}

/// Logins between requests: created, resumed by handle, advanced by compare-and-swap, their
/// codes consumed once, their refresh tokens rotated once.
#[async_trait]
pub trait LoginStore: Send + Sync {
    /// Stores a new login. Fails with [`StoreError::Conflict`] if the id or handle exists.
    async fn create_login(&self, record: &LoginRecord) -> Result<(), StoreError>;
    /// The login whose handle hashes to `handle`.
    async fn login_by_handle(&self, handle: &SecretHash)
    -> Result<Option<LoginRecord>, StoreError>;
    /// A login by id.
    async fn login(&self, id: &LoginId) -> Result<Option<LoginRecord>, StoreError>;
    /// Replaces a login if its stored version is still `expected_version` (and it is not
    /// revoked); `record.version` must be `expected_version + 1`. Returns `false` and changes
    /// nothing otherwise. The handle may change (a login's handle is rotated after it
    /// travelled through a URL); the old one then finds nothing.
    async fn update_login(
        &self,
        record: &LoginRecord,
        expected_version: u64,
    ) -> Result<bool, StoreError>;
    /// Atomically redeems an authorization code: if a login holds an unredeemed, unexpired
    /// code with this hash and is not revoked, mark it redeemed, move the login to
    /// `Granted`, bump its version and return it. Exactly one of any number of concurrent
    /// calls with the same code can see [`CodeRedemption::Redeemed`].
    async fn consume_code(
        &self,
        code: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<CodeRedemption, StoreError>;
    /// Atomically rotates a refresh token: if `presented` is the current token of a live,
    /// unexpired family issued to `client` (`None`: a login without a client), make `next`
    /// current and remember `presented` as retired. Of any number of concurrent calls with the
    /// same token exactly one sees [`RefreshRotation::Rotated`]; the others see
    /// [`RefreshRotation::Reused`]. A token of another client's family is
    /// [`RefreshRotation::Unknown`] and changes nothing.
    async fn rotate_refresh(
        &self,
        presented: &SecretHash,
        next: &SecretHash,
        client: Option<&ClientId>,
        now: OffsetDateTime,
    ) -> Result<RefreshRotation, StoreError>;
    /// The login whose refresh family contains `token` (current or retired).
    async fn login_by_refresh(&self, token: &SecretHash)
    -> Result<Option<LoginRecord>, StoreError>;
    /// The login whose single-sign-on session secret hashes to `session`.
    async fn login_by_session(
        &self,
        session: &SecretHash,
    ) -> Result<Option<LoginRecord>, StoreError>;
    /// Marks a login revoked. Returns whether it existed and was not revoked already.
    async fn revoke_login(&self, id: &LoginId) -> Result<bool, StoreError>;
    /// Revokes every login of a user; returns how many were revoked.
    async fn revoke_user_logins(&self, user: &UserId) -> Result<u64, StoreError>;
    /// A user's logins (for session lists), newest first.
    async fn logins_of_user(&self, user: &UserId) -> Result<Vec<LoginRecord>, StoreError>;
    /// Deletes logins whose deadline is before `now`; returns how many.
    async fn purge_expired_logins(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}

/// A namespaced key for [`OnceStore`]: `kind` says what the key guards (a TOTP watermark,
/// an attempt counter, an assertion `jti`), `subject` whose it is.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OnceKey(String);

impl OnceKey {
    /// Builds `kind:subject`.
    pub fn new(kind: &str, subject: &str) -> Self {
        Self(format!("{kind}:{subject}"))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OnceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OnceKey({:?})", self.0)
    }
}

/// The answer of [`OnceStore::take_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Under the limit: the attempt was counted; `count` is the number taken in this window
    /// including this one.
    Allowed {
        /// Attempts in the window so far, this one included.
        count: u32,
    },
    /// At the limit: nothing was counted; try again after `retry_after`.
    Limited {
        /// When the window ends.
        retry_after: OffsetDateTime,
    },
}

/// Takes one attempt under each of `caps` (key, limit) in order, all in the same window.
/// Returns `Some(retry_after)` at the first key already at its limit (keys after it are not
/// counted), `None` when every key had room.
pub async fn take_attempts(
    once: &dyn OnceStore,
    caps: &[(OnceKey, u32)],
    window: Duration,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, StoreError> {
    for (key, limit) in caps {
        if let Attempt::Limited { retry_after } =
            once.take_attempt(key, *limit, window, now).await?
        {
            return Ok(Some(retry_after));
        }
    }
    Ok(None)
}

/// Single-use keys, monotonic watermarks and attempt counters.
#[async_trait]
pub trait OnceStore: Send + Sync {
    /// Claims `key` until `expires_at`. Returns `true` for the one caller that claimed it,
    /// `false` while an unexpired claim exists.
    async fn claim_once(
        &self,
        key: &OnceKey,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Raises the watermark under `key` to `value` if `value` is strictly greater than the
    /// current one (or there is none, or it expired). Returns whether it was raised. Used so a
    /// TOTP time step is accepted once and an older step is refused after a newer one.
    async fn claim_above(
        &self,
        key: &OnceKey,
        value: u64,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Counts an attempt under `key` if fewer than `limit` were taken in the current window;
    /// a new window of length `window` starts at the first attempt after the last one ended.
    async fn take_attempt(
        &self,
        key: &OnceKey,
        limit: u32,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<Attempt, StoreError>;
    /// Forgets the attempts under `key` (after a success).
    async fn clear_attempts(&self, key: &OnceKey) -> Result<(), StoreError>;
    /// Deletes expired claims, watermarks and windows; returns how many.
    async fn purge_expired_once(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}
