//! [`RequestStore`]: security requests (reset, invite, verify-email, sign-in codes) between
//! the mail that carries their secret and the one request that consumes it.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;
use crate::model::{RequestId, RequestKind, SecurityRequest, UserId};
use crate::secret::SecretHash;

/// What a store did with a presented security-request secret: the raw answer of
/// [`RequestStore::consume_request`], read by [`RequestRedemption::classify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestPresented {
    /// This call consumed the request; the record as stored after it (`used: true`).
    Changed(SecurityRequest),
    /// This call changed nothing. `record` is the request as stored now; `superseded` says
    /// a newer request of the same kind exists for the same user.
    Unchanged {
        /// The request.
        record: SecurityRequest,
        /// A newer request of its kind for its user exists.
        superseded: bool,
    },
    /// No request has this id.
    NotFound,
}

/// What presenting a security request meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestRedemption {
    /// First and only redemption; the request is stored as used.
    Redeemed(SecurityRequest),
    /// It was consumed before.
    Used,
    /// A newer request of the same kind was issued to the same user since.
    Superseded,
    /// Its lifetime is over.
    Expired,
    /// The secret is not the request's (nothing was consumed).
    WrongSecret,
    /// No such request.
    Unknown,
}

impl RequestRedemption {
    /// The one reading of a store's answer to `secret` at `now`, the same for every store:
    /// the store's change is the redemption; otherwise used beats superseded beats expired
    /// beats a wrong secret, and a request that was redeemable by its record but not when
    /// the store tried (it changed in between) is [`Used`](Self::Used).
    pub fn classify(outcome: RequestPresented, secret: &SecretHash, now: OffsetDateTime) -> Self {
        let (record, superseded) = match outcome {
            RequestPresented::Changed(record) => return Self::Redeemed(record),
            RequestPresented::NotFound => return Self::Unknown,
            RequestPresented::Unchanged { record, superseded } => (record, superseded),
        };
        if record.used {
            Self::Used
        } else if superseded {
            Self::Superseded
        } else if now >= record.expires_at {
            Self::Expired
        } else if !record.secret.ct_eq(secret) {
            Self::WrongSecret
        } else {
            Self::Used
        }
    }
}

/// Presents `secret` for request `id` to `store` and classifies the answer.
pub async fn redeem_request(
    store: &dyn RequestStore,
    id: &RequestId,
    secret: &SecretHash,
    now: OffsetDateTime,
) -> Result<RequestRedemption, StoreError> {
    let outcome = store.consume_request(id, secret, now).await?;
    Ok(RequestRedemption::classify(outcome, secret, now))
}

/// Security requests: created, read, consumed once.
#[async_trait]
pub trait RequestStore: Send + Sync {
    /// Stores a new request. It is from now on the newest of its kind for its user, so
    /// every earlier one of that kind and user can no longer be consumed. Fails with
    /// [`StoreError::Conflict`] when the id exists.
    async fn create_request(&self, request: &SecurityRequest) -> Result<(), StoreError>;
    /// A request by id.
    async fn request(&self, id: &RequestId) -> Result<Option<SecurityRequest>, StoreError>;
    /// The newest request of `kind` for `user` (used or not).
    async fn latest_request(
        &self,
        user: &UserId,
        kind: RequestKind,
    ) -> Result<Option<SecurityRequest>, StoreError>;
    /// Atomically consumes request `id`: if it is unused, its secret hash is `secret`, it is
    /// unexpired at `now` and no newer request of its kind exists for its user, mark it used
    /// and answer [`RequestPresented::Changed`]. Otherwise change nothing and answer
    /// [`RequestPresented::Unchanged`] or [`RequestPresented::NotFound`]. A wrong secret
    /// consumes nothing. Of any number of concurrent calls with the right secret exactly one
    /// sees `Changed`. Callers read the answer with [`RequestRedemption::classify`].
    async fn consume_request(
        &self,
        id: &RequestId,
        secret: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<RequestPresented, StoreError>;
    /// Deletes requests that expired before `now`; returns how many.
    async fn purge_expired_requests(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}
