//! The relying-party side of a federated login, per provider signing algorithm:
//!
//! * `start_to_provider`: start → Domain stage → the provider's authorization URL (state,
//!   nonce and PKCE pair generated, the login stored);
//! * `callback_<alg>`: the provider's redirect back → state consumed → code exchanged at the
//!   token endpoint → ID token verified (signature against the cached JWKS, iss, aud, exp,
//!   iat, nonce) → account mapped → Profile stage stored under a new handle;
//! * `raw_decode_<alg>`: `jsonwebtoken::decode` of the same kind of ID token with issuer and
//!   audience checked — the primitive the callback cannot avoid.
//!
//! The provider is an in-process `Transport` (no sockets), so the numbers are fhirgate's own
//! cost; each ID token is signed outside the timing because it must carry the login's nonce.
//!
//! These VMs drift by ±20 % over minutes, more than the overhead being measured, so after the
//! criterion groups the bench also times each callback and a raw decode of *the same* ID token
//! alternately, round by round (`FHIRGATE_BENCH_ROUNDS`, default 2000), and reports both
//! medians and their ratio (also written to `target/criterion/interleaved-federation.json`).
//!
//! Run: `cargo bench --bench federation`, then `scripts/bench-medians.sh`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{Criterion, criterion_group};
use fhirgate::clock::ManualClock;
use fhirgate::idp::ExternalCallback;
use fhirgate::login::{ExternalRedirect, Method, Passed};
use fhirgate::model::*;
use fhirgate::store::{Directory, DirectoryAdmin};
use fhirgate::transport::{HttpMethod, HttpRequest, HttpResponse, Transport, TransportError};
use fhirgate::{Config, Engine, LoginRequest, MemoryStore};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::json;
use url::Url;

const NOW: i64 = 1_795_860_000;
const ISSUER: &str = "https://idp.example.org";
const CLIENT_ID: &str = "fhirgate-at-idp";
const RSA_PEM: &str = include_str!("../tests/data/keys/idp/rsa-1.pem");
const P256_PEM: &str = include_str!("../tests/data/keys/idp/p256-1.pem");

/// The provider: signs ID tokens with one key, answers the token endpoint with the token
/// prepared for the presented code, and serves its JWKS.
struct Provider {
    algorithm: Algorithm,
    encoding: EncodingKey,
    jwks: Vec<u8>,
    decoding: DecodingKey,
    issued: Mutex<HashMap<String, String>>,
}

impl Provider {
    fn new(algorithm: Algorithm) -> Self {
        let encoding = match algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()),
            _ => EncodingKey::from_ec_pem(P256_PEM.as_bytes()),
        }
        .unwrap();
        let mut jwk = Jwk::from_encoding_key(&encoding, algorithm).unwrap();
        jwk.common.key_id = Some("k1".to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&jwk).unwrap();
        let jwks = serde_json::to_vec(&JwkSet { keys: vec![jwk] }).unwrap();
        Self {
            algorithm,
            encoding,
            jwks,
            decoding,
            issued: Mutex::new(HashMap::new()),
        }
    }

    fn id_token(&self, nonce: &str) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some("k1".to_owned());
        let claims = json!({
            "iss": ISSUER,
            "sub": "idp-user-1",
            "aud": CLIENT_ID,
            "iat": NOW,
            "exp": NOW + 300,
            "nonce": nonce,
            "email": "jane@example.org",
            "email_verified": true,
        });
        jsonwebtoken::encode(&header, &claims, &self.encoding).unwrap()
    }

    /// Prepares the answer to the code exchange for the login behind `redirect`; returns
    /// the provider's redirect back.
    fn authorize(&self, redirect: &ExternalRedirect, n: u64) -> ExternalCallback {
        let query: HashMap<_, _> = redirect.authorize_url.query_pairs().into_owned().collect();
        let code = format!("code-{n}");
        let token = self.id_token(&query["nonce"]);
        self.issued.lock().unwrap().insert(code.clone(), token);
        ExternalCallback {
            state: Some(query["state"].clone()),
            code: Some(code),
            error: None,
            iss: Some(ISSUER.to_owned()),
            browser: Some(redirect.browser_binding.expose().to_owned()),
        }
    }

    fn configuration(&self) -> IdentityProvider {
        IdentityProvider {
            issuer: Some(ISSUER.to_owned()),
            authorize_url: Url::parse(&format!("{ISSUER}/authorize")).unwrap(),
            token_url: Url::parse(&format!("{ISSUER}/token")).unwrap(),
            userinfo_url: None,
            jwks_uri: Some(Url::parse(&format!("{ISSUER}/jwks")).unwrap()),
            client_id: CLIENT_ID.to_owned(),
            client_secret: Some("provider-secret".to_owned()),
            token_auth_method: IdpTokenAuth::ClientSecretBasic,
            use_subject: false,
            scope: "openid email".to_owned(),
            access_token_audiences: Vec::new(),
            iss_parameter_supported: false,
            introspection_url: None,
        }
    }
}

fn json_response(body: Vec<u8>) -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body,
    }
}

#[async_trait]
impl Transport for Provider {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        match (request.method, request.url.path()) {
            (HttpMethod::Get, "/jwks") => Ok(json_response(self.jwks.clone())),
            (HttpMethod::Post, "/token") => {
                let code = url::form_urlencoded::parse(&request.body)
                    .find(|(k, _)| k == "code")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let token = self.issued.lock().unwrap().remove(&code);
                Ok(match token {
                    Some(id_token) => json_response(
                        serde_json::to_vec(&json!({
                            "access_token": "provider-access-token",
                            "token_type": "Bearer",
                            "expires_in": 300,
                            "id_token": id_token,
                        }))
                        .unwrap(),
                    ),
                    None => HttpResponse {
                        status: 400,
                        headers: Vec::new(),
                        body: br#"{"error":"invalid_grant"}"#.to_vec(),
                    },
                })
            }
            _ => Ok(HttpResponse {
                status: 404,
                headers: Vec::new(),
                body: Vec::new(),
            }),
        }
    }
}

struct Setup {
    engine: Engine,
    provider: Arc<Provider>,
}

async fn setup(algorithm: Algorithm) -> Setup {
    let store = MemoryStore::new();
    let provider = Arc::new(Provider::new(algorithm));
    let config = {
        let mut config = Config::default();
        config.throttle = fhirgate::config::ThrottleConfig::off();
        config.external_callback_url =
            Some(Url::parse("https://auth.example.org/auth/external").unwrap());
        config
    };
    let engine = Engine::builder()
        .store(store.clone())
        .clock(Arc::new(ManualClock::at_unix(NOW)))
        .config(config)
        .transport(provider.clone())
        .build()
        .unwrap();
    let project = Project::new(ProjectId::new("p1"), "Clinic");
    store.put_project(&project).await.unwrap();
    let mut client = ClientApplication::new(ClientId::new("app"), project.id.clone());
    client.allowed_scopes = "openid fhirUser offline_access user/*.cruds".into();
    client.redirect_uris = vec!["https://app.example.org/cb".into()];
    store.put_client(&client).await.unwrap();
    store
        .put_domain(&DomainConfiguration {
            domain: "example.org".to_owned(),
            identity_provider: Some(provider.configuration()),
        })
        .await
        .unwrap();
    let user = User::new(UserId::new("u1"), "jane@example.org");
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
    Setup { engine, provider }
}

/// Start → Domain stage → the provider's authorization URL.
async fn to_provider(engine: &Engine) -> ExternalRedirect {
    let login = engine
        .start(LoginRequest {
            client_id: Some("app".into()),
            redirect_uri: Some("https://app.example.org/cb".into()),
            scope: Some("openid fhirUser user/Patient.rs".into()),
            code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
            code_challenge_method: Some("S256".into()),
            ..LoginRequest::default()
        })
        .await
        .unwrap();
    match login.method("jane@example.org").await.unwrap() {
        Method::External { login, domain } => login.federate(domain.as_deref()).await.unwrap(),
        Method::Password(_) => panic!("example.org signs in at its provider"),
    }
}

fn federation(c: &mut Criterion) {
    fhirgate::crypto::install_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("federation");
    group.measurement_time(Duration::from_secs(3));

    let s = rt.block_on(setup(Algorithm::ES256));
    group.bench_function("start_to_provider", |b| {
        b.iter(|| rt.block_on(to_provider(&s.engine)))
    });

    for (algorithm, name) in [(Algorithm::ES256, "ES256"), (Algorithm::RS256, "RS256")] {
        let s = rt.block_on(setup(algorithm));
        let mut n = 0u64;
        group.bench_function(format!("callback_{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    // Untimed: the browser's trip to the provider (and its signature).
                    let redirect = rt.block_on(to_provider(&s.engine));
                    let callback = s.provider.authorize(&redirect, n);
                    let started = Instant::now();
                    let login = rt.block_on(s.engine.external_callback(&callback)).unwrap();
                    total += started.elapsed();
                    assert!(matches!(&login, Passed::Profile(l) if l.record().user == Some(UserId::new("u1"))));
                }
                total
            })
        });

        let token = s.provider.id_token("n-0123456789");
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[CLIENT_ID]);
        validation.validate_exp = false;
        group.bench_function(format!("raw_decode_{name}"), |b| {
            b.iter(|| {
                jsonwebtoken::decode::<serde_json::Value>(&token, &s.provider.decoding, &validation)
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// Callback and raw decode of the same token, alternately, round by round.
fn interleaved() {
    let rounds: u64 = std::env::var("FHIRGATE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for (algorithm, name) in [(Algorithm::ES256, "ES256"), (Algorithm::RS256, "RS256")] {
        let s = rt.block_on(setup(algorithm));
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[CLIENT_ID]);
        validation.validate_exp = false;
        let mut ours = Vec::new();
        let mut raw = Vec::new();
        for round in 0..rounds + 20 {
            let redirect = rt.block_on(to_provider(&s.engine));
            let callback = s.provider.authorize(&redirect, round);
            let code = callback.code.clone().unwrap();
            let token = s.provider.issued.lock().unwrap()[&code].clone();
            let decode = || {
                let started = Instant::now();
                let claims = jsonwebtoken::decode::<serde_json::Value>(
                    &token,
                    &s.provider.decoding,
                    &validation,
                )
                .unwrap();
                (claims, started.elapsed())
            };
            let finish = || {
                let started = Instant::now();
                let login = rt.block_on(s.engine.external_callback(&callback)).unwrap();
                (login, started.elapsed())
            };
            // Alternate which goes first, so neither always meets the caches the untimed
            // signing left behind.
            let ((login, o), (claims, r)) = if round % 2 == 0 {
                let ours = finish();
                (ours, decode())
            } else {
                let raw = decode();
                (finish(), raw)
            };
            assert!(
                matches!(&login, Passed::Profile(l) if l.record().user == Some(UserId::new("u1")))
            );
            assert_eq!(claims.claims["sub"], "idp-user-1");
            if round >= 20 {
                ours.push(o);
                raw.push(r);
            }
        }
        let (ours, raw) = (median(ours), median(raw));
        let ratio = ours.as_secs_f64() / raw.as_secs_f64();
        println!(
            "interleaved {name} ({rounds} rounds) medians: callback {:.2} µs, raw decode {:.2} µs, difference {:.2} µs, ratio {ratio:.3}",
            ours.as_secs_f64() * 1e6,
            raw.as_secs_f64() * 1e6,
            (ours.as_secs_f64() - raw.as_secs_f64()) * 1e6,
        );
        rows.push(format!(
            "\"{name}\":{{\"rounds\":{rounds},\"callback_ns\":{},\"raw_ns\":{},\"ratio\":{ratio}}}",
            ours.as_nanos(),
            raw.as_nanos()
        ));
    }
    let dir = std::path::Path::new("target/criterion");
    if std::fs::create_dir_all(dir).is_ok() {
        let _ = std::fs::write(
            dir.join("interleaved-federation.json"),
            format!("{{{}}}\n", rows.join(",")),
        );
    }
}

criterion_group!(benches, federation);

fn main() {
    benches();
    interleaved();
    Criterion::default().configure_from_args().final_summary();
}
