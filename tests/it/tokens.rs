//! The token layer end to end: grants, token contents, verification, introspection,
//! revocation, UserInfo, discovery and key rotation. Attack-named where a test stops one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fhirgate::model::{ClientStatus, MembershipId};
use fhirgate::oauth::{Form, OAuthResponse, TokenRequest};
use fhirgate::store::{Directory, DirectoryAdmin, LoginStore};
use fhirgate::token::{Subject, VerifyError};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Decodes a JWT's header and payload without verifying (what an outside reader sees).
fn parts(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let header = URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
    let payload = URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap();
    (
        serde_json::from_slice(&header).unwrap(),
        serde_json::from_slice(&payload).unwrap(),
    )
}

fn error_of(r: &OAuthResponse) -> (&str, u16) {
    (r.body["error"].as_str().unwrap_or("<none>"), r.status)
}

#[tokio::test]
async fn code_exchange_issues_rfc9068_access_token_and_oidc_id_token() {
    let f = Fixture::new().await;
    let (login, code) = f
        .code_for(
            "confidential",
            "openid fhirUser email profile offline_access user/Observation.rs",
        )
        .await;
    let r = f.redeem("confidential", &code).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    assert_eq!(r.header("Pragma"), Some("no-cache"));
    assert_eq!(field(&r, "token_type"), "Bearer");
    assert_eq!(r.body["expires_in"], 3600);
    assert_eq!(
        field(&r, "scope"),
        "openid fhirUser profile email offline_access user/Observation.rs"
    );
    // Medplum's extra fields.
    assert_eq!(r.body["project"]["reference"], "Project/p1");
    assert_eq!(r.body["profile"]["reference"], "Practitioner/alice");
    assert_eq!(r.body["need_patient_banner"], false);

    let access = field(&r, "access_token");
    let (header, claims) = parts(access);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert!(header["kid"].is_string());
    for name in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "jti",
        "client_id",
        "scope",
        "login_id",
        "profile",
    ] {
        assert!(!claims[name].is_null(), "access token lacks {name}");
    }
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], "confidential");
    assert_eq!(claims["login_id"], login.id().as_str());

    let id_token = field(&r, "id_token");
    let (id_header, id) = parts(id_token);
    assert_eq!(id_header["typ"], "JWT");
    assert_eq!(id["aud"], "confidential");
    assert_eq!(id["sub"], claims["sub"]);
    assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
    assert!(id["auth_time"].is_i64(), "auth_time must be an integer");
    assert_eq!(id["fhirUser"], "Practitioner/alice");
    assert_eq!(id["email"], "alice@example.org");
    assert_eq!(id["amr"], serde_json::json!(["pwd"]));
    // at_hash computed independently: left half of SHA-256 of the access token.
    let digest = Sha256::digest(access.as_bytes());
    assert_eq!(id["at_hash"], URL_SAFE_NO_PAD.encode(&digest[..16]));

    // The refresh token is opaque, 256 bits, and stored only as a hash.
    let refresh = field(&r, "refresh_token");
    assert_eq!(refresh.len(), 43);
    assert!(!refresh.contains('.'));
    let stored = f.store.login(login.id()).await.unwrap().unwrap();
    assert!(!serde_json::to_string(&stored).unwrap().contains(refresh));

    // A resource server accepts the access token.
    let principal = f.engine.verifier().verify(access).await.unwrap();
    assert_eq!(principal.subject, Subject::User("alice".into()));
    assert_eq!(principal.membership, MembershipId::new("m-alice"));
    assert_eq!(principal.project.as_str(), "p1");
    assert_eq!(principal.profile.as_str(), "Practitioner/alice");
}

#[tokio::test]
async fn medplum_sdk_exchange_with_empty_client_id_and_an_unrequested_redirect_uri() {
    // Medplum's TypeScript client logs in without a client, then sends client_id="" and
    // the page's origin as redirect_uri (which was never part of the request).
    let f = Fixture::new().await;
    let mut request = f.request();
    request.client_id = Some(String::new());
    request.redirect_uri = None;
    request.scope = Some("openid offline".into());
    let login = expect_profile(
        f.password_with(request, "alice@example.org", PASSWORD)
            .await
            .unwrap(),
    );
    let fhirgate::login::ProfileChoice::Chosen(login) = login.choose_if_single().await.unwrap()
    else {
        panic!()
    };
    let (_, code) = login.grant(None).await.unwrap();
    let r = f
        .token(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", code.expose()),
                ("client_id", ""),
                ("redirect_uri", "https://app.medplum.example/"),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // `offline` (Medplum's spelling) gets a refresh token for a client-less login.
    assert!(r.body["refresh_token"].is_string());
    let refreshed = f
        .token(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", field(&r, "refresh_token")),
            ],
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
}

#[tokio::test]
async fn code_replay_revokes_the_grant_and_every_token_from_it() {
    let f = Fixture::new().await;
    let (_, code) = f
        .code_for("confidential", "openid offline_access user/Observation.rs")
        .await;
    let first = f.redeem("confidential", &code).await;
    assert_eq!(first.status, 200);
    let access = field(&first, "access_token").to_owned();
    let refresh = field(&first, "refresh_token").to_owned();
    f.engine.verifier().verify(&access).await.unwrap();

    let second = f.redeem("confidential", &code).await;
    assert_eq!(error_of(&second), ("invalid_grant", 400));
    assert!(matches!(
        f.engine.verifier().verify(&access).await,
        Err(VerifyError::Revoked)
    ));
    let r = f
        .token(
            Some(basic("confidential", CLIENT_SECRET)),
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(error_of(&r), ("invalid_grant", 400));
}

#[tokio::test]
async fn code_injection_with_another_client_or_redirect_or_verifier_is_refused() {
    let f = Fixture::new().await;
    // Another client redeems alice's code (issued to the public `app`).
    let (_, code) = f.code_for("app", "openid user/Observation.rs").await;
    let r = f.redeem("confidential", &code).await;
    assert_eq!(error_of(&r), ("invalid_grant", 400));
    // The code is burned: the rightful client cannot use it either.
    assert_eq!(
        error_of(&f.redeem("app", &code).await),
        ("invalid_grant", 400)
    );

    for (name, value) in [
        ("redirect_uri", "https://evil.example/cb"),
        (
            "code_verifier",
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK",
        ),
    ] {
        let (_, code) = f.code_for("app", "openid").await;
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", "app"),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ];
        for pair in pairs.iter_mut() {
            if pair.0 == name {
                pair.1 = value;
            }
        }
        let r = f.token(None, &pairs).await;
        assert_eq!(error_of(&r), ("invalid_grant", 400), "{name}");
    }
    // No verifier at all.
    let (_, code) = f.code_for("app", "openid").await;
    let r = f
        .token(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", "app"),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    assert_eq!(field(&r, "error_description"), "Missing code_verifier");
}

#[tokio::test]
async fn pkce_downgrade_verifier_for_a_code_issued_without_a_challenge_is_refused() {
    let f = Fixture::new().await;
    let mut client = f
        .store
        .client(&"confidential".into())
        .await
        .unwrap()
        .unwrap();
    client.pkce = fhirgate::model::PkcePolicy::Optional;
    f.store.put_client(&client).await.unwrap();
    let mut request = f.request();
    request.client_id = Some("confidential".into());
    request.code_challenge = None;
    request.code_challenge_method = None;
    request.scope = Some("openid".into());
    let login = expect_profile(
        f.password_with(request, "alice@example.org", PASSWORD)
            .await
            .unwrap(),
    );
    let fhirgate::login::ProfileChoice::Chosen(login) = login.choose_if_single().await.unwrap()
    else {
        panic!()
    };
    let (_, code) = login.grant(None).await.unwrap();
    let r = f.redeem("confidential", code.expose()).await; // sends a code_verifier
    assert_eq!(error_of(&r), ("invalid_grant", 400));
    assert_eq!(
        field(&r, "error_description"),
        "code_verifier sent for a code issued without a code_challenge"
    );
}

#[tokio::test]
async fn refresh_rotation_reuse_of_an_old_token_revokes_the_family() {
    let f = Fixture::new().await;
    let (_, code) = f
        .code_for("confidential", "openid offline_access user/Observation.rs")
        .await;
    let auth = || Some(basic("confidential", CLIENT_SECRET));
    let r0 = f.redeem("confidential", &code).await;
    let rt1 = field(&r0, "refresh_token").to_owned();
    let r1 = f
        .token(
            auth(),
            &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
        )
        .await;
    assert_eq!(r1.status, 200, "{}", r1.body);
    let rt2 = field(&r1, "refresh_token").to_owned();
    assert_ne!(rt1, rt2);
    let access2 = field(&r1, "access_token").to_owned();
    // The refreshed ID token keeps the original auth_time and drops the nonce.
    let (_, id0) = parts(field(&r0, "id_token"));
    let (_, id1) = parts(field(&r1, "id_token"));
    assert_eq!(id0["auth_time"], id1["auth_time"]);
    assert!(id1["nonce"].is_null());

    // The stolen old token comes back: refused, and the whole family dies.
    let replay = f
        .token(
            auth(),
            &[("grant_type", "refresh_token"), ("refresh_token", &rt1)],
        )
        .await;
    assert_eq!(error_of(&replay), ("invalid_grant", 400));
    let r = f
        .token(
            auth(),
            &[("grant_type", "refresh_token"), ("refresh_token", &rt2)],
        )
        .await;
    assert_eq!(error_of(&r), ("invalid_grant", 400));
    assert!(matches!(
        f.engine.verifier().verify(&access2).await,
        Err(VerifyError::Revoked)
    ));
}

#[tokio::test]
async fn refresh_scope_only_narrows_and_the_token_is_bound_to_its_client() {
    let f = Fixture::new().await;
    let (_, code) = f
        .code_for(
            "confidential",
            "openid offline_access user/Observation.rs user/Patient.rs",
        )
        .await;
    let r0 = f.redeem("confidential", &code).await;
    let rt = field(&r0, "refresh_token").to_owned();
    let auth = || Some(basic("confidential", CLIENT_SECRET));
    let wider = f
        .token(
            auth(),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
                ("scope", "openid user/Observation.cruds"),
            ],
        )
        .await;
    assert_eq!(error_of(&wider), ("invalid_scope", 400));
    // Presented by another client: refused, and not burned.
    let other = f
        .token(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
                ("client_id", "app"),
            ],
        )
        .await;
    assert_eq!(error_of(&other), ("invalid_grant", 400));
    let narrower = f
        .token(
            auth(),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &rt),
                ("scope", "user/Observation.r"),
            ],
        )
        .await;
    assert_eq!(narrower.status, 200, "{}", narrower.body);
    assert_eq!(field(&narrower, "scope"), "user/Observation.r");
    assert!(
        narrower.body["id_token"].is_null(),
        "no openid, no id_token"
    );
}

#[tokio::test]
async fn refresh_family_has_an_absolute_lifetime() {
    let f = Fixture::new().await;
    let (_, code) = f.code_for("confidential", "openid offline_access").await;
    let r = f.redeem("confidential", &code).await;
    let mut rt = field(&r, "refresh_token").to_owned();
    let auth = || Some(basic("confidential", CLIENT_SECRET));
    // Rotating every 6 days does not extend the 14-day family.
    for _ in 0..2 {
        f.clock.advance(time::Duration::days(6));
        let r = f
            .token(
                auth(),
                &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        rt = field(&r, "refresh_token").to_owned();
    }
    f.clock.advance(time::Duration::days(3));
    let r = f
        .token(
            auth(),
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        )
        .await;
    assert_eq!(field(&r, "error_description"), "Refresh token expired");
}

#[tokio::test]
async fn no_refresh_token_without_offline_access() {
    let f = Fixture::new().await;
    let (_, code) = f
        .code_for("confidential", "openid user/Observation.rs")
        .await;
    let r = f.redeem("confidential", &code).await;
    assert_eq!(r.status, 200);
    assert!(r.body["refresh_token"].is_null());
}

#[tokio::test]
async fn token_confusion_id_and_refresh_tokens_are_not_access_tokens() {
    let f = Fixture::new().await;
    let (_, code) = f.code_for("confidential", "openid offline_access").await;
    let r = f.redeem("confidential", &code).await;
    for token in [field(&r, "id_token"), field(&r, "refresh_token")] {
        assert!(matches!(
            f.engine.verifier().verify(token).await,
            Err(VerifyError::Invalid(_))
        ));
    }
    // Introspection says exactly {"active": false} for them, and for garbage.
    for token in [field(&r, "id_token"), field(&r, "refresh_token"), "garbage"] {
        let mut request = TokenRequest::from_form(Form::from_pairs(&[("token", token)]));
        request.authorization = Some(basic("confidential", CLIENT_SECRET));
        let answer = f.engine.introspect(&request).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, serde_json::json!({ "active": false }));
    }
}

#[tokio::test]
async fn deactivated_membership_or_client_stops_existing_tokens() {
    let f = Fixture::new().await;
    let (_, code) = f.code_for("confidential", "openid").await;
    let r = f.redeem("confidential", &code).await;
    let access = field(&r, "access_token").to_owned();
    f.engine.verifier().verify(&access).await.unwrap();
    let mut m = f
        .store
        .membership(&"m-alice".into())
        .await
        .unwrap()
        .unwrap();
    m.active = false;
    f.store.put_membership(&m).await.unwrap();
    assert!(matches!(
        f.engine.verifier().verify(&access).await,
        Err(VerifyError::Inactive)
    ));
    m.active = true;
    f.store.put_membership(&m).await.unwrap();
    let mut c = f
        .store
        .client(&"confidential".into())
        .await
        .unwrap()
        .unwrap();
    c.status = ClientStatus::Off;
    f.store.put_client(&c).await.unwrap();
    assert!(matches!(
        f.engine.verifier().verify(&access).await,
        Err(VerifyError::Inactive)
    ));
}

#[tokio::test]
async fn verification_cache_honours_its_staleness_bound() {
    let mut config = config();
    config.oauth.verify_cache = Some(time::Duration::seconds(30));
    let f = Fixture::with_config(config).await;
    let (_, code) = f.code_for("confidential", "openid").await;
    let r = f.redeem("confidential", &code).await;
    let access = field(&r, "access_token").to_owned();
    let principal = f.engine.verifier().verify(&access).await.unwrap();
    // Revoked directly in the store (as another server instance would): the cached answer
    // may be used for at most 30 s.
    f.store.revoke_login(&principal.login).await.unwrap();
    f.engine.verifier().verify(&access).await.unwrap();
    f.clock.advance(time::Duration::seconds(31));
    assert!(matches!(
        f.engine.verifier().verify(&access).await,
        Err(VerifyError::Revoked)
    ));
}

#[tokio::test]
async fn expired_access_tokens_fail_after_the_leeway() {
    let f = Fixture::new().await;
    let (_, code) = f.code_for("confidential", "openid").await;
    let r = f.redeem("confidential", &code).await;
    let access = field(&r, "access_token").to_owned();
    f.clock.advance(time::Duration::seconds(3600 + 59));
    f.engine.verifier().verify(&access).await.unwrap();
    f.clock.advance(time::Duration::seconds(2));
    assert!(matches!(
        f.engine.verifier().verify(&access).await,
        Err(VerifyError::Invalid(_))
    ));
}

#[tokio::test]
async fn client_authentication_answers_per_rfc6749() {
    let f = Fixture::new().await;
    let (_, code) = f.code_for("confidential", "openid").await;
    // Wrong secret over Basic: 401 with a challenge.
    let r = f
        .token(
            Some(basic("confidential", "wrong")),
            &[("grant_type", "authorization_code"), ("code", &code)],
        )
        .await;
    assert_eq!(error_of(&r), ("invalid_client", 401));
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some("Basic realm=\"fhirgate\"")
    );
    // Two methods in one request.
    let r = f
        .token(
            Some(basic("confidential", CLIENT_SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    assert_eq!(error_of(&r), ("invalid_request", 400));
    // Duplicate parameters.
    let form = Form::parse(b"grant_type=authorization_code&code=a&code=b");
    assert_eq!(form.unwrap_err().code.as_str(), "invalid_request");
    // Missing and unknown grant types.
    assert_eq!(
        error_of(&f.token(None, &[("code", "x")]).await),
        ("invalid_request", 400)
    );
    assert_eq!(
        error_of(&f.token(None, &[("grant_type", "password")]).await),
        ("unsupported_grant_type", 400)
    );
}

#[tokio::test]
async fn client_credentials_grant_for_a_backend_service() {
    let f = Fixture::new().await;
    let creds = [("client_id", "m2m"), ("client_secret", CLIENT_SECRET)];
    let mut pairs = vec![
        ("grant_type", "client_credentials"),
        ("scope", "system/Observation.rs"),
    ];
    pairs.extend(creds);
    let r = f.token(None, &pairs).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["refresh_token"].is_null());
    assert!(r.body["id_token"].is_null());
    let (_, claims) = parts(field(&r, "access_token"));
    assert_eq!(claims["sub"], "m2m");
    assert_eq!(claims["profile"], "ClientApplication/m2m");
    let principal = f
        .engine
        .verifier()
        .verify(field(&r, "access_token"))
        .await
        .unwrap();
    assert_eq!(principal.subject, Subject::Client("m2m".into()));

    let mut pairs = vec![
        ("grant_type", "client_credentials"),
        ("scope", "system/Observation.cruds"),
    ];
    pairs.extend(creds);
    assert_eq!(
        error_of(&f.token(None, &pairs).await),
        ("invalid_scope", 400)
    );
    // A public client cannot use it.
    let r = f
        .token(
            None,
            &[("grant_type", "client_credentials"), ("client_id", "app")],
        )
        .await;
    assert_eq!(error_of(&r), ("unauthorized_client", 400));
}

#[tokio::test]
async fn revocation_answers_200_and_kills_the_grant() {
    let f = Fixture::new().await;
    let revoke = |token: String| {
        let mut request = TokenRequest::from_form(Form::from_pairs(&[("token", token.as_str())]));
        request.authorization = Some(basic("confidential", CLIENT_SECRET));
        request
    };
    let r = f.engine.revoke(&revoke("not-a-token".into())).await;
    assert_eq!(r.status, 200);
    let (_, code) = f.code_for("confidential", "openid offline_access").await;
    let tokens = f.redeem("confidential", &code).await;
    let access = field(&tokens, "access_token").to_owned();
    let r = f
        .engine
        .revoke(&revoke(field(&tokens, "refresh_token").into()))
        .await;
    assert_eq!(r.status, 200);
    assert!(matches!(
        f.engine.verifier().verify(&access).await,
        Err(VerifyError::Revoked)
    ));
    // Another client cannot revoke someone else's token.
    let (_, code) = f.code_for("app", "openid").await;
    let theirs = f.redeem("app", &code).await;
    let r = f
        .engine
        .revoke(&revoke(field(&theirs, "access_token").into()))
        .await;
    assert_eq!(error_of(&r), ("unauthorized_client", 400));
    f.engine
        .verifier()
        .verify(field(&theirs, "access_token"))
        .await
        .unwrap();
}

#[tokio::test]
async fn introspection_requires_authentication_and_reports_live_tokens() {
    let f = Fixture::new().await;
    let (_, code) = f
        .code_for("confidential", "openid user/Observation.rs")
        .await;
    let tokens = f.redeem("confidential", &code).await;
    let access = field(&tokens, "access_token");
    let anonymous = f
        .engine
        .introspect(&TokenRequest::from_form(Form::from_pairs(&[(
            "token", access,
        )])))
        .await;
    assert_eq!(error_of(&anonymous), ("invalid_client", 401));
    let mut request = TokenRequest::from_form(Form::from_pairs(&[("token", access)]));
    request.authorization = Some(basic("confidential", CLIENT_SECRET));
    let r = f.engine.introspect(&request).await;
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body["scope"], "openid user/Observation.rs");
    assert_eq!(r.body["client_id"], "confidential");
    assert_eq!(r.body["sub"], "alice");
    assert!(r.body["exp"].is_i64());
    // A bearer access token also authorises introspection (SMART).
    let mut request = TokenRequest::from_form(Form::from_pairs(&[("token", access)]));
    request.authorization = Some(format!("Bearer {access}"));
    assert_eq!(f.engine.introspect(&request).await.body["active"], true);
}

#[tokio::test]
async fn userinfo_uses_the_same_sub_as_the_tokens() {
    let f = Fixture::new().await;
    let (_, code) = f
        .code_for("confidential", "openid email profile fhirUser")
        .await;
    let tokens = f.redeem("confidential", &code).await;
    let access = field(&tokens, "access_token");
    let r = f.engine.userinfo(access).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (_, claims) = parts(access);
    assert_eq!(r.body["sub"], claims["sub"]);
    assert_eq!(r.body["email"], "alice@example.org");
    assert_eq!(r.body["fhirUser"], "Practitioner/alice");
    let bad = f.engine.userinfo("nope").await;
    assert_eq!(bad.status, 401);
    assert!(
        bad.header("WWW-Authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
}

#[tokio::test]
async fn logout_revokes_the_grant() {
    let f = Fixture::new().await;
    let (_, code) = f.code_for("confidential", "openid").await;
    let tokens = f.redeem("confidential", &code).await;
    let access = field(&tokens, "access_token");
    let principal = f.engine.verifier().verify(access).await.unwrap();
    f.engine.logout(&principal).await.unwrap();
    assert!(matches!(
        f.engine.verifier().verify(access).await,
        Err(VerifyError::Revoked)
    ));
}

#[tokio::test]
async fn discovery_lists_exactly_what_is_supported() {
    let f = Fixture::new().await;
    let oidc = f.engine.discovery().openid_configuration();
    assert_eq!(oidc["issuer"], ISSUER);
    assert_eq!(
        oidc["token_endpoint"],
        "https://auth.example.org/oauth2/token"
    );
    assert_eq!(
        oidc["jwks_uri"],
        "https://auth.example.org/.well-known/jwks.json"
    );
    assert_eq!(
        oidc["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        oidc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(
        oidc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        oidc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    assert_eq!(oidc["authorization_response_iss_parameter_supported"], true);
    assert!(
        !oidc["token_endpoint_auth_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "none" || a.as_str().unwrap().starts_with("HS"))
    );
    let smart = f.engine.discovery().smart_configuration();
    for name in [
        "grant_types_supported",
        "token_endpoint",
        "capabilities",
        "code_challenge_methods_supported",
    ] {
        assert!(!smart[name].is_null(), "SMART requires {name}");
    }
    assert!(
        !smart["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "context-style")
    );
    let jwks = f.engine.keys().jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0]["d"].is_null());
    assert_eq!(keys[0]["use"], "sig");
}

#[tokio::test]
async fn key_rotation_publishes_first_and_keeps_the_old_key_until_its_tokens_expire() {
    let f = Fixture::new().await;
    let (_, code) = f.code_for("confidential", "openid").await;
    let old = field(&f.redeem("confidential", &code).await, "access_token").to_owned();
    let next = fhirgate::token::SigningKey::generate(
        fhirgate::token::SigningAlgorithm::EdDsa,
        &fhirgate::random::OsRandom,
    )
    .unwrap();
    let next_kid = next.kid().to_owned();
    f.engine.keys().publish_next(next).unwrap();
    assert_eq!(f.engine.keys().jwks()["keys"].as_array().unwrap().len(), 2);
    // Published but not yet signing.
    let (_, code) = f.code_for("confidential", "openid").await;
    let (h, _) = parts(field(
        &f.redeem("confidential", &code).await,
        "access_token",
    ));
    assert_ne!(h["kid"], next_kid.as_str());
    f.engine.keys().promote_next().unwrap();
    let (_, code) = f.code_for("confidential", "openid").await;
    let new = field(&f.redeem("confidential", &code).await, "access_token").to_owned();
    let (h, _) = parts(&new);
    assert_eq!(h["kid"], next_kid.as_str());
    assert_eq!(h["alg"], "EdDSA");
    f.engine.verifier().verify(&old).await.unwrap();
    f.engine.verifier().verify(&new).await.unwrap();
    // After every old token expired, the old key goes.
    f.clock
        .advance(time::Duration::hours(1) + time::Duration::minutes(2));
    f.engine.keys().prune();
    assert_eq!(f.engine.keys().jwks()["keys"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn scope_decisions_distinguish_every_permission_and_the_patient_compartment() {
    use fhirgate::model::Interaction;
    use fhirgate::token::ScopeDecision;
    let f = Fixture::new().await;
    let (_, code) = f
        .code_for(
            "confidential",
            "openid user/Observation.rs user/Encounter.cd",
        )
        .await;
    let tokens = f.redeem("confidential", &code).await;
    let p = f
        .engine
        .verifier()
        .verify(field(&tokens, "access_token"))
        .await
        .unwrap();
    assert_eq!(
        p.scope_allows("Observation", Interaction::Read),
        ScopeDecision::Allowed
    );
    assert_eq!(
        p.scope_allows("Observation", Interaction::Search),
        ScopeDecision::Allowed
    );
    assert_eq!(
        p.scope_allows("Observation", Interaction::Update),
        ScopeDecision::Denied
    );
    assert_eq!(
        p.scope_allows("Encounter", Interaction::Delete),
        ScopeDecision::Allowed
    );
    assert_eq!(
        p.scope_allows("Encounter", Interaction::Read),
        ScopeDecision::Denied
    );
    assert_eq!(
        p.scope_allows("Patient", Interaction::Read),
        ScopeDecision::Denied
    );

    // pat, a patient: patient/ scopes apply to her own compartment only.
    let mut request = f.request();
    request.client_id = Some("confidential".into());
    request.scope = Some("openid patient/Observation.rs".into());
    let login = expect_profile(
        f.password_with(request, "pat@example.org", PASSWORD)
            .await
            .unwrap(),
    );
    let fhirgate::login::ProfileChoice::Chosen(login) = login.choose_if_single().await.unwrap()
    else {
        panic!()
    };
    let (_, code) = login.grant(None).await.unwrap();
    let tokens = f.redeem("confidential", code.expose()).await;
    assert_eq!(tokens.body["patient"], "pat");
    assert_eq!(tokens.body["need_patient_banner"], true);
    let p = f
        .engine
        .verifier()
        .verify(field(&tokens, "access_token"))
        .await
        .unwrap();
    assert_eq!(
        p.scope_allows("Observation", Interaction::Read),
        ScopeDecision::PatientCompartment(
            fhirgate::model::Reference::parse("Patient/pat").unwrap()
        )
    );
}

#[tokio::test]
async fn a_scope_with_search_criteria_never_allows_on_its_own() {
    use fhirgate::model::Interaction;
    use fhirgate::token::ScopeDecision;
    let f = Fixture::new().await;
    let (_, code) = f
        .code_for(
            "confidential",
            "openid user/Observation.rs?category=laboratory",
        )
        .await;
    let tokens = f.redeem("confidential", &code).await;
    assert_eq!(
        field(&tokens, "scope"),
        "openid user/Observation.rs?category=laboratory"
    );
    let p = f
        .engine
        .verifier()
        .verify(field(&tokens, "access_token"))
        .await
        .unwrap();
    assert_eq!(
        p.scope_allows("Observation", Interaction::Read),
        ScopeDecision::Denied
    );
}

#[test]
fn token_requests_show_no_client_credentials_or_codes_in_debug() {
    let basic = base64::engine::general_purpose::STANDARD.encode("app:s3cret-value");
    let mut request = TokenRequest::from_form(Form::from_pairs(&[
        ("grant_type", "authorization_code"),
        ("code", "code-0123456789"),
        ("client_secret", "s3cret-value"),
    ]));
    request.authorization = Some(format!("Basic {basic}"));
    let shown = format!("{request:?}");
    assert!(!shown.contains(&basic), "{shown}");
    assert!(!shown.contains("s3cret-value"), "{shown}");
    assert!(!shown.contains("code-0123456789"), "{shown}");
    assert!(shown.contains("Basic <redacted>"), "{shown}");
    assert!(
        shown.contains("client_secret"),
        "the names stay visible: {shown}"
    );
}

#[tokio::test]
async fn token_responses_and_redirects_show_no_tokens_or_codes_in_debug() {
    let f = Fixture::new().await;
    let (_, code) = f
        .code_for("app", "openid offline_access user/Observation.rs")
        .await;
    let response = f.redeem("app", &code).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    let shown = format!("{response:?}");
    for name in ["access_token", "refresh_token", "id_token"] {
        let value = field(&response, name);
        assert!(!value.is_empty(), "{name} missing");
        assert!(!shown.contains(value), "{name} shown: {shown}");
    }
    assert!(shown.contains("Bearer"), "the rest stays visible: {shown}");

    // An authorization redirect shows its state and iss, not its code.
    let url = url::Url::parse(&format!(
        "{REDIRECT}?code=code-0123456789&state=xyz-state&iss=https%3A%2F%2Fauth.example.org"
    ))
    .unwrap();
    let shown = format!("{:?}", fhirgate::oauth::AuthorizeOutcome::Redirect(url));
    assert!(!shown.contains("code-0123456789"), "{shown}");
    assert!(shown.contains("xyz-state"), "{shown}");
    // A redirect header in an endpoint response, and a cookie, likewise.
    let mut response = fhirgate::oauth::OAuthResponse::json(303, serde_json::json!({}));
    response.headers.push((
        "Location",
        format!("{REDIRECT}?code=code-0123456789&state=xyz-state"),
    ));
    response
        .headers
        .push(("Set-Cookie", "medplum-app=cookie-secret-value".to_owned()));
    let shown = format!("{response:?}");
    assert!(!shown.contains("code-0123456789"), "{shown}");
    assert!(!shown.contains("cookie-secret-value"), "{shown}");
}

#[tokio::test]
async fn token_refusals_are_audited_with_their_reason_and_never_a_secret() {
    use fhirgate::audit::AuditKind;
    let f = Fixture::new().await;
    let refused = |f: &Fixture| -> Vec<(AuditKind, Option<String>)> {
        f.audit
            .events()
            .into_iter()
            .filter(|e| matches!(e.kind, AuditKind::TokenRefused { .. }))
            .map(|e| (e.kind, e.client.map(|c| c.as_str().to_owned())))
            .collect()
    };

    // A wrong client secret: invalid_client, the named client, the secret nowhere.
    let r = f
        .token(
            Some(basic("confidential", "wrong-secret-0123456789")),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(error_of(&r), ("invalid_client", 401));
    let events = refused(&f);
    assert_eq!(
        events,
        [(
            AuditKind::TokenRefused {
                grant_type: "client_credentials".into(),
                error: "invalid_client".into(),
                description: "Invalid client".into(),
                detail: None,
            },
            Some("confidential".into())
        )]
    );
    let logged = serde_json::to_string(&f.audit.events()).unwrap();
    assert!(!logged.contains("wrong-secret"), "{logged}");

    // A code that does not exist: invalid_grant with its reason; the code is not logged.
    let r = f
        .token(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", "no-such-code-abcdefghijklmnop"),
                ("client_id", "app"),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    let (error, _) = error_of(&r);
    assert_eq!(error, "invalid_grant");
    let events = refused(&f);
    assert_eq!(events.len(), 2);
    match &events[1].0 {
        AuditKind::TokenRefused {
            grant_type,
            error,
            description,
            ..
        } => {
            assert_eq!(grant_type, "authorization_code");
            assert_eq!(error, "invalid_grant");
            assert_eq!(description, r.body["error_description"].as_str().unwrap());
        }
        other => panic!("{other:?}"),
    }
    let logged = serde_json::to_string(&f.audit.events()).unwrap();
    assert!(!logged.contains("no-such-code"), "{logged}");
    assert!(!logged.contains(VERIFIER), "{logged}");

    // A successful request adds no refusal.
    let (_, code) = f.code_for("app", "openid").await;
    assert_eq!(f.redeem("app", &code).await.status, 200);
    assert_eq!(refused(&f).len(), 2);
}

#[tokio::test]
async fn refresh_tokens_obey_the_memberships_ip_rules() {
    // The IP rules were checked when the membership was chosen, never again: a refresh token
    // taken elsewhere kept working from any address.
    use fhirgate::model::{AccessPolicy, AccessPolicyId, IpAccessRule, IpAction};
    let f = Fixture::new().await;
    let (_, code) = f.code_for("confidential", "openid offline_access").await;
    let tokens = f.redeem("confidential", &code).await;
    let refresh = field(&tokens, "refresh_token").to_owned();
    // The project now allows alice only from its network.
    let mut policy = AccessPolicy::full_access(AccessPolicyId::new("office"));
    policy.ip_rules = vec![
        IpAccessRule {
            name: None,
            value: "10.0.0.0/8".parse().unwrap(),
            action: IpAction::Allow,
        },
        IpAccessRule {
            name: None,
            value: "*".parse().unwrap(),
            action: IpAction::Block,
        },
    ];
    f.store.put_access_policy(&policy).await.unwrap();
    let mut m = f
        .store
        .membership(&MembershipId::new("m-alice"))
        .await
        .unwrap()
        .unwrap();
    m.access_policy = Some(policy.id.clone());
    f.store.put_membership(&m).await.unwrap();

    let refresh_from = |address: &str| {
        let mut request = TokenRequest::from_form(Form::from_pairs(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ]));
        request.authorization = Some(basic("confidential", CLIENT_SECRET));
        request.remote_address = Some(address.parse().unwrap());
        request
    };
    let refused = f.engine.token(refresh_from("203.0.113.9")).await;
    assert_eq!(error_of(&refused), ("invalid_grant", 400));
    assert_eq!(refused.body["error_description"], "IP address not allowed");
    // The refusal did not spend the token: from the office it still works.
    let ok = f.engine.token(refresh_from("10.1.2.3")).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[tokio::test]
async fn token_responses_name_the_project_and_profile_as_medplum_does() {
    use fhirgate::store::{Directory, DirectoryAdmin};
    let f = Fixture::new().await;
    let mut membership = f
        .store
        .membership(&"m-alice".into())
        .await
        .unwrap()
        .unwrap();
    membership.profile_display = Some("Alice Doe".into());
    f.store.put_membership(&membership).await.unwrap();
    let (_, code) = f.code_for("app", "openid fhirUser user/*.rs").await;
    let response = f.redeem("app", &code).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.body["project"],
        serde_json::json!({"reference": "Project/p1", "display": "Clinic"})
    );
    assert_eq!(
        response.body["profile"],
        serde_json::json!({"reference": "Practitioner/alice", "display": "Alice Doe"})
    );
}
