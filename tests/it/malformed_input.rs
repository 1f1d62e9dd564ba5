//! Every malformed input gets a typed error and changes nothing stored.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common::*;
use fhirgate::login::{Authorized, Consent, Profile, SecondFactor};
use fhirgate::{LoginError, LoginRequest, RequestError};

async fn unchanged<T: std::fmt::Debug, Fut>(f: &Fixture, op: Fut) -> LoginError
where
    Fut: std::future::Future<Output = Result<T, LoginError>>,
{
    let before = f.store.snapshot();
    let err = op.await.unwrap_err();
    assert_eq!(before, f.store.snapshot(), "store changed after: {err}");
    err
}

#[tokio::test]
async fn empty_and_invalid_emails() {
    let f = Fixture::new().await;
    for email in [
        "",
        " ",
        "alice",
        "@example.org",
        "alice@",
        "alice@example",
        "a b@example.org",
        "alice@@example.org",
        "alice@example..org",
        "alice@.example.org",
        "alice\u{0}@example.org",
    ] {
        let login = f.engine.start(f.request()).await.unwrap();
        let err = unchanged(&f, login.method(email)).await;
        assert!(
            matches!(err, LoginError::Request(RequestError::InvalidEmail)),
            "{email:?}"
        );
        assert_eq!(err.to_string(), "Valid email address is required");
        assert_eq!(err.field(), Some("email"));
    }
    let long = format!("{}@example.org", "a".repeat(300));
    let login = f.engine.start(f.request()).await.unwrap();
    assert!(matches!(
        unchanged(&f, login.method(&long)).await,
        LoginError::Request(RequestError::InvalidEmail)
    ));
}

#[tokio::test]
async fn one_megabyte_password_is_refused_before_hashing() {
    let f = Fixture::new().await;
    let huge = "p".repeat(1 << 20);
    let login = f.engine.start(f.request()).await.unwrap();
    let fhirgate::login::Method::Password(login) = login.method("alice@example.org").await.unwrap()
    else {
        panic!()
    };
    let verifies = f.hasher.verifies.load(std::sync::atomic::Ordering::SeqCst);
    let err = unchanged(&f, login.password(&huge)).await;
    assert!(matches!(
        err,
        LoginError::Request(RequestError::Password(_))
    ));
    assert_eq!(
        err.to_string(),
        "Password must be no more than 128 characters"
    );
    assert_eq!(
        verifies,
        f.hasher.verifies.load(std::sync::atomic::Ordering::SeqCst)
    );
    let login = f.engine.start(f.request()).await.unwrap();
    let fhirgate::login::Method::Password(login) = login.method("alice@example.org").await.unwrap()
    else {
        panic!()
    };
    assert_eq!(
        unchanged(&f, login.password("")).await.to_string(),
        "Password must be at least 8 characters"
    );
}

#[tokio::test]
async fn unknown_and_garbage_handles() {
    let f = Fixture::new().await;
    let long = "x".repeat(10_000);
    for handle in [
        "",
        "nope",
        "\u{0}\u{1}",
        long.as_str(),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    ] {
        let err = unchanged(&f, f.engine.resume::<Profile>(handle)).await;
        assert!(
            matches!(err, LoginError::Request(RequestError::UnknownLogin)),
            "{handle:?}"
        );
        assert_eq!(err.to_string(), "Login not found");
    }
}

#[tokio::test]
async fn wrong_stage_handles() {
    let f = Fixture::new().await;
    let login = expect_profile(f.password("alice@example.org", PASSWORD).await.unwrap());
    let handle = login.handle().expose().to_owned();
    // Medplum's texts: alice has no second factor; no membership was chosen yet.
    let err = unchanged(&f, f.engine.resume::<SecondFactor>(&handle)).await;
    assert_eq!(err.to_string(), "User not enrolled in MFA");
    let err = unchanged(&f, f.engine.resume::<Consent>(&handle)).await;
    assert_eq!(err.to_string(), "Login profile not set");
    let err = unchanged(&f, f.engine.resume::<Authorized>(&handle)).await;
    assert!(matches!(
        err,
        LoginError::Request(RequestError::WrongStage { .. })
    ));
}

#[tokio::test]
async fn a_chosen_profile_and_a_wider_consent_answer_medplums_texts() {
    let f = Fixture::new().await;
    let login = f.alice_at_scope().await;
    let handle = login.handle().expose().to_owned();
    let err = f.engine.resume::<Profile>(&handle).await.unwrap_err();
    assert_eq!(err.to_string(), "Login profile already set");
    let err = login
        .grant(Some("openid user/Practitioner.r"))
        .await
        .unwrap_err();
    assert!(matches!(
        &err,
        LoginError::Request(RequestError::ScopeNotRequested(s)) if s.contains("Practitioner")
    ));
    assert_eq!(err.to_string(), "Invalid scope");
}

#[tokio::test]
async fn expired_logins() {
    let f = Fixture::new().await;
    let login = expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
    let handle = login.handle().expose().to_owned();
    f.clock.advance(time::Duration::minutes(15));
    let err = unchanged(&f, f.engine.resume::<SecondFactor>(&handle)).await;
    assert!(matches!(
        err,
        LoginError::Request(RequestError::LoginExpired)
    ));
    assert_eq!(err.to_string(), "Login expired");
    // A login value held past its deadline cannot move either, even with the right code.
    f.clock.advance(time::Duration::minutes(-1));
    let login = f.engine.resume::<SecondFactor>(&handle).await.unwrap();
    f.clock.advance(time::Duration::minutes(1));
    assert!(login.totp(&f.totp_now(0)).await.is_err());
    // Purging removes it.
    assert!(f.engine.purge_expired().await.unwrap() >= 1);
    assert_eq!(
        f.engine
            .resume::<SecondFactor>(&handle)
            .await
            .unwrap_err()
            .to_string(),
        "Login not found"
    );
}

#[tokio::test]
async fn malformed_login_requests() {
    let f = Fixture::new().await;
    let cases: Vec<(LoginRequest, &str)> = vec![
        (
            LoginRequest {
                client_id: Some("ghost".into()),
                ..f.request()
            },
            "Client not found",
        ),
        (
            LoginRequest {
                project_id: Some("p2".into()),
                ..f.request()
            },
            "Invalid projectId",
        ),
        (
            LoginRequest {
                scope: Some("patient/Observation.dus".into()),
                ..f.request()
            },
            "Invalid scope",
        ),
        (
            LoginRequest {
                scope: Some("openid \"quoted\"".into()),
                ..f.request()
            },
            "Invalid scope",
        ),
        (
            LoginRequest {
                scope: Some("x".repeat(5000)),
                ..f.request()
            },
            "Field scope is too long",
        ),
        (
            LoginRequest {
                nonce: Some("n".repeat(600)),
                ..f.request()
            },
            "Field nonce is too long",
        ),
        (
            LoginRequest {
                launch: Some("no-such-launch".into()),
                ..f.request()
            },
            "Launch not found",
        ),
        (
            LoginRequest {
                nonce: Some("a\u{0}b".into()),
                ..f.request()
            },
            "Field nonce must not contain control characters",
        ),
        (
            LoginRequest {
                resource_type: Some("patient; drop".into()),
                ..f.request()
            },
            "Invalid resourceType",
        ),
        (
            LoginRequest {
                code_challenge_method: Some("S512".into()),
                ..f.request()
            },
            "Invalid code challenge method",
        ),
        (
            LoginRequest {
                client_id: None,
                redirect_uri: Some(REDIRECT.into()),
                ..f.request()
            },
            "Invalid redirect URI",
        ),
    ];
    for (request, prefix) in cases {
        let err = unchanged(&f, f.engine.start(request.clone())).await;
        assert!(matches!(err, LoginError::Request(_)), "{request:?}");
        assert!(err.to_string().starts_with(prefix), "{err} vs {prefix}");
    }
}

#[tokio::test]
async fn wrong_totp_and_profile_inputs_leave_the_login_as_it_was() {
    let f = Fixture::new().await;
    let login = expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
    let handle = login.handle().expose().to_owned();
    for code in [
        "",
        "12345",
        "1234567",
        "abcdef",
        "１２３４５６",
        &"9".repeat(10_000),
    ] {
        let login = f.engine.resume::<SecondFactor>(&handle).await.unwrap();
        let err = login.totp(code).await.unwrap_err();
        if matches!(err, LoginError::Throttled { .. }) {
            break; // the per-login cap (5) ends the loop
        }
        assert_eq!(err.to_string(), "Invalid MFA token", "{code:?}");
    }
    // The login still waits for its factor, unchanged.
    assert_eq!(
        f.engine.login_stage(&handle).await.unwrap(),
        fhirgate::model::StageTag::SecondFactor
    );
}
