//! `PgStore`: every store trait on PostgreSQL (feature `postgres`).
//!
//! # Design
//!
//! * **Driver.** `tokio-postgres` with a `deadpool-postgres` pool: a few seconds of build time
//!   (sqlx with its macros costs ten times that), plain SQL strings, and prepared statements
//!   cached per connection, so each operation is one round trip.
//! * **Schema.** Each entity keeps its whole serialised record in a `jsonb` column and, beside
//!   it, the columns its lookups and atomic conditions need (ids, scoped emails, versions,
//!   stage, revoked, code and refresh state, deadlines). Every secret hash a login can be found
//!   by (handle, code, session, current and retired refresh tokens) also has a row in
//!   `fhirgate_login_hashes`, whose primary key keeps hashes unique across logins exactly like
//!   the in-memory index; retired refresh hashes live only there (`retired_refresh`), so a
//!   rotation writes one row, never the family's history. The SQL is embedded from `migrations/` and applied by
//!   [`PgStore::migrate`].
//! * **Atomicity.** Every trait operation that decides something is *one SQL statement*: a
//!   conditional `UPDATE … WHERE version = $n … RETURNING`, an `INSERT … ON CONFLICT DO UPDATE
//!   … WHERE … RETURNING`, or a data-modifying CTE. Rust never decides from an earlier read:
//!   when `consume_code` or `rotate_refresh` change nothing, a second read only chooses which
//!   refusal to report. Statements that change a condition column rewrite the `jsonb` record
//!   in the same statement (`jsonb_set`), so the two never disagree.
//! * **Errors.** Lost connections, timeouts (`statement_timeout`, pool waits) and any other
//!   server failure are [`StoreError::Unavailable`]; integrity violations (unique keys) and
//!   values PostgreSQL cannot hold are [`StoreError::Conflict`]; a record that does not
//!   deserialise is [`StoreError::Corrupt`]. Nothing from the database panics. A failed
//!   statement changes nothing, and a connection that failed other than with a plain SQL
//!   error leaves the pool, so the next call after a failure gets a working one.
//! * **Time.** Deadlines are `timestamptz` columns (microsecond precision) taken from the
//!   values the caller passed; the records' own timestamps serialise in whole seconds.
//!
//! # Differences from `MemoryStore`
//!
//! The conformance suite (`tests/store_conformance.rs`) runs the same behaviour tests on
//! both stores. What PostgreSQL cannot do the same way:
//!
//! * Text cannot hold NUL characters, nor can `jsonb` strings: storing a record with one (a
//!   `nonce` containing `%00`, say) is a [`StoreError::Conflict`] and stores nothing. A
//!   lookup by an id containing NUL finds nothing. Single-use keys are stored as bytes and
//!   may hold anything.
//! * Versions must fit PostgreSQL's `bigint` (below 2⁶³); a larger one is a conflict.
//! * Instants are kept to the microsecond, and clamped to the range PostgreSQL holds
//!   (4713 BC onwards).
//!
//! # Expiry
//!
//! Expired logins (with their codes and secret hashes) and expired claims, watermarks and
//! attempt windows stay in the tables until [`PgStore::purge_expired`] (or the trait methods
//! [`LoginStore::purge_expired_logins`] and [`OnceStore::purge_expired_once`]) deletes them.
//! Expired rows never grant anything in the meantime: every condition compares with the
//! `now` of the call. Run the purge periodically (for example once a minute, from one
//! instance or all: it is idempotent).

use std::fmt;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, Object, Pool, PoolError, Runtime};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::{Duration, OffsetDateTime, PrimitiveDateTime, UtcOffset};
use tokio_postgres::error::Severity;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::{
    Attempt, Directory, DirectoryAdmin, LoginStore, OnceKey, OnceStore, Presented, StoreError,
};
use crate::model::{
    AccessPolicy, AccessPolicyId, ClientApplication, ClientId, DomainConfiguration, LaunchId,
    LoginId, LoginRecord, MembershipId, Project, ProjectId, ProjectMembership, SmartLaunch, User,
    UserId,
};
use crate::secret::SecretHash;

/// One embedded schema migration.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// The schema, in order. Never edit an applied migration: add the next one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "membership_external_id",
        sql: include_str!("../../migrations/0002_membership_external_id.sql"),
    },
    Migration {
        version: 3,
        name: "retired_refresh_hashes",
        sql: include_str!("../../migrations/0003_retired_refresh_hashes.sql"),
    },
];

/// The advisory lock every `migrate` call holds while it applies a migration, so that
/// instances starting together apply each migration once.
const MIGRATION_LOCK: i64 = 0x6668_6972_6761_7465; // "fhirgate"

/// Connection settings for [`PgStore::connect_with`].
///
/// ```
/// use std::time::Duration;
/// use fhirgate::store::PgOptions;
///
/// let mut options = PgOptions::default();
/// options.pool_size = 32;
/// options.statement_timeout = Some(Duration::from_secs(2));
/// # let _ = options;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgOptions {
    /// Most connections the pool opens (at least 1). Default 16.
    pub pool_size: usize,
    /// `statement_timeout` of every connection: a statement running longer (waiting on a
    /// lock, a stalled server) is cancelled and the call fails with
    /// [`StoreError::Unavailable`]. `None` keeps the server's setting. Default 5 s.
    pub statement_timeout: Option<StdDuration>,
    /// How long opening a connection may take. Default 5 s.
    pub connect_timeout: StdDuration,
    /// How long a call waits for a free connection when all are busy. Default 5 s.
    pub acquire_timeout: StdDuration,
    /// `application_name` of every connection (shown in `pg_stat_activity`); overrides one
    /// in the URL unless empty. Default `fhirgate`.
    pub application_name: String,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            statement_timeout: Some(StdDuration::from_secs(5)),
            connect_timeout: StdDuration::from_secs(5),
            acquire_timeout: StdDuration::from_secs(5),
            application_name: "fhirgate".to_owned(),
        }
    }
}

/// [`Directory`], [`LoginStore`] and [`OnceStore`] on PostgreSQL, shared safely by any
/// number of server instances.
///
/// ```no_run
/// # async fn run() -> Result<(), fhirgate::store::StoreError> {
/// use fhirgate::store::PgStore;
///
/// let store = PgStore::connect("postgres://fhirgate@db.internal/fhirgate").await?;
/// store.migrate().await?;
/// # Ok(()) }
/// ```
///
/// The tables are created in the first schema of the connection's `search_path`; to use a
/// schema of your own, name it in the URL (`?options=-csearch_path%3Dauth`). Connections are
/// made without TLS; for TLS, build a `deadpool_postgres::Pool` with the connector of your
/// choice and use [`PgStore::from_pool`]. Must be used inside a Tokio runtime. Cloning is
/// cheap and shares the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PgStore")
            .field("max_size", &status.max_size)
            .field("size", &status.size)
            .field("available", &status.available)
            .finish()
    }
}

impl PgStore {
    /// Connects with [`PgOptions::default`]. See [`PgStore::connect_with`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PgOptions::default()).await
    }

    /// Builds a pool for `url` (`postgres://user:password@host:port/database?…`, or the
    /// `key=value` form) and opens one connection to check that the database is reachable.
    /// Fails with [`StoreError::Unavailable`] when the URL is invalid or the database cannot
    /// be reached.
    pub async fn connect_with(url: &str, options: PgOptions) -> Result<Self, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?;
        if !options.application_name.is_empty() {
            config.application_name(&options.application_name);
        }
        if let Some(timeout) = options.statement_timeout {
            let setting = format!("-c statement_timeout={}", timeout.as_millis().max(1));
            let combined = match config.get_options() {
                Some(existing) if !existing.trim().is_empty() => format!("{existing} {setting}"),
                _ => setting,
            };
            config.options(combined);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        let manager = Manager::new(config, NoTls);
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.acquire_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build the pool: {e}")))?;
        let store = Self { pool };
        // Fail now, not at the first request, when the database is unreachable.
        drop(store.conn().await?);
        Ok(store)
    }

    /// Uses a pool the host built (for TLS, or settings [`PgOptions`] does not cover). The
    /// pool's connections should have a `statement_timeout`.
    pub fn from_pool(pool: Pool) -> Self {
        Self { pool }
    }

    /// Creates or upgrades the schema: applies every embedded migration the database has not
    /// recorded in `fhirgate_migrations`, each in its own transaction. Idempotent, and safe
    /// when several instances call it at once (they take an advisory lock in turn). A
    /// migration may run for up to five minutes whatever the statement timeout.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.conn().await?;
        match apply_migrations(&mut client).await {
            Ok(()) => Ok(()),
            Err(e) => Err(failed(client, e)),
        }
    }

    /// Deletes expired logins (with their codes and secret hashes) and expired claims,
    /// watermarks and attempt windows; returns how many rows went. The same as calling
    /// [`LoginStore::purge_expired_logins`] and [`OnceStore::purge_expired_once`].
    pub async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let logins = self.purge_expired_logins(now).await?;
        let once = self.purge_expired_once(now).await?;
        Ok(logins.saturating_add(once))
    }

    async fn conn(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.conn().await?;
        let result = async {
            let statement = client.prepare_cached(sql).await?;
            client.query(&statement, params).await
        }
        .await;
        result.map_err(|e| failed(client, e))
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let client = self.conn().await?;
        let result = async {
            let statement = client.prepare_cached(sql).await?;
            client.query_opt(&statement, params).await
        }
        .await;
        result.map_err(|e| failed(client, e))
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let client = self.conn().await?;
        let result = async {
            let statement = client.prepare_cached(sql).await?;
            client.execute(&statement, params).await
        }
        .await;
        result.map_err(|e| failed(client, e))
    }

    /// The record in column 0 of the row `sql` returns, if any.
    async fn record<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<T>, StoreError> {
        match self.query_opt(sql, params).await? {
            Some(row) => Ok(Some(record_of(&row)?)),
            None => Ok(None),
        }
    }

    /// The records in column 0 of every row `sql` returns.
    async fn records<T: DeserializeOwned>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<T>, StoreError> {
        self.query(sql, params)
            .await?
            .iter()
            .map(record_of)
            .collect()
    }

    /// The login that `hash` belongs to in any role.
    async fn login_by_any_hash(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<LoginRecord>, StoreError> {
        self.record(
            "SELECT l.record::text FROM fhirgate_login_hashes h
             JOIN fhirgate_logins l ON l.id = h.login_id
             WHERE h.hash = $1",
            &[&hash_param(hash)],
        )
        .await
    }
}

async fn apply_migrations(client: &mut Object) -> Result<(), tokio_postgres::Error> {
    for migration in MIGRATIONS {
        let tx = client.transaction().await?;
        tx.batch_execute(&format!(
            "SET LOCAL statement_timeout = '5min';
             SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
             CREATE TABLE IF NOT EXISTS fhirgate_migrations (
                 version     integer PRIMARY KEY,
                 name        text NOT NULL,
                 applied_at  timestamptz NOT NULL DEFAULT now()
             );"
        ))
        .await?;
        let applied = tx
            .query_opt(
                "SELECT 1 FROM fhirgate_migrations WHERE version = $1",
                &[&migration.version],
            )
            .await?;
        if applied.is_none() {
            tx.batch_execute(migration.sql).await?;
            tx.execute(
                "INSERT INTO fhirgate_migrations (version, name) VALUES ($1, $2)",
                &[&migration.version, &migration.name],
            )
            .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

// ---- conversions and errors ---------------------------------------------------------------

/// Maps the error of a statement run on `client`, and takes the connection out of the pool
/// when it may be dead: the server can report a fatal error (terminated backend, shutdown)
/// before the driver notices the closed socket, and the pool would hand the dead
/// connection to the next call.
fn failed(client: Object, error: tokio_postgres::Error) -> StoreError {
    let healthy = !client.is_closed()
        && error
            .as_db_error()
            .is_some_and(|db| db.parsed_severity() == Some(Severity::Error));
    if !healthy {
        drop(Object::take(client));
    }
    db_error(error)
}

/// Maps a driver error. Integrity violations (SQLSTATE class 23: a unique key) and data
/// exceptions (class 22: a value PostgreSQL cannot hold, such as a NUL character in text or
/// in a `jsonb` string) are conflicts: the value cannot be stored, and retrying will not
/// help. Everything else (lost connection, cancelled statement, server failure) makes the
/// store unavailable.
fn db_error(error: tokio_postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        if code.starts_with("23") || code.starts_with("22") {
            // The message names the constraint or the problem; the detail (which would
            // show the key's value, such as an email) is left out.
            return StoreError::Conflict(db.message().to_owned());
        }
    }
    StoreError::Unavailable(error.to_string())
}

/// PostgreSQL's text cannot hold NUL, so no stored key contains one: a lookup by such a key
/// finds nothing (without asking the server, which would refuse the parameter).
fn unstorable(key: &str) -> bool {
    key.contains('\0')
}

fn pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(e) => db_error(e),
        other => StoreError::Unavailable(format!("no database connection: {other}")),
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("record cannot be serialised: {e}")))
}

/// Reads the `jsonb` record (selected as text) in column 0.
fn record_of<T: DeserializeOwned>(row: &Row) -> Result<T, StoreError> {
    let text: String = row
        .try_get(0)
        .map_err(|e| StoreError::Corrupt(format!("unexpected column: {e}")))?;
    serde_json::from_str(&text).map_err(|e| {
        // Position and category only: the message of a type error can quote stored values.
        StoreError::Corrupt(format!(
            "stored record does not deserialise ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
) -> Result<T, StoreError> {
    row.try_get(index)
        .map_err(|e| StoreError::Corrupt(format!("unexpected column {index}: {e}")))
}

/// A version as PostgreSQL's `bigint`. Versions past `i64::MAX` cannot be stored.
fn version_param(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| {
        StoreError::Conflict(format!(
            "version {version} exceeds what PostgreSQL's bigint can store"
        ))
    })
}

fn hash_param(hash: &SecretHash) -> &[u8] {
    hash.as_bytes().as_slice()
}

/// The earliest instant `timestamptz` holds with margin (about 4700 BC).
const PG_FLOOR_UNIX: i64 = -210_800_000_000;

/// An instant as `timestamptz`: in UTC, clamped into the range both `time` and PostgreSQL
/// hold (only instants thousands of years away are moved).
fn pg_time(t: OffsetDateTime) -> OffsetDateTime {
    let utc = t.checked_to_offset(UtcOffset::UTC).unwrap_or_else(|| {
        if t.offset().is_negative() {
            PrimitiveDateTime::MAX.assume_utc()
        } else {
            PrimitiveDateTime::MIN.assume_utc()
        }
    });
    let floor = OffsetDateTime::from_unix_timestamp(PG_FLOOR_UNIX).unwrap_or(utc);
    utc.max(floor)
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

// ---- Directory ----------------------------------------------------------------------------

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

// ---- LoginStore ---------------------------------------------------------------------------

/// Inserts the login and every hash it is found by, in one statement: a duplicate id or hash
/// fails the whole statement.
const CREATE_LOGIN: &str = "
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
const UPDATE_LOGIN: &str = "
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
const CONSUME_CODE: &str = "
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
const ROTATE_REFRESH: &str = "
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
const ROTATE_REFUSAL: &str = "
SELECT EXISTS (SELECT 1 FROM fhirgate_login_hashes WHERE hash = $2),
       (SELECT l.record::text FROM fhirgate_login_hashes h
        JOIN fhirgate_logins l ON l.id = h.login_id WHERE h.hash = $1),
       COALESCE((SELECT retired_refresh FROM fhirgate_login_hashes WHERE hash = $1), false)";

const REVOKE_SET: &str = "revoked = true, version = version + 1,
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

// ---- OnceStore ----------------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StageTag;

    #[test]
    fn migrations_are_ordered_and_embedded() {
        let mut last = 0;
        for m in MIGRATIONS {
            assert!(m.version > last);
            last = m.version;
            assert!(
                m.sql.contains("fhirgate_"),
                "migration {} is empty",
                m.version
            );
        }
        assert!(
            MIGRATIONS
                .first()
                .is_some_and(|m| m.sql.contains("CREATE TABLE"))
        );
    }

    #[test]
    fn stage_names_match_the_sql() {
        // CONSUME_CODE compares and writes these names.
        assert_eq!(StageTag::Authorized.name(), "authorized");
        assert_eq!(StageTag::Granted.name(), "granted");
        assert_eq!(
            serde_json::to_string(&StageTag::Granted).unwrap(),
            "\"granted\""
        );
    }

    #[test]
    fn times_are_clamped_not_panicking() {
        let max = PrimitiveDateTime::MAX.assume_offset(UtcOffset::from_hms(-5, 0, 0).unwrap());
        assert_eq!(pg_time(max), PrimitiveDateTime::MAX.assume_utc());
        let min = PrimitiveDateTime::MIN.assume_offset(UtcOffset::from_hms(5, 0, 0).unwrap());
        assert_eq!(pg_time(min).unix_timestamp(), PG_FLOOR_UNIX);
        let t = OffsetDateTime::from_unix_timestamp(1_795_860_000).unwrap();
        assert_eq!(pg_time(t), t);
    }

    #[test]
    fn versions_must_fit_bigint() {
        assert!(matches!(
            version_param(u64::MAX),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(version_param(7), Ok(7));
    }
}
