//! Email as a second factor: codes mailed for a pending login, and the enrolment and removal
//! of the factor, each proven with a mailed code.

use super::{AccountError, Accounts, LinkRefusal};
use crate::audit::AuditKind;
use crate::credential::email_code::{CodeFailure, check_code, code_request};
use crate::engine::AuditContext;
use crate::login::{Login, SecondFactor};
use crate::mail::template;
use crate::model::{LoginId, RequestKind, User, UserId};
use crate::store::{OnceKey, OnceKind, take_attempts};

impl Accounts<'_> {
    /// Mails a sign-in code for `login` (whose user has email as a second factor); only
    /// the newest code works, for this login only, for ten minutes.
    pub async fn send_sign_in_code(&self, login: &Login<SecondFactor>) -> Result<(), AccountError> {
        let record = login.record();
        let user = self.user(record.user.as_ref()).await?;
        if !user.email_mfa {
            return Err(
                crate::error::LoginError::from(crate::error::RequestError::NotEnrolled).into(),
            );
        }
        self.mail_code(&user, Some(&record.id)).await
    }

    /// Mails a code that proves the address, to enrol (or remove) email as a second factor.
    pub async fn send_enrolment_code(&self, user: &UserId) -> Result<(), AccountError> {
        let user = self.user(Some(user)).await?;
        self.mail_code(&user, None).await
    }

    /// Enrols email as a second factor of `user` with a code from
    /// [`send_enrolment_code`](Self::send_enrolment_code); the address counts as verified.
    pub async fn enrol_email_factor(&self, user: &UserId, code: &str) -> Result<(), AccountError> {
        self.check_enrolment_code(user, code).await?;
        self.update_user(user, |u| {
            u.email_mfa = true;
            u.email_verified = true;
        })
        .await?;
        self.audit(
            AuditKind::MfaMethodAdded {
                method: "email".into(),
            },
            user,
            None,
        );
        Ok(())
    }

    /// Removes email as a second factor of `user`, proven with a fresh mailed code.
    pub async fn remove_email_factor(&self, user: &UserId, code: &str) -> Result<(), AccountError> {
        let account = self.user(Some(user)).await?;
        if account.mfa_required && !account.mfa_enrolled() {
            return Err(crate::error::LoginError::from(
                crate::error::RequestError::LastFactorRequired,
            )
            .into());
        }
        self.check_enrolment_code(user, code).await?;
        self.update_user(user, |u| u.email_mfa = false).await?;
        self.audit(
            AuditKind::MfaMethodRemoved {
                method: "email".into(),
            },
            user,
            None,
        );
        Ok(())
    }

    async fn check_enrolment_code(&self, user: &UserId, code: &str) -> Result<(), AccountError> {
        let context = || AuditContext {
            user: Some(user.clone()),
            ..AuditContext::default()
        };
        match check_code(self.engine, user, code, None, context).await {
            Ok(()) => Ok(()),
            Err(CodeFailure::Wrong) => Err(LinkRefusal::InvalidCode.into()),
            Err(CodeFailure::Limited(retry_after)) => Err(AccountError::Throttled { retry_after }),
            Err(CodeFailure::Store(e)) => Err(e.into()),
        }
    }

    async fn user(&self, id: Option<&UserId>) -> Result<User, AccountError> {
        let Some(id) = id else {
            return Err(AccountError::UserNotFound);
        };
        self.engine
            .directory()
            .user(id)
            .await?
            .ok_or(AccountError::UserNotFound)
    }

    async fn mail_code(&self, user: &User, login: Option<&LoginId>) -> Result<(), AccountError> {
        let engine = self.engine;
        let now = engine.now();
        let cap = [(
            OnceKey::new(OnceKind::EmailCodeUser, user.id.as_str()),
            engine.config().accounts.codes_per_user,
        )];
        if let Some(retry_after) =
            take_attempts(engine.once_store(), &cap, time::Duration::minutes(15), now).await?
        {
            return Err(AccountError::Throttled { retry_after });
        }
        let (request, code) = code_request(engine.random(), &user.id, login, now)?;
        engine.request_store().create_request(&request).await?;
        let brand = self.brand(user).await?;
        let minutes = RequestKind::EmailCode.lifetime().whole_minutes();
        let mail = template::sign_in_code(&user.email, &brand, &code, minutes);
        engine.mailer().send(&mail).await?;
        Ok(())
    }
}
