//! The full login (start → method → password → TOTP → profile → scope → code) against one raw
//! argon2id verification measured in the same run, and the same flow with hashing excluded.
//!
//! Run: `cargo bench --bench login`; medians land in target/criterion/*/new/estimates.json
//! (`scripts/bench-medians.sh` prints them with the ratio).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordHasher as _, PasswordVerifier as _};
use async_trait::async_trait;
use criterion::{Criterion, criterion_group};
use fhirgate::clock::ManualClock;
use fhirgate::credential::password::{HashError, Password, PasswordHasher, Verification};
use fhirgate::credential::totp;
use fhirgate::login::{Method, Passed, ProfileChoice};
use fhirgate::model::*;
use fhirgate::store::{Directory, DirectoryAdmin};
use fhirgate::{Config, Engine, LoginRequest, MemoryStore};

const PASSWORD: &str = "correct horse battery staple";
const SECRET: &[u8] = b"12345678901234567890";

/// A stand-in hasher that compares in clear: only for measuring everything but the hash.
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

struct Setup {
    engine: Engine,
    store: MemoryStore,
    clock: Arc<ManualClock>,
}

async fn setup(hasher: Option<Arc<dyn PasswordHasher>>) -> Setup {
    let store = MemoryStore::new();
    let clock = Arc::new(ManualClock::at_unix(1_795_860_000));
    let mut config = Config::default();
    config.throttle = fhirgate::config::ThrottleConfig::off();
    let mut builder = Engine::builder()
        .store(store.clone())
        .clock(clock.clone())
        .config(config);
    if let Some(h) = hasher {
        builder = builder.password_hasher(h);
    }
    let engine = builder.build().unwrap();
    let project = Project::new(ProjectId::new("p1"), "Clinic");
    store.put_project(&project).await.unwrap();
    let mut client = ClientApplication::new(ClientId::new("app"), project.id.clone());
    client.allowed_scopes = "openid fhirUser offline_access user/*.cruds".into();
    client.redirect_uris = vec!["https://app.example.org/cb".into()];
    store.put_client(&client).await.unwrap();
    let mut user = User::new(UserId::new("u1"), "jane@example.org");
    user.password_hash = Some(engine.hash_new_password(PASSWORD).await.unwrap());
    user.totp = TotpState::Enrolled {
        secret: TotpSecret::from_bytes(SECRET.to_vec()),
    };
    store.create_user(&user).await.unwrap();
    store
        .put_membership(&ProjectMembership::new(
            MembershipId::new("m1"),
            project.id.clone(),
            user.id.clone(),
            Reference::parse("Practitioner/1").unwrap(),
        ))
        .await
        .unwrap();
    Setup {
        engine,
        store,
        clock,
    }
}

/// One complete login; returns the code length so nothing is optimised away.
async fn flow(s: &Setup, totp_code: &str) -> usize {
    let login = s
        .engine
        .start(LoginRequest {
            client_id: Some("app".into()),
            redirect_uri: Some("https://app.example.org/cb".into()),
            scope: Some("openid fhirUser user/Patient.rs user/Observation.cruds".into()),
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            code_challenge_method: Some("S256".into()),
            ..LoginRequest::default()
        })
        .await
        .unwrap();
    let Method::Password(login) = login.method("jane@example.org").await.unwrap() else {
        panic!()
    };
    let Passed::SecondFactor(login) = login.password(PASSWORD).await.unwrap() else {
        panic!()
    };
    let login = login.totp(totp_code).await.unwrap();
    let ProfileChoice::Chosen(login) = login.choose_if_single().await.unwrap() else {
        panic!()
    };
    let (_, code) = login.grant(None).await.unwrap();
    code.expose().len()
}

/// Times `iters` logins; the clock moves one TOTP step before each (outside the timing), so
/// every login has a fresh code, as a real user would.
fn time_flows(rt: &tokio::runtime::Runtime, s: &Setup, iters: u64) -> Duration {
    let secret = TotpSecret::from_bytes(SECRET.to_vec());
    let mut total = Duration::ZERO;
    for i in 0..iters {
        s.clock.advance(time::Duration::seconds(30));
        let code = totp::code_at(&secret, s.engine.now().unix_timestamp() as u64).unwrap();
        if i % 1024 == 1023 {
            rt.block_on(s.engine.purge_expired()).unwrap();
        }
        let start = Instant::now();
        std::hint::black_box(rt.block_on(flow(s, &code)));
        total += start.elapsed();
    }
    total
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("login");
    group.measurement_time(Duration::from_secs(8));

    // The primitive: one argon2id verify with the OWASP defaults (argon2 0.6 default).
    let argon = Argon2::default();
    let phc = argon
        .hash_password_with_salt(PASSWORD.as_bytes(), b"0123456789abcdef")
        .unwrap()
        .to_string();
    let parsed = argon2::PasswordHash::new(&phc).unwrap();
    group.bench_function("raw_argon2id_verify", |b| {
        b.iter(|| argon.verify_password(PASSWORD.as_bytes(), &parsed).unwrap())
    });

    // The same computation into memory that is allocated once and reused (what the
    // library's workers do), to show what the allocation itself costs.
    let mut blocks = vec![argon2::Block::default(); argon2::Params::default().block_count()];
    let mut out = [0u8; 32];
    group.bench_function("raw_argon2id_reused_memory", |b| {
        b.iter(|| {
            argon
                .hash_password_into_with_memory(
                    PASSWORD.as_bytes(),
                    b"0123456789abcdef",
                    &mut out,
                    &mut blocks,
                )
                .unwrap()
        })
    });

    let with_hash = rt.block_on(setup(None));
    group.bench_function("full_flow_default_argon2", |b| {
        b.iter_custom(|iters| time_flows(&rt, &with_hash, iters))
    });
    drop(with_hash);

    group.sample_size(100);
    let no_hash = rt.block_on(setup(Some(Arc::new(NoHash))));
    group.bench_function("full_flow_without_hashing", |b| {
        b.iter_custom(|iters| time_flows(&rt, &no_hash, iters))
    });
    let _ = no_hash.store.login_count();
    group.finish();
}

/// Criterion runs benchmarks one after another, so on a machine whose speed drifts (these
/// shared 2-core VMs do, by ±20 % over minutes) the ratio of two medians can be off by more
/// than the overhead being measured. This measures the raw verify and the full flow
/// alternately, round by round, so both see the same machine, and prints both medians and
/// their ratio. `FHIRGATE_BENCH_ROUNDS` sets the rounds (default 200).
fn interleaved_ratio() {
    let rounds: usize = std::env::var("FHIRGATE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = rt.block_on(setup(None));
    let argon = Argon2::default();
    let phc = argon
        .hash_password_with_salt(PASSWORD.as_bytes(), b"0123456789abcdef")
        .unwrap()
        .to_string();
    let parsed = argon2::PasswordHash::new(&phc).unwrap();
    let mut blocks = vec![argon2::Block::default(); argon2::Params::default().block_count()];
    let mut out = [0u8; 32];
    let mut raw = Vec::with_capacity(rounds);
    let mut reused = Vec::with_capacity(rounds);
    let mut flow = Vec::with_capacity(rounds);
    for round in 0..rounds + 5 {
        let start = Instant::now();
        argon.verify_password(PASSWORD.as_bytes(), &parsed).unwrap();
        let r = start.elapsed();
        let start = Instant::now();
        argon
            .hash_password_into_with_memory(
                PASSWORD.as_bytes(),
                b"0123456789abcdef",
                &mut out,
                &mut blocks,
            )
            .unwrap();
        let m = start.elapsed();
        let f = time_flows(&rt, &s, 1);
        if round >= 5 {
            raw.push(r);
            reused.push(m);
            flow.push(f);
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (raw, reused, flow) = (median(&mut raw), median(&mut reused), median(&mut flow));
    let ratio = flow.as_secs_f64() / raw.as_secs_f64();
    let ratio_reused = flow.as_secs_f64() / reused.as_secs_f64();
    println!(
        "interleaved ({rounds} rounds) medians: raw argon2id verify {:.3} ms, argon2id into reused memory {:.3} ms, full flow {:.3} ms; flow/raw {ratio:.3}, flow/reused {ratio_reused:.3}",
        raw.as_secs_f64() * 1e3,
        reused.as_secs_f64() * 1e3,
        flow.as_secs_f64() * 1e3
    );
    let dir = std::path::Path::new("target/criterion");
    if std::fs::create_dir_all(dir).is_ok() {
        let _ = std::fs::write(
            dir.join("interleaved-login.json"),
            format!(
                "{{\"rounds\":{rounds},\"raw_ns\":{},\"reused_ns\":{},\"flow_ns\":{},\"ratio\":{ratio},\"ratio_reused\":{ratio_reused}}}\n",
                raw.as_nanos(),
                reused.as_nanos(),
                flow.as_nanos()
            ),
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    interleaved_ratio();
    Criterion::default().configure_from_args().final_summary();
}
