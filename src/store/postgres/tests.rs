//! Unit tests of the PostgreSQL store that need no database.

use super::migrations::*;
use super::rows::*;
use super::*;
use crate::model::StageTag;
use time::{PrimitiveDateTime, UtcOffset};

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
