//! Single sign-on: a browser with a live session cookie for a client gets a code for a new
//! authorization request without signing in again. The session's login is never reused or
//! changed: a **new** login enters the machine at the Profile stage under the session's user
//! and authentication, then goes the same `choose` and `grant` path as an interactive login —
//! the membership checks run again, and the grant may not exceed what the session's user
//! consented to.

use super::{AuthorizationCode, Authorized, Login, Profile, create, new_handle};
use crate::engine::Engine;
use crate::error::{LoginError, RequestError};
use crate::model::{LoginId, LoginParams, LoginRecord};
use crate::scope::ScopeSet;
use crate::secret::SecretHash;

/// What a single sign-on attempt came to.
// Returned once per request and matched at once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum SingleSignOn {
    /// A new grant, and its code.
    Granted(Login<Authorized>, AuthorizationCode),
    /// The request asks for more than the session's grant: the user must consent (or sign
    /// in) interactively.
    ConsentRequired,
}

impl Engine {
    /// Signs on from `session` (a live, granted login of the same client, found by its cookie)
    /// for a new request `params`.
    pub async fn single_sign_on(
        &self,
        session: &LoginRecord,
        params: LoginParams,
    ) -> Result<SingleSignOn, LoginError> {
        let membership = session
            .membership
            .clone()
            .ok_or(RequestError::ProfileNotFound)?;
        let ceiling = ScopeSet::parse(session.granted_scope.as_deref().unwrap_or_default())?;
        let now = self.now();
        let mut record = LoginRecord::new(
            LoginId::generate(self.random())?,
            SecretHash::of(b""),
            params,
            session.auth_method,
            now,
            now.saturating_add(self.config().login_lifetime),
        );
        record.user = session.user.clone();
        record.auth_time = session.auth_time;
        record.amr = session.amr.clone();
        record.parent = Some(session.id.clone());
        let login: Login<Profile> = create(self.clone(), record, new_handle(self)?).await?;
        let login = login.choose(&membership).await?;
        Ok(match login.grant_within(&ceiling).await? {
            Some((login, code)) => SingleSignOn::Granted(login, code),
            None => SingleSignOn::ConsentRequired,
        })
    }
}
