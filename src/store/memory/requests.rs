//! [`RequestStore`] for [`MemoryStore`]: every operation under the requests lock.

use std::collections::HashMap;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::MemoryStore;
use crate::model::{RequestId, RequestKind, SecurityRequest, UserId};
use crate::secret::SecretHash;
use crate::store::{RequestPresented, RequestStore, StoreError};

#[derive(Default, Clone, PartialEq, Eq, Debug)]
pub(super) struct RequestData {
    requests: HashMap<RequestId, SecurityRequest>,
    /// The newest request of each kind per user: the only one that can be consumed.
    newest: HashMap<(UserId, RequestKind), RequestId>,
}

impl RequestData {
    pub(super) fn len(&self) -> usize {
        self.requests.len()
    }
}

#[async_trait]
impl RequestStore for MemoryStore {
    async fn create_request(&self, request: &SecurityRequest) -> Result<(), StoreError> {
        let mut data = self.requests();
        if data.requests.contains_key(&request.id) {
            return Err(StoreError::Conflict(format!(
                "security request {} exists",
                request.id
            )));
        }
        data.requests.insert(request.id.clone(), request.clone());
        data.newest
            .insert((request.user.clone(), request.kind), request.id.clone());
        Ok(())
    }

    async fn request(&self, id: &RequestId) -> Result<Option<SecurityRequest>, StoreError> {
        Ok(self.requests().requests.get(id).cloned())
    }

    async fn latest_request(
        &self,
        user: &UserId,
        kind: RequestKind,
    ) -> Result<Option<SecurityRequest>, StoreError> {
        let data = self.requests();
        Ok(data
            .newest
            .get(&(user.clone(), kind))
            .and_then(|id| data.requests.get(id))
            .cloned())
    }

    async fn consume_request(
        &self,
        id: &RequestId,
        secret: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<RequestPresented, StoreError> {
        let mut data = self.requests();
        let Some(record) = data.requests.get(id) else {
            return Ok(RequestPresented::NotFound);
        };
        let superseded = data.newest.get(&(record.user.clone(), record.kind)) != Some(id);
        let consumable =
            !record.used && !superseded && now < record.expires_at && record.secret.ct_eq(secret);
        if !consumable {
            return Ok(RequestPresented::Unchanged {
                record: record.clone(),
                superseded,
            });
        }
        let Some(record) = data.requests.get_mut(id) else {
            return Ok(RequestPresented::NotFound);
        };
        record.used = true;
        Ok(RequestPresented::Changed(record.clone()))
    }

    async fn purge_expired_requests(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut data = self.requests();
        let before = data.requests.len();
        data.requests.retain(|_, r| r.expires_at > now);
        let RequestData { requests, newest } = &mut *data;
        newest.retain(|_, id| requests.contains_key(id));
        Ok(u64::try_from(before.saturating_sub(data.requests.len())).unwrap_or(u64::MAX))
    }
}
