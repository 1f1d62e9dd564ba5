//! The store's share of a login and of a code redemption: the same flows on `PgStore` and on
//! `MemoryStore`, measured in one run. Password hashing is replaced by a constant-time
//! stand-in so the numbers show the store, not argon2 (which costs ~19 ms either way).
//!
//! Run: `FHIRGATE_TEST_DATABASE_URL=postgres://… cargo bench --features postgres --bench store`
//! (`scripts/start-postgres.sh` starts a throwaway cluster and prints the URL).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{Criterion, Throughput};
use fhirgate::credential::password::{HashError, Password, PasswordHasher, Verification};
use fhirgate::login::{Method, Passed, ProfileChoice};
use fhirgate::model::*;
use fhirgate::oauth::{Form, TokenRequest};
use fhirgate::store::{DirectoryAdmin, LoginStore, OnceStore, RequestStore};
use fhirgate::{Config, Engine, LoginRequest, MemoryStore, PgStore};

const PASSWORD: &str = "correct horse battery staple";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "https://app.example.org/cb";
/// Concurrent requests per iteration of the throughput benchmarks.
const BATCH: usize = 16;

struct NoHash;

#[async_trait]
impl PasswordHasher for NoHash {
    async fn verify(
        &self,
        password: &Password,
        stored: Option<&PasswordHash>,
    ) -> Result<Verification, HashError> {
        Ok(match stored {
            Some(h) if h.as_str().as_bytes() == password.as_bytes() => Verification::Match {
                needs_rehash: false,
            },
            _ => Verification::Mismatch,
        })
    }
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        Ok(PasswordHash::new(String::from_utf8_lossy(
            password.as_bytes(),
        )))
    }
}

async fn engine<S: DirectoryAdmin + LoginStore + OnceStore + RequestStore + Clone + 'static>(
    store: S,
) -> Engine {
    let mut config = Config::default();
    config.oauth.issuer = "https://auth.example.org".into();
    config.throttle = fhirgate::config::ThrottleConfig::off();
    let engine = Engine::builder()
        .store(store.clone())
        .config(config)
        .password_hasher(Arc::new(NoHash))
        .build()
        .unwrap();
    let d = &store;
    d.put_project(&Project::new(ProjectId::new("p1"), "Clinic"))
        .await
        .unwrap();
    let mut client = ClientApplication::new(ClientId::new("app"), ProjectId::new("p1"));
    client.allowed_scopes = "openid offline_access user/*.cruds".into();
    client.redirect_uris = vec![REDIRECT.into()];
    d.put_client(&client).await.unwrap();
    let mut user = User::new(UserId::new("u1"), "jane@example.org");
    user.password_hash = Some(engine.hash_new_password(PASSWORD).await.unwrap());
    if d.create_user(&user).await.is_err() {
        // Already seeded (a re-run on the same schema).
    }
    d.put_membership(&ProjectMembership::new(
        MembershipId::new("m1"),
        ProjectId::new("p1"),
        UserId::new("u1"),
        Reference::parse("Practitioner/1").unwrap(),
    ))
    .await
    .unwrap();
    engine
}

/// A complete login to the code (no TOTP; hashing stubbed).
async fn code(engine: &Engine) -> String {
    let login = engine
        .start(LoginRequest {
            client_id: Some("app".into()),
            redirect_uri: Some(REDIRECT.into()),
            scope: Some("openid offline_access user/Observation.rs".into()),
            code_challenge: Some(CHALLENGE.into()),
            code_challenge_method: Some("S256".into()),
            ..LoginRequest::default()
        })
        .await
        .unwrap();
    let Method::Password(login) = login.method("jane@example.org").await.unwrap() else {
        panic!()
    };
    let Passed::Profile(login) = login.password(PASSWORD).await.unwrap() else {
        panic!()
    };
    let ProfileChoice::Chosen(login) = login.choose_if_single().await.unwrap() else {
        panic!()
    };
    let (_, code) = login.grant(None).await.unwrap();
    code.expose().to_owned()
}

async fn redeem(engine: &Engine, code: &str) {
    let response = engine
        .token(TokenRequest::from_form(Form::from_pairs(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", "app"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])))
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
}

fn bench_engine(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, engine: &Engine) {
    let mut group = c.benchmark_group(format!("store_{name}"));
    group.measurement_time(Duration::from_secs(6));
    group.bench_function("login_flow", |b| b.iter(|| rt.block_on(code(engine))));
    group.bench_function("code_redemption", |b| {
        b.iter_custom(|iters| {
            let codes: Vec<String> = (0..iters).map(|_| rt.block_on(code(engine))).collect();
            let start = Instant::now();
            for code in &codes {
                rt.block_on(redeem(engine, code));
            }
            start.elapsed()
        })
    });
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(format!("login_flow_x{BATCH}_concurrent"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..BATCH)
                    .map(|_| {
                        let engine = engine.clone();
                        tokio::spawn(async move { code(&engine).await })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    });
    group.bench_function(format!("code_redemption_x{BATCH}_concurrent"), |b| {
        b.iter_custom(|iters| {
            let batches: Vec<Vec<String>> = (0..iters)
                .map(|_| (0..BATCH).map(|_| rt.block_on(code(engine))).collect())
                .collect();
            let start = Instant::now();
            for batch in batches {
                rt.block_on(async {
                    let tasks: Vec<_> = batch
                        .into_iter()
                        .map(|code| {
                            let engine = engine.clone();
                            tokio::spawn(async move { redeem(&engine, &code).await })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                });
            }
            start.elapsed()
        })
    });
    group.finish();
    rt.block_on(engine.purge_expired()).unwrap();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let memory = rt.block_on(engine(MemoryStore::new()));
    bench_engine(&mut c, &rt, "memory", &memory);
    match std::env::var("FHIRGATE_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let store = rt.block_on(PgStore::connect(&url)).unwrap();
            rt.block_on(store.migrate()).unwrap();
            let pg = rt.block_on(engine(store));
            bench_engine(&mut c, &rt, "postgres", &pg);
        }
        _ => eprintln!("SKIPPED: the PgStore half (set FHIRGATE_TEST_DATABASE_URL)"),
    }
    c.final_summary();
}
