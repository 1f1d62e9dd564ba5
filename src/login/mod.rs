//! The login state machine: Domain → Credentials (password, then TOTP) → Profile → Consent →
//! authorization code.
//!
//! Inside a request a login is a [`Login<S>`] whose stage `S` decides which methods exist:
//! there is no way to ask a `Login<SecondFactor>` for a profile or a `Login<Profile>` for a code,
//! and every transition consumes the login it starts from. Between requests a login is a plain
//! [`LoginRecord`] in the [`LoginStore`](crate::store::LoginStore), found by the hash of its
//! opaque [`LoginHandle`], and the only way back to a typed login is [`Engine::resume`], which
//! checks the record's stage tag, deadline and revocation.
//!
//! Stages and what they hold:
//!
//! | stage | stored? | next |
//! |---|---|---|
//! | [`Domain`] | no | [`Credentials`] (password) or [`External`] (identity provider) |
//! | [`Credentials`] | no | [`SecondFactor`], [`Enrolment`] or [`Profile`] |
//! | [`External`] | yes | the provider's callback (a later step) |
//! | [`SecondFactor`] / [`Enrolment`] | yes | [`Profile`] once a TOTP code passes |
//! | [`Profile`] | yes | [`Consent`] once a membership is chosen |
//! | [`Consent`] | yes | [`Authorized`] with an [`AuthorizationCode`] |
//! | [`Authorized`] | yes | the token endpoint consumes the code |
//!
//! Every stored transition is a compare-and-swap on the record's version, so two requests
//! racing on one login cannot both move it, and every stored transition **rotates the
//! handle**: the handle that continued a step is dead afterwards, so a handle seen in a log,
//! a `Referer` or a browser history is worth nothing once the login moved on. A login's
//! handle never travels in a URL we build: after an identity provider's callback the browser
//! gets a short-lived, single-use hand-off reference bound to its cookie instead
//! ([`Login::hand_off`], [`Engine::resume_waiting`]).

mod client;
mod credentials;
mod domain;
mod exchange;
mod external;
mod google;
mod profile;
mod scope;
mod second_factor;
mod sso;

use std::fmt;

use time::OffsetDateTime;

use crate::engine::{AuditContext, Engine};
use crate::error::{LoginError, RequestError};
use crate::model::{LoginId, LoginParams, LoginRecord, StageTag, UserId};
use crate::secret::{BearerSecret, SecretHash};

pub(crate) use client::client_grant;
pub use credentials::{Credentials, Passed};
pub use domain::{Domain, EXTERNAL_LIFETIME, ExternalRedirect, LoginRequest, Method};
pub use google::GoogleSignIn;
pub use profile::ProfileChoice;
pub(crate) use profile::access_policy;
pub use second_factor::EnrolmentUri;
pub use sso::SingleSignOn;

/// The opaque secret that continues a login from one request to the next (Medplum's `login`
/// field). 256 bits from the CSPRNG; only its SHA-256 is stored. `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginHandle(BearerSecret);

impl LoginHandle {
    /// The handle text, to send to the client.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    pub(crate) fn hash(&self) -> SecretHash {
        self.0.hash()
    }
}

impl fmt::Debug for LoginHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LoginHandle(<redacted>)")
    }
}

/// A freshly issued authorization code: shown once, stored only as a hash, single-use, and
/// bound to the login's client, redirect URI, PKCE challenge and nonce.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    code: BearerSecret,
    expires_at: OffsetDateTime,
}

impl AuthorizationCode {
    /// The code text, to send to the client.
    pub fn expose(&self) -> &str {
        self.code.expose()
    }

    /// When the code stops being redeemable.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }

    /// The hash under which the store keeps the code.
    pub fn hash(&self) -> SecretHash {
        self.code.hash()
    }
}

impl fmt::Debug for AuthorizationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationCode")
            .field("code", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What nothing outside this module can name: the sealing traits, and the stored form a
/// stage is built from. A stage value exists only because a transition here made it (or
/// [`Engine::resume`] checked a record): neither another crate nor another module of this
/// one can turn a record into a stage.
mod sealed {
    use super::{LoginHandle, LoginRecord};

    pub trait Sealed {}

    /// A stored login and the handle that continues it.
    #[derive(Debug)]
    pub struct Stored {
        pub(in crate::login) record: LoginRecord,
        pub(in crate::login) handle: LoginHandle,
    }

    /// Builds a stored stage from its record: only `login` may.
    pub trait FromStored: Sized {
        fn from_stored(stored: Stored) -> Self;
    }
}

use sealed::{FromStored, Stored};

/// A login stage. Sealed: only this crate's stage types implement it.
pub trait Stage: sealed::Sealed + Send + Sync {}

/// A stage a login can wait in between requests, and be resumed in (with
/// [`Engine::resume`], which checks the record's stage tag, deadline and revocation).
#[allow(private_bounds)]
pub trait Resumable: Stage + FromStored {
    /// The record tag of this stage.
    const TAG: StageTag;
}

macro_rules! stored_stage {
    ($(#[$doc:meta])* $name:ident, $tag:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name {
            stored: Stored,
        }
        impl sealed::Sealed for $name {}
        impl Stage for $name {}
        impl FromStored for $name {
            fn from_stored(stored: Stored) -> Self {
                Self { stored }
            }
        }
        impl Resumable for $name {
            const TAG: StageTag = $tag;
        }
        stored_accessors!($name);
    };
}

/// The accessors every stored stage has.
macro_rules! stored_accessors {
    ($name:ident) => {
        impl Login<$name> {
            /// The handle that continues this login (Medplum's `login`).
            pub fn handle(&self) -> &LoginHandle {
                &self.stage.stored.handle
            }

            /// The stored record.
            pub fn record(&self) -> &LoginRecord {
                &self.stage.stored.record
            }

            /// The login's id (not secret).
            pub fn id(&self) -> &LoginId {
                &self.stage.stored.record.id
            }
        }
    };
}

stored_stage!(
    /// Credentials: waiting for the callback of an external identity provider.
    External,
    StageTag::External
);
stored_stage!(
    /// Credentials: the password passed; a TOTP code must pass before anything else.
    SecondFactor,
    StageTag::SecondFactor
);
stored_stage!(
    /// Credentials: the password passed; the user must enrol TOTP (`mfaRequired`).
    Enrolment,
    StageTag::Enrolment
);
stored_stage!(
    /// Profile: authenticated; a membership must be chosen.
    Profile,
    StageTag::Profile
);
stored_stage!(
    /// Consent: membership chosen; the scope is to be granted.
    Consent,
    StageTag::Scope
);
/// An authorization code was issued and waits for the token endpoint.
#[derive(Debug)]
pub struct Authorized {
    stored: Stored,
    /// The single-sign-on session secret, only on the login value that issued it.
    session: Option<BearerSecret>,
}
impl sealed::Sealed for Authorized {}
impl Stage for Authorized {}
impl FromStored for Authorized {
    fn from_stored(stored: Stored) -> Self {
        Self {
            stored,
            session: None,
        }
    }
}
impl Resumable for Authorized {
    const TAG: StageTag = StageTag::Authorized;
}
stored_accessors!(Authorized);
impl Login<Authorized> {
    /// The single-sign-on session secret issued with the code, for the browser cookie
    /// (Medplum's `medplum-<clientId>`; set it `Secure; HttpOnly; SameSite`). Present only
    /// on the value returned by the step that issued the code, and only for logins through a
    /// client. Only its hash is stored.
    pub fn sso_session(&self) -> Option<&BearerSecret> {
        self.stage.session.as_ref()
    }
}

/// A login in stage `S`. Transitions consume it; see the [module documentation](self).
#[derive(Debug)]
pub struct Login<S: Stage> {
    engine: Engine,
    stage: S,
}

impl<S: Stage> Login<S> {
    /// The engine this login runs on.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// Reads a presented handle; anything that cannot be a handle is simply unknown.
fn presented_handle(handle: &str) -> Result<LoginHandle, LoginError> {
    if handle.is_empty() || handle.len() > 128 {
        return Err(RequestError::UnknownLogin.into());
    }
    Ok(LoginHandle(BearerSecret::from_presented(handle)))
}

impl Engine {
    /// Resumes a stored login in stage `S` from the handle a client presented. Refuses an
    /// unknown handle ("Login not found"), a revoked or expired login, a login being handed
    /// off to a browser, and a login waiting in another stage — so a step can only be taken
    /// in the stage it belongs to.
    pub async fn resume<S: Resumable>(&self, handle: &str) -> Result<Login<S>, LoginError> {
        let (record, handle) = self.live_record(handle).await?;
        if record.handoff_until.is_some() {
            return Err(RequestError::UnknownLogin.into());
        }
        if record.stage != S::TAG {
            // A second-factor step for a login past its first factor: Medplum's answer is
            // "User not enrolled in MFA" when no second factor was passed (the account has
            // none), "Login already verified" when one was.
            let second_factor = matches!(S::TAG, StageTag::SecondFactor | StageTag::Enrolment);
            let past = matches!(
                record.stage,
                StageTag::Profile | StageTag::Scope | StageTag::Authorized
            );
            if second_factor && past && !record.amr.contains(&crate::model::Amr::Otp) {
                return Err(RequestError::NotEnrolled.into());
            }
            return Err(RequestError::WrongStage {
                expected: S::TAG,
                found: record.stage,
            }
            .into());
        }
        Ok(Login {
            engine: self.clone(),
            stage: S::from_stored(Stored { record, handle }),
        })
    }

    /// The stage a stored login waits in, without resuming it. The same checks as
    /// [`Engine::resume`] apply, except the stage.
    pub async fn login_stage(&self, handle: &str) -> Result<StageTag, LoginError> {
        let (record, _) = self.live_record(handle).await?;
        if record.handoff_until.is_some() {
            return Err(RequestError::UnknownLogin.into());
        }
        Ok(record.stage)
    }

    /// Resumes a login in whatever stage it waits in, for a status request (Medplum's
    /// `GET /auth/login/{login}`) or to pick up a hand-off ([`Login::hand_off`]). The
    /// presented handle may have travelled in a URL, so it is spent: the login comes back
    /// under a new handle.
    ///
    /// A hand-off is picked up once, before its deadline, and only with `browser` — the value
    /// of the binding cookie of the browser that started the sign-in; anything else reads
    /// "Login not found". A login whose code was issued answers "Login already granted": a
    /// handle never yields a second code.
    pub async fn resume_waiting(
        &self,
        handle: &str,
        browser: Option<&str>,
    ) -> Result<Waiting, LoginError> {
        let (record, handle) = self.live_record(handle).await?;
        let picked_up = match record.handoff_until {
            None => false,
            Some(until) => {
                let bound = match (&record.browser, browser) {
                    (Some(expected), Some(presented)) => {
                        expected.ct_eq(&SecretHash::of_presented(presented))
                    }
                    _ => false,
                };
                if !bound || self.now() >= until {
                    return Err(RequestError::UnknownLogin.into());
                }
                true
            }
        };
        let stored = Stored { record, handle };
        let engine = self.clone();
        let clear = |r: &mut LoginRecord| r.handoff_until = None;
        Ok(match stored.record.stage {
            StageTag::SecondFactor => {
                Waiting::SecondFactor(advance(engine, stored, clear).await?, picked_up)
            }
            StageTag::Enrolment => {
                Waiting::Enrolment(advance(engine, stored, clear).await?, picked_up)
            }
            StageTag::Profile => Waiting::Profile(advance(engine, stored, clear).await?, picked_up),
            StageTag::Scope => Waiting::Scope(advance(engine, stored, clear).await?, picked_up),
            StageTag::Authorized | StageTag::Granted => {
                return Err(RequestError::AlreadyGranted.into());
            }
            StageTag::External => return Err(RequestError::WaitingForProvider.into()),
        })
    }

    /// The record behind a presented handle, if it exists, is not revoked and not expired
    /// (hand-offs included: the callers decide about them).
    async fn live_record(&self, handle: &str) -> Result<(LoginRecord, LoginHandle), LoginError> {
        let handle = presented_handle(handle)?;
        let record = self
            .login_store()
            .login_by_handle(&handle.hash())
            .await?
            .ok_or(RequestError::UnknownLogin)?;
        if !record.handle_hash.ct_eq(&handle.hash()) {
            return Err(RequestError::UnknownLogin.into());
        }
        if record.revoked {
            return Err(RequestError::LoginRevoked.into());
        }
        if record.expired_at(self.now()) {
            return Err(RequestError::LoginExpired.into());
        }
        Ok((record, handle))
    }
}

impl Stored {
    /// Refuses a login whose deadline passed while a request held it.
    pub(crate) fn check_live(&self, engine: &Engine) -> Result<(), LoginError> {
        if self.record.expired_at(engine.now()) {
            return Err(RequestError::LoginExpired.into());
        }
        Ok(())
    }
}

/// Moves a stored login to its next stage (or the same one) with a compare-and-swap on its
/// version, under a new handle: the one that continued this step is dead afterwards.
pub(crate) async fn advance<T: Resumable>(
    engine: Engine,
    stored: Stored,
    change: impl FnOnce(&mut LoginRecord),
) -> Result<Login<T>, LoginError> {
    stored.check_live(&engine)?;
    let Stored { mut record, .. } = stored;
    let handle = new_handle(&engine)?;
    let expected = record.version;
    change(&mut record);
    record.handle_hash = handle.hash();
    record.stage = T::TAG;
    record.version = expected.saturating_add(1);
    if !engine.login_store().update_login(&record, expected).await? {
        return Err(RequestError::Conflict.into());
    }
    Ok(Login {
        engine,
        stage: T::from_stored(Stored { record, handle }),
    })
}

/// Creates the stored record of a login that has just passed its first stored stage.
pub(crate) async fn create<T: Resumable>(
    engine: Engine,
    mut record: LoginRecord,
    handle: LoginHandle,
) -> Result<Login<T>, LoginError> {
    record.handle_hash = handle.hash();
    record.stage = T::TAG;
    record.version = 0;
    engine.login_store().create_login(&record).await?;
    Ok(Login {
        engine,
        stage: T::from_stored(Stored { record, handle }),
    })
}

/// A login resumed in the stage it waits in ([`Engine::resume_waiting`]). The flag says
/// whether this request picked up a hand-off (and is the browser the sign-in began in).
#[derive(Debug)]
pub enum Waiting {
    /// Waiting for a TOTP code.
    SecondFactor(Login<SecondFactor>, bool),
    /// Waiting for TOTP enrolment.
    Enrolment(Login<Enrolment>, bool),
    /// Waiting for a membership choice.
    Profile(Login<Profile>, bool),
    /// Waiting for the scope grant.
    Scope(Login<Consent>, bool),
}

/// A login handed to the browser through a URL: a single-use reference that only
/// [`Engine::resume_waiting`] accepts, from the browser holding the binding, before
/// `expires_at`. `Debug` is redacted.
pub struct HandOff {
    reference: LoginHandle,
    /// When the reference stops working.
    pub expires_at: OffsetDateTime,
}

impl HandOff {
    /// The reference, for the URL (Medplum's `login` query parameter).
    pub fn expose(&self) -> &str {
        self.reference.expose()
    }
}

impl fmt::Debug for HandOff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandOff")
            .field("reference", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// How long a hand-off reference can be picked up.
pub const HANDOFF_LIFETIME: time::Duration = time::Duration::seconds(60);

macro_rules! hand_off {
    ($($stage:ident),*) => {$(
        impl Login<$stage> {
            /// Hands the login to the browser that started it, through a URL: the login gets a
            /// single-use reference, valid for [`HANDOFF_LIFETIME`], that only the browser
            /// holding the login's binding can pick up ([`Engine::resume_waiting`]). Until then
            /// no other step accepts it. Only a login with a browser binding (an external
            /// sign-in) can be handed off.
            pub async fn hand_off(self) -> Result<HandOff, LoginError> {
                let Login { engine, stage } = self;
                if stage.stored.record.browser.is_none() {
                    return Err(crate::idp::ExternalError::BrowserMismatch.into());
                }
                let until = engine.now().saturating_add(HANDOFF_LIFETIME);
                let login: Login<$stage> =
                    advance(engine, stage.stored, |r| r.handoff_until = Some(until)).await?;
                Ok(HandOff {
                    reference: login.stage.stored.handle,
                    expires_at: until,
                })
            }
        }
    )*};
}
hand_off!(SecondFactor, Enrolment, Profile);

pub(crate) fn new_handle(engine: &Engine) -> Result<LoginHandle, LoginError> {
    Ok(LoginHandle(BearerSecret::generate(engine.random())?))
}

pub(crate) fn audit_context(
    params: &LoginParams,
    login: Option<&LoginId>,
    user: Option<&UserId>,
) -> AuditContext {
    AuditContext {
        login: login.cloned(),
        user: user.cloned(),
        client: params.client.clone(),
        remote_address: params.remote_address,
    }
}

pub(crate) fn record_context(record: &LoginRecord) -> AuditContext {
    audit_context(&record.params, Some(&record.id), record.user.as_ref())
}
