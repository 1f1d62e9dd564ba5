//! Profile stage: which project membership the user acts as.

use super::{Consent, Login, Profile, Stored, advance};
use crate::audit::AuditKind;
use crate::engine::Engine;
use crate::error::{LoginError, PolicyError, RequestError};
use crate::model::{
    AccessPolicy, AuthMethod, LoginRecord, MembershipId, ProjectMembership, Reference, User,
};

/// The outcome of [`Login::choose_if_single`].
#[derive(Debug)]
pub enum ProfileChoice {
    /// Exactly one membership was eligible and is chosen.
    Chosen(Login<Consent>),
    /// Several are eligible: the user must pick one with [`Login::choose`].
    Choose {
        /// The login, still in the Profile stage.
        login: Login<Profile>,
        /// The eligible memberships.
        memberships: Vec<ProjectMembership>,
    },
}

impl Login<Profile> {
    /// The memberships this login may act as: active, inside the login's project (and the
    /// user's own project for a project-scoped user), of the requested profile type.
    pub async fn memberships(&self) -> Result<Vec<ProjectMembership>, LoginError> {
        let record = &self.stage.stored.record;
        let user = self.user().await?;
        let all = self.engine.directory().memberships_of(&user.id).await?;
        Ok(record.params.eligible(&user, &all).cloned().collect())
    }

    /// Chooses the only eligible membership when there is exactly one; otherwise lists them.
    pub async fn choose_if_single(self) -> Result<ProfileChoice, LoginError> {
        let memberships = self.memberships().await?;
        match memberships.as_slice() {
            [only] => {
                let id = only.id.clone();
                Ok(ProfileChoice::Chosen(self.choose(&id).await?))
            }
            _ => Ok(ProfileChoice::Choose {
                login: self,
                memberships,
            }),
        }
    }

    /// Chooses a membership, with Medplum's checks in Medplum's order: "Profile not found",
    /// "Invalid profile" (not the user's, or outside the login's project or profile type),
    /// "Profile not active", "Google authentication is required", then the access policy's
    /// IP rules ("IP address not allowed", matched by CIDR).
    pub async fn choose(self, membership: &MembershipId) -> Result<Login<Consent>, LoginError> {
        let Login { engine, stage } = self;
        stage.stored.check_live(&engine)?;
        let record = &stage.stored.record;
        match check_membership(&engine, record, membership).await {
            Ok((membership, patient, encounter, project_name)) => {
                engine.audit(
                    AuditKind::ProfileChosen {
                        membership: membership.id.clone(),
                    },
                    super::record_context(record),
                );
                select(
                    engine,
                    stage.stored,
                    (membership, patient, encounter, project_name),
                )
                .await
            }
            Err(e) => {
                engine.audit(
                    AuditKind::ProfileRefused {
                        reason: e.to_string(),
                    },
                    super::record_context(record),
                );
                Err(e)
            }
        }
    }

    async fn user(&self) -> Result<User, LoginError> {
        let id = self
            .stage
            .stored
            .record
            .user
            .as_ref()
            .ok_or(RequestError::UnknownLogin)?;
        Ok(self
            .engine
            .directory()
            .user(id)
            .await?
            .ok_or(RequestError::UnknownLogin)?)
    }
}

async fn select(
    engine: Engine,
    stored: Stored,
    (membership, patient, encounter, project_name): Selected,
) -> Result<Login<Consent>, LoginError> {
    advance(engine, stored, move |r| {
        r.membership = Some(membership.id);
        r.project = Some(membership.project);
        r.profile = Some(membership.profile);
        r.profile_display = membership.profile_display;
        r.project_name = Some(project_name).filter(|n| !n.is_empty());
        r.patient = patient;
        r.encounter = encounter;
    })
    .await
}

pub(crate) type Selected = (
    ProjectMembership,
    Option<Reference>,
    Option<Reference>,
    String,
);

/// Medplum's membership checks for a login, in Medplum's order (see [`Login::choose`]);
/// returns the membership and the patient and encounter in context.
pub(crate) async fn check_membership(
    engine: &Engine,
    record: &LoginRecord,
    id: &MembershipId,
) -> Result<Selected, LoginError> {
    let directory = engine.directory();
    let membership = directory
        .membership(id)
        .await?
        .ok_or(RequestError::ProfileNotFound)?;
    let user_id = record.user.as_ref().ok_or(RequestError::UnknownLogin)?;
    if membership.user != *user_id {
        return Err(RequestError::InvalidProfile.into());
    }
    let user = directory
        .user(user_id)
        .await?
        .ok_or(RequestError::UnknownLogin)?;
    if !record.params.fits(&user, &membership) {
        return Err(RequestError::InvalidProfile.into());
    }
    if !membership.active {
        return Err(PolicyError::ProfileNotActive.into());
    }
    let project = directory
        .project(&membership.project)
        .await?
        .ok_or(RequestError::ProfileNotFound)?;
    if project.requires_google_auth() && record.auth_method != AuthMethod::Google {
        return Err(PolicyError::GoogleAuthRequired.into());
    }
    let policy = access_policy(engine, &membership).await?;
    policy
        .check_ip(record.params.remote_address)
        .map_err(|_| PolicyError::IpNotAllowed)?;

    // Patient in context: the launch's patient, else the profile itself when it is a Patient.
    let launch = match &record.params.launch {
        Some(id) => directory.launch(id).await?,
        None => None,
    };
    let patient = launch.as_ref().and_then(|l| l.patient.clone()).or_else(|| {
        (membership.profile.resource_type() == "Patient").then(|| membership.profile.clone())
    });
    let encounter = launch.and_then(|l| l.encounter);
    Ok((membership, patient, encounter, project.name))
}

/// The membership's access policy; full access when it names none (Medplum's default).
pub(crate) async fn access_policy(
    engine: &Engine,
    membership: &ProjectMembership,
) -> Result<AccessPolicy, LoginError> {
    match &membership.access_policy {
        None => Ok(AccessPolicy::full_access("default".into())),
        Some(id) => Ok(engine
            .directory()
            .access_policy(id)
            .await?
            .ok_or(PolicyError::InvalidAccessPolicy)?),
    }
}
