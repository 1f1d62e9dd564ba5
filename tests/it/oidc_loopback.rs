//! The `openidconnect` relying party against a running server over loopback HTTP:
//! discovery → authorize → sign-in (as the sign-in page does it) → token → UserInfo →
//! refresh, then single sign-on with the cookie.
#![cfg(feature = "axum")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::common::*;
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest, HttpResponse, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse, http,
};

#[derive(Debug)]
struct HookError(String);
impl std::fmt::Display for HookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for HookError {}

/// The relying party's HTTP client: reqwest over loopback, no redirects followed.
async fn send(client: reqwest::Client, request: HttpRequest) -> Result<HttpResponse, HookError> {
    let (parts, body) = request.into_parts();
    let mut outgoing = client
        .request(parts.method, parts.uri.to_string())
        .body(body);
    for (name, value) in &parts.headers {
        outgoing = outgoing.header(name, value);
    }
    let response = outgoing
        .send()
        .await
        .map_err(|e| HookError(e.to_string()))?;
    let mut builder = http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| HookError(e.to_string()))?;
    builder
        .body(bytes.to_vec())
        .map_err(|e| HookError(e.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openidconnect_relying_party_over_loopback() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let issuer = format!("http://{addr}");
    let mut config = config();
    config.oauth.issuer = issuer.clone();
    let f = Fixture::with_config(config).await;
    f.clock.set(time::OffsetDateTime::now_utc());
    let app = fhirgate::http::router(f.engine.clone());
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let http_client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let hook = {
        let http_client = http_client.clone();
        move |request: HttpRequest| send(http_client.clone(), request)
    };

    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.clone()).unwrap(), &hook)
            .await
            .unwrap();
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new("confidential".to_owned()),
        Some(ClientSecret::new(CLIENT_SECRET.to_owned())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("offline_access".to_owned()))
        .add_scope(Scope::new("email".to_owned()))
        .set_pkce_challenge(challenge)
        .url();

    // The browser: authorize → 302 to the sign-in page.
    let response = http_client
        .get(authorize_url.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{issuer}/signin?")),
        "{location}"
    );
    let sign_in = url::Url::parse(&location).unwrap();
    let q: HashMap<String, String> = sign_in.query_pairs().into_owned().collect();

    // The sign-in page: POST /auth/login with the request's parameters.
    let response = http_client
        .post(format!("{issuer}/auth/login"))
        .json(&serde_json::json!({
            "email": "alice@example.org",
            "password": PASSWORD,
            "clientId": q["client_id"],
            "redirectUri": q["redirect_uri"],
            "scope": q["scope"],
            "nonce": q["nonce"],
            "codeChallenge": q["code_challenge"],
            "codeChallengeMethod": q["code_challenge_method"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    let code = body["code"].as_str().unwrap().to_owned();
    assert_eq!(q["state"], *csrf.secret());

    // The relying party: code → tokens → ID token checks → UserInfo → refresh.
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&hook)
        .await
        .unwrap();
    let id_verifier = client
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let claims = tokens
        .id_token()
        .unwrap()
        .claims(&id_verifier, &nonce)
        .unwrap();
    assert_eq!(claims.subject().as_str(), "alice");
    let userinfo: CoreUserInfoClaims = client
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .unwrap()
        .request_async(&hook)
        .await
        .unwrap();
    assert_eq!(
        userinfo.email().map(|e| e.as_str()),
        Some("alice@example.org")
    );
    let refreshed = client
        .exchange_refresh_token(tokens.refresh_token().unwrap())
        .unwrap()
        .request_async(&hook)
        .await
        .unwrap();
    assert!(refreshed.refresh_token().is_some());

    // Single sign-on: prompt=none with the cookie goes straight back with a code.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_prompt(CoreAuthPrompt::None)
        .set_pkce_challenge(challenge)
        .url();
    let response = http_client
        .get(authorize_url.as_str())
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let back = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert!(back.as_str().starts_with(REDIRECT));
    let q: HashMap<String, String> = back.query_pairs().into_owned().collect();
    assert_eq!(q["state"], *csrf.secret());
    assert_eq!(q["iss"], issuer);
    let tokens = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&hook)
        .await
        .unwrap();
    let second = tokens
        .id_token()
        .unwrap()
        .claims(&id_verifier, &nonce)
        .unwrap();
    assert_eq!(second.subject(), claims.subject());
    server.abort();
}
