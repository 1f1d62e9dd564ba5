//! Mailed one-time codes as a second factor: six digits, a [`SecurityRequest`] of kind
//! [`RequestKind::EmailCode`] (ten minutes, newest only, consumed once), bound to the login
//! it was sent for, and attempt-capped with the same budget as TOTP (per login, per user per
//! window, per user per day).
//!
//! A six-digit code is guessable offline from its hash, so what protects it is its short
//! life, the attempt caps, and the binding to one login; the hash is salted with the
//! request's random id so equal codes never hash alike.

use time::OffsetDateTime;

use crate::audit::{AuditKind, SecondFactorFailure};
use crate::credential::throttle::FactorAttempt;
use crate::engine::{AuditContext, Engine};
use crate::model::{LoginId, RequestId, RequestKind, SecurityRequest, UserId};
use crate::random::{RandomError, SecureRandom};
use crate::secret::SecretHash;
use crate::store::{RequestRedemption, StoreError, redeem_request};

/// Digits in a code.
pub const CODE_DIGITS: usize = 6;

/// A fresh code: six decimal digits, uniform (rejection sampling on 32 random bits).
pub(crate) fn generate_code(rng: &dyn SecureRandom) -> Result<String, RandomError> {
    // The largest multiple of 10⁶ that fits in u32: values at or above it are redrawn.
    const LIMIT: u32 = 4_294_000_000;
    loop {
        let mut bytes = [0u8; 4];
        rng.fill(&mut bytes)?;
        let n = u32::from_be_bytes(bytes);
        if n < LIMIT {
            return Ok(format!("{:06}", n % 1_000_000));
        }
    }
}

/// The stored hash of `code` for request `id`.
pub(crate) fn code_hash(id: &RequestId, code: &str) -> SecretHash {
    SecretHash::of(format!("{id}:{}", code.trim()).as_bytes())
}

/// A code request for `user`, bound to `login` (or to an enrolment when `None`).
pub(crate) fn code_request(
    rng: &dyn SecureRandom,
    user: &UserId,
    login: Option<&LoginId>,
    now: OffsetDateTime,
) -> Result<(SecurityRequest, String), RandomError> {
    let id = RequestId::generate(rng)?;
    let code = generate_code(rng)?;
    let mut request = SecurityRequest::new(
        id.clone(),
        RequestKind::EmailCode,
        user.clone(),
        code_hash(&id, &code),
        now,
    );
    request.login = login.cloned();
    Ok((request, code))
}

/// Why a mailed code did not pass.
#[derive(Debug)]
pub(crate) enum CodeFailure {
    /// Wrong, expired, used, replaced, or sent for another login.
    Wrong,
    /// Over an attempt cap until then.
    Limited(OffsetDateTime),
    /// The store failed.
    Store(StoreError),
}

impl From<StoreError> for CodeFailure {
    fn from(e: StoreError) -> Self {
        CodeFailure::Store(e)
    }
}

/// Checks `code` for `user` as sent for `login` (`None`: an enrolment or removal code):
/// caps first, then one atomic consume of the newest code request. Audits the outcome.
pub(crate) async fn check_code(
    engine: &Engine,
    user: &UserId,
    code: &str,
    login: Option<&LoginId>,
    context: impl Fn() -> AuditContext,
) -> Result<(), CodeFailure> {
    let config = &engine.config().totp;
    let once = engine.once_store();
    let now = engine.now();
    let attempt = FactorAttempt::new(config, user, login);
    let limited = attempt.take(once, config.attempts_window, now).await?;
    if let Some(retry_after) = limited {
        engine.audit(
            AuditKind::SecondFactorRejected {
                reason: SecondFactorFailure::TooManyAttempts,
            },
            context(),
        );
        return Err(CodeFailure::Limited(retry_after));
    }
    let wrong = || {
        engine.audit(
            AuditKind::SecondFactorRejected {
                reason: SecondFactorFailure::WrongCode,
            },
            context(),
        );
        CodeFailure::Wrong
    };
    let store = engine.request_store();
    let Some(request) = store.latest_request(user, RequestKind::EmailCode).await? else {
        return Err(wrong());
    };
    if request.login.as_ref() != login {
        return Err(wrong());
    }
    let presented = code_hash(&request.id, code);
    match redeem_request(store, &request.id, &presented, now).await? {
        RequestRedemption::Redeemed(_) => {
            attempt.succeeded(once).await?;
            Ok(())
        }
        _ => Err(wrong()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    struct Counter(std::sync::atomic::AtomicU32);
    impl SecureRandom for Counter {
        fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // First draw above the limit (redrawn), then 1234567.
            let value: u32 = if n == 0 { u32::MAX } else { 1_234_567 };
            for (i, b) in dest.iter_mut().enumerate() {
                *b = value.to_be_bytes().get(i % 4).copied().unwrap_or(0);
            }
            Ok(())
        }
    }

    #[test]
    fn codes_are_six_digits_and_unbiased_draws_are_redrawn() {
        let rng = Counter(std::sync::atomic::AtomicU32::new(0));
        assert_eq!(generate_code(&rng).unwrap(), "234567");
        let os = crate::random::OsRandom;
        for _ in 0..100 {
            let code = generate_code(&os).unwrap();
            assert_eq!(code.len(), CODE_DIGITS);
            assert!(code.chars().all(|c| c.is_ascii_digit()));
        }
        let id = RequestId::new("r1");
        assert_eq!(code_hash(&id, " 123456 "), code_hash(&id, "123456"));
        assert_ne!(
            code_hash(&id, "123456"),
            code_hash(&RequestId::new("r2"), "123456")
        );
    }
}
