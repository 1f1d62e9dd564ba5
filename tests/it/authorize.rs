//! The authorization endpoint's logic: what is answered directly, what is redirected (always
//! with `iss`), and single sign-on from a session.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;

use crate::common::*;
use fhirgate::oauth::{AuthorizeOutcome, AuthorizeRequest};
use fhirgate::store::LoginStore;

fn request(extra: &[(&str, &str)]) -> AuthorizeRequest {
    let mut pairs = vec![
        ("client_id", "confidential"),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid user/Observation.rs"),
        ("state", "xyz-state"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        if let Some(p) = pairs.iter_mut().find(|(n, _)| n == k) {
            p.1 = v;
        } else {
            pairs.push((k, v));
        }
    }
    pairs.retain(|(_, v)| *v != "<drop>");
    AuthorizeRequest::from_pairs(pairs)
}

fn query(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

fn redirect(outcome: &AuthorizeOutcome) -> HashMap<String, String> {
    match outcome {
        AuthorizeOutcome::Redirect(url) => {
            assert!(url.as_str().starts_with(REDIRECT), "{url}");
            query(url)
        }
        other => panic!("expected a redirect, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_client_or_unregistered_redirect_is_answered_never_redirected() {
    let f = Fixture::new().await;
    for (extra, message) in [
        (vec![("client_id", "nobody")], "Client not found"),
        (vec![("client_id", "<drop>")], "Missing client_id"),
        (
            vec![("redirect_uri", "https://evil.example/cb")],
            "Invalid redirect URI",
        ),
        (
            vec![("redirect_uri", "https://app.example.org/callback/extra")],
            "Invalid redirect URI",
        ),
        (vec![("redirect_uri", "<drop>")], "Missing redirect URI"),
        (
            vec![("response_mode", "fragment")],
            "Unsupported response_mode",
        ),
    ] {
        match f.engine.authorize(&request(&extra), None).await {
            AuthorizeOutcome::Refuse { status, message: m } => {
                assert_eq!((status, m.as_str()), (400, message), "{extra:?}");
            }
            other => panic!("{extra:?}: {other:?}"),
        }
    }
    // A repeated redirect_uri is not trusted either.
    let r = AuthorizeRequest::parse(
        "client_id=confidential&redirect_uri=https%3A%2F%2Fapp.example.org%2Fcallback&redirect_uri=https%3A%2F%2Fevil.example%2F&response_type=code",
    );
    assert!(matches!(
        f.engine.authorize(&r, None).await,
        AuthorizeOutcome::Refuse { .. }
    ));
}

#[tokio::test]
async fn errors_after_the_redirect_check_go_back_with_state_and_iss() {
    let f = Fixture::new().await;
    for (extra, error) in [
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("response_type", "<drop>")], "invalid_request"),
        (
            vec![("request", "eyJhbGciOiJub25lIn0.e30.")],
            "request_not_supported",
        ),
        (
            vec![("request_uri", "https://app.example.org/r")],
            "request_uri_not_supported",
        ),
        (vec![("prompt", "none login")], "invalid_request"),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge_method", "<drop>")], "invalid_request"),
        (vec![("scope", "patient/Observation.dus")], "invalid_scope"),
        (
            vec![("aud", "https://other.example/fhir")],
            "invalid_request",
        ),
        (vec![("max_age", "-1")], "invalid_request"),
        (vec![("prompt", "none")], "login_required"),
    ] {
        let q = redirect(&f.engine.authorize(&request(&extra), None).await);
        assert_eq!(q["error"], error, "{extra:?}");
        assert_eq!(q["state"], "xyz-state");
        assert_eq!(q["iss"], ISSUER);
        assert!(!q["error_description"].contains('"'));
    }
    // A repeated parameter other than client_id/redirect_uri is an error redirect too.
    let r = AuthorizeRequest::parse(
        "client_id=confidential&redirect_uri=https%3A%2F%2Fapp.example.org%2Fcallback&response_type=code&scope=openid&scope=email",
    );
    assert_eq!(
        redirect(&f.engine.authorize(&r, None).await)["error"],
        "invalid_request"
    );
}

#[tokio::test]
async fn a_valid_request_without_a_session_goes_to_the_sign_in_page_with_the_request() {
    let f = Fixture::new().await;
    let outcome = f
        .engine
        .authorize(
            &request(&[("nonce", "n1"), ("ui_locales", "de"), ("display", "page")]),
            None,
        )
        .await;
    let AuthorizeOutcome::SignIn(url) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(url.as_str().starts_with("https://auth.example.org/signin?"));
    let q = query(&url);
    assert_eq!(q["client_id"], "confidential");
    assert_eq!(q["redirect_uri"], REDIRECT);
    assert_eq!(q["nonce"], "n1");
    assert_eq!(q["code_challenge"], CHALLENGE);
}

#[tokio::test]
async fn single_sign_on_creates_a_new_grant_and_leaves_the_session_untouched() {
    let f = Fixture::new().await;
    let (login, code) = f
        .code_for("confidential", "openid user/Observation.rs")
        .await;
    let cookie = login.sso_session().unwrap().expose().to_owned();
    let session_id = login.id().clone();
    assert_eq!(f.redeem("confidential", &code).await.status, 200);
    let before = f.store.login(&session_id).await.unwrap().unwrap();

    let outcome = f
        .engine
        .authorize(
            &request(&[("prompt", "none"), ("nonce", "second")]),
            Some(&cookie),
        )
        .await;
    let q = redirect(&outcome);
    assert_eq!(q["state"], "xyz-state");
    assert_eq!(q["iss"], ISSUER);
    let tokens = f.redeem("confidential", &q["code"]).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    let principal = f
        .engine
        .verifier()
        .verify(field(&tokens, "access_token"))
        .await
        .unwrap();
    assert_ne!(
        principal.login, session_id,
        "a new grant, not the session's login"
    );
    assert_eq!(f.store.login(&session_id).await.unwrap().unwrap(), before);

    // Without prompt=none a live session also signs on silently.
    let q = redirect(&f.engine.authorize(&request(&[]), Some(&cookie)).await);
    assert!(q.contains_key("code"));
    // prompt=login and max_age=0 force a fresh sign-in.
    for extra in [("prompt", "login"), ("max_age", "0")] {
        assert!(matches!(
            f.engine.authorize(&request(&[extra]), Some(&cookie)).await,
            AuthorizeOutcome::SignIn(_)
        ));
    }
    // A session for another client does not sign on here.
    let other = AuthorizeRequest::from_pairs([
        ("client_id", "app"),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("prompt", "none"),
    ]);
    assert_eq!(
        redirect(&f.engine.authorize(&other, Some(&cookie)).await)["error"],
        "login_required"
    );
    // A forged cookie is no session.
    assert_eq!(
        redirect(
            &f.engine
                .authorize(&request(&[("prompt", "none")]), Some("forged"))
                .await
        )["error"],
        "login_required"
    );
    // The session expires.
    f.clock.advance(time::Duration::hours(1));
    assert_eq!(
        redirect(
            &f.engine
                .authorize(&request(&[("prompt", "none")]), Some(&cookie))
                .await
        )["error"],
        "login_required"
    );
}

#[tokio::test]
async fn single_sign_on_cannot_widen_what_the_session_was_granted() {
    // Medplum granted requested ∩ client ∩ policy afresh at every silent sign-on, so a user
    // who narrowed the grant at consent got the wider one back with prompt=none.
    let f = Fixture::new().await;
    let (login, code) = f.code_for("confidential", "openid").await;
    let cookie = login.sso_session().unwrap().expose().to_owned();
    assert_eq!(f.redeem("confidential", &code).await.status, 200);
    let before = f.store.snapshot_logins().len();
    let q = redirect(
        &f.engine
            .authorize(&request(&[("prompt", "none")]), Some(&cookie))
            .await,
    );
    assert_eq!(q["error"], "consent_required");
    assert_eq!(q["state"], "xyz-state");
    // Without prompt=none the user is asked again.
    assert!(matches!(
        f.engine.authorize(&request(&[]), Some(&cookie)).await,
        AuthorizeOutcome::SignIn(_)
    ));
    // Nothing usable was left behind by the refused attempts: the logins they started are
    // revoked and hold no code.
    let after = f.store.snapshot_logins();
    assert_eq!(after.len(), before + 2);
    for record in after.iter().filter(|r| r.id != *login.id()) {
        assert!(record.revoked && record.code.is_none(), "{record:?}");
    }
    // Within the session's grant, silent sign-on works.
    let q = redirect(
        &f.engine
            .authorize(
                &request(&[("prompt", "none"), ("scope", "openid")]),
                Some(&cookie),
            )
            .await,
    );
    let tokens = f.redeem("confidential", &q["code"]).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    assert_eq!(tokens.body["scope"], "openid");
}

#[tokio::test]
async fn logout_ends_single_sign_on() {
    let f = Fixture::new().await;
    let (login, code) = f
        .code_for("confidential", "openid user/Observation.rs")
        .await;
    let cookie = login.sso_session().unwrap().expose().to_owned();
    f.redeem("confidential", &code).await;
    let q = redirect(
        &f.engine
            .authorize(&request(&[("prompt", "none")]), Some(&cookie))
            .await,
    );
    let tokens = f.redeem("confidential", &q["code"]).await;
    let principal = f
        .engine
        .verifier()
        .verify(field(&tokens, "access_token"))
        .await
        .unwrap();
    f.engine.logout(&principal).await.unwrap();
    assert_eq!(
        redirect(
            &f.engine
                .authorize(&request(&[("prompt", "none")]), Some(&cookie))
                .await
        )["error"],
        "login_required"
    );
}

#[tokio::test]
async fn max_age_and_id_token_hint_are_honoured() {
    let f = Fixture::new().await;
    let (login, code) = f
        .code_for("confidential", "openid user/Observation.rs")
        .await;
    let cookie = login.sso_session().unwrap().expose().to_owned();
    let tokens = f.redeem("confidential", &code).await;
    let id_token = field(&tokens, "id_token").to_owned();
    f.clock.advance(time::Duration::minutes(10));
    // Signed in 10 minutes ago: max_age=300 needs a new sign-in, max_age=10000 does not.
    assert_eq!(
        redirect(
            &f.engine
                .authorize(
                    &request(&[("prompt", "none"), ("max_age", "300")]),
                    Some(&cookie)
                )
                .await
        )["error"],
        "login_required"
    );
    assert!(
        redirect(
            &f.engine
                .authorize(
                    &request(&[("prompt", "none"), ("max_age", "10000")]),
                    Some(&cookie)
                )
                .await
        )
        .contains_key("code")
    );
    // The hint must name the session's user.
    assert!(
        redirect(
            &f.engine
                .authorize(
                    &request(&[("prompt", "none"), ("id_token_hint", &id_token)]),
                    Some(&cookie)
                )
                .await
        )
        .contains_key("code")
    );
    assert_eq!(
        redirect(
            &f.engine
                .authorize(
                    &request(&[("prompt", "none"), ("id_token_hint", "garbage")]),
                    Some(&cookie)
                )
                .await
        )["error"],
        "login_required"
    );
}
