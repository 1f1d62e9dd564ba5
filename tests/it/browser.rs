//! The sign-in pages in a real browser: headless Chromium from the distribution's packages,
//! driven over the W3C WebDriver protocol (chromedriver). A person signs up, asks for a
//! password reset, opens the link from the outbox, sets a new password, and signs in with it.
//!
//! Needs `chromium` and `chromedriver` on the `PATH` (`.ci/run` installs them); skipped with a
//! notice without them, failed without them when `FHIRGATE_REQUIRE_BROWSER=1`.
#![cfg(all(feature = "ui", feature = "axum"))]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use fhirgate::http::ui::{self, UiConfig};
use fhirgate::mail::Outbox;
use fhirgate::{Engine, MemoryStore};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::common::*;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

/// A WebDriver session on a chromedriver child process.
struct Browser {
    http: reqwest::Client,
    base: String,
    driver: tokio::process::Child,
}

impl Browser {
    async fn start() -> Option<Browser> {
        let required = std::env::var("FHIRGATE_REQUIRE_BROWSER").as_deref() == Ok("1");
        let (Some(driver), Some(chromium)) = (
            find("chromedriver"),
            find("chromium").or_else(|| find("chromium-browser")),
        ) else {
            assert!(
                !required,
                "FHIRGATE_REQUIRE_BROWSER=1 but chromium/chromedriver are missing"
            );
            eprintln!("SKIPPED: no chromium and chromedriver on PATH");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let http = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if http.get(format!("{root}/status")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1000,1200"],
            }
        }}});
        let session: Value = http
            .post(format!("{root}/session"))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = session["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}"))
            .to_owned();
        Some(Browser {
            http,
            base: format!("{root}/session/{id}"),
            driver: child,
        })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        answer["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn script(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Waits until `condition` (a JavaScript expression) is true; panics with the page's
    /// error text after 10 s.
    async fn wait_for(&self, condition: &str) {
        for _ in 0..100 {
            if self.script(&format!("return Boolean({condition});")).await == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let error = self
            .script("const e = document.getElementById('error'); return e ? e.textContent : document.body.innerText;")
            .await;
        panic!("timed out waiting for {condition}; the page says {error}");
    }

    async fn text(&self, css: &str) -> String {
        let id = self.element(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn quit(mut self) {
        self.call(reqwest::Method::DELETE, "", None).await;
        let _ = self.driver.kill().await;
    }
}

/// The demo's wiring: routes, pages and an outbox page, on a loopback port.
async fn serve() -> (String, MemoryStore, Outbox) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let issuer = format!("http://{addr}");
    let mut config = config();
    config.oauth.issuer = issuer.clone();
    let store = MemoryStore::new();
    let outbox = Outbox::new();
    let engine = Engine::builder()
        .store(store.clone())
        .config(config)
        .mailer(Arc::new(outbox.clone()))
        .build()
        .unwrap();
    Seeder {
        engine: &engine,
        dir: &store,
    }
    .seed()
    .await;
    let mut pages = UiConfig::default();
    pages.outbox = Some(outbox.clone());
    let app = fhirgate::http::router(engine.clone()).merge(ui::routes(engine, pages));
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (issuer, store, outbox)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_reset_through_the_outbox_link_and_sign_in_in_chromium() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let (issuer, store, outbox) = serve().await;

    // Sign up: an account, its own project, and the page's own PKCE exchange to a token.
    browser.open(&format!("{issuer}/signin")).await;
    browser.click("#to-register").await;
    browser.type_into("#first-name", "Robin").await;
    browser.type_into("#last-name", "Browser").await;
    browser.type_into("#project-name", "Robin's Practice").await;
    browser
        .type_into("#register-email", "robin@example.org")
        .await;
    browser
        .type_into("#register-password", "first passphrase here")
        .await;
    browser.click("#register-form button[type=submit]").await;
    browser
        .wait_for("!document.getElementById('done').hidden")
        .await;
    assert!(
        browser
            .text("#done-label")
            .await
            .starts_with("Signed in without a client")
    );
    let robin = fhirgate::store::Directory::user_by_email(&store, "robin@example.org", None)
        .await
        .unwrap()
        .expect("registered");

    // Forgot password: the same answer for any address; the link arrives in the outbox.
    browser.open(&format!("{issuer}/signin")).await;
    browser.click("#to-forgot").await;
    browser
        .type_into("#forgot-email", "robin@example.org")
        .await;
    browser.click("#forgot-form button[type=submit]").await;
    browser
        .wait_for("!document.getElementById('forgot-sent').hidden")
        .await;
    for _ in 0..50 {
        if outbox.last_to("robin@example.org").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.open(&format!("{issuer}/outbox")).await;
    let href = browser
        .script("return document.querySelector('ul.mails a').getAttribute('href');")
        .await;
    let link = href.as_str().expect("a link in the outbox").to_owned();
    assert!(
        link.starts_with(&format!("{issuer}/setpassword/")),
        "{link}"
    );

    // The link's page sets the password (opening it changed nothing by itself).
    browser.open(&link).await;
    browser
        .wait_for("!document.getElementById('set-form').hidden")
        .await;
    assert_eq!(
        browser.script("return window.location.pathname;").await,
        json!("/"),
        "the secret left the address bar"
    );
    browser
        .type_into("#new-password", "second passphrase here")
        .await;
    browser.click("#set-form button[type=submit]").await;
    browser
        .wait_for("!document.getElementById('done').hidden")
        .await;
    assert!(
        browser
            .text("#done-text")
            .await
            .starts_with("Your password is set")
    );
    let after = fhirgate::store::Directory::user(&store, &robin.id)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(after.password_hash, robin.password_hash);
    assert!(after.email_verified);

    // Sign in with the new password.
    browser.open(&format!("{issuer}/signin")).await;
    browser.type_into("#email", "robin@example.org").await;
    browser
        .type_into("#password", "second passphrase here")
        .await;
    browser.click("#password-form button[type=submit]").await;
    browser
        .wait_for("!document.getElementById('done').hidden")
        .await;
    assert!(
        browser
            .text("#done-label")
            .await
            .starts_with("Signed in without a client")
    );
    browser.quit().await;
}
