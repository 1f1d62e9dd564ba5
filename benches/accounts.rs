//! `/auth/resetpassword` for an existing account and for an unknown email: the answer must
//! not tell them apart, in content or in time. Measured in one run beside the bare cost of a
//! route round trip (`/auth/method`, which reads one domain), in process, through the axum
//! router. The link, the store write and the mail of an existing account happen in a task
//! after the answer; an interleaved pass prints both medians and their ratio.
//!
//! Run: `cargo bench --features axum --bench accounts`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use criterion::{Criterion, criterion_group};
use fhirgate::mail::Outbox;
use fhirgate::model::{PasswordHash, User, UserId};
use fhirgate::store::Directory;
use fhirgate::{Config, Engine, MemoryStore};
use tower::ServiceExt;

fn router(rt: &tokio::runtime::Runtime) -> Router {
    let mut config = Config::default();
    config.oauth.issuer = "https://auth.example.org".into();
    config.throttle = fhirgate::config::ThrottleConfig::off();
    let store = MemoryStore::new();
    let engine = Engine::builder()
        .store(store.clone())
        .config(config)
        .mailer(Arc::new(Outbox::new()))
        .build()
        .unwrap();
    rt.block_on(async {
        let mut user = User::new(UserId::new("alice"), "alice@example.org");
        user.password_hash = Some(PasswordHash::new(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
        ));
        store.create_user(&user).await.unwrap();
    });
    fhirgate::http::router(engine)
}

async fn post(router: &Router, path: &str, body: &str) {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
}

const EXISTING: &str = r#"{"email":"alice@example.org"}"#;
const UNKNOWN: &str = r#"{"email":"nobody@example.org"}"#;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let router = router(&rt);
    let mut group = c.benchmark_group("resetpassword");
    group.measurement_time(Duration::from_secs(5));
    let timed = |path: &'static str, body: &'static str| {
        let (rt, router) = (&rt, &router);
        move |iters: u64| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    post(router, path, body).await;
                }
                started.elapsed()
            })
        }
    };
    group.bench_function("route_round_trip_baseline", |b| {
        b.iter_custom(timed("/auth/method", UNKNOWN))
    });
    group.bench_function("existing_account", |b| {
        b.iter_custom(timed("/auth/resetpassword", EXISTING))
    });
    group.bench_function("unknown_email", |b| {
        b.iter_custom(timed("/auth/resetpassword", UNKNOWN))
    });
    group.finish();
}

/// Existing and unknown alternate request by request, so a drifting machine speed affects
/// both alike; prints the medians and their ratio.
fn interleaved_ratio() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let router = router(&rt);
    let (mut existing, mut unknown, mut baseline) = (Vec::new(), Vec::new(), Vec::new());
    rt.block_on(async {
        for round in 0..2_200 {
            for (body, path, out) in [
                (EXISTING, "/auth/resetpassword", &mut existing),
                (UNKNOWN, "/auth/resetpassword", &mut unknown),
                (UNKNOWN, "/auth/method", &mut baseline),
            ] {
                let started = Instant::now();
                post(&router, path, body).await;
                if round >= 200 {
                    out.push(started.elapsed());
                }
            }
        }
    });
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (e, u, b) = (
        median(&mut existing),
        median(&mut unknown),
        median(&mut baseline),
    );
    println!(
        "interleaved medians (2000 each): existing {e:?}, unknown {u:?}, ratio {:.3}; \
         /auth/method baseline {b:?} (existing/baseline {:.2}, unknown/baseline {:.2})",
        e.as_secs_f64() / u.as_secs_f64(),
        e.as_secs_f64() / b.as_secs_f64(),
        u.as_secs_f64() / b.as_secs_f64(),
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    interleaved_ratio();
    Criterion::default().configure_from_args().final_summary();
}
