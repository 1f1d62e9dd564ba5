//! `MemoryStore`: every store trait in one process's memory.
//!
//! Each atomic operation runs entirely under one lock, so it is atomic with respect to every
//! other operation on the same store, on any number of threads. Cloning a `MemoryStore`
//! shares the same data (it is a handle), which is how a host keeps a copy for seeding while
//! the engine holds another.

mod requests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::{
    Attempt, Directory, DirectoryAdmin, LoginStore, OnceKey, OnceStore, Presented, StoreError,
};
use crate::model::{
    AccessPolicy, AccessPolicyId, ClientApplication, ClientId, DomainConfiguration, LaunchId,
    LoginId, LoginRecord, MembershipId, Project, ProjectId, ProjectMembership, SmartLaunch,
    StageTag, User, UserId,
};
use crate::secret::SecretHash;

/// An in-memory implementation of [`Directory`], [`LoginStore`] and [`OnceStore`]: the
/// embedded default, correct under concurrency within one process.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    directory: RwLock<DirectoryData>,
    logins: Mutex<LoginData>,
    once: Mutex<OnceData>,
    requests: Mutex<requests::RequestData>,
}

#[derive(Default, Clone, PartialEq, Eq, Debug)]
struct DirectoryData {
    users: BTreeMap<UserId, User>,
    emails: BTreeMap<(Option<ProjectId>, String), UserId>,
    memberships: BTreeMap<MembershipId, ProjectMembership>,
    memberships_by_user: BTreeMap<UserId, BTreeSet<MembershipId>>,
    projects: BTreeMap<ProjectId, Project>,
    clients: BTreeMap<ClientId, ClientApplication>,
    domains: BTreeMap<String, DomainConfiguration>,
    policies: BTreeMap<AccessPolicyId, AccessPolicy>,
    launches: BTreeMap<LaunchId, SmartLaunch>,
}

#[derive(Default, Clone, PartialEq, Eq, Debug)]
struct LoginData {
    logins: HashMap<LoginId, LoginRecord>,
    /// Every secret hash a login can be found by (handle, code, refresh tokens, session),
    /// each pointing at its login. Hashes of 256-bit secrets never collide across kinds.
    by_hash: HashMap<SecretHash, LoginId>,
    /// Rotated-out refresh tokens, each pointing at its family's login: kept beside the
    /// records, never rewritten, gone with their login.
    retired: HashMap<SecretHash, LoginId>,
}

#[derive(Default, Clone, PartialEq, Eq, Debug)]
struct OnceData {
    claims: HashMap<OnceKey, OffsetDateTime>,
    watermarks: HashMap<OnceKey, (u64, OffsetDateTime)>,
    counters: HashMap<OnceKey, (u32, OffsetDateTime)>,
}

/// A copy of everything a [`MemoryStore`] holds, for tests that assert a refused request
/// changed nothing.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MemorySnapshot {
    directory: DirectoryData,
    logins: BTreeMap<String, LoginRecord>,
    once: BTreeMap<String, String>,
    requests: requests::RequestData,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A full copy of the current contents.
    pub fn snapshot(&self) -> MemorySnapshot {
        let directory = self.dir().clone();
        let logins = self
            .logins()
            .logins
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let once_data = self.once();
        let mut once = BTreeMap::new();
        for (k, v) in &once_data.claims {
            once.insert(format!("claim {}", k.as_str()), format!("{v}"));
        }
        for (k, (n, e)) in &once_data.watermarks {
            once.insert(format!("watermark {}", k.as_str()), format!("{n} {e}"));
        }
        for (k, (n, e)) in &once_data.counters {
            once.insert(format!("counter {}", k.as_str()), format!("{n} {e}"));
        }
        MemorySnapshot {
            directory,
            logins,
            once,
            requests: self.requests().clone(),
        }
    }

    /// Every stored login (for tests and diagnostics), in no particular order.
    pub fn snapshot_logins(&self) -> Vec<LoginRecord> {
        self.logins().logins.values().cloned().collect()
    }

    /// Number of stored logins (for tests and diagnostics).
    pub fn login_count(&self) -> usize {
        self.logins().logins.len()
    }

    /// Number of stored single-use claims, watermarks and attempt counters (for tests and
    /// diagnostics: what anonymous requests made the store keep).
    pub fn once_count(&self) -> usize {
        let data = self.once();
        data.claims.len() + data.watermarks.len() + data.counters.len()
    }

    fn dir(&self) -> RwLockReadGuard<'_, DirectoryData> {
        self.inner
            .directory
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn dir_mut(&self) -> RwLockWriteGuard<'_, DirectoryData> {
        self.inner
            .directory
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn logins(&self) -> MutexGuard<'_, LoginData> {
        self.inner
            .logins
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Number of stored security requests (for tests and diagnostics).
    pub fn request_count(&self) -> usize {
        self.requests().len()
    }

    fn requests(&self) -> MutexGuard<'_, requests::RequestData> {
        self.inner
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn once(&self) -> MutexGuard<'_, OnceData> {
        self.inner
            .once
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("logins", &self.login_count())
            .finish_non_exhaustive()
    }
}

fn email_key(user: &User) -> (Option<ProjectId>, String) {
    (user.project.clone(), user.email.clone())
}

#[async_trait]
impl Directory for MemoryStore {
    async fn user_by_email(
        &self,
        email: &str,
        project: Option<&ProjectId>,
    ) -> Result<Option<User>, StoreError> {
        let dir = self.dir();
        let key = (project.cloned(), email.to_owned());
        Ok(dir
            .emails
            .get(&key)
            .and_then(|id| dir.users.get(id))
            .cloned())
    }

    async fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        Ok(self.dir().users.get(id).cloned())
    }

    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let mut dir = self.dir_mut();
        if dir.users.contains_key(&user.id) {
            return Err(StoreError::Conflict(format!("user {} exists", user.id)));
        }
        let key = email_key(user);
        if dir.emails.contains_key(&key) {
            return Err(StoreError::Conflict(format!(
                "email {} is taken in this scope",
                user.email
            )));
        }
        dir.emails.insert(key, user.id.clone());
        dir.users.insert(user.id.clone(), user.clone());
        Ok(())
    }

    async fn update_user(&self, user: &User, expected_version: u64) -> Result<bool, StoreError> {
        let mut dir = self.dir_mut();
        let Some(stored) = dir.users.get(&user.id) else {
            return Ok(false);
        };
        if stored.version != expected_version {
            return Ok(false);
        }
        let old_key = email_key(stored);
        let new_key = email_key(user);
        if old_key != new_key {
            if dir.emails.contains_key(&new_key) {
                return Err(StoreError::Conflict(format!(
                    "email {} is taken in this scope",
                    user.email
                )));
            }
            dir.emails.remove(&old_key);
            dir.emails.insert(new_key, user.id.clone());
        }
        let mut updated = user.clone();
        updated.version = expected_version.saturating_add(1);
        dir.users.insert(user.id.clone(), updated);
        Ok(true)
    }

    async fn memberships_of(&self, user: &UserId) -> Result<Vec<ProjectMembership>, StoreError> {
        let dir = self.dir();
        Ok(dir
            .memberships_by_user
            .get(user)
            .into_iter()
            .flatten()
            .filter_map(|id| dir.memberships.get(id).cloned())
            .collect())
    }

    async fn membership(&self, id: &MembershipId) -> Result<Option<ProjectMembership>, StoreError> {
        Ok(self.dir().memberships.get(id).cloned())
    }

    async fn memberships_by_external_id(
        &self,
        project: &ProjectId,
        external_id: &str,
    ) -> Result<Vec<ProjectMembership>, StoreError> {
        Ok(self
            .dir()
            .memberships
            .values()
            .filter(|m| m.project == *project && m.external_id.as_deref() == Some(external_id))
            .cloned()
            .collect())
    }

    async fn project(&self, id: &ProjectId) -> Result<Option<Project>, StoreError> {
        Ok(self.dir().projects.get(id).cloned())
    }

    async fn client(&self, id: &ClientId) -> Result<Option<ClientApplication>, StoreError> {
        Ok(self.dir().clients.get(id).cloned())
    }

    async fn domain(&self, domain: &str) -> Result<Option<DomainConfiguration>, StoreError> {
        Ok(self.dir().domains.get(&domain.to_lowercase()).cloned())
    }

    async fn access_policy(&self, id: &AccessPolicyId) -> Result<Option<AccessPolicy>, StoreError> {
        Ok(self.dir().policies.get(id).cloned())
    }

    async fn launch(&self, id: &LaunchId) -> Result<Option<SmartLaunch>, StoreError> {
        Ok(self.dir().launches.get(id).cloned())
    }
}

#[async_trait]
impl DirectoryAdmin for MemoryStore {
    async fn put_membership(&self, membership: &ProjectMembership) -> Result<(), StoreError> {
        let mut dir = self.dir_mut();
        if let Some(old) = dir.memberships.get(&membership.id).map(|m| m.user.clone())
            && let Some(set) = dir.memberships_by_user.get_mut(&old)
        {
            set.remove(&membership.id);
        }
        dir.memberships_by_user
            .entry(membership.user.clone())
            .or_default()
            .insert(membership.id.clone());
        dir.memberships
            .insert(membership.id.clone(), membership.clone());
        Ok(())
    }

    async fn put_project(&self, project: &Project) -> Result<(), StoreError> {
        self.dir_mut()
            .projects
            .insert(project.id.clone(), project.clone());
        Ok(())
    }

    async fn put_client(&self, client: &ClientApplication) -> Result<(), StoreError> {
        self.dir_mut()
            .clients
            .insert(client.id.clone(), client.clone());
        Ok(())
    }

    async fn put_domain(&self, domain: &DomainConfiguration) -> Result<(), StoreError> {
        let mut config = domain.clone();
        config.domain = config.domain.to_lowercase();
        self.dir_mut().domains.insert(config.domain.clone(), config);
        Ok(())
    }

    async fn put_access_policy(&self, policy: &AccessPolicy) -> Result<(), StoreError> {
        self.dir_mut()
            .policies
            .insert(policy.id.clone(), policy.clone());
        Ok(())
    }

    async fn put_launch(&self, launch: &SmartLaunch) -> Result<(), StoreError> {
        self.dir_mut()
            .launches
            .insert(launch.id.clone(), launch.clone());
        Ok(())
    }
}

/// Every hash a record can be looked up by.
fn hashes(record: &LoginRecord) -> impl Iterator<Item = SecretHash> + '_ {
    std::iter::once(record.handle_hash)
        .chain(record.code.as_ref().map(|c| c.hash))
        .chain(record.session.as_ref().map(|s| s.hash))
        .chain(record.refresh.as_ref().map(|r| r.current))
}

impl LoginData {
    /// A hash of `record` that already points at another login.
    fn clash(&self, record: &LoginRecord) -> bool {
        hashes(record).any(|h| {
            self.by_hash.get(&h).is_some_and(|id| *id != record.id) || self.retired.contains_key(&h)
        })
    }

    fn unindex(&mut self, record: &LoginRecord) {
        for hash in hashes(record) {
            self.by_hash.remove(&hash);
        }
    }

    fn index(&mut self, record: &LoginRecord) {
        for hash in hashes(record) {
            self.by_hash.insert(hash, record.id.clone());
        }
    }

    fn find(&self, hash: &SecretHash) -> Option<&LoginRecord> {
        self.by_hash.get(hash).and_then(|id| self.logins.get(id))
    }

    /// Replaces a stored record, keeping the index in step.
    fn replace(&mut self, record: LoginRecord) {
        if let Some(old) = self.logins.get(&record.id).cloned() {
            self.unindex(&old);
        }
        self.index(&record);
        self.logins.insert(record.id.clone(), record);
    }
}

#[async_trait]
impl LoginStore for MemoryStore {
    async fn create_login(&self, record: &LoginRecord) -> Result<(), StoreError> {
        let mut data = self.logins();
        if data.logins.contains_key(&record.id)
            || hashes(record)
                .any(|h| data.by_hash.contains_key(&h) || data.retired.contains_key(&h))
        {
            return Err(StoreError::Conflict(format!("login {} exists", record.id)));
        }
        data.replace(record.clone());
        Ok(())
    }

    async fn login_by_handle(
        &self,
        handle: &SecretHash,
    ) -> Result<Option<LoginRecord>, StoreError> {
        let data = self.logins();
        Ok(data
            .find(handle)
            .filter(|r| r.handle_hash.ct_eq(handle))
            .cloned())
    }

    async fn login(&self, id: &LoginId) -> Result<Option<LoginRecord>, StoreError> {
        Ok(self.logins().logins.get(id).cloned())
    }

    async fn update_login(
        &self,
        record: &LoginRecord,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        let mut data = self.logins();
        let Some(stored) = data.logins.get(&record.id) else {
            return Ok(false);
        };
        if stored.version != expected_version
            || stored.revoked
            || record.version != expected_version.saturating_add(1)
        {
            return Ok(false);
        }
        if data.clash(record) {
            return Err(StoreError::Conflict("secret hash exists".to_owned()));
        }
        data.replace(record.clone());
        Ok(true)
    }

    async fn consume_code(
        &self,
        code: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<Presented, StoreError> {
        let mut data = self.logins();
        let Some(id) = data.by_hash.get(code).cloned() else {
            return Ok(Presented::NotFound);
        };
        let Some(record) = data.logins.get_mut(&id) else {
            return Ok(Presented::NotFound);
        };
        let redeemable = !record.revoked
            && record.stage == StageTag::Authorized
            && record
                .code
                .as_ref()
                .is_some_and(|c| c.hash.ct_eq(code) && !c.redeemed && now < c.expires_at);
        let Some(state) = record.code.as_mut().filter(|_| redeemable) else {
            return Ok(Presented::Unchanged {
                record: record.clone(),
                retired: false,
            });
        };
        state.redeemed = true;
        record.stage = StageTag::Granted;
        record.version = record.version.saturating_add(1);
        Ok(Presented::Changed(record.clone()))
    }

    async fn rotate_refresh(
        &self,
        presented: &SecretHash,
        next: &SecretHash,
        client: Option<&ClientId>,
        now: OffsetDateTime,
    ) -> Result<Presented, StoreError> {
        let mut data = self.logins();
        if data.by_hash.contains_key(next) || data.retired.contains_key(next) {
            return Err(StoreError::Conflict("secret hash exists".to_owned()));
        }
        let (id, retired) = match (data.by_hash.get(presented), data.retired.get(presented)) {
            (Some(id), _) => (id.clone(), false),
            (None, Some(id)) => (id.clone(), true),
            (None, None) => return Ok(Presented::NotFound),
        };
        let Some(record) = data.logins.get_mut(&id) else {
            return Ok(Presented::NotFound);
        };
        let rotatable = !retired
            && !record.revoked
            && record.params.client.as_ref() == client
            && record
                .refresh
                .as_ref()
                .is_some_and(|f| f.current.ct_eq(presented) && now < f.expires_at);
        let Some(family) = record.refresh.as_mut().filter(|_| rotatable) else {
            return Ok(Presented::Unchanged {
                record: record.clone(),
                retired,
            });
        };
        let old = family.current;
        family.current = *next;
        record.version = record.version.saturating_add(1);
        let updated = record.clone();
        data.by_hash.remove(&old);
        data.retired.insert(old, id.clone());
        data.by_hash.insert(*next, id);
        Ok(Presented::Changed(updated))
    }

    async fn login_by_refresh(
        &self,
        token: &SecretHash,
    ) -> Result<Option<LoginRecord>, StoreError> {
        let data = self.logins();
        if let Some(id) = data.retired.get(token) {
            return Ok(data.logins.get(id).filter(|r| r.refresh.is_some()).cloned());
        }
        Ok(data
            .find(token)
            .filter(|r| r.refresh.as_ref().is_some_and(|f| f.current.ct_eq(token)))
            .cloned())
    }

    async fn login_by_session(
        &self,
        session: &SecretHash,
    ) -> Result<Option<LoginRecord>, StoreError> {
        let data = self.logins();
        Ok(data
            .find(session)
            .filter(|r| r.session.as_ref().is_some_and(|s| s.hash.ct_eq(session)))
            .cloned())
    }

    async fn revoke_login(&self, id: &LoginId) -> Result<bool, StoreError> {
        let mut data = self.logins();
        match data.logins.get_mut(id) {
            Some(record) if !record.revoked => {
                record.revoked = true;
                record.version = record.version.saturating_add(1);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn revoke_user_logins(&self, user: &UserId) -> Result<u64, StoreError> {
        let mut data = self.logins();
        let mut count = 0;
        for record in data.logins.values_mut() {
            if record.user.as_ref() == Some(user) && !record.revoked {
                record.revoked = true;
                record.version = record.version.saturating_add(1);
                count += 1;
            }
        }
        Ok(count)
    }

    async fn logins_of_user(&self, user: &UserId) -> Result<Vec<LoginRecord>, StoreError> {
        let data = self.logins();
        let mut found: Vec<LoginRecord> = data
            .logins
            .values()
            .filter(|r| r.user.as_ref() == Some(user))
            .cloned()
            .collect();
        found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.id.cmp(&b.id)));
        Ok(found)
    }

    async fn purge_expired_logins(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut data = self.logins();
        let dead: Vec<LoginRecord> = data
            .logins
            .values()
            .filter(|r| r.expired_at(now))
            .cloned()
            .collect();
        for record in &dead {
            data.unindex(record);
            data.logins.remove(&record.id);
        }
        if !dead.is_empty() {
            let LoginData {
                logins, retired, ..
            } = &mut *data;
            retired.retain(|_, id| logins.contains_key(id));
        }
        Ok(dead.len() as u64)
    }
}

#[async_trait]
impl OnceStore for MemoryStore {
    async fn claim_once(
        &self,
        key: &OnceKey,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut data = self.once();
        match data.claims.get(key) {
            Some(until) if *until > now => Ok(false),
            _ => {
                data.claims.insert(key.clone(), expires_at);
                Ok(true)
            }
        }
    }

    async fn claim_above(
        &self,
        key: &OnceKey,
        value: u64,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut data = self.once();
        match data.watermarks.get(key) {
            Some((current, until)) if *until > now && value <= *current => Ok(false),
            _ => {
                data.watermarks.insert(key.clone(), (value, expires_at));
                Ok(true)
            }
        }
    }

    async fn take_attempt(
        &self,
        key: &OnceKey,
        limit: u32,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<Attempt, StoreError> {
        let mut data = self.once();
        let entry = data
            .counters
            .entry(key.clone())
            .or_insert((0, now.saturating_add(window)));
        if entry.1 <= now {
            *entry = (0, now.saturating_add(window));
        }
        if entry.0 >= limit {
            return Ok(Attempt::Limited {
                retry_after: entry.1,
            });
        }
        entry.0 = entry.0.saturating_add(1);
        Ok(Attempt::Allowed { count: entry.0 })
    }

    async fn clear_attempts(&self, key: &OnceKey) -> Result<(), StoreError> {
        self.once().counters.remove(key);
        Ok(())
    }

    async fn purge_expired_once(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut data = self.once();
        let before = data.claims.len() + data.watermarks.len() + data.counters.len();
        data.claims.retain(|_, until| *until > now);
        data.watermarks.retain(|_, (_, until)| *until > now);
        data.counters.retain(|_, (_, until)| *until > now);
        let after = data.claims.len() + data.watermarks.len() + data.counters.len();
        Ok(before.saturating_sub(after) as u64)
    }
}
