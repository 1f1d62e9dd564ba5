//! Verification for resource servers: one call turns a bearer token into a [`Principal`] or a
//! typed refusal.
//!
//! In order: the JWT (key by `kid`, the key's own algorithm only, `typ` = `at+jwt`, `iss`,
//! `aud`, times with leeway — ID tokens, refresh tokens and anything else fail here), then
//! the grant is live: the login exists, is granted and not revoked, its membership is active,
//! its client is active. The second half can be served from a cache whose staleness bound is
//! configured ([`OAuthConfig::verify_cache`](crate::config::OAuthConfig::verify_cache)):
//! with a bound of `d`, a revocation or deactivation takes effect within `d`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

use super::KeyRing;
use super::claims::{ACCESS_TOKEN_TYP, AccessClaims};
use super::keys::{Expectation, TokenError};
use crate::clock::Clock;
use crate::config::OAuthConfig;
use crate::model::{
    AuthMethod, ClientId, ClientStatus, LoginId, MembershipId, ProjectId, Reference, StageTag,
    UserId,
};
use crate::scope::ScopeSet;
use crate::store::{Directory, LoginStore, StoreError};

/// Who a verified access token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The grant (login) the token belongs to.
    pub login: LoginId,
    /// A user, or a client acting for itself.
    pub subject: Subject,
    /// The client the token was issued to, if any.
    pub client: Option<ClientId>,
    /// The membership the token acts as.
    pub membership: MembershipId,
    /// The project the token is bound to.
    pub project: ProjectId,
    /// The FHIR identity (`Practitioner/123`).
    pub profile: Reference,
    /// Granted scope.
    pub scope: ScopeSet,
    /// Patient in context.
    pub patient: Option<Reference>,
    /// Encounter in context.
    pub encounter: Option<Reference>,
    /// The token's `jti`.
    pub token_id: String,
    /// The token's expiry.
    pub expires_at: OffsetDateTime,
    /// The token's issue time.
    pub issued_at: OffsetDateTime,
}

/// What the granted SMART scopes say about one interaction on one resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeDecision {
    /// A `user/` or `system/` scope allows it (the membership's access policy still applies).
    Allowed,
    /// Only a `patient/` scope allows it: for resources in this patient's compartment only.
    PatientCompartment(Reference),
    /// No granted scope allows it.
    Denied,
}

impl Principal {
    /// Whether the token's SMART scopes allow `interaction` on `resource_type`
    /// (`Observation`, or any type for a `*` scope). Every SMART permission is distinct: a
    /// `.rs` scope allows read and search, not update. A host checks the compartment itself
    /// for [`ScopeDecision::PatientCompartment`], since only it knows whose a resource is.
    /// A scope restricted by search criteria (`…?category=laboratory`) never allows an
    /// interaction on its own: its criteria must be applied to the query, which
    /// [`effective_policy`](crate::scope::effective_policy) expresses.
    pub fn scope_allows(
        &self,
        resource_type: &str,
        interaction: crate::model::Interaction,
    ) -> ScopeDecision {
        let mut patient_only = false;
        for scope in self.scope.iter() {
            let crate::scope::Scope::Resource(r) = scope else {
                continue;
            };
            if r.query.is_some()
                || !r.resource_type.matches(resource_type)
                || !r.permissions.contains(interaction)
            {
                continue;
            }
            match r.context {
                crate::scope::Context::Patient => patient_only = true,
                crate::scope::Context::User | crate::scope::Context::System => {
                    return ScopeDecision::Allowed;
                }
            }
        }
        match (patient_only, &self.patient) {
            (true, Some(patient)) => ScopeDecision::PatientCompartment(patient.clone()),
            _ => ScopeDecision::Denied,
        }
    }
}

/// Whom a token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A signed-in user.
    User(UserId),
    /// A client acting for itself (`client_credentials`).
    Client(ClientId),
}

/// The subject as a FHIR reference: `User/<id>` or `ClientApplication/<id>`.
impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::User(user) => write!(f, "User/{user}"),
            Subject::Client(client) => write!(f, "ClientApplication/{client}"),
        }
    }
}

/// Why a bearer token was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a valid access token of this server (signature, type, issuer, audience, time).
    #[error("invalid access token: {0}")]
    Invalid(#[from] TokenError),
    /// The grant was revoked, never completed, or is gone.
    #[error("the token's grant is revoked")]
    Revoked,
    /// The membership or client behind the grant is no longer active.
    #[error("the token's membership or client is inactive")]
    Inactive,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl VerifyError {
    /// Who is at fault: the bearer's token ([`Fault::Credentials`](crate::Fault)) unless the
    /// store failed ([`Fault::Unavailable`](crate::Fault) when it cannot be reached).
    pub fn fault(&self) -> crate::error::Fault {
        use crate::error::Fault;
        match self {
            VerifyError::Store(StoreError::Unavailable(_)) => Fault::Unavailable,
            VerifyError::Store(_) => Fault::Server,
            _ => Fault::Credentials,
        }
    }

    /// The RFC 6750 `WWW-Authenticate` challenge for this refusal.
    pub fn challenge(&self) -> String {
        match self {
            VerifyError::Store(_) => "Bearer realm=\"fhirgate\"".to_owned(),
            other => format!(
                "Bearer realm=\"fhirgate\", error=\"invalid_token\", error_description=\"{}\"",
                match other {
                    VerifyError::Invalid(_) => "invalid access token",
                    VerifyError::Revoked => "the grant is revoked",
                    _ => "the membership or client is inactive",
                }
            ),
        }
    }
}

/// What the store said about a grant, as cached.
#[derive(Debug, Clone)]
pub(crate) enum Liveness {
    Live {
        membership: MembershipId,
        project: ProjectId,
        profile: Reference,
        patient: Option<Reference>,
        encounter: Option<Reference>,
        client_grant: bool,
    },
    Revoked,
    Inactive,
}

/// The bounded-staleness cache of grant liveness.
#[derive(Debug, Default)]
pub(crate) struct LivenessCache {
    entries: Mutex<HashMap<LoginId, (OffsetDateTime, Liveness)>>,
}

const CACHE_CAPACITY: usize = 65_536;

impl LivenessCache {
    fn get(&self, login: &LoginId, not_before: OffsetDateTime) -> Option<Liveness> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(login)
            .filter(|(checked, _)| *checked >= not_before)
            .map(|(_, l)| l.clone())
    }

    fn put(&self, login: LoginId, checked: OffsetDateTime, liveness: Liveness) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CACHE_CAPACITY {
            entries.clear();
        }
        entries.insert(login, (checked, liveness));
    }

    /// Forgets a grant (after this engine revoked it, so its own answers are immediate).
    pub(crate) fn forget(&self, login: &LoginId) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(login);
    }
}

fn time_of(seconds: i64) -> Result<OffsetDateTime, VerifyError> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|_| VerifyError::Invalid(TokenError::Malformed))
}

/// Verifies bearer access tokens for a resource server: the signature and claims against the
/// [`KeyRing`], then the grant's liveness against the stores (directly, or from a cache within
/// the configured staleness bound). It needs no password hashing and no single-use store, so a
/// resource server builds one on its own ([`Verifier::new`]); an [`Engine`](crate::Engine)
/// hands out its own ([`Engine::verifier`](crate::Engine::verifier)). Cloning shares it.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<VerifierInner>,
}

struct VerifierInner {
    keys: KeyRing,
    logins: Arc<dyn LoginStore>,
    directory: Arc<dyn Directory>,
    clock: Arc<dyn Clock>,
    issuer: String,
    audience: String,
    leeway_seconds: i64,
    cache_bound: Option<Duration>,
    liveness: LivenessCache,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.issuer)
            .field("audience", &self.inner.audience)
            .field("cache_bound", &self.inner.cache_bound)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for tokens `oauth` describes (issuer, audience, leeway, the liveness cache
    /// bound), signed by `keys`, whose grants live in `logins` and whose memberships, clients
    /// and users live in `directory`.
    pub fn new(
        oauth: &OAuthConfig,
        keys: KeyRing,
        logins: Arc<dyn LoginStore>,
        directory: Arc<dyn Directory>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            inner: Arc::new(VerifierInner {
                keys,
                logins,
                directory,
                clock,
                issuer: oauth.issuer_id(),
                audience: oauth.audience(),
                leeway_seconds: oauth.leeway.whole_seconds(),
                cache_bound: oauth.verify_cache,
                liveness: LivenessCache::default(),
            }),
        }
    }

    /// Verifies a bearer access token and returns whom it speaks for.
    pub async fn verify(&self, token: &str) -> Result<Principal, VerifyError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let claims: AccessClaims = inner.keys.current().verify(
            token,
            &Expectation {
                typ: ACCESS_TOKEN_TYP,
                issuer: &inner.issuer,
                audience: &inner.audience,
                now,
                leeway_seconds: inner.leeway_seconds,
            },
        )?;
        let login = LoginId::new(claims.login_id.clone());
        let liveness = self.liveness(&login).await?;
        let Liveness::Live {
            membership,
            project,
            profile,
            patient,
            encounter,
            client_grant,
        } = liveness
        else {
            return Err(match liveness {
                Liveness::Inactive => VerifyError::Inactive,
                _ => VerifyError::Revoked,
            });
        };
        let client = claims.client_id.map(ClientId::new);
        let subject = match (client_grant, &client) {
            (true, Some(c)) => Subject::Client(c.clone()),
            _ => Subject::User(UserId::new(claims.sub)),
        };
        Ok(Principal {
            login,
            subject,
            client,
            membership,
            project,
            profile,
            scope: ScopeSet::parse(&claims.scope)
                .map_err(|_| VerifyError::Invalid(TokenError::Malformed))?,
            patient,
            encounter,
            token_id: claims.jti,
            expires_at: time_of(claims.exp)?,
            issued_at: time_of(claims.iat)?,
        })
    }

    /// Forgets what the cache knows of a grant (after this process revoked it, so its own
    /// answers are immediate).
    pub(crate) fn forget(&self, login: &LoginId) {
        self.inner.liveness.forget(login);
    }

    /// Whether a grant is live: from the cache within its staleness bound, else the store.
    pub(crate) async fn liveness(&self, login: &LoginId) -> Result<Liveness, VerifyError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let bound = inner.cache_bound;
        if let Some(bound) = bound
            && let Some(cached) = inner.liveness.get(login, now.saturating_sub(bound))
        {
            return Ok(cached);
        }
        let liveness = self.check_liveness(login).await?;
        if bound.is_some() {
            inner.liveness.put(login.clone(), now, liveness.clone());
        }
        Ok(liveness)
    }

    async fn check_liveness(&self, login: &LoginId) -> Result<Liveness, VerifyError> {
        let Some(record) = self.inner.logins.login(login).await? else {
            return Ok(Liveness::Revoked);
        };
        if record.revoked || record.stage != StageTag::Granted {
            return Ok(Liveness::Revoked);
        }
        let (Some(membership_id), Some(project), Some(profile)) = (
            record.membership.clone(),
            record.project.clone(),
            record.profile.clone(),
        ) else {
            return Ok(Liveness::Revoked);
        };
        let directory = self.inner.directory.as_ref();
        match directory.membership(&membership_id).await? {
            Some(m) if m.active => {}
            _ => return Ok(Liveness::Inactive),
        }
        if let Some(client_id) = &record.params.client {
            match directory.client(client_id).await? {
                Some(c) if c.status == ClientStatus::Active => {}
                _ => return Ok(Liveness::Inactive),
            }
        }
        if let Some(user) = &record.user
            && directory.user(user).await?.is_none()
        {
            return Ok(Liveness::Inactive);
        }
        Ok(Liveness::Live {
            membership: membership_id,
            project,
            profile,
            patient: record.patient,
            encounter: record.encounter,
            client_grant: record.auth_method == AuthMethod::Client,
        })
    }
}
