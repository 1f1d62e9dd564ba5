//! Account self-service over HTTP: `/auth/resetpassword`, `/auth/setpassword`,
//! `/auth/changepassword`, `/auth/verifyemail`, and the per-address route-group limit —
//! each route's success and its refusals with Medplum's texts, no enumeration, single use
//! under concurrency, sessions ended by a reset.
#![cfg(feature = "axum")]

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use async_trait::async_trait;
use axum::http::StatusCode;
use fhirgate::mail::{Mail, MailError, Mailer};
use fhirgate::model::{RequestKind, UserId};
use fhirgate::store::{Directory, LoginStore, RequestStore};
use serde_json::json;

use crate::common::*;
use crate::http_routes::{
    Reply, alice_token, alice_token_through, app, login_body, outcome, post_json,
};

const NEW_PASSWORD: &str = "a brand new passphrase";

/// The newest mail to `to`, waiting for the task that sends it.
async fn mail_to(f: &Fixture, to: &str) -> Mail {
    for _ in 0..200 {
        if let Some(mail) = f.outbox.last_to(to) {
            return mail;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    panic!("no mail to {to}");
}

/// `(id, secret)` of the `setpassword/<id>/<secret>` or `verifyemail/…` link in a mail.
fn link_of(mail: &Mail, path: &str) -> (String, String) {
    let start = mail.text.find(&format!("/{path}/")).expect("a link") + path.len() + 2;
    let rest: String = mail.text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    let (id, secret) = rest.split_once('/').unwrap();
    (id.to_owned(), secret.to_owned())
}

async fn reset_link(f: &Fixture, router: &axum::Router, email: &str) -> (String, String) {
    let before = f.outbox.len();
    let reply = post_json(
        router,
        "/auth/resetpassword",
        json!({ "email": email }),
        None,
    )
    .await;
    assert_eq!(outcome(&reply).0, "All OK", "{}", reply.text);
    for _ in 0..200 {
        if f.outbox.len() > before {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    link_of(&mail_to(f, email).await, "setpassword")
}

async fn set_password(router: &axum::Router, id: &str, secret: &str, password: &str) -> Reply {
    post_json(
        router,
        "/auth/setpassword",
        json!({ "id": id, "secret": secret, "password": password }),
        None,
    )
    .await
}

fn refused(reply: &Reply, text: &str) {
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(outcome(reply).0, text, "{}", reply.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resetpassword_mails_a_branded_link_and_answers_unknown_emails_the_same() {
    let f = Fixture::new().await;
    let router = app(&f);
    let known = post_json(
        &router,
        "/auth/resetpassword",
        json!({"email": "Alice@Example.org"}),
        None,
    )
    .await;
    let unknown = post_json(
        &router,
        "/auth/resetpassword",
        json!({"email": "nobody@example.org"}),
        None,
    )
    .await;
    assert_eq!(known.status, StatusCode::OK);
    assert_eq!((known.status, &known.body), (unknown.status, &unknown.body));
    assert_eq!(outcome(&known).0, "All OK");

    let mail = mail_to(&f, "alice@example.org").await;
    assert_eq!(mail.subject, "Sign-in password reset");
    assert!(!mail.text.to_lowercase().contains("medplum"));
    assert!(
        mail.text.contains("https://auth.example.org/setpassword/"),
        "{}",
        mail.text
    );
    assert!(
        mail.html
            .contains("href=\"https://auth.example.org/setpassword/")
    );
    let (id, secret) = link_of(&mail, "setpassword");
    assert_eq!(secret.len(), 43, "256 bits, base64url");
    // Stored as a hash only, expiring in one hour.
    let stored = f.store.request(&id.as_str().into()).await.unwrap().unwrap();
    assert_eq!(stored.kind, RequestKind::Reset);
    assert_eq!(
        stored.expires_at - stored.created_at,
        time::Duration::hours(1)
    );
    assert!(!format!("{:?}", f.store.snapshot()).contains(&secret));
    tokio::time::sleep(StdDuration::from_millis(100)).await;
    assert_eq!(f.outbox.len(), 1, "nothing is sent for an unknown address");
    assert_eq!(f.store.request_count(), 1, "nothing is stored for it");

    // A project-scoped account gets its project's name.
    f.user(
        "quinn",
        "quinn@example.org",
        Some("p2"),
        true,
        fhirgate::model::TotpState::None,
        false,
    )
    .await;
    post_json(
        &router,
        "/auth/resetpassword",
        json!({"email": "quinn@example.org", "projectId": "p2"}),
        None,
    )
    .await;
    assert_eq!(
        mail_to(&f, "quinn@example.org").await.subject,
        "Lab password reset"
    );

    // Refusals that depend on no account.
    let bad = post_json(
        &router,
        "/auth/resetpassword",
        json!({"email": "not-an-email"}),
        None,
    )
    .await;
    refused(
        &bad,
        "Valid email address between 3 and 72 characters is required",
    );
    assert_eq!(outcome(&bad).1.as_deref(), Some("email"));
    let domain = fhirgate::model::DomainConfiguration {
        domain: "idp.example.org".into(),
        identity_provider: Some(fhirgate::model::IdentityProvider {
            issuer: None,
            authorize_url: "https://idp.example.org/authorize".parse().unwrap(),
            token_url: "https://idp.example.org/token".parse().unwrap(),
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
    };
    fhirgate::store::DirectoryAdmin::put_domain(&f.store, &domain)
        .await
        .unwrap();
    let external = post_json(
        &router,
        "/auth/resetpassword",
        json!({"email": "x@idp.example.org"}),
        None,
    )
    .await;
    refused(
        &external,
        "Cannot reset password for external auth. Contact your system administrator.",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setpassword_sets_once_verifies_the_email_and_ends_every_session() {
    let f = Fixture::new().await;
    let router = app(&f);
    let tokens = alice_token(&router).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert!(f.engine.verifier().verify(&access).await.is_ok());
    // A refresh-token family of a confidential client, too.
    let (_, code) = f
        .code_for("confidential", "openid offline_access user/*.rs")
        .await;
    let family = f.redeem("confidential", &code).await;
    let refresh = family.body["refresh_token"].as_str().unwrap().to_owned();
    let (id, secret) = reset_link(&f, &router, "alice@example.org").await;

    // Refusals that leave the link usable.
    refused(
        &set_password(&router, &id, "not-the-secret", NEW_PASSWORD).await,
        "Incorrect secret",
    );
    refused(
        &set_password(&router, &id, &secret, "short").await,
        "Password must be at least 8 characters",
    );
    let breached = set_password(&router, &id, &secret, "password123").await;
    refused(&breached, "Password found in breach database");
    assert_eq!(outcome(&breached).1.as_deref(), Some("password"));
    refused(
        &set_password(&router, &id, &secret, &"x".repeat(129)).await,
        "Password must be no more than 128 characters",
    );
    refused(
        &post_json(
            &router,
            "/auth/setpassword",
            json!({"secret": secret, "password": NEW_PASSWORD}),
            None,
        )
        .await,
        "Invalid request ID",
    );
    refused(
        &post_json(
            &router,
            "/auth/setpassword",
            json!({"id": id, "password": NEW_PASSWORD}),
            None,
        )
        .await,
        "Missing secret",
    );
    let unknown = set_password(
        &router,
        "00000000-0000-4000-8000-000000000000",
        &secret,
        NEW_PASSWORD,
    )
    .await;
    assert_eq!(
        (unknown.status, outcome(&unknown).0.as_str()),
        (StatusCode::NOT_FOUND, "Not found")
    );

    let ok = set_password(&router, &id, &secret, NEW_PASSWORD).await;
    assert_eq!(
        (ok.status, outcome(&ok).0.as_str()),
        (StatusCode::OK, "All OK"),
        "{}",
        ok.text
    );
    refused(
        &set_password(&router, &id, &secret, NEW_PASSWORD).await,
        "Already used",
    );

    let alice = f.store.user(&UserId::new("alice")).await.unwrap().unwrap();
    assert!(alice.email_verified);
    // Every session and refresh family of the user ended: the old access token is dead, the
    // refresh token refused; the new password signs in, the old one does not.
    assert!(f.engine.verifier().verify(&access).await.is_err());
    let refreshed = f
        .token(
            Some(basic("confidential", CLIENT_SECRET)),
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(
        refreshed.body["error"], "invalid_grant",
        "{}",
        refreshed.body
    );
    assert!(
        f.store
            .logins_of_user(&alice.id)
            .await
            .unwrap()
            .iter()
            .all(|l| l.revoked)
    );
    let old = post_json(
        &router,
        "/auth/login",
        login_body("alice@example.org", PASSWORD),
        None,
    )
    .await;
    refused(&old, "Email or password is invalid");
    let new = post_json(
        &router,
        "/auth/login",
        login_body("alice@example.org", NEW_PASSWORD),
        None,
    )
    .await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.text);
    assert!(f.audit.events().iter().any(|e| matches!(
        e.kind,
        fhirgate::audit::AuditKind::PasswordReset { sessions_ended } if sessions_ended >= 1
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_older_and_wrong_kind_links_are_refused() {
    let f = Fixture::new().await;
    let router = app(&f);
    let (old_id, old_secret) = reset_link(&f, &router, "alice@example.org").await;
    let (new_id, new_secret) = reset_link(&f, &router, "alice@example.org").await;
    assert_ne!(old_id, new_id);
    refused(
        &set_password(&router, &old_id, &old_secret, NEW_PASSWORD).await,
        "Already used",
    );

    // A verification link is not a password link, and the other way round.
    let link = f
        .engine
        .accounts()
        .send_email_verification(&UserId::new("alice"), None)
        .await
        .unwrap();
    let (verify_id, verify_secret) =
        link_of(&mail_to(&f, "alice@example.org").await, "verifyemail");
    assert!(link.expose().ends_with(&verify_secret));
    refused(
        &set_password(&router, &verify_id, &verify_secret, NEW_PASSWORD).await,
        "Invalid request type",
    );
    let wrong = post_json(
        &router,
        "/auth/verifyemail",
        json!({"id": new_id, "secret": new_secret}),
        None,
    )
    .await;
    refused(&wrong, "Invalid user security request type");

    // One hour later the reset link is dead.
    f.clock.advance(time::Duration::hours(1));
    refused(
        &set_password(&router, &new_id, &new_secret, NEW_PASSWORD).await,
        "Expired",
    );
    // The verification link lives seven days.
    let verified = post_json(
        &router,
        "/auth/verifyemail",
        json!({"id": verify_id, "secret": verify_secret}),
        None,
    )
    .await;
    assert_eq!(outcome(&verified).0, "All OK", "{}", verified.text);
    assert!(
        f.store
            .user(&UserId::new("alice"))
            .await
            .unwrap()
            .unwrap()
            .email_verified
    );
    let again = post_json(
        &router,
        "/auth/verifyemail",
        json!({"id": verify_id, "secret": verify_secret}),
        None,
    )
    .await;
    refused(&again, "Already used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_setpassword_requests_with_one_link_yield_one_success() {
    let f = Fixture::new().await;
    let router = app(&f);
    for round in 0..4 {
        let (id, secret) = reset_link(&f, &router, "alice@example.org").await;
        let password = format!("{NEW_PASSWORD} {round}");
        let (a, b) = tokio::join!(
            set_password(&router, &id, &secret, &password),
            set_password(&router, &id, &secret, &password)
        );
        let mut statuses = [a.status, b.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::BAD_REQUEST],
            "{} / {}",
            a.text,
            b.text
        );
        let loser = if a.status == StatusCode::OK { &b } else { &a };
        assert_eq!(outcome(loser).0, "Already used");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_counted_in_code_points_and_never_truncated() {
    let f = Fixture::new().await;
    let router = app(&f);
    let emoji = "🔐".repeat(40);
    let (id, secret) = reset_link(&f, &router, "alice@example.org").await;
    let ok = set_password(&router, &id, &secret, &emoji).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let shorter = post_json(
        &router,
        "/auth/login",
        login_body("alice@example.org", &"🔐".repeat(39)),
        None,
    )
    .await;
    refused(&shorter, "Email or password is invalid");
    let exact = post_json(
        &router,
        "/auth/login",
        login_body("alice@example.org", &emoji),
        None,
    )
    .await;
    assert_eq!(exact.status, StatusCode::OK, "{}", exact.text);

    // 128 code points pass, 129 do not — whatever their byte length.
    let (id, secret) = reset_link(&f, &router, "alice@example.org").await;
    refused(
        &set_password(&router, &id, &secret, &"é".repeat(129)).await,
        "Password must be no more than 128 characters",
    );
    let ok = set_password(&router, &id, &secret, &format!("{}x", "é".repeat(127))).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changepassword_checks_the_old_password_and_ends_other_sessions() {
    let f = Fixture::new().await;
    let router = app(&f);
    // A third-party app's token cannot change the password.
    let third = alice_token_through(&f, &router, false).await;
    let change = |old: &str, new: &str| json!({"oldPassword": old, "newPassword": new});
    let refused_third = post_json(
        &router,
        "/auth/changepassword",
        change(PASSWORD, NEW_PASSWORD),
        Some(&third),
    )
    .await;
    assert_eq!(refused_third.status, StatusCode::FORBIDDEN);
    let other = alice_token_through(&f, &router, true).await;
    let mine = alice_token_through(&f, &router, true).await;
    let change = |old: &str, new: &str| json!({"oldPassword": old, "newPassword": new});

    let wrong = post_json(
        &router,
        "/auth/changepassword",
        change("wrong password", NEW_PASSWORD),
        Some(&mine),
    )
    .await;
    refused(&wrong, "Incorrect password");
    assert_eq!(outcome(&wrong).1.as_deref(), Some("oldPassword"));
    let missing = post_json(
        &router,
        "/auth/changepassword",
        json!({"newPassword": NEW_PASSWORD}),
        Some(&mine),
    )
    .await;
    refused(&missing, "Missing oldPassword");
    let breached = post_json(
        &router,
        "/auth/changepassword",
        change(PASSWORD, "iloveyou123"),
        Some(&mine),
    )
    .await;
    refused(&breached, "Password found in breach database");
    assert_eq!(outcome(&breached).1.as_deref(), Some("newPassword"));
    let anonymous = post_json(
        &router,
        "/auth/changepassword",
        change(PASSWORD, NEW_PASSWORD),
        None,
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    let ok = post_json(
        &router,
        "/auth/changepassword",
        change(PASSWORD, NEW_PASSWORD),
        Some(&mine),
    )
    .await;
    assert_eq!(outcome(&ok).0, "All OK", "{}", ok.text);
    assert!(
        f.engine.verifier().verify(&mine).await.is_ok(),
        "the caller's session stays"
    );
    assert!(
        f.engine.verifier().verify(&other).await.is_err(),
        "every other session ends"
    );
    let new = post_json(
        &router,
        "/auth/login",
        login_body("alice@example.org", NEW_PASSWORD),
        None,
    )
    .await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.text);
}

/// A mailer as slow as a remote SMTP server: a route that waited for it would be slow for
/// existing accounts only.
struct SlowMailer(fhirgate::mail::Outbox);

#[async_trait]
impl Mailer for SlowMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        tokio::time::sleep(StdDuration::from_millis(20)).await;
        self.0.send(mail).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resetpassword_takes_the_same_time_for_existing_and_unknown_accounts() {
    let mut config = config();
    config.throttle.requests_per_address_per_group = None;
    let outbox = fhirgate::mail::Outbox::new();
    let store = fhirgate::MemoryStore::new();
    let engine = fhirgate::Engine::builder()
        .store(store.clone())
        .config(config)
        .mailer(Arc::new(SlowMailer(outbox.clone())))
        .build()
        .unwrap();
    Seeder {
        engine: &engine,
        dir: &store,
    }
    .seed()
    .await;
    let router = fhirgate::http::router(engine);
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..111 {
        for (email, out) in [
            ("alice@example.org", &mut known),
            ("nobody@example.org", &mut unknown),
        ] {
            let started = Instant::now();
            let reply = post_json(
                &router,
                "/auth/resetpassword",
                json!({"email": email}),
                None,
            )
            .await;
            let elapsed = started.elapsed();
            assert_eq!(reply.status, StatusCode::OK, "{i}");
            // The first rounds warm caches and the runtime up.
            if i >= 10 {
                out.push(elapsed);
            }
        }
    }
    let median = |v: &mut Vec<StdDuration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (known, unknown) = (median(&mut known), median(&mut unknown));
    eprintln!("resetpassword median: existing {known:?}, unknown {unknown:?}");
    let (low, high) = (known.min(unknown), known.max(unknown));
    // Within 10 % (or, below a millisecond, within scheduler noise); the mail alone takes
    // 20 ms, so a route that waited for it would differ by far more.
    assert!(
        high.as_secs_f64() <= low.as_secs_f64() * 1.10
            || high - low < StdDuration::from_micros(500),
        "existing {known:?} vs unknown {unknown:?}"
    );
    assert!(
        high < StdDuration::from_millis(20),
        "the answer never waits for the mail: {high:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_route_group_is_limited_per_address_before_any_hashing() {
    let mut config = config();
    config.throttle.requests_per_address_per_group = Some(3);
    let f = Fixture::with_config(config).await;
    let router = app(&f);
    let (id, secret) = reset_link(&f, &router, "alice@example.org").await; // 1 reset request
    let hashes = f.hasher.hashes.load(std::sync::atomic::Ordering::SeqCst);
    refused(
        &set_password(&router, &id, "wrong", NEW_PASSWORD).await,
        "Incorrect secret",
    ); // 2
    refused(
        &set_password(&router, &id, "wrong", NEW_PASSWORD).await,
        "Incorrect secret",
    ); // 3
    let limited = set_password(&router, &id, &secret, NEW_PASSWORD).await; // 4
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text
    );
    assert_eq!(outcome(&limited).0, "Too many requests; try again later");
    assert_eq!(limited.headers["retry-after"], "60");
    assert_eq!(
        f.hasher.hashes.load(std::sync::atomic::Ordering::SeqCst),
        hashes,
        "nothing hashed"
    );
    assert!(
        !f.store
            .request(&id.as_str().into())
            .await
            .unwrap()
            .unwrap()
            .used
    );
    // Other groups keep their own budget; the window ends by itself.
    let login = post_json(
        &router,
        "/auth/login",
        login_body("alice@example.org", PASSWORD),
        None,
    )
    .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    f.clock.advance(time::Duration::seconds(60));
    let ok = set_password(&router, &id, &secret, NEW_PASSWORD).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
}
