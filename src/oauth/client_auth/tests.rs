use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::assertion::{MAX_JTI_CHARS, escape_client_id};
use super::presented::MAX_AUTHORIZATION_BYTES;
use super::*;
use crate::clock::{ManualClock, SystemClock};
use crate::model::{ClientSecretHash, ProjectId};
use crate::oauth::ErrorCode;
use crate::oauth::Form;
use crate::store::{DirectoryAdmin, MemoryStore};
use crate::transport::TransportError;
use crate::transport::{HttpMethod, HttpRequest, HttpResponse};
use base64::Engine as _;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;

// ---------------------------------------------------------------------------------------
// The world: a store, a manual clock, and a transport that serves a JWKS and counts fetches.

struct FakeTransport {
    response: Mutex<Result<HttpResponse, TransportError>>,
    fetches: AtomicUsize,
    requests: Mutex<Vec<HttpRequest>>,
}

impl FakeTransport {
    fn serving(jwks: &Value) -> Arc<Self> {
        Arc::new(Self {
            response: Mutex::new(Ok(jwks_response(jwks, None))),
            fetches: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
        })
    }

    fn set(&self, response: Result<HttpResponse, TransportError>) {
        *self.response.lock().unwrap() = response;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Transport for FakeTransport {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        self.requests.lock().unwrap().push(request);
        self.response.lock().unwrap().clone()
    }
}

fn jwks_response(jwks: &Value, cache_control: Option<&str>) -> HttpResponse {
    let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
    if let Some(cc) = cache_control {
        headers.push(("Cache-Control".to_owned(), cc.to_owned()));
    }
    HttpResponse {
        status: 200,
        headers,
        body: serde_json::to_vec(jwks).unwrap(),
    }
}

const ISSUER: &str = "https://as.example.org";
const TOKEN: &str = "https://as.example.org/oauth2/token";
const JWKS_URI: &str = "https://app.example.org/jwks.json";
const T0: i64 = 1_700_000_000;

struct World {
    store: MemoryStore,
    clock: Arc<ManualClock>,
    transport: Arc<FakeTransport>,
    auth: ClientAuthenticator,
}

impl World {
    fn new(issuer: &str, token: &str, now: i64) -> Self {
        Self::with_clock(issuer, token, Arc::new(ManualClock::at_unix(now)))
    }

    fn with_clock(issuer: &str, token: &str, clock: Arc<ManualClock>) -> Self {
        let store = MemoryStore::new();
        let transport = FakeTransport::serving(&json!({ "keys": [] }));
        let auth = ClientAuthenticator::new(
            Arc::new(store.clone()),
            Arc::new(store.clone()),
            transport.clone(),
            clock.clone(),
            Url::parse(issuer).unwrap(),
            Url::parse(token).unwrap(),
            Arc::new(JwksCache::new(Duration::minutes(5))),
        );
        Self {
            store,
            clock,
            transport,
            auth,
        }
    }

    fn standard() -> Self {
        Self::new(ISSUER, TOKEN, T0)
    }

    fn now(&self) -> i64 {
        self.clock.now().unix_timestamp()
    }

    async fn put(&self, client: &ClientApplication) {
        self.store.put_client(client).await.unwrap();
    }

    async fn auth(
        &self,
        authorization: Option<&str>,
        form: &[(&str, &str)],
    ) -> Result<AuthenticatedClient, OAuthError> {
        let presented = presented_credentials(authorization, &Form::from_pairs(form))?;
        self.auth.authenticate(&presented).await
    }

    async fn assert_with(&self, assertion: &str) -> Result<AuthenticatedClient, OAuthError> {
        self.auth(
            None,
            &[
                ("client_assertion_type", CLIENT_ASSERTION_TYPE_JWT_BEARER),
                ("client_assertion", assertion),
            ],
        )
        .await
    }
}

fn client(id: &str, method: ClientAuthMethod) -> ClientApplication {
    let mut c = ClientApplication::new(ClientId::new(id), ProjectId::new("p"));
    c.auth_method = method;
    c
}

fn secret_client(id: &str, method: ClientAuthMethod, secret: &str) -> ClientApplication {
    let mut c = client(id, method);
    c.secret = Some(ClientSecretHash::of(secret));
    c
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn basic(id: &str, secret: &str) -> String {
    let pair = format!("{}:{}", urlencode(id), urlencode(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

fn assert_invalid_client(
    result: Result<AuthenticatedClient, OAuthError>,
    status: u16,
) -> OAuthError {
    let e = result.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidClient, "{e}");
    assert_eq!(e.status, status, "{e}");
    if status == 401 {
        assert_eq!(
            e.www_authenticate.as_deref(),
            Some("Basic realm=\"fhirgate\"")
        );
    } else {
        assert_eq!(e.www_authenticate, None);
    }
    e
}

fn assert_invalid_request(result: Result<PresentedCredentials, OAuthError>) -> OAuthError {
    let e = result.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidRequest, "{e}");
    assert_eq!(e.status, 400);
    e
}

// ---------------------------------------------------------------------------------------
// Secrets.

#[tokio::test]
async fn basic_credentials_are_form_urldecoded_before_comparison() {
    let w = World::standard();
    let id = "app:1 é&x";
    let secret = "a:b%+";
    w.put(&secret_client(
        id,
        ClientAuthMethod::ClientSecretBasic,
        secret,
    ))
    .await;
    // The header carries base64("app%3A1+%C3%A9%26x:a%3Ab%25%2B").
    let header = basic(id, secret);
    let ok = w.auth(Some(&header), &[]).await.unwrap();
    assert_eq!(ok.client.id.as_str(), id);
    assert_eq!(ok.method, ClientAuthMethod::ClientSecretBasic);

    // Not urlencoded: `a:b%+` decodes to something else (and `%+` is malformed).
    let raw = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:a:b%+", urlencode(id)))
    );
    assert_invalid_client(w.auth(Some(&raw), &[]).await, 401);

    // Scheme is case-insensitive and padding optional.
    let unpadded = header.trim_end_matches('=').replacen("Basic", "bAsIc", 1);
    assert!(w.auth(Some(&unpadded), &[]).await.is_ok());
    // A form client_id equal to the Basic one is allowed.
    assert!(w.auth(Some(&header), &[("client_id", id)]).await.is_ok());
}

#[tokio::test]
async fn client_secret_post_works_and_wrong_secrets_are_400_without_challenge() {
    let w = World::standard();
    w.put(&secret_client(
        "post-app",
        ClientAuthMethod::ClientSecretPost,
        "s3cret",
    ))
    .await;
    let ok = w
        .auth(
            None,
            &[("client_id", "post-app"), ("client_secret", "s3cret")],
        )
        .await
        .unwrap();
    assert_eq!(ok.method, ClientAuthMethod::ClientSecretPost);
    let e = assert_invalid_client(
        w.auth(
            None,
            &[("client_id", "post-app"), ("client_secret", "s3cret!")],
        )
        .await,
        400,
    );
    assert_eq!(e.description, "Invalid client");
}

#[tokio::test]
async fn wrong_basic_secret_is_401_with_a_basic_challenge() {
    let w = World::standard();
    w.put(&secret_client(
        "b",
        ClientAuthMethod::ClientSecretBasic,
        "right",
    ))
    .await;
    let e = assert_invalid_client(w.auth(Some(&basic("b", "wrong")), &[]).await, 401);
    let response = e.to_response();
    assert_eq!(response.status, 401);
    assert_eq!(
        response.header("WWW-Authenticate"),
        Some("Basic realm=\"fhirgate\"")
    );
    assert_eq!(response.header("Cache-Control"), Some("no-store"));
}

#[tokio::test]
async fn secret_rotation_accepts_the_retiring_secret_until_it_is_removed() {
    let w = World::standard();
    let mut c = secret_client("rot", ClientAuthMethod::ClientSecretBasic, "new-secret");
    c.retiring_secret = Some(ClientSecretHash::of("old-secret"));
    w.put(&c).await;
    assert!(w.auth(Some(&basic("rot", "new-secret")), &[]).await.is_ok());
    assert!(w.auth(Some(&basic("rot", "old-secret")), &[]).await.is_ok());
    c.retiring_secret = None;
    w.put(&c).await;
    assert!(w.auth(Some(&basic("rot", "new-secret")), &[]).await.is_ok());
    assert_invalid_client(w.auth(Some(&basic("rot", "old-secret")), &[]).await, 401);
}

#[tokio::test]
async fn unknown_inactive_and_wrong_secret_give_the_same_answer() {
    let w = World::standard();
    w.put(&secret_client(
        "b",
        ClientAuthMethod::ClientSecretBasic,
        "right",
    ))
    .await;
    let mut off = secret_client("off", ClientAuthMethod::ClientSecretBasic, "right");
    off.status = ClientStatus::Off;
    w.put(&off).await;

    let wrong = w.auth(Some(&basic("b", "wrong")), &[]).await.unwrap_err();
    let unknown = w
        .auth(Some(&basic("nobody", "right")), &[])
        .await
        .unwrap_err();
    let inactive = w.auth(Some(&basic("off", "right")), &[]).await.unwrap_err();
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, inactive);
    assert_eq!(wrong.code, ErrorCode::InvalidClient);

    let wrong = w
        .auth(None, &[("client_id", "b"), ("client_secret", "wrong")])
        .await
        .unwrap_err();
    let unknown = w
        .auth(None, &[("client_id", "nobody"), ("client_secret", "x")])
        .await
        .unwrap_err();
    assert_eq!(wrong, unknown);
}

#[tokio::test]
async fn the_presented_method_must_be_the_registered_one() {
    let w = World::standard();
    w.put(&secret_client(
        "post",
        ClientAuthMethod::ClientSecretPost,
        "s",
    ))
    .await;
    w.put(&secret_client(
        "basic",
        ClientAuthMethod::ClientSecretBasic,
        "s",
    ))
    .await;
    let mut jwt = secret_client("jwt", ClientAuthMethod::PrivateKeyJwt, "s");
    jwt.jwks = Some(JwkSet::default());
    w.put(&jwt).await;

    assert_invalid_client(w.auth(Some(&basic("post", "s")), &[]).await, 401);
    assert_invalid_client(
        w.auth(None, &[("client_id", "basic"), ("client_secret", "s")])
            .await,
        400,
    );
    // A stray secret on a private_key_jwt client is not a way in.
    assert_invalid_client(w.auth(Some(&basic("jwt", "s")), &[]).await, 401);
    // Confidential clients presenting nothing are refused.
    for id in ["post", "basic", "jwt"] {
        assert_invalid_client(w.auth(None, &[("client_id", id)]).await, 400);
    }
    assert_invalid_client(w.auth(None, &[]).await, 400);
}

#[tokio::test]
async fn public_clients_present_their_id_only() {
    let w = World::standard();
    let mut public = client("spa", ClientAuthMethod::None);
    // Even a leftover secret hash does not make a secret acceptable.
    public.secret = Some(ClientSecretHash::of("s"));
    w.put(&public).await;
    let ok = w.auth(None, &[("client_id", "spa")]).await.unwrap();
    assert_eq!(ok.method, ClientAuthMethod::None);
    assert!(ok.client.is_public());

    assert_invalid_client(
        w.auth(None, &[("client_id", "spa"), ("client_secret", "s")])
            .await,
        400,
    );
    assert_invalid_client(w.auth(Some(&basic("spa", "s")), &[]).await, 401);
    let unknown = w.auth(None, &[("client_id", "nobody")]).await.unwrap_err();
    assert_eq!(unknown.description, "Invalid client");
}

#[tokio::test]
async fn more_than_one_method_is_invalid_request() {
    let header = basic("a", "s");
    type Case<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)]);
    let cases: [Case; 4] = [
        (Some(&header), &[("client_secret", "s")]),
        (
            Some(&header),
            &[
                ("client_assertion_type", CLIENT_ASSERTION_TYPE_JWT_BEARER),
                ("client_assertion", "a.b.c"),
            ],
        ),
        (
            None,
            &[
                ("client_id", "a"),
                ("client_secret", "s"),
                ("client_assertion_type", CLIENT_ASSERTION_TYPE_JWT_BEARER),
                ("client_assertion", "a.b.c"),
            ],
        ),
        // The assertion type alone counts as the assertion method.
        (
            Some(&header),
            &[("client_assertion_type", CLIENT_ASSERTION_TYPE_JWT_BEARER)],
        ),
    ];
    for (authorization, form) in cases {
        let e = assert_invalid_request(presented_credentials(
            authorization,
            &Form::from_pairs(form),
        ));
        assert!(e.description.contains("Multiple"), "{}", e.description);
    }
}

#[test]
fn malformed_requests_are_invalid_request() {
    let header = basic("a", "s");
    // A form client_id that differs from the Basic one.
    assert_invalid_request(presented_credentials(
        Some(&header),
        &Form::from_pairs(&[("client_id", "b")]),
    ));
    // client_secret without client_id.
    assert_invalid_request(presented_credentials(
        None,
        &Form::from_pairs(&[("client_secret", "s")]),
    ));
    // Half an assertion, or the wrong type.
    assert_invalid_request(presented_credentials(
        None,
        &Form::from_pairs(&[("client_assertion", "a.b.c")]),
    ));
    assert_invalid_request(presented_credentials(
        None,
        &Form::from_pairs(&[("client_assertion_type", CLIENT_ASSERTION_TYPE_JWT_BEARER)]),
    ));
    let e = assert_invalid_request(presented_credentials(
        None,
        &Form::from_pairs(&[
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            ("client_assertion", "a.b.c"),
        ]),
    ));
    assert!(e.description.contains("client_assertion_type"));
    // A repeated parameter never reaches client authentication.
    let e = Form::parse(b"client_id=a&client_secret=s&client_secret=t").unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidRequest);
    assert!(e.description.contains("client_secret"));
}

#[test]
fn malformed_or_foreign_authorization_headers_are_401_basic() {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for header in [
        "Basic".to_owned(),
        "Basic ".to_owned(),
        "Basic !!!not-base64".to_owned(),
        format!("Basic {}", b64("no-colon")),
        format!("Basic {}", b64(":secret")),
        format!("Basic {}", b64("id:")),
        format!("Basic {}", b64("id:bad%zz")),
        format!("Basic {}", b64("id:%FF")),
        "Bearer abc.def.ghi".to_owned(),
        "DPoP xyz".to_owned(),
        String::new(),
        format!("Basic {}", "A".repeat(MAX_AUTHORIZATION_BYTES)),
    ] {
        let e = presented_credentials(Some(&header), &Form::default()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidClient, "{header}");
        assert_eq!(e.status, 401, "{header}");
        assert_eq!(
            e.www_authenticate.as_deref(),
            Some("Basic realm=\"fhirgate\""),
            "{header}"
        );
    }
}

#[test]
fn presented_credentials_never_show_secrets_in_debug() {
    let basic =
        presented_credentials(Some(&basic("app", "hunter2-basic")), &Form::default()).unwrap();
    let post = presented_credentials(
        None,
        &Form::from_pairs(&[("client_id", "app"), ("client_secret", "hunter2-post")]),
    )
    .unwrap();
    let assertion = presented_credentials(
        None,
        &Form::from_pairs(&[
            ("client_assertion_type", CLIENT_ASSERTION_TYPE_JWT_BEARER),
            ("client_assertion", "eyJhunter2.eyJhunter2.c2lnbmF0dXJl"),
        ]),
    )
    .unwrap();
    for p in [&basic, &post, &assertion] {
        let debug = format!("{p:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
    }
    assert!(format!("{basic:?}").contains("app"));
    assert_eq!(basic.method(), ClientAuthMethod::ClientSecretBasic);
    assert_eq!(post.client_id(), Some("app"));
    assert_eq!(assertion.client_id(), None);
}

// ---------------------------------------------------------------------------------------
// The SMART worked example (test vectors J5), byte for byte.

const J5_JWKS: &str = r#"{"keys":[{"kty":"RSA","alg":"RS384","n":"wJq2RHIA-7RT6q4go7wjcbHdW7ck7Kz22A8wf-kN7Wi5CWvhFG2_Y7nQp1lDpb2IKMQr-Q4n_vgJ6d5rWPspJpSPY7iffUK4ipQCEbzID5DJ6fQMBZOfCTXyxkuMh3jYGKEF3Ziw2oxbM1H9j-eJAPtrj5stUG6kVoXowegdox-bSjWP0iI5PnkwUNzcekLMug4M3LRluEQgGR9O_BAML6-w3igZ_rZA_gunyrLAMbfmCVaceW5ohLp679kyM7U6W2gDK_NbkDKcINUakVmPeoG5h8RzgGzvGrySR0k0VDFiZv60Ua07DqHTeDGH9e4NV07AECae-oykIj5NDCs3pw","e":"AQAB","key_ops":["verify"],"ext":true,"kid":"eee9f17a3b598fd86417a980b591fbe6"}]}"#;
const J5_ASSERTION: &str = "eyJhbGciOiJSUzM4NCIsImtpZCI6ImVlZTlmMTdhM2I1OThmZDg2NDE3YTk4MGI1OTFmYmU2IiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL2JpbGktbW9uaXRvci5leGFtcGxlLmNvbSIsInN1YiI6Imh0dHBzOi8vYmlsaS1tb25pdG9yLmV4YW1wbGUuY29tIiwiYXVkIjoiaHR0cHM6Ly9hdXRob3JpemUuc21hcnRoZWFsdGhpdC5vcmcvdG9rZW4iLCJleHAiOjE0MjI1Njg4NjAsImp0aSI6InJhbmRvbS1ub24tcmV1c2FibGUtand0LWlkLTEyMyJ9.D5kAqNJwaftCqsRdVVQDq6dMBxuGFOF5svQJuXbcYp-oEyg5qOwK9ZE5cGLTHxqwfpUPNzRKgVdIGuhawAA-8g0s1nKQae8CuKs33hhKh4J34xSEwW3MYs1gwI4GHTtR_g3kYSX6QCi14Ed3GIAvYFgqRqt-gD7sewMUXL4SB8I8cXcDbCqVizm7uPVhjw6QaeKZygJJ_AVLhM4Xs9LTy4HAhdCHpN0FrNmCerUIYJvHDpcod7A0jDmxdoeW1KIBYlhdhQNwjtsTvT1ce4qacN_3KIv_fIzCKLIgDv9eWxkjAtxOmIm8aW5gX9xX7X0nbd0QglIyiic_bZVNNEh0kg";
const J5_CLIENT: &str = "https://bili-monitor.example.com";
const J5_ISSUER: &str = "https://authorize.smarthealthit.org";
const J5_TOKEN: &str = "https://authorize.smarthealthit.org/token";

fn j5_client() -> ClientApplication {
    let mut c = client(J5_CLIENT, ClientAuthMethod::PrivateKeyJwt);
    c.jwks = Some(serde_json::from_str(J5_JWKS).unwrap());
    c
}

async fn j5_world(now: i64) -> World {
    let w = World::new(J5_ISSUER, J5_TOKEN, now);
    w.put(&j5_client()).await;
    w
}

#[tokio::test]
async fn smart_j5_assertion_is_accepted_at_its_time_and_only_once() {
    let w = j5_world(1_422_568_800).await;
    // One changed signature character, and it no longer verifies (nor uses up the jti).
    let mut tampered = J5_ASSERTION.to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'g' { 'h' } else { 'g' });
    assert_eq!(
        assert_invalid_client(w.assert_with(&tampered).await, 400).description,
        "Invalid client"
    );
    let ok = w
        .auth(
            None,
            &[
                ("client_id", J5_CLIENT),
                ("client_assertion_type", CLIENT_ASSERTION_TYPE_JWT_BEARER),
                ("client_assertion", J5_ASSERTION),
            ],
        )
        .await
        .unwrap();
    assert_eq!(ok.client.id.as_str(), J5_CLIENT);
    assert_eq!(ok.method, ClientAuthMethod::PrivateKeyJwt);

    // Replay within its lifetime.
    let e = assert_invalid_client(w.assert_with(J5_ASSERTION).await, 400);
    assert!(e.description.contains("already used"), "{}", e.description);
    w.clock.advance(Duration::seconds(50));
    assert_invalid_client(w.assert_with(J5_ASSERTION).await, 400);
}

#[tokio::test]
async fn smart_j5_assertion_is_refused_with_exp_more_than_five_minutes_ahead() {
    let w = j5_world(1_422_568_500).await;
    let e = assert_invalid_client(w.assert_with(J5_ASSERTION).await, 400);
    assert!(e.description.contains("5 minutes"), "{}", e.description);
    // Refused before its jti was used up: accepted later, at a valid time.
    w.clock
        .set(OffsetDateTime::from_unix_timestamp(1_422_568_800).unwrap());
    assert!(w.assert_with(J5_ASSERTION).await.is_ok());
}

#[tokio::test]
async fn smart_j5_assertion_is_expired_at_the_real_time() {
    let store = MemoryStore::new();
    let auth = ClientAuthenticator::new(
        Arc::new(store.clone()),
        Arc::new(store.clone()),
        Arc::new(crate::transport::NoTransport),
        Arc::new(SystemClock),
        Url::parse(J5_ISSUER).unwrap(),
        Url::parse(J5_TOKEN).unwrap(),
        Arc::new(JwksCache::new(Duration::minutes(5))),
    );
    store.put_client(&j5_client()).await.unwrap();
    let presented = PresentedCredentials::Assertion {
        client_id: None,
        assertion: J5_ASSERTION.to_owned(),
    };
    let e = auth.authenticate(&presented).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidClient);
    assert!(e.description.contains("expired"), "{}", e.description);
}

#[tokio::test]
async fn smart_j5_assertion_is_refused_by_another_token_endpoint() {
    let w = World::new(
        "https://other.example.org",
        "https://other.example.org/token",
        1_422_568_800,
    );
    w.put(&j5_client()).await;
    let e = assert_invalid_client(w.assert_with(J5_ASSERTION).await, 400);
    assert!(e.description.contains("aud"), "{}", e.description);
    // Same host, another endpoint of it.
    let w = World::new(
        J5_ISSUER,
        "https://authorize.smarthealthit.org/oauth/token",
        1_422_568_800,
    );
    w.put(&j5_client()).await;
    assert_invalid_client(w.assert_with(J5_ASSERTION).await, 400);
}

#[tokio::test]
async fn smart_j5_assertion_is_refused_when_the_jwks_lacks_its_kid() {
    let w = World::new(J5_ISSUER, J5_TOKEN, 1_422_568_800);
    let mut c = j5_client();
    let jwks = c.jwks.as_mut().unwrap();
    jwks.keys[0].common.key_id = Some("another-kid".into());
    w.put(&c).await;
    let e = assert_invalid_client(w.assert_with(J5_ASSERTION).await, 400);
    assert_eq!(e.description, "Invalid client");
}

#[tokio::test]
async fn smart_j5_assertion_is_refused_with_a_different_client_id_or_method() {
    let w = j5_world(1_422_568_800).await;
    let e = assert_invalid_client(
        w.auth(
            None,
            &[
                ("client_id", "https://other.example.com"),
                ("client_assertion_type", CLIENT_ASSERTION_TYPE_JWT_BEARER),
                ("client_assertion", J5_ASSERTION),
            ],
        )
        .await,
        400,
    );
    assert!(e.description.contains("client_id"));
    // The same client registered for client_secret_basic cannot use an assertion.
    let mut c = j5_client();
    c.auth_method = ClientAuthMethod::ClientSecretBasic;
    w.put(&c).await;
    assert_invalid_client(w.assert_with(J5_ASSERTION).await, 400);
    // Nor can an inactive one.
    let mut c = j5_client();
    c.status = ClientStatus::Error;
    w.put(&c).await;
    assert_invalid_client(w.assert_with(J5_ASSERTION).await, 400);
}

// ---------------------------------------------------------------------------------------
// Our own assertions: ES256 (a fixed P-256 test key) and EdDSA (a fixed Ed25519 seed).

/// Test-only P-256 keys (PKCS#8), generated for these tests.
const EC_KEY_1: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgwB0QEUxmtbWz5U+x
q4mjT62juWwn5bZu/ptmus6TjL2hRANCAATqaWoAgitJfKaG1xrlrgeEx7xz53q4
mT4d6/tPti4ucbuPUUjYgfrXD3wCBILZAEEpixX27HW4MPtajyYKJeNA
-----END PRIVATE KEY-----
";
const EC_KEY_2: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg7XC1dpqcpBvks0XV
ntBbdGb6TfOTBjHJpVGD3j5wPTGhRANCAASW4MKdz3j7Dt6g5e9PIZyhBd7ESzg/
zaMg3DvivmJVX16hMKOxf/khMxtJyujHODpygFam2iMERHDk4/8q6aod
-----END PRIVATE KEY-----
";

fn ec_key(pem: &str) -> EncodingKey {
    EncodingKey::from_ec_pem(pem.as_bytes()).unwrap()
}

fn ed_key() -> EncodingKey {
    // PKCS#8 v1 wrapping of a fixed Ed25519 seed.
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&[7u8; 32]);
    EncodingKey::from_ed_der(&der)
}

fn public_jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    crate::crypto::install_provider();
    let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

fn jwks(keys: Vec<Jwk>) -> JwkSet {
    JwkSet { keys }
}

fn standard_jwks() -> JwkSet {
    jwks(vec![
        public_jwk(&ec_key(EC_KEY_1), Algorithm::ES256, "ec-1"),
        public_jwk(&ed_key(), Algorithm::EdDSA, "ed-1"),
    ])
}

const APP: &str = "https://app.example.org";

fn claims(now: i64, jti: &str) -> Value {
    json!({ "iss": APP, "sub": APP, "aud": TOKEN, "exp": now + 60, "jti": jti })
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    crate::crypto::install_provider();
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn sign_with(header: Header, claims: &Value, key: &EncodingKey) -> String {
    crate::crypto::install_provider();
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn es256(claims: &Value) -> String {
    sign(Algorithm::ES256, Some("ec-1"), claims, &ec_key(EC_KEY_1))
}

/// An unsigned or hand-built token: base64url(header).base64url(payload).signature.
fn hand_built(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

async fn jwt_world() -> World {
    let w = World::standard();
    let mut c = client(APP, ClientAuthMethod::PrivateKeyJwt);
    c.jwks = Some(standard_jwks());
    w.put(&c).await;
    w
}

#[tokio::test]
async fn es256_and_eddsa_assertions_are_accepted() {
    let w = jwt_world().await;
    let now = w.now();
    assert!(w.assert_with(&es256(&claims(now, "j1"))).await.is_ok());
    let ed = sign(
        Algorithm::EdDSA,
        Some("ed-1"),
        &claims(now, "j2"),
        &ed_key(),
    );
    assert!(w.assert_with(&ed).await.is_ok());
    // The same jti for the same client is a replay, whichever key signed it.
    let ed_again = sign(
        Algorithm::EdDSA,
        Some("ed-1"),
        &claims(now, "j1"),
        &ed_key(),
    );
    let e = assert_invalid_client(w.assert_with(&ed_again).await, 400);
    assert!(e.description.contains("replay"));
}

#[tokio::test]
async fn audience_may_be_the_token_endpoint_or_the_issuer_as_sole_audience() {
    let w = jwt_world().await;
    let now = w.now();
    let with_aud = |aud: Value, jti: &str| {
        let mut c = claims(now, jti);
        c["aud"] = aud;
        es256(&c)
    };
    for (i, aud) in [
        json!(TOKEN),
        json!(ISSUER),
        json!("https://as.example.org/"),
        json!([TOKEN]),
    ]
    .into_iter()
    .enumerate()
    {
        let r = w
            .assert_with(&with_aud(aud.clone(), &format!("ok-{i}")))
            .await;
        assert!(r.is_ok(), "{aud}: {r:?}");
    }
    for (i, aud) in [
        json!([TOKEN, "https://rs.example.org"]),
        json!(["https://rs.example.org", TOKEN]),
        json!([TOKEN, TOKEN]),
        json!([]),
        json!("https://as.example.org/oauth2/authorize"),
        json!("https://as.example.org/oauth2/token/"),
        json!("https://AS.example.org/oauth2/token"),
        json!(42),
        Value::Null,
    ]
    .into_iter()
    .enumerate()
    {
        let e = assert_invalid_client(
            w.assert_with(&with_aud(aud.clone(), &format!("bad-{i}")))
                .await,
            400,
        );
        assert!(e.description.contains("aud"), "{aud}: {}", e.description);
    }
    let mut no_aud = claims(now, "no-aud");
    no_aud.as_object_mut().unwrap().remove("aud");
    assert_invalid_client(w.assert_with(&es256(&no_aud)).await, 400);
}

#[tokio::test]
async fn alg_none_and_hmac_are_refused() {
    let w = jwt_world().await;
    let c = claims(w.now(), "n1");
    let none = hand_built(&json!({"alg": "none", "kid": "ec-1", "typ": "JWT"}), &c, "");
    let e = assert_invalid_client(w.assert_with(&none).await, 400);
    assert!(e.description.contains("algorithm"), "{}", e.description);
    let none_upper = hand_built(&json!({"alg": "None", "kid": "ec-1"}), &c, "");
    assert_invalid_client(w.assert_with(&none_upper).await, 400);

    let hs = sign(
        Algorithm::HS256,
        Some("ec-1"),
        &c,
        &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
    );
    let e = assert_invalid_client(w.assert_with(&hs).await, 400);
    assert!(e.description.contains("algorithm"));
    // ES256 claimed, but the alg header lies about the key type: RS256 with an EC kid.
    let rs = hand_built(&json!({"alg": "RS256", "kid": "ec-1"}), &c, "c2ln");
    assert_eq!(
        assert_invalid_client(w.assert_with(&rs).await, 400).description,
        "Invalid client"
    );
    // Nothing was claimed by the refused assertions.
    assert!(w.assert_with(&es256(&c)).await.is_ok());
}

#[tokio::test]
async fn issuer_subject_and_required_claims_are_checked() {
    let w = jwt_world().await;
    let now = w.now();
    let mut c = claims(now, "x1");
    c["sub"] = json!("https://other.example.org");
    let e = assert_invalid_client(w.assert_with(&es256(&c)).await, 400);
    assert!(e.description.contains("iss and sub"));

    for missing in ["iss", "sub", "exp", "jti"] {
        let mut c = claims(now, "x2");
        c.as_object_mut().unwrap().remove(missing);
        assert_invalid_client(w.assert_with(&es256(&c)).await, 400);
    }
    let mut c = claims(now, "x3");
    c["exp"] = json!("soon");
    assert_invalid_client(w.assert_with(&es256(&c)).await, 400);
    let mut c = claims(now, "");
    c["jti"] = json!("");
    assert_invalid_client(w.assert_with(&es256(&c)).await, 400);
    let c = claims(now, &"j".repeat(MAX_JTI_CHARS + 1));
    assert_invalid_client(w.assert_with(&es256(&c)).await, 400);

    // nbf in the future (beyond the leeway) is refused; within it, accepted.
    let mut c = claims(now, "x4");
    c["nbf"] = json!(now + 31);
    let e = assert_invalid_client(w.assert_with(&es256(&c)).await, 400);
    assert!(e.description.contains("nbf"));
    let mut c = claims(now, "x5");
    c["nbf"] = json!(now + 30);
    assert!(w.assert_with(&es256(&c)).await.is_ok());
}

#[tokio::test]
async fn expiry_uses_the_injected_clock_with_a_small_leeway() {
    let w = jwt_world().await;
    let now = w.now();
    // RFC 7519 §4.1.4: "now" must be before exp (plus the leeway).
    let mut c = claims(now, "e1");
    c["exp"] = json!(now - 29);
    let at_the_edge = es256(&c);
    assert!(w.assert_with(&at_the_edge).await.is_ok());
    // Its jti is still remembered at the last instant it is acceptable.
    let e = assert_invalid_client(w.assert_with(&at_the_edge).await, 400);
    assert!(e.description.contains("replay"), "{}", e.description);
    let mut c = claims(now, "e2");
    c["exp"] = json!(now - 30);
    let e = assert_invalid_client(w.assert_with(&es256(&c)).await, 400);
    assert!(e.description.contains("expired"));
    let mut c = claims(now, "e3");
    c["exp"] = json!(now + 300);
    assert!(w.assert_with(&es256(&c)).await.is_ok());
    let mut c = claims(now, "e4");
    c["exp"] = json!(now + 301);
    assert_invalid_client(w.assert_with(&es256(&c)).await, 400);
    let mut c = claims(now, "e5");
    c["exp"] = json!((now + 60) as f64 + 0.5);
    assert!(w.assert_with(&es256(&c)).await.is_ok());
}

#[tokio::test]
async fn header_typ_kid_crit_and_signature_are_checked() {
    let w = jwt_world().await;
    let now = w.now();
    let key = ec_key(EC_KEY_1);

    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("ec-1".into());
    h.typ = Some("at+jwt".into());
    let e = assert_invalid_client(
        w.assert_with(&sign_with(h, &claims(now, "h1"), &key)).await,
        400,
    );
    assert!(e.description.contains("typ"));

    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("ec-1".into());
    h.typ = None;
    assert!(
        w.assert_with(&sign_with(h, &claims(now, "h2"), &key))
            .await
            .is_ok()
    );

    let e = assert_invalid_client(
        w.assert_with(&sign(Algorithm::ES256, None, &claims(now, "h3"), &key))
            .await,
        400,
    );
    assert!(e.description.contains("kid"));

    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("ec-1".into());
    h.crit = Some(vec!["exp".into()]);
    let e = assert_invalid_client(
        w.assert_with(&sign_with(h, &claims(now, "h4"), &key)).await,
        400,
    );
    assert!(e.description.contains("critical"));

    // Signed by another key under a registered kid.
    let forged = sign(
        Algorithm::ES256,
        Some("ec-1"),
        &claims(now, "h5"),
        &ec_key(EC_KEY_2),
    );
    assert_eq!(
        assert_invalid_client(w.assert_with(&forged).await, 400).description,
        "Invalid client"
    );
    // A valid signature over altered claims.
    let good = es256(&claims(now, "h6"));
    let mut parts: Vec<&str> = good.split('.').collect();
    let altered = URL_SAFE_NO_PAD.encode(claims(now, "h6-altered").to_string());
    parts[1] = &altered;
    assert_invalid_client(w.assert_with(&parts.join(".")).await, 400);
    assert!(w.assert_with(&good).await.is_ok());

    // Not a compact JWS.
    for bad in ["abc", "a.b", "a.b.c.d.e", "a..c", "a.b.c d", "é.b.c"] {
        assert_invalid_client(w.assert_with(bad).await, 400);
    }
    let huge = format!("{}.e30.c2ln", "a".repeat(MAX_ASSERTION_BYTES));
    assert_invalid_client(w.assert_with(&huge).await, 400);
}

#[tokio::test]
async fn key_selection_needs_exactly_one_key_of_the_right_type() {
    let w = World::standard();
    let now = w.now();
    let ec1 = public_jwk(&ec_key(EC_KEY_1), Algorithm::ES256, "k");
    let ec2 = public_jwk(&ec_key(EC_KEY_2), Algorithm::ES256, "k");
    let ed = public_jwk(&ed_key(), Algorithm::EdDSA, "k");
    let token = |jti: &str| {
        sign(
            Algorithm::ES256,
            Some("k"),
            &claims(now, jti),
            &ec_key(EC_KEY_1),
        )
    };
    let mut c = client(APP, ClientAuthMethod::PrivateKeyJwt);

    // Two EC keys under one kid: ambiguous, refused even though one would verify.
    c.jwks = Some(jwks(vec![ec1.clone(), ec2]));
    w.put(&c).await;
    assert_invalid_client(w.assert_with(&token("k1")).await, 400);

    // One EC and one OKP key under the kid: the type picks the EC one.
    c.jwks = Some(jwks(vec![ed, ec1.clone()]));
    w.put(&c).await;
    assert!(w.assert_with(&token("k2")).await.is_ok());

    // A key restricted to another algorithm, use or operation is not used.
    let mut restricted = ec1.clone();
    restricted.common.key_algorithm = Some(KeyAlgorithm::ES384);
    c.jwks = Some(jwks(vec![restricted]));
    w.put(&c).await;
    assert_invalid_client(w.assert_with(&token("k3")).await, 400);
    let mut enc = ec1.clone();
    enc.common.public_key_use = Some(PublicKeyUse::Encryption);
    c.jwks = Some(jwks(vec![enc]));
    w.put(&c).await;
    assert_invalid_client(w.assert_with(&token("k4")).await, 400);
    let mut sign_only = ec1;
    sign_only.common.key_operations = Some(vec![KeyOperations::Sign]);
    c.jwks = Some(jwks(vec![sign_only]));
    w.put(&c).await;
    assert_invalid_client(w.assert_with(&token("k5")).await, 400);

    // No keys at all.
    c.jwks = None;
    w.put(&c).await;
    assert_invalid_client(w.assert_with(&token("k6")).await, 400);
}

#[tokio::test]
async fn jku_must_be_the_registered_jwks_uri() {
    let w = World::standard();
    let now = w.now();
    let mut c = client(APP, ClientAuthMethod::PrivateKeyJwt);
    c.jwks_uri = Some(Url::parse(JWKS_URI).unwrap());
    w.put(&c).await;
    w.transport.set(Ok(jwks_response(
        &serde_json::to_value(standard_jwks()).unwrap(),
        None,
    )));
    let with_jku = |jku: &str, jti: &str| {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some("ec-1".into());
        h.jku = Some(jku.to_owned());
        sign_with(h, &claims(now, jti), &ec_key(EC_KEY_1))
    };
    let e = assert_invalid_client(
        w.assert_with(&with_jku("https://evil.example.org/jwks.json", "u1"))
            .await,
        400,
    );
    assert_eq!(e.description, "Invalid client");
    assert_eq!(w.transport.fetches(), 0, "a foreign jku is never fetched");
    assert!(w.assert_with(&with_jku(JWKS_URI, "u2")).await.is_ok());

    // A client with inline keys and no jwks_uri refuses any jku.
    let w = jwt_world().await;
    assert_invalid_client(w.assert_with(&with_jku(JWKS_URI, "u3")).await, 400);
}

// ---------------------------------------------------------------------------------------
// JWKS by URL: fetched through the transport, cached, refetched once on an unknown kid.

async fn url_world() -> World {
    let w = World::standard();
    let mut c = client(APP, ClientAuthMethod::PrivateKeyJwt);
    c.jwks_uri = Some(Url::parse(JWKS_URI).unwrap());
    w.put(&c).await;
    let only_ec = jwks(vec![public_jwk(
        &ec_key(EC_KEY_1),
        Algorithm::ES256,
        "ec-1",
    )]);
    w.transport.set(Ok(jwks_response(
        &serde_json::to_value(only_ec).unwrap(),
        None,
    )));
    w
}

impl World {
    async fn es256_now(&self, jti: &str) -> Result<AuthenticatedClient, OAuthError> {
        self.assert_with(&es256(&claims(self.now(), jti))).await
    }

    async fn ed_now(&self, jti: &str) -> Result<AuthenticatedClient, OAuthError> {
        self.assert_with(&sign(
            Algorithm::EdDSA,
            Some("ed-1"),
            &claims(self.now(), jti),
            &ed_key(),
        ))
        .await
    }
}

#[tokio::test]
async fn jwks_uri_is_fetched_once_and_cached_for_the_ttl() {
    let w = url_world().await;
    assert!(w.es256_now("c1").await.is_ok());
    assert_eq!(w.transport.fetches(), 1);
    {
        let requests = w.transport.requests.lock().unwrap();
        assert_eq!(requests[0].method, HttpMethod::Get);
        assert_eq!(requests[0].url.as_str(), JWKS_URI);
    }
    w.clock.advance(Duration::seconds(100));
    assert!(w.es256_now("c2").await.is_ok());
    assert!(w.es256_now("c3").await.is_ok());
    assert_eq!(w.transport.fetches(), 1);
    // The TTL (5 minutes) ends: fetched again.
    w.clock.advance(Duration::seconds(201));
    assert!(w.es256_now("c4").await.is_ok());
    assert_eq!(w.transport.fetches(), 2);
}

#[tokio::test]
async fn cache_control_shortens_the_cache() {
    let w = url_world().await;
    let only_ec = serde_json::to_value(jwks(vec![public_jwk(
        &ec_key(EC_KEY_1),
        Algorithm::ES256,
        "ec-1",
    )]))
    .unwrap();
    w.transport
        .set(Ok(jwks_response(&only_ec, Some("public, max-age=60"))));
    assert!(w.es256_now("m1").await.is_ok());
    w.clock.advance(Duration::seconds(59));
    assert!(w.es256_now("m2").await.is_ok());
    assert_eq!(w.transport.fetches(), 1);
    w.clock.advance(Duration::seconds(2));
    assert!(w.es256_now("m3").await.is_ok());
    assert_eq!(w.transport.fetches(), 2);

    // A longer max-age does not extend our TTL; no-store means no caching at all.
    w.transport
        .set(Ok(jwks_response(&only_ec, Some("no-store"))));
    w.clock.advance(Duration::seconds(61));
    assert!(w.es256_now("m4").await.is_ok());
    assert!(w.es256_now("m5").await.is_ok());
    assert_eq!(w.transport.fetches(), 4);
}

#[tokio::test]
async fn unknown_kid_is_refetched_once_and_refetches_are_rate_limited() {
    let w = url_world().await;
    assert!(w.es256_now("r1").await.is_ok());
    assert_eq!(w.transport.fetches(), 1);

    // The client rotates in an Ed25519 key.
    w.transport.set(Ok(jwks_response(
        &serde_json::to_value(standard_jwks()).unwrap(),
        None,
    )));
    // Right after the last fetch, an unknown kid does not trigger another one.
    w.clock.advance(Duration::seconds(5));
    assert_invalid_client(w.ed_now("r2").await, 400);
    assert_eq!(w.transport.fetches(), 1);

    // After the interval: one refetch, and the new key is found.
    w.clock.advance(Duration::seconds(5));
    assert!(w.ed_now("r3").await.is_ok());
    assert_eq!(w.transport.fetches(), 2);
    assert!(w.ed_now("r4").await.is_ok());
    assert_eq!(w.transport.fetches(), 2);

    // A kid nobody has: one refetch, then refused without fetching until the interval ends.
    let ghost = |jti: &str| {
        sign(
            Algorithm::ES256,
            Some("ghost"),
            &claims(w.now(), jti),
            &ec_key(EC_KEY_1),
        )
    };
    w.clock.advance(Duration::seconds(10));
    assert_invalid_client(w.assert_with(&ghost("g1")).await, 400);
    assert_eq!(w.transport.fetches(), 3);
    for i in 0..5 {
        w.clock.advance(Duration::seconds(1));
        assert_invalid_client(w.assert_with(&ghost(&format!("g2-{i}"))).await, 400);
    }
    assert_eq!(w.transport.fetches(), 3);
    // Known kids keep working from the cache meanwhile.
    assert!(w.es256_now("r5").await.is_ok());
    assert_eq!(w.transport.fetches(), 3);
}

#[tokio::test]
async fn transport_failures_are_invalid_client_and_back_off() {
    let w = url_world().await;
    let good = w.transport.response.lock().unwrap().clone();
    w.transport.set(Err(TransportError::Timeout));
    let e = assert_invalid_client(w.es256_now("t1").await, 400);
    assert!(
        e.description.contains("Could not fetch"),
        "{}",
        e.description
    );
    assert!(e.description.contains("timed out"), "{}", e.description);
    assert_eq!(w.transport.fetches(), 1);

    // Within the interval after a failure, no new fetch.
    w.transport.set(good.clone());
    w.clock.advance(Duration::seconds(3));
    let e = assert_invalid_client(w.es256_now("t2").await, 400);
    assert!(e.description.contains("retry later"), "{}", e.description);
    assert_eq!(w.transport.fetches(), 1);
    w.clock.advance(Duration::seconds(10));
    assert!(w.es256_now("t3").await.is_ok());
    assert_eq!(w.transport.fetches(), 2);

    // Bad answers, each after the cache and the back-off have passed.
    let mut too_large = jwks_response(&json!({"keys": []}), None);
    too_large.body = vec![b' '; MAX_JWKS_BYTES + 1];
    let answers = [
        (
            Ok(HttpResponse {
                status: 404,
                headers: Vec::new(),
                body: b"not found".to_vec(),
            }),
            "404",
        ),
        (
            Ok(HttpResponse {
                status: 200,
                headers: Vec::new(),
                body: b"<html>".to_vec(),
            }),
            "not a JWK Set",
        ),
        (Ok(too_large), "too large"),
        (Err(TransportError::TooLarge), "too large"),
        (Err(TransportError::Connect("refused".into())), "refused"),
    ];
    for (i, (answer, expected)) in answers.into_iter().enumerate() {
        w.transport.set(answer);
        w.clock.advance(Duration::minutes(6));
        let e = assert_invalid_client(w.es256_now(&format!("t4-{i}")).await, 400);
        assert!(e.description.contains(expected), "{}", e.description);
    }

    // No transport configured: our fault, not the client's.
    w.transport.set(Err(TransportError::NotConfigured));
    w.clock.advance(Duration::minutes(6));
    let e = w.es256_now("t5").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ServerError);
    assert_eq!(e.status, 500);
}

#[tokio::test]
async fn a_failed_refetch_keeps_the_fresh_keys() {
    let w = url_world().await;
    assert!(w.es256_now("f1").await.is_ok());
    w.transport.set(Err(TransportError::Timeout));
    w.clock.advance(Duration::seconds(11));
    // An unknown kid triggers a refetch that fails...
    assert_invalid_client(w.ed_now("f2").await, 400);
    assert_eq!(w.transport.fetches(), 2);
    // ...but the cached key still verifies.
    assert!(w.es256_now("f3").await.is_ok());
    assert_eq!(w.transport.fetches(), 2);
}

#[tokio::test]
async fn plain_http_jwks_uri_is_never_fetched() {
    let w = World::standard();
    let mut c = client(APP, ClientAuthMethod::PrivateKeyJwt);
    c.jwks_uri = Some(Url::parse("http://app.example.org/jwks.json").unwrap());
    w.put(&c).await;
    let e = assert_invalid_client(w.es256_now("p1").await, 400);
    assert!(e.description.contains("https"));
    assert_eq!(w.transport.fetches(), 0);
}

#[tokio::test]
async fn a_changed_jwks_uri_misses_the_cache() {
    let w = url_world().await;
    assert!(w.es256_now("x1").await.is_ok());
    let mut c = client(APP, ClientAuthMethod::PrivateKeyJwt);
    c.jwks_uri = Some(Url::parse("https://app.example.org/keys-v2.json").unwrap());
    w.put(&c).await;
    assert!(w.es256_now("x2").await.is_ok());
    assert_eq!(w.transport.fetches(), 2);
    let requests = w.transport.requests.lock().unwrap();
    assert_eq!(
        requests[1].url.as_str(),
        "https://app.example.org/keys-v2.json"
    );
}

#[test]
fn jti_keys_are_unambiguous_for_client_ids_with_colons() {
    let a = format!("{}:{}", escape_client_id("a:b"), "c");
    let b = format!("{}:{}", escape_client_id("a"), "b:c");
    assert_ne!(a, b);
    assert_eq!(escape_client_id("https://x%y"), "https%3A//x%25y");
}

#[test]
fn authenticator_debug_shows_configuration_only() {
    let w = World::standard();
    let debug = format!("{:?}", w.auth);
    assert!(debug.contains(TOKEN));
}
