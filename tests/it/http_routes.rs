//! The Medplum-compatible routes, in process: every route's success and its main refusals
//! with the exact texts, and the edge (bodies, content types, sizes, methods, unknown
//! routes, no-store, CORS, cookies).
#![cfg(feature = "axum")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common::*;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use fhirgate::http::{HttpConfig, router_with};
use serde_json::{Value, json};
use tower::ServiceExt;

pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: axum::http::HeaderMap,
    pub(crate) body: Value,
    pub(crate) text: String,
}

pub(crate) fn app(f: &Fixture) -> Router {
    router_with(f.engine.clone(), {
        let mut config = HttpConfig::default();
        config.cors_origins = vec!["https://app.example.org".into()];
        config
    })
}

pub(crate) async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Reply {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text,
    }
}

pub(crate) async fn post_json(
    app: &Router,
    path: &str,
    body: Value,
    bearer: Option<&str>,
) -> Reply {
    let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = bearer {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    send(app, request.body(Body::from(body.to_string())).unwrap()).await
}

pub(crate) async fn get(app: &Router, path: &str, bearer: Option<&str>) -> Reply {
    let mut request = Request::get(path);
    if let Some(token) = bearer {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    send(app, request.body(Body::empty()).unwrap()).await
}

pub(crate) async fn post_form(
    app: &Router,
    path: &str,
    pairs: &[(&str, &str)],
    authorization: Option<String>,
) -> Reply {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let mut request =
        Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    send(app, request.body(Body::from(body)).unwrap()).await
}

/// The OperationOutcome text and expression of an `/auth/*` refusal.
pub(crate) fn outcome(reply: &Reply) -> (String, Option<String>) {
    let issue = &reply.body["issue"][0];
    assert_eq!(
        reply.body["resourceType"], "OperationOutcome",
        "{}",
        reply.text
    );
    (
        issue["details"]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        issue["expression"][0].as_str().map(str::to_owned),
    )
}

pub(crate) fn login_body(email: &str, password: &str) -> Value {
    json!({
        "email": email,
        "password": password,
        "clientId": "app",
        "redirectUri": REDIRECT,
        "scope": "openid user/Observation.rs",
        "codeChallenge": CHALLENGE,
        "codeChallengeMethod": "S256",
    })
}

/// alice through the public `app` client, to an access token.
pub(crate) async fn alice_token(app: &Router) -> Value {
    let reply = post_json(
        app,
        "/auth/login",
        login_body("alice@example.org", PASSWORD),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let code = reply.body["code"].as_str().unwrap().to_owned();
    let tokens = post_form(
        app,
        "/oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "app"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
        None,
    )
    .await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text);
    tokens.body
}

#[tokio::test]
async fn auth_login_answers_code_mfa_enrolment_and_refusals() {
    let f = Fixture::new().await;
    let app = app(&f);
    let reply = post_json(
        &app,
        "/auth/login",
        login_body("alice@example.org", PASSWORD),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body["login"].is_string());
    assert!(reply.body["code"].is_string());
    let cookie = reply.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("medplum-app="));
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");

    let reply = post_json(
        &app,
        "/auth/login",
        login_body("bob@example.org", PASSWORD),
        None,
    )
    .await;
    assert_eq!(reply.body["mfaRequired"], true);
    assert!(reply.body["code"].is_null());

    let reply = post_json(
        &app,
        "/auth/login",
        login_body("carol@example.org", PASSWORD),
        None,
    )
    .await;
    assert_eq!(reply.body["mfaEnrollRequired"], true);
    assert!(
        reply.body["enrollUri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );

    for (email, password) in [
        ("alice@example.org", "wrong password"),
        ("ghost@example.org", PASSWORD),
    ] {
        let reply = post_json(&app, "/auth/login", login_body(email, password), None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            outcome(&reply),
            ("Email or password is invalid".into(), None)
        );
    }
    let reply = post_json(
        &app,
        "/auth/login",
        login_body("not-an-email", PASSWORD),
        None,
    )
    .await;
    assert_eq!(
        outcome(&reply),
        (
            "Valid email address is required".into(),
            Some("email".into())
        )
    );
    let mut body = login_body("alice@example.org", PASSWORD);
    body["codeChallengeMethod"] = json!("plain");
    let reply = post_json(&app, "/auth/login", body, None).await;
    assert_eq!(outcome(&reply).1.as_deref(), Some("codeChallengeMethod"));
}

#[tokio::test]
async fn mfa_verify_and_profile_selection() {
    let f = Fixture::new().await;
    let app = app(&f);
    // bob without a client: TOTP, then two memberships to choose from.
    let body = json!({"email": "bob@example.org", "password": PASSWORD, "clientId": "",
        "codeChallenge": CHALLENGE, "codeChallengeMethod": "S256"});
    let reply = post_json(&app, "/auth/login", body, None).await;
    let login = reply.body["login"].as_str().unwrap().to_owned();

    let missing = post_json(&app, "/auth/mfa/verify", json!({"token": "123456"}), None).await;
    assert_eq!(
        outcome(&missing),
        ("Missing login".into(), Some("login".into()))
    );
    let wrong = post_json(
        &app,
        "/auth/mfa/verify",
        json!({"login": login, "token": "000000"}),
        None,
    )
    .await;
    assert_eq!(
        outcome(&wrong),
        ("Invalid MFA token".into(), Some("token".into()))
    );
    let status = get(&app, &format!("/auth/login/{login}"), None).await;
    assert_eq!(status.body["mfaRequired"], true);
    // The status request spent the handle in its URL: the login goes on under a new one.
    let spent = login;
    let login = status.body["login"].as_str().unwrap().to_owned();
    assert_ne!(login, spent);
    let dead = get(&app, &format!("/auth/login/{spent}"), None).await;
    assert_eq!(
        (dead.status, outcome(&dead).0.as_str()),
        (StatusCode::NOT_FOUND, "Not found")
    );

    let reply = post_json(
        &app,
        "/auth/mfa/verify",
        json!({"login": login, "token": f.totp_now(0)}),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let memberships = reply.body["memberships"].as_array().unwrap();
    assert_eq!(memberships.len(), 2);
    assert!(memberships.iter().any(|m| m["id"] == "m-bob-2"
        && m["profile"]["reference"] == "Practitioner/bob2"
        && m["project"]["reference"] == "Project/p2"));
    let verified = login;
    let login = reply.body["login"].as_str().unwrap().to_owned();

    let again = post_json(
        &app,
        "/auth/mfa/verify",
        json!({"login": login, "token": f.totp_now(0)}),
        None,
    )
    .await;
    assert_eq!(outcome(&again).0, "Login already verified");
    // The handle that passed the factor is dead.
    let stale = post_json(
        &app,
        "/auth/profile",
        json!({"login": verified, "profile": "m-bob-2"}),
        None,
    )
    .await;
    assert_eq!(outcome(&stale).0, "Not found");
    let not_found = post_json(
        &app,
        "/auth/profile",
        json!({"login": login, "profile": "nope"}),
        None,
    )
    .await;
    assert_eq!(
        outcome(&not_found),
        ("Profile not found".into(), Some("profile".into()))
    );
    let chosen = post_json(
        &app,
        "/auth/profile",
        json!({"login": login, "profile": "m-bob-2"}),
        None,
    )
    .await;
    assert_eq!(chosen.status, StatusCode::OK, "{}", chosen.text);
    assert!(chosen.body["code"].is_string());
    // No client: no single-sign-on cookie.
    assert!(chosen.headers.get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn mfa_login_enroll_scope_and_status() {
    let f = Fixture::new().await;
    let app = app(&f);
    let reply = post_json(
        &app,
        "/auth/login",
        login_body("carol@example.org", PASSWORD),
        None,
    )
    .await;
    let login = reply.body["login"].as_str().unwrap().to_owned();
    let uri = reply.body["enrollUri"].as_str().unwrap();
    let totp = totp_rs::Totp::from_url(uri).unwrap();
    let code = totp
        .generate(f.engine.now().unix_timestamp() as u64)
        .to_string();
    let reply = post_json(
        &app,
        "/auth/mfa/login-enroll",
        json!({"login": login, "token": code}),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.body["code"].is_string());
    let login = reply.body["login"].as_str().unwrap().to_owned();
    // /auth/scope after the code: narrows what that code grants; no second code, no cookie.
    let narrowed = post_json(
        &app,
        "/auth/scope",
        json!({"login": login, "scope": "openid"}),
        None,
    )
    .await;
    assert_eq!(narrowed.status, StatusCode::OK, "{}", narrowed.text);
    assert!(narrowed.body["code"].is_null(), "{}", narrowed.text);
    assert!(narrowed.headers.get(header::SET_COOKIE).is_none());
    assert_eq!(narrowed.body["scope"], "openid");
    let login = narrowed.body["login"].as_str().unwrap().to_owned();
    let wider = post_json(
        &app,
        "/auth/scope",
        json!({"login": login, "scope": "openid user/Observation.rs"}),
        None,
    )
    .await;
    assert_eq!(outcome(&wider).1.as_deref(), Some("scope"));
    let missing = post_json(&app, "/auth/scope", json!({"login": login}), None).await;
    assert_eq!(
        outcome(&missing),
        ("Missing scope".into(), Some("scope".into()))
    );
    let mut body = login_body("alice@example.org", PASSWORD);
    body["clientId"] = json!("nobody");
    let no_client = post_json(&app, "/auth/login", body, None).await;
    assert_eq!(
        (no_client.status, outcome(&no_client).0.as_str()),
        (StatusCode::NOT_FOUND, "Not found")
    );
    let unknown = get(&app, "/auth/login/not-a-handle", None).await;
    assert_eq!(outcome(&unknown).0, "Not found");
}

#[tokio::test]
async fn auth_method_and_client_info() {
    let f = Fixture::new().await;
    f.store
        .put_domain(&fhirgate::model::DomainConfiguration {
            domain: "hospital.example".into(),
            identity_provider: Some(fhirgate::model::IdentityProvider {
                issuer: None,
                authorize_url: "https://idp.hospital.example/authorize".parse().unwrap(),
                token_url: "https://idp.hospital.example/token".parse().unwrap(),
                userinfo_url: None,
                jwks_uri: None,
                client_id: "fg".into(),
                client_secret: None,
                token_auth_method: Default::default(),
                use_subject: false,
                scope: "openid email".into(),
                access_token_audiences: Vec::new(),
                iss_parameter_supported: false,
                introspection_url: None,
            }),
        })
        .await
        .unwrap();
    use fhirgate::store::DirectoryAdmin;
    let app = app(&f);
    let reply = post_json(
        &app,
        "/auth/method",
        json!({"email": "Nurse@Hospital.example"}),
        None,
    )
    .await;
    assert_eq!(reply.body["domain"], "hospital.example");
    // Our start route for the domain (Medplum's client appends its request as `state`).
    assert_eq!(
        reply.body["authorizeUrl"],
        "https://auth.example.org/auth/external/start?domain=hospital.example"
    );
    let reply = post_json(
        &app,
        "/auth/method",
        json!({"email": "alice@example.org"}),
        None,
    )
    .await;
    assert_eq!(reply.body, json!({}));
    let reply = get(&app, "/auth/clientinfo/app", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = get(&app, "/auth/clientinfo/nobody", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(outcome(&reply).0, "Not found");
}

#[tokio::test]
async fn me_revoke_and_account_mfa_with_a_bearer_token() {
    let f = Fixture::new().await;
    // The `app` client is the project's own application here: its tokens manage the account.
    use fhirgate::store::{Directory, DirectoryAdmin};
    let mut own = f.store.client(&"app".into()).await.unwrap().unwrap();
    own.first_party = true;
    f.store.put_client(&own).await.unwrap();
    let app = app(&f);
    let tokens = alice_token(&app).await;
    let access = tokens["access_token"].as_str().unwrap();
    let me = get(&app, "/auth/me", Some(access)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.body["user"]["email"], "alice@example.org");
    assert_eq!(me.body["project"]["id"], "p1");
    assert_eq!(me.body["membership"]["id"], "m-alice");
    assert_eq!(me.body["profile"]["resourceType"], "Practitioner");
    let sessions = me.body["security"]["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    let unauthorized = get(&app, "/auth/me", None).await;
    assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);
    assert!(unauthorized.headers.contains_key(header::WWW_AUTHENTICATE));

    // Account MFA: status only reports; setup shows an enrolment URI once; enroll confirms.
    let status = get(&app, "/auth/mfa/status", Some(access)).await;
    assert_eq!(
        status.body,
        json!({"enrolled": false, "mfaRequired": false, "enrolledMethods": [],
               "allowedMethods": ["totp", "email"]})
    );
    let setup = post_json(&app, "/auth/mfa/setup", json!({}), Some(access)).await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.text);
    assert!(
        setup.body["enrollQrCode"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );
    let totp = totp_rs::Totp::from_url(setup.body["enrollUri"].as_str().unwrap()).unwrap();
    let code = totp
        .generate(f.engine.now().unix_timestamp() as u64)
        .to_string();
    let wrong = post_json(
        &app,
        "/auth/mfa/enroll",
        json!({"token": "000000"}),
        Some(access),
    )
    .await;
    assert_eq!(outcome(&wrong).0, "Invalid token");
    let ok = post_json(
        &app,
        "/auth/mfa/enroll",
        json!({"token": code}),
        Some(access),
    )
    .await;
    assert_eq!(outcome(&ok).0, "All OK");
    assert_eq!(
        get(&app, "/auth/mfa/status", Some(access)).await.body,
        json!({"enrolled": true, "mfaRequired": false, "enrolledMethods": ["totp"],
               "allowedMethods": ["totp", "email"]})
    );

    // Revoke: someone else's login id is "Not found"; one's own ends the session.
    let other = post_json(
        &app,
        "/auth/revoke",
        json!({"loginId": "not-mine"}),
        Some(access),
    )
    .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let id = sessions[0]["id"].as_str().unwrap();
    let revoked = post_json(&app, "/auth/revoke", json!({"loginId": id}), Some(access)).await;
    assert_eq!(outcome(&revoked).0, "All OK");
    assert_eq!(
        get(&app, "/auth/me", Some(access)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn oauth2_routes() {
    let f = Fixture::new().await;
    let app = app(&f);
    // Authorize: to the sign-in page (302), after a POST 303; bad redirect answered directly.
    let query = format!(
        "/oauth2/authorize?response_type=code&client_id=app&redirect_uri={}&scope=openid&state=s1&code_challenge={CHALLENGE}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let reply = get(&app, &query, None).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert!(
        reply.headers[header::LOCATION]
            .to_str()
            .unwrap()
            .starts_with("https://auth.example.org/signin?")
    );
    let form = query.split_once('?').unwrap().1.to_owned();
    let posted = send(
        &app,
        Request::post("/oauth2/authorize")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form))
            .unwrap(),
    )
    .await;
    assert_eq!(posted.status, StatusCode::SEE_OTHER);
    let bad = get(&app, "/oauth2/authorize?client_id=app&redirect_uri=https%3A%2F%2Fevil.example%2F&response_type=code", None).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.text, "Invalid redirect URI");
    assert!(bad.headers.get(header::LOCATION).is_none());

    // Token, UserInfo, introspection, revocation, logout.
    let tokens = alice_token(&app).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let info = get(&app, "/oauth2/userinfo", Some(&access)).await;
    assert_eq!(info.body["sub"], "alice");
    let introspected = post_form(
        &app,
        "/oauth2/introspect",
        &[("token", &access)],
        Some(basic("confidential", CLIENT_SECRET)),
    )
    .await;
    assert_eq!(introspected.body["active"], true);
    let logout = get(&app, "/oauth2/logout", Some(&access)).await;
    assert_eq!(outcome(&logout).0, "All OK");
    assert!(
        logout.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        get(&app, "/oauth2/userinfo", Some(&access)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let revoked = post_form(
        &app,
        "/oauth2/revoke",
        &[("token", "whatever"), ("client_id", "app")],
        None,
    )
    .await;
    assert_eq!(revoked.status, StatusCode::OK);

    // Token endpoint refusals over HTTP.
    let json_body = post_json(
        &app,
        "/oauth2/token",
        json!({"grant_type": "client_credentials"}),
        None,
    )
    .await;
    assert_eq!(json_body.status, StatusCode::BAD_REQUEST);
    assert_eq!(json_body.body["error"], "invalid_request");
    let wrong = post_form(
        &app,
        "/oauth2/token",
        &[("grant_type", "authorization_code"), ("code", "x")],
        Some(basic("confidential", "nope")),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.headers[header::WWW_AUTHENTICATE],
        "Basic realm=\"fhirgate\""
    );
    let duplicated = send(
        &app,
        Request::post("/oauth2/token")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(
                "grant_type=refresh_token&refresh_token=a&refresh_token=b",
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(duplicated.body["error"], "invalid_request");
}

#[tokio::test]
async fn well_known_documents() {
    let f = Fixture::new().await;
    let app = app(&f);
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/.well-known/smart-configuration",
        "/.well-known/jwks.json",
    ] {
        let reply = get(&app, path, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(
            reply.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
    }
    assert_eq!(
        get(&app, "/.well-known/openid-configuration", None)
            .await
            .body["issuer"],
        ISSUER
    );
}

#[tokio::test]
async fn the_edge_answers_bad_requests_cleanly() {
    let f = Fixture::new().await;
    let app = app(&f);
    // Malformed JSON, wrong shape, wrong content type, oversized body.
    let malformed = send(
        &app,
        Request::post("/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{\"email\": "))
            .unwrap(),
    )
    .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(outcome(&malformed).0, "Malformed JSON body");
    let shape = post_json(&app, "/auth/login", json!({"email": 42}), None).await;
    assert_eq!(shape.status, StatusCode::BAD_REQUEST);
    assert!(outcome(&shape).0.starts_with("Invalid request body"));
    // The OAuth fields shared by /auth/login, /auth/google and the external start state.
    let shape = post_json(&app, "/auth/login", json!({"clientId": ["a"]}), None).await;
    assert_eq!(shape.status, StatusCode::BAD_REQUEST);
    assert!(outcome(&shape).0.starts_with("Invalid request body"));
    let text = send(
        &app,
        Request::post("/auth/login")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("hi"))
            .unwrap(),
    )
    .await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = json!({"email": "alice@example.org", "password": "p".repeat(100_000)});
    let big = post_json(&app, "/auth/login", huge, None).await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(outcome(&big).0, "Request body too large");
    // Unknown routes and wrong methods.
    let missing = get(&app, "/auth/nothing-here", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(outcome(&missing).0, "Not found");
    let method = get(&app, "/auth/login", None).await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(outcome(&method).0, "Method not allowed");
    // no-store everywhere.
    for reply in [&malformed, &text, &big, &missing, &method] {
        assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    }
}

#[tokio::test]
async fn cors_for_allowed_origins_only_and_never_on_authorize() {
    let f = Fixture::new().await;
    let app = app(&f);
    let preflight = send(
        &app,
        Request::options("/auth/login")
            .header(header::ORIGIN, "https://app.example.org")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(preflight.status, StatusCode::NO_CONTENT);
    assert_eq!(
        preflight.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.org"
    );
    assert_eq!(
        preflight.headers[header::ACCESS_CONTROL_ALLOW_CREDENTIALS],
        "true"
    );
    let stranger = send(
        &app,
        Request::get("/.well-known/jwks.json")
            .header(header::ORIGIN, "https://evil.example")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(
        stranger
            .headers
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );
    let authorize = send(
        &app,
        Request::get("/oauth2/authorize?client_id=app")
            .header(header::ORIGIN, "https://app.example.org")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert!(
        authorize
            .headers
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none()
    );
}

// ---------------------------------------------------------------------------------------
// Attacks on login handles and account management (issue 15).

#[tokio::test]
async fn a_leaked_login_handle_yields_no_second_code_or_cookie() {
    // Medplum (and this crate before): GET /auth/login/{login} on a login with a code handed
    // out a fresh code and the single-sign-on cookie, and /auth/scope did too — so whoever
    // saw the handle (a log, a Referer, the history) got the victim's tokens.
    let f = Fixture::new().await;
    let app = app(&f);
    let reply = post_json(
        &app,
        "/auth/login",
        login_body("alice@example.org", PASSWORD),
        None,
    )
    .await;
    assert!(reply.body["code"].is_string(), "{}", reply.text);
    assert!(
        reply.headers.get(header::SET_COOKIE).is_some(),
        "the one cookie"
    );
    let handle = reply.body["login"].as_str().unwrap().to_owned();

    let status = get(&app, &format!("/auth/login/{handle}"), None).await;
    assert_eq!(status.status, StatusCode::BAD_REQUEST, "{}", status.text);
    assert_eq!(outcome(&status).0, "Login already granted");
    assert!(status.body["code"].is_null());
    assert!(status.headers.get(header::SET_COOKIE).is_none());

    let scope = post_json(
        &app,
        "/auth/scope",
        json!({"login": handle, "scope": "openid"}),
        None,
    )
    .await;
    assert!(scope.body["code"].is_null(), "{}", scope.text);
    assert!(scope.headers.get(header::SET_COOKIE).is_none());
    let next = scope.body["login"].as_str().unwrap().to_owned();
    for path in ["/auth/profile", "/auth/scope"] {
        for h in [&handle, &next] {
            let again = post_json(
                &app,
                path,
                json!({"login": h, "profile": "m-alice", "scope": "openid"}),
                None,
            )
            .await;
            assert!(again.body["code"].is_null(), "{path}: {}", again.text);
            assert!(again.headers.get(header::SET_COOKIE).is_none(), "{path}");
        }
    }
}

#[tokio::test]
async fn login_handles_rotate_at_every_stage_change() {
    let f = Fixture::new().await;
    let app = app(&f);
    let body = json!({"email": "bob@example.org", "password": PASSWORD, "clientId": "",
        "codeChallenge": CHALLENGE, "codeChallengeMethod": "S256"});
    let first = post_json(&app, "/auth/login", body, None).await;
    let h1 = first.body["login"].as_str().unwrap().to_owned();
    let second = post_json(
        &app,
        "/auth/mfa/verify",
        json!({"login": h1, "token": f.totp_now(0)}),
        None,
    )
    .await;
    let h2 = second.body["login"].as_str().unwrap().to_owned();
    let third = post_json(
        &app,
        "/auth/profile",
        json!({"login": h2, "profile": "m-bob-1"}),
        None,
    )
    .await;
    let h3 = third.body["login"].as_str().unwrap().to_owned();
    assert!(third.body["code"].is_string());
    assert!(h1 != h2 && h2 != h3 && h1 != h3);
    // Every earlier handle is dead, whatever it is presented to.
    for stale in [&h1, &h2] {
        let status = get(&app, &format!("/auth/login/{stale}"), None).await;
        assert_eq!(outcome(&status).0, "Not found");
    }
}

/// A token for alice through `client` (registered with `first_party`).
pub(crate) async fn alice_token_through(f: &Fixture, app: &Router, first_party: bool) -> String {
    use fhirgate::store::{Directory, DirectoryAdmin};
    let mut client = f.store.client(&"app".into()).await.unwrap().unwrap();
    client.first_party = first_party;
    f.store.put_client(&client).await.unwrap();
    alice_token(app).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_third_party_apps_token_cannot_replace_the_second_factor_or_end_sessions() {
    // Medplum accepted any bearer token here: a third-party app holding
    // `patient/Observation.rs` could read the enrolment secret, enrol its own TOTP, disable
    // the factor, list and revoke the user's sessions.
    let f = Fixture::new().await;
    let app = app(&f);
    let third_party = alice_token_through(&f, &app, false).await;
    for (path, body) in [
        ("/auth/mfa/setup", json!({})),
        ("/auth/mfa/enroll", json!({"token": "123456"})),
        ("/auth/mfa/disable", json!({"token": "123456"})),
        ("/auth/revoke", json!({"loginId": "any"})),
    ] {
        let reply = post_json(&app, path, body, Some(&third_party)).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{path}: {}",
            reply.text
        );
        assert_eq!(outcome(&reply).0, fhirgate::http::FIRST_PARTY_REQUIRED);
    }
    let status = get(&app, "/auth/mfa/status", Some(&third_party)).await;
    assert_eq!(status.status, StatusCode::FORBIDDEN);
    // /auth/me still answers (Medplum's SDK needs it), without the session list.
    let me = get(&app, "/auth/me", Some(&third_party)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["security"]["sessions"], json!([]));
    // Nothing changed on the account.
    use fhirgate::store::Directory;
    let alice = f.store.user(&"alice".into()).await.unwrap().unwrap();
    assert_eq!(alice.totp, fhirgate::model::TotpState::None);

    // The project's own application may; and its status call creates no secret.
    let own = alice_token_through(&f, &app, true).await;
    let status = get(&app, "/auth/mfa/status", Some(&own)).await;
    assert_eq!(status.status, StatusCode::OK);
    assert!(status.body.get("enrollUri").is_none());
    let alice = f.store.user(&"alice".into()).await.unwrap().unwrap();
    assert_eq!(alice.totp, fhirgate::model::TotpState::None);
    let me = get(&app, "/auth/me", Some(&own)).await;
    assert!(
        !me.body["security"]["sessions"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn me_lists_the_projects_memberships_and_names_each_sessions_browser() {
    use fhirgate::store::{Directory, DirectoryAdmin};
    let f = Fixture::new().await;
    let mut own = f.store.client(&"app".into()).await.unwrap().unwrap();
    own.first_party = true;
    f.store.put_client(&own).await.unwrap();
    let mut request = f.request();
    request.user_agent = Some(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.0; rv:121.0) Gecko/20100101 Firefox/121.0"
            .into(),
    );
    let login = expect_profile(
        f.password_with(request, "alice@example.org", PASSWORD)
            .await
            .unwrap(),
    );
    let fhirgate::login::ProfileChoice::Chosen(login) = login.choose_if_single().await.unwrap()
    else {
        panic!("one membership")
    };
    let (_, code) = login.grant(None).await.unwrap();
    let tokens = f.redeem("app", code.expose()).await;
    let access = tokens.body["access_token"].as_str().unwrap();
    let me = get(&app(&f), "/auth/me", Some(access)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    let session = &me.body["security"]["sessions"][0];
    assert_eq!(
        (session["browser"].as_str(), session["os"].as_str()),
        (Some("Firefox"), Some("macOS"))
    );
    assert_eq!(
        me.body["security"]["memberships"],
        json!([{"resourceType": "ProjectMembership", "id": "m-alice",
                "profile": {"reference": "Practitioner/alice"}, "admin": false}])
    );
}
