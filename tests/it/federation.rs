//! External identity providers against a fake OpenID provider on loopback (real HTTP, real
//! RS256/ES256 signatures, its own keys — `tests/common/fake_idp.rs`), reached through the
//! shipped `ReqwestTransport`: federation through the Domain stage and our `/auth/external`
//! routes, each refusal OIDC Core and RFC 9700 call for, Google sign-in and token exchange.
#![cfg(all(feature = "axum", feature = "reqwest"))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::common::fake_idp::*;
use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use fhirgate::idp::{ExternalCallback, ExternalError};
use fhirgate::login::GoogleSignIn;
use fhirgate::login::{
    ExternalRedirect, Login, LoginRequest, Method, Profile, ProfileChoice, SecondFactor,
};
use fhirgate::model::{
    ClientApplication, ClientId, DomainConfiguration, IdentityProvider, ProjectId, TotpState,
};
use fhirgate::oauth::{ACCESS_TOKEN_TYPE, TOKEN_EXCHANGE};
use fhirgate::store::{Directory, DirectoryAdmin};
use fhirgate::transport::{ReqwestOptions, ReqwestTransport};
use fhirgate::{LoginError, pkce};
use serde_json::{Value, json};
use tower::ServiceExt;
use url::Url;

/// The fixture: our engine (manual clock at START, ReqwestTransport) and the fake provider
/// (its clock fixed at START too), configured for the domain `example.org`.
struct Fed {
    f: Fixture,
    idp: FakeIdp,
}

impl Fed {
    async fn new() -> Fed {
        Self::with(FakeIdpOptions::default(), ReqwestOptions::default(), |_| {}).await
    }

    async fn with(
        options: FakeIdpOptions,
        transport: ReqwestOptions,
        provider: impl FnOnce(&mut IdentityProvider),
    ) -> Fed {
        let idp = FakeIdp::start(options).await;
        idp.set_now(Some(START));
        let mut config = crate::common::config();
        config.google.client_ids = vec!["google-client-1".to_owned()];
        config.google.jwks_uri = idp.jwks_uri();
        config.google.issuers = vec![idp.issuer()];
        let transport = Arc::new(ReqwestTransport::new(transport).unwrap());
        let f = Fixture::with_transport(config, Some(transport)).await;
        let mut configured = idp.identity_provider();
        provider(&mut configured);
        f.store
            .put_domain(&DomainConfiguration {
                domain: "example.org".to_owned(),
                identity_provider: Some(configured),
            })
            .await
            .unwrap();
        Fed { f, idp }
    }

    /// The fake standing in for Google (client id `google-client-1`); `example.org` has no
    /// identity provider of its own here, so Google's word is taken for its accounts.
    async fn google() -> Fed {
        let fed = Self::with(
            FakeIdpOptions {
                client_id: "google-client-1".into(),
                ..FakeIdpOptions::default()
            },
            ReqwestOptions::default(),
            |_| {},
        )
        .await;
        fed.f
            .store
            .put_domain(&DomainConfiguration {
                domain: "example.org".to_owned(),
                identity_provider: None,
            })
            .await
            .unwrap();
        fed
    }

    /// Domain stage for `email` with the `app` client's usual request.
    async fn redirect_for(&self, email: &str) -> ExternalRedirect {
        self.redirect_with(self.f.request(), email).await
    }

    async fn redirect_with(&self, request: LoginRequest, email: &str) -> ExternalRedirect {
        match self
            .f
            .engine
            .start(request)
            .await
            .unwrap()
            .method(email)
            .await
            .unwrap()
        {
            Method::External { login, domain } => login.federate(domain.as_deref()).await.unwrap(),
            Method::Password(_) => panic!("{email} should sign in at the provider"),
        }
    }

    /// The browser at the provider: its answer to our authorization request (a 302 back to
    /// our callback), as the callback's query.
    async fn at_provider(&self, authorize_url: &Url) -> ExternalCallback {
        let response = browser().get(authorize_url.clone()).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::FOUND);
        let location = Url::parse(
            response.headers()[reqwest::header::LOCATION]
                .to_str()
                .unwrap(),
        )
        .unwrap();
        assert!(
            location
                .as_str()
                .starts_with("https://auth.example.org/auth/external?"),
            "{location}"
        );
        callback_of(&location)
    }

    /// The browser that started `redirect` at the provider: the callback's query and the
    /// browser's binding cookie.
    async fn callback_for(&self, redirect: &ExternalRedirect) -> ExternalCallback {
        let mut callback = self.at_provider(&redirect.authorize_url).await;
        callback.browser = Some(redirect.browser_binding.expose().to_owned());
        callback
    }

    /// Our callback for an account without a second factor: the login in the Profile stage.
    async fn callback(&self, callback: &ExternalCallback) -> Result<Login<Profile>, LoginError> {
        self.f
            .engine
            .external_callback(callback)
            .await
            .map(expect_profile)
    }

    /// Domain stage, provider, callback: the login after `next` signs in at the provider.
    async fn federate(&self, next: NextLogin, email: &str) -> Result<Login<Profile>, LoginError> {
        self.idp.set_next_login(next);
        let redirect = self.redirect_for(email).await;
        let callback = self.callback_for(&redirect).await;
        self.callback(&callback).await
    }

    async fn refused(&self, next: NextLogin, email: &str) -> ExternalError {
        match self.federate(next, email).await {
            Err(LoginError::External(e)) => e,
            Err(other) => panic!("expected an external refusal, got {other:?}"),
            Ok(login) => panic!("expected a refusal, got {:?}", login.record().user),
        }
    }

    /// Advances both clocks.
    fn advance(&self, seconds: i64) {
        self.f.clock.advance(time::Duration::seconds(seconds));
        self.idp.set_now(Some(self.f.engine.now().unix_timestamp()));
    }

    fn app(&self) -> axum::Router {
        fhirgate::http::router(self.f.engine.clone())
    }

    /// An ID token from the fake for `next`, obtained as any relying party would (the
    /// authorization and token endpoints), with `nonce`.
    async fn id_token(&self, next: NextLogin) -> String {
        self.idp.set_next_login(next);
        let options = self.idp.options().clone();
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let mut authorize = Url::parse(&self.idp.authorize_url()).unwrap();
        authorize
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &options.client_id)
            .append_pair("redirect_uri", "https://rp.example/cb")
            .append_pair("scope", "openid email")
            .append_pair("state", "s")
            .append_pair("nonce", "n")
            .append_pair("code_challenge", &pkce::s256_challenge(verifier))
            .append_pair("code_challenge_method", "S256");
        let response = browser().get(authorize).send().await.unwrap();
        let location = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
        let code = query(&location)["code"].clone();
        let tokens: Value = browser()
            .post(self.idp.token_url())
            .basic_auth(&options.client_id, Some(&options.client_secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "https://rp.example/cb"),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens["id_token"].as_str().unwrap().to_owned()
    }

    /// A client of project p1 whose own identity provider is the fake.
    async fn federated_client(&self, id: &str, configure: impl FnOnce(&mut IdentityProvider)) {
        let mut client = ClientApplication::new(ClientId::new(id), ProjectId::new("p1"));
        client.allowed_scopes = "openid fhirUser offline_access user/*.rs".into();
        client.redirect_uris = vec![REDIRECT.into()];
        let mut provider = self.idp.identity_provider();
        configure(&mut provider);
        client.identity_provider = Some(provider);
        self.f.store.put_client(&client).await.unwrap();
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn query(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

fn callback_of(url: &Url) -> ExternalCallback {
    let q = query(url);
    ExternalCallback {
        state: q.get("state").cloned(),
        code: q.get("code").cloned(),
        error: q.get("error").cloned(),
        iss: q.get("iss").cloned(),
        browser: None,
    }
}

fn google_profile(outcome: GoogleSignIn) -> Login<Profile> {
    match outcome {
        GoogleSignIn::Authenticated(passed) => expect_profile(passed),
        GoogleSignIn::External { domain, .. } => {
            panic!("expected Google's word to be taken, got the provider of {domain:?}")
        }
    }
}

fn alice() -> NextLogin {
    NextLogin::user("idp-alice", "alice@example.org")
}

fn user_of(login: &Login<Profile>) -> String {
    login.record().user.as_ref().unwrap().as_str().to_owned()
}

async fn send(
    app: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, header::HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// A GET from the browser that holds the binding cookie `binding`.
fn get_as(uri: &str, binding: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::COOKIE, format!("__Host-fhirgate-idp={binding}"))
        .body(Body::empty())
        .unwrap()
}

/// The browser binding a response sets (`__Host-fhirgate-idp`), checked to be `Secure`,
/// `HttpOnly`, `SameSite=Lax` and for the whole origin.
fn binding_set_by(headers: &header::HeaderMap) -> String {
    let cookie = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-fhirgate-idp="))
        .expect("a binding cookie")
        .to_owned();
    for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Domain="), "{cookie}");
    cookie
        .trim_start_matches("__Host-fhirgate-idp=")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// The callback URL on our server for a provider's answer.
fn back_to_us(callback: &ExternalCallback) -> String {
    let mut back = Url::parse("https://auth.example.org/auth/external").unwrap();
    back.query_pairs_mut()
        .append_pair("code", callback.code.as_deref().unwrap())
        .append_pair("state", callback.state.as_deref().unwrap());
    if let Some(iss) = &callback.iss {
        back.query_pairs_mut().append_pair("iss", iss);
    }
    path_of(&back)
}

fn post_json(uri: &str, body: &Value) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn location(headers: &header::HeaderMap) -> Url {
    Url::parse(headers[header::LOCATION].to_str().unwrap()).unwrap()
}

/// The path and query of a URL on our server (the router serves paths).
fn path_of(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// The relying-party flow.

#[tokio::test]
async fn a_domain_federated_login_ends_at_the_client_with_code_and_state() {
    let fed = Fed::new().await;
    let app = fed.app();
    fed.idp.set_next_login(alice());

    // The sign-in page posts the login; the email's domain signs in at the provider, so the
    // answer is our start route (where the browser gets its binding) and nothing is stored.
    let (status, _, body) = send(
        &app,
        post_json(
            "/auth/login",
            &json!({
                "email": "Alice@Example.org",
                "clientId": "app",
                "redirectUri": REDIRECT,
                "scope": "openid fhirUser user/Patient.rs",
                "codeChallenge": CHALLENGE,
                "codeChallengeMethod": "S256",
                "state": "client-state-42",
            }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["domain"], "example.org");
    assert!(
        body.get("login").is_none(),
        "no handle before the provider: {body}"
    );
    assert_eq!(fed.f.store.login_count(), 0);
    let mut start = Url::parse(body["authorizeUrl"].as_str().unwrap()).unwrap();
    assert_eq!(
        start.as_str(),
        "https://auth.example.org/auth/external/start?domain=example.org"
    );
    // The page appends its login request, as Medplum's clients do.
    start.query_pairs_mut().append_pair(
        "state",
        &json!({
            "clientId": "app",
            "redirectUri": REDIRECT,
            "scope": "openid fhirUser user/Patient.rs",
            "codeChallenge": CHALLENGE,
            "codeChallengeMethod": "S256",
            "state": "client-state-42",
        })
        .to_string(),
    );
    let (status, headers, _) = send(&app, get(&path_of(&start))).await;
    assert_eq!(status, StatusCode::FOUND);
    let binding = binding_set_by(&headers);
    let authorize_url = location(&headers);
    let sent = query(&authorize_url);
    assert_eq!(sent["client_id"], "fhirgate-at-idp");
    assert_eq!(
        sent["redirect_uri"],
        "https://auth.example.org/auth/external"
    );
    assert_eq!(sent["code_challenge_method"], "S256");
    assert!(!sent.contains_key("login_hint"), "no email in URLs");
    assert_eq!(sent["state"].len(), 43);
    assert_eq!(sent["nonce"].len(), 43);

    // The provider sends the browser back to our callback …
    let callback = fed.at_provider(&authorize_url).await;
    let (status, headers, _) = send(&app, get_as(&back_to_us(&callback), &binding)).await;
    assert_eq!(status, StatusCode::FOUND);

    // … which sends it to the client's registered redirect URI with a code of ours.
    let to_client = location(&headers);
    assert!(to_client.as_str().starts_with(REDIRECT), "{to_client}");
    let q = query(&to_client);
    assert_eq!(q["state"], "client-state-42");
    assert_eq!(q["iss"], ISSUER);
    let cookies: Vec<&str> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("medplum-app=")),
        "{cookies:?}"
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-fhirgate-idp=;") && c.contains("Max-Age=0")),
        "the binding is cleared: {cookies:?}"
    );

    // The code is redeemed as any other, and the tokens say how alice signed in.
    let response = fed.f.redeem("app", &q["code"]).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let id_token = field(&response, "id_token");
    let claims: Value =
        serde_json::from_slice(&base64_url(id_token.split('.').nth(1).unwrap())).unwrap();
    assert_eq!(claims["amr"], json!(["fed"]));
    assert_eq!(claims["fhirUser"], "Practitioner/alice");

    // The state was single-use: the same callback again is refused.
    let (status, _, body) = send(&app, get_as(&back_to_us(&callback), &binding)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["issue"][0]["details"]["text"], "Invalid state");
}

#[tokio::test]
async fn a_callback_link_planted_in_another_browser_signs_nobody_in() {
    // Login CSRF: the attacker starts a sign-in with their own account, stops at the
    // provider's redirect back, and makes the victim's browser open it. Medplum would sign
    // the victim in as the attacker (and set the session cookie).
    let fed = Fed::new().await;
    let app = fed.app();
    let start = format!(
        "/auth/external/start?domain=example.org&state={}",
        url::form_urlencoded::byte_serialize(
            json!({"codeChallenge": CHALLENGE, "codeChallengeMethod": "S256"})
                .to_string()
                .as_bytes()
        )
        .collect::<String>()
    );
    let (_, headers, _) = send(&app, get(&start)).await;
    let attackers_binding = binding_set_by(&headers);
    let callback = fed.at_provider(&location(&headers)).await;
    // The victim's browser has no binding, or one of its own.
    let (status, headers, body) = send(&app, get(&back_to_us(&callback))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["issue"][0]["details"]["text"],
        "The sign-in was started in another browser"
    );
    assert!(headers.get(header::SET_COOKIE).is_none());
    // A second planted link, tried with a binding the victim's browser has of its own.
    let (_, headers, _) = send(&app, get(&start)).await;
    let second = fed.at_provider(&location(&headers)).await;
    let (status, _, body) = send(
        &app,
        get_as(
            &back_to_us(&second),
            "the-victims-own-binding-0123456789abcdef",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["issue"][0]["details"]["text"],
        "The sign-in was started in another browser"
    );
    // And the state is spent: not even the attacker's browser can use it now.
    let (status, _, body) = send(&app, get_as(&back_to_us(&callback), &attackers_binding)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["issue"][0]["details"]["text"], "Invalid state");
}

fn base64_url(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

#[tokio::test]
async fn the_verifier_sent_to_the_provider_matches_the_challenge_and_never_travels_in_urls() {
    let fed = Fed::new().await;
    let login = fed.federate(alice(), "alice@example.org").await.unwrap();
    assert_eq!(user_of(&login), "alice");

    let authorize = &fed.idp.authorize_requests()[0];
    let token = &fed.idp.token_requests()[0];
    let verifier = token.field("code_verifier").unwrap();
    assert_eq!(
        authorize.field("code_challenge").unwrap(),
        pkce::s256_challenge(verifier)
    );
    assert!(!authorize.query.iter().any(|(_, v)| v == verifier));
    // client_secret_basic, as configured, and our callback as redirect_uri.
    assert_eq!(token.client_auth, RecordedClientAuth::Basic);
    assert_eq!(
        token.field("redirect_uri"),
        Some("https://auth.example.org/auth/external")
    );
}

#[tokio::test]
async fn client_secret_post_is_used_when_configured() {
    let options = FakeIdpOptions {
        token_auth: TokenAuth::Post,
        ..FakeIdpOptions::default()
    };
    let fed = Fed::with(options, ReqwestOptions::default(), |_| {}).await;
    let login = fed.federate(alice(), "alice@example.org").await.unwrap();
    assert_eq!(user_of(&login), "alice");
    assert_eq!(
        fed.idp.token_requests()[0].client_auth,
        RecordedClientAuth::Post
    );
}

#[tokio::test]
async fn es256_providers_work_too() {
    let options = FakeIdpOptions {
        alg: FakeAlg::Es256,
        ..FakeIdpOptions::default()
    };
    let fed = Fed::with(options, ReqwestOptions::default(), |_| {}).await;
    assert_eq!(
        user_of(&fed.federate(alice(), "alice@example.org").await.unwrap()),
        "alice"
    );
}

#[tokio::test]
async fn after_the_callback_the_login_has_a_new_handle_and_the_accounts_own_second_factor() {
    let fed = Fed::new().await;
    // bob has TOTP and two memberships; without a client both count.
    let request = LoginRequest {
        code_challenge: Some(CHALLENGE.into()),
        code_challenge_method: Some("S256".into()),
        ..LoginRequest::default()
    };
    fed.idp
        .set_next_login(NextLogin::user("idp-bob", "bob@example.org"));
    let redirect = fed.redirect_with(request, "bob@example.org").await;
    let callback = fed.callback_for(&redirect).await;
    // Federation does not skip the account's own factor (Medplum went straight on).
    let login = expect_second_factor(fed.f.engine.external_callback(&callback).await.unwrap());
    assert_ne!(login.handle().expose(), callback.state.as_deref().unwrap());
    // The state no longer resumes anything; the new handle does — and only for the factor.
    assert!(
        fed.f
            .engine
            .resume::<SecondFactor>(callback.state.as_deref().unwrap())
            .await
            .is_err()
    );
    let handle = login.handle().expose().to_owned();
    assert!(fed.f.engine.resume::<Profile>(&handle).await.is_err());
    let resumed = fed.f.engine.resume::<SecondFactor>(&handle).await.unwrap();
    let resumed = resumed.totp(&fed.f.totp_now(0)).await.unwrap();
    assert_eq!(
        resumed.record().amr,
        vec![fhirgate::model::Amr::Fed, fhirgate::model::Amr::Otp]
    );
    match resumed.choose_if_single().await.unwrap() {
        ProfileChoice::Choose { memberships, .. } => assert_eq!(memberships.len(), 2),
        ProfileChoice::Chosen(_) => panic!("bob has two memberships"),
    }
}

#[tokio::test]
async fn a_client_provider_is_chosen_over_the_domain_and_any_email_domain_is_fine() {
    let fed = Fed::new().await;
    fed.federated_client("sso-app", |_| {}).await;
    let mut request = fed.f.request();
    request.client_id = Some("sso-app".into());
    request.scope = Some("openid user/*.rs".into());
    fed.f
        .seeder()
        .user(
            "olga",
            "olga@partner.example",
            None,
            false,
            TotpState::None,
            false,
        )
        .await;
    fed.f
        .membership("m-olga", "p1", "olga", "Practitioner/olga")
        .await;
    fed.idp
        .set_next_login(NextLogin::user("idp-olga", "olga@partner.example"));
    let redirect = fed.redirect_with(request, "olga@partner.example").await;
    assert_eq!(redirect.domain, None);
    let callback = fed.callback_for(&redirect).await;
    let login = fed.callback(&callback).await.unwrap();
    assert_eq!(user_of(&login), "olga");
}

#[tokio::test]
async fn use_subject_maps_the_subject_to_a_membership_external_id() {
    let fed = Fed::new().await;
    fed.federated_client("sub-app", |p| p.use_subject = true)
        .await;
    let mut membership = fed
        .f
        .store
        .membership(&fhirgate::model::MembershipId::new("m-dave"))
        .await
        .unwrap()
        .unwrap();
    membership.external_id = Some("idp-subject-dave".into());
    membership.external_issuer = Some(fed.idp.issuer());
    fed.f.store.put_membership(&membership).await.unwrap();
    let mut request = fed.f.request();
    request.client_id = Some("sub-app".into());
    request.scope = Some("openid user/*.rs".into());

    // The email the provider reports does not matter (not even an unverified one).
    let mut next = NextLogin::user("idp-subject-dave", "someone-else@example.org");
    next.email_verified = Some(false);
    fed.idp.set_next_login(next);
    let redirect = fed.redirect_with(request.clone(), "dave@example.org").await;
    let callback = fed.callback_for(&redirect).await;
    let login = fed.callback(&callback).await.unwrap();
    assert_eq!(user_of(&login), "dave");

    // An unknown subject is nobody.
    fed.idp
        .set_next_login(NextLogin::user("idp-unknown", "dave@example.org"));
    let redirect = fed.redirect_with(request, "dave@example.org").await;
    let callback = fed.callback_for(&redirect).await;
    assert!(matches!(
        fed.callback(&callback).await,
        Err(LoginError::External(ExternalError::UnknownIdentity))
    ));
}

#[tokio::test]
async fn a_provider_without_id_tokens_is_asked_its_userinfo() {
    let fed = Fed::new().await;
    let mut next = alice();
    next.omit_id_token = true;
    let login = fed.federate(next, "alice@example.org").await.unwrap();
    assert_eq!(user_of(&login), "alice");
}

// ---------------------------------------------------------------------------------------
// State.

#[tokio::test]
async fn debug_output_of_redirects_and_callbacks_shows_no_state_nonce_or_code() {
    let fed = Fed::new().await;
    let redirect = fed.redirect_for("alice@example.org").await;
    let url = query(&redirect.authorize_url);
    let shown = format!("{redirect:?}");
    assert!(!shown.contains(&url["state"]), "{shown}");
    assert!(!shown.contains(&url["nonce"]), "{shown}");
    assert!(shown.contains(&fed.idp.authorize_url()), "{shown}");
    // Nor the browser binding it carries.
    assert!(
        !shown.contains(redirect.browser_binding.expose()),
        "{shown}"
    );
    // Nor the provider's answer: its code, our state and the binding cookie.
    let callback = ExternalCallback {
        state: Some(url["state"].clone()),
        code: Some("provider-code-0123456789".into()),
        error: None,
        iss: Some(fed.idp.issuer()),
        browser: Some(redirect.browser_binding.expose().to_owned()),
    };
    let shown = format!("{callback:?}");
    assert!(!shown.contains(&url["state"]), "{shown}");
    assert!(!shown.contains("provider-code-0123456789"), "{shown}");
    assert!(
        !shown.contains(redirect.browser_binding.expose()),
        "{shown}"
    );
    assert!(shown.contains(&fed.idp.issuer()), "{shown}");
}

#[tokio::test]
async fn missing_state_is_refused() {
    let fed = Fed::new().await;
    let redirect = fed.redirect_for("alice@example.org").await;
    let mut callback = fed.callback_for(&redirect).await;
    callback.state = None;
    assert!(matches!(
        fed.callback(&callback).await,
        Err(LoginError::External(ExternalError::MissingState))
    ));
}

#[tokio::test]
async fn wrong_state_is_refused_and_a_medplum_style_json_state_is_not_trusted() {
    let fed = Fed::new().await;
    let redirect = fed.redirect_for("alice@example.org").await;
    let mut callback = fed.callback_for(&redirect).await;
    for forged in [
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        json!({"domain": "example.org", "clientId": "app"}).to_string(),
        // The login's id is not its state.
        redirect.login.id().as_str().to_owned(),
    ] {
        callback.state = Some(forged);
        assert!(matches!(
            fed.callback(&callback).await,
            Err(LoginError::External(ExternalError::InvalidState))
        ));
    }
    // No tokens were requested for any of them.
    assert!(fed.idp.token_requests().is_empty());
}

#[tokio::test]
async fn replayed_state_is_refused() {
    let fed = Fed::new().await;
    let redirect = fed.redirect_for("alice@example.org").await;
    let callback = fed.callback_for(&redirect).await;
    fed.callback(&callback).await.unwrap();
    assert!(matches!(
        fed.callback(&callback).await,
        Err(LoginError::External(ExternalError::InvalidState))
    ));
    assert_eq!(fed.idp.token_requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_racing_callbacks_for_one_state_yield_at_most_one_login() {
    // Sixteen valid codes for the same login (the browser went to the provider sixteen
    // times with the same URL), redeemed at once: the state still yields one login.
    let fed = Fed::new().await;
    let redirect = fed.redirect_for("alice@example.org").await;
    let mut callbacks = Vec::new();
    for _ in 0..16 {
        callbacks.push(fed.callback_for(&redirect).await);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(callbacks.len()));
    let mut tasks = Vec::new();
    for callback in callbacks {
        let engine = fed.f.engine.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            engine
                .external_callback(&callback)
                .await
                .map(expect_profile)
        }));
    }
    let mut won = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(login) => {
                assert_eq!(user_of(&login), "alice");
                won += 1;
            }
            Err(LoginError::External(_) | LoginError::Request(_)) => {}
            Err(other) => panic!("unexpected failure: {other:?}"),
        }
    }
    assert_eq!(won, 1, "logins from one state");
    // And the state cannot be used again afterwards.
    let again = fed.callback_for(&redirect).await;
    assert!(matches!(
        fed.callback(&again).await,
        Err(LoginError::External(ExternalError::InvalidState))
    ));
}

#[tokio::test]
async fn a_failed_callback_spends_the_state() {
    let fed = Fed::new().await;
    let redirect = fed.redirect_for("alice@example.org").await;
    let good = fed.callback_for(&redirect).await;
    let mut refused = good.clone();
    refused.code = None;
    refused.error = Some("access_denied".into());
    match fed.callback(&refused).await {
        Err(LoginError::External(ExternalError::ProviderRefused(e))) => {
            assert_eq!(e, "access_denied")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        fed.callback(&good).await,
        Err(LoginError::External(ExternalError::InvalidState))
    ));
}

#[tokio::test]
async fn an_expired_login_cannot_be_resumed_by_its_state() {
    let fed = Fed::new().await;
    let redirect = fed.redirect_for("alice@example.org").await;
    let callback = fed.callback_for(&redirect).await;
    fed.advance(16 * 60);
    assert!(matches!(
        fed.callback(&callback).await,
        Err(LoginError::External(ExternalError::InvalidState))
    ));
}

#[tokio::test]
async fn a_response_naming_another_issuer_is_a_mix_up() {
    let fed = Fed::new().await;
    let redirect = fed.redirect_for("alice@example.org").await;
    let mut callback = fed.callback_for(&redirect).await;
    callback.iss = Some("https://evil.example".into());
    assert!(matches!(
        fed.callback(&callback).await,
        Err(LoginError::External(ExternalError::IssuerMismatch))
    ));
    assert!(fed.idp.token_requests().is_empty());
    // RFC 9207 compares by simple string comparison: a trailing slash is another issuer.
    let redirect = fed.redirect_for("alice@example.org").await;
    let mut callback = fed.callback_for(&redirect).await;
    callback.iss = Some(format!("{}/", fed.idp.issuer()));
    assert!(matches!(
        fed.callback(&callback).await,
        Err(LoginError::External(ExternalError::IssuerMismatch))
    ));
}

// ---------------------------------------------------------------------------------------
// The ID token.

fn invalid_token(error: ExternalError) -> String {
    match error {
        ExternalError::InvalidToken(why) => why,
        other => panic!("expected InvalidToken, got {other:?}"),
    }
}

#[tokio::test]
async fn wrong_nonce_is_refused() {
    let fed = Fed::new().await;
    let mut next = alice();
    next.nonce_override = Some(Some("another-login's-nonce".into()));
    let why = invalid_token(fed.refused(next, "alice@example.org").await);
    assert!(why.contains("nonce"), "{why}");
    let mut next = alice();
    next.nonce_override = Some(None);
    let why = invalid_token(fed.refused(next, "alice@example.org").await);
    assert!(why.contains("nonce"), "{why}");
}

#[tokio::test]
async fn a_signature_by_an_unpublished_key_is_refused() {
    let fed = Fed::new().await;
    let mut next = alice();
    next.sign_with_unknown_key = true;
    invalid_token(fed.refused(next, "alice@example.org").await);
}

#[tokio::test]
async fn a_payload_changed_after_signing_is_refused() {
    let fed = Fed::new().await;
    let mut next = alice();
    next.tamper_payload = true;
    invalid_token(fed.refused(next, "alice@example.org").await);
}

#[tokio::test]
async fn wrong_issuer_is_refused() {
    let fed = Fed::new().await;
    let mut next = alice();
    next.iss_override = Some("https://other-idp.example".into());
    let why = invalid_token(fed.refused(next, "alice@example.org").await);
    assert!(why.contains("iss"), "{why}");
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    let fed = Fed::new().await;
    let mut next = alice();
    next.aud_override = Some(vec!["another-relying-party".into()]);
    let why = invalid_token(fed.refused(next, "alice@example.org").await);
    assert!(why.contains("aud"), "{why}");
}

#[tokio::test]
async fn an_id_token_for_several_audiences_needs_us_as_the_authorized_party() {
    let fed = Fed::new().await;
    let client = fed.idp.options().client_id.clone();
    let several = || {
        let mut next = alice();
        next.aud_override = Some(vec![client.clone(), "another-relying-party".into()]);
        next
    };
    // No azp, or another party's: refused (OIDC Core 3.1.3.7 items 4 and 5).
    let mut next = several();
    next.azp_override = Some(None);
    let why = invalid_token(fed.refused(next, "alice@example.org").await);
    assert!(why.contains("authorized party"), "{why}");
    let mut next = several();
    next.azp_override = Some(Some("another-relying-party".into()));
    let why = invalid_token(fed.refused(next, "alice@example.org").await);
    assert!(why.contains("authorized party"), "{why}");
    // azp = our client id: accepted.
    let login = fed.federate(several(), "alice@example.org").await.unwrap();
    assert_eq!(user_of(&login), "alice");
}

#[tokio::test]
async fn an_expired_id_token_is_refused() {
    let fed = Fed::new().await;
    let mut next = alice();
    next.expired = true;
    let why = invalid_token(fed.refused(next, "alice@example.org").await);
    assert!(why.contains("expired"), "{why}");
}

#[tokio::test]
async fn an_id_token_issued_long_ago_or_in_the_future_is_refused() {
    let fed = Fed::new().await;
    let mut next = alice();
    next.iat_offset_seconds = -3600;
    invalid_token(fed.refused(next, "alice@example.org").await);
    let mut next = alice();
    next.iat_offset_seconds = 3600;
    invalid_token(fed.refused(next, "alice@example.org").await);
}

#[tokio::test]
async fn a_key_rotated_at_the_provider_is_fetched_once_and_unknown_kids_are_rate_limited() {
    let fed = Fed::new().await;
    fed.federate(alice(), "alice@example.org").await.unwrap();
    assert_eq!(fed.idp.jwks_fetches(), 1);
    // Cached: no second fetch.
    fed.federate(alice(), "alice@example.org").await.unwrap();
    assert_eq!(fed.idp.jwks_fetches(), 1);

    // The provider rotates. Within REFETCH_INTERVAL of the last fetch an unknown kid is
    // refused without asking the provider again (no request amplification) …
    fed.idp.rotate_keys();
    fed.advance(5);
    invalid_token(fed.refused(alice(), "alice@example.org").await);
    assert_eq!(fed.idp.jwks_fetches(), 1);
    // … after it, the new key is fetched once and works.
    fed.advance(fhirgate::idp::REFETCH_INTERVAL.whole_seconds());
    fed.federate(alice(), "alice@example.org").await.unwrap();
    assert_eq!(fed.idp.jwks_fetches(), 2);
    fed.federate(alice(), "alice@example.org").await.unwrap();
    assert_eq!(fed.idp.jwks_fetches(), 2);
}

// ---------------------------------------------------------------------------------------
// Identity mapping.

#[tokio::test]
async fn an_unverified_email_is_refused() {
    let fed = Fed::new().await;
    let mut next = alice();
    next.email_verified = Some(false);
    assert_eq!(
        fed.refused(next, "alice@example.org").await,
        ExternalError::EmailNotVerified
    );
    let mut next = alice();
    next.email_verified = None;
    assert_eq!(
        fed.refused(next, "alice@example.org").await,
        ExternalError::EmailNotVerified
    );
}

#[tokio::test]
async fn an_email_outside_the_configured_domain_is_refused() {
    let fed = Fed::new().await;
    // The example.org provider vouches for an address at another domain (whose accounts it
    // has no authority over), even one that exists here.
    fed.f
        .seeder()
        .user(
            "mallory",
            "victim@other.example",
            None,
            true,
            TotpState::None,
            false,
        )
        .await;
    fed.f
        .membership("m-victim", "p1", "mallory", "Practitioner/victim")
        .await;
    assert_eq!(
        fed.refused(
            NextLogin::user("idp-x", "victim@other.example"),
            "alice@example.org"
        )
        .await,
        ExternalError::DomainMismatch
    );
}

#[tokio::test]
async fn an_identity_without_an_account_or_email_is_refused() {
    let fed = Fed::new().await;
    assert_eq!(
        fed.refused(
            NextLogin::user("idp-nobody", "nobody@example.org"),
            "nobody@example.org"
        )
        .await,
        ExternalError::UnknownIdentity
    );
    let mut next = alice();
    next.email = None;
    assert_eq!(
        fed.refused(next, "alice@example.org").await,
        ExternalError::MissingEmail
    );
}

// ---------------------------------------------------------------------------------------
// The provider misbehaving.

#[tokio::test]
async fn provider_error_responses_are_refused_with_medplum_text() {
    let fed = Fed::new().await;
    for behaviour in [
        TokenBehaviour::Status(400),
        TokenBehaviour::Status(401),
        TokenBehaviour::Status(500),
        TokenBehaviour::NotJson,
    ] {
        fed.idp.set_token_behaviour(behaviour.clone());
        let error = fed.refused(alice(), "alice@example.org").await;
        assert!(
            matches!(error, ExternalError::ProviderError(_)),
            "{behaviour:?}: {error:?}"
        );
        assert_eq!(
            error.to_string(),
            "Failed to verify code - check your identity provider configuration"
        );
    }
}

#[tokio::test]
async fn a_provider_that_does_not_answer_in_time_is_unreachable() {
    let transport = {
        let mut options = ReqwestOptions::default();
        options.timeout = Duration::from_millis(500);
        options
    };
    let fed = Fed::with(FakeIdpOptions::default(), transport, |_| {}).await;
    fed.idp
        .set_token_behaviour(TokenBehaviour::Delay(Duration::from_secs(3)));
    let error = fed.refused(alice(), "alice@example.org").await;
    assert_eq!(
        error,
        ExternalError::Unreachable(fhirgate::transport::TransportError::Timeout)
    );
}

#[tokio::test]
async fn the_callback_route_answers_provider_failures_with_502_and_refusals_with_400() {
    let fed = Fed::new().await;
    let app = fed.app();
    let redirect = fed.redirect_for("alice@example.org").await;
    let callback = fed.callback_for(&redirect).await;
    fed.idp.set_token_behaviour(TokenBehaviour::Status(500));
    let (status, _, body) = send(
        &app,
        get_as(&back_to_us(&callback), redirect.browser_binding.expose()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        body["issue"][0]["details"]["text"],
        "Failed to verify code - check your identity provider configuration"
    );
    let (status, _, body) = send(&app, get("/auth/external?code=x")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["issue"][0]["details"]["text"], "Missing state");
}

// ---------------------------------------------------------------------------------------
// Routes for Medplum's clients.

#[tokio::test]
async fn medplum_clients_start_at_our_start_route_with_their_json_state() {
    let fed = Fed::new().await;
    let app = fed.app();
    let (status, _, method) = send(
        &app,
        post_json("/auth/method", &json!({"email": "alice@example.org"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(method["domain"], "example.org");
    // Medplum's SDK (getExternalAuthRedirectUri) overwrites the provider parameters and puts
    // its login request into `state`.
    let mut start = Url::parse(method["authorizeUrl"].as_str().unwrap()).unwrap();
    assert_eq!(start.path(), "/auth/external/start");
    start
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "app")
        .append_pair("scope", "openid profile email")
        .append_pair(
            "state",
            &json!({
                "domain": "example.org",
                "clientId": "app",
                "redirectUri": REDIRECT,
                "scope": "openid user/*.rs",
                "codeChallenge": CHALLENGE,
                "codeChallengeMethod": "S256",
            })
            .to_string(),
        )
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256");
    let (status, headers, body) = send(&app, get(&path_of(&start))).await;
    assert_eq!(status, StatusCode::FOUND, "{body}");
    let binding = binding_set_by(&headers);
    let to_provider = location(&headers);
    assert!(to_provider.as_str().starts_with(&fed.idp.authorize_url()));
    let sent = query(&to_provider);
    assert_eq!(sent["client_id"], "fhirgate-at-idp");
    assert_ne!(sent["code_challenge"], CHALLENGE);
    assert_eq!(sent["state"].len(), 43);

    // Round trip: the code goes to the client, bound to the client's own PKCE challenge.
    let callback = fed.at_provider(&to_provider).await;
    let (status, headers, _) = send(&app, get_as(&back_to_us(&callback), &binding)).await;
    assert_eq!(status, StatusCode::FOUND);
    let code = query(&location(&headers))["code"].clone();
    let response = fed.f.redeem("app", &code).await;
    assert_eq!(response.status, 200, "{}", response.body);

    // A start without PKCE, with broken JSON, or for a domain without a provider is refused.
    for (path, text) in [
        (
            "/auth/external/start?domain=example.org",
            "Missing code challenge: PKCE with S256 is required",
        ),
        ("/auth/external/start?state=%7Bnot-json", "Invalid state"),
        (
            "/auth/external/start?state=%7B%22codeChallenge%22%3A%22E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM%22%2C%22codeChallengeMethod%22%3A%22S256%22%7D&domain=nowhere.example",
            "Identity provider not found",
        ),
    ] {
        let (status, _, body) = send(&app, get(path)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(body["issue"][0]["details"]["text"], text, "{path}");
    }
}

#[tokio::test]
async fn without_a_registered_redirect_uri_the_callback_hands_off_to_the_sign_in_page() {
    let fed = Fed::new().await;
    let app = fed.app();
    // A login without a client (Medplum's own app) and bob, who has TOTP and two profiles.
    fed.idp
        .set_next_login(NextLogin::user("idp-bob", "bob@example.org"));
    let request = LoginRequest {
        code_challenge: Some(CHALLENGE.into()),
        code_challenge_method: Some("S256".into()),
        ..LoginRequest::default()
    };
    let redirect = fed.redirect_with(request, "bob@example.org").await;
    let binding = redirect.browser_binding.expose().to_owned();
    let callback = fed.callback_for(&redirect).await;
    let (status, headers, _) = send(&app, get_as(&back_to_us(&callback), &binding)).await;
    assert_eq!(status, StatusCode::FOUND);
    let page = location(&headers);
    assert!(
        page.as_str()
            .starts_with("https://auth.example.org/signin?"),
        "{page}"
    );
    // The URL carries a hand-off reference, not a login handle: no step accepts it …
    let reference = query(&page)["login"].clone();
    assert_ne!(&reference, callback.state.as_deref().unwrap());
    for (path, body) in [
        (
            "/auth/mfa/verify",
            json!({"login": reference, "token": fed.f.totp_now(0)}),
        ),
        (
            "/auth/profile",
            json!({"login": reference, "profile": "m-bob-2"}),
        ),
    ] {
        let (status, _, answer) = send(&app, post_json(path, &body)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(answer["issue"][0]["details"]["text"], "Not found");
    }
    // … another browser cannot pick it up …
    let (status, _, answer) = send(&app, get(&format!("/auth/login/{reference}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["issue"][0]["details"]["text"], "Not found");
    // … the one that started the sign-in does, once, and gets a handle in the body. bob's own
    // second factor comes next: the provider's sign-in does not replace it.
    let (status, headers, answer) =
        send(&app, get_as(&format!("/auth/login/{reference}"), &binding)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["mfaRequired"], true);
    let handle = answer["login"].as_str().unwrap().to_owned();
    assert_ne!(handle, reference);
    assert!(
        headers
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|c| c.to_str().unwrap().contains("Max-Age=0"))
    );
    let (status, _, again) =
        send(&app, get_as(&format!("/auth/login/{reference}"), &binding)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{again}");
    // The page continues: the second factor, then the profile choice.
    let (status, _, answer) = send(
        &app,
        post_json(
            "/auth/mfa/verify",
            &json!({"login": handle, "token": fed.f.totp_now(0)}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["memberships"].as_array().unwrap().len(), 2);
    let (status, _, body) = send(
        &app,
        post_json(
            "/auth/profile",
            &json!({"login": answer["login"], "profile": "m-bob-2"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["code"].is_string());
}

#[tokio::test]
async fn a_hand_off_reference_expires_within_a_minute() {
    let fed = Fed::new().await;
    let app = fed.app();
    fed.idp.set_next_login(alice());
    let request = LoginRequest {
        code_challenge: Some(CHALLENGE.into()),
        code_challenge_method: Some("S256".into()),
        ..LoginRequest::default()
    };
    let redirect = fed.redirect_with(request, "alice@example.org").await;
    let binding = redirect.browser_binding.expose().to_owned();
    let callback = fed.callback_for(&redirect).await;
    let (_, headers, _) = send(&app, get_as(&back_to_us(&callback), &binding)).await;
    let reference = query(&location(&headers))["login"].clone();
    fed.f.clock.advance(time::Duration::seconds(61));
    let (status, _, answer) =
        send(&app, get_as(&format!("/auth/login/{reference}"), &binding)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["issue"][0]["details"]["text"], "Not found");
}

// ---------------------------------------------------------------------------------------
// Google sign-in (the fake standing in for Google).

#[tokio::test]
async fn google_sign_in_with_a_verified_email() {
    let fed = Fed::google().await;
    let credential = fed.id_token(alice()).await;
    let login = fed.f.engine.start(fed.f.request()).await.unwrap();
    let login = google_profile(login.google("google-client-1", &credential).await.unwrap());
    assert_eq!(user_of(&login), "alice");
    assert_eq!(
        login.record().auth_method,
        fhirgate::model::AuthMethod::Google
    );

    // Through the route, as Medplum's GoogleButton posts it.
    let credential = fed.id_token(alice()).await;
    let (status, _, body) = send(
        &fed.app(),
        post_json(
            "/auth/google",
            &json!({
                "googleClientId": "google-client-1",
                "googleCredential": credential,
                "clientId": "app",
                "redirectUri": REDIRECT,
                "codeChallenge": CHALLENGE,
                "codeChallengeMethod": "S256",
                "scope": "openid user/*.rs",
            }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["code"].is_string(), "{body}");
}

#[tokio::test]
async fn google_refusals() {
    let fed = Fed::google().await;
    let app = fed.app();
    let attempt = |credential: String, client: &'static str| {
        let app = app.clone();
        async move {
            let (status, _, body) = send(
                &app,
                post_json(
                    "/auth/google",
                    &json!({
                        "googleClientId": client,
                        "googleCredential": credential,
                        "codeChallenge": CHALLENGE,
                        "codeChallengeMethod": "S256",
                    }),
                ),
            )
            .await;
            (
                status,
                body["issue"][0]["details"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        }
    };
    // Unverified email (Medplum ignores email_verified).
    let mut next = alice();
    next.email_verified = Some(false);
    let (status, text) = attempt(fed.id_token(next).await, "google-client-1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        text,
        "Email address is not verified by the identity provider"
    );
    // A Google client id we do not accept.
    let (_, text) = attempt(fed.id_token(alice()).await, "someone-elses-client").await;
    assert_eq!(text, "Invalid googleClientId");
    // A token minted for another audience.
    let mut next = alice();
    next.aud_override = Some(vec!["another-google-client".into()]);
    let (_, text) = attempt(fed.id_token(next).await, "google-client-1").await;
    assert!(text.starts_with("Invalid identity token"), "{text}");
    // An unknown account is not created unless configured.
    let (_, text) = attempt(
        fed.id_token(NextLogin::user("g-new", "new.person@example.org"))
            .await,
        "google-client-1",
    )
    .await;
    assert_eq!(text, "User not found");
    assert!(
        fed.f
            .store
            .user_by_email("new.person@example.org", None)
            .await
            .unwrap()
            .is_none()
    );
    // Missing fields.
    let (status, _, body) = send(&app, post_json("/auth/google", &json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["issue"][0]["details"]["text"],
        "Missing googleClientId"
    );
}

#[tokio::test]
async fn google_does_not_bypass_the_domains_own_provider() {
    // example.org signs in at its provider (the fake also plays Google here): a Google
    // account for alice@example.org is sent there instead of being taken at its word.
    let fed = Fed::with(
        FakeIdpOptions {
            client_id: "google-client-1".into(),
            ..FakeIdpOptions::default()
        },
        ReqwestOptions::default(),
        |_| {},
    )
    .await;
    let credential = fed.id_token(alice()).await;
    let login = fed.f.engine.start(fed.f.request()).await.unwrap();
    let redirect = match login.google("google-client-1", &credential).await.unwrap() {
        GoogleSignIn::External { login, domain } => {
            assert_eq!(domain.as_deref(), Some("example.org"));
            login.federate(domain.as_deref()).await.unwrap()
        }
        GoogleSignIn::Authenticated(passed) => panic!("Google bypassed the domain: {passed:?}"),
    };
    assert_eq!(redirect.domain.as_deref(), Some("example.org"));
    assert!(
        redirect
            .authorize_url
            .as_str()
            .starts_with(&fed.idp.authorize_url()),
        "{}",
        redirect.authorize_url
    );
    // Nothing was signed in by Google: the login waits for the provider's callback, and
    // finishes there as any federated login does.
    let callback = fed.callback_for(&redirect).await;
    let login = fed.callback(&callback).await.unwrap();
    assert_eq!(user_of(&login), "alice");
    assert_eq!(
        login.record().auth_method,
        fhirgate::model::AuthMethod::External
    );

    // Through the route: Medplum's answer, {domain, authorizeUrl} — our start route, where the
    // browser gets its binding — and no login handle.
    let credential = fed.id_token(alice()).await;
    let (status, _, body) = send(
        &fed.app(),
        post_json(
            "/auth/google",
            &json!({
                "googleClientId": "google-client-1",
                "googleCredential": credential,
                "clientId": "app",
                "redirectUri": REDIRECT,
                "codeChallenge": CHALLENGE,
                "codeChallengeMethod": "S256",
            }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["domain"], "example.org");
    let url = Url::parse(body["authorizeUrl"].as_str().unwrap()).unwrap();
    assert_eq!(
        url.as_str(),
        "https://auth.example.org/auth/external/start?domain=example.org"
    );
    assert!(
        body.get("login").is_none() && body.get("code").is_none(),
        "{body}"
    );
}

#[tokio::test]
async fn google_through_a_client_with_its_own_provider_goes_to_that_provider() {
    let fed = Fed::google().await;
    fed.federated_client("sso-app", |_| {}).await;
    let mut request = fed.f.request();
    request.client_id = Some("sso-app".into());
    request.scope = Some("openid user/*.rs".into());
    let credential = fed.id_token(alice()).await;
    let login = fed.f.engine.start(request).await.unwrap();
    match login.google("google-client-1", &credential).await.unwrap() {
        GoogleSignIn::External { login, domain } => {
            assert_eq!(domain, None);
            let redirect = login.federate(None).await.unwrap();
            assert!(
                redirect
                    .authorize_url
                    .as_str()
                    .starts_with(&fed.idp.authorize_url())
            );
        }
        GoogleSignIn::Authenticated(passed) => panic!("Google bypassed the client: {passed:?}"),
    }
    // A refused Google token is refused before any redirect.
    let mut next = alice();
    next.email_verified = Some(false);
    let credential = fed.id_token(next).await;
    let mut request = fed.f.request();
    request.client_id = Some("sso-app".into());
    request.scope = Some("openid user/*.rs".into());
    let login = fed.f.engine.start(request).await.unwrap();
    assert!(matches!(
        login.google("google-client-1", &credential).await,
        Err(LoginError::External(ExternalError::EmailNotVerified))
    ));
}

#[tokio::test]
async fn a_project_requiring_google_refuses_passwords_but_not_google() {
    let fed = Fed::google().await;
    // frank@example.org has a password and a membership in p1; p1 now requires Google.
    let mut project = fed
        .f
        .store
        .project(&ProjectId::new("p1"))
        .await
        .unwrap()
        .unwrap();
    project
        .features
        .insert(fhirgate::model::FEATURE_GOOGLE_AUTH_REQUIRED.to_owned());
    fed.f.store.put_project(&project).await.unwrap();
    // (example.org has a provider in this fixture, so use the project-scoped route of a
    // password login for a user at another domain.)
    fed.f
        .seeder()
        .user(
            "gina",
            "gina@clinic.example",
            None,
            true,
            TotpState::None,
            false,
        )
        .await;
    fed.f
        .membership("m-gina", "p1", "gina", "Practitioner/gina")
        .await;
    let refused = fed
        .f
        .password("gina@clinic.example", PASSWORD)
        .await
        .map(expect_profile)
        .unwrap()
        .choose(&fhirgate::model::MembershipId::new("m-gina"))
        .await;
    assert!(matches!(
        refused,
        Err(LoginError::Policy(
            fhirgate::PolicyError::GoogleAuthRequired
        ))
    ));
    let credential = fed
        .id_token(NextLogin::user("g-gina", "gina@clinic.example"))
        .await;
    let login = fed.f.engine.start(fed.f.request()).await.unwrap();
    let login = google_profile(login.google("google-client-1", &credential).await.unwrap());
    login
        .choose(&fhirgate::model::MembershipId::new("m-gina"))
        .await
        .unwrap();
}

#[tokio::test]
async fn google_creates_users_only_where_configured() {
    let idp = FakeIdp::start(FakeIdpOptions {
        client_id: "google-client-1".into(),
        ..FakeIdpOptions::default()
    })
    .await;
    idp.set_now(Some(START));
    let mut config = crate::common::config();
    config.google.client_ids = vec!["google-client-1".to_owned()];
    config.google.jwks_uri = idp.jwks_uri();
    config.google.issuers = vec![idp.issuer()];
    config.google.create_users = true;
    let transport = Arc::new(ReqwestTransport::new(ReqwestOptions::default()).unwrap());
    let f = Fixture::with_transport(config, Some(transport)).await;
    let fed = Fed { f, idp };
    let credential = fed
        .id_token(NextLogin::user("g-new", "New.Person@Clinic.example"))
        .await;
    // A new user has no membership yet, so no login: but the account exists (verified,
    // lower-cased), ready for an invitation.
    let login = fed.f.engine.start(LoginRequest {
        code_challenge: Some(CHALLENGE.into()),
        code_challenge_method: Some("S256".into()),
        ..LoginRequest::default()
    });
    let refused = login
        .await
        .unwrap()
        .google("google-client-1", &credential)
        .await;
    assert!(matches!(
        refused,
        Err(LoginError::External(ExternalError::UnknownIdentity))
    ));
    let user = fed
        .f
        .store
        .user_by_email("new.person@clinic.example", None)
        .await
        .unwrap()
        .unwrap();
    assert!(user.email_verified);
}

// ---------------------------------------------------------------------------------------
// Token exchange.

async fn exchange(fed: &Fed, form: &[(&str, &str)]) -> fhirgate::oauth::OAuthResponse {
    fed.f.token(None, form).await
}

#[tokio::test]
async fn token_exchange_of_a_provider_jwt_issues_our_tokens() {
    let fed = Fed::new().await;
    fed.federated_client("sso-app", |_| {}).await;
    let subject = fed
        .idp
        .access_token("idp-alice", "alice@example.org", "fhirgate-at-idp", false);
    let response = exchange(
        &fed,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("client_id", "sso-app"),
            ("subject_token", &subject),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("scope", "openid user/*.rs"),
        ],
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(field(&response, "issued_token_type"), ACCESS_TOKEN_TYPE);
    assert_eq!(field(&response, "token_type"), "Bearer");
    let principal = fed
        .f
        .engine
        .verifier()
        .verify(field(&response, "access_token"))
        .await
        .unwrap();
    assert_eq!(principal.profile.as_str(), "Practitioner/alice");
}

#[tokio::test]
async fn token_exchange_checks_audience_expiry_and_token_type() {
    let fed = Fed::new().await;
    fed.federated_client("sso-app", |_| {}).await;
    let fed = &fed;
    let attempt = |subject: String, kind: &'static str| async move {
        let response = exchange(
            fed,
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("client_id", "sso-app"),
                ("subject_token", &subject),
                ("subject_token_type", kind),
            ],
        )
        .await;
        (response.status, response.body)
    };
    // A token the provider issued to another application (Medplum never checks `aud`).
    let (status, body) = attempt(
        fed.idp
            .access_token("idp-alice", "alice@example.org", "another-app", false),
        ACCESS_TOKEN_TYPE,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["error_description"].as_str().unwrap().contains("aud"),
        "{body}"
    );
    let (status, body) = attempt(
        fed.idp
            .access_token("idp-alice", "alice@example.org", "fhirgate-at-idp", true),
        ACCESS_TOKEN_TYPE,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = attempt(
        fed.idp
            .access_token("idp-alice", "alice@example.org", "fhirgate-at-idp", false),
        "urn:ietf:params:oauth:token-type:id_token",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("subject_token_type")
    );
    // A client without a provider cannot exchange.
    let response = exchange(
        fed,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("client_id", "app"),
            ("subject_token", "x"),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
        ],
    )
    .await;
    assert_eq!(response.body["error"], "unauthorized_client");
}

#[tokio::test]
async fn token_exchange_accepts_configured_api_audiences_and_only_those() {
    // Okta/Entra style: the provider's access tokens name an API identifier, not our client.
    let fed = Fed::with(FakeIdpOptions::default(), ReqwestOptions::default(), |p| {
        p.access_token_audiences = vec!["api://fhirgate".into()];
    })
    .await;
    fed.federated_client("plain-app", |_| {}).await;
    fed.federated_client("api-app", |p| {
        p.access_token_audiences = vec!["api://fhirgate".into()];
    })
    .await;
    let subject = fed
        .idp
        .access_token("idp-alice", "alice@example.org", "api://fhirgate", false);
    let attempt = |client: &'static str, subject: String| {
        let fed = &fed;
        async move {
            exchange(
                fed,
                &[
                    ("grant_type", TOKEN_EXCHANGE),
                    ("client_id", client),
                    ("subject_token", &subject),
                    ("subject_token_type", ACCESS_TOKEN_TYPE),
                    ("scope", "openid user/*.rs"),
                ],
            )
            .await
        }
    };
    // Not configured: refused for its audience.
    let refused = attempt("plain-app", subject.clone()).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body["error_description"]
            .as_str()
            .unwrap()
            .contains("aud"),
        "{}",
        refused.body
    );
    // Configured: accepted, for the account it maps to.
    let accepted = attempt("api-app", subject).await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    let principal = fed
        .f
        .engine
        .verifier()
        .verify(field(&accepted, "access_token"))
        .await
        .unwrap();
    assert_eq!(principal.profile.as_str(), "Practitioner/alice");
    // Still not any audience.
    let other = fed.idp.access_token(
        "idp-alice",
        "alice@example.org",
        "api://someone-else",
        false,
    );
    assert_eq!(attempt("api-app", other).await.status, 400);
    // And ID tokens must still name our client id, whatever the access-token setting says.
    let mut next = alice();
    next.aud_override = Some(vec!["api://fhirgate".into()]);
    let why = invalid_token(fed.refused(next, "alice@example.org").await);
    assert!(why.contains("aud"), "{why}");
}

#[tokio::test]
async fn token_exchange_through_userinfo_and_the_medplum_route() {
    let fed = Fed::new().await;
    // A provider configured without a JWKS: the subject token is checked at its UserInfo.
    fed.federated_client("ui-app", |p| p.jwks_uri = None).await;
    let subject = fed
        .idp
        .access_token("idp-alice", "alice@example.org", "whatever", false);
    let (status, _, body) = send(
        &fed.app(),
        post_json(
            "/auth/exchange",
            &json!({"externalAccessToken": subject, "clientId": "ui-app", "scope": "openid user/*.rs"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].is_string());
    // UserInfo refuses an expired token; so do we.
    let expired = fed
        .idp
        .access_token("idp-alice", "alice@example.org", "whatever", true);
    let (status, _, body) = send(
        &fed.app(),
        post_json(
            "/auth/exchange",
            &json!({"externalAccessToken": expired, "clientId": "ui-app"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["error_description"],
        "Invalid identity token: the provider does not accept the token"
    );
    let (status, _, body) = send(
        &fed.app(),
        post_json("/auth/exchange", &json!({"clientId": "ui-app"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["issue"][0]["details"]["text"],
        "Missing externalAccessToken"
    );
}

#[tokio::test]
async fn a_confidential_client_must_authenticate_to_exchange() {
    let fed = Fed::new().await;
    let mut client = ClientApplication::new(ClientId::new("conf-sso"), ProjectId::new("p1"));
    client.auth_method = fhirgate::model::ClientAuthMethod::ClientSecretBasic;
    client.secret = Some(fhirgate::model::ClientSecretHash::of(CLIENT_SECRET));
    client.allowed_scopes = "openid user/*.rs".into();
    client.identity_provider = Some(fed.idp.identity_provider());
    fed.f.store.put_client(&client).await.unwrap();
    let subject = fed
        .idp
        .access_token("idp-alice", "alice@example.org", "fhirgate-at-idp", false);
    let body = json!({"externalAccessToken": subject, "clientId": "conf-sso"});
    let (status, _, answer) = send(&fed.app(), post_json("/auth/exchange", &body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"], "invalid_client");
    let request = Request::post("/auth/exchange")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, basic("conf-sso", CLIENT_SECRET))
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, _, answer) = send(&fed.app(), request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn alg_none_and_hmac_signed_identity_tokens_are_refused() {
    use base64::Engine as _;
    let fed = Fed::google().await;
    let claims = json!({
        "iss": fed.idp.issuer(),
        "aud": "google-client-1",
        "sub": "idp-alice",
        "email": "alice@example.org",
        "email_verified": true,
        "iat": START,
        "exp": START + 3600,
    });
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    let kid = fed.idp.current_kid();
    // alg "none", unsigned.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
        b64(&claims)
    );
    // HS256 keyed with something public-ish (the classic algorithm confusion).
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid.clone());
    let hmac = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(fed.idp.options().client_secret.as_bytes()),
    )
    .unwrap();
    for token in [none, hmac] {
        let login = fed.f.engine.start(fed.f.request()).await.unwrap();
        match login.google("google-client-1", &token).await {
            Err(LoginError::External(ExternalError::InvalidToken(_))) => {}
            other => panic!("{other:?}"),
        }
    }
    // The same claims signed properly by the provider are accepted (the refusals above are
    // about the algorithm, not the claims).
    let good = fed.id_token(alice()).await;
    let login = fed.f.engine.start(fed.f.request()).await.unwrap();
    google_profile(login.google("google-client-1", &good).await.unwrap());
}

// ---------------------------------------------------------------------------------------
// Issue 15 regressions.

#[tokio::test]
async fn token_exchange_of_an_opaque_token_needs_introspection_naming_us() {
    // Medplum asked UserInfo about any opaque token: one the provider minted for another app
    // of the same user was exchanged for our tokens.
    let fed = Fed::new().await;
    let introspection: Url = fed.idp.introspection_url().parse().unwrap();
    fed.federated_client("sso-app", |_| {}).await;
    fed.federated_client("intro-app", |p| p.introspection_url = Some(introspection))
        .await;
    let for_us = fed.idp.opaque_access_token(
        "idp-alice",
        "alice@example.org",
        "fhirgate-at-idp",
        "fhirgate-at-idp",
    );
    let for_another_app =
        fed.idp
            .opaque_access_token("idp-alice", "alice@example.org", "other-app", "other-app");
    let attempt = |client: &'static str, subject: String| {
        let fed = &fed;
        async move {
            exchange(
                fed,
                &[
                    ("grant_type", TOKEN_EXCHANGE),
                    ("client_id", client),
                    ("subject_token", &subject),
                    ("subject_token_type", ACCESS_TOKEN_TYPE),
                    ("scope", "openid user/*.rs"),
                ],
            )
            .await
        }
    };
    // A provider that signs its tokens, without introspection: opaque tokens are refused.
    let refused = attempt("sso-app", for_us.clone()).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(
        refused.body["error_description"],
        "The subject token must be a JWT signed by the identity provider"
    );
    // With introspection: only a token issued to us is exchanged.
    for subject in [for_another_app, "never-issued-0123456789".to_owned()] {
        let refused = attempt("intro-app", subject).await;
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert_eq!(
            refused.body["error_description"],
            "The subject token is not active for this client"
        );
    }
    let accepted = attempt("intro-app", for_us).await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    let principal = fed
        .f
        .engine
        .verifier()
        .verify(field(&accepted, "access_token"))
        .await
        .unwrap();
    assert_eq!(principal.profile.as_str(), "Practitioner/alice");
}

#[tokio::test]
async fn federated_sign_ins_do_not_skip_the_accounts_own_second_factor() {
    // Medplum: Google, the external callback and token exchange went straight to profiles
    // and tokens for a user with TOTP (or one who must enrol).
    let fed = Fed::google().await;
    let credential = fed
        .id_token(NextLogin::user("idp-bob", "bob@example.org"))
        .await;
    let login = fed.f.engine.start(fed.f.request()).await.unwrap();
    let login = match login.google("google-client-1", &credential).await.unwrap() {
        GoogleSignIn::Authenticated(passed) => expect_second_factor(passed),
        other => panic!("{other:?}"),
    };
    assert!(
        fed.f
            .engine
            .resume::<Profile>(login.handle().expose())
            .await
            .is_err()
    );
    login.totp(&fed.f.totp_now(0)).await.unwrap();
    // carol must enrol: Google leads to the enrolment step, not around it.
    let credential = fed
        .id_token(NextLogin::user("idp-carol", "carol@example.org"))
        .await;
    let login = fed.f.engine.start(fed.f.request()).await.unwrap();
    match login.google("google-client-1", &credential).await.unwrap() {
        GoogleSignIn::Authenticated(fhirgate::login::Passed::Enrolment(_, uri)) => {
            assert!(uri.expose().starts_with("otpauth://totp/"))
        }
        other => panic!("{other:?}"),
    }

    // Token exchange has no way to ask for the factor: such an account is refused.
    let fed = Fed::new().await;
    fed.federated_client("sso-app", |_| {}).await;
    let subject = fed
        .idp
        .access_token("idp-bob", "bob@example.org", "fhirgate-at-idp", false);
    let refused = exchange(
        &fed,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("client_id", "sso-app"),
            ("subject_token", &subject),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
        ],
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert_eq!(refused.body["error"], "invalid_grant");
    assert_eq!(
        refused.body["error_description"],
        "The account uses a second factor: sign in interactively"
    );
}

#[tokio::test]
async fn a_callback_without_iss_is_refused_when_the_provider_always_sends_it() {
    let fed = Fed::with(FakeIdpOptions::default(), ReqwestOptions::default(), |p| {
        p.iss_parameter_supported = true
    })
    .await;
    let redirect = fed.redirect_for("alice@example.org").await;
    let mut callback = fed.callback_for(&redirect).await;
    assert!(callback.iss.is_some(), "the fake sends iss");
    callback.iss = None;
    assert!(matches!(
        fed.callback(&callback).await,
        Err(LoginError::External(ExternalError::MissingIssuer))
    ));
    // A provider that does not announce it may leave it out.
    let fed = Fed::new().await;
    let redirect = fed.redirect_for("alice@example.org").await;
    let mut callback = fed.callback_for(&redirect).await;
    callback.iss = None;
    fed.callback(&callback).await.unwrap();
}

#[tokio::test]
async fn a_subject_matches_only_together_with_its_issuer() {
    // Two providers of one project may both call someone "1234": Medplum matched `sub` alone.
    let fed = Fed::new().await;
    fed.federated_client("sub-app", |p| p.use_subject = true)
        .await;
    let mut dave = fed
        .f
        .store
        .membership(&fhirgate::model::MembershipId::new("m-dave"))
        .await
        .unwrap()
        .unwrap();
    dave.external_id = Some("1234".into());
    dave.external_issuer = Some("https://another-provider.example".into());
    fed.f.store.put_membership(&dave).await.unwrap();
    let mut request = fed.f.request();
    request.client_id = Some("sub-app".into());
    request.scope = Some("openid user/*.rs".into());
    fed.idp
        .set_next_login(NextLogin::user("1234", "dave@example.org"));
    let redirect = fed.redirect_with(request.clone(), "dave@example.org").await;
    let callback = fed.callback_for(&redirect).await;
    assert!(matches!(
        fed.callback(&callback).await,
        Err(LoginError::External(ExternalError::UnknownIdentity))
    ));
    // The same subject at this provider's issuer is dave.
    dave.external_issuer = Some(fed.idp.issuer());
    fed.f.store.put_membership(&dave).await.unwrap();
    let redirect = fed.redirect_with(request, "dave@example.org").await;
    let callback = fed.callback_for(&redirect).await;
    assert_eq!(user_of(&fed.callback(&callback).await.unwrap()), "dave");
}

#[tokio::test]
async fn federated_starts_per_address_are_limited() {
    // Each start stores a login before anyone authenticated: one address cannot fill the
    // store with them.
    let fed = Fed::new().await;
    let app = fed.app();
    let start = format!(
        "/auth/external/start?domain=example.org&state={}",
        url::form_urlencoded::byte_serialize(
            json!({"codeChallenge": CHALLENGE, "codeChallengeMethod": "S256"})
                .to_string()
                .as_bytes()
        )
        .collect::<String>()
    );
    for _ in 0..30 {
        let (status, _, _) = send(&app, get(&start)).await;
        assert_eq!(status, StatusCode::FOUND);
    }
    let stored = fed.f.store.login_count();
    let (status, _, body) = send(&app, get(&start)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(fed.f.store.login_count(), stored);
    // A waiting login lives ten minutes, not the fifteen of a signed-in one.
    let waiting = fed.f.store.snapshot_logins();
    assert!(
        waiting
            .iter()
            .all(|r| r.expires_at - r.created_at == fhirgate::login::EXTERNAL_LIFETIME)
    );
    fed.f.clock.advance(time::Duration::minutes(1));
    let (status, _, _) = send(&app, get(&start)).await;
    assert_eq!(status, StatusCode::FOUND);
}
