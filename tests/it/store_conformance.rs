//! Store conformance: the public suite `fhirgate::store::conformance` run against both of
//! the crate's stores, one test per check: `MemoryStore` always, `PgStore` with the
//! `postgres` feature; then what only PostgreSQL has (migrations, pool faults).
//!
//! Each check gets two handles on the same data: two clones of one `MemoryStore`, or two
//! `PgStore`s with separate pools on one database schema, so every atomic operation is also
//! checked across instances.
//!
//! PostgreSQL is found through `FHIRGATE_TEST_DATABASE_URL`. When it is unset or unreachable
//! the PostgreSQL tests print `SKIPPED: …` and pass, unless `FHIRGATE_REQUIRE_POSTGRES=1`,
//! when they fail. Each PostgreSQL test works in a schema of its own, dropped at its end.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fhirgate::MemoryStore;
use fhirgate::store::conformance::fixtures::*;
use fhirgate::store::conformance::{self, CHECKS, Stores};

fn memory_stores() -> Stores {
    Stores::shared(MemoryStore::new())
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        /// The checks this file runs, to compare with the published list.
        const RUN_HERE: &[&str] = &[$(stringify!($name)),*];

        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    fhirgate::store::conformance::$name(&super::memory_stores()).await;
                }
            )*
        }

        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = super::pg::TestDb::new().await else {
                        return;
                    };
                    fhirgate::store::conformance::$name(&super::pg::stores(&db).await).await;
                    db.finish().await;
                }
            )*
        }
    };
}

conformance!(
    users_are_unique_per_scope,
    update_user_is_compare_and_swap,
    memberships_are_listed_per_user_in_id_order,
    memberships_are_found_by_external_id_within_a_project,
    directory_records_round_trip,
    domains_are_keyed_by_lower_case,
    logins_are_created_once_and_found_by_their_hashes,
    update_login_is_compare_and_swap,
    update_login_can_rotate_the_handle,
    codes_are_redeemed_once,
    code_expiry_stage_and_revocation_refuse,
    raw_outcomes_report_only_this_calls_change,
    refresh_tokens_rotate_once_and_reuse_is_detected,
    refresh_client_condition_and_revoked_families,
    revocation_and_session_lists,
    expired_logins_are_purged,
    claims_are_single_use_until_they_expire,
    watermarks_only_rise,
    attempts_are_capped_per_window,
    expired_once_entries_are_purged,
    lookups_by_keys_with_nul_find_nothing,
    race_one_of_64_redeems_a_code,
    race_one_of_64_rotates_a_refresh_token,
    race_one_of_64_claims_a_key,
    race_one_of_64_raises_a_watermark,
    race_64_attempts_under_a_cap_of_10,
    race_one_of_64_compare_and_swaps_wins,
    race_one_of_64_creates_a_user_per_email,
    race_redemption_against_revocation,
    requests_are_consumed_once_with_their_secret,
    newer_requests_supersede_older_of_the_same_kind_and_user,
    expired_requests_are_refused_and_purged,
    race_one_of_64_consumes_a_request,
);

#[test]
fn every_published_check_runs_here() {
    let published: Vec<&str> = CHECKS.iter().map(|c| c.name).collect();
    assert_eq!(published, RUN_HERE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_all_passes_on_the_memory_store() {
    conformance::run_all(|| async { memory_stores() }).await;
}

// ---- PostgreSQL harness and faults -----------------------------------------------------------

#[cfg(not(feature = "postgres"))]
#[test]
fn postgres_needs_the_postgres_feature() {
    use std::io::Write as _;
    if std::env::var("FHIRGATE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
        panic!(
            "FHIRGATE_REQUIRE_POSTGRES=1, but these tests were built without --features postgres"
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: PgStore conformance needs --features postgres"
    );
}

#[cfg(feature = "postgres")]
mod pg {
    use std::sync::Arc;

    pub use crate::common::pg::*;

    /// A migrated store and a second one with its own pool on the same schema.
    pub async fn stores(db: &TestDb) -> super::Stores {
        let a = db.store_with(db.options()).await;
        a.migrate().await.unwrap();
        let b = db.store_with(db.options()).await;
        super::Stores::new(Arc::new(a), Arc::new(b))
    }
}

#[cfg(feature = "postgres")]
mod faults {
    use std::time::{Duration as StdDuration, Instant};

    use fhirgate::PgStore;
    use fhirgate::model::{LoginId, UserId};
    use fhirgate::store::{
        Directory, LoginStore, OnceKey, OnceKind, OnceStore, PgOptions, Presented, StoreError,
    };

    use super::pg::TestDb;
    use super::{at, authorized, granted, h, user};

    fn is_unavailable<T: std::fmt::Debug>(result: &Result<T, StoreError>) -> bool {
        matches!(result, Err(StoreError::Unavailable(_)))
    }

    /// Holds a row lock on login `id` from the admin connection until `release`.
    async fn lock_login(db: &TestDb, id: &str) {
        db.admin
            .batch_execute(&format!(
                "BEGIN; SELECT 1 FROM {} WHERE id = '{id}' FOR UPDATE;",
                db.table("fhirgate_logins")
            ))
            .await
            .unwrap();
    }

    async fn release(db: &TestDb) {
        db.admin.batch_execute("ROLLBACK").await.unwrap();
    }

    /// Backend pids of this test's store connections (optionally only those waiting on a
    /// lock).
    async fn backends(db: &TestDb, waiting: bool) -> Vec<i32> {
        // The admin connection may be inside the transaction that holds the lock, and
        // activity statistics are snapshotted per transaction: drop the snapshot first.
        db.admin
            .batch_execute("SELECT pg_stat_clear_snapshot()")
            .await
            .unwrap();
        let rows = db
            .admin
            .query(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1
                   AND ($2 = false OR wait_event_type = 'Lock')",
                &[&db.application_name(), &waiting],
            )
            .await
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }

    async fn terminate(db: &TestDb, pids: &[i32]) {
        for pid in pids {
            db.admin
                .execute("SELECT pg_terminate_backend($1)", &[pid])
                .await
                .unwrap();
        }
        // Wait until the server has let them go.
        let deadline = Instant::now() + StdDuration::from_secs(5);
        while backends(db, false).await.iter().any(|p| pids.contains(p)) {
            assert!(Instant::now() < deadline, "backends did not exit");
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn statement_timeout_is_unavailable_and_changes_nothing() {
        let Some(db) = TestDb::new().await else {
            return;
        };
        let store = db
            .store_with({
                let mut options = db.options();
                options.statement_timeout = Some(StdDuration::from_millis(300));
                options
            })
            .await;
        store.migrate().await.unwrap();
        let r = authorized("l1", "h1", "c1", None);
        store.create_login(&r).await.unwrap();

        lock_login(&db, "l1").await;
        let started = Instant::now();
        let consumed = store.consume_code(&h("c1"), at(1)).await;
        assert!(is_unavailable(&consumed), "{consumed:?}");
        assert!(started.elapsed() >= StdDuration::from_millis(250));
        let mut next = r.clone();
        next.version = r.version + 1;
        next.granted_scope = Some("changed".to_owned());
        let updated = store.update_login(&next, r.version).await;
        assert!(is_unavailable(&updated), "{updated:?}");
        let revoked = store.revoke_user_logins(&UserId::new("u1")).await;
        assert!(is_unavailable(&revoked), "{revoked:?}");
        release(&db).await;

        // Nothing was half-done, and the same pool serves the next calls.
        assert_eq!(store.login(&r.id).await.unwrap(), Some(r.clone()));
        assert!(matches!(
            store.consume_code(&h("c1"), at(1)).await.unwrap(),
            Presented::Changed(_)
        ));
        db.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn killed_connection_mid_statement_is_unavailable_and_changes_nothing() {
        let Some(db) = TestDb::new().await else {
            return;
        };
        let store = db.store_with(db.options()).await;
        store.migrate().await.unwrap();
        let r = authorized("l1", "h1", "c1", None);
        store.create_login(&r).await.unwrap();

        for op in ["consume", "update"] {
            lock_login(&db, "l1").await;
            let task = {
                let store = store.clone();
                let r = r.clone();
                tokio::spawn(async move {
                    if op == "consume" {
                        store.consume_code(&h("c1"), at(1)).await.map(|_| ())
                    } else {
                        let mut next = r.clone();
                        next.version = r.version + 1;
                        next.session = None;
                        store.update_login(&next, r.version).await.map(|_| ())
                    }
                })
            };
            // Wait until the store's statement is blocked on the lock, then kill it.
            let deadline = Instant::now() + StdDuration::from_secs(5);
            let pids = loop {
                let pids = backends(&db, true).await;
                if !pids.is_empty() {
                    break pids;
                }
                assert!(Instant::now() < deadline, "{op}: never blocked");
                tokio::time::sleep(StdDuration::from_millis(5)).await;
            };
            terminate(&db, &pids).await;
            let outcome = task.await.unwrap();
            assert!(is_unavailable(&outcome), "{op}: {outcome:?}");
            release(&db).await;
            assert_eq!(store.login(&r.id).await.unwrap(), Some(r.clone()), "{op}");
        }

        // The pool replaced the dead connection: the next call works.
        assert!(matches!(
            store.consume_code(&h("c1"), at(1)).await.unwrap(),
            Presented::Changed(_)
        ));
        db.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_pool_recovers_after_every_connection_was_killed() {
        let Some(db) = TestDb::new().await else {
            return;
        };
        let store = db.store_with(db.options()).await;
        store.migrate().await.unwrap();
        // Open several connections.
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .claim_once(
                        &OnceKey::new(OnceKind::ClientAssertionJti, &i.to_string()),
                        at(60),
                        at(0),
                    )
                    .await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().unwrap());
        }
        let pids = backends(&db, false).await;
        assert!(!pids.is_empty());
        terminate(&db, &pids).await;
        // The driver learns that an idle connection was closed when its task next runs;
        // give it that moment (a call racing it would get one Unavailable).
        tokio::time::sleep(StdDuration::from_millis(50)).await;

        // Every call after it works (closed connections are dropped, new ones made).
        for i in 0..16 {
            assert!(
                store
                    .claim_once(
                        &OnceKey::new(OnceKind::ClientAssertionJti, &format!("after-{i}")),
                        at(60),
                        at(0)
                    )
                    .await
                    .unwrap()
            );
        }
        assert!(
            !store
                .claim_once(
                    &OnceKey::new(OnceKind::ClientAssertionJti, "0"),
                    at(60),
                    at(1)
                )
                .await
                .unwrap()
        );
        db.finish().await;
    }

    #[tokio::test]
    async fn an_unreachable_database_is_unavailable() {
        // Port 1 on loopback: nothing listens there.
        let result = PgStore::connect_with("postgres://postgres@127.0.0.1:1/postgres", {
            let mut options = PgOptions::default();
            options.connect_timeout = StdDuration::from_secs(2);
            options
        })
        .await;
        assert!(is_unavailable(&result), "{result:?}");
        let invalid = PgStore::connect("postgres://[bad").await;
        assert!(is_unavailable(&invalid), "{invalid:?}");
    }

    #[tokio::test]
    async fn corrupt_records_are_reported_not_panicked_on() {
        let Some(db) = TestDb::new().await else {
            return;
        };
        let store = db.store_with(db.options()).await;
        store.migrate().await.unwrap();
        store
            .create_user(&user("u1", "alice@example.org", None))
            .await
            .unwrap();
        store
            .create_login(&authorized("l1", "h1", "c1", None))
            .await
            .unwrap();
        db.admin
            .batch_execute(&format!(
                "UPDATE {} SET record = '{{\"id\": 5}}';
                 UPDATE {} SET record = '[]', code_redeemed = true;",
                db.table("fhirgate_users"),
                db.table("fhirgate_logins")
            ))
            .await
            .unwrap();
        let user = store.user(&UserId::new("u1")).await;
        assert!(matches!(user, Err(StoreError::Corrupt(_))), "{user:?}");
        let by_email = store.user_by_email("alice@example.org", None).await;
        assert!(
            matches!(by_email, Err(StoreError::Corrupt(_))),
            "{by_email:?}"
        );
        let login = store.login(&LoginId::new("l1")).await;
        assert!(matches!(login, Err(StoreError::Corrupt(_))), "{login:?}");
        // The refusal path reads the record too.
        let consumed = store.consume_code(&h("c1"), at(1)).await;
        assert!(
            matches!(consumed, Err(StoreError::Corrupt(_))),
            "{consumed:?}"
        );
        db.finish().await;
    }

    /// PostgreSQL cannot store NUL in text or in `jsonb` strings (`MemoryStore` can): such a
    /// write is a typed conflict, stores nothing, and the connection stays usable.
    #[tokio::test]
    async fn values_postgres_cannot_hold_are_a_conflict() {
        let Some(db) = TestDb::new().await else {
            return;
        };
        let store = db.store_with(db.options()).await;
        store.migrate().await.unwrap();
        let created = store
            .create_user(&user("u1", "a\0@example.org", None))
            .await;
        assert!(
            matches!(created, Err(StoreError::Conflict(_))),
            "{created:?}"
        );
        assert_eq!(store.user(&UserId::new("u1")).await.unwrap(), None);
        let mut r = authorized("l1", "h1", "c1", None);
        r.params.nonce = Some("n\0nce".to_owned());
        let created = store.create_login(&r).await;
        assert!(
            matches!(created, Err(StoreError::Conflict(_))),
            "{created:?}"
        );
        assert_eq!(store.login(&r.id).await.unwrap(), None);
        assert_eq!(store.login_by_handle(&h("h1")).await.unwrap(), None);
        r.params.nonce = Some("nonce".to_owned());
        store.create_login(&r).await.unwrap();
        db.finish().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn migrate_is_idempotent_and_safe_to_race() {
        let Some(db) = TestDb::new().await else {
            return;
        };
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let store = db.store_with(db.options()).await;
            tasks.push(tokio::spawn(async move { store.migrate().await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let store = db.store_with(db.options()).await;
        store.migrate().await.unwrap();
        let rows = db
            .admin
            .query(
                &format!(
                    "SELECT version, name FROM {} ORDER BY version",
                    db.table("fhirgate_migrations")
                ),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 4);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.get::<_, i32>(0), i as i32 + 1);
        }
        // The schema works.
        store
            .create_user(&user("u1", "alice@example.org", None))
            .await
            .unwrap();
        assert_eq!(store.purge_expired(at(0)).await.unwrap(), 0);
        db.finish().await;
    }

    #[tokio::test]
    async fn migration_3_moves_retired_refresh_hashes_out_of_the_records() {
        use fhirgate::model::ClientId;
        use fhirgate::store::Presented;
        let Some(db) = TestDb::new().await else {
            return;
        };
        let store = db.store_with(db.options()).await;
        store.migrate().await.unwrap();
        store
            .create_login(&granted("l1", "h1", "r1", Some("app")))
            .await
            .unwrap();
        let app = ClientId::new("app");
        let Presented::Changed(rotated) = store
            .rotate_refresh(&h("r1"), &h("r2"), Some(&app), at(1))
            .await
            .unwrap()
        else {
            panic!("not rotated")
        };
        // Back to a version-2 database: the retired hash listed in the record, no flag.
        db.admin
            .batch_execute(&format!(
                "UPDATE {logins} SET record = jsonb_set(record, '{{refresh,retired}}',
                     jsonb_build_array('{r1}'::text));
                 ALTER TABLE {hashes} DROP COLUMN retired_refresh;
                 DELETE FROM {migrations} WHERE version = 3;",
                logins = db.table("fhirgate_logins"),
                hashes = db.table("fhirgate_login_hashes"),
                migrations = db.table("fhirgate_migrations"),
                r1 = h("r1").to_base64(),
            ))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        // The old token is still recognised as reuse, and the record lost its list.
        assert_eq!(
            store
                .rotate_refresh(&h("r1"), &h("r3"), Some(&app), at(2))
                .await
                .unwrap(),
            Presented::Unchanged {
                record: rotated.clone(),
                retired: true
            }
        );
        let raw: String = db
            .admin
            .query_one(
                &format!(
                    "SELECT record::text FROM {} WHERE id = 'l1'",
                    db.table("fhirgate_logins")
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(!raw.contains("retired"), "{raw}");
        db.finish().await;
    }
}
