//! Regression tests named after the attack each one stops.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::atomic::Ordering;

use crate::common::*;
use fhirgate::audit::{AuditKind, SecondFactorFailure, SignInFailure};
use fhirgate::login::{Authorized, Consent, Profile, ProfileChoice, SecondFactor};
use fhirgate::model::{
    AccessPolicy, AccessPolicyId, IpAccessRule, IpAction, MembershipId, StageTag,
};
use fhirgate::store::{CodeRedemption, Directory, DirectoryAdmin, LoginStore, redeem_code};
use fhirgate::{CredentialError, LoginError, PolicyError, RequestError};

fn text<T: std::fmt::Debug>(r: Result<T, LoginError>) -> String {
    r.unwrap_err().to_string()
}

#[tokio::test]
async fn mfa_bypass_by_resuming_a_later_stage_is_refused() {
    // Medplum let /auth/profile and /auth/scope continue a login that had only passed the
    // password. Here the login waits in SecondFactor and nothing else can resume it.
    let f = Fixture::new().await;
    let login = expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
    let handle = login.handle().expose().to_owned();
    for err in [
        f.engine.resume::<Profile>(&handle).await.unwrap_err(),
        f.engine.resume::<Consent>(&handle).await.unwrap_err(),
        f.engine.resume::<Authorized>(&handle).await.unwrap_err(),
    ] {
        assert!(matches!(
            err,
            LoginError::Request(RequestError::WrongStage {
                found: StageTag::SecondFactor,
                ..
            })
        ));
    }
    // Still waiting for the factor; no code anywhere.
    let record = f
        .store
        .login_by_handle(&fhirgate::secret::SecretHash::of_presented(&handle))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.stage, StageTag::SecondFactor);
    assert!(record.code.is_none());
}

#[tokio::test]
async fn user_enumeration_one_answer_and_one_hash_for_every_failure() {
    let f = Fixture::new().await;
    let cases = [
        ("nobody@example.org", PASSWORD, SignInFailure::UnknownUser),
        (
            "alice@example.org",
            "wrong password!",
            SignInFailure::WrongPassword,
        ),
        ("dave@example.org", PASSWORD, SignInFailure::NoPassword),
        (
            "erin@example.org",
            PASSWORD,
            SignInFailure::NoEligibleMembership,
        ),
    ];
    for (email, password, reason) in cases {
        let before = f.hasher.verifies.load(Ordering::SeqCst);
        let err = f.password(email, password).await.unwrap_err();
        assert!(matches!(
            err,
            LoginError::Credentials(CredentialError::InvalidCredentials)
        ));
        assert_eq!(err.to_string(), "Email or password is invalid");
        // Exactly one argon2 verification in every case (a dummy one when there is no hash).
        assert_eq!(
            f.hasher.verifies.load(Ordering::SeqCst) - before,
            1,
            "{email}"
        );
        assert_eq!(
            f.audit.kinds().last(),
            Some(&AuditKind::PasswordRejected { reason }),
            "{email}"
        );
    }
    // No login was stored for any of them.
    assert_eq!(f.store.login_count(), 0);
}

#[tokio::test]
async fn totp_replay_of_a_used_code_is_refused() {
    let f = Fixture::new().await;
    let code = f.totp_now(0);
    let first = expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
    first.totp(&code).await.unwrap();
    let second = expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
    let err = second.totp(&code).await.unwrap_err();
    assert!(matches!(
        err,
        LoginError::Credentials(CredentialError::InvalidMfaToken)
    ));
    assert_eq!(err.to_string(), "Invalid MFA token");
    assert_eq!(
        f.audit.kinds().last(),
        Some(&AuditKind::SecondFactorRejected {
            reason: SecondFactorFailure::Replayed
        })
    );
}

#[tokio::test]
async fn totp_older_step_after_a_newer_one_is_refused() {
    // RFC 6238 §5.2 / test-vectors T: after step T is accepted, T−1 is refused though it is
    // inside the ±1 window.
    let f = Fixture::new().await;
    let login = expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
    login.totp(&f.totp_now(0)).await.unwrap();
    let login = expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
    assert_eq!(text(login.totp(&f.totp_now(-1)).await), "Invalid MFA token");
    // The next step is fine.
    let login = expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
    login.totp(&f.totp_now(1)).await.unwrap();
}

#[tokio::test]
async fn totp_window_is_plus_minus_one_step() {
    let f = Fixture::new().await;
    for steps in [-2, 2] {
        let login = expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
        assert_eq!(
            text(login.totp(&f.totp_now(steps)).await),
            "Invalid MFA token"
        );
    }
    let login = expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
    login.totp(&f.totp_now(-1)).await.unwrap();
}

#[tokio::test]
async fn totp_brute_force_is_capped_per_login() {
    let f = Fixture::new().await;
    let login = expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
    let handle = login.handle().expose().to_owned();
    for _ in 0..5 {
        let login = f.engine.resume::<SecondFactor>(&handle).await.unwrap();
        assert_eq!(text(login.totp("000000").await), "Invalid MFA token");
    }
    // The sixth attempt is refused before the code is looked at — even the right code.
    let login = f.engine.resume::<SecondFactor>(&handle).await.unwrap();
    let err = login.totp(&f.totp_now(0)).await.unwrap_err();
    assert!(matches!(err, LoginError::Throttled { .. }));
    assert_eq!(err.fault(), fhirgate::Fault::Throttled);
}

#[tokio::test]
async fn totp_brute_force_is_capped_per_user_across_logins() {
    let f = Fixture::new().await;
    // Ten wrong codes spread over fresh logins (the per-login cap never triggers).
    for _ in 0..5 {
        for _ in 0..2 {
            let login =
                expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
            assert_eq!(text(login.totp("000000").await), "Invalid MFA token");
        }
    }
    let login = expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
    assert!(matches!(
        login.totp(&f.totp_now(0)).await,
        Err(LoginError::Throttled { .. })
    ));
    // The window ends by itself: no permanent lockout.
    f.clock.advance(time::Duration::minutes(15));
    let login = expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
    login.totp(&f.totp_now(0)).await.unwrap();
}

/// A login request for alice's account from `address`.
fn from(f: &Fixture, address: &str) -> fhirgate::LoginRequest {
    let mut request = f.request();
    request.remote_address = Some(address.parse().unwrap());
    request
}

#[tokio::test]
async fn password_guessing_is_throttled_per_account_and_source_even_with_the_right_password() {
    let f = Fixture::new().await;
    let attacker = "203.0.113.7";
    for _ in 0..10 {
        assert_eq!(
            text(
                f.password_with(from(&f, attacker), "alice@example.org", "not the password")
                    .await
            ),
            "Email or password is invalid"
        );
    }
    let before = f.hasher.verifies.load(Ordering::SeqCst);
    let err = f
        .password_with(from(&f, attacker), "alice@example.org", PASSWORD)
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::Throttled { .. }));
    // Refused before hashing: a flood costs the server nothing.
    assert_eq!(f.hasher.verifies.load(Ordering::SeqCst), before);
    // Unknown accounts throttle the same way, so throttling reveals nothing.
    for _ in 0..10 {
        f.password_with(from(&f, attacker), "ghost@example.org", "not the password")
            .await
            .unwrap_err();
    }
    assert!(matches!(
        f.password_with(from(&f, attacker), "ghost@example.org", PASSWORD)
            .await,
        Err(LoginError::Throttled { .. })
    ));
    // The window ends by itself.
    f.clock.advance(time::Duration::minutes(15));
    expect_profile(
        f.password_with(from(&f, attacker), "alice@example.org", PASSWORD)
            .await
            .unwrap(),
    );
}

#[tokio::test]
async fn an_attacker_cannot_lock_the_owner_out_by_failing_passwords() {
    // Medplum's and our old per-account limit: 100 wrong passwords an hour from anyone, and
    // the owner's right password was refused for the rest of the hour.
    let f = Fixture::new().await;
    for i in 0..10 {
        let attacker = format!("203.0.113.{i}");
        for _ in 0..10 {
            f.password_with(from(&f, &attacker), "alice@example.org", "not the password")
                .await
                .unwrap_err();
        }
    }
    // The owner, from an address of their own, signs in at once.
    expect_profile(
        f.password_with(from(&f, "198.51.100.20"), "alice@example.org", PASSWORD)
            .await
            .unwrap(),
    );
    // A project-scoped attempt is the same account, not a fresh bucket.
    let mut scoped = from(&f, "203.0.113.0");
    scoped.project_id = Some("p1".into());
    assert!(matches!(
        f.password_with(scoped, "alice@example.org", "not the password")
            .await,
        Err(LoginError::Throttled { .. })
    ));
}

#[tokio::test]
async fn a_distributed_guesser_slows_down_exponentially_per_address() {
    let f = Fixture::new().await;
    // Ten free failures from ten addresses: no back-off yet.
    for i in 0..10 {
        let err = f
            .password_with(
                from(&f, &format!("203.0.113.{i}")),
                "alice@example.org",
                "not the password",
            )
            .await
            .unwrap_err();
        assert!(matches!(err, LoginError::Credentials(_)), "{err}");
    }
    // From then on each failing address waits 1 s, 2 s, 4 s … before its next attempt.
    let guess = |address: &'static str| {
        let f = &f;
        async move {
            f.password_with(from(f, address), "alice@example.org", "not the password")
                .await
                .unwrap_err()
        }
    };
    assert!(matches!(
        guess("203.0.113.50").await,
        LoginError::Credentials(_)
    ));
    assert!(matches!(
        guess("203.0.113.50").await,
        LoginError::Throttled { .. }
    ));
    f.clock.advance(time::Duration::seconds(1));
    assert!(matches!(
        guess("203.0.113.50").await,
        LoginError::Credentials(_)
    ));
    f.clock.advance(time::Duration::seconds(1));
    assert!(matches!(
        guess("203.0.113.50").await,
        LoginError::Throttled { .. }
    ));
    f.clock.advance(time::Duration::seconds(1));
    assert!(matches!(
        guess("203.0.113.50").await,
        LoginError::Credentials(_)
    ));
    // Another address is not slowed by this one's slot, but by the account's count.
    assert!(matches!(
        guess("203.0.113.51").await,
        LoginError::Credentials(_)
    ));
    assert!(matches!(
        guess("203.0.113.51").await,
        LoginError::Throttled { .. }
    ));
    // A success clears the account's failures.
    expect_profile(
        f.password_with(from(&f, "198.51.100.20"), "alice@example.org", PASSWORD)
            .await
            .unwrap(),
    );
    assert!(matches!(
        guess("203.0.113.52").await,
        LoginError::Credentials(_)
    ));
    assert!(matches!(
        guess("203.0.113.52").await,
        LoginError::Credentials(_)
    ));
}

#[tokio::test]
async fn one_address_cannot_make_the_store_keep_a_counter_for_every_email() {
    let f = Fixture::new().await;
    let address = "203.0.113.99";
    for i in 0..160 {
        f.password_with(
            from(&f, address),
            &format!("nobody{i}@example.org"),
            "not the password",
        )
        .await
        .unwrap_err();
    }
    let stored = f.store.once_count();
    let before = f.hasher.verifies.load(Ordering::SeqCst);
    for i in 160..400 {
        assert!(matches!(
            f.password_with(
                from(&f, address),
                &format!("nobody{i}@example.org"),
                "not the password",
            )
            .await,
            Err(LoginError::Throttled { .. })
        ));
    }
    // Nothing more was stored or hashed for the refused ones.
    assert_eq!(f.store.once_count(), stored);
    assert_eq!(f.hasher.verifies.load(Ordering::SeqCst), before);
}

#[tokio::test]
async fn ip_prefix_confusion_does_not_block_a_neighbouring_address() {
    // Medplum matched IP rules by string prefix: a block on 10.0.0.1 also hit 10.0.0.12.
    let f = Fixture::new().await;
    let mut policy = AccessPolicy::full_access(AccessPolicyId::new("ip"));
    policy.ip_rules = vec![IpAccessRule {
        name: None,
        value: "10.0.0.1".parse().unwrap(),
        action: IpAction::Block,
    }];
    f.store.put_access_policy(&policy).await.unwrap();
    let mut m = f
        .store
        .membership(&MembershipId::new("m-alice"))
        .await
        .unwrap()
        .unwrap();
    m.access_policy = Some(policy.id.clone());
    f.store.put_membership(&m).await.unwrap();

    let mut request = f.request();
    request.remote_address = Some("10.0.0.12".parse().unwrap());
    let login = expect_profile(
        f.password_with(request, "alice@example.org", PASSWORD)
            .await
            .unwrap(),
    );
    let ProfileChoice::Chosen(_) = login.choose_if_single().await.unwrap() else {
        panic!()
    };

    let mut request = f.request();
    request.remote_address = Some("10.0.0.1".parse().unwrap());
    let login = expect_profile(
        f.password_with(request, "alice@example.org", PASSWORD)
            .await
            .unwrap(),
    );
    let err = login
        .choose(&MembershipId::new("m-alice"))
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::Policy(PolicyError::IpNotAllowed)));
    assert_eq!(err.to_string(), "IP address not allowed");
}

#[tokio::test]
async fn pkce_downgrade_to_plain_or_missing_method_is_refused() {
    let f = Fixture::new().await;
    let mut r = f.request();
    r.code_challenge = Some(VERIFIER.into());
    r.code_challenge_method = Some("plain".into());
    let err = f.engine.start(r).await.unwrap_err();
    assert!(matches!(
        err,
        LoginError::Request(RequestError::PlainPkceRefused)
    ));
    assert!(
        err.to_string()
            .starts_with("Invalid code challenge method: plain is refused")
    );

    let mut r = f.request();
    r.code_challenge_method = None;
    assert_eq!(
        text(f.engine.start(r).await),
        "Invalid code challenge method"
    );

    let mut r = f.request();
    r.code_challenge = None;
    assert_eq!(text(f.engine.start(r).await), "Invalid code challenge");

    let mut r = f.request();
    r.code_challenge = None;
    r.code_challenge_method = None;
    assert_eq!(
        text(f.engine.start(r).await),
        "Missing code challenge: PKCE with S256 is required"
    );

    let mut r = f.request();
    r.code_challenge = Some("not-a-sha256-challenge".into());
    assert_eq!(text(f.engine.start(r).await), "Invalid code challenge");
}

#[tokio::test]
async fn guessed_or_leaked_login_id_is_not_a_credential() {
    // Medplum's login id alone continued a login; here only the 256-bit handle does.
    let f = Fixture::new().await;
    let login = expect_profile(f.password("alice@example.org", PASSWORD).await.unwrap());
    let id = login.id().as_str().to_owned();
    let err = f.engine.resume::<Profile>(&id).await.unwrap_err();
    assert!(matches!(
        err,
        LoginError::Request(RequestError::UnknownLogin)
    ));
    assert_eq!(err.to_string(), "Login not found");
    // The store keeps only the handle's hash.
    let record = f.store.login(login.id()).await.unwrap().unwrap();
    assert!(
        !serde_json::to_string(&record)
            .unwrap()
            .contains(login.handle().expose())
    );
}

#[tokio::test]
async fn authorization_code_replay_is_detected_and_expiry_is_sixty_seconds() {
    let f = Fixture::new().await;
    let login = f.alice_at_scope().await;
    let (_, code) = login.grant(None).await.unwrap();
    f.clock.advance(time::Duration::seconds(60));
    assert_eq!(
        redeem_code(&f.store, &code.hash(), f.engine.now())
            .await
            .unwrap(),
        CodeRedemption::Expired
    );

    let login = f.alice_at_scope().await;
    let (_, code) = login.grant(None).await.unwrap();
    f.clock.advance(time::Duration::seconds(59));
    assert!(matches!(
        redeem_code(&f.store, &code.hash(), f.engine.now())
            .await
            .unwrap(),
        CodeRedemption::Redeemed(_)
    ));
    assert!(matches!(
        redeem_code(&f.store, &code.hash(), f.engine.now())
            .await
            .unwrap(),
        CodeRedemption::Replayed(_)
    ));
}

#[tokio::test]
async fn scope_escalation_through_consent_is_refused() {
    let f = Fixture::new().await;
    let login = f.alice_at_scope().await;
    let handle = login.handle().expose().to_owned();
    // Medplum let non-SMART scopes be added after consent.
    for extra in [
        "openid offline_access",
        "openid user/Practitioner.r",
        "openid email",
    ] {
        let login = f.engine.resume::<Consent>(&handle).await.unwrap();
        let err = login.grant(Some(extra)).await.unwrap_err();
        assert!(
            matches!(err, LoginError::Request(RequestError::ScopeNotRequested(_))),
            "{extra}"
        );
    }
    let login = f.engine.resume::<Consent>(&handle).await.unwrap();
    let (login, _) = login.grant(Some("openid user/Patient.r")).await.unwrap();
    let err = login.narrow("openid user/Patient.rs").await.unwrap_err();
    assert!(matches!(
        err,
        LoginError::Request(RequestError::ScopeNotRequested(_))
    ));
}

#[tokio::test]
async fn scope_never_exceeds_what_the_client_may_be_granted() {
    let f = Fixture::new().await;
    let mut r = f.request();
    r.scope =
        Some("openid system/*.cruds user/Observation.cruds patient/Patient.cruds phone".into());
    let login = expect_profile(
        f.password_with(r, "alice@example.org", PASSWORD)
            .await
            .unwrap(),
    );
    let ProfileChoice::Chosen(login) = login.choose_if_single().await.unwrap() else {
        panic!()
    };
    let handle = login.handle().expose().to_owned();
    // patient/Patient survives the client as .rs and needs a patient in context; alice acts
    // as a Practitioner without a launch, so the grant is refused rather than widened.
    let err = login.grant(None).await.unwrap_err();
    assert!(matches!(
        err,
        LoginError::Policy(PolicyError::MissingPatientContext)
    ));
    assert_eq!(err.to_string(), "Missing patient context");
    // Without it: system/ and phone are not the client's to have; cruds on Observation is.
    let login = f.engine.resume::<Consent>(&handle).await.unwrap();
    let (login, _) = login
        .grant(Some("openid system/*.cruds user/Observation.cruds phone"))
        .await
        .unwrap();
    assert_eq!(login.granted_scope(), "openid user/Observation.cruds");
}

#[tokio::test]
async fn inactive_or_foreign_membership_cannot_be_chosen() {
    let f = Fixture::new().await;
    let login = expect_profile(f.password("pat@example.org", PASSWORD).await.unwrap());
    let handle = login.handle().expose().to_owned();
    assert_eq!(
        text(login.choose(&MembershipId::new("m-pat-old")).await),
        "Profile not active"
    );
    let login = f.engine.resume::<Profile>(&handle).await.unwrap();
    assert_eq!(
        text(login.choose(&MembershipId::new("m-alice")).await),
        "Invalid profile"
    );
    let login = f.engine.resume::<Profile>(&handle).await.unwrap();
    assert_eq!(
        text(login.choose(&MembershipId::new("nope")).await),
        "Profile not found"
    );
    // bob's p2 membership is outside the app client's project.
    let login = expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
    let login = login.totp(&f.totp_now(0)).await.unwrap();
    assert_eq!(
        text(login.choose(&MembershipId::new("m-bob-2")).await),
        "Invalid profile"
    );
    // Deactivated between choice and grant: the grant re-checks.
    let login = f.alice_at_scope().await;
    let mut m = f
        .store
        .membership(&MembershipId::new("m-alice"))
        .await
        .unwrap()
        .unwrap();
    m.active = false;
    f.store.put_membership(&m).await.unwrap();
    assert_eq!(text(login.grant(None).await), "Profile not active");
}

#[tokio::test]
async fn google_only_project_refuses_password_logins() {
    let f = Fixture::new().await;
    let mut p = f.store.project(&"p1".into()).await.unwrap().unwrap();
    p.features
        .insert(fhirgate::model::FEATURE_GOOGLE_AUTH_REQUIRED.into());
    f.store.put_project(&p).await.unwrap();
    let login = expect_profile(f.password("alice@example.org", PASSWORD).await.unwrap());
    assert_eq!(
        text(login.choose(&MembershipId::new("m-alice")).await),
        "Google authentication is required"
    );
}

#[tokio::test]
async fn open_redirect_through_an_unregistered_redirect_uri_is_refused() {
    let f = Fixture::new().await;
    for uri in [
        "https://evil.example/callback",
        "https://app.example.org/callback/..",
        "https://app.example.org/callback?x",
    ] {
        let mut r = f.request();
        r.redirect_uri = Some(uri.into());
        assert_eq!(
            text(f.engine.start(r).await),
            "Invalid redirect URI",
            "{uri}"
        );
    }
    // Loopback redirect URIs may change port only.
    let mut r = f.request();
    r.redirect_uri = Some("http://127.0.0.1:49152/cb".into());
    f.engine.start(r).await.unwrap();
}

#[tokio::test]
async fn revoked_login_cannot_continue() {
    let f = Fixture::new().await;
    let login = expect_profile(f.password("alice@example.org", PASSWORD).await.unwrap());
    let handle = login.handle().expose().to_owned();
    assert!(f.store.revoke_login(login.id()).await.unwrap());
    assert_eq!(
        text(f.engine.resume::<Profile>(&handle).await),
        "Login revoked"
    );
    // A Login value taken before the revocation cannot move it either.
    assert_eq!(
        text(login.choose(&MembershipId::new("m-alice")).await),
        "Login was changed by a concurrent request; retry"
    );
}

#[tokio::test]
async fn totp_guessing_is_capped_per_day_not_only_per_window() {
    // Ten guesses per 15-minute window reset into about a thousand a day.
    let f = Fixture::new().await;
    for window in 0..3 {
        for _ in 0..10 {
            let login =
                expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
            assert_eq!(
                text(login.totp("000000").await),
                "Invalid MFA token",
                "window {window}"
            );
        }
        f.clock.advance(time::Duration::minutes(15));
    }
    // A fresh window, but the day's thirty are spent: even the right code waits.
    let login = expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
    assert!(matches!(
        login.totp(&f.totp_now(0)).await,
        Err(LoginError::Throttled { .. })
    ));
    f.clock.advance(time::Duration::days(1));
    let login = expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
    login.totp(&f.totp_now(0)).await.unwrap();
}

#[test]
fn login_params_debug_shows_no_state_or_nonce() {
    let params = fhirgate::model::LoginParams {
        state: Some("client-state-secret-0123".into()),
        nonce: Some("nonce-secret-4567".into()),
        scope: "openid".into(),
        ..Default::default()
    };
    let shown = format!("{params:?}");
    assert!(!shown.contains("client-state-secret-0123"), "{shown}");
    assert!(!shown.contains("nonce-secret-4567"), "{shown}");
    assert!(
        shown.contains("<redacted>") && shown.contains("openid"),
        "{shown}"
    );
}

#[tokio::test]
async fn an_unusable_verify_cache_setting_is_refused_not_a_panic_later() {
    // `now - bound` overflowed at the first verification with a huge bound.
    for bound in [
        time::Duration::MAX,
        time::Duration::ZERO,
        time::Duration::seconds(-5),
        time::Duration::hours(2),
    ] {
        let mut config = config();
        config.oauth.verify_cache = Some(bound);
        let built = fhirgate::Engine::builder().config(config).build();
        let error = built.unwrap_err().to_string();
        assert!(error.contains("verify_cache"), "{bound}: {error}");
    }
    let mut config = config();
    config.oauth.verify_cache = Some(time::Duration::seconds(30));
    fhirgate::Engine::builder().config(config).build().unwrap();
}
