//! Replays, byte for byte in shape, the request sequence Medplum's TypeScript client
//! (`@medplum/core` `MedplumClient`) sends for a password login with MFA and profile
//! selection, then `processCode`, `/auth/me`, refresh and sign-out
//! (`../shared/spec/medplum-client-wire.md`). Medplum's clients must work unchanged.
#![cfg(feature = "axum")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use common::*;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn json_post(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn form_post(path: &str, body: &str, bearer: Option<&str>) -> Request<Body> {
    let mut request =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(token) = bearer {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn medplum_typescript_client_password_mfa_profile_code_me_refresh_signout() {
    let f = Fixture::new().await;
    let app = fhirgate::http::router(f.engine.clone());

    // 1. startLogin: POST /auth/login with an empty clientId and a generated S256 challenge.
    //    (`scope` is sent when the app passes one; Medplum's apps ask for offline access.)
    let (status, body) = call(
        &app,
        json_post(
            "/auth/login",
            &json!({
                "email": "bob@example.org",
                "password": PASSWORD,
                "codeChallengeMethod": "S256",
                "codeChallenge": CHALLENGE,
                "clientId": "",
                "scope": "openid offline",
            }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["mfaRequired"], true);
    let login = body["login"].as_str().unwrap().to_owned();

    // 2. POST /auth/mfa/verify {login, token}.
    let (status, body) = call(
        &app,
        json_post(
            "/auth/mfa/verify",
            &json!({"login": login, "token": f.totp_now(0)}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let memberships = body["memberships"].as_array().unwrap();
    assert_eq!(memberships.len(), 2);
    assert_eq!(body["login"], login.as_str());

    // 3. POST /auth/profile {login, profile}.
    let (status, body) = call(
        &app,
        json_post(
            "/auth/profile",
            &json!({"login": login, "profile": "m-bob-1"}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let code = body["code"].as_str().unwrap().to_owned();

    // 4. processCode: the empty client_id and the page's origin as redirect_uri.
    let form = format!(
        "grant_type=authorization_code&code={code}&client_id=&redirect_uri={}&code_verifier={VERIFIER}",
        url::form_urlencoded::byte_serialize(b"https://app.medplum.example/").collect::<String>()
    );
    let (status, tokens) = call(&app, form_post("/oauth2/token", &form, None)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(tokens["profile"]["reference"], "Practitioner/bob");
    assert_eq!(tokens["project"]["reference"], "Project/p1");
    // The client decodes the access token's payload unverified to read exp and login_id.
    let payload = access.split('.').nth(1).unwrap();
    use base64::Engine as _;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert!(claims["exp"].is_i64());
    assert!(claims["login_id"].is_string());

    // 5. GET /auth/me with the bearer token: profile, project, membership, config.
    let (status, me) = call(
        &app,
        Request::get("/auth/me")
            .header(header::AUTHORIZATION, format!("Bearer {access}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    for field in ["profile", "project", "membership", "config"] {
        assert!(me[field].is_object(), "/auth/me lacks {field}: {me}");
    }
    assert_eq!(me["profile"]["resourceType"], "Practitioner");
    assert_eq!(me["profile"]["id"], "bob");

    // 6. Refresh (no client_id configured), then sign out.
    let (status, refreshed) = call(
        &app,
        form_post(
            "/oauth2/token",
            &format!("grant_type=refresh_token&refresh_token={refresh}"),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let access = refreshed["access_token"].as_str().unwrap().to_owned();
    let (status, _) = call(&app, form_post("/oauth2/logout", "", Some(&access))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &app,
        Request::get("/auth/me")
            .header(header::AUTHORIZATION, format!("Bearer {access}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
