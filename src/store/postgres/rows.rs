//! Between records and rows: JSON in and out, parameters, time clamping, and which
//! database failures mean what.

use deadpool_postgres::{Object, PoolError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};
use tokio_postgres::Row;
use tokio_postgres::error::Severity;

use crate::secret::SecretHash;
use crate::store::StoreError;

/// Maps the error of a statement run on `client`, and takes the connection out of the pool
/// when it may be dead: the server can report a fatal error (terminated backend, shutdown)
/// before the driver notices the closed socket, and the pool would hand the dead
/// connection to the next call.
pub(super) fn failed(client: Object, error: tokio_postgres::Error) -> StoreError {
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
pub(super) fn db_error(error: tokio_postgres::Error) -> StoreError {
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
pub(super) fn unstorable(key: &str) -> bool {
    key.contains('\0')
}

pub(super) fn pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(e) => db_error(e),
        other => StoreError::Unavailable(format!("no database connection: {other}")),
    }
}

pub(super) fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("record cannot be serialised: {e}")))
}

/// Reads the `jsonb` record (selected as text) in column 0.
pub(super) fn record_of<T: DeserializeOwned>(row: &Row) -> Result<T, StoreError> {
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

pub(super) fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
) -> Result<T, StoreError> {
    row.try_get(index)
        .map_err(|e| StoreError::Corrupt(format!("unexpected column {index}: {e}")))
}

/// A version as PostgreSQL's `bigint`. Versions past `i64::MAX` cannot be stored.
pub(super) fn version_param(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| {
        StoreError::Conflict(format!(
            "version {version} exceeds what PostgreSQL's bigint can store"
        ))
    })
}

pub(super) fn hash_param(hash: &SecretHash) -> &[u8] {
    hash.as_bytes().as_slice()
}

/// The earliest instant `timestamptz` holds with margin (about 4700 BC).
pub(super) const PG_FLOOR_UNIX: i64 = -210_800_000_000;

/// An instant as `timestamptz`: in UTC, clamped into the range both `time` and PostgreSQL
/// hold (only instants thousands of years away are moved).
pub(super) fn pg_time(t: OffsetDateTime) -> OffsetDateTime {
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
