//! Credentials stage, second factor: a login whose user has TOTP waits here, and cannot be
//! resumed in any later stage, until a code passes.

use super::{Enrolment, Login, Profile, SecondFactor, advance};
use crate::audit::AuditKind;
use crate::credential::email_code::{CodeFailure, check_code};
use crate::credential::totp::account::{check_totp, confirm_enrolment};
use crate::error::{CredentialError, LoginError, RequestError};
use crate::model::{Amr, TotpState, UserId};

pub use crate::credential::totp::EnrolmentUri;
pub(crate) use crate::credential::totp::account::start_enrolment;

fn login_user(record: &crate::model::LoginRecord) -> Result<UserId, LoginError> {
    record.user.clone().ok_or(RequestError::UnknownLogin.into())
}

impl Login<SecondFactor> {
    /// Checks a TOTP code ("Invalid MFA token" when wrong or replayed; throttled after the
    /// per-login or per-user cap). On success the login moves to [`Profile`].
    pub async fn totp(self, code: &str) -> Result<Login<Profile>, LoginError> {
        let Login { engine, stage } = self;
        stage.stored.check_live(&engine)?;
        let record = &stage.stored.record;
        let user_id = login_user(record)?;
        let user = engine
            .directory()
            .user(&user_id)
            .await?
            .ok_or(RequestError::UnknownLogin)?;
        let TotpState::Enrolled { secret } = &user.totp else {
            return Err(RequestError::NotEnrolled.into());
        };
        let context = || super::record_context(record);
        check_totp(&engine, &user.id, secret, code, Some(&record.id), context)
            .await
            .map_err(|f| f.into_error(CredentialError::InvalidMfaToken))?;
        engine.audit(AuditKind::SecondFactorPassed, context());
        advance(engine, stage.stored, |r| r.amr.push(Amr::Otp)).await
    }
}

impl Login<SecondFactor> {
    /// The second factors the login's user can pass (`totp`, `email`).
    pub async fn methods(&self) -> Result<Vec<&'static str>, LoginError> {
        let user_id = login_user(&self.stage.stored.record)?;
        let user = self
            .engine
            .directory()
            .user(&user_id)
            .await?
            .ok_or(RequestError::UnknownLogin)?;
        Ok(user.second_factor_methods())
    }

    /// Checks a code mailed for this login (`Accounts::send_sign_in_code`): "Invalid MFA
    /// token" when wrong, expired, used, replaced or sent for another login; throttled after
    /// the per-login or per-user cap (the same budget as TOTP). On success the login moves
    /// to [`Profile`].
    pub async fn email_code(self, code: &str) -> Result<Login<Profile>, LoginError> {
        let Login { engine, stage } = self;
        stage.stored.check_live(&engine)?;
        let record = &stage.stored.record;
        let user_id = login_user(record)?;
        let user = engine
            .directory()
            .user(&user_id)
            .await?
            .ok_or(RequestError::UnknownLogin)?;
        if !user.email_mfa {
            return Err(RequestError::NotEnrolled.into());
        }
        let context = || super::record_context(record);
        match check_code(&engine, &user.id, code, Some(&record.id), context).await {
            Ok(()) => {}
            Err(CodeFailure::Wrong) => return Err(CredentialError::InvalidMfaToken.into()),
            Err(CodeFailure::Limited(retry_after)) => {
                return Err(LoginError::Throttled { retry_after });
            }
            Err(CodeFailure::Store(e)) => return Err(e.into()),
        }
        engine.audit(AuditKind::SecondFactorPassed, context());
        advance(engine, stage.stored, |r| r.amr.push(Amr::Otp)).await
    }
}

impl Login<Enrolment> {
    /// Confirms the TOTP secret issued when the password passed with a code from the
    /// authenticator app; the account is enrolled and the login moves to [`Profile`].
    pub async fn enrol(self, code: &str) -> Result<Login<Profile>, LoginError> {
        let Login { engine, stage } = self;
        stage.stored.check_live(&engine)?;
        let record = &stage.stored.record;
        let user_id = login_user(record)?;
        confirm_enrolment(
            &engine,
            &user_id,
            code,
            Some(&record.id),
            CredentialError::InvalidMfaToken,
        )
        .await?;
        engine.audit(AuditKind::SecondFactorPassed, super::record_context(record));
        advance(engine, stage.stored, |r| r.amr.push(Amr::Otp)).await
    }

    /// Issues a fresh secret (the previous URI is void) — for a client that lost the URI,
    /// since a URI is never shown twice.
    pub async fn restart(self) -> Result<(Login<Enrolment>, EnrolmentUri), LoginError> {
        self.stage.stored.check_live(&self.engine)?;
        let record = &self.stage.stored.record;
        let user_id = login_user(record)?;
        let user = self
            .engine
            .directory()
            .user(&user_id)
            .await?
            .ok_or(RequestError::UnknownLogin)?;
        let uri = start_enrolment(&self.engine, &user, Some(&record.id)).await?;
        Ok((self, uri))
    }
}
