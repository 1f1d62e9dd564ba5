//! [`Combined`]: one store made of three, each kept where it belongs.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::{
    Attempt, Directory, DirectoryAdmin, LoginStore, OnceKey, OnceStore, Presented, StoreError,
};
use crate::model::{
    AccessPolicy, AccessPolicyId, ClientApplication, ClientId, DomainConfiguration, LaunchId,
    LoginId, LoginRecord, MembershipId, Project, ProjectId, ProjectMembership, SmartLaunch, User,
    UserId,
};
use crate::secret::SecretHash;

/// A store made of a directory, a login store and a single-use store, each implementing its
/// own trait: identity data in the host's database, logins and single-use keys elsewhere, say.
/// It implements every store trait by handing each call to its part, so the parts can be given
/// to [`EngineBuilder::store`](crate::EngineBuilder::store) as one, or checked together by the
/// conformance suite (feature `test-util`).
#[derive(Debug, Clone, Default)]
pub struct Combined<D, L, O> {
    /// Identity data.
    pub directory: D,
    /// Logins.
    pub logins: L,
    /// Single-use keys, watermarks and attempt windows.
    pub once: O,
}

impl<D, L, O> Combined<D, L, O> {
    /// The three parts as one store.
    pub fn new(directory: D, logins: L, once: O) -> Self {
        Self {
            directory,
            logins,
            once,
        }
    }
}

#[async_trait]
impl<D: Directory, L: Send + Sync, O: Send + Sync> Directory for Combined<D, L, O> {
    async fn user_by_email(
        &self,
        email: &str,
        project: Option<&ProjectId>,
    ) -> Result<Option<User>, StoreError> {
        self.directory.user_by_email(email, project).await
    }
    async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        self.directory.user(id).await
    }
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        self.directory.create_user(user).await
    }
    async fn update_user(&self, user: &User, expected_version: u64) -> Result<bool, StoreError> {
        self.directory.update_user(user, expected_version).await
    }
    async fn memberships_of(&self, user: &UserId) -> Result<Vec<ProjectMembership>, StoreError> {
        self.directory.memberships_of(user).await
    }
    async fn membership(&self, id: &MembershipId) -> Result<Option<ProjectMembership>, StoreError> {
        self.directory.membership(id).await
    }
    async fn memberships_by_external_id(
        &self,
        project: &ProjectId,
        external_id: &str,
    ) -> Result<Vec<ProjectMembership>, StoreError> {
        self.directory
            .memberships_by_external_id(project, external_id)
            .await
    }
    async fn project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
        self.directory.project(id).await
    }
    async fn client(&self, id: &ClientId) -> Result<Option<ClientApplication>, StoreError> {
        self.directory.client(id).await
    }
    async fn domain(&self, domain: &str) -> Result<Option<DomainConfiguration>, StoreError> {
        self.directory.domain(domain).await
    }
    async fn access_policy(&self, id: &AccessPolicyId) -> Result<Option<AccessPolicy>, StoreError> {
        self.directory.access_policy(id).await
    }
    async fn launch(&self, id: &LaunchId) -> Result<Option<SmartLaunch>, StoreError> {
        self.directory.launch(id).await
    }
}

#[async_trait]
impl<D: DirectoryAdmin, L: Send + Sync, O: Send + Sync> DirectoryAdmin for Combined<D, L, O> {
    async fn put_membership(&self, membership: &ProjectMembership) -> Result<(), StoreError> {
        self.directory.put_membership(membership).await
    }
    async fn put_project(&self, project: &Project) -> Result<(), StoreError> {
        self.directory.put_project(project).await
    }
    async fn put_client(&self, client: &ClientApplication) -> Result<(), StoreError> {
        self.directory.put_client(client).await
    }
    async fn put_domain(&self, domain: &DomainConfiguration) -> Result<(), StoreError> {
        self.directory.put_domain(domain).await
    }
    async fn put_access_policy(&self, policy: &AccessPolicy) -> Result<(), StoreError> {
        self.directory.put_access_policy(policy).await
    }
    async fn put_launch(&self, launch: &SmartLaunch) -> Result<(), StoreError> {
        self.directory.put_launch(launch).await
    }
}

#[async_trait]
impl<D: Send + Sync, L: LoginStore, O: Send + Sync> LoginStore for Combined<D, L, O> {
    async fn create_login(&self, record: &LoginRecord) -> Result<(), StoreError> {
        self.logins.create_login(record).await
    }
    async fn login_by_handle(
        &self,
        handle: &SecretHash,
    ) -> Result<Option<LoginRecord>, StoreError> {
        self.logins.login_by_handle(handle).await
    }
    async fn login(&self, id: &LoginId) -> Result<Option<LoginRecord>, StoreError> {
        self.logins.login(id).await
    }
    async fn update_login(
        &self,
        record: &LoginRecord,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        self.logins.update_login(record, expected_version).await
    }
    async fn consume_code(
        &self,
        code: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<Presented, StoreError> {
        self.logins.consume_code(code, now).await
    }
    async fn rotate_refresh(
        &self,
        presented: &SecretHash,
        next: &SecretHash,
        client: Option<&ClientId>,
        now: OffsetDateTime,
    ) -> Result<Presented, StoreError> {
        self.logins
            .rotate_refresh(presented, next, client, now)
            .await
    }
    async fn login_by_refresh(
        &self,
        token: &SecretHash,
    ) -> Result<Option<LoginRecord>, StoreError> {
        self.logins.login_by_refresh(token).await
    }
    async fn login_by_session(
        &self,
        session: &SecretHash,
    ) -> Result<Option<LoginRecord>, StoreError> {
        self.logins.login_by_session(session).await
    }
    async fn revoke_login(&self, id: &LoginId) -> Result<bool, StoreError> {
        self.logins.revoke_login(id).await
    }
    async fn revoke_user_logins(&self, user: &UserId) -> Result<u64, StoreError> {
        self.logins.revoke_user_logins(user).await
    }
    async fn logins_of_user(&self, user: &UserId) -> Result<Vec<LoginRecord>, StoreError> {
        self.logins.logins_of_user(user).await
    }
    async fn purge_expired_logins(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.logins.purge_expired_logins(now).await
    }
}

#[async_trait]
impl<D: Send + Sync, L: Send + Sync, O: OnceStore> OnceStore for Combined<D, L, O> {
    async fn claim_once(
        &self,
        key: &OnceKey,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.once.claim_once(key, expires_at, now).await
    }
    async fn claim_above(
        &self,
        key: &OnceKey,
        value: u64,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.once.claim_above(key, value, expires_at, now).await
    }
    async fn take_attempt(
        &self,
        key: &OnceKey,
        limit: u32,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<Attempt, StoreError> {
        self.once.take_attempt(key, limit, window, now).await
    }
    async fn clear_attempts(&self, key: &OnceKey) -> Result<(), StoreError> {
        self.once.clear_attempts(key).await
    }
    async fn purge_expired_once(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.once.purge_expired_once(now).await
    }
}

/// Security requests live with the logins: both are short-lived secrets of one user.
#[async_trait]
impl<D: Send + Sync, L: super::RequestStore, O: Send + Sync> super::RequestStore
    for Combined<D, L, O>
{
    async fn create_request(
        &self,
        request: &crate::model::SecurityRequest,
    ) -> Result<(), StoreError> {
        self.logins.create_request(request).await
    }
    async fn request(
        &self,
        id: &crate::model::RequestId,
    ) -> Result<Option<crate::model::SecurityRequest>, StoreError> {
        self.logins.request(id).await
    }
    async fn latest_request(
        &self,
        user: &UserId,
        kind: crate::model::RequestKind,
    ) -> Result<Option<crate::model::SecurityRequest>, StoreError> {
        self.logins.latest_request(user, kind).await
    }
    async fn consume_request(
        &self,
        id: &crate::model::RequestId,
        secret: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<super::RequestPresented, StoreError> {
        self.logins.consume_request(id, secret, now).await
    }
    async fn purge_expired_requests(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.logins.purge_expired_requests(now).await
    }
}
