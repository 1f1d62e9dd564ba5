//! Password attempt throttling, counted in the [`OnceStore`] so it holds across instances.
//!
//! Three limits, checked before any hashing (a refused attempt costs the server nothing):
//!
//! 1. **Per client address**, all accounts together ([`ThrottleConfig::attempts_per_address`],
//!    on by default, sized like Medplum's auth limit): bounds what one source can make the
//!    store keep, whatever emails it tries.
//! 2. **Per account and address** ([`ThrottleConfig::attempts_per_account_source`]): one
//!    source guessing one account runs out of attempts — without touching the owner, who
//!    signs in from another address. (A limit per account alone lets anyone lock the owner
//!    out by failing a hundred times.)
//! 3. **Per account, exponential back-off**: once an account has
//!    [`ThrottleConfig::backoff_after`] failures since its last success (from anywhere),
//!    each further failure makes *the address that failed* wait `base × 2ⁿ` (at most
//!    [`ThrottleConfig::backoff_max`]) before its next attempt on that account. Each address
//!    has its own slot, so an attacker polling for the next free slot never takes the
//!    owner's: the owner's first attempt from a new address is never delayed, while a
//!    distributed guesser slows down exponentially per address.
//!
//! The account is the normalised email (project scopes share it: a user with memberships in
//! several projects is one bucket), hashed, and counted whether or not the account exists, so
//! throttling reveals nothing. A success clears the account's failures and its address's
//! attempts. Windows end by themselves: nothing here is a permanent lockout.

use std::net::IpAddr;

use time::{Duration, OffsetDateTime};

use crate::config::ThrottleConfig;
use crate::secret::SecretHash;
use crate::store::{OnceKey, OnceKind, OnceStore, StoreError, take_attempts};

/// How long an account's failures are remembered since the last one (the back-off memory).
const FAILURE_MEMORY: Duration = Duration::hours(24);

/// The throttle keys of one password attempt.
pub(crate) struct PasswordAttempt {
    address: OnceKey,
    account_source: OnceKey,
    slot: OnceKey,
    failures: OnceKey,
}

impl PasswordAttempt {
    /// The keys for `email` (normalised) tried from `source` (`None`: an unknown address,
    /// which is one bucket).
    pub(crate) fn new(email: &str, source: Option<IpAddr>) -> Self {
        let account = SecretHash::of(email.as_bytes()).to_base64();
        let source = source.map(|a| a.to_string()).unwrap_or_default();
        Self {
            address: OnceKey::new(OnceKind::PasswordAddress, &source),
            account_source: OnceKey::new(
                OnceKind::PasswordAccountSource,
                &format!("{account}|{source}"),
            ),
            slot: OnceKey::new(OnceKind::PasswordSlot, &format!("{account}|{source}")),
            failures: OnceKey::new(OnceKind::PasswordFailures, &account),
        }
    }

    /// Takes the attempt, or says when to come back. Nothing is counted for an account when
    /// the address is over its limit.
    pub(crate) async fn take(
        &self,
        once: &dyn OnceStore,
        config: &ThrottleConfig,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        if let Some(limit) = config.attempts_per_address
            && let Some(retry_after) = take_attempts(
                once,
                &[(self.address.clone(), limit)],
                config.address_window,
                now,
            )
            .await?
        {
            return Ok(Some(retry_after));
        }
        let caps = [(
            self.account_source.clone(),
            config.attempts_per_account_source,
        )];
        if let Some(retry_after) = take_attempts(once, &caps, config.window, now).await? {
            return Ok(Some(retry_after));
        }
        // This address's back-off slot on this account: closed while the claim the last
        // failure from here made is unexpired. The check claims nothing that outlives `now`,
        // so attempts at the same instant (or before any back-off) all pass; a burst at the
        // moment a slot opens is bounded by the per-account-and-address limit above.
        if !once.claim_once(&self.slot, now, now).await? {
            return Ok(Some(now.saturating_add(config.backoff_max)));
        }
        Ok(None)
    }

    /// Records a failed attempt: one more failure for the account, and — past the free
    /// failures — a back-off on this address's slot.
    pub(crate) async fn failed(
        &self,
        once: &dyn OnceStore,
        config: &ThrottleConfig,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let count = match once
            .take_attempt(&self.failures, u32::MAX, FAILURE_MEMORY, now)
            .await?
        {
            crate::store::Attempt::Allowed { count } => count,
            crate::store::Attempt::Limited { .. } => u32::MAX,
        };
        let delay = backoff(config, count);
        if delay > Duration::ZERO {
            // Closed until then (a parallel failure may have closed it already: either way).
            once.claim_once(&self.slot, now.saturating_add(delay), now)
                .await?;
        }
        Ok(())
    }

    /// Records a success: the account's failures and this address's attempts are forgotten.
    pub(crate) async fn succeeded(&self, once: &dyn OnceStore) -> Result<(), StoreError> {
        once.clear_attempts(&self.failures).await?;
        once.clear_attempts(&self.account_source).await
    }
}

/// The attempt caps of a second factor (TOTP or a mailed code), one budget for both: per
/// login, per user per window, and per user per day.
pub(crate) struct FactorAttempt {
    caps: Vec<(OnceKey, u32)>,
    daily: [(OnceKey, u32); 1],
}

impl FactorAttempt {
    /// The keys of an attempt by `user` within `login` (`None`: outside a login — an
    /// enrolment, a removal).
    pub(crate) fn new(
        config: &crate::config::TotpConfig,
        user: &crate::model::UserId,
        login: Option<&crate::model::LoginId>,
    ) -> Self {
        let mut caps = vec![(
            OnceKey::new(OnceKind::MfaUser, user.as_str()),
            config.attempts_per_user,
        )];
        if let Some(login) = login {
            caps.insert(
                0,
                (
                    OnceKey::new(OnceKind::MfaLogin, login.as_str()),
                    config.attempts_per_login,
                ),
            );
        }
        let daily = [(
            OnceKey::new(OnceKind::MfaUserDay, user.as_str()),
            config.attempts_per_user_per_day,
        )];
        Self { caps, daily }
    }

    /// Takes the attempt, or says when to come back.
    pub(crate) async fn take(
        &self,
        once: &dyn OnceStore,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, StoreError> {
        match take_attempts(once, &self.caps, window, now).await? {
            Some(retry_after) => Ok(Some(retry_after)),
            None => take_attempts(once, &self.daily, Duration::days(1), now).await,
        }
    }

    /// Forgets the attempts after a success.
    pub(crate) async fn succeeded(&self, once: &dyn OnceStore) -> Result<(), StoreError> {
        for (key, _) in self.caps.iter().chain(&self.daily) {
            once.clear_attempts(key).await?;
        }
        Ok(())
    }
}

/// A group of account routes, each with its own per-address request limit
/// ([`ThrottleConfig::requests_per_address_per_group`]), so a flood of one kind (reset
/// requests, say) cannot starve the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RouteGroup {
    /// Sign-in and password checks: `/auth/method`, `/auth/login`, `/auth/changepassword`.
    SignIn,
    /// Self-registration: `/auth/newuser`, `/auth/newproject`, `/auth/newpatient`.
    Registration,
    /// Password reset and mailed links: `/auth/resetpassword`, `/auth/setpassword`,
    /// `/auth/verifyemail`.
    Reset,
    /// Second factors: `/auth/mfa/*`.
    Mfa,
}

impl RouteGroup {
    /// The group's name in throttle keys.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteGroup::SignIn => "login",
            RouteGroup::Registration => "registration",
            RouteGroup::Reset => "reset",
            RouteGroup::Mfa => "mfa",
        }
    }
}

/// Counts one request of `group` from `source` (`None`: an unknown address, one bucket) in
/// the [`OnceStore`], so the limit holds across instances. Returns when to come back once the
/// address is over the limit; `None` when it may go on (or the limit is off).
pub async fn take_route_request(
    once: &dyn OnceStore,
    config: &ThrottleConfig,
    group: RouteGroup,
    source: Option<IpAddr>,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, StoreError> {
    let Some(limit) = config.requests_per_address_per_group else {
        return Ok(None);
    };
    let source = source.map(|a| a.to_string()).unwrap_or_default();
    let key = OnceKey::new(
        OnceKind::RouteAddress,
        &format!("{}|{source}", group.as_str()),
    );
    take_attempts(once, &[(key, limit)], config.address_window, now).await
}

/// The wait after the `failures`-th failure since the account's last success.
fn backoff(config: &ThrottleConfig, failures: u32) -> Duration {
    let Some(extra) = failures
        .checked_sub(config.backoff_after)
        .and_then(|n| n.checked_sub(1))
    else {
        return Duration::ZERO;
    };
    let factor = 1_i32.checked_shl(extra.min(30)).unwrap_or(i32::MAX);
    config
        .backoff_base
        .checked_mul(factor)
        .unwrap_or(config.backoff_max)
        .min(config.backoff_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_after_the_free_failures_and_is_capped() {
        let config = ThrottleConfig::default();
        assert_eq!(backoff(&config, 0), Duration::ZERO);
        assert_eq!(backoff(&config, config.backoff_after), Duration::ZERO);
        assert_eq!(
            backoff(&config, config.backoff_after + 1),
            config.backoff_base
        );
        assert_eq!(
            backoff(&config, config.backoff_after + 4),
            config.backoff_base * 8
        );
        assert_eq!(backoff(&config, u32::MAX), config.backoff_max);
    }
}
