//! `fhirgate::http::ui`: the server-rendered sign-in, callback and index pages — their
//! security headers, per-response CSP nonces, and escaping of everything a request or a
//! client registration puts on a page.
#![cfg(feature = "ui")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use fhirgate::http::ui::{self, UiConfig};
use fhirgate::model::{ClientApplication, ClientId, ProjectId};
use fhirgate::store::DirectoryAdmin;
use fhirgate::{Engine, MemoryStore};
use tower::ServiceExt;

async fn pages(config: UiConfig) -> (axum::Router, MemoryStore) {
    let store = MemoryStore::new();
    let mut engine_config = fhirgate::Config::default();
    engine_config.oauth.issuer = "https://auth.example.org".into();
    let engine = Engine::builder()
        .store(store.clone())
        .config(engine_config)
        .build()
        .unwrap();
    let mut hostile = ClientApplication::new(ClientId::new("evil"), ProjectId::new("p"));
    hostile.name = "<script>alert(1)</script>\"><img src=x>".into();
    store.put_client(&hostile).await.unwrap();
    (ui::routes(engine, config), store)
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn nonce_of(headers: &axum::http::HeaderMap) -> String {
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    let start = csp.find("'nonce-").unwrap() + 7;
    csp[start..start + csp[start..].find('\'').unwrap()].to_owned()
}

#[tokio::test]
async fn every_page_has_the_security_headers_and_a_fresh_nonce() {
    let (app, _) = pages(UiConfig::default()).await;
    for uri in ["/", "/signin", "/callback?code=abc"] {
        let (status, headers, html) = get(&app, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{uri}: {csp}");
        }
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(
            headers[header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .contains("no-store")
        );
        let nonce = nonce_of(&headers);
        assert!(html.contains(&format!("nonce=\"{nonce}\"")), "{uri}");
        let (_, again, _) = get(&app, uri).await;
        assert_ne!(nonce_of(&again), nonce, "{uri}: a nonce is used once");
    }
}

#[tokio::test]
async fn the_sign_in_page_escapes_the_client_name_and_the_scope() {
    let (app, _) = pages(UiConfig::default()).await;
    let (_, _, html) = get(
        &app,
        "/signin?client_id=evil&scope=openid%20%3Cb%3E%22x%27%3C%2Fb%3E",
    )
    .await;
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x&gt;"));
    assert!(html.contains("&lt;b&gt;&quot;x&#39;&lt;/b&gt;"));
    assert!(html.contains("data-issuer=\"https://auth.example.org\""));
    // Without a client the page is its own app.
    let (_, _, own) = get(&app, "/signin").await;
    assert!(own.contains("No client in the request"));
}

#[tokio::test]
async fn the_callback_page_escapes_what_it_received_and_hints_only_for_a_code() {
    let mut config = UiConfig::default();
    config.callback_client = Some("demo-spa".into());
    config.try_verifier = Some("verifier-123".into());
    let (app, _) = pages(config).await;
    let (_, _, html) = get(&app, "/callback?state=%3Cscript%3Ex&error=%22%3E").await;
    assert!(
        html.contains("&lt;script&gt;x") && html.contains("&quot;&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>x"), "{html}");
    assert!(!html.contains("curl"), "no code, no hint");
    let (_, _, html) = get(&app, "/callback?code=abc123").await;
    assert!(html.contains("-d code=abc123") && html.contains("-d client_id=demo-spa"));
    assert!(html.contains("code_verifier=verifier-123"));
    // A code with other characters is shown, never put into the command.
    let (_, _, html) = get(&app, "/callback?code=a%3Bb").await;
    assert!(html.contains("a;b") && !html.contains("curl"), "{html}");
}

#[tokio::test]
async fn the_index_links_the_tryout_escaped() {
    let mut config = UiConfig::default();
    config.product = "Clinic <sign-in>".into();
    config.try_url = Some("https://auth.example.org/oauth2/authorize?a=1&b=\"2\"".into());
    let (app, _) = pages(config).await;
    let (_, _, html) = get(&app, "/").await;
    assert!(
        html.contains("<title>Clinic &lt;sign-in&gt;</title>"),
        "{html}"
    );
    assert!(
        html.contains("href=\"https://auth.example.org/oauth2/authorize?a=1&amp;b=&quot;2&quot;\"")
    );
}

#[tokio::test]
async fn link_pages_change_nothing_and_the_outbox_shows_mail_escaped() {
    use fhirgate::mail::{Mail, Mailer, Outbox};
    let (app, _) = pages(UiConfig::default()).await;
    let (status, headers, html) = get(
        &app,
        "/setpassword/0f8fad5b-d9cb-469f-a165-70867728950e/abc_DEF-123",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert!(html.contains("data-kind=\"set\"") && html.contains("data-secret=\"abc_DEF-123\""));
    let (status, _, html) = get(&app, "/verifyemail/id-1/secret-1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-kind=\"verify\""));
    // Only URL-safe ids and secrets reach a page.
    let (status, _, _) = get(&app, "/setpassword/id/%3Cscript%3E").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // No outbox unless configured.
    assert_eq!(get(&app, "/outbox").await.0, StatusCode::NOT_FOUND);

    let outbox = Outbox::new();
    outbox
        .send(&Mail {
            to: "a@example.org".into(),
            subject: "<b>Reset</b>".into(),
            text: "Open https://auth.example.org/setpassword/1/s?x=\"><script> now".into(),
            html: String::new(),
        })
        .await
        .unwrap();
    let mut config = UiConfig::default();
    config.outbox = Some(outbox);
    let (app, _) = pages(config).await;
    let (status, _, html) = get(&app, "/outbox").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("&lt;b&gt;Reset&lt;/b&gt;"));
    assert!(!html.contains("<script> now") && !html.contains("\"><script>"));
    assert!(
        html.contains(
            "href=\"https://auth.example.org/setpassword/1/s?x=&quot;&gt;&lt;script&gt;\""
        )
    );
}
