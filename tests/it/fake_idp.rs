//! The fake OpenID provider (`tests/common/fake_idp.rs`) checked on its own, through reqwest
//! and an independent JWT decoder, so the federation tests can trust what it does.
#![cfg(feature = "axum")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use crate::common::fake_idp::*;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

const REDIRECT: &str = "https://fhirgate.example.org/auth/external?tenant=a";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const NONCE: &str = "n-0S6_WzA2Mj";
const STATE: &str = "af0ifjsldkj";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn authorize_query(idp: &FakeIdp) -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("client_id", idp.options().client_id.clone()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", "openid profile email".into()),
        ("state", STATE.into()),
        ("nonce", NONCE.into()),
        ("code_challenge", challenge(VERIFIER)),
        ("code_challenge_method", "S256".into()),
    ]
}

async fn authorize_with(idp: &FakeIdp, query: &[(&str, String)]) -> reqwest::Response {
    http()
        .get(idp.authorize_url())
        .query(query)
        .send()
        .await
        .unwrap()
}

/// Authorize as a well-behaved relying party; returns the code.
async fn code(idp: &FakeIdp) -> String {
    let response = authorize_with(idp, &authorize_query(idp)).await;
    assert_eq!(response.status(), 302);
    let location = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    location
        .query_pairs()
        .find(|(n, _)| n == "code")
        .unwrap()
        .1
        .into_owned()
}

enum Auth<'a> {
    Basic(&'a str, &'a str),
    Post(&'a str, &'a str),
    Both,
    None,
}

async fn exchange_with(
    idp: &FakeIdp,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
    auth: Auth<'_>,
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.to_owned()),
        ("redirect_uri", redirect_uri.to_owned()),
        ("code_verifier", verifier.to_owned()),
    ];
    let mut request = http().post(idp.token_url());
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = |id: &str, secret: &str| {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", encode(id), encode(secret)))
        )
    };
    let options = idp.options().clone();
    match auth {
        Auth::Basic(id, secret) => request = request.header("authorization", basic(id, secret)),
        Auth::Post(id, secret) => {
            form.push(("client_id", id.to_owned()));
            form.push(("client_secret", secret.to_owned()));
        }
        Auth::Both => {
            request = request.header(
                "authorization",
                basic(&options.client_id, &options.client_secret),
            );
            form.push(("client_secret", options.client_secret.clone()));
        }
        Auth::None => form.push(("client_id", options.client_id.clone())),
    }
    request.form(&form).send().await.unwrap()
}

fn right_auth(idp: &FakeIdp) -> Auth<'_> {
    let options = idp.options();
    match options.token_auth {
        TokenAuth::Basic => Auth::Basic(&options.client_id, &options.client_secret),
        TokenAuth::Post => Auth::Post(&options.client_id, &options.client_secret),
    }
}

async fn exchange(idp: &FakeIdp, code: &str) -> reqwest::Response {
    exchange_with(idp, code, VERIFIER, REDIRECT, right_auth(idp)).await
}

/// A full login; returns the token response JSON.
async fn tokens(idp: &FakeIdp) -> Value {
    let code = code(idp).await;
    let response = exchange(idp, &code).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn jwks(idp: &FakeIdp) -> JwkSet {
    http()
        .get(idp.jwks_uri())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Verifies `token` like a relying party would, with jsonwebtoken against the JWKS.
fn verify(token: &str, set: &JwkSet, issuer: &str, audience: &str) -> Result<Value, String> {
    let header = decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = set.find(&kid).ok_or(format!("kid {kid} not in the JWKS"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| format!("{:?}", e.kind()))
}

/// The payload without verifying anything.
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn discovery_document() {
    let idp = FakeIdp::start(FakeIdpOptions::default()).await;
    let issuer = idp.issuer();
    assert!(issuer.starts_with("http://127.0.0.1:") && !issuer.ends_with('/'));
    let doc: Value = http()
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], issuer.as_str());
    assert_eq!(doc["authorization_endpoint"], idp.authorize_url().as_str());
    assert_eq!(doc["token_endpoint"], idp.token_url().as_str());
    assert_eq!(doc["userinfo_endpoint"], idp.userinfo_url().as_str());
    assert_eq!(doc["jwks_uri"], idp.jwks_uri().as_str());
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(
        doc["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic"])
    );

    let provider = idp.identity_provider();
    assert_eq!(provider.issuer.as_deref(), Some(issuer.as_str()));
    assert_eq!(provider.token_url.as_str(), idp.token_url());
    assert_eq!(provider.client_id, "fhirgate-at-idp");
    assert_eq!(
        provider.client_secret.as_deref(),
        Some("idp-secret-0123456789")
    );
    assert_eq!(
        provider.token_auth_method,
        fhirgate::model::IdpTokenAuth::ClientSecretBasic
    );
    assert!(!provider.use_subject);
    assert_eq!(provider.scope, "openid profile email");
}

#[tokio::test]
async fn authorize_redirects_with_code_state_and_iss() {
    let idp = FakeIdp::start(FakeIdpOptions::default()).await;
    let response = authorize_with(&idp, &authorize_query(&idp)).await;
    assert_eq!(response.status(), 302);
    let location = Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(
        location.as_str().split('?').next(),
        REDIRECT.split('?').next()
    );
    let query: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    let get = |n: &str| {
        query
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("tenant"), "a", "the redirect URI's own query is kept");
    assert_eq!(get("state"), STATE);
    assert_eq!(get("iss"), idp.issuer());
    assert!(get("code").len() >= 32);
    let recorded = idp.authorize_requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].field("nonce"), Some(NONCE));
}

#[tokio::test]
async fn authorize_refuses_incomplete_requests() {
    let idp = FakeIdp::start(FakeIdpOptions::default()).await;
    for (name, value) in [
        ("state", None),
        ("nonce", None),
        ("code_challenge", None),
        ("code_challenge_method", Some("plain")),
        ("code_challenge_method", None),
        ("client_id", Some("someone-else")),
        ("response_type", Some("token")),
        ("redirect_uri", None),
        ("scope", Some("profile email")),
    ] {
        let mut query = authorize_query(&idp);
        query.retain(|(n, _)| *n != name);
        if let Some(value) = value {
            query.push((name, value.to_owned()));
        }
        let response = authorize_with(&idp, &query).await;
        assert_eq!(response.status(), 400, "{name}={value:?}");
        assert!(response.headers().get("location").is_none());
    }
    let mut repeated = authorize_query(&idp);
    repeated.push(("state", "other".into()));
    assert_eq!(authorize_with(&idp, &repeated).await.status(), 400);
}

#[tokio::test]
async fn token_exchange_and_an_independently_verified_id_token() {
    let idp = FakeIdp::start(FakeIdpOptions::default()).await;
    idp.set_next_login(NextLogin {
        name: Some("Alice Example".into()),
        ..NextLogin::user("alice-sub", "alice@example.org")
    });
    let body = tokens(&idp).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "openid profile email");

    let set = jwks(&idp).await;
    let id_token = body["id_token"].as_str().unwrap();
    let claims = verify(id_token, &set, &idp.issuer(), "fhirgate-at-idp").unwrap();
    assert_eq!(claims["sub"], "alice-sub");
    assert_eq!(claims["email"], "alice@example.org");
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["name"], "Alice Example");
    assert_eq!(claims["nonce"], NONCE);
    assert_eq!(claims["aud"], "fhirgate-at-idp");
    let header = decode_header(id_token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some("fake-rs256-1"));

    let access_token = body["access_token"].as_str().unwrap();
    let digest = Sha256::digest(access_token.as_bytes());
    assert_eq!(claims["at_hash"], URL_SAFE_NO_PAD.encode(&digest[..16]));
    let access = verify(access_token, &set, &idp.issuer(), "fhirgate-at-idp").unwrap();
    assert_eq!(access["sub"], "alice-sub");
    assert_eq!(access["email"], "alice@example.org");
    assert_eq!(
        decode_header(access_token).unwrap().typ.as_deref(),
        Some("at+jwt")
    );

    let recorded = idp.token_requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].client_auth, RecordedClientAuth::Basic);
    assert_eq!(
        recorded[0].basic_client_id.as_deref(),
        Some("fhirgate-at-idp")
    );
    assert_eq!(recorded[0].field("code_verifier"), Some(VERIFIER));
    assert_eq!(recorded[0].field("redirect_uri"), Some(REDIRECT));
    assert_eq!(recorded[0].field("grant_type"), Some("authorization_code"));
}

async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["error"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn wrong_verifier_redirect_uri_and_replay_are_invalid_grant() {
    let idp = FakeIdp::start(FakeIdpOptions::default()).await;
    let options = idp.options().clone();
    let auth = || Auth::Basic(&options.client_id, &options.client_secret);
    let wrong_verifier = "x".repeat(43);

    let code1 = code(&idp).await;
    let response = exchange_with(&idp, &code1, &wrong_verifier, REDIRECT, auth()).await;
    assert_eq!(error_of(response).await, (400, "invalid_grant".into()));
    // The code is spent even though the verifier was wrong.
    let response = exchange_with(&idp, &code1, VERIFIER, REDIRECT, auth()).await;
    assert_eq!(error_of(response).await, (400, "invalid_grant".into()));

    let code2 = code(&idp).await;
    let response = exchange_with(&idp, &code2, VERIFIER, "https://evil.example/cb", auth()).await;
    assert_eq!(error_of(response).await, (400, "invalid_grant".into()));

    let code3 = code(&idp).await;
    let response = exchange_with(&idp, &code3, "short", REDIRECT, auth()).await;
    assert_eq!(error_of(response).await, (400, "invalid_grant".into()));

    let code4 = code(&idp).await;
    assert_eq!(exchange(&idp, &code4).await.status(), 200);
    let replay = exchange(&idp, &code4).await;
    assert_eq!(error_of(replay).await, (400, "invalid_grant".into()));

    let unknown = exchange(&idp, "never-issued").await;
    assert_eq!(error_of(unknown).await, (400, "invalid_grant".into()));
}

#[tokio::test]
async fn basic_client_authentication() {
    let idp = FakeIdp::start(FakeIdpOptions::default()).await;
    let o = idp.options().clone();
    for (auth, label) in [
        (Auth::Post(&o.client_id, &o.client_secret), "post"),
        (Auth::Basic(&o.client_id, "wrong-secret"), "wrong secret"),
        (Auth::Basic("someone-else", &o.client_secret), "wrong id"),
        (Auth::Both, "both"),
        (Auth::None, "none"),
    ] {
        let code = code(&idp).await;
        let response = exchange_with(&idp, &code, VERIFIER, REDIRECT, auth).await;
        assert_eq!(response.status(), 401, "{label}");
        assert!(response.headers().get("www-authenticate").is_some());
        assert_eq!(error_of(response).await.1, "invalid_client", "{label}");
    }
    let kinds: Vec<RecordedClientAuth> =
        idp.token_requests().iter().map(|r| r.client_auth).collect();
    assert_eq!(
        kinds,
        [
            RecordedClientAuth::Post,
            RecordedClientAuth::Basic,
            RecordedClientAuth::Basic,
            RecordedClientAuth::Both,
            RecordedClientAuth::None
        ]
    );
}

#[tokio::test]
async fn basic_credentials_are_form_urlencoded() {
    let idp = FakeIdp::start(FakeIdpOptions {
        client_id: "client:one".into(),
        client_secret: "s3cr:t/+ %é".into(),
        ..FakeIdpOptions::default()
    })
    .await;
    let body = tokens(&idp).await;
    assert!(body["id_token"].is_string());
    assert_eq!(
        idp.token_requests()[0].basic_client_id.as_deref(),
        Some("client:one")
    );
}

#[tokio::test]
async fn post_client_authentication() {
    let idp = FakeIdp::start(FakeIdpOptions {
        token_auth: TokenAuth::Post,
        ..FakeIdpOptions::default()
    })
    .await;
    assert_eq!(
        idp.identity_provider().token_auth_method,
        fhirgate::model::IdpTokenAuth::ClientSecretPost
    );
    let body = tokens(&idp).await;
    assert!(body["id_token"].is_string());
    assert_eq!(
        idp.token_requests()[0].client_auth,
        RecordedClientAuth::Post
    );
    assert_eq!(
        idp.token_requests()[0].field("client_id"),
        Some("fhirgate-at-idp")
    );

    let o = idp.options().clone();
    for auth in [
        Auth::Basic(&o.client_id, &o.client_secret),
        Auth::Post(&o.client_id, "wrong"),
        Auth::Both,
    ] {
        let code = code(&idp).await;
        let response = exchange_with(&idp, &code, VERIFIER, REDIRECT, auth).await;
        assert_eq!(error_of(response).await, (401, "invalid_client".into()));
    }
}

#[tokio::test]
async fn jwks_and_key_rotation() {
    let idp = FakeIdp::start(FakeIdpOptions::default()).await;
    assert_eq!(idp.jwks_fetches(), 0);
    let set = jwks(&idp).await;
    assert_eq!(idp.jwks_fetches(), 1);
    assert_eq!(set.keys.len(), 1);
    let key = &set.keys[0];
    assert_eq!(key.common.key_id.as_deref(), Some("fake-rs256-1"));
    assert_eq!(key.common.public_key_use, Some(PublicKeyUse::Signature));
    assert!(key.common.key_algorithm.is_some());
    assert!(matches!(key.algorithm, AlgorithmParameters::RSA(_)));
    let raw: Value = http()
        .get(idp.jwks_uri())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["keys"][0]["alg"], "RS256");
    assert_eq!(raw["keys"][0]["use"], "sig");
    assert!(raw["keys"][0].get("d").is_none(), "no private members");
    assert_eq!(idp.jwks_fetches(), 2);

    let before = tokens(&idp).await["id_token"].as_str().unwrap().to_owned();
    assert!(verify(&before, &set, &idp.issuer(), "fhirgate-at-idp").is_ok());

    // Abrupt rotation: only the new key is published.
    idp.rotate_keys();
    assert_eq!(idp.current_kid(), "fake-rs256-2");
    let rotated = jwks(&idp).await;
    let kids: Vec<_> = rotated
        .keys
        .iter()
        .map(|k| k.common.key_id.clone().unwrap())
        .collect();
    assert_eq!(kids, ["fake-rs256-2"]);
    assert_eq!(
        verify(&before, &rotated, &idp.issuer(), "fhirgate-at-idp"),
        Err("kid fake-rs256-1 not in the JWKS".into())
    );
    let after = tokens(&idp).await["id_token"].as_str().unwrap().to_owned();
    assert_eq!(
        decode_header(&after).unwrap().kid.as_deref(),
        Some("fake-rs256-2")
    );
    assert!(verify(&after, &rotated, &idp.issuer(), "fhirgate-at-idp").is_ok());
    // A relying party holding the old JWKS cannot verify the new token.
    assert!(verify(&after, &set, &idp.issuer(), "fhirgate-at-idp").is_err());

    // Graceful rotation: both published, the new one signs.
    idp.rotate_keys_keep_old();
    assert_eq!(idp.published_kids(), ["fake-rs256-3", "fake-rs256-2"]);
    let both = jwks(&idp).await;
    assert_eq!(both.keys.len(), 2);
    assert!(verify(&after, &both, &idp.issuer(), "fhirgate-at-idp").is_ok());
    let newest = tokens(&idp).await["id_token"].as_str().unwrap().to_owned();
    assert_eq!(
        decode_header(&newest).unwrap().kid.as_deref(),
        Some("fake-rs256-3")
    );
    assert!(verify(&newest, &both, &idp.issuer(), "fhirgate-at-idp").is_ok());
    assert_eq!(idp.jwks_fetches(), 4);
}

#[tokio::test]
async fn es256() {
    let idp = FakeIdp::start(FakeIdpOptions {
        alg: FakeAlg::Es256,
        ..FakeIdpOptions::default()
    })
    .await;
    let set = jwks(&idp).await;
    assert!(matches!(
        set.keys[0].algorithm,
        AlgorithmParameters::EllipticCurve(_)
    ));
    let id_token = tokens(&idp).await["id_token"].as_str().unwrap().to_owned();
    assert_eq!(
        decode_header(&id_token).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );
    assert!(verify(&id_token, &set, &idp.issuer(), "fhirgate-at-idp").is_ok());
    idp.rotate_keys();
    let rotated = jwks(&idp).await;
    assert_eq!(
        rotated.keys[0].common.key_id.as_deref(),
        Some("fake-es256-2")
    );
}

/// Logs in as `next` and returns the ID token, with the JWKS to check it against.
async fn id_token_for(idp: &FakeIdp, next: NextLogin) -> (String, JwkSet) {
    idp.set_next_login(next);
    let body = tokens(idp).await;
    (
        body["id_token"].as_str().unwrap().to_owned(),
        jwks(idp).await,
    )
}

#[tokio::test]
async fn each_misbehaviour_changes_what_it_should() {
    let idp = FakeIdp::start(FakeIdpOptions::default()).await;
    let issuer = idp.issuer();
    let aud = "fhirgate-at-idp";
    let base = || NextLogin::user("bob", "bob@example.org");

    let (token, set) = id_token_for(&idp, base()).await;
    assert!(verify(&token, &set, &issuer, aud).is_ok());

    let (token, set) = id_token_for(
        &idp,
        NextLogin {
            iss_override: Some("https://impostor.example".into()),
            ..base()
        },
    )
    .await;
    assert_eq!(claims(&token)["iss"], "https://impostor.example");
    assert_eq!(
        verify(&token, &set, &issuer, aud),
        Err("InvalidIssuer".into())
    );

    let (token, set) = id_token_for(
        &idp,
        NextLogin {
            aud_override: Some(vec!["someone-else".into()]),
            ..base()
        },
    )
    .await;
    assert_eq!(claims(&token)["aud"], serde_json::json!(["someone-else"]));
    assert!(claims(&token).get("azp").is_none());
    assert_eq!(
        verify(&token, &set, &issuer, aud),
        Err("InvalidAudience".into())
    );

    let (token, _) = id_token_for(
        &idp,
        NextLogin {
            aud_override: Some(vec![aud.into(), "other".into()]),
            ..base()
        },
    )
    .await;
    assert_eq!(claims(&token)["azp"], aud);

    let (token, set) = id_token_for(
        &idp,
        NextLogin {
            nonce_override: Some(Some("another-nonce".into())),
            ..base()
        },
    )
    .await;
    assert_eq!(claims(&token)["nonce"], "another-nonce");
    assert!(verify(&token, &set, &issuer, aud).is_ok());

    let (token, _) = id_token_for(
        &idp,
        NextLogin {
            nonce_override: Some(None),
            ..base()
        },
    )
    .await;
    assert!(claims(&token).get("nonce").is_none());

    let (token, set) = id_token_for(
        &idp,
        NextLogin {
            expired: true,
            ..base()
        },
    )
    .await;
    assert_eq!(
        verify(&token, &set, &issuer, aud),
        Err("ExpiredSignature".into())
    );

    let (token, _) = id_token_for(
        &idp,
        NextLogin {
            iat_offset_seconds: -7200,
            ..base()
        },
    )
    .await;
    let c = claims(&token);
    assert_eq!(
        c["iat"].as_i64().unwrap(),
        c["auth_time"].as_i64().unwrap() - 7200
    );
    assert!(c["exp"].as_i64().unwrap() > c["auth_time"].as_i64().unwrap());

    let (token, set) = id_token_for(
        &idp,
        NextLogin {
            sign_with_unknown_key: true,
            ..base()
        },
    )
    .await;
    assert_eq!(
        decode_header(&token).unwrap().kid.as_deref(),
        Some("fake-rs256-1")
    );
    assert_eq!(
        verify(&token, &set, &issuer, aud),
        Err("InvalidSignature".into())
    );

    let (token, set) = id_token_for(
        &idp,
        NextLogin {
            tamper_payload: true,
            ..base()
        },
    )
    .await;
    assert_eq!(claims(&token)["sub"], "bob.tampered");
    assert_eq!(
        verify(&token, &set, &issuer, aud),
        Err("InvalidSignature".into())
    );

    let (token, set) = id_token_for(
        &idp,
        NextLogin {
            email_verified: Some(false),
            ..base()
        },
    )
    .await;
    assert_eq!(
        verify(&token, &set, &issuer, aud).unwrap()["email_verified"],
        false
    );

    let (token, set) = id_token_for(
        &idp,
        NextLogin {
            email: None,
            email_verified: None,
            ..base()
        },
    )
    .await;
    let c = verify(&token, &set, &issuer, aud).unwrap();
    assert!(c.get("email").is_none() && c.get("email_verified").is_none());

    idp.set_next_login(NextLogin {
        omit_id_token: true,
        ..base()
    });
    let body = tokens(&idp).await;
    assert!(body.get("id_token").is_none());
    assert!(body["access_token"].is_string());
}

#[tokio::test]
async fn the_login_is_captured_with_the_code() {
    let idp = FakeIdp::start(FakeIdpOptions::default()).await;
    idp.set_next_login(NextLogin::user("first", "first@example.org"));
    let code = code(&idp).await;
    idp.set_next_login(NextLogin::user("second", "second@example.org"));
    let body: Value = exchange(&idp, &code).await.json().await.unwrap();
    assert_eq!(claims(body["id_token"].as_str().unwrap())["sub"], "first");
}

#[tokio::test]
async fn token_behaviours() {
    let idp = FakeIdp::start(FakeIdpOptions::default()).await;
    let code = code(&idp).await;

    idp.set_token_behaviour(TokenBehaviour::Status(503));
    let response = exchange(&idp, &code).await;
    assert_eq!(error_of(response).await, (503, "server_error".into()));
    idp.set_token_behaviour(TokenBehaviour::Status(400));
    let response = exchange(&idp, &code).await;
    assert_eq!(error_of(response).await, (400, "invalid_grant".into()));
    idp.set_token_behaviour(TokenBehaviour::Status(401));
    let response = exchange(&idp, &code).await;
    assert_eq!(error_of(response).await, (401, "invalid_client".into()));

    idp.set_token_behaviour(TokenBehaviour::NotJson);
    let response = exchange(&idp, &code).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(response.json::<Value>().await.is_err());

    idp.set_token_behaviour(TokenBehaviour::Delay(Duration::from_millis(800)));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    let outcome = impatient
        .post(idp.token_url())
        .form(&[("grant_type", "authorization_code")])
        .send()
        .await;
    assert!(outcome.unwrap_err().is_timeout());

    // None of the above consumed the code.
    idp.set_token_behaviour(TokenBehaviour::Delay(Duration::from_millis(50)));
    let response = exchange(&idp, &code).await;
    assert_eq!(response.status(), 200);
    idp.set_token_behaviour(TokenBehaviour::Normal);
    assert_eq!(idp.token_requests().len(), 6);
}

async fn userinfo(idp: &FakeIdp, token: &str) -> reqwest::Response {
    http()
        .get(idp.userinfo_url())
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn userinfo_accepts_the_fakes_access_tokens_only() {
    let idp = FakeIdp::start(FakeIdpOptions::default()).await;
    idp.set_next_login(NextLogin {
        name: Some("Carol".into()),
        ..NextLogin::user("carol", "carol@example.org")
    });
    let body = tokens(&idp).await;
    let access_token = body["access_token"].as_str().unwrap();
    let response = userinfo(&idp, access_token).await;
    assert_eq!(response.status(), 200);
    let info: Value = response.json().await.unwrap();
    assert_eq!(
        info,
        serde_json::json!({"sub": "carol", "email": "carol@example.org", "email_verified": true, "name": "Carol"})
    );

    let minted = idp.access_token(
        "dave",
        "dave@example.org",
        "https://fhirgate.example.org",
        false,
    );
    let c = claims(&minted);
    assert_eq!(c["aud"], "https://fhirgate.example.org");
    assert_eq!(c["iss"], idp.issuer().as_str());
    assert!(
        verify(
            &minted,
            &jwks(&idp).await,
            &idp.issuer(),
            "https://fhirgate.example.org"
        )
        .is_ok()
    );
    let info: Value = userinfo(&idp, &minted).await.json().await.unwrap();
    assert_eq!(info["sub"], "dave");
    assert_eq!(info["email"], "dave@example.org");
    assert_eq!(info["email_verified"], true);

    let expired = idp.access_token("dave", "dave@example.org", "x", true);
    assert_eq!(userinfo(&idp, &expired).await.status(), 401);
    let id_token = body["id_token"].as_str().unwrap();
    assert_eq!(
        userinfo(&idp, id_token).await.status(),
        401,
        "an ID token is not an access token"
    );
    assert_eq!(userinfo(&idp, "garbage").await.status(), 401);
    let none = http().get(idp.userinfo_url()).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(none.headers().get("www-authenticate").is_some());

    // After an abrupt rotation the old access token no longer verifies.
    idp.rotate_keys();
    assert_eq!(userinfo(&idp, access_token).await.status(), 401);
    let fresh = idp.access_token("dave", "dave@example.org", "x", false);
    assert_eq!(userinfo(&idp, &fresh).await.status(), 200);
}

#[tokio::test]
async fn a_fixed_clock() {
    let idp = FakeIdp::start(FakeIdpOptions::default()).await;
    let start = 1_795_860_000; // 2026-11-28T10:00:00Z, the fixture's START
    idp.set_now(Some(start));
    let body = tokens(&idp).await;
    let c = claims(body["id_token"].as_str().unwrap());
    assert_eq!(c["iat"], start);
    assert_eq!(c["exp"], start + 3600);
    // UserInfo judges expiry by the same clock.
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&idp, access).await.status(), 200);
    idp.set_now(Some(start + 3601));
    assert_eq!(userinfo(&idp, access).await.status(), 401);
}

#[tokio::test]
async fn stop_ends_serving() {
    let idp = FakeIdp::start(FakeIdpOptions::default()).await;
    let url = idp.discovery_url();
    assert_eq!(http().get(&url).send().await.unwrap().status(), 200);
    idp.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(http().get(&url).send().await.is_err());
}

/// fhirgate's own transport against the fake: what the federation engine will use.
#[cfg(feature = "reqwest")]
#[tokio::test]
async fn reqwest_transport_against_the_fake() {
    use fhirgate::transport::{
        HttpMethod, HttpRequest, ReqwestOptions, ReqwestTransport, Transport, TransportError,
    };

    let idp = FakeIdp::start(FakeIdpOptions::default()).await;
    let transport = ReqwestTransport::new(ReqwestOptions::default()).unwrap();
    let answer = transport
        .send(HttpRequest::get(Url::parse(&idp.jwks_uri()).unwrap()))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    let set: JwkSet = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(set.keys.len(), 1);

    // The authorization endpoint's redirect comes back as a 302, not followed.
    let mut authorize = Url::parse(&idp.authorize_url()).unwrap();
    authorize
        .query_pairs_mut()
        .extend_pairs(authorize_query(&idp));
    let answer = transport.send(HttpRequest::get(authorize)).await.unwrap();
    assert_eq!(answer.status, 302);
    let location = Url::parse(answer.header("location").unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(n, _)| n == "code")
        .unwrap()
        .1
        .into_owned();

    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &code)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_verifier", VERIFIER)
        .finish();
    let request = HttpRequest {
        method: HttpMethod::Post,
        url: Url::parse(&idp.token_url()).unwrap(),
        headers: vec![
            (
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            (
                "authorization".into(),
                format!(
                    "Basic {}",
                    STANDARD.encode("fhirgate-at-idp:idp-secret-0123456789")
                ),
            ),
        ],
        body: form.into_bytes(),
    };
    let answer = transport.send(request.clone()).await.unwrap();
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    assert!(body["id_token"].is_string());

    idp.set_token_behaviour(TokenBehaviour::Delay(Duration::from_secs(5)));
    let impatient = ReqwestTransport::new({
        let mut options = ReqwestOptions::default();
        options.timeout = Duration::from_millis(200);
        options
    })
    .unwrap();
    assert_eq!(impatient.send(request).await, Err(TransportError::Timeout));
}
