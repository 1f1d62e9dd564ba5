//! [`RequestStore`] on PostgreSQL: each decision one statement.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::PgStore;
use super::rows::*;
use crate::model::{RequestId, RequestKind, SecurityRequest, UserId};
use crate::secret::SecretHash;
use crate::store::{RequestPresented, RequestStore, StoreError};

/// Consumes a request that is unused, holds this secret, is unexpired and is the newest of
/// its kind for its user. A concurrent consume of the same row waits for the first and then
/// re-checks `NOT used`, so exactly one succeeds.
const CONSUME: &str = "
UPDATE fhirgate_security_requests r
SET used = true, record = jsonb_set(r.record, '{used}', 'true'::jsonb)
WHERE r.id = $1 AND NOT r.used AND r.secret = $2 AND r.expires_at > $3
  AND NOT EXISTS (
      SELECT 1 FROM fhirgate_security_requests n
      WHERE n.user_id = r.user_id AND n.kind = r.kind AND n.seq > r.seq)
RETURNING r.record::text";

/// The request as stored, and whether a newer one of its kind exists for its user.
const READ_WITH_SUPERSEDED: &str = "
SELECT r.record::text, EXISTS (
    SELECT 1 FROM fhirgate_security_requests n
    WHERE n.user_id = r.user_id AND n.kind = r.kind AND n.seq > r.seq)
FROM fhirgate_security_requests r WHERE r.id = $1";

#[async_trait]
impl RequestStore for PgStore {
    async fn create_request(&self, request: &SecurityRequest) -> Result<(), StoreError> {
        let record = to_json(request)?;
        self.execute(
            "INSERT INTO fhirgate_security_requests
                 (id, kind, user_id, secret, used, expires_at, record)
             VALUES ($1, $2, $3, $4, $5, $6, $7::text::jsonb)",
            &[
                &request.id.as_str(),
                &request.kind.as_str(),
                &request.user.as_str(),
                &hash_param(&request.secret),
                &request.used,
                &pg_time(request.expires_at),
                &record,
            ],
        )
        .await?;
        Ok(())
    }

    async fn request(&self, id: &RequestId) -> Result<Option<SecurityRequest>, StoreError> {
        if unstorable(id.as_str()) {
            return Ok(None);
        }
        self.record(
            "SELECT record::text FROM fhirgate_security_requests WHERE id = $1",
            &[&id.as_str()],
        )
        .await
    }

    async fn latest_request(
        &self,
        user: &UserId,
        kind: RequestKind,
    ) -> Result<Option<SecurityRequest>, StoreError> {
        if unstorable(user.as_str()) {
            return Ok(None);
        }
        self.record(
            "SELECT record::text FROM fhirgate_security_requests
             WHERE user_id = $1 AND kind = $2 ORDER BY seq DESC LIMIT 1",
            &[&user.as_str(), &kind.as_str()],
        )
        .await
    }

    async fn consume_request(
        &self,
        id: &RequestId,
        secret: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<RequestPresented, StoreError> {
        if unstorable(id.as_str()) {
            return Ok(RequestPresented::NotFound);
        }
        if let Some(record) = self
            .record(CONSUME, &[&id.as_str(), &hash_param(secret), &pg_time(now)])
            .await?
        {
            return Ok(RequestPresented::Changed(record));
        }
        // Nothing changed; this read only chooses which refusal to report.
        let Some(row) = self
            .query_opt(READ_WITH_SUPERSEDED, &[&id.as_str()])
            .await?
        else {
            return Ok(RequestPresented::NotFound);
        };
        Ok(RequestPresented::Unchanged {
            record: record_of(&row)?,
            superseded: column(&row, 1)?,
        })
    }

    async fn purge_expired_requests(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.execute(
            "DELETE FROM fhirgate_security_requests WHERE expires_at <= $1",
            &[&pg_time(now)],
        )
        .await
    }
}
