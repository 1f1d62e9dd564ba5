//! Credentials stage, password method: argon2id verification with one answer and one cost
//! for every failure, throttling per account, transparent rehash, and the branch to the
//! second factor.

use super::second_factor::{EnrolmentUri, start_enrolment};
use super::{Enrolment, Login, Profile, SecondFactor, Stage, create, new_handle, sealed};
use crate::audit::{AuditKind, SignInFailure};
use crate::credential::password::Verification;
use crate::credential::throttle::PasswordAttempt;
use crate::error::{CredentialError, LoginError};
use crate::model::{Amr, AuthMethod, LoginId, LoginParams, LoginRecord, User, UserId};
use crate::secret::SecretHash;

/// Credentials stage (password): the email is known and signs in with a password. Not
/// stored: the login is stored once the password passes.
#[derive(Debug)]
pub struct Credentials {
    pub(super) params: LoginParams,
    pub(super) email: String,
}
impl sealed::Sealed for Credentials {}
impl Stage for Credentials {}

/// Where a login stands after the password passed.
#[derive(Debug)]
pub enum Passed {
    /// The user has TOTP: a code must pass before anything else.
    SecondFactor(Login<SecondFactor>),
    /// The user must enrol TOTP (`mfaRequired`): show `uri` once, then confirm a code.
    Enrolment(Login<Enrolment>, EnrolmentUri),
    /// No second factor: choose a membership.
    Profile(Login<Profile>),
}

impl Login<Credentials> {
    /// The normalised email.
    pub fn email(&self) -> &str {
        &self.stage.email
    }

    /// Checks the password. Unknown email, wrong password, password-less account and an
    /// account with no eligible membership all answer
    /// [`CredentialError::InvalidCredentials`] ("Email or password is invalid") after the
    /// same work: one argon2 verification (a dummy one when there is no hash) and the same
    /// store lookups. Attempts are throttled per account through the store.
    pub async fn password(self, password: &str) -> Result<Passed, LoginError> {
        let Login { engine, stage } = self;
        let Credentials { params, email } = stage;
        let password = engine.config().password_policy.for_login(password)?;
        let context = || super::audit_context(&params, None, None);

        // Throttle before any expensive work, by account whether or not it exists.
        let attempt = PasswordAttempt::new(&email, params.remote_address);
        let throttle = &engine.config().throttle;
        if let Some(retry_after) = attempt
            .take(engine.once_store(), throttle, engine.now())
            .await?
        {
            engine.audit(
                AuditKind::PasswordRejected {
                    reason: SignInFailure::Throttled,
                },
                context(),
            );
            return Err(LoginError::Throttled { retry_after });
        }

        // Find the user: project-scoped first when the login names a project, then
        // server-scoped.
        let directory = engine.directory();
        let mut user = match &params.project {
            Some(project) => directory.user_by_email(&email, Some(project)).await?,
            None => None,
        };
        if user.is_none() {
            user = directory.user_by_email(&email, None).await?;
        }

        let verification = engine
            .password_hasher()
            .verify(
                &password,
                user.as_ref().and_then(|u| u.password_hash.as_ref()),
            )
            .await?;

        // Same store work whether or not the user exists: look up memberships either way.
        let lookup_id = match &user {
            Some(u) => u.id.clone(),
            None => UserId::generate(engine.random())?,
        };
        let memberships = directory.memberships_of(&lookup_id).await?;

        let failure = match (&user, &verification) {
            (None, _) => Some(SignInFailure::UnknownUser),
            (Some(u), _) if u.password_hash.is_none() => Some(SignInFailure::NoPassword),
            (Some(_), Verification::Refused(_)) => Some(SignInFailure::StoredHashRejected),
            (Some(_), Verification::Mismatch) => Some(SignInFailure::WrongPassword),
            (Some(u), Verification::Match { .. }) => {
                if params.eligible(u, &memberships).next().is_none() {
                    Some(SignInFailure::NoEligibleMembership)
                } else {
                    None
                }
            }
        };
        let (Some(mut user), None) = (user, failure) else {
            attempt
                .failed(engine.once_store(), throttle, engine.now())
                .await?;
            engine.audit(
                AuditKind::PasswordRejected {
                    reason: failure.unwrap_or(SignInFailure::WrongPassword),
                },
                context(),
            );
            return Err(CredentialError::InvalidCredentials.into());
        };

        attempt.succeeded(engine.once_store()).await?;

        if matches!(verification, Verification::Match { needs_rehash: true })
            && let Ok(hash) = engine.password_hasher().hash(&password).await
        {
            let mut upgraded = user.clone();
            upgraded.password_hash = Some(hash);
            // Best effort: a concurrent change of the user wins and keeps its hash.
            if directory.update_user(&upgraded, user.version).await? {
                upgraded.version = user.version.saturating_add(1);
                user = upgraded;
                engine.audit(
                    AuditKind::PasswordRehashed,
                    super::audit_context(&params, None, Some(&user.id)),
                );
            }
        }

        let record = new_record(&engine, params, AuthMethod::Password, &user, Amr::Pwd)?;
        engine.audit(AuditKind::PasswordAccepted, super::record_context(&record));
        create_authenticated(engine, record, &user).await
    }
}

impl Login<Credentials> {
    /// The login of an account created in this request with the password its owner just
    /// chose (`/auth/newuser`): the password is not verified a second time (it was hashed a
    /// moment ago), and the account needs no membership yet — the login waits in the
    /// Profile stage for `/auth/newproject` or `/auth/newpatient` to create one. `user` must
    /// be the account of this login's email.
    pub(crate) async fn registered(self, user: &User) -> Result<Passed, LoginError> {
        let Login { engine, stage } = self;
        if user.email != stage.email {
            return Err(crate::error::RequestError::InvalidEmail.into());
        }
        let record = new_record(&engine, stage.params, AuthMethod::Password, user, Amr::Pwd)?;
        engine.audit(AuditKind::PasswordAccepted, super::record_context(&record));
        create_authenticated(engine, record, user).await
    }
}

/// A login record for `user`, who has just passed a first factor (`amr`) by `method`.
pub(crate) fn new_record(
    engine: &crate::engine::Engine,
    params: LoginParams,
    method: AuthMethod,
    user: &User,
    amr: Amr,
) -> Result<LoginRecord, LoginError> {
    let now = engine.now();
    let mut record = LoginRecord::new(
        LoginId::generate(engine.random())?,
        // Replaced by the handle `create` draws.
        SecretHash::of(b""),
        params,
        method,
        now,
        now.saturating_add(engine.config().login_lifetime),
    );
    record.user = Some(user.id.clone());
    record.auth_time = Some(now);
    record.amr = vec![amr];
    Ok(record)
}

/// The stage after a first factor, whichever it was (password, Google, an external
/// provider): the local second factor when the account has one — or must enrol one — else the
/// Profile stage. A federated sign-in does not skip the account's own TOTP: the provider's
/// MFA is not ours to trust.
enum AfterFirstFactor {
    SecondFactor,
    Enrolment,
    Profile,
}

fn after_first_factor(user: &User) -> AfterFirstFactor {
    if user.has_second_factor() {
        AfterFirstFactor::SecondFactor
    } else if user.mfa_required {
        AfterFirstFactor::Enrolment
    } else {
        AfterFirstFactor::Profile
    }
}

/// Stores a login whose first factor passed, in the stage it continues in.
pub(crate) async fn create_authenticated(
    engine: crate::engine::Engine,
    record: LoginRecord,
    user: &User,
) -> Result<Passed, LoginError> {
    let handle = new_handle(&engine)?;
    Ok(match after_first_factor(user) {
        AfterFirstFactor::SecondFactor => {
            Passed::SecondFactor(create(engine, record, handle).await?)
        }
        AfterFirstFactor::Enrolment => {
            let uri = start_enrolment(&engine, user, Some(&record.id)).await?;
            Passed::Enrolment(create(engine, record, handle).await?, uri)
        }
        AfterFirstFactor::Profile => Passed::Profile(create(engine, record, handle).await?),
    })
}

/// Moves a stored login whose first factor just passed (an external provider's callback) to
/// the stage it continues in, applying `change` to its record.
pub(crate) async fn advance_authenticated(
    engine: crate::engine::Engine,
    stored: super::Stored,
    user: &User,
    change: impl FnOnce(&mut LoginRecord),
) -> Result<Passed, LoginError> {
    Ok(match after_first_factor(user) {
        AfterFirstFactor::SecondFactor => {
            Passed::SecondFactor(super::advance(engine, stored, change).await?)
        }
        AfterFirstFactor::Enrolment => {
            let id = stored.record.id.clone();
            let login: Login<Enrolment> = super::advance(engine.clone(), stored, change).await?;
            let uri = start_enrolment(&engine, user, Some(&id)).await?;
            Passed::Enrolment(login, uri)
        }
        AfterFirstFactor::Profile => Passed::Profile(super::advance(engine, stored, change).await?),
    })
}
