//! Token issuance per algorithm against the raw signature (jsonwebtoken `encode` with the
//! same key, header and claims), and access-token verification — the grant's liveness served
//! from the cache — against a raw `jsonwebtoken::decode` of the same token.
//!
//! Run: `cargo bench --bench tokens`, then `scripts/bench-medians.sh`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use fhirgate::clock::ManualClock;
use fhirgate::model::*;
use fhirgate::oauth::{Form, TokenRequest};
use fhirgate::store::DirectoryAdmin;
use fhirgate::token::{AccessClaims, KeySet, SigningAlgorithm, SigningKey};
use fhirgate::{Config, Engine, MemoryStore};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

const RSA_PEM: &str = include_str!("../tests/data/keys/rsa2048.pem");
const P256_PEM: &str = include_str!("../tests/data/keys/p256.pem");
const ED25519_PEM: &str = include_str!("../tests/data/keys/ed25519.pem");
const SECRET: &str = "bench-secret-0123456789abcdef0123456789";

fn claims(now: i64) -> AccessClaims {
    AccessClaims {
        iss: "https://auth.example.org".into(),
        sub: "u1".into(),
        aud: "https://auth.example.org/fhir/R4".into(),
        exp: now + 3600,
        iat: now,
        jti: "7f0c1c7e-5d1b-4c55-9a53-1f5d7c3c9b10".into(),
        client_id: Some("app".into()),
        scope: "openid fhirUser user/Observation.rs".into(),
        login_id: "0b6f5b0e-1f71-4b7d-8d1b-2f0c8b1c9e33".into(),
        profile: Some("Practitioner/1".into()),
        project: Some("Project/p1".into()),
        auth_time: Some(now),
    }
}

fn pem(alg: SigningAlgorithm) -> &'static str {
    match alg {
        SigningAlgorithm::Es256 => P256_PEM,
        SigningAlgorithm::EdDsa => ED25519_PEM,
        SigningAlgorithm::Rs256 => RSA_PEM,
    }
}

fn key(alg: SigningAlgorithm) -> SigningKey {
    SigningKey::from_pkcs8_pem(alg, pem(alg)).unwrap()
}

/// The same key as jsonwebtoken loads it from the same PEM.
fn raw_keys(alg: SigningAlgorithm, key: &SigningKey) -> (EncodingKey, DecodingKey) {
    let pem = pem(alg).as_bytes();
    let encoding = match alg {
        SigningAlgorithm::Es256 => EncodingKey::from_ec_pem(pem),
        SigningAlgorithm::EdDsa => EncodingKey::from_ed_pem(pem),
        SigningAlgorithm::Rs256 => EncodingKey::from_rsa_pem(pem),
    }
    .unwrap();
    let decoding = DecodingKey::from_jwk(key.public_jwk()).unwrap();
    (encoding, decoding)
}

fn issuance(c: &mut Criterion) {
    fhirgate::crypto::install_provider();
    let mut group = c.benchmark_group("issue");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    for alg in [
        SigningAlgorithm::Es256,
        SigningAlgorithm::EdDsa,
        SigningAlgorithm::Rs256,
    ] {
        let key = key(alg);
        let (encoding, _) = raw_keys(alg, &key);
        let mut header = Header::new(alg.jwt_alg());
        header.kid = Some(key.kid().to_owned());
        header.typ = Some("at+jwt".to_owned());
        let set = KeySet::new(key);
        let body = claims(now);
        group.bench_function(format!("raw_sign/{}", alg.as_str()), |b| {
            b.iter(|| jsonwebtoken::encode(&header, &body, &encoding).unwrap())
        });
        group.bench_function(format!("access_token/{}", alg.as_str()), |b| {
            b.iter(|| set.sign("at+jwt", &claims(now)).unwrap())
        });
    }
    group.finish();
}

/// An engine with one live grant and its access token, the verification cache on.
fn engine_with_token(rt: &tokio::runtime::Runtime) -> (Engine, String, KeySet) {
    rt.block_on(async {
        let store = MemoryStore::new();
        let mut config = Config::default();
        config.oauth.issuer = "https://auth.example.org".into();
        config.oauth.verify_cache = Some(time::Duration::seconds(30));
        let keys = KeySet::new(key(SigningAlgorithm::Es256));
        let engine = Engine::builder()
            .store(store.clone())
            .config(config)
            .keys(keys.clone())
            .clock(Arc::new(ManualClock::new(time::OffsetDateTime::now_utc())))
            .build()
            .unwrap();
        store
            .put_project(&Project::new(ProjectId::new("p1"), "Clinic"))
            .await
            .unwrap();
        let mut client = ClientApplication::new(ClientId::new("m2m"), ProjectId::new("p1"));
        client.auth_method = ClientAuthMethod::ClientSecretPost;
        client.secret = Some(ClientSecretHash::of(SECRET));
        client.allowed_scopes = "system/Observation.rs".into();
        store.put_client(&client).await.unwrap();
        store
            .put_membership(&ProjectMembership::new(
                MembershipId::new("m1"),
                ProjectId::new("p1"),
                UserId::new("m2m"),
                Reference::parse("ClientApplication/m2m").unwrap(),
            ))
            .await
            .unwrap();
        let response = engine
            .token(TokenRequest::from_form(Form::from_pairs(&[
                ("grant_type", "client_credentials"),
                ("client_id", "m2m"),
                ("client_secret", SECRET),
            ])))
            .await;
        let token = response.body["access_token"].as_str().unwrap().to_owned();
        (engine, token, keys)
    })
}

fn verification(c: &mut Criterion) {
    fhirgate::crypto::install_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (engine, token, keys) = engine_with_token(&rt);
    let (_, decoding) = raw_keys(SigningAlgorithm::Es256, keys.active());
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["https://auth.example.org/fhir/R4"]);
    validation.set_issuer(&["https://auth.example.org"]);
    let mut group = c.benchmark_group("verify");
    group.bench_function("raw_decode/ES256", |b| {
        b.iter(|| jsonwebtoken::decode::<AccessClaims>(&token, &decoding, &validation).unwrap())
    });
    group.bench_function("access_token_cached/ES256", |b| {
        b.iter(|| rt.block_on(engine.verifier().verify(&token)).unwrap())
    });
    // For reference: the whole client_credentials grant (client auth, membership, policy,
    // stored grant, signed token).
    group.bench_function("client_credentials_grant/ES256", |b| {
        b.iter(|| {
            rt.block_on(engine.token(TokenRequest::from_form(Form::from_pairs(&[
                ("grant_type", "client_credentials"),
                ("client_id", "m2m"),
                ("client_secret", SECRET),
            ]))))
        })
    });
    group.finish();
}

criterion_group!(benches, issuance, verification);
criterion_main!(benches);
