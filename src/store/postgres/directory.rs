//! [`Directory`] and [`DirectoryAdmin`] on PostgreSQL.

use async_trait::async_trait;

use super::PgStore;
use super::rows::*;
use crate::model::{
    AccessPolicy, AccessPolicyId, ClientApplication, ClientId, DomainConfiguration, LaunchId,
    MembershipId, Project, ProjectId, ProjectMembership, SmartLaunch, User, UserId,
};
use crate::store::{Directory, DirectoryAdmin, StoreError};

#[async_trait]
impl Directory for PgStore {
    async fn user_by_email(
        &self,
        email: &str,
        project: Option<&ProjectId>,
    ) -> Result<Option<User>, StoreError> {
        if unstorable(email) || project.is_some_and(|p| unstorable(p.as_str())) {
            return Ok(None);
        }
        match project {
            None => {
                self.record(
                    "SELECT record::text FROM fhirgate_users
                     WHERE project_id IS NULL AND email = $1",
                    &[&email],
                )
                .await
            }
            Some(project) => {
                self.record(
                    "SELECT record::text FROM fhirgate_users
                     WHERE project_id = $2 AND email = $1",
                    &[&email, &project.as_str()],
                )
                .await
            }
        }
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        if unstorable(id.as_str()) {
            return Ok(None);
        }
        self.record(
            "SELECT record::text FROM fhirgate_users WHERE id = $1",
            &[&id.as_str()],
        )
        .await
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let version = version_param(user.version)?;
        let record = to_json(user)?;
        self.execute(
            "INSERT INTO fhirgate_users (id, email, project_id, version, record)
             VALUES ($1, $2, $3, $4, $5::text::jsonb)",
            &[
                &user.id.as_str(),
                &user.email,
                &user.project.as_ref().map(ProjectId::as_str),
                &version,
                &record,
            ],
        )
        .await?;
        Ok(())
    }

    async fn update_user(&self, user: &User, expected_version: u64) -> Result<bool, StoreError> {
        let Ok(expected) = i64::try_from(expected_version) else {
            // No stored version is that large.
            return Ok(false);
        };
        let mut updated = user.clone();
        updated.version = expected_version.saturating_add(1);
        let version = version_param(updated.version)?;
        let record = to_json(&updated)?;
        let changed = self
            .execute(
                "UPDATE fhirgate_users
                 SET email = $3, project_id = $4, version = $5, record = $6::text::jsonb
                 WHERE id = $1 AND version = $2",
                &[
                    &user.id.as_str(),
                    &expected,
                    &user.email,
                    &user.project.as_ref().map(ProjectId::as_str),
                    &version,
                    &record,
                ],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn memberships_of(&self, user: &UserId) -> Result<Vec<ProjectMembership>, StoreError> {
        if unstorable(user.as_str()) {
            return Ok(Vec::new());
        }
        self.records(
            "SELECT record::text FROM fhirgate_memberships WHERE user_id = $1 ORDER BY id",
            &[&user.as_str()],
        )
        .await
    }

    async fn memberships_by_external_id(
        &self,
        project: &ProjectId,
        external_id: &str,
    ) -> Result<Vec<ProjectMembership>, StoreError> {
        if unstorable(project.as_str()) || unstorable(external_id) {
            return Ok(Vec::new());
        }
        self.records(
            "SELECT record::text FROM fhirgate_memberships
             WHERE project_id = $1 AND record ->> 'external_id' = $2 ORDER BY id",
            &[&project.as_str(), &external_id],
        )
        .await
    }

    async fn membership(&self, id: &MembershipId) -> Result<Option<ProjectMembership>, StoreError> {
        if unstorable(id.as_str()) {
            return Ok(None);
        }
        self.record(
            "SELECT record::text FROM fhirgate_memberships WHERE id = $1",
            &[&id.as_str()],
        )
        .await
    }

    async fn project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
        if unstorable(id.as_str()) {
            return Ok(None);
        }
        self.record(
            "SELECT record::text FROM fhirgate_projects WHERE id = $1",
            &[&id.as_str()],
        )
        .await
    }

    async fn client(&self, id: &ClientId) -> Result<Option<ClientApplication>, StoreError> {
        if unstorable(id.as_str()) {
            return Ok(None);
        }
        self.record(
            "SELECT record::text FROM fhirgate_clients WHERE id = $1",
            &[&id.as_str()],
        )
        .await
    }

    async fn domain(&self, domain: &str) -> Result<Option<DomainConfiguration>, StoreError> {
        if unstorable(domain) {
            return Ok(None);
        }
        self.record(
            "SELECT record::text FROM fhirgate_domains WHERE domain = $1",
            &[&domain.to_lowercase()],
        )
        .await
    }

    async fn access_policy(&self, id: &AccessPolicyId) -> Result<Option<AccessPolicy>, StoreError> {
        if unstorable(id.as_str()) {
            return Ok(None);
        }
        self.record(
            "SELECT record::text FROM fhirgate_access_policies WHERE id = $1",
            &[&id.as_str()],
        )
        .await
    }

    async fn launch(&self, id: &LaunchId) -> Result<Option<SmartLaunch>, StoreError> {
        if unstorable(id.as_str()) {
            return Ok(None);
        }
        self.record(
            "SELECT record::text FROM fhirgate_launches WHERE id = $1",
            &[&id.as_str()],
        )
        .await
    }
}

#[async_trait]
impl DirectoryAdmin for PgStore {
    async fn put_membership(&self, membership: &ProjectMembership) -> Result<(), StoreError> {
        let record = to_json(membership)?;
        self.execute(
            "INSERT INTO fhirgate_memberships (id, user_id, project_id, record)
             VALUES ($1, $2, $3, $4::text::jsonb)
             ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id,
                 project_id = EXCLUDED.project_id, record = EXCLUDED.record",
            &[
                &membership.id.as_str(),
                &membership.user.as_str(),
                &membership.project.as_str(),
                &record,
            ],
        )
        .await?;
        Ok(())
    }

    async fn put_project(&self, project: &Project) -> Result<(), StoreError> {
        let record = to_json(project)?;
        self.execute(
            "INSERT INTO fhirgate_projects (id, record) VALUES ($1, $2::text::jsonb)
             ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
            &[&project.id.as_str(), &record],
        )
        .await?;
        Ok(())
    }

    async fn put_client(&self, client: &ClientApplication) -> Result<(), StoreError> {
        let record = to_json(client)?;
        self.execute(
            "INSERT INTO fhirgate_clients (id, project_id, record) VALUES ($1, $2, $3::text::jsonb)
             ON CONFLICT (id) DO UPDATE SET project_id = EXCLUDED.project_id,
                 record = EXCLUDED.record",
            &[&client.id.as_str(), &client.project.as_str(), &record],
        )
        .await?;
        Ok(())
    }

    async fn put_domain(&self, domain: &DomainConfiguration) -> Result<(), StoreError> {
        let mut config = domain.clone();
        config.domain = config.domain.to_lowercase();
        let record = to_json(&config)?;
        self.execute(
            "INSERT INTO fhirgate_domains (domain, record) VALUES ($1, $2::text::jsonb)
             ON CONFLICT (domain) DO UPDATE SET record = EXCLUDED.record",
            &[&config.domain, &record],
        )
        .await?;
        Ok(())
    }

    async fn put_access_policy(&self, policy: &AccessPolicy) -> Result<(), StoreError> {
        let record = to_json(policy)?;
        self.execute(
            "INSERT INTO fhirgate_access_policies (id, record) VALUES ($1, $2::text::jsonb)
             ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
            &[&policy.id.as_str(), &record],
        )
        .await?;
        Ok(())
    }

    async fn put_launch(&self, launch: &SmartLaunch) -> Result<(), StoreError> {
        let record = to_json(launch)?;
        self.execute(
            "INSERT INTO fhirgate_launches (id, record) VALUES ($1, $2::text::jsonb)
             ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
            &[&launch.id.as_str(), &record],
        )
        .await?;
        Ok(())
    }
}
