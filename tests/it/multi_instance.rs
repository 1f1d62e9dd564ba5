//! Two engines — two server instances — sharing one PostgreSQL database: a login moves
//! between them, and every single-use value stays single-use across them. Plus the database
//! failing mid-flow.
//!
//! Needs `FHIRGATE_TEST_DATABASE_URL` (see `scripts/start-postgres.sh`); skipped with a
//! notice without it, failed without it when `FHIRGATE_REQUIRE_POSTGRES=1`.
#![cfg(feature = "postgres")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use crate::common::pg::TestDb;
use crate::common::*;
use fhirgate::clock::ManualClock;
use fhirgate::error::ServerError;
use fhirgate::login::{ProfileChoice, SecondFactor};
use fhirgate::oauth::{Form, OAuthResponse, TokenRequest};
use fhirgate::store::StoreError;
use fhirgate::token::{KeySet, SigningAlgorithm, SigningKey};
use fhirgate::{Config, Engine, LoginError, PgStore};

/// Two engines on one schema, sharing keys and a clock (as instances share a key set and
/// real time).
struct Pair {
    db: TestDb,
    a: Engine,
    b: Engine,
    clock: Arc<ManualClock>,
}

async fn engine(db: &TestDb, config: Config, keys: &KeySet, clock: &Arc<ManualClock>) -> Engine {
    let store = db.store_with(db.options()).await;
    store.migrate().await.unwrap();
    Engine::builder()
        .store(store)
        .config(config)
        .keys(keys.clone())
        .clock(clock.clone())
        .build()
        .unwrap()
}

async fn pair_with(config: Config) -> Option<Pair> {
    let db = TestDb::new().await?;
    let keys = KeySet::new(
        SigningKey::generate(SigningAlgorithm::Es256, &fhirgate::random::OsRandom).unwrap(),
    );
    let clock = Arc::new(ManualClock::at_unix(START));
    let a = engine(&db, config.clone(), &keys, &clock).await;
    let b = engine(&db, config, &keys, &clock).await;
    let admin = db.store_with(db.options()).await;
    Seeder {
        engine: &a,
        dir: &admin,
    }
    .seed()
    .await;
    Some(Pair { db, a, b, clock })
}

async fn pair() -> Option<Pair> {
    pair_with(config()).await
}

async fn token(
    engine: &Engine,
    authorization: Option<String>,
    pairs: &[(&str, &str)],
) -> OAuthResponse {
    let mut request = TokenRequest::from_form(Form::from_pairs(pairs));
    request.authorization = authorization;
    engine.token(request).await
}

async fn redeem(engine: &Engine, code: &str) -> OAuthResponse {
    token(
        engine,
        Some(basic("confidential", CLIENT_SECRET)),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

fn totp_at(clock: &ManualClock) -> String {
    let secret = fhirgate::model::TotpSecret::from_bytes(TOTP_SECRET.to_vec());
    fhirgate::credential::totp::code_at(
        &secret,
        fhirgate::clock::Clock::now(clock).unix_timestamp() as u64,
    )
    .unwrap()
}

async fn bob_password(engine: &Engine) -> String {
    let mut request = LoginRequestExt::confidential();
    request.scope = Some("openid offline_access user/Observation.rs".into());
    let login = engine.start(request).await.unwrap();
    let fhirgate::login::Method::Password(login) = login.method("bob@example.org").await.unwrap()
    else {
        panic!()
    };
    expect_second_factor(login.password(PASSWORD).await.unwrap())
        .handle()
        .expose()
        .to_owned()
}

struct LoginRequestExt;
impl LoginRequestExt {
    fn confidential() -> fhirgate::LoginRequest {
        fhirgate::LoginRequest {
            client_id: Some("confidential".into()),
            redirect_uri: Some(REDIRECT.into()),
            scope: Some("openid offline_access".into()),
            code_challenge: Some(CHALLENGE.into()),
            code_challenge_method: Some("S256".into()),
            ..fhirgate::LoginRequest::default()
        }
    }
}

/// bob signs in on A (password), passes TOTP and gets his code on B.
async fn code_across(p: &Pair) -> String {
    let handle = bob_password(&p.a).await;
    let login = p.b.resume::<SecondFactor>(&handle).await.unwrap();
    let login = login.totp(&totp_at(&p.clock)).await.unwrap();
    let ProfileChoice::Chosen(login) = login.choose_if_single().await.unwrap() else {
        panic!()
    };
    let (_, code) = login.grant(None).await.unwrap();
    code.expose().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_started_on_one_instance_finishes_on_the_other() {
    let Some(p) = pair().await else { return };
    let code = code_across(&p).await;
    let r = redeem(&p.a, &code).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A token issued by A is verified by B.
    let principal =
        p.b.verifier()
            .verify(r.body["access_token"].as_str().unwrap())
            .await
            .unwrap();
    assert_eq!(principal.membership.as_str(), "m-bob-1");
    p.db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_redemptions_split_across_instances_yield_exactly_one() {
    let Some(p) = pair().await else { return };
    let code = code_across(&p).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let mut tasks = Vec::new();
    for i in 0..64 {
        let engine = if i % 2 == 0 { p.a.clone() } else { p.b.clone() };
        let (barrier, code) = (barrier.clone(), code.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            redeem(&engine, &code).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => ok += 1,
            400 => assert_eq!(r.body["error"], "invalid_grant", "{}", r.body),
            other => panic!("{other}: {}", r.body),
        }
    }
    assert_eq!(ok, 1);
    p.db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_reuse_is_detected_across_instances() {
    let Some(p) = pair().await else { return };
    let code = code_across(&p).await;
    let r0 = redeem(&p.a, &code).await;
    let rt1 = r0.body["refresh_token"].as_str().unwrap().to_owned();
    let auth = || Some(basic("confidential", CLIENT_SECRET));
    let r1 = token(
        &p.b,
        auth(),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    )
    .await;
    assert_eq!(r1.status, 200, "{}", r1.body);
    let rt2 = r1.body["refresh_token"].as_str().unwrap().to_owned();
    // The rotated-out token, replayed at A: refused, and the family revoked everywhere.
    let replay = token(
        &p.a,
        auth(),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
    )
    .await;
    assert_eq!(replay.body["error"], "invalid_grant");
    let after = token(
        &p.b,
        auth(),
        &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
    )
    .await;
    assert_eq!(after.body["error"], "invalid_grant");
    assert!(
        p.a.verifier()
            .verify(r1.body["access_token"].as_str().unwrap())
            .await
            .is_err()
    );
    p.db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_totp_step_replayed_on_another_instance_is_refused() {
    let Some(p) = pair().await else { return };
    let code = totp_at(&p.clock);
    let first = bob_password(&p.a).await;
    p.a.resume::<SecondFactor>(&first)
        .await
        .unwrap()
        .totp(&code)
        .await
        .unwrap();
    let second = bob_password(&p.b).await;
    let err =
        p.b.resume::<SecondFactor>(&second)
            .await
            .unwrap()
            .totp(&code)
            .await
            .unwrap_err();
    assert_eq!(err.to_string(), "Invalid MFA token");
    p.db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attempt_caps_are_shared_across_instances() {
    let mut config = config();
    config.throttle.attempts_per_account_source = 6;
    let Some(p) = pair_with(config).await else {
        return;
    };
    let attempt = |engine: Engine| async move {
        let login = engine.start(LoginRequestExt::confidential()).await.unwrap();
        let fhirgate::login::Method::Password(login) =
            login.method("alice@example.org").await.unwrap()
        else {
            panic!()
        };
        login.password("wrong password!").await
    };
    for i in 0..6 {
        let engine = if i % 2 == 0 { p.a.clone() } else { p.b.clone() };
        assert!(matches!(
            attempt(engine).await,
            Err(LoginError::Credentials(_))
        ));
    }
    for engine in [p.a.clone(), p.b.clone()] {
        assert!(matches!(
            attempt(engine).await,
            Err(LoginError::Throttled { .. })
        ));
    }
    // TOTP caps too: five wrong codes on one login, spread over both instances.
    let handle = bob_password(&p.a).await;
    for i in 0..5 {
        let engine = if i % 2 == 0 { &p.a } else { &p.b };
        let err = engine
            .resume::<SecondFactor>(&handle)
            .await
            .unwrap()
            .totp("000000")
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "Invalid MFA token");
    }
    let err =
        p.b.resume::<SecondFactor>(&handle)
            .await
            .unwrap()
            .totp(&totp_at(&p.clock))
            .await
            .unwrap_err();
    assert!(matches!(err, LoginError::Throttled { .. }));
    p.db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_database_going_away_mid_flow_is_a_typed_error_and_the_next_request_works() {
    let Some(p) = pair().await else { return };
    let handle = bob_password(&p.a).await;
    // Every connection of this test's pools is killed between two steps of the login.
    p.db.admin
        .batch_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = '{}' AND pid <> pg_backend_pid()",
            p.db.application_name()
        ))
        .await
        .unwrap();
    let first = async {
        p.a.resume::<SecondFactor>(&handle)
            .await?
            .totp(&totp_at(&p.clock))
            .await
    }
    .await;
    let next = match first {
        // The pool may have noticed the dead connections already and opened new ones.
        Ok(next) => next,
        Err(LoginError::Server(ServerError::Store(StoreError::Unavailable(_)))) => {
            // Nothing half-done: the login still waits for its factor, and the next request
            // (with the same code: its step was not consumed) goes through.
            let login = p.a.resume::<SecondFactor>(&handle).await.unwrap();
            login.totp(&totp_at(&p.clock)).await.unwrap()
        }
        Err(other) => panic!("expected a store error, got {other}"),
    };
    // Whatever happened, the login moved exactly once, under a new handle.
    assert_eq!(
        p.b.login_stage(next.handle().expose()).await.unwrap(),
        fhirgate::model::StageTag::Profile
    );
    assert!(p.b.login_stage(&handle).await.is_err());

    // A statement timeout: a row lock held elsewhere makes the update wait past it.
    let short = PgStore::connect_with(&p.db.store_url(), {
        let mut options = p.db.options();
        options.statement_timeout = Some(std::time::Duration::from_millis(300));
        options
    })
    .await
    .unwrap();
    let engine = Engine::builder()
        .store(short)
        .config(config())
        .keys(p.a.keys().current().as_ref().clone())
        .clock(p.clock.clone())
        .build()
        .unwrap();
    let handle = bob_password(&engine).await;
    let record = engine
        .login_store()
        .login_by_handle(&fhirgate::secret::SecretHash::of_presented(&handle))
        .await
        .unwrap()
        .unwrap();
    let locker = TestDb::new().await.unwrap();
    let lock_sql = format!(
        "BEGIN; SELECT 1 FROM {}.fhirgate_logins WHERE id = '{}' FOR UPDATE;",
        p.db.schema, record.id
    );
    locker.admin.batch_execute(&lock_sql).await.unwrap();
    p.clock.advance(time::Duration::seconds(30));
    let err = engine
        .resume::<SecondFactor>(&handle)
        .await
        .unwrap()
        .totp(&totp_at(&p.clock))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            LoginError::Server(ServerError::Store(StoreError::Unavailable(_)))
        ),
        "{err}"
    );
    locker.admin.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(
        engine.login_stage(&handle).await.unwrap(),
        fhirgate::model::StageTag::SecondFactor
    );
    locker.finish().await;
    p.db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_error_text_stays_in_the_audit_log_not_in_the_answer() {
    // error_description carried PostgreSQL's messages (table names, constraints) to clients.
    let Some(p) = pair().await else { return };
    let audit = Arc::new(fhirgate::audit::MemoryAudit::new());
    let store = p.db.store_with(p.db.options()).await;
    let engine = Engine::builder()
        .store(store)
        .config(config())
        .keys(p.a.keys().current().as_ref().clone())
        .clock(p.clock.clone())
        .audit(audit.clone())
        .build()
        .unwrap();
    p.db.admin
        .batch_execute(&format!(
            "ALTER TABLE {} RENAME TO fhirgate_logins_gone",
            p.db.table("fhirgate_logins")
        ))
        .await
        .unwrap();
    let response = redeem(&engine, "some-code-0123456789abcdef").await;
    assert_eq!(response.status, 500, "{}", response.body);
    assert_eq!(response.body["error"], "server_error");
    assert_eq!(
        response.body["error_description"],
        fhirgate::oauth::SERVER_ERROR_DESCRIPTION
    );
    let shown = response.body.to_string();
    assert!(!shown.contains("store"), "{shown}");
    // The operator still learns what failed.
    let detail = audit
        .events()
        .into_iter()
        .find_map(|e| match e.kind {
            fhirgate::audit::AuditKind::TokenRefused { detail, .. } => detail,
            _ => None,
        })
        .expect("a refusal with its detail");
    assert!(detail.contains("store unavailable"), "{detail}");
    p.db.admin
        .batch_execute(&format!(
            "ALTER TABLE {}.fhirgate_logins_gone RENAME TO fhirgate_logins",
            p.db.schema
        ))
        .await
        .unwrap();
    p.db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_reset_link_sets_one_password_across_instances_and_ends_the_sessions() {
    use fhirgate::account::{AccountError, LinkRefusal, ResetOutcome};
    let Some(p) = pair().await else { return };
    let code = code_across(&p).await;
    let tokens = redeem(&p.a, &code).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let access = tokens.body["access_token"].as_str().unwrap().to_owned();
    // bob's login on instance a; the reset link is asked for on b.
    let ResetOutcome::Issued { link, .. } =
        p.b.accounts()
            .request_password_reset("bob@example.org", None, false, None)
            .await
            .unwrap()
    else {
        panic!("bob exists");
    };
    let path = link
        .expose()
        .rsplit("/setpassword/")
        .next()
        .unwrap()
        .to_owned();
    let (id, secret) = path.split_once('/').unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(16));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let engine = if i % 2 == 0 { p.a.clone() } else { p.b.clone() };
        let (barrier, id, secret) = (barrier.clone(), id.to_owned(), secret.to_owned());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            engine
                .accounts()
                .set_password(&id, &secret, "a brand new passphrase", None)
                .await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(AccountError::Link(LinkRefusal::Used)) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert!(
        p.b.verifier().verify(&access).await.is_err(),
        "the reset ended the session on the other instance"
    );
    p.db.finish().await;
}
