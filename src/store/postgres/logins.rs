//! [`LoginStore`] on PostgreSQL: each atomic operation is one statement.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::PgStore;
use super::rows::*;
use crate::model::{ClientId, LoginId, LoginRecord, UserId};
use crate::secret::SecretHash;
use crate::store::{LoginStore, Presented, StoreError};

/// Inserts the login and every hash it is found by, in one statement: a duplicate id or hash
/// fails the whole statement.
pub(super) const CREATE_LOGIN: &str = "
WITH l AS (
    INSERT INTO fhirgate_logins (id, version, stage, revoked, user_id, client_id, created_at,
        expires_at, handle_hash, code_hash, code_expires_at, code_redeemed, session_hash,
        refresh_hash, refresh_expires_at, record)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16::text::jsonb)
    RETURNING id
)
INSERT INTO fhirgate_login_hashes (hash, login_id)
SELECT h, l.id FROM l, unnest($17::bytea[]) AS h";

/// Compare-and-swap of a login, with its hash index kept in step, in one statement: the
/// `UPDATE` decides (version, not revoked, same handle); the hash rows change only if it
/// matched; a hash owned by another login fails the whole statement.
pub(super) const UPDATE_LOGIN: &str = "
WITH u AS (
    UPDATE fhirgate_logins
    SET version = $3, stage = $4, revoked = $5, user_id = $6, client_id = $7, created_at = $8,
        expires_at = $9, code_hash = $10, code_expires_at = $11, code_redeemed = $12,
        session_hash = $13, refresh_hash = $14, refresh_expires_at = $15,
        record = $16::text::jsonb, handle_hash = $17
    WHERE id = $1 AND version = $2 AND NOT revoked
    RETURNING id
),
gone AS (
    DELETE FROM fhirgate_login_hashes h USING u
    WHERE h.login_id = u.id AND h.hash <> ALL ($18::bytea[]) AND NOT h.retired_refresh
),
added AS (
    INSERT INTO fhirgate_login_hashes (hash, login_id)
    SELECT x, u.id FROM u, unnest($18::bytea[]) AS x
    WHERE NOT EXISTS (
        SELECT 1 FROM fhirgate_login_hashes e WHERE e.hash = x AND e.login_id = u.id
    )
)
SELECT count(*) FROM u";

/// Redeems a code: one conditional `UPDATE`.
pub(super) const CONSUME_CODE: &str = "
UPDATE fhirgate_logins
SET code_redeemed = true, stage = 'granted', version = version + 1,
    record = jsonb_set(jsonb_set(jsonb_set(record,
        '{code,redeemed}', 'true'),
        '{stage}', '\"granted\"'),
        '{version}', to_jsonb(version + 1))
WHERE code_hash = $1 AND NOT code_redeemed AND NOT revoked AND stage = 'authorized'
    AND code_expires_at > $2
RETURNING record::text";

/// Rotates a refresh token and indexes the new one, in one statement. A `next` that is
/// already some login's hash fails the whole statement.
pub(super) const ROTATE_REFRESH: &str = "
WITH u AS (
    UPDATE fhirgate_logins
    SET refresh_hash = $2::bytea, version = version + 1,
        record = jsonb_set(jsonb_set(record,
            '{refresh,current}', to_jsonb($5::text)),
            '{version}', to_jsonb(version + 1))
    WHERE refresh_hash = $1 AND NOT revoked AND client_id IS NOT DISTINCT FROM $3::text
        AND refresh_expires_at > $4
    RETURNING id, record::text AS record
),
retired AS (
    UPDATE fhirgate_login_hashes h SET retired_refresh = true FROM u
    WHERE h.hash = $1 AND h.login_id = u.id
),
added AS (
    INSERT INTO fhirgate_login_hashes (hash, login_id) SELECT $2::bytea, u.id FROM u
)
SELECT record FROM u";

/// Why `rotate_refresh` changed nothing: is `next` taken, the login `presented` is a hash of
/// (if any), and whether it is a rotated-out refresh token of that login.
pub(super) const ROTATE_REFUSAL: &str = "
SELECT EXISTS (SELECT 1 FROM fhirgate_login_hashes WHERE hash = $2),
       (SELECT l.record::text FROM fhirgate_login_hashes h
        JOIN fhirgate_logins l ON l.id = h.login_id WHERE h.hash = $1),
       COALESCE((SELECT retired_refresh FROM fhirgate_login_hashes WHERE hash = $1), false)";

pub(super) const REVOKE_SET: &str = "revoked = true, version = version + 1,
    record = jsonb_set(jsonb_set(record, '{revoked}', 'true'), '{version}', to_jsonb(version + 1))";

#[async_trait]
impl LoginStore for PgStore {
    async fn create_login(&self, record: &LoginRecord) -> Result<(), StoreError> {
        let c = LoginColumns::of(record)?;
        self.execute(
            CREATE_LOGIN,
            &[
                &record.id.as_str(),
                &c.version,
                &c.stage,
                &c.revoked,
                &c.user_id,
                &c.client_id,
                &c.created_at,
                &c.expires_at,
                &c.handle_hash,
                &c.code_hash,
                &c.code_expires_at,
                &c.code_redeemed,
                &c.session_hash,
                &c.refresh_hash,
                &c.refresh_expires_at,
                &c.record,
                &c.hashes,
            ],
        )
        .await?;
        Ok(())
    }

    async fn login_by_handle(
        &self,
        handle: &SecretHash,
    ) -> Result<Option<LoginRecord>, StoreError> {
        self.record(
            "SELECT record::text FROM fhirgate_logins WHERE handle_hash = $1",
            &[&hash_param(handle)],
        )
        .await
    }

    async fn login(&self, id: &LoginId) -> Result<Option<LoginRecord>, StoreError> {
        if unstorable(id.as_str()) {
            return Ok(None);
        }
        self.record(
            "SELECT record::text FROM fhirgate_logins WHERE id = $1",
            &[&id.as_str()],
        )
        .await
    }

    async fn update_login(
        &self,
        record: &LoginRecord,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        if record.version != expected_version.saturating_add(1) {
            return Ok(false);
        }
        let Ok(expected) = i64::try_from(expected_version) else {
            return Ok(false);
        };
        let c = LoginColumns::of(record)?;
        let row = self
            .query_opt(
                UPDATE_LOGIN,
                &[
                    &record.id.as_str(),
                    &expected,
                    &c.version,
                    &c.stage,
                    &c.revoked,
                    &c.user_id,
                    &c.client_id,
                    &c.created_at,
                    &c.expires_at,
                    &c.code_hash,
                    &c.code_expires_at,
                    &c.code_redeemed,
                    &c.session_hash,
                    &c.refresh_hash,
                    &c.refresh_expires_at,
                    &c.record,
                    &c.handle_hash,
                    &c.hashes,
                ],
            )
            .await?;
        let updated: i64 = match &row {
            Some(row) => column(row, 0)?,
            None => 0,
        };
        Ok(updated == 1)
    }

    async fn consume_code(
        &self,
        code: &SecretHash,
        now: OffsetDateTime,
    ) -> Result<Presented, StoreError> {
        let redeemed: Option<LoginRecord> = self
            .record(CONSUME_CODE, &[&hash_param(code), &pg_time(now)])
            .await?;
        if let Some(record) = redeemed {
            return Ok(Presented::Changed(record));
        }
        // Nothing was redeemed: the login holding the code, as it is now, says why.
        Ok(match self.login_by_any_hash(code).await? {
            Some(record) => Presented::Unchanged {
                record,
                retired: false,
            },
            None => Presented::NotFound,
        })
    }

    async fn rotate_refresh(
        &self,
        presented: &SecretHash,
        next: &SecretHash,
        client: Option<&ClientId>,
        now: OffsetDateTime,
    ) -> Result<Presented, StoreError> {
        let client_id = client.map(ClientId::as_str);
        let rotated: Option<LoginRecord> = self
            .record(
                ROTATE_REFRESH,
                &[
                    &hash_param(presented),
                    &hash_param(next),
                    &client_id,
                    &pg_time(now),
                    &next.to_base64(),
                ],
            )
            .await?;
        if let Some(record) = rotated {
            return Ok(Presented::Changed(record));
        }
        // Nothing was rotated. Read only to say why; this never rotates.
        let Some(row) = self
            .query_opt(ROTATE_REFUSAL, &[&hash_param(presented), &hash_param(next)])
            .await?
        else {
            return Ok(Presented::NotFound);
        };
        let next_taken: bool = column(&row, 0)?;
        if next_taken {
            return Err(StoreError::Conflict("secret hash exists".to_owned()));
        }
        let text: Option<String> = column(&row, 1)?;
        let retired: bool = column(&row, 2)?;
        let Some(text) = text else {
            return Ok(Presented::NotFound);
        };
        let record: LoginRecord = serde_json::from_str(&text).map_err(|e| {
            StoreError::Corrupt(format!(
                "stored login does not deserialise ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        Ok(Presented::Unchanged { record, retired })
    }

    async fn login_by_refresh(
        &self,
        token: &SecretHash,
    ) -> Result<Option<LoginRecord>, StoreError> {
        self.record(
            "SELECT l.record::text FROM fhirgate_login_hashes h
             JOIN fhirgate_logins l ON l.id = h.login_id
             WHERE h.hash = $1
               AND (l.refresh_hash = $1 OR h.retired_refresh)",
            &[&hash_param(token)],
        )
        .await
    }

    async fn login_by_session(
        &self,
        session: &SecretHash,
    ) -> Result<Option<LoginRecord>, StoreError> {
        self.record(
            "SELECT l.record::text FROM fhirgate_login_hashes h
             JOIN fhirgate_logins l ON l.id = h.login_id
             WHERE h.hash = $1 AND l.session_hash = $1",
            &[&hash_param(session)],
        )
        .await
    }

    async fn revoke_login(&self, id: &LoginId) -> Result<bool, StoreError> {
        if unstorable(id.as_str()) {
            return Ok(false);
        }
        let changed = self
            .execute(
                &format!("UPDATE fhirgate_logins SET {REVOKE_SET} WHERE id = $1 AND NOT revoked"),
                &[&id.as_str()],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn revoke_user_logins(&self, user: &UserId) -> Result<u64, StoreError> {
        if unstorable(user.as_str()) {
            return Ok(0);
        }
        self.execute(
            &format!("UPDATE fhirgate_logins SET {REVOKE_SET} WHERE user_id = $1 AND NOT revoked"),
            &[&user.as_str()],
        )
        .await
    }

    async fn logins_of_user(&self, user: &UserId) -> Result<Vec<LoginRecord>, StoreError> {
        if unstorable(user.as_str()) {
            return Ok(Vec::new());
        }
        self.records(
            "SELECT record::text FROM fhirgate_logins WHERE user_id = $1
             ORDER BY created_at DESC, id",
            &[&user.as_str()],
        )
        .await
    }

    async fn purge_expired_logins(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.execute(
            "DELETE FROM fhirgate_logins WHERE expires_at <= $1",
            &[&pg_time(now)],
        )
        .await
    }
}

/// The columns of `fhirgate_logins` a record determines, plus every hash it is found by.
struct LoginColumns<'a> {
    version: i64,
    stage: &'static str,
    revoked: bool,
    user_id: Option<&'a str>,
    client_id: Option<&'a str>,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    handle_hash: &'a [u8],
    code_hash: Option<&'a [u8]>,
    code_expires_at: Option<OffsetDateTime>,
    code_redeemed: Option<bool>,
    session_hash: Option<&'a [u8]>,
    refresh_hash: Option<&'a [u8]>,
    refresh_expires_at: Option<OffsetDateTime>,
    record: String,
    hashes: Vec<&'a [u8]>,
}

impl<'a> LoginColumns<'a> {
    fn of(record: &'a LoginRecord) -> Result<Self, StoreError> {
        let mut hashes: Vec<&[u8]> = std::iter::once(&record.handle_hash)
            .chain(record.code.as_ref().map(|c| &c.hash))
            .chain(record.session.as_ref().map(|s| &s.hash))
            .chain(record.refresh.as_ref().map(|r| &r.current))
            .map(hash_param)
            .collect();
        hashes.sort_unstable();
        hashes.dedup();
        Ok(Self {
            version: version_param(record.version)?,
            stage: record.stage.name(),
            revoked: record.revoked,
            user_id: record.user.as_ref().map(UserId::as_str),
            client_id: record.params.client.as_ref().map(ClientId::as_str),
            created_at: pg_time(record.created_at),
            expires_at: pg_time(record.expires_at),
            handle_hash: hash_param(&record.handle_hash),
            code_hash: record.code.as_ref().map(|c| hash_param(&c.hash)),
            code_expires_at: record.code.as_ref().map(|c| pg_time(c.expires_at)),
            code_redeemed: record.code.as_ref().map(|c| c.redeemed),
            session_hash: record.session.as_ref().map(|s| hash_param(&s.hash)),
            refresh_hash: record.refresh.as_ref().map(|r| hash_param(&r.current)),
            refresh_expires_at: record.refresh.as_ref().map(|r| pg_time(r.expires_at)),
            record: to_json(record)?,
            hashes,
        })
    }
}
