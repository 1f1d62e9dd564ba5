//! Email as a second factor over HTTP: enrolment with a mailed code, `mfaMethods` at sign-in,
//! `send-email` for a pending login, codes bound to their login, single use, ten minutes,
//! attempt-capped like TOTP, sends capped per account, and removal.
#![cfg(feature = "axum")]

use axum::http::StatusCode;
use fhirgate::model::UserId;
use fhirgate::store::Directory;
use serde_json::json;

use crate::common::*;
use crate::http_routes::{Reply, alice_token_through, app, login_body, outcome, post_json};

/// The code in the newest mail to alice.
fn last_code(f: &Fixture) -> String {
    let mail = f.outbox.last_to("alice@example.org").expect("a mail");
    let code: String = mail
        .subject
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert_eq!(code.len(), 6, "{}", mail.subject);
    assert!(mail.text.contains(&code));
    code
}

fn refused(reply: &Reply, status: StatusCode, text: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    assert_eq!(outcome(reply).0, text, "{}", reply.text);
}

/// alice with email as her second factor.
async fn enrolled(f: &Fixture, router: &axum::Router) -> String {
    let token = alice_token_through(f, router, true).await;
    let sent = post_json(
        router,
        "/auth/mfa/send-email-challenge",
        json!({}),
        Some(&token),
    )
    .await;
    assert_eq!(outcome(&sent).0, "All OK", "{}", sent.text);
    let code = last_code(f);
    let wrong = if code == "000000" { "000001" } else { "000000" };
    refused(
        &post_json(
            router,
            "/auth/mfa/enroll-email",
            json!({"token": wrong}),
            Some(&token),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "Invalid MFA token",
    );
    let ok = post_json(
        router,
        "/auth/mfa/enroll-email",
        json!({"token": code}),
        Some(&token),
    )
    .await;
    assert_eq!(outcome(&ok).0, "All OK", "{}", ok.text);
    let alice = f.store.user(&UserId::new("alice")).await.unwrap().unwrap();
    assert!(alice.email_mfa && alice.email_verified);
    token
}

async fn pending_login(router: &axum::Router) -> String {
    let reply = post_json(
        router,
        "/auth/login",
        login_body("alice@example.org", PASSWORD),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["mfaRequired"], true, "{}", reply.text);
    assert_eq!(reply.body["mfaMethods"], json!(["email"]));
    assert!(reply.body.get("code").is_none());
    reply.body["login"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_mailed_code_is_the_second_factor_of_its_own_login_once() {
    let f = Fixture::new().await;
    let router = app(&f);
    enrolled(&f, &router).await;
    let login = pending_login(&router).await;
    // No code was sent for this login yet: the enrolment code does not count.
    let early = post_json(
        &router,
        "/auth/mfa/verify",
        json!({"login": login, "token": "123456"}),
        None,
    )
    .await;
    refused(&early, StatusCode::BAD_REQUEST, "Invalid MFA token");

    let sent = post_json(
        &router,
        "/auth/mfa/send-email",
        json!({"login": login}),
        None,
    )
    .await;
    assert_eq!(outcome(&sent).0, "All OK", "{}", sent.text);
    let code = last_code(&f);
    assert!(
        f.outbox
            .last_to("alice@example.org")
            .unwrap()
            .subject
            .ends_with("is your Sign-in sign-in code")
    );

    // Another login of the same account cannot use it, and trying does not spend it.
    let other = pending_login(&router).await;
    let stolen = post_json(
        &router,
        "/auth/mfa/verify",
        json!({"login": other, "token": code, "method": "email"}),
        None,
    )
    .await;
    refused(&stolen, StatusCode::BAD_REQUEST, "Invalid MFA token");

    let passed = post_json(
        &router,
        "/auth/mfa/verify",
        json!({"login": login, "token": code}),
        None,
    )
    .await;
    assert_eq!(passed.status, StatusCode::OK, "{}", passed.text);
    assert!(passed.body["code"].is_string(), "{}", passed.text);
    // Used: a replay with a fresh login (which the code was not sent for) fails too.
    let again = pending_login(&router).await;
    let replay = post_json(
        &router,
        "/auth/mfa/verify",
        json!({"login": again, "token": code}),
        None,
    )
    .await;
    refused(&replay, StatusCode::BAD_REQUEST, "Invalid MFA token");
}

#[tokio::test]
async fn codes_expire_after_ten_minutes_and_only_the_newest_counts() {
    let f = Fixture::new().await;
    let router = app(&f);
    enrolled(&f, &router).await;
    let login = pending_login(&router).await;
    post_json(
        &router,
        "/auth/mfa/send-email",
        json!({"login": login}),
        None,
    )
    .await;
    let first = last_code(&f);
    post_json(
        &router,
        "/auth/mfa/send-email",
        json!({"login": login}),
        None,
    )
    .await;
    let second = last_code(&f);
    if first != second {
        let old = post_json(
            &router,
            "/auth/mfa/verify",
            json!({"login": login, "token": first}),
            None,
        )
        .await;
        refused(&old, StatusCode::BAD_REQUEST, "Invalid MFA token");
    }
    f.clock.advance(time::Duration::minutes(10));
    // The login itself lives 15 minutes; its code only 10.
    let late = post_json(
        &router,
        "/auth/mfa/verify",
        json!({"login": login, "token": second}),
        None,
    )
    .await;
    refused(&late, StatusCode::BAD_REQUEST, "Invalid MFA token");
}

#[tokio::test]
async fn guessing_is_capped_like_totp_and_sending_is_capped_per_account() {
    let f = Fixture::new().await;
    let router = app(&f);
    enrolled(&f, &router).await;
    let login = pending_login(&router).await;
    post_json(
        &router,
        "/auth/mfa/send-email",
        json!({"login": login}),
        None,
    )
    .await;
    let code = last_code(&f);
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let cap = fhirgate::Config::default().totp.attempts_per_login;
    for _ in 0..cap {
        let r = post_json(
            &router,
            "/auth/mfa/verify",
            json!({"login": login, "token": wrong}),
            None,
        )
        .await;
        refused(&r, StatusCode::BAD_REQUEST, "Invalid MFA token");
    }
    let capped = post_json(
        &router,
        "/auth/mfa/verify",
        json!({"login": login, "token": code}),
        None,
    )
    .await;
    refused(
        &capped,
        StatusCode::TOO_MANY_REQUESTS,
        "Too many attempts; try again later",
    );

    // Five codes per account per 15 minutes (one went to the enrolment, one above).
    for _ in 0..3 {
        let sent = post_json(
            &router,
            "/auth/mfa/send-email",
            json!({"login": login}),
            None,
        )
        .await;
        assert_eq!(sent.status, StatusCode::OK, "{}", sent.text);
    }
    let mails = f.outbox.len();
    let flood = post_json(
        &router,
        "/auth/mfa/send-email",
        json!({"login": login}),
        None,
    )
    .await;
    assert_eq!(
        flood.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        flood.text
    );
    assert!(flood.headers.contains_key("retry-after"));
    assert_eq!(f.outbox.len(), mails, "no mail past the cap");
}

#[tokio::test]
async fn removing_the_email_factor_needs_a_fresh_code() {
    let f = Fixture::new().await;
    let router = app(&f);
    let token = enrolled(&f, &router).await;
    refused(
        &post_json(
            &router,
            "/auth/mfa/disable-email",
            json!({"token": "123456"}),
            Some(&token),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "Invalid MFA token",
    );
    post_json(
        &router,
        "/auth/mfa/send-email-challenge",
        json!({}),
        Some(&token),
    )
    .await;
    let code = last_code(&f);
    let ok = post_json(
        &router,
        "/auth/mfa/disable-email",
        json!({"token": code}),
        Some(&token),
    )
    .await;
    assert_eq!(outcome(&ok).0, "All OK", "{}", ok.text);
    assert!(
        !f.store
            .user(&UserId::new("alice"))
            .await
            .unwrap()
            .unwrap()
            .email_mfa
    );
    let direct = post_json(
        &router,
        "/auth/login",
        login_body("alice@example.org", PASSWORD),
        None,
    )
    .await;
    assert!(direct.body["code"].is_string(), "{}", direct.text);
    let kinds: Vec<_> = f.audit.events().into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&fhirgate::audit::AuditKind::MfaMethodAdded {
        method: "email".into()
    }));
    assert!(
        kinds.contains(&fhirgate::audit::AuditKind::MfaMethodRemoved {
            method: "email".into()
        })
    );
}

#[tokio::test]
async fn the_last_factor_of_an_account_that_requires_mfa_stays() {
    use fhirgate::model::{TotpSecret, TotpState};
    let f = Fixture::new().await;
    f.user(
        "rita",
        "rita@example.org",
        None,
        true,
        TotpState::Enrolled {
            secret: TotpSecret::from_bytes(TOTP_SECRET.to_vec()),
        },
        true,
    )
    .await;
    let err = f
        .engine
        .mfa()
        .disable(&UserId::new("rita"), &f.totp_now(0))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Cannot remove the last MFA factor because MFA is required"
    );
    assert!(
        f.store
            .user(&UserId::new("rita"))
            .await
            .unwrap()
            .unwrap()
            .mfa_enrolled()
    );
}
