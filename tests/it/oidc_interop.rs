//! Interoperability with an OpenID Connect relying party nobody here wrote: the
//! `openidconnect` crate (RustCrypto-based JOSE, independent of our aws-lc signer) runs
//! discovery, the authorization code flow with PKCE and a nonce, ID token validation
//! (signature from our JWKS, `iss`, `aud`, `nonce`, `at_hash`), UserInfo and refresh — talking
//! to the engine through its custom HTTP client hook.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;

use crate::common::*;
use fhirgate::Engine;
use fhirgate::login::{Method, ProfileChoice};
use fhirgate::oauth::{AuthorizeOutcome, AuthorizeRequest, Form, OAuthResponse, TokenRequest};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest,
    HttpResponse, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope,
    TokenResponse, http,
};

/// An HTTP failure in the hook (never expected).
#[derive(Debug)]
struct HookError(String);
impl std::fmt::Display for HookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for HookError {}

fn to_http(r: OAuthResponse) -> HttpResponse {
    let mut builder = http::Response::builder().status(r.status);
    for (name, value) in &r.headers {
        builder = builder.header(*name, value);
    }
    builder.body(serde_json::to_vec(&r.body).unwrap()).unwrap()
}

/// Routes a relying-party request to the engine, as the HTTP layer will.
async fn route(engine: Engine, request: HttpRequest) -> Result<HttpResponse, HookError> {
    let path = request.uri().path().to_owned();
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let json = |body: serde_json::Value| to_http(OAuthResponse::json(200, body));
    Ok(match path.as_str() {
        "/.well-known/openid-configuration" => json(engine.discovery().openid_configuration()),
        "/.well-known/jwks.json" => json(engine.keys().jwks()),
        "/oauth2/token" => {
            let form = match Form::parse(request.body()) {
                Ok(form) => form,
                Err(e) => return Ok(to_http(e.to_response())),
            };
            let mut token_request = TokenRequest::from_form(form);
            token_request.authorization = header("authorization");
            to_http(engine.token(token_request).await)
        }
        "/oauth2/userinfo" => {
            let bearer = header("authorization").unwrap_or_default();
            let token = bearer
                .strip_prefix("Bearer ")
                .unwrap_or_default()
                .to_owned();
            to_http(engine.userinfo(&token).await)
        }
        other => return Err(HookError(format!("unexpected path {other}"))),
    })
}

/// What the sign-in page does with the parameters the authorization endpoint sent it: run
/// the login with them (here: alice's password), then send the browser back to the client.
async fn sign_in(f: &Fixture, sign_in_url: &url::Url) -> (String, String) {
    let q: HashMap<String, String> = sign_in_url.query_pairs().into_owned().collect();
    let login = f
        .engine
        .start(fhirgate::LoginRequest {
            client_id: q.get("client_id").cloned(),
            redirect_uri: q.get("redirect_uri").cloned(),
            scope: q.get("scope").cloned(),
            nonce: q.get("nonce").cloned(),
            code_challenge: q.get("code_challenge").cloned(),
            code_challenge_method: q.get("code_challenge_method").cloned(),
            ..fhirgate::LoginRequest::default()
        })
        .await
        .unwrap();
    let Method::Password(login) = login.method("alice@example.org").await.unwrap() else {
        panic!()
    };
    let login = expect_profile(login.password(PASSWORD).await.unwrap());
    let ProfileChoice::Chosen(login) = login.choose_if_single().await.unwrap() else {
        panic!()
    };
    let (login, code) = login.grant(None).await.unwrap();
    let cookie = login.sso_session().unwrap().expose().to_owned();
    (code.expose().to_owned(), cookie)
}

#[tokio::test]
async fn openidconnect_relying_party_completes_the_flow() {
    let f = Fixture::new().await;
    // The relying party checks times against the real clock.
    f.clock.set(time::OffsetDateTime::now_utc());
    let engine = f.engine.clone();
    let http_client = move |request: HttpRequest| {
        let engine = engine.clone();
        async move { route(engine, request).await }
    };

    // Discovery (metadata + JWKS).
    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new(ISSUER.to_owned()).unwrap(),
        &http_client,
    )
    .await
    .unwrap();
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new("confidential".to_owned()),
        Some(ClientSecret::new(CLIENT_SECRET.to_owned())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap());

    // Authorization request with PKCE S256 and a nonce.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".to_owned()))
        .add_scope(Scope::new("offline_access".to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    let request = AuthorizeRequest::parse(authorize_url.query().unwrap());
    let AuthorizeOutcome::SignIn(sign_in_url) = f.engine.authorize(&request, None).await else {
        panic!("no session yet: the browser must sign in");
    };
    let (code, cookie) = sign_in(&f, &sign_in_url).await;

    // Code exchange and ID token validation by the relying party.
    let verifier_alg = vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256];
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http_client)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an ID token for the openid scope");
    let id_verifier = client
        .id_token_verifier()
        .set_allowed_algs(verifier_alg.clone());
    let claims = id_token.claims(&id_verifier, &nonce).unwrap();
    assert_eq!(claims.subject().as_str(), "alice");
    assert_eq!(claims.issuer().as_str(), ISSUER);
    assert!(claims.auth_time().is_some());
    let expected_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&id_verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected_hash));
    assert_eq!(
        claims.email().map(|e| e.as_str()),
        Some("alice@example.org")
    );

    // UserInfo: the same subject.
    let userinfo: CoreUserInfoClaims = client
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .unwrap()
        .request_async(&http_client)
        .await
        .unwrap();
    assert_eq!(userinfo.subject().as_str(), "alice");

    // Refresh: a new refresh token, and an ID token that still validates.
    let refreshed = client
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .unwrap()
        .request_async(&http_client)
        .await
        .unwrap();
    assert_ne!(
        refreshed.refresh_token().unwrap().secret(),
        tokens.refresh_token().unwrap().secret()
    );
    let refreshed_id = refreshed.id_token().unwrap();
    let refreshed_claims = refreshed_id
        .claims(&id_verifier, |_: Option<&Nonce>| Ok(()))
        .unwrap();
    assert_eq!(refreshed_claims.subject().as_str(), "alice");
    assert_eq!(refreshed_claims.auth_time(), claims.auth_time());

    // Single sign-on: prompt=none with the session cookie returns straight to the client,
    // with our `state` echoed and `iss` (RFC 9207); the relying party redeems that code too.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, csrf2, nonce2) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_prompt(openidconnect::core::CoreAuthPrompt::None)
        .set_pkce_challenge(challenge)
        .url();
    let request = AuthorizeRequest::parse(authorize_url.query().unwrap());
    let AuthorizeOutcome::Redirect(back) = f.engine.authorize(&request, Some(&cookie)).await else {
        panic!("a live session signs on silently");
    };
    let q: HashMap<String, String> = back.query_pairs().into_owned().collect();
    assert_eq!(&q["state"], csrf2.secret());
    assert_ne!(csrf2.secret(), csrf.secret());
    assert_eq!(q["iss"], ISSUER);
    let tokens = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http_client)
        .await
        .unwrap();
    let claims2 = tokens
        .id_token()
        .unwrap()
        .claims(&id_verifier, &nonce2)
        .unwrap();
    assert_eq!(claims2.subject(), claims.subject());
    assert_eq!(claims2.auth_time(), claims.auth_time());
}
