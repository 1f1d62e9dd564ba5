//! The embedded schema and how it is applied: in order, once, under an advisory lock.

use deadpool_postgres::Object;

/// One embedded schema migration.
pub(super) struct Migration {
    pub(super) version: i32,
    pub(super) name: &'static str,
    pub(super) sql: &'static str,
}

/// The schema, in order. Never edit an applied migration: add the next one.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "membership_external_id",
        sql: include_str!("../../../migrations/0002_membership_external_id.sql"),
    },
    Migration {
        version: 3,
        name: "retired_refresh_hashes",
        sql: include_str!("../../../migrations/0003_retired_refresh_hashes.sql"),
    },
    Migration {
        version: 4,
        name: "security_requests",
        sql: include_str!("../../../migrations/0004_security_requests.sql"),
    },
];

/// The advisory lock every `migrate` call holds while it applies a migration, so that
/// instances starting together apply each migration once.
pub(super) const MIGRATION_LOCK: i64 = 0x6668_6972_6761_7465; // "fhirgate"

pub(super) async fn apply_migrations(client: &mut Object) -> Result<(), tokio_postgres::Error> {
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
