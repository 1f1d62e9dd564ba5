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

use crate::common::*;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
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
    // Every step answers a new handle (the SDK's SignInForm keeps `response.login`); the
    // one that continued this step is dead.
    assert_ne!(body["login"], login.as_str());
    let login = body["login"].as_str().unwrap().to_owned();

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

/// A backend client of project p1 with its own membership: `client_secret_post` or
/// `client_secret_basic`, allowed patient, user and system scopes, and an optional
/// `defaultScope`.
async fn backend_client(
    f: &Fixture,
    id: &str,
    method: fhirgate::model::ClientAuthMethod,
    default_scope: Option<&str>,
) {
    use fhirgate::model::*;
    use fhirgate::store::DirectoryAdmin;
    let mut client = ClientApplication::new(ClientId::new(id), ProjectId::new("p1"));
    client.auth_method = method;
    client.secret = Some(ClientSecretHash::of(CLIENT_SECRET));
    client.allowed_scopes =
        "openid fhirUser offline_access launch/patient patient/*.rs user/*.cruds system/*.rs"
            .into();
    client.default_scope = default_scope.map(str::to_owned);
    f.store.put_client(&client).await.unwrap();
    f.membership(
        &format!("m-{id}"),
        "p1",
        id,
        &format!("ClientApplication/{id}"),
    )
    .await;
}

/// `MedplumClient.startClientLogin(clientId, clientSecret)`: `fetchTokens` with
/// `URLSearchParams({grant_type, client_id, client_secret})`, and, after `setBasicAuth`, the
/// same credentials again in `Authorization: Basic base64(clientId ":" clientSecret)`.
fn start_client_login(id: &str, secret: &str, basic_auth: Option<(&str, &str)>) -> Request<Body> {
    use base64::Engine as _;
    let mut request = Request::post("/oauth2/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some((basic_id, basic_secret)) = basic_auth {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{basic_id}:{basic_secret}"));
        request = request.header(header::AUTHORIZATION, format!("Basic {encoded}"));
    }
    request
        .body(Body::from(format!(
            "grant_type=client_credentials&client_id={id}&client_secret={secret}"
        )))
        .unwrap()
}

#[tokio::test]
async fn start_client_login_without_a_scope_gets_the_allowed_scopes_without_patient_ones() {
    use fhirgate::model::ClientAuthMethod;
    let f = Fixture::new().await;
    backend_client(&f, "backend", ClientAuthMethod::ClientSecretPost, None).await;
    backend_client(
        &f,
        "backend-default",
        ClientAuthMethod::ClientSecretPost,
        Some("system/Patient.rs patient/Observation.rs"),
    )
    .await;
    let app = fhirgate::http::router(f.engine.clone());

    let (status, body) = call(&app, start_client_login("backend", CLIENT_SECRET, None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let scope = body["scope"].as_str().unwrap();
    assert_eq!(
        scope, "openid fhirUser offline_access launch/patient user/*.cruds system/*.rs",
        "every allowed scope but the patient/ ones"
    );
    assert!(body["refresh_token"].is_null());
    assert!(body["patient"].is_null());
    let principal = f
        .engine
        .verifier()
        .verify(body["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert!(!principal.scope.to_string().contains("patient/"));

    // A defaultScope is the default, again without its patient/ part.
    let (status, body) = call(
        &app,
        start_client_login("backend-default", CLIENT_SECRET, None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "system/Patient.rs");

    // Asked for: patient/ scopes beside others are dropped and the answer says so ...
    let form = format!(
        "grant_type=client_credentials&client_id=backend&client_secret={CLIENT_SECRET}\
         &scope=system%2FObservation.rs%20patient%2FObservation.rs"
    );
    let (status, body) = call(&app, form_post("/oauth2/token", &form, None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "system/Observation.rs");
    // ... and a request for nothing but patient/ scopes cannot be served.
    let form = format!(
        "grant_type=client_credentials&client_id=backend&client_secret={CLIENT_SECRET}\
         &scope=patient%2FObservation.rs"
    );
    let (status, body) = call(&app, form_post("/oauth2/token", &form, None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_scope");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("Missing patient context"),
        "{body}"
    );
    // A scope the client is not allowed stays invalid_scope.
    let form = format!(
        "grant_type=client_credentials&client_id=backend&client_secret={CLIENT_SECRET}\
         &scope=system%2FObservation.cruds"
    );
    let (status, body) = call(&app, form_post("/oauth2/token", &form, None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_scope");
}

#[tokio::test]
async fn set_basic_auth_sends_one_credential_twice_and_it_is_accepted() {
    use fhirgate::model::ClientAuthMethod;
    let f = Fixture::new().await;
    backend_client(
        &f,
        "basic-backend",
        ClientAuthMethod::ClientSecretBasic,
        None,
    )
    .await;
    backend_client(&f, "post-backend", ClientAuthMethod::ClientSecretPost, None).await;
    let app = fhirgate::http::router(f.engine.clone());

    // The SDK's exact request, for a client registered with either secret method.
    for id in ["basic-backend", "post-backend"] {
        let (status, body) = call(
            &app,
            start_client_login(id, CLIENT_SECRET, Some((id, CLIENT_SECRET))),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{id}: {body}");
        assert!(body["access_token"].is_string());
    }

    // Two different credentials are still two methods ...
    let (status, body) = call(
        &app,
        start_client_login(
            "basic-backend",
            "another-secret",
            Some(("basic-backend", CLIENT_SECRET)),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(
        body["error_description"],
        "Multiple client authentication methods in one request"
    );
    let (status, body) = call(
        &app,
        start_client_login(
            "post-backend",
            CLIENT_SECRET,
            Some(("basic-backend", CLIENT_SECRET)),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_request");

    // ... and one wrong credential sent twice is a wrong credential (401, Basic challenge).
    let (status, body) = call(
        &app,
        start_client_login(
            "basic-backend",
            "not-the-secret-0123456789",
            Some(("basic-backend", "not-the-secret-0123456789")),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(body["error_description"], "Invalid client");

    // A public or private_key_jwt client gains nothing from it.
    let (status, body) = call(
        &app,
        start_client_login("app", CLIENT_SECRET, Some(("app", CLIENT_SECRET))),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
}

/// Decodes a `data:image/png;base64,…` QR code with decoders nobody here wrote (`png`,
/// `rqrr`) and returns the text it carries.
fn decode_qr_data_url(url: &str) -> String {
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD
        .decode(url.strip_prefix("data:image/png;base64,").unwrap())
        .unwrap();
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (width, height) = (info.width as usize, info.height as usize);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        pixels[y * info.line_size + x]
    });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the picture");
    let (_, text) = grids[0].decode().unwrap();
    text
}

#[tokio::test]
async fn enrolment_answers_carry_a_qr_code_of_the_enrolment_uri() {
    let f = Fixture::new().await;
    let app = fhirgate::http::router(f.engine.clone());
    // carol must enrol at sign-in: Medplum's form needs enrollQrCode to show that step.
    let (status, body) = call(
        &app,
        json_post(
            "/auth/login",
            &json!({
                "email": "carol@example.org",
                "password": PASSWORD,
                "codeChallengeMethod": "S256",
                "codeChallenge": CHALLENGE,
                "clientId": "",
            }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["mfaEnrollRequired"], true);
    let uri = body["enrollUri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    let qr = body["enrollQrCode"].as_str().unwrap();
    assert!(qr.starts_with("data:image/png;base64,"));
    assert_eq!(decode_qr_data_url(qr), uri);
}

#[tokio::test]
async fn profile_choices_carry_display_names_access_policy_and_read_only_marker() {
    use fhirgate::model::*;
    use fhirgate::store::{Directory, DirectoryAdmin};
    let f = Fixture::new().await;
    let mut policy = AccessPolicy::full_access(AccessPolicyId::new("read-only"));
    policy.name = Some("Read-only".into());
    policy.resources[0].readonly = true;
    f.store.put_access_policy(&policy).await.unwrap();
    let mut first = f
        .store
        .membership(&"m-bob-1".into())
        .await
        .unwrap()
        .unwrap();
    first.profile_display = Some("Dr Bob Builder".into());
    f.store.put_membership(&first).await.unwrap();
    let mut second = f
        .store
        .membership(&"m-bob-2".into())
        .await
        .unwrap()
        .unwrap();
    second.access_policy = Some(AccessPolicyId::new("read-only"));
    f.store.put_membership(&second).await.unwrap();
    let app = fhirgate::http::router(f.engine.clone());

    let (_, body) = call(
        &app,
        json_post(
            "/auth/login",
            &json!({"email": "bob@example.org", "password": PASSWORD,
                    "codeChallengeMethod": "S256", "codeChallenge": CHALLENGE, "clientId": ""}),
        ),
    )
    .await;
    let login = body["login"].as_str().unwrap();
    let (status, body) = call(
        &app,
        json_post(
            "/auth/mfa/verify",
            &json!({"login": login, "token": f.totp_now(0)}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = body["memberships"].as_array().unwrap();
    assert_eq!(
        list[0],
        json!({
            "resourceType": "ProjectMembership",
            "id": "m-bob-1",
            "project": {"reference": "Project/p1", "display": "Clinic"},
            "profile": {"reference": "Practitioner/bob", "display": "Dr Bob Builder"},
        })
    );
    assert_eq!(
        list[1],
        json!({
            "resourceType": "ProjectMembership",
            "id": "m-bob-2",
            "project": {"reference": "Project/p2", "display": "Lab"},
            "profile": {"reference": "Practitioner/bob2"},
            "accessPolicy": {"reference": "AccessPolicy/read-only", "display": "Read-only"},
            "extension": [{"url": fhirgate::http::READ_ONLY_EXTENSION, "valueBoolean": true}],
        })
    );
}
