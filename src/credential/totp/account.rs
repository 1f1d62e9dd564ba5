//! The TOTP second factor on an account: status, enrolment, confirmation, removal — and the
//! one verification routine every TOTP check goes through (sign-in and administration).
//!
//! A code is checked in this order: attempt caps (per login and per user, counted in the store
//! before the code is looked at, so parallel guesses cannot exceed them), the RFC 6238 window,
//! then the replay guard — the user's last accepted time step is a watermark in the store, and
//! a step is accepted only if it is above it. So a code works once, and a code for an older
//! step is refused after a newer one passed (RFC 6238 §5.2, NIST 800-63B §5.1.4.2), across
//! every server instance sharing the store.

use std::fmt;

use time::OffsetDateTime;

use super as totp;
use crate::audit::{AuditKind, SecondFactorFailure};
use crate::credential::throttle::FactorAttempt;
use crate::engine::{AuditContext, Engine};
use crate::error::{CredentialError, LoginError, RequestError};
use crate::model::{LoginId, TotpSecret, TotpState, User, UserId};
use crate::store::{OnceKey, OnceKind};

/// TOTP step length in seconds (RFC 6238 default).
const STEP_SECONDS: i64 = 30;

/// An `otpauth://totp/...` URI carrying a fresh TOTP secret. It is shown once, when the
/// enrolment starts, and never again. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrolmentUri(String);

impl EnrolmentUri {
    /// The URI, for the authenticator app.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URI as a QR code, a `data:image/png;base64,…` URL (Medplum's `enrollQrCode`). It
    /// carries the secret too: show it once, never log it.
    pub fn qr_code_data_url(&self) -> Result<String, crate::credential::qr::QrError> {
        crate::credential::qr::png_data_url(&self.0)
    }
}

impl fmt::Debug for EnrolmentUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnrolmentUri(<redacted>)")
    }
}

/// Whether an account has the second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MfaStatus {
    /// A TOTP factor is confirmed.
    pub enrolled: bool,
    /// An enrolment was started and waits for a code.
    pub pending: bool,
    /// The account must enrol before a password login completes.
    pub required: bool,
    /// Mailed codes are a second factor of the account.
    pub email: bool,
}

/// Why a TOTP check failed.
pub(crate) enum TotpFailure {
    Wrong,
    Limited(OffsetDateTime),
    Error(LoginError),
}

impl From<crate::store::StoreError> for TotpFailure {
    fn from(e: crate::store::StoreError) -> Self {
        TotpFailure::Error(e.into())
    }
}

impl TotpFailure {
    /// The caller-facing error, with the wrong-code variant chosen by the operation.
    pub(crate) fn into_error(self, wrong: CredentialError) -> LoginError {
        match self {
            TotpFailure::Wrong => wrong.into(),
            TotpFailure::Limited(retry_after) => LoginError::Throttled { retry_after },
            TotpFailure::Error(e) => e,
        }
    }
}

/// Checks `code` against `secret` for `user`: caps, window, replay guard. Audits the outcome.
pub(crate) async fn check_totp(
    engine: &Engine,
    user: &UserId,
    secret: &TotpSecret,
    code: &str,
    login: Option<&LoginId>,
    context: impl Fn() -> AuditContext,
) -> Result<(), TotpFailure> {
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
        return Err(TotpFailure::Limited(retry_after));
    }

    let unix = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    let step =
        totp::verify(secret, code, unix, config.skew).map_err(|e| TotpFailure::Error(e.into()))?;
    let Some(step) = step else {
        engine.audit(
            AuditKind::SecondFactorRejected {
                reason: SecondFactorFailure::WrongCode,
            },
            context(),
        );
        return Err(TotpFailure::Wrong);
    };

    // The watermark only matters while the step can still be inside a window.
    let last_valid = i64::try_from(step)
        .unwrap_or(i64::MAX)
        .saturating_add(i64::from(config.skew) + 1)
        .saturating_mul(STEP_SECONDS);
    let keep_until = OffsetDateTime::from_unix_timestamp(last_valid)
        .unwrap_or(now)
        .max(now + time::Duration::seconds(STEP_SECONDS));
    let step_key = OnceKey::new(OnceKind::TotpStep, user.as_str());
    if !once.claim_above(&step_key, step, keep_until, now).await? {
        engine.audit(
            AuditKind::SecondFactorRejected {
                reason: SecondFactorFailure::Replayed,
            },
            context(),
        );
        return Err(TotpFailure::Wrong);
    }
    attempt.succeeded(once).await?;
    Ok(())
}

/// Issues a fresh pending TOTP secret for `user` (replacing any earlier pending one) and
/// returns its URI. Refuses users already enrolled.
pub(crate) async fn start_enrolment(
    engine: &Engine,
    user: &User,
    login: Option<&LoginId>,
) -> Result<EnrolmentUri, LoginError> {
    if user.mfa_enrolled() {
        return Err(RequestError::AlreadyEnrolled.into());
    }
    let secret = totp::generate_secret(engine.random())?;
    let uri = totp::otpauth_uri(&secret, &engine.config().totp.issuer, &user.email)?;
    let mut updated = user.clone();
    updated.totp = TotpState::Pending { secret };
    if !engine
        .directory()
        .update_user(&updated, user.version)
        .await?
    {
        return Err(RequestError::Conflict.into());
    }
    engine.audit(
        AuditKind::MfaEnrolmentStarted,
        AuditContext {
            login: login.cloned(),
            user: Some(user.id.clone()),
            ..AuditContext::default()
        },
    );
    Ok(EnrolmentUri(uri))
}

/// Confirms a pending secret with a code: the account is enrolled from then on.
pub(crate) async fn confirm_enrolment(
    engine: &Engine,
    user_id: &UserId,
    code: &str,
    login: Option<&LoginId>,
    wrong: CredentialError,
) -> Result<User, LoginError> {
    let user = load_user(engine, user_id).await?;
    let secret = match &user.totp {
        TotpState::Enrolled { .. } => return Err(RequestError::AlreadyEnrolled.into()),
        TotpState::None => return Err(RequestError::SecretNotFound.into()),
        TotpState::Pending { secret } => secret.clone(),
    };
    let context = || AuditContext {
        login: login.cloned(),
        user: Some(user.id.clone()),
        ..AuditContext::default()
    };
    check_totp(engine, &user.id, &secret, code, login, context)
        .await
        .map_err(|f| f.into_error(wrong))?;
    let mut updated = user.clone();
    updated.totp = TotpState::Enrolled { secret };
    if !engine
        .directory()
        .update_user(&updated, user.version)
        .await?
    {
        return Err(RequestError::Conflict.into());
    }
    updated.version = user.version.saturating_add(1);
    engine.audit(AuditKind::MfaEnrolled, context());
    Ok(updated)
}

async fn load_user(engine: &Engine, id: &UserId) -> Result<User, LoginError> {
    Ok(engine
        .directory()
        .user(id)
        .await?
        .ok_or(RequestError::UnknownUser)?)
}

/// TOTP administration of an account ([`Engine::mfa`]): status, enrolment by a signed-in
/// user, confirmation, removal. Each check of a code goes through the same caps and replay
/// guard as a sign-in.
pub struct Mfa<'a> {
    engine: &'a Engine,
}

impl<'a> Mfa<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Self { engine }
    }

    /// The second-factor status of an account (Medplum's `/auth/mfa/status`, without ever
    /// re-disclosing a secret).
    pub async fn status(&self, user: &UserId) -> Result<MfaStatus, LoginError> {
        let user = load_user(self.engine, user).await?;
        Ok(MfaStatus {
            enrolled: user.mfa_enrolled(),
            pending: matches!(user.totp, TotpState::Pending { .. }),
            required: user.mfa_required,
            email: user.email_mfa,
        })
    }

    /// Starts TOTP enrolment for a signed-in user: a fresh secret, returned once as an
    /// `otpauth://` URI. "Already enrolled" for a user with a confirmed factor.
    pub async fn begin_enrolment(&self, user: &UserId) -> Result<EnrolmentUri, LoginError> {
        let user = load_user(self.engine, user).await?;
        start_enrolment(self.engine, &user, None).await
    }

    /// Confirms the pending secret with a code from the authenticator ("Invalid token" when
    /// it does not match).
    pub async fn confirm_enrolment(&self, user: &UserId, code: &str) -> Result<(), LoginError> {
        confirm_enrolment(self.engine, user, code, None, CredentialError::InvalidToken)
            .await
            .map(|_| ())
    }

    /// Removes the TOTP factor. Needs a valid code, so a stolen session alone cannot
    /// remove it.
    pub async fn disable(&self, user: &UserId, code: &str) -> Result<(), LoginError> {
        let engine = self.engine;
        let user = load_user(engine, user).await?;
        let TotpState::Enrolled { secret } = &user.totp else {
            return Err(RequestError::NotEnrolled.into());
        };
        if user.mfa_required && !user.email_mfa {
            return Err(RequestError::LastFactorRequired.into());
        }
        let context = || AuditContext {
            user: Some(user.id.clone()),
            ..AuditContext::default()
        };
        check_totp(engine, &user.id, secret, code, None, context)
            .await
            .map_err(|f| f.into_error(CredentialError::InvalidToken))?;
        let mut updated = user.clone();
        updated.totp = TotpState::None;
        if !engine
            .directory()
            .update_user(&updated, user.version)
            .await?
        {
            return Err(RequestError::Conflict.into());
        }
        engine.audit(AuditKind::MfaDisabled, context());
        Ok(())
    }
}
