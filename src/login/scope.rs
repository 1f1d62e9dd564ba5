//! Consent stage: the granted scope is the requested scope (or the user's narrower consent),
//! intersected with what the client may be granted, narrowed by the membership's access
//! policy. Then the authorization code.

use super::profile::access_policy;
use super::{AuthorizationCode, Authorized, Consent, Login, Stored, advance};
use crate::audit::AuditKind;
use crate::engine::Engine;
use crate::error::{LoginError, PolicyError, RequestError};
use crate::model::{CodeState, LoginRecord, SessionState};
use crate::scope::{ScopeSet, effective_policy};
use crate::secret::BearerSecret;

impl Login<Consent> {
    /// The scope the client requested.
    pub fn requested_scope(&self) -> &str {
        &self.stage.stored.record.params.scope
    }

    /// Grants the scope and issues the authorization code. `consent`, when given, is the
    /// user's narrowing of the request (Medplum's `/auth/scope`); it must lie within the
    /// requested scope. The grant is always within the request, the client's allowed scopes
    /// and the access policy; a granted `patient/` scope needs a patient in context.
    pub async fn grant(
        self,
        consent: Option<&str>,
    ) -> Result<(Login<Authorized>, AuthorizationCode), LoginError> {
        let Login { engine, stage } = self;
        let session = stage.stored.record.parent.is_none();
        issue(engine, stage.stored, consent, None, session).await
    }

    /// Grants as [`Login::grant`] does, for a login no browser takes part in (token
    /// exchange): no single-sign-on session.
    pub(crate) async fn grant_without_session(
        self,
    ) -> Result<(Login<Authorized>, AuthorizationCode), LoginError> {
        let Login { engine, stage } = self;
        issue(engine, stage.stored, None, None, false).await
    }

    /// Grants as [`Login::grant`] does, but only within `ceiling` — the scope the session
    /// this login was signed on from holds (single sign-on may not widen what the user
    /// consented to). `Ok(None)` when the grant would exceed it: nothing is issued and the
    /// login is revoked; the user must be asked.
    pub(crate) async fn grant_within(
        self,
        ceiling: &ScopeSet,
    ) -> Result<Option<(Login<Authorized>, AuthorizationCode)>, LoginError> {
        let Login { engine, stage } = self;
        let id = stage.stored.record.id.clone();
        match issue(engine.clone(), stage.stored, None, Some(ceiling), false).await {
            Err(LoginError::Request(RequestError::ScopeNotRequested(_))) => {
                engine.login_store().revoke_login(&id).await?;
                Ok(None)
            }
            other => other.map(Some),
        }
    }
}

impl Login<Authorized> {
    /// The granted scope.
    pub fn granted_scope(&self) -> &str {
        self.stage
            .stored
            .record
            .granted_scope
            .as_deref()
            .unwrap_or_default()
    }

    /// Narrows the grant before the code is redeemed (Medplum's `/auth/scope` on a login
    /// that already has a code): the outstanding code will grant only `scope`. No new code
    /// and no new single-sign-on session are issued — a handle never yields a second code —
    /// and the login continues under a new handle. The scope can only shrink.
    pub async fn narrow(self, scope: &str) -> Result<Login<Authorized>, LoginError> {
        let Login { engine, stage } = self;
        stage.stored.check_live(&engine)?;
        let granted = ScopeSet::parse(stage.stored.record.granted_scope.as_deref().unwrap_or(""))?;
        let asked = ScopeSet::parse(scope)?;
        if !granted.covers(&asked) {
            return Err(RequestError::ScopeNotRequested(asked.to_string()).into());
        }
        let narrowed = granted_scope(&engine, &stage.stored.record, Some(scope))
            .await?
            .intersect(&granted)
            .to_string();
        advance(engine, stage.stored, move |r| {
            r.granted_scope = Some(narrowed)
        })
        .await
    }
}

async fn issue(
    engine: Engine,
    stored: Stored,
    consent: Option<&str>,
    ceiling: Option<&ScopeSet>,
    with_session: bool,
) -> Result<(Login<Authorized>, AuthorizationCode), LoginError> {
    stored.check_live(&engine)?;
    let granted = granted_scope(&engine, &stored.record, consent).await?;
    if let Some(ceiling) = ceiling
        && !ceiling.covers(&granted)
    {
        return Err(RequestError::ScopeNotRequested(granted.to_string()).into());
    }
    let code = BearerSecret::generate(engine.random())?;
    let now = engine.now();
    let expires_at = now.saturating_add(engine.config().code_lifetime);
    // A browser login through a client gets a single-sign-on session (the cookie) — not one
    // signed on from a session already, nor one without a browser.
    let session = match (&stored.record.params.client, with_session) {
        (Some(_), true) => Some(BearerSecret::generate(engine.random())?),
        _ => None,
    };
    let session_state = session.as_ref().map(|s| SessionState {
        hash: s.hash(),
        expires_at: now.saturating_add(engine.config().oauth.sso_lifetime),
    });
    let scope_text = granted.to_string();
    let context = super::record_context(&stored.record);
    let code_state = CodeState {
        hash: code.hash(),
        expires_at,
        redeemed: false,
    };
    let text = scope_text.clone();
    let mut login = advance::<Authorized>(engine.clone(), stored, move |r| {
        r.granted_scope = Some(text);
        r.code = Some(code_state);
        r.expires_at = expires_at;
        if session_state.is_some() {
            r.session = session_state;
        }
    })
    .await?;
    login.stage.session = session;
    engine.audit(AuditKind::CodeIssued { scope: scope_text }, context);
    Ok((login, AuthorizationCode { code, expires_at }))
}

/// The scope a login is granted: the request (or a consent within it) ∩ what the client may
/// be granted, narrowed by the membership's access policy; `patient/` scopes need a patient.
pub(crate) async fn granted_scope(
    engine: &Engine,
    record: &LoginRecord,
    consent: Option<&str>,
) -> Result<ScopeSet, LoginError> {
    let requested = ScopeSet::parse(&record.params.scope)?;
    let mut base = requested.clone();
    if let Some(consent) = consent {
        let asked = ScopeSet::parse(consent)?;
        if !requested.covers(&asked) {
            return Err(RequestError::ScopeNotRequested(asked.to_string()).into());
        }
        base = asked;
    }
    let directory = engine.directory();
    if let Some(client_id) = &record.params.client {
        let client = directory
            .client(client_id)
            .await?
            .ok_or(RequestError::UnknownClient)?;
        let allowed =
            ScopeSet::parse(&client.allowed_scopes).map_err(|_| PolicyError::InvalidClientScope)?;
        base = base.intersect(&allowed);
    }
    let membership_id = record
        .membership
        .as_ref()
        .ok_or(RequestError::UnknownLogin)?;
    let membership = directory
        .membership(membership_id)
        .await?
        .ok_or(RequestError::ProfileNotFound)?;
    if !membership.active {
        return Err(PolicyError::ProfileNotActive.into());
    }
    let policy = access_policy(engine, &membership).await?;
    let granted = base.narrow_to_policy(&policy);
    effective_policy(&policy, &granted, record.patient.as_ref())
        .map_err(|_| PolicyError::MissingPatientContext)?;
    Ok(granted)
}
