//! The password lifecycle: a reset link asked for, a password set through it, a password
//! changed by its owner.

use std::net::IpAddr;

use super::{AccountError, Accounts, LinkRefusal, PasswordRefusal, ResetOutcome, valid_email};
use crate::audit::AuditKind;
use crate::credential::password::Verification;
use crate::credential::throttle::PasswordAttempt;
use crate::mail::template;
use crate::model::{LoginId, PasswordHash, ProjectId, RequestKind, User, UserId};

/// How often a user update is retried when another writer changed the user in between.
const UPDATE_RETRIES: usize = 5;

impl Accounts<'_> {
    /// Issues a password-reset link for the account with `email` in `project`'s scope
    /// (server-scoped when `None`) and mails it when `send_email`.
    ///
    /// Refuses an invalid email and a domain that signs in through an external provider;
    /// otherwise the outcome must not reach the client ([`ResetOutcome`]): the HTTP route
    /// answers "All OK" first and runs this after, so neither its answer nor its timing
    /// tells whether the account exists. Only the newest link works.
    pub async fn request_password_reset(
        &self,
        email: &str,
        project: Option<&ProjectId>,
        send_email: bool,
        remote: Option<IpAddr>,
    ) -> Result<ResetOutcome, AccountError> {
        let email = self.check_reset_email(email).await?;
        let directory = self.engine.directory();
        let Some(user) = directory.user_by_email(&email, project).await? else {
            return Ok(ResetOutcome::NoAccount);
        };
        let issued = self.issue(RequestKind::Reset, &user, None, None).await?;
        let link = self.link("setpassword", &issued);
        self.audit(AuditKind::PasswordResetRequested, &user.id, remote);
        if send_email {
            let brand = self.brand(&user).await?;
            let minutes = RequestKind::Reset.lifetime().whole_minutes();
            let mail = template::password_reset(&user.email, &brand, link.expose(), minutes);
            self.engine.mailer().send(&mail).await?;
        }
        Ok(ResetOutcome::Issued {
            user: user.id,
            link,
        })
    }

    /// The checks of a reset request that do not depend on any account: a valid email
    /// (normalised) whose domain is not run by an external provider.
    pub async fn check_reset_email(&self, email: &str) -> Result<String, AccountError> {
        let email = valid_email(email).ok_or(AccountError::InvalidEmail)?;
        let domain = email.rsplit('@').next().unwrap_or_default();
        if self
            .engine
            .directory()
            .domain(domain)
            .await?
            .is_some_and(|d| d.identity_provider.is_some())
        {
            return Err(AccountError::ExternalAuth);
        }
        Ok(email)
    }

    /// Sets a password through a reset or invitation link (`id`, `secret`): the link is
    /// checked, the password screened and hashed, then the link consumed atomically — of two
    /// concurrent uses exactly one succeeds — and the hash stored with the address marked
    /// verified. Every login of the user (sessions and refresh-token families) is revoked.
    pub async fn set_password(
        &self,
        id: &str,
        secret: &str,
        password: &str,
        remote: Option<IpAddr>,
    ) -> Result<UserId, AccountError> {
        self.precheck(
            id,
            secret,
            &[RequestKind::Reset, RequestKind::Invite],
            LinkRefusal::WrongKindForPassword,
        )
        .await?;
        let hash = self.new_password_hash(password).await?;
        let request = self.consume(id, secret).await?;
        let user = self
            .update_user(&request.user, |user| {
                user.password_hash = Some(hash.clone());
                user.email_verified = true;
            })
            .await?;
        let ended = self
            .engine
            .login_store()
            .revoke_user_logins(&user.id)
            .await?;
        let kind = if request.kind == RequestKind::Invite {
            AuditKind::InvitationAccepted
        } else {
            AuditKind::PasswordReset {
                sessions_ended: ended,
            }
        };
        self.audit(kind, &user.id, remote);
        Ok(user.id)
    }

    /// Changes the password of `user`, who proves the current one (at argon2 cost, throttled
    /// like a sign-in). Every other login of the user is revoked; `current` (the login the
    /// caller's token came from) stays.
    pub async fn change_password(
        &self,
        user: &UserId,
        current: Option<&LoginId>,
        old_password: &str,
        new_password: &str,
        remote: Option<IpAddr>,
    ) -> Result<(), AccountError> {
        let engine = self.engine;
        let Some(account) = engine.directory().user(user).await? else {
            return Err(AccountError::UserNotFound);
        };
        let Some(stored) = account.password_hash.clone() else {
            return Err(PasswordRefusal::NotSet.into());
        };
        let old = engine
            .config()
            .password_policy
            .for_login(old_password)
            .map_err(|_| PasswordRefusal::Incorrect)?;
        let attempt = PasswordAttempt::new(&account.email, remote);
        let throttle = &engine.config().throttle;
        if let Some(retry_after) = attempt
            .take(engine.once_store(), throttle, engine.now())
            .await?
        {
            return Err(AccountError::Throttled { retry_after });
        }
        match engine.password_hasher().verify(&old, Some(&stored)).await? {
            Verification::Match { .. } => attempt.succeeded(engine.once_store()).await?,
            _ => {
                attempt
                    .failed(engine.once_store(), throttle, engine.now())
                    .await?;
                return Err(PasswordRefusal::Incorrect.into());
            }
        }
        let hash = self.new_password_hash(new_password).await?;
        self.update_user(user, |u| u.password_hash = Some(hash.clone()))
            .await?;
        let logins = engine.login_store();
        let mut ended = 0_u64;
        for login in logins.logins_of_user(user).await? {
            if Some(&login.id) != current
                && !login.revoked
                && logins.revoke_login(&login.id).await?
            {
                ended = ended.saturating_add(1);
            }
        }
        self.audit(
            AuditKind::PasswordChanged {
                sessions_ended: ended,
            },
            user,
            remote,
        );
        Ok(())
    }

    /// A new password through the policy and the breach check, hashed.
    pub async fn new_password_hash(&self, password: &str) -> Result<PasswordHash, AccountError> {
        let engine = self.engine;
        let password = engine.config().password_policy.for_new_password(password)?;
        if engine.breached_passwords().is_breached(&password).await? {
            return Err(PasswordRefusal::Breached.into());
        }
        Ok(engine.password_hasher().hash(&password).await?)
    }

    /// Applies `change` to the stored user by compare-and-swap, retrying when another
    /// writer got there first.
    pub(crate) async fn update_user(
        &self,
        id: &UserId,
        change: impl Fn(&mut User),
    ) -> Result<User, AccountError> {
        let directory = self.engine.directory();
        for _ in 0..UPDATE_RETRIES {
            let Some(mut user) = directory.user(id).await? else {
                return Err(AccountError::UserNotFound);
            };
            let version = user.version;
            change(&mut user);
            if directory.update_user(&user, version).await? {
                user.version = version.saturating_add(1);
                return Ok(user);
            }
        }
        Err(crate::store::StoreError::Conflict(format!(
            "user {id} kept changing; gave up after {UPDATE_RETRIES} attempts"
        ))
        .into())
    }
}
