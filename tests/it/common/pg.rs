//! A throwaway schema on the test PostgreSQL database, for every PostgreSQL test.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::sync::Once;
use std::time::Duration as StdDuration;

use fhirgate::PgStore;
use fhirgate::random::OsRandom;
use fhirgate::store::PgOptions;
use tokio_postgres::{Client, NoTls};

pub const URL_VAR: &str = "FHIRGATE_TEST_DATABASE_URL";
pub const REQUIRE_VAR: &str = "FHIRGATE_REQUIRE_POSTGRES";

fn required() -> bool {
    std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1")
}

/// Prints the skip notice once per test binary, past the test harness's output capture
/// so that a plain `cargo test` shows it.
fn skip(why: &str) {
    static NOTICE: Once = Once::new();
    NOTICE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: PostgreSQL not reachable (set {URL_VAR}): {why}"
        );
    });
}

/// A schema of its own on the test database, and an admin connection to it.
pub struct TestDb {
    pub admin: Client,
    pub url: String,
    pub schema: String,
}

impl TestDb {
    /// `None` (after the skip notice) when there is no database to test against, unless
    /// PostgreSQL is required.
    pub async fn new() -> Option<Self> {
        let url = match std::env::var(URL_VAR) {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                if required() {
                    panic!("{REQUIRE_VAR}=1 but {URL_VAR} is not set");
                }
                skip("the variable is not set");
                return None;
            }
        };
        let mut config: tokio_postgres::Config = match url.parse() {
            Ok(config) => config,
            Err(e) => panic!("{URL_VAR} is not a PostgreSQL URL: {e}"),
        };
        config.connect_timeout(StdDuration::from_secs(3));
        let admin = match config.connect(NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                client
            }
            Err(e) => {
                let why = match std::error::Error::source(&e) {
                    Some(cause) => format!("{e}: {cause}"),
                    None => e.to_string(),
                };
                if required() {
                    panic!("{REQUIRE_VAR}=1 but PostgreSQL at {URL_VAR} is not reachable: {why}");
                }
                skip(&why);
                return None;
            }
        };
        let id = fhirgate::model::LoginId::generate(&OsRandom).unwrap();
        let schema = format!("fhirgate_test_{}", id.as_str().replace('-', ""));
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        Some(Self { admin, url, schema })
    }

    /// The URL with this test's schema as the search path.
    pub fn store_url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-csearch_path%3D{}",
            self.url, self.schema
        )
    }

    /// Options naming this test's connections, so fault tests can find them.
    pub fn options(&self) -> PgOptions {
        {
            let mut options = PgOptions::default();
            options.pool_size = 8;
            options.application_name = self.application_name();
            options
        }
    }

    pub fn application_name(&self) -> String {
        format!("fhirgate-{}", self.schema)
    }

    pub async fn store_with(&self, options: PgOptions) -> PgStore {
        PgStore::connect_with(&self.store_url(), options)
            .await
            .unwrap()
    }

    /// A table of this test's schema, qualified for the admin connection.
    pub fn table(&self, name: &str) -> String {
        format!("{}.{name}", self.schema)
    }

    /// Drops the schema (on success; a failed test leaves it for inspection).
    pub async fn finish(self) {
        self.admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await
            .unwrap();
    }
}
