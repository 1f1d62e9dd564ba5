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

mod combined;
#[cfg(feature = "test-util")]
pub mod conformance;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod requests;

use std::fmt;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::model::{
    AccessPolicy, AccessPolicyId, ClientApplication, ClientId, DomainConfiguration, LaunchId,
    LoginId, LoginRecord, MembershipId, Project, ProjectId, ProjectMembership, SmartLaunch, User,
    UserId,
};
use crate::secret::SecretHash;

pub use combined::Combined;
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PgOptions, PgStore};
pub use requests::{RequestPresented, RequestRedemption, RequestStore, redeem_request};

/// A store could not do what was asked. The engine maps every variant to a server-side
/// failure: nothing here is the caller's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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

/// Identity data as the engine uses it at run time: it reads users, projects, memberships,
/// clients, domain configurations, access policies and launch contexts, and writes only
/// users (an account a provider sign-in creates, a rehashed password, a TOTP change).
/// Seeding and administration write through [`DirectoryAdmin`].
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
    /// A project by id.
    async fn project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError>;
    /// A client by id.
    async fn client(&self, id: &ClientId) -> Result<Option<ClientApplication>, StoreError>;
    /// The configuration of a (lower-case) email domain.
    async fn domain(&self, domain: &str) -> Result<Option<DomainConfiguration>, StoreError>;
    /// An access policy by id.
    async fn access_policy(&self, id: &AccessPolicyId) -> Result<Option<AccessPolicy>, StoreError>;
    /// A SMART launch context by id.
    async fn launch(&self, id: &LaunchId) -> Result<Option<SmartLaunch>, StoreError>;
}

/// Administrative writes of identity data: what seeding, fixtures and admin tools do. The
/// engine never calls these, so a host may hand it a [`Directory`] that cannot create
/// projects or clients and keep this trait for its own tooling.
#[async_trait]
pub trait DirectoryAdmin: Directory {
    /// Creates or replaces a membership.
    async fn put_membership(&self, membership: &ProjectMembership) -> Result<(), StoreError>;
    /// Creates or replaces a project.
    async fn put_project(&self, project: &Project) -> Result<(), StoreError>;
    /// Creates or replaces a client.
    async fn put_client(&self, client: &ClientApplication) -> Result<(), StoreError>;
    /// Creates or replaces a domain configuration (keyed by its lower-cased domain).
    async fn put_domain(&self, domain: &DomainConfiguration) -> Result<(), StoreError>;
    /// Creates or replaces an access policy.
    async fn put_access_policy(&self, policy: &AccessPolicy) -> Result<(), StoreError>;
    /// Creates or replaces a launch context.
    async fn put_launch(&self, launch: &SmartLaunch) -> Result<(), StoreError>;
}

/// What a store did with a presented single-use secret: the raw answer of
/// [`LoginStore::consume_code`] and [`LoginStore::rotate_refresh`]. A store reports only
/// whether *this call* made the change; what a refusal means (a replay, an expired code, a
/// reused refresh token) is decided once, for every store, by [`CodeRedemption::classify`]
/// and [`RefreshRotation::classify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// This call made the change; the record as stored after it.
    Changed(LoginRecord),
    /// This call changed nothing. `record` is the login that holds the secret, as stored now;
    /// `retired` says the secret is one of its rotated-out refresh tokens (always `false`
    /// for codes).
    Unchanged {
        /// The login holding the secret.
        record: LoginRecord,
        /// The secret is a refresh token the login rotated out.
        retired: bool,
    },
    /// No login holds this secret.
    NotFound,
}

/// What presenting a code meant: [`CodeRedemption::classify`] of what
/// [`LoginStore::consume_code`] did.
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

impl CodeRedemption {
    /// The one reading of a store's answer to `code` at `now`: the store's change is the
    /// redemption; otherwise a code its login holds already redeemed is a replay, one past
    /// its lifetime (or of a login no longer waiting for it) expired, and anything else —
    /// no such code, a revoked login, a login that changed between the store's attempt and
    /// its read — unknown.
    pub fn classify(outcome: Presented, code: &SecretHash, now: OffsetDateTime) -> Self {
        let record = match outcome {
            Presented::Changed(record) => return Self::Redeemed(record),
            Presented::NotFound => return Self::Unknown,
            Presented::Unchanged { record, .. } => record,
        };
        let Some(state) = record.code.as_ref() else {
            return Self::Unknown;
        };
        if !state.hash.ct_eq(code) || record.revoked {
            return Self::Unknown;
        }
        if state.redeemed {
            return Self::Replayed(record);
        }
        if now >= state.expires_at || record.stage != crate::model::StageTag::Authorized {
            return Self::Expired;
        }
        // Redeemable now, but not when the store tried (the login changed in between).
        Self::Unknown
    }
}

/// What presenting a refresh token meant: [`RefreshRotation::classify`] of what
/// [`LoginStore::rotate_refresh`] did.
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

impl RefreshRotation {
    /// The one reading of a store's answer to `presented` (by `client`) at `now`: the store's
    /// change is the rotation; otherwise a token of another client's family, of a revoked
    /// login or of no family is unknown, a rotated-out token is reuse, the current token of
    /// a family past its lifetime expired, and anything else unknown.
    pub fn classify(
        outcome: Presented,
        presented: &SecretHash,
        client: Option<&ClientId>,
        now: OffsetDateTime,
    ) -> Self {
        let (record, retired) = match outcome {
            Presented::Changed(record) => return Self::Rotated(record),
            Presented::NotFound => return Self::Unknown,
            Presented::Unchanged { record, retired } => (record, retired),
        };
        let Some(family) = record.refresh.as_ref() else {
            return Self::Unknown;
        };
        if record.revoked || record.params.client.as_ref() != client {
            return Self::Unknown;
        }
        if retired {
            return Self::Reused(record);
        }
        if !family.current.ct_eq(presented) {
            return Self::Unknown;
        }
        if now >= family.expires_at {
            return Self::Expired;
        }
        // Rotatable now, but not when the store tried (the login changed in between).
        Self::Unknown
    }
}

/// Presents `code` to `store` and classifies the answer ([`CodeRedemption::classify`]).
pub async fn redeem_code(
    store: &dyn LoginStore,
    code: &SecretHash,
    now: OffsetDateTime,
) -> Result<CodeRedemption, StoreError> {
    let outcome = store.consume_code(code, now).await?;
    Ok(CodeRedemption::classify(outcome, code, now))
}

/// Presents refresh token `presented` to `store`, asking to rotate it to `next`, and
/// classifies the answer ([`RefreshRotation::classify`]).
pub async fn rotate_refresh_token(
    store: &dyn LoginStore,
    presented: &SecretHash,
    next: &SecretHash,
    client: Option<&ClientId>,
    now: OffsetDateTime,
) -> Result<RefreshRotation, StoreError> {
    let outcome = store.rotate_refresh(presented, next, client, now).await?;
    Ok(RefreshRotation::classify(outcome, presented, client, now))
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
    /// Atomically redeems an authorization code: if a login in stage `Authorized`, not
    /// revoked, holds an unredeemed code with this hash that is unexpired at `now`, mark it
    /// redeemed, move the login to `Granted`, bump its version and answer
    /// [`Presented::Changed`] with the stored record. Otherwise change nothing and answer
    /// [`Presented::Unchanged`] with the login that holds the hash (`retired: false`), or
    /// [`Presented::NotFound`]. Exactly one of any number of concurrent calls with the same
    /// code can see `Changed`. Callers read the answer with [`CodeRedemption::classify`].
    async fn consume_code(
        &self,
        code: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<Presented, StoreError>;
    /// Atomically rotates a refresh token: if `presented` is the current token of a family,
    /// unexpired at `now`, of a login not revoked whose client is `client` (`None`: a login
    /// without a client), make `next` current, remember `presented` as retired, bump the
    /// version and answer [`Presented::Changed`]. Otherwise change nothing and answer
    /// [`Presented::Unchanged`] with the login holding `presented` as its current
    /// (`retired: false`) or a rotated-out (`retired: true`) token, or
    /// [`Presented::NotFound`]. Of any number of concurrent calls with the same token exactly
    /// one sees `Changed`. Fails with [`StoreError::Conflict`] when `next` is a hash the store
    /// already knows. Callers read the answer with [`RefreshRotation::classify`].
    async fn rotate_refresh(
        &self,
        presented: &SecretHash,
        next: &SecretHash,
        client: Option<&ClientId>,
        now: OffsetDateTime,
    ) -> Result<Presented, StoreError>;
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

/// What a [`OnceKey`] guards: its namespace, so keys of different uses never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum OnceKind {
    /// A client assertion's `jti` (RFC 7523 §3): each is accepted once.
    ClientAssertionJti,
    /// The last TOTP time step accepted for a user (a watermark).
    TotpStep,
    /// TOTP attempts within one login.
    MfaLogin,
    /// TOTP attempts of a user per window.
    MfaUser,
    /// TOTP attempts of a user per day.
    MfaUserDay,
    /// Password attempts from one client address.
    PasswordAddress,
    /// Password attempts on one account from one address.
    PasswordAccountSource,
    /// The back-off slot of an account and address past the failure threshold.
    PasswordSlot,
    /// Failed password attempts on one account, from anywhere.
    PasswordFailures,
    /// External sign-ins started from one client address.
    ExternalStartAddress,
    /// Requests to one group of account routes from one client address.
    RouteAddress,
    /// Mailed sign-in codes sent for one user per window.
    EmailCodeUser,
}

impl OnceKind {
    /// The namespace as stored (the part of the key before the first `:`).
    pub fn as_str(self) -> &'static str {
        match self {
            OnceKind::ClientAssertionJti => "client-assertion-jti",
            OnceKind::TotpStep => "totp-step",
            OnceKind::MfaLogin => "mfa-login",
            OnceKind::MfaUser => "mfa-user",
            OnceKind::MfaUserDay => "mfa-user-day",
            OnceKind::PasswordAddress => "password-address",
            OnceKind::PasswordAccountSource => "password-account-source",
            OnceKind::PasswordSlot => "password-slot",
            OnceKind::PasswordFailures => "password-failures",
            OnceKind::ExternalStartAddress => "external-start-address",
            OnceKind::RouteAddress => "route-address",
            OnceKind::EmailCodeUser => "email-code-user",
        }
    }
}

/// A namespaced key for [`OnceStore`]: `kind` says what the key guards (a TOTP watermark,
/// an attempt counter, an assertion `jti`), `subject` whose it is. Stored as
/// `kind:subject`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OnceKey(String);

impl OnceKey {
    /// Builds `kind:subject`.
    pub fn new(kind: OnceKind, subject: &str) -> Self {
        Self(format!("{}:{subject}", kind.as_str()))
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

/// Single-use keys, monotonic watermarks and attempt counters. The three are separate: one
/// key may hold a claim, a watermark and an attempt window at once, each unaffected by the
/// others. Every method is atomic with respect to every other call on the same key, across all
/// instances sharing the store.
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::model::{AuthMethod, CodeState, LoginParams, RefreshState, StageTag};

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_795_860_000 + seconds).unwrap()
    }

    fn h(name: &str) -> SecretHash {
        SecretHash::of_presented(name)
    }

    fn with_code(redeemed: bool) -> LoginRecord {
        let mut r = LoginRecord::new(
            LoginId::new("l1"),
            h("handle"),
            LoginParams {
                client: Some(ClientId::new("app")),
                ..LoginParams::default()
            },
            AuthMethod::Password,
            at(0),
            at(3600),
        );
        r.stage = if redeemed {
            StageTag::Granted
        } else {
            StageTag::Authorized
        };
        r.code = Some(CodeState {
            hash: h("code"),
            expires_at: at(60),
            redeemed,
        });
        r
    }

    fn unchanged(record: LoginRecord, retired: bool) -> Presented {
        Presented::Unchanged { record, retired }
    }

    #[test]
    fn a_code_is_read_the_same_for_every_store() {
        let classify = |outcome, code: &str, now| CodeRedemption::classify(outcome, &h(code), now);
        let fresh = with_code(false);
        let spent = with_code(true);
        assert_eq!(
            classify(Presented::Changed(spent.clone()), "code", at(1)),
            CodeRedemption::Redeemed(spent.clone())
        );
        assert_eq!(
            classify(Presented::NotFound, "code", at(1)),
            CodeRedemption::Unknown
        );
        assert_eq!(
            classify(unchanged(spent.clone(), false), "code", at(1)),
            CodeRedemption::Replayed(spent.clone())
        );
        // A replay stays a replay after the code's lifetime.
        assert_eq!(
            classify(unchanged(spent.clone(), false), "code", at(999)),
            CodeRedemption::Replayed(spent)
        );
        assert_eq!(
            classify(unchanged(fresh.clone(), false), "code", at(60)),
            CodeRedemption::Expired
        );
        // The login's handle is not its code.
        assert_eq!(
            classify(unchanged(fresh.clone(), false), "handle", at(1)),
            CodeRedemption::Unknown
        );
        let mut revoked = with_code(true);
        revoked.revoked = true;
        assert_eq!(
            classify(unchanged(revoked, false), "code", at(1)),
            CodeRedemption::Unknown
        );
        // Redeemable by the record, but the store did not change it: a login that moved on.
        assert_eq!(
            classify(unchanged(fresh, false), "code", at(1)),
            CodeRedemption::Unknown
        );
    }

    #[test]
    fn a_refresh_token_is_read_the_same_for_every_store() {
        let mut family = with_code(true);
        family.refresh = Some(RefreshState {
            current: h("r2"),
            expires_at: at(1000),
        });
        let app = ClientId::new("app");
        let classify = |outcome, token: &str, client: Option<&ClientId>, now| {
            RefreshRotation::classify(outcome, &h(token), client, now)
        };
        assert_eq!(
            classify(Presented::Changed(family.clone()), "r1", Some(&app), at(1)),
            RefreshRotation::Rotated(family.clone())
        );
        assert_eq!(
            classify(Presented::NotFound, "r1", Some(&app), at(1)),
            RefreshRotation::Unknown
        );
        assert_eq!(
            classify(unchanged(family.clone(), true), "r1", Some(&app), at(1)),
            RefreshRotation::Reused(family.clone())
        );
        // Another client's token is unknown to this client, even a retired one.
        assert_eq!(
            classify(unchanged(family.clone(), true), "r1", None, at(1)),
            RefreshRotation::Unknown
        );
        assert_eq!(
            classify(unchanged(family.clone(), false), "r2", Some(&app), at(1000)),
            RefreshRotation::Expired
        );
        assert_eq!(
            classify(unchanged(family.clone(), false), "r9", Some(&app), at(1)),
            RefreshRotation::Unknown
        );
        let mut revoked = family;
        revoked.revoked = true;
        assert_eq!(
            classify(unchanged(revoked, true), "r1", Some(&app), at(1)),
            RefreshRotation::Unknown
        );
    }
}
