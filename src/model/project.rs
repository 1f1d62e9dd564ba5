//! Projects, memberships and launch contexts.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{AccessPolicyId, LaunchId, MembershipId, ProjectId, Reference, UserId};

/// The project feature that forces Google sign-in for its memberships.
pub const FEATURE_GOOGLE_AUTH_REQUIRED: &str = "google-auth-required";

/// A tenant: the unit that owns data, memberships and clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Identifier.
    pub id: ProjectId,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Feature codes (Medplum's `features`), such as `google-auth-required`.
    #[serde(default)]
    pub features: BTreeSet<String>,
    /// Super-admin project: refresh tokens are never issued for its memberships.
    #[serde(default)]
    pub super_admin: bool,
    /// Name/value settings (Medplum's `setting[]`).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// The access policy of patients who register themselves (Medplum's
    /// `defaultPatientAccessPolicy`). A project without one does not allow open
    /// registration: `/auth/newuser` with this project and `/auth/newpatient` refuse.
    #[serde(default)]
    pub default_patient_access_policy: Option<AccessPolicyId>,
    /// The user who created the project (through `/auth/newproject`).
    #[serde(default)]
    pub owner: Option<UserId>,
}

impl Project {
    /// A plain project.
    pub fn new(id: ProjectId, name: &str) -> Self {
        Self {
            id,
            name: name.to_owned(),
            features: BTreeSet::new(),
            super_admin: false,
            settings: BTreeMap::new(),
            default_patient_access_policy: None,
            owner: None,
        }
    }

    /// Whether people may register themselves into the project.
    pub fn open_registration(&self) -> bool {
        self.default_patient_access_policy.is_some()
    }

    /// Whether the project requires Google sign-in.
    pub fn requires_google_auth(&self) -> bool {
        self.features.contains(FEATURE_GOOGLE_AUTH_REQUIRED)
    }
}

/// A user's membership in a project, acting as a FHIR profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectMembership {
    /// Identifier.
    pub id: MembershipId,
    /// The project.
    pub project: ProjectId,
    /// The member.
    pub user: UserId,
    /// The FHIR identity the member acts as, such as `Practitioner/123`.
    pub profile: Reference,
    /// The profile's display name (Medplum's `profile.display`), such as `Dr Jane Doe`:
    /// what a sign-in page shows when several profiles can be chosen.
    #[serde(default)]
    pub profile_display: Option<String>,
    /// Inactive memberships cannot be chosen at login and stop their tokens.
    #[serde(default = "yes")]
    pub active: bool,
    /// Project administrator.
    #[serde(default)]
    pub admin: bool,
    /// The access policy that limits what the member may do; `None` means full access
    /// within the project (Medplum's legacy default).
    #[serde(default)]
    pub access_policy: Option<AccessPolicyId>,
    /// The subject an external identity provider uses for this member.
    #[serde(default)]
    pub external_id: Option<String>,
    /// The issuer of that provider: a subject matches only together with its issuer.
    #[serde(default)]
    pub external_issuer: Option<String>,
}

fn yes() -> bool {
    true
}

impl ProjectMembership {
    /// An active, non-admin membership without an access policy.
    pub fn new(id: MembershipId, project: ProjectId, user: UserId, profile: Reference) -> Self {
        Self {
            id,
            project,
            user,
            profile,
            profile_display: None,
            active: true,
            admin: false,
            access_policy: None,
            external_id: None,
            external_issuer: None,
        }
    }
}

/// A SMART launch context created by an EHR before an app launch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmartLaunch {
    /// Identifier (the `launch` parameter).
    pub id: LaunchId,
    /// Patient in context.
    #[serde(default)]
    pub patient: Option<Reference>,
    /// Encounter in context.
    #[serde(default)]
    pub encounter: Option<Reference>,
}
