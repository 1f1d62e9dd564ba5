//! [`OnceStore`] on PostgreSQL.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::PgStore;
use super::rows::*;
use crate::store::{Attempt, OnceKey, OnceStore, StoreError};

/// Takes an attempt, starting a new window when the last one ended, in one statement. The
/// `SET` expressions read the row as it was; `last_allowed` carries whether this attempt was
/// counted to `RETURNING`, which sees only the new row.
const TAKE_ATTEMPT: &str = "
INSERT INTO fhirgate_once_attempts AS a (key, count, window_ends, last_allowed)
VALUES ($1, CASE WHEN $2::bigint > 0 THEN 1 ELSE 0 END, $4, $2::bigint > 0)
ON CONFLICT (key) DO UPDATE SET
    count = CASE
        WHEN a.window_ends <= $3 THEN CASE WHEN $2::bigint > 0 THEN 1 ELSE 0 END
        WHEN a.count < $2::bigint THEN a.count + 1
        ELSE a.count END,
    window_ends = CASE WHEN a.window_ends <= $3 THEN $4 ELSE a.window_ends END,
    last_allowed = CASE
        WHEN a.window_ends <= $3 THEN $2::bigint > 0
        ELSE a.count < $2::bigint END
RETURNING count, window_ends, last_allowed";

const PURGE_ONCE: &str = "
WITH c AS (DELETE FROM fhirgate_once_claims WHERE expires_at <= $1 RETURNING 1),
     w AS (DELETE FROM fhirgate_once_watermarks WHERE expires_at <= $1 RETURNING 1),
     a AS (DELETE FROM fhirgate_once_attempts WHERE window_ends <= $1 RETURNING 1)
SELECT (SELECT count(*) FROM c) + (SELECT count(*) FROM w) + (SELECT count(*) FROM a)";

#[async_trait]
impl OnceStore for PgStore {
    async fn claim_once(
        &self,
        key: &OnceKey,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let row = self
            .query_opt(
                "INSERT INTO fhirgate_once_claims AS c (key, expires_at) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at
                 WHERE c.expires_at <= $3
                 RETURNING 1",
                &[
                    &key.as_str().as_bytes(),
                    &pg_time(expires_at),
                    &pg_time(now),
                ],
            )
            .await?;
        Ok(row.is_some())
    }

    async fn claim_above(
        &self,
        key: &OnceKey,
        value: u64,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let row = self
            .query_opt(
                "INSERT INTO fhirgate_once_watermarks AS w (key, value, expires_at)
                 VALUES ($1, $2::text::numeric, $3)
                 ON CONFLICT (key) DO UPDATE
                 SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
                 WHERE w.expires_at <= $4 OR w.value < EXCLUDED.value
                 RETURNING 1",
                &[
                    &key.as_str().as_bytes(),
                    &value.to_string(),
                    &pg_time(expires_at),
                    &pg_time(now),
                ],
            )
            .await?;
        Ok(row.is_some())
    }

    async fn take_attempt(
        &self,
        key: &OnceKey,
        limit: u32,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<Attempt, StoreError> {
        let window_ends = pg_time(now.saturating_add(window));
        let row = self
            .query_opt(
                TAKE_ATTEMPT,
                &[
                    &key.as_str().as_bytes(),
                    &i64::from(limit),
                    &pg_time(now),
                    &window_ends,
                ],
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("take_attempt returned no row".to_owned()))?;
        let count: i64 = column(&row, 0)?;
        let ends: OffsetDateTime = column(&row, 1)?;
        let allowed: bool = column(&row, 2)?;
        if allowed {
            let count = u32::try_from(count)
                .map_err(|_| StoreError::Corrupt(format!("attempt count {count}")))?;
            Ok(Attempt::Allowed { count })
        } else {
            Ok(Attempt::Limited { retry_after: ends })
        }
    }

    async fn clear_attempts(&self, key: &OnceKey) -> Result<(), StoreError> {
        self.execute(
            "DELETE FROM fhirgate_once_attempts WHERE key = $1",
            &[&key.as_str().as_bytes()],
        )
        .await?;
        Ok(())
    }

    async fn purge_expired_once(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let row = self
            .query_opt(PURGE_ONCE, &[&pg_time(now)])
            .await?
            .ok_or_else(|| StoreError::Corrupt("purge returned no row".to_owned()))?;
        let count: i64 = column(&row, 0)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
