//! Registration over HTTP: `/auth/newuser`, then `/auth/newproject` or `/auth/newpatient` —
//! success through to a token, every refusal with its text, the server and project switches,
//! the human check, and the registration group's per-address limit.
#![cfg(feature = "axum")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use axum::http::StatusCode;
use fhirgate::account::{HumanCheck, HumanCheckError, Recaptcha};
use fhirgate::model::{AccessPolicy, AccessPolicyId, ProjectId, UserId};
use fhirgate::store::{Directory, DirectoryAdmin, RequestStore};
use fhirgate::transport::{HttpRequest, HttpResponse, Transport, TransportError};
use serde_json::{Value, json};

use crate::common::*;
use crate::http_routes::{Reply, app, outcome, post_form, post_json};

const NEW_PASSWORD: &str = "a brand new passphrase";

/// A sign-up through `client` (or none), with the sign-in fields Medplum's form sends.
fn sign_up(email: &str, client: Option<&str>) -> Value {
    let mut body = json!({
        "firstName": "Nora",
        "lastName": "Newcomer",
        "email": email,
        "password": NEW_PASSWORD,
        "scope": "openid",
        "codeChallenge": CHALLENGE,
        "codeChallengeMethod": "S256",
    });
    if let Some(client) = client {
        body["clientId"] = json!(client);
        body["redirectUri"] = json!(REDIRECT);
        body["scope"] = json!("openid patient/*.rs");
    }
    body
}

fn refused(reply: &Reply, text: &str) {
    assert!(reply.status.is_client_error(), "{}", reply.text);
    assert_eq!(outcome(reply).0, text, "{}", reply.text);
}

async fn open_lab_to_patients(f: &Fixture) {
    let policy = AccessPolicy {
        id: AccessPolicyId::new("patients"),
        name: Some("Patients".into()),
        compartment: None,
        resources: Vec::new(),
        ip_rules: Vec::new(),
    };
    f.store.put_access_policy(&policy).await.unwrap();
    let mut lab = f
        .store
        .project(&ProjectId::new("p2"))
        .await
        .unwrap()
        .unwrap();
    lab.default_patient_access_policy = Some(policy.id.clone());
    f.store.put_project(&lab).await.unwrap();
}

#[tokio::test]
async fn newuser_then_newproject_creates_an_account_a_project_and_an_admin_membership() {
    let f = Fixture::new().await;
    let router = app(&f);
    let reply = post_json(
        &router,
        "/auth/newuser",
        sign_up("Nora@Example.org", None),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let login = reply.body["login"].as_str().unwrap().to_owned();
    assert!(reply.body.get("code").is_none());
    let nora = f
        .store
        .user_by_email("nora@example.org", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (nora.first_name.as_str(), nora.last_name.as_str()),
        ("Nora", "Newcomer")
    );
    assert!(nora.password_hash.is_some() && nora.project.is_none());

    let short = post_json(
        &router,
        "/auth/newproject",
        json!({"login": login, "projectName": "abc"}),
        None,
    )
    .await;
    refused(&short, "Project name must be between 4 and 72 characters");
    let created = post_json(
        &router,
        "/auth/newproject",
        json!({"login": login, "projectName": "Nora's Clinic"}),
        None,
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    assert!(created.body["code"].as_str().is_some_and(|c| c.len() >= 43));
    let memberships = f.store.memberships_of(&nora.id).await.unwrap();
    assert_eq!(memberships.len(), 1);
    let membership = &memberships[0];
    assert!(membership.admin);
    assert!(membership.profile.as_str().starts_with("Practitioner/"));
    let project = f.store.project(&membership.project).await.unwrap().unwrap();
    assert_eq!(project.name, "Nora's Clinic");
    assert_eq!(project.owner.as_ref(), Some(&nora.id));
    assert!(
        f.audit
            .events()
            .iter()
            .any(|e| e.kind == fhirgate::audit::AuditKind::Registered)
    );

    // The login moved on: it cannot create a second membership.
    let again = post_json(
        &router,
        "/auth/newproject",
        json!({"login": created.body["login"], "projectName": "Second Clinic"}),
        None,
    )
    .await;
    assert!(again.status.is_client_error(), "{}", again.text);
    // The email is taken now (Medplum says so, too).
    let taken = post_json(
        &router,
        "/auth/newuser",
        sign_up("nora@example.org", None),
        None,
    )
    .await;
    refused(&taken, "Email already registered");
    let taken = post_json(
        &router,
        "/auth/newuser",
        sign_up("alice@example.org", None),
        None,
    )
    .await;
    refused(&taken, "Email already registered");
}

#[tokio::test]
async fn newuser_then_newpatient_joins_an_open_project_and_gets_a_token() {
    let f = Fixture::new().await;
    let router = app(&f);
    // p1 (the `app` client's project) is closed to registration.
    let closed = post_json(
        &router,
        "/auth/newuser",
        sign_up("pia@example.org", Some("app")),
        None,
    )
    .await;
    refused(&closed, "Project does not allow open registration");
    assert!(
        f.store
            .user_by_email("pia@example.org", Some(&ProjectId::new("p1")))
            .await
            .unwrap()
            .is_none()
    );

    open_lab_to_patients(&f).await;
    let reply = post_json(
        &router,
        "/auth/newuser",
        sign_up("pia@example.org", Some("lab-app")),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let login = reply.body["login"].as_str().unwrap().to_owned();
    let pia = f
        .store
        .user_by_email("pia@example.org", Some(&ProjectId::new("p2")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pia.project, Some(ProjectId::new("p2")));

    let elsewhere = post_json(
        &router,
        "/auth/newpatient",
        json!({"login": login, "projectId": "p1"}),
        None,
    )
    .await;
    refused(&elsewhere, "User must be scoped to the project");
    let missing = post_json(&router, "/auth/newpatient", json!({"login": login}), None).await;
    refused(&missing, "Project ID is required");
    let joined = post_json(
        &router,
        "/auth/newpatient",
        json!({"login": login, "projectId": "p2"}),
        None,
    )
    .await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.text);
    let code = joined.body["code"].as_str().unwrap();
    let tokens = post_form(
        &router,
        "/oauth2/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", "lab-app"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
        None,
    )
    .await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text);
    let principal = f
        .engine
        .verifier()
        .verify(tokens.body["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert!(principal.profile.as_str().starts_with("Patient/"));
    let membership = f
        .store
        .membership(&principal.membership)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        membership.access_policy,
        Some(AccessPolicyId::new("patients"))
    );
    assert!(!membership.admin);
}

#[tokio::test]
async fn newuser_refusals_carry_medplums_texts_and_store_nothing() {
    let mut config = config();
    let f = Fixture::new().await;
    let router = app(&f);
    let mut body = sign_up("x@example.org", None);
    body["firstName"] = json!("");
    refused(
        &post_json(&router, "/auth/newuser", body, None).await,
        "First name must be between 1 and 128 characters",
    );
    let mut body = sign_up("x@example.org", None);
    body["lastName"] = json!("L".repeat(129));
    refused(
        &post_json(&router, "/auth/newuser", body, None).await,
        "Last name must be between 1 and 128 characters",
    );
    refused(
        &post_json(
            &router,
            "/auth/newuser",
            sign_up("not-an-email", None),
            None,
        )
        .await,
        "Valid email address between 3 and 72 characters is required",
    );
    let mut body = sign_up("x@example.org", None);
    body["password"] = json!("qwertyuiop");
    refused(
        &post_json(&router, "/auth/newuser", body, None).await,
        "Password found in breach database",
    );
    let mut body = sign_up("x@example.org", None);
    body["password"] = json!("short");
    refused(
        &post_json(&router, "/auth/newuser", body, None).await,
        "Password must be at least 8 characters",
    );
    let mut body = sign_up("x@example.org", None);
    body.as_object_mut().unwrap().remove("codeChallenge");
    assert_eq!(
        post_json(&router, "/auth/newuser", body, None).await.status,
        StatusCode::BAD_REQUEST
    );
    assert!(
        f.store
            .user_by_email("x@example.org", None)
            .await
            .unwrap()
            .is_none()
    );

    // Switched off for the server.
    config.accounts.registration_enabled = false;
    let closed = Fixture::with_config(config).await;
    let reply = post_json(
        &app(&closed),
        "/auth/newuser",
        sign_up("x@example.org", None),
        None,
    )
    .await;
    refused(&reply, "Registration is disabled");
}

/// Accepts the token "human" only; counts its calls.
struct FakeHuman(AtomicUsize);

#[async_trait]
impl HumanCheck for FakeHuman {
    async fn verify(
        &self,
        token: &str,
        _: Option<std::net::IpAddr>,
    ) -> Result<bool, HumanCheckError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(token == "human")
    }
}

#[tokio::test]
async fn a_configured_human_check_guards_registration_and_reset() {
    let check = Arc::new(FakeHuman(AtomicUsize::new(0)));
    let engine = fhirgate::Engine::builder()
        .config(config())
        .human_check(check.clone())
        .build()
        .unwrap();
    let router = fhirgate::http::router(engine);
    refused(
        &post_json(
            &router,
            "/auth/newuser",
            sign_up("h@example.org", None),
            None,
        )
        .await,
        "Recaptcha token is required",
    );
    let mut body = sign_up("h@example.org", None);
    body["recaptchaToken"] = json!("robot");
    refused(
        &post_json(&router, "/auth/newuser", body, None).await,
        "Recaptcha failed",
    );
    let mut body = sign_up("h@example.org", None);
    body["recaptchaToken"] = json!("human");
    assert_eq!(
        post_json(&router, "/auth/newuser", body, None).await.status,
        StatusCode::OK
    );
    refused(
        &post_json(
            &router,
            "/auth/resetpassword",
            json!({"email": "h@example.org"}),
            None,
        )
        .await,
        "Recaptcha token is required",
    );
    let reset = post_json(
        &router,
        "/auth/resetpassword",
        json!({"email": "h@example.org", "recaptchaToken": "human"}),
        None,
    )
    .await;
    assert_eq!(outcome(&reset).0, "All OK");
    assert_eq!(check.0.load(Ordering::SeqCst), 3);
}

/// Google's siteverify, as a transport double that records the form it got.
struct SiteVerify(std::sync::Mutex<Vec<String>>);

#[async_trait]
impl Transport for SiteVerify {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let form = String::from_utf8(request.body).unwrap();
        let success = form.contains("response=good");
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {form}", request.url));
        Ok(HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: json!({"success": success}).to_string().into_bytes(),
        })
    }
}

#[tokio::test]
async fn recaptcha_posts_the_secret_token_and_address_to_siteverify() {
    let transport = Arc::new(SiteVerify(std::sync::Mutex::new(Vec::new())));
    let check = Recaptcha::new("site-secret", transport.clone());
    assert!(!format!("{check:?}").contains("site-secret"));
    assert!(
        check
            .verify("good", Some("192.0.2.7".parse().unwrap()))
            .await
            .unwrap()
    );
    assert!(!check.verify("bad", None).await.unwrap());
    let seen = transport.0.lock().unwrap().clone();
    assert_eq!(
        seen[0],
        "https://www.google.com/recaptcha/api/siteverify secret=site-secret&response=good&remoteip=192.0.2.7"
    );
    let down = Recaptcha::new("s", Arc::new(fhirgate::transport::NoTransport));
    assert!(down.verify("good", None).await.is_err());
}

#[tokio::test]
async fn the_registration_group_is_limited_per_address() {
    let mut config = config();
    config.throttle.requests_per_address_per_group = Some(2);
    let f = Fixture::with_config(config).await;
    let router = app(&f);
    for email in ["a1@example.org", "a2@example.org"] {
        assert_eq!(
            post_json(&router, "/auth/newuser", sign_up(email, None), None)
                .await
                .status,
            StatusCode::OK
        );
    }
    let hashes = f.hasher.hashes.load(Ordering::SeqCst);
    let limited = post_json(
        &router,
        "/auth/newuser",
        sign_up("a3@example.org", None),
        None,
    )
    .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(
        f.hasher.hashes.load(Ordering::SeqCst),
        hashes,
        "nothing hashed"
    );
    assert!(f.store.user(&UserId::new("a3")).await.unwrap().is_none());
    assert!(
        f.store
            .user_by_email("a3@example.org", None)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn an_admin_invites_a_person_whose_mailed_link_sets_the_password() {
    use crate::http_routes::{alice_token_through, login_body};
    let f = Fixture::new().await;
    let router = app(&f);
    let token = alice_token_through(&f, &router, true).await;
    let invite = |body: Value, project: &str| {
        let router = router.clone();
        let token = token.clone();
        let path = format!("/admin/projects/{project}/invite");
        async move { post_json(&router, &path, body, Some(&token)).await }
    };
    let newbie = json!({"resourceType": "Practitioner", "firstName": "Nia", "lastName": "New", "email": "Nia@Example.org"});

    // alice is not an admin yet.
    let forbidden = invite(newbie.clone(), "p1").await;
    assert_eq!(
        (forbidden.status, outcome(&forbidden).0.as_str()),
        (StatusCode::FORBIDDEN, "Forbidden")
    );
    let mut membership = f
        .store
        .membership(&"m-alice".into())
        .await
        .unwrap()
        .unwrap();
    membership.admin = true;
    f.store.put_membership(&membership).await.unwrap();
    let elsewhere = invite(newbie.clone(), "p2").await;
    assert_eq!(
        elsewhere.status,
        StatusCode::FORBIDDEN,
        "an admin of p1 only"
    );
    let mut bad = newbie.clone();
    bad["resourceType"] = json!("ClientApplication");
    refused(
        &invite(bad, "p1").await,
        "Invalid resource type; expected Practitioner, Patient or RelatedPerson",
    );

    let reply = invite(newbie.clone(), "p1").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["resourceType"], "ProjectMembership");
    assert!(
        reply.body["profile"]["reference"]
            .as_str()
            .unwrap()
            .starts_with("Practitioner/")
    );
    let nia = f
        .store
        .user_by_email("nia@example.org", None)
        .await
        .unwrap()
        .unwrap();
    assert!(nia.password_hash.is_none());
    let mail = f.outbox.last_to("nia@example.org").unwrap();
    assert_eq!(mail.subject, "You are invited to Clinic");
    let start = mail.text.find("/setpassword/").unwrap() + "/setpassword/".len();
    let rest: String = mail.text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let (id, secret) = rest.split_once('/').unwrap();
    let stored = f.store.request(&id.into()).await.unwrap().unwrap();
    assert_eq!(
        stored.expires_at - stored.created_at,
        time::Duration::days(7)
    );

    let twice = invite(newbie, "p1").await;
    assert_eq!(
        (twice.status, outcome(&twice).0.as_str()),
        (
            StatusCode::CONFLICT,
            "User is already a member of this project"
        )
    );

    let set = post_json(
        &router,
        "/auth/setpassword",
        json!({"id": id, "secret": secret, "password": NEW_PASSWORD}),
        None,
    )
    .await;
    assert_eq!(outcome(&set).0, "All OK", "{}", set.text);
    let signed_in = post_json(
        &router,
        "/auth/login",
        login_body("nia@example.org", NEW_PASSWORD),
        None,
    )
    .await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.text);
    assert!(signed_in.body["code"].is_string(), "{}", signed_in.text);
    let kinds: Vec<_> = f.audit.events().into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&fhirgate::audit::AuditKind::InvitationSent {
        project: ProjectId::new("p1")
    }));
    assert!(kinds.contains(&fhirgate::audit::AuditKind::InvitationAccepted));

    // An account that already has a password gets a notice, no link.
    f.user(
        "gwen",
        "gwen@example.org",
        None,
        true,
        fhirgate::model::TotpState::None,
        false,
    )
    .await;
    let erin = invite(json!({"email": "gwen@example.org"}), "p1").await;
    assert_eq!(erin.status, StatusCode::OK, "{}", erin.text);
    let notice = f.outbox.last_to("gwen@example.org").unwrap();
    assert_eq!(notice.subject, "You now have access to Clinic");
    assert!(!notice.text.contains("setpassword"));
}
