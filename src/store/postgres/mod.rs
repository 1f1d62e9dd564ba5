//! `PgStore`: every store trait on PostgreSQL (feature `postgres`).
//!
//! # Design
//!
//! The store is split by trait: `directory`, `logins` (with the SQL of its atomic
//! operations), `once`; `migrations` embeds and applies the schema; `rows` converts between
//! records and columns.
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
//! The conformance suite (`tests/it/store_conformance.rs`) runs the same behaviour tests on
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

use deadpool_postgres::{Manager, Object, Pool, Runtime};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::{LoginStore, OnceStore, RequestStore, StoreError};
use crate::model::LoginRecord;
use crate::secret::SecretHash;

mod directory;
mod logins;
mod migrations;
mod once;
mod requests;
mod rows;
#[cfg(test)]
mod tests;

use migrations::apply_migrations;
use rows::*;

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

/// [`Directory`](crate::store::Directory), [`LoginStore`] and [`OnceStore`] on PostgreSQL, shared safely by any
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

    /// Deletes expired logins (with their codes and secret hashes), expired claims,
    /// watermarks and attempt windows, and expired security requests; returns how many rows
    /// went. The same as calling [`LoginStore::purge_expired_logins`],
    /// [`OnceStore::purge_expired_once`] and [`RequestStore::purge_expired_requests`].
    pub async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let logins = self.purge_expired_logins(now).await?;
        let once = self.purge_expired_once(now).await?;
        let requests = self.purge_expired_requests(now).await?;
        Ok(logins.saturating_add(once).saturating_add(requests))
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
