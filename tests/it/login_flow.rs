//! The whole login, stage by stage, for each kind of account.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common::*;
use fhirgate::audit::AuditKind;
use fhirgate::login::{Consent, Method, Passed, Profile, ProfileChoice, SecondFactor};
use fhirgate::model::{Amr, AuthMethod, MembershipId, StageTag, TotpState};
use fhirgate::store::{CodeRedemption, Directory, DirectoryAdmin, LoginStore, redeem_code};
use fhirgate::{LoginRequest, pkce};

#[tokio::test]
async fn password_login_with_one_membership_ends_with_a_bound_code() {
    let f = Fixture::new().await;
    let login = expect_profile(f.password("alice@example.org", PASSWORD).await.unwrap());
    assert_eq!(login.record().stage, StageTag::Profile);
    assert_eq!(login.record().amr, vec![Amr::Pwd]);
    assert_eq!(login.record().auth_method, AuthMethod::Password);
    let ProfileChoice::Chosen(login) = login.choose_if_single().await.unwrap() else {
        panic!("alice has one membership");
    };
    assert_eq!(
        login.record().membership,
        Some(MembershipId::new("m-alice"))
    );
    assert_eq!(
        login.record().profile.as_ref().unwrap().as_str(),
        "Practitioner/alice"
    );
    let (login, code) = login.grant(None).await.unwrap();
    assert_eq!(
        login.granted_scope(),
        "openid fhirUser user/Observation.cruds user/Patient.rs"
    );
    assert_eq!(code.expose().len(), 43);
    assert_eq!(
        code.expires_at(),
        f.engine.now() + time::Duration::seconds(60)
    );

    // Stored hashed and bound to client, redirect URI, challenge and nonce.
    let stored = f.store.login(login.id()).await.unwrap().unwrap();
    let code_state = stored.code.as_ref().unwrap();
    assert_eq!(code_state.hash, code.hash());
    assert!(!format!("{stored:?}").contains(code.expose()));
    assert_eq!(stored.params.client.as_ref().unwrap().as_str(), "app");
    assert_eq!(stored.params.redirect_uri.as_deref(), Some(REDIRECT));
    assert!(pkce::verify(
        stored.params.code_challenge.as_ref().unwrap(),
        VERIFIER
    ));

    match redeem_code(&f.store, &code.hash(), f.engine.now())
        .await
        .unwrap()
    {
        CodeRedemption::Redeemed(r) => assert_eq!(r.stage, StageTag::Granted),
        other => panic!("{other:?}"),
    }
    let kinds = f.audit.kinds();
    assert!(kinds.contains(&AuditKind::PasswordAccepted));
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, AuditKind::CodeIssued { .. }))
    );
}

#[tokio::test]
async fn totp_user_passes_the_second_factor_then_picks_a_profile() {
    let f = Fixture::new().await;
    let login = expect_second_factor(f.password("bob@example.org", PASSWORD).await.unwrap());
    let handle = login.handle().expose().to_owned();
    drop(login);

    // A later request: /auth/mfa/verify.
    let login = f.engine.resume::<SecondFactor>(&handle).await.unwrap();
    let login = login.totp(&f.totp_now(0)).await.unwrap();
    assert_eq!(login.record().amr, vec![Amr::Pwd, Amr::Otp]);

    // bob has memberships in p1 and p2, but the app client binds the login to p1.
    let ProfileChoice::Chosen(login) = login.choose_if_single().await.unwrap() else {
        panic!("only the p1 membership is eligible through the app client");
    };
    assert_eq!(
        login.record().membership,
        Some(MembershipId::new("m-bob-1"))
    );
    let (_, code) = login.grant(None).await.unwrap();
    assert!(matches!(
        redeem_code(&f.store, &code.hash(), f.engine.now())
            .await
            .unwrap(),
        CodeRedemption::Redeemed(_)
    ));
}

#[tokio::test]
async fn without_a_client_every_active_membership_is_eligible() {
    let f = Fixture::new().await;
    let request = LoginRequest {
        code_challenge: Some(CHALLENGE.into()),
        code_challenge_method: Some("S256".into()),
        client_id: Some(String::new()), // Medplum's SDK sends "" when it has no client
        ..LoginRequest::default()
    };
    let login = f
        .password_with(request, "bob@example.org", PASSWORD)
        .await
        .unwrap();
    let login = expect_second_factor(login)
        .totp(&f.totp_now(0))
        .await
        .unwrap();
    let mut ids: Vec<_> = login
        .memberships()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id.as_str().to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["m-bob-1", "m-bob-2"]);
    let login = login.choose(&MembershipId::new("m-bob-2")).await.unwrap();
    let (login, _) = login.grant(None).await.unwrap();
    // No client: the requested scope, narrowed only by the (full-access) policy.
    assert_eq!(login.granted_scope(), "openid");
}

#[tokio::test]
async fn mfa_required_user_enrols_during_login() {
    let f = Fixture::new().await;
    let Passed::Enrolment(login, uri) = f.password("carol@example.org", PASSWORD).await.unwrap()
    else {
        panic!("carol must enrol");
    };
    assert!(
        uri.expose()
            .starts_with("otpauth://totp/fhirgate:carol%40example.org?secret=")
    );
    assert!(!format!("{uri:?}").contains("secret"));
    // The authenticator app reads the secret from the URI.
    let user = f.store.user(&"carol".into()).await.unwrap().unwrap();
    let TotpState::Pending { secret } = &user.totp else {
        panic!("pending secret expected");
    };
    let code = fhirgate::credential::totp::code_at(secret, f.engine.now().unix_timestamp() as u64)
        .unwrap();
    let login = login.enrol(&code).await.unwrap();
    assert_eq!(login.record().amr, vec![Amr::Pwd, Amr::Otp]);
    assert!(
        f.store
            .user(&"carol".into())
            .await
            .unwrap()
            .unwrap()
            .mfa_enrolled()
    );
    assert!(f.audit.kinds().contains(&AuditKind::MfaEnrolled));
    // From now on carol's password logins need the factor.
    f.clock.advance(time::Duration::seconds(30));
    expect_second_factor(f.password("carol@example.org", PASSWORD).await.unwrap());
}

#[tokio::test]
async fn project_scoped_user_is_found_only_inside_its_project() {
    let f = Fixture::new().await;
    // Through the p2 client, frank@ is the project-scoped account.
    let mut request = f.request();
    request.client_id = Some("lab-app".into());
    request.scope = Some("openid user/*.rs".into());
    let login = expect_profile(
        f.password_with(request, "frank@example.org", PASSWORD)
            .await
            .unwrap(),
    );
    assert_eq!(login.record().user.as_ref().unwrap().as_str(), "frank-p2");
    let ProfileChoice::Chosen(login) = login.choose_if_single().await.unwrap() else {
        panic!()
    };
    assert_eq!(
        login.record().membership.as_ref().unwrap().as_str(),
        "m-frank-p2"
    );
    // Through the p1 client, the server-scoped account.
    let login = expect_profile(f.password("frank@example.org", PASSWORD).await.unwrap());
    assert_eq!(login.record().user.as_ref().unwrap().as_str(), "frank");
}

#[tokio::test]
async fn patient_profile_gives_patient_context_for_patient_scopes() {
    let f = Fixture::new().await;
    let mut request = f.request();
    request.scope = Some("openid patient/Observation.rs".into());
    let login = expect_profile(
        f.password_with(request, "pat@example.org", PASSWORD)
            .await
            .unwrap(),
    );
    // The inactive membership is not offered.
    let ProfileChoice::Chosen(login) = login.choose_if_single().await.unwrap() else {
        panic!("only the active membership is eligible")
    };
    assert_eq!(
        login.record().patient.as_ref().unwrap().as_str(),
        "Patient/pat"
    );
    let (login, _) = login.grant(None).await.unwrap();
    assert_eq!(login.granted_scope(), "openid patient/Observation.rs");
}

#[tokio::test]
async fn consent_narrows_and_a_later_narrowing_narrows_the_same_code() {
    let f = Fixture::new().await;
    let login = f.alice_at_scope().await;
    let (login, first) = login
        .grant(Some("openid user/Observation.rs"))
        .await
        .unwrap();
    assert_eq!(login.granted_scope(), "openid user/Observation.rs");
    let old_handle = login.handle().expose().to_owned();
    // No second code: the outstanding one now grants the narrower scope.
    let login = login.narrow("openid user/Observation.r").await.unwrap();
    assert_eq!(login.granted_scope(), "openid user/Observation.r");
    assert_ne!(login.handle().expose(), old_handle, "the handle rotates");
    // Widening back is refused.
    let again = f
        .engine
        .resume::<fhirgate::login::Authorized>(login.handle().expose())
        .await
        .unwrap();
    assert!(again.narrow("openid user/Observation.rs").await.is_err());
    match redeem_code(&f.store, &first.hash(), f.engine.now())
        .await
        .unwrap()
    {
        CodeRedemption::Redeemed(record) => assert_eq!(
            record.granted_scope.as_deref(),
            Some("openid user/Observation.r")
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn external_provider_chosen_by_email_domain_case_insensitively() {
    let f = Fixture::new().await;
    f.store
        .put_domain(&fhirgate::model::DomainConfiguration {
            domain: "Hospital.EXAMPLE".into(),
            identity_provider: Some(idp()),
        })
        .await
        .unwrap();
    let login = f.engine.start(f.request()).await.unwrap();
    let Method::External { login, domain } = login.method("Nurse@hospital.example").await.unwrap()
    else {
        panic!("domain has an identity provider");
    };
    assert_eq!(domain.as_deref(), Some("hospital.example"));
    let redirect = login.federate(domain.as_deref()).await.unwrap();
    assert_eq!(redirect.domain.as_deref(), Some("hospital.example"));
    let url = redirect.authorize_url;
    assert!(
        url.as_str()
            .starts_with("https://idp.hospital.example/authorize?")
    );
    let pairs: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(pairs["response_type"], "code");
    assert_eq!(pairs["client_id"], "fhirgate");
    assert_eq!(
        pairs["redirect_uri"],
        "https://auth.example.org/auth/external"
    );
    assert_eq!(pairs["code_challenge_method"], "S256");
    // The email stays out of URLs.
    assert!(!pairs.contains_key("login_hint"));
    assert!(!url.as_str().contains("nurse"));
    let record = redirect.login.record();
    assert_eq!(record.stage, StageTag::External);
    let pending = record.external.as_ref().unwrap();
    assert_eq!(
        pending.provider,
        fhirgate::model::ProviderSource::Domain("hospital.example".into())
    );
    // The provider's client secret is read from the directory at the callback, never
    // copied into the login record.
    assert!(!serde_json::to_string(record).unwrap().contains("s3cret"));
    // The verifier never leaves the server: only its challenge is in the URL.
    assert!(!url.as_str().contains(&pending.pkce_verifier));
    assert_eq!(
        pairs["code_challenge"],
        pkce::s256_challenge(&pending.pkce_verifier)
    );
    assert_eq!(pairs["nonce"], pending.nonce);
    assert_eq!(
        fhirgate::secret::SecretHash::of_presented(&pairs["state"]),
        pending.state_hash
    );
    // Stored and resumable for the callback.
    let handle = redirect.login.handle().expose().to_owned();
    f.engine
        .resume::<fhirgate::login::External>(&handle)
        .await
        .unwrap();
}

#[tokio::test]
async fn external_provider_chosen_by_client_configuration() {
    let f = Fixture::new().await;
    let mut client = f.store.client(&"app".into()).await.unwrap().unwrap();
    client.identity_provider = Some(idp());
    f.store.put_client(&client).await.unwrap();
    let login = f.engine.start(f.request()).await.unwrap();
    let Method::External { login, domain } = login.method("alice@example.org").await.unwrap()
    else {
        panic!("the client has an identity provider");
    };
    assert_eq!(domain, None);
    let redirect = login.federate(None).await.unwrap();
    assert_eq!(redirect.domain, None);
    assert_eq!(
        redirect.login.record().external.as_ref().unwrap().provider,
        fhirgate::model::ProviderSource::Client("app".into())
    );
}

#[tokio::test]
async fn a_login_resumes_in_every_stored_stage() {
    let f = Fixture::new().await;
    let login = expect_profile(f.password("alice@example.org", PASSWORD).await.unwrap());
    let handle = login.handle().expose().to_owned();
    let login = f.engine.resume::<Profile>(&handle).await.unwrap();
    let ProfileChoice::Chosen(chosen) = login.choose_if_single().await.unwrap() else {
        panic!()
    };
    // Each stored transition hands out a new handle; the previous one is dead.
    assert!(matches!(
        f.engine.resume::<Consent>(&handle).await,
        Err(fhirgate::LoginError::Request(
            fhirgate::error::RequestError::UnknownLogin
        ))
    ));
    let handle = chosen.handle().expose().to_owned();
    let login = f.engine.resume::<Consent>(&handle).await.unwrap();
    let (granted, _) = login.grant(None).await.unwrap();
    let handle = granted.handle().expose().to_owned();
    assert_eq!(
        f.engine.login_stage(&handle).await.unwrap(),
        StageTag::Authorized
    );
    f.engine
        .resume::<fhirgate::login::Authorized>(&handle)
        .await
        .unwrap();
}

#[tokio::test]
async fn mfa_account_management_enrol_verify_disable() {
    let f = Fixture::new().await;
    let alice = "alice".into();
    assert!(!f.engine.mfa().status(&alice).await.unwrap().enrolled);
    let uri = f.engine.mfa().begin_enrolment(&alice).await.unwrap();
    let secret = totp_rs::Totp::from_url(uri.expose()).unwrap();
    let code = secret
        .generate(f.engine.now().unix_timestamp() as u64)
        .to_string();
    let err = f
        .engine
        .mfa()
        .confirm_enrolment(&alice, "000000")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "Invalid token");
    f.engine
        .mfa()
        .confirm_enrolment(&alice, &code)
        .await
        .unwrap();
    assert!(f.engine.mfa().status(&alice).await.unwrap().enrolled);
    let err = f.engine.mfa().begin_enrolment(&alice).await.unwrap_err();
    assert_eq!(err.to_string(), "Already enrolled");
    // Disabling needs a fresh code (the enrolment code's step is used up).
    f.clock.advance(time::Duration::seconds(30));
    let err = f.engine.mfa().disable(&alice, &code).await.unwrap_err();
    assert_eq!(err.to_string(), "Invalid token");
    let code = secret
        .generate(f.engine.now().unix_timestamp() as u64)
        .to_string();
    f.engine.mfa().disable(&alice, &code).await.unwrap();
    assert!(!f.engine.mfa().status(&alice).await.unwrap().enrolled);
    let err = f.engine.mfa().disable(&alice, &code).await.unwrap_err();
    assert_eq!(err.to_string(), "User not enrolled in MFA");
}

fn idp() -> fhirgate::model::IdentityProvider {
    fhirgate::model::IdentityProvider {
        issuer: Some("https://idp.hospital.example".into()),
        authorize_url: "https://idp.hospital.example/authorize".parse().unwrap(),
        token_url: "https://idp.hospital.example/token".parse().unwrap(),
        userinfo_url: None,
        jwks_uri: None,
        client_id: "fhirgate".into(),
        client_secret: Some("s3cret".into()),
        token_auth_method: fhirgate::model::IdpTokenAuth::ClientSecretBasic,
        use_subject: false,
        scope: "openid profile email".into(),
        access_token_audiences: Vec::new(),
        iss_parameter_supported: false,
        introspection_url: None,
    }
}

/// Compile-time check: every step's future is `Send`, so a multi-threaded server (axum on
/// tokio) can hold it across `.await`. Never called; it only has to type-check.
#[allow(dead_code)]
#[allow(clippy::too_many_arguments)]
fn every_step_is_send(
    engine: fhirgate::Engine,
    domain: fhirgate::Login<fhirgate::login::Domain>,
    credentials: fhirgate::Login<fhirgate::login::Credentials>,
    second: fhirgate::Login<SecondFactor>,
    enrolment: fhirgate::Login<fhirgate::login::Enrolment>,
    profile: fhirgate::Login<Profile>,
    scope: fhirgate::Login<Consent>,
    authorized: fhirgate::Login<fhirgate::login::Authorized>,
) {
    fn send<T: Send>(_: T) {}
    let user = fhirgate::model::UserId::new("u");
    send(engine.start(LoginRequest::default()));
    send(engine.resume::<Profile>("h"));
    send(engine.mfa().status(&user));
    send(engine.mfa().begin_enrolment(&user));
    send(engine.mfa().confirm_enrolment(&user, "123456"));
    send(engine.mfa().disable(&user, "123456"));
    send(engine.hash_new_password("p"));
    send(engine.purge_expired());
    send(domain.method("a@b.c"));
    send(credentials.password("p"));
    send(second.totp("123456"));
    send(enrolment.enrol("123456"));
    send(profile.choose_if_single());
    send(scope.grant(None));
    send(authorized.narrow("openid"));
}
