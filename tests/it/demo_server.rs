//! The demo server (`examples/server.rs`) as a newcomer meets it: started as a process on a
//! free loopback port and driven over HTTP — discovery, the README's walk-through, SMART
//! scopes at the FHIR stub, the sign-in and callback pages, malformed input, a seed file,
//! refused seed files and graceful shutdown.
//!
//! This test builds nothing: `cargo test --all-features` builds the examples before it runs
//! the tests, and the binary is found next to this test's executable. Run alone (`cargo test
//! --all-features --test demo_server`), it needs `cargo build --all-features --example server`
//! first; a missing binary, or one older than `examples/server.rs`, fails with that advice.
#![cfg(feature = "demo")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use fhirgate::credential::totp;
use fhirgate::model::TotpSecret;
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, WWW_AUTHENTICATE};
use serde_json::{Value, json};

/// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const PASSWORD: &str = "demo-password";
const WALK_SCOPE: &str = "openid fhirUser offline_access user/*.rs";

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// `target/<profile>/examples/server`, next to `target/<profile>/deps/it-…`.
fn server_binary() -> PathBuf {
    example_binary("server")
}

/// `target/<profile>/examples/<name>`, checked to be newer than its source.
fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps");
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "the example binary {} is missing: run `cargo test --all-features` (it builds the \
         examples first), or `cargo build --all-features --example {name}`",
        binary.display()
    );
    let source = manifest_dir().join("examples").join(format!("{name}.rs"));
    if let (Some(built), Some(edited)) = (modified(&binary), modified(&source)) {
        assert!(
            built >= edited,
            "the example binary {} is older than examples/{name}.rs: run `cargo test \
             --all-features` (it builds the examples first), or `cargo build --all-features \
             --example {name}`",
            binary.display()
        );
    }
    binary
}

/// A running demo server, killed when dropped (also when an assertion fails); its output is
/// shown if the test failed.
struct Server {
    child: Child,
    base: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect(
    pipe: impl std::io::Read + Send + 'static,
    into: Arc<Mutex<Vec<String>>>,
    listening: Option<mpsc::Sender<String>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if let (Some(tx), Some(url)) = (&listening, line.strip_prefix("listening on ")) {
                let _ = tx.send(url.trim().to_owned());
            }
            into.lock().unwrap().push(line);
        }
    })
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(server_binary())
            .args(args)
            .current_dir(manifest_dir())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the demo server");
        let (tx, rx) = mpsc::channel();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), stdout.clone(), Some(tx)),
            collect(child.stderr.take().unwrap(), stderr.clone(), None),
        ];
        let mut server = Server {
            child,
            base: String::new(),
            stdout,
            stderr,
            readers,
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => server.base = url,
            Err(_) => panic!("the demo server printed no `listening on` line within 60 s"),
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- demo server stdout ---\n{}\n--- demo server stderr ---\n{}",
                self.stdout(),
                self.stderr()
            );
        }
    }
}

/// Runs the server expecting it to stop by itself; returns its status, stdout and stderr.
fn run_to_exit(args: &[&str]) -> (ExitStatus, String, String) {
    let mut server = Server {
        child: Command::new(server_binary())
            .args(args)
            .current_dir(manifest_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the demo server"),
        base: String::new(),
        stdout: Arc::default(),
        stderr: Arc::default(),
        readers: Vec::new(),
    };
    server.readers = vec![
        collect(
            server.child.stdout.take().unwrap(),
            server.stdout.clone(),
            None,
        ),
        collect(
            server.child.stderr.take().unwrap(),
            server.stderr.clone(),
            None,
        ),
    ];
    let status = wait_for_exit(&mut server.child, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the server with {args:?} did not stop by itself"));
    for reader in server.readers.drain(..) {
        reader.join().unwrap();
    }
    (status, server.stdout(), server.stderr())
}

fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

fn outcome_text(body: &Value) -> &str {
    body["issue"][0]["details"]["text"].as_str().unwrap_or("")
}

/// `POST /auth/login` as Medplum's client sends it, with the RFC 7636 challenge.
async fn login(
    server: &Server,
    email: &str,
    password: &str,
    client: &str,
    redirect: &str,
    scope: &str,
) -> Value {
    let response = http()
        .post(server.url("/auth/login"))
        .json(&json!({
            "email": email,
            "password": password,
            "clientId": client,
            "redirectUri": redirect,
            "scope": scope,
            "codeChallenge": CHALLENGE,
            "codeChallengeMethod": "S256",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "login of {email}");
    json_of(response).await
}

/// Redeems a code for a public client with the RFC 7636 verifier.
async fn redeem(server: &Server, code: &str, client: &str, redirect: &str) -> Value {
    let response = http()
        .post(server.url("/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", client),
            ("redirect_uri", redirect),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "code redemption");
    assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
    json_of(response).await
}

async fn get_with(server: &Server, path: &str, token: &str) -> reqwest::Response {
    http()
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Signs in through `/auth/login` and the token endpoint; returns the token response.
async fn sign_in(server: &Server, email: &str, scope: &str) -> Value {
    let callback = server.url("/callback");
    let answer = login(server, email, PASSWORD, "demo-spa", &callback, scope).await;
    let code = answer["code"].as_str().expect("a code");
    redeem(server, code, "demo-spa", &callback).await
}

#[tokio::test]
async fn discovery_and_jwks_name_the_bound_port() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let port: u16 = server
        .base
        .strip_prefix("http://127.0.0.1:")
        .expect("a loopback URL")
        .parse()
        .unwrap();
    assert_ne!(port, 0);

    let config = json_of(
        http()
            .get(server.url("/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(config["issuer"], server.base);
    assert_eq!(
        config["authorization_endpoint"],
        server.url("/oauth2/authorize")
    );
    assert_eq!(config["token_endpoint"], server.url("/oauth2/token"));
    let jwks_uri = config["jwks_uri"].as_str().unwrap();
    assert_eq!(jwks_uri, server.url("/.well-known/jwks.json"));

    let jwks = json_of(http().get(jwks_uri).send().await.unwrap()).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        assert!(key["kid"].is_string() && key["kty"].is_string());
        assert!(key.get("d").is_none(), "a private key part is published");
    }
    let smart = http()
        .get(server.url("/.well-known/smart-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(smart.status(), StatusCode::OK);

    // The start-up banner tells a newcomer what to sign in with.
    let banner = server.stdout();
    for text in [
        "practitioner@example.com",
        "patient@example.com",
        PASSWORD,
        "demo-spa",
        "demo-confidential",
        "demo-confidential-secret",
        &server.url("/oauth2/authorize?"),
        &server.url("/outbox"),
    ] {
        assert!(
            banner.contains(text),
            "the banner lacks {text:?}:\n{banner}"
        );
    }

    let index = http().get(server.url("/")).send().await.unwrap();
    assert_eq!(index.status(), StatusCode::OK);

    // Without --smtp-url, mail lands in the outbox page: a reset link for a seeded user.
    let reset = post_json(
        &server,
        "/auth/resetpassword",
        json!({"email": "practitioner@example.com"}),
    )
    .await;
    assert_eq!(reset["issue"][0]["details"]["text"], "All OK", "{reset}");
    let mut page = String::new();
    for _ in 0..50 {
        page = http()
            .get(server.url("/outbox"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if page.contains("/setpassword/") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(page.contains(&server.url("/setpassword/")), "{page}");
}

/// README.md, "Demo server": the curl walk-through, step by step.
#[tokio::test]
async fn readme_walk_through() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);
    let callback = server.url("/callback");

    // The authorization endpoint sends the browser to the sign-in page, carrying the request.
    let authorize = http()
        .get(server.url("/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "demo-spa"),
            ("redirect_uri", callback.as_str()),
            ("scope", WALK_SCOPE),
            ("state", "af0ifjsldkj"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(authorize.status(), StatusCode::FOUND);
    let location = authorize.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&server.url("/signin?")), "{location}");
    assert!(location.contains("client_id=demo-spa") && location.contains(CHALLENGE));

    // The sign-in page: HTML whose only script is its own.
    let page = http().get(&location).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert!(
        headers[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers[CACHE_CONTROL], "no-store");
    let csp = headers[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    let nonce = csp
        .split("script-src 'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a script nonce in the CSP");
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"));
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("<script nonce=\"{nonce}\">")));
    assert!(html.contains("Demo single-page app") && html.contains("/auth/login"));

    // What the page's script sends: Medplum's /auth/login.
    let answer = login(
        &server,
        "practitioner@example.com",
        PASSWORD,
        "demo-spa",
        &callback,
        WALK_SCOPE,
    )
    .await;
    assert!(answer["login"].is_string());
    let code = answer["code"]
        .as_str()
        .expect("a code for a single membership");

    // The token endpoint, with the PKCE verifier.
    let tokens = redeem(&server, code, "demo-spa", &callback).await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], WALK_SCOPE);
    assert!(tokens["id_token"].is_string());
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    let me = get_with(&server, "/auth/me", &access).await;
    assert_eq!(me.status(), StatusCode::OK);
    let me = json_of(me).await;
    assert_eq!(me["user"]["email"], "practitioner@example.com");
    assert_eq!(me["profile"]["resourceType"], "Practitioner");
    assert_eq!(me["profile"]["id"], "demo-practitioner");
    assert_eq!(me["project"]["id"], "demo");

    let patient = get_with(&server, "/fhir/R4/Patient/demo-patient", &access).await;
    assert_eq!(patient.status(), StatusCode::OK);
    assert_eq!(patient.headers()[CONTENT_TYPE], "application/fhir+json");
    let patient = json_of(patient).await;
    assert_eq!(patient["resourceType"], "Patient");
    assert_eq!(patient["id"], "demo-patient");
    assert_eq!(patient["principal"]["subject"], "User/practitioner");
    assert_eq!(patient["principal"]["client"], "demo-spa");
    assert_eq!(
        patient["principal"]["profile"],
        "Practitioner/demo-practitioner"
    );
    assert_eq!(patient["principal"]["scope"], WALK_SCOPE);

    // Refresh: a new pair; the refresh token rotates.
    let refreshed = http()
        .post(server.url("/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
            ("client_id", "demo-spa"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed = json_of(refreshed).await;
    let access2 = refreshed["access_token"].as_str().unwrap().to_owned();
    let refresh2 = refreshed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(access2, access);
    assert_ne!(refresh2, refresh);
    assert_eq!(
        get_with(&server, "/auth/me", &access2).await.status(),
        StatusCode::OK
    );

    // Logout ends the grant: every token from it stops working.
    let logout = http()
        .post(server.url("/oauth2/logout"))
        .bearer_auth(&access2)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::OK);
    assert_eq!(outcome_text(&json_of(logout).await), "All OK");
    for token in [&access2, &access] {
        let me = get_with(&server, "/auth/me", token).await;
        assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
        assert!(
            me.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .contains("invalid_token")
        );
        let fhir = get_with(&server, "/fhir/R4/Patient/demo-patient", token).await;
        assert_eq!(fhir.status(), StatusCode::UNAUTHORIZED);
    }
    let again = http()
        .post(server.url("/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh2.as_str()),
            ("client_id", "demo-spa"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(again).await["error"], "invalid_grant");
}

#[tokio::test]
async fn smart_scopes_guard_the_fhir_stub() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);

    // A patient/ scope reads the patient in context, and no one else.
    let tokens = sign_in(
        &server,
        "patient@example.com",
        "openid fhirUser patient/*.rs",
    )
    .await;
    assert_eq!(tokens["patient"], "demo-patient");
    let access = tokens["access_token"].as_str().unwrap();
    let own = get_with(&server, "/fhir/R4/Patient/demo-patient", access).await;
    assert_eq!(own.status(), StatusCode::OK);
    assert_eq!(
        json_of(own).await["principal"]["patient"],
        "Patient/demo-patient"
    );
    let other = get_with(&server, "/fhir/R4/Patient/someone-else", access).await;
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    assert!(
        other.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    let other = json_of(other).await;
    assert_eq!(other["resourceType"], "OperationOutcome");
    assert_eq!(outcome_text(&other), "Insufficient scope");

    // No resource scope at all: signed in, but not allowed to read.
    let tokens = sign_in(&server, "practitioner@example.com", "openid fhirUser").await;
    let access = tokens["access_token"].as_str().unwrap();
    let denied = get_with(&server, "/fhir/R4/Patient/demo-patient", access).await;
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);

    // No token, or not one of ours.
    let anonymous = http()
        .get(server.url("/fhir/R4/Patient/demo-patient"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers().contains_key(WWW_AUTHENTICATE));
    let forged = get_with(&server, "/fhir/R4/Patient/demo-patient", "not.a.token").await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

    // The confidential client on its own (client_credentials, HTTP Basic).
    let grant = http()
        .post(server.url("/oauth2/token"))
        .basic_auth("demo-confidential", Some("demo-confidential-secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "user/Patient.rs"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(grant.status(), StatusCode::OK);
    let grant = json_of(grant).await;
    let access = grant["access_token"].as_str().unwrap();
    let read = get_with(&server, "/fhir/R4/Patient/anyone", access).await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(
        json_of(read).await["principal"]["subject"],
        "ClientApplication/demo-confidential"
    );
    // As Medplum's SDK asks (`startClientLogin` after `setBasicAuth`): no scope, and the
    // credentials in the header and again in the form. The default leaves patient/ scopes out.
    let grant = http()
        .post(server.url("/oauth2/token"))
        .basic_auth("demo-confidential", Some("demo-confidential-secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "demo-confidential"),
            ("client_secret", "demo-confidential-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(grant.status(), StatusCode::OK);
    let grant = json_of(grant).await;
    assert_eq!(
        grant["scope"],
        "openid fhirUser profile email offline_access user/*.cruds"
    );
    let wrong = http()
        .post(server.url("/oauth2/token"))
        .basic_auth("demo-confidential", Some("not-the-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(wrong).await["error"], "invalid_client");
}

#[tokio::test]
async fn pages_escape_input_and_malformed_requests_are_refused() {
    let server = Server::start(&["--addr", "127.0.0.1:0"]);

    let page = http()
        .get(server.url("/signin"))
        .query(&[
            ("client_id", "<script>alert(1)</script>"),
            ("scope", "openid \"><img src=x onerror=alert(2)>"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&quot;&gt;&lt;img src=x"));

    let callback = http()
        .get(server.url("/callback"))
        .query(&[("code", "abc123"), ("state", "<b>\"x'</b>")])
        .send()
        .await
        .unwrap();
    assert_eq!(callback.status(), StatusCode::OK);
    assert!(callback.headers().contains_key(CONTENT_SECURITY_POLICY));
    let html = callback.text().await.unwrap();
    assert!(html.contains("&lt;b&gt;&quot;x&#39;&lt;/b&gt;"));
    assert!(html.contains("abc123"));

    // A malformed JSON body is a clear 400, never a crash.
    let malformed = http()
        .post(server.url("/auth/login"))
        .header(CONTENT_TYPE, "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        outcome_text(&json_of(malformed).await),
        "Malformed JSON body"
    );
    let wrong_type = http()
        .post(server.url("/auth/login"))
        .header(CONTENT_TYPE, "text/plain")
        .body("email=x")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let json_token = http()
        .post(server.url("/oauth2/token"))
        .json(&json!({ "grant_type": "authorization_code" }))
        .send()
        .await
        .unwrap();
    assert_eq!(json_token.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(json_token).await["error"], "invalid_request");
    let password_grant = http()
        .post(server.url("/oauth2/token"))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(password_grant.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json_of(password_grant).await["error"],
        "unsupported_grant_type"
    );

    // Unknown routes: a 404 OperationOutcome.
    for path in ["/no/such/route", "/fhir/R4/Observation/1"] {
        let missing = http().get(server.url(path)).send().await.unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND, "{path}");
        let body = json_of(missing).await;
        assert_eq!(body["resourceType"], "OperationOutcome");
        assert_eq!(outcome_text(&body), "Not found");
    }

    // Still serving after all that.
    let config = http()
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(config.status(), StatusCode::OK);
}

/// Decodes unpadded RFC 4648 base32 (the `secret` of an `otpauth://` URI).
fn base32(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32: {text}"),
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

fn totp_now(secret: &[u8]) -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    totp::code_at(&TotpSecret::from_bytes(secret.to_vec()), now).unwrap()
}

async fn post_json(server: &Server, path: &str, body: Value) -> Value {
    let response = http()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    json_of(response).await
}

#[tokio::test]
async fn seed_file_users_second_factors_and_profiles() {
    let server = Server::start(&["--addr", "127.0.0.1:0", "--seed", "examples/seed.json"]);
    let banner = server.stdout();
    assert!(banner.contains("jane.doe@riverside.example") && banner.contains("TOTP enrolled"));
    assert!(banner.contains("client_id clinic-spa"));
    // The seed registers http://127.0.0.1:8103/callback; a loopback redirect may change port.
    let registered = "http://127.0.0.1:8103/callback";
    let scope = "openid fhirUser user/*.rs";

    // Jane: password, then TOTP, then a choice of two clinic profiles (not the research one).
    let answer = login(
        &server,
        "Jane.Doe@riverside.example",
        "correct horse battery staple",
        "clinic-spa",
        registered,
        scope,
    )
    .await;
    assert_eq!(answer["mfaRequired"], true);
    let handle = answer["login"].as_str().unwrap().to_owned();
    let answer = post_json(
        &server,
        "/auth/mfa/verify",
        json!({ "login": handle, "token": totp_now(b"12345678901234567890") }),
    )
    .await;
    let mut choices: Vec<&str> = answer["memberships"]
        .as_array()
        .expect("a choice of memberships")
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    choices.sort_unstable();
    assert_eq!(choices, ["m-jane", "m-jane-locum"]);
    let answer = post_json(
        &server,
        "/auth/profile",
        json!({ "login": answer["login"], "profile": "m-jane-locum" }),
    )
    .await;
    let tokens = redeem(
        &server,
        answer["code"].as_str().unwrap(),
        "clinic-spa",
        registered,
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap();
    let me = json_of(get_with(&server, "/auth/me", access).await).await;
    assert_eq!(me["membership"]["id"], "m-jane-locum");
    assert_eq!(me["security"]["mfaEnrolled"], true);
    let read = get_with(&server, "/fhir/R4/Patient/pat", access).await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(
        json_of(read).await["principal"]["profile"],
        "Practitioner/jane-locum"
    );

    // Sam must enrol a second factor while signing in.
    let answer = login(
        &server,
        "sam@riverside.example",
        "sam-demo-password",
        "clinic-spa",
        registered,
        scope,
    )
    .await;
    assert_eq!(answer["mfaEnrollRequired"], true);
    let uri = url::Url::parse(answer["enrollUri"].as_str().unwrap()).unwrap();
    let secret = uri
        .query_pairs()
        .find(|(k, _)| k == "secret")
        .map(|(_, v)| base32(&v))
        .expect("a secret in the enrolment URI");
    let answer = post_json(
        &server,
        "/auth/mfa/login-enroll",
        json!({ "login": answer["login"], "token": totp_now(&secret) }),
    )
    .await;
    assert!(answer["code"].is_string());

    // A domain with an identity provider.
    let method = post_json(
        &server,
        "/auth/method",
        json!({ "email": "someone@partner.example" }),
    )
    .await;
    assert_eq!(method["domain"], "partner.example");
    let start = method["authorizeUrl"].as_str().unwrap();
    assert_eq!(
        start,
        server.url("/auth/external/start?domain=partner.example")
    );
    // Medplum's client appends its login request as `state`; the start route creates the
    // login and sends the browser to the provider with a state of its own.
    let login_request = json!({
        "domain": "partner.example",
        "codeChallenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "codeChallengeMethod": "S256",
    });
    let mut start = reqwest::Url::parse(start).unwrap();
    start
        .query_pairs_mut()
        .append_pair("state", &login_request.to_string());
    let started = http().get(start).send().await.unwrap();
    assert_eq!(started.status(), StatusCode::FOUND);
    let location = reqwest::Url::parse(started.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(
        location.as_str().split('?').next(),
        Some("https://idp.partner.example/oauth2/authorize")
    );
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "fhirgate-demo");
    assert_eq!(q["redirect_uri"], server.url("/auth/external"));
    assert_eq!(q["code_challenge_method"], "S256");
    assert_ne!(q["state"], login_request.to_string());
    assert_eq!(q["state"].len(), 43);

    // The back office client: client_secret_post, client_credentials, a system/ scope.
    let grant = http()
        .post(server.url("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "clinic-backend"),
            ("client_secret", "riverside-back-office-secret"),
            ("scope", "system/*.rs"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(grant.status(), StatusCode::OK);
    let grant = json_of(grant).await;
    let read = get_with(
        &server,
        "/fhir/R4/Patient/pat",
        grant["access_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(read.status(), StatusCode::OK);
}

#[tokio::test]
async fn bad_seed_files_and_arguments_exit_with_code_2() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("demo-server-seeds");
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("not-json.json", "{ \"projects\": [", "EOF while parsing"),
        (
            "typo.json",
            r#"{ "users": [{ "id": "u", "email": "u@example.org", "pasword": "long enough" }] }"#,
            "unknown field `pasword`",
        ),
        (
            "dangling.json",
            r#"{ "projects": [{ "id": "p", "name": "P" }],
                 "memberships": [{ "id": "m", "project": "p", "user": "ghost",
                                   "profile": "Practitioner/1" }] }"#,
            "memberships[0]: user \"ghost\" is neither in users nor a client id",
        ),
        (
            "short-password.json",
            r#"{ "users": [{ "id": "u", "email": "u@example.org", "password": "short" }] }"#,
            "users[0]: password refused",
        ),
        (
            "bad-reference.json",
            r#"{ "projects": [{ "id": "p", "name": "P" }],
                 "users": [{ "id": "u", "email": "u@example.org" }],
                 "memberships": [{ "id": "m", "project": "p", "user": "u", "profile": "nobody" }] }"#,
            "Type/id",
        ),
        (
            "public-with-secret.json",
            r#"{ "projects": [{ "id": "p", "name": "P" }],
                 "clients": [{ "id": "c", "project": "p", "allowedScopes": "openid",
                               "authMethod": "none", "secret": "0123456789abcdef0123" }] }"#,
            "clients[0]: a public client",
        ),
    ];
    for (name, content, expected) in cases {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        let (status, _, stderr) =
            run_to_exit(&["--addr", "127.0.0.1:0", "--seed", path.to_str().unwrap()]);
        assert_eq!(status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }

    let (status, _, stderr) =
        run_to_exit(&["--addr", "127.0.0.1:0", "--seed", "/no/such/seed.json"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot read seed file"), "{stderr}");

    let (status, _, stderr) = run_to_exit(&["--addr", "127.0.0.1:0", "--smtp-url", "http://x"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--smtp-url"), "{stderr}");

    let (status, _, stderr) = run_to_exit(&["--bogus"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown argument") && stderr.contains("usage:"));
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_stops_the_server_gracefully() {
    let mut server = Server::start(&["--addr", "127.0.0.1:0"]);
    let pid = server.child.id().to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    let status = wait_for_exit(&mut server.child, Duration::from_secs(20))
        .expect("the server stops after SIGTERM");
    assert!(status.success(), "{status}");
    for reader in server.readers.drain(..) {
        reader.join().unwrap();
    }
    assert!(server.stderr().contains("shutting down"));
}

/// Two demo servers on one PostgreSQL database (the same signing key and issuer, as behind a
/// load balancer): a sign-in on one is redeemed on the other, and a replay on either revokes
/// the tokens on both.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn two_servers_share_one_database() {
    let Some(db) = crate::common::pg::TestDb::new().await else {
        return;
    };
    let url = db.store_url();
    let key = manifest_dir().join("tests/data/keys/p256.pem");
    let key = key.to_str().unwrap();
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--issuer",
        "http://127.0.0.1:1",
        "--database-url",
        url.as_str(),
        "--signing-key",
        key,
    ];
    let a = Server::start(&args);
    let b = Server::start(&args);
    let redirect = "http://127.0.0.1:1/callback";
    let answer = login(
        &a,
        "practitioner@example.com",
        PASSWORD,
        "demo-spa",
        redirect,
        WALK_SCOPE,
    )
    .await;
    let code = answer["code"].as_str().expect("a code").to_owned();
    let tokens = redeem(&b, &code, "demo-spa", redirect).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        get_with(&a, "/auth/me", &access).await.status(),
        StatusCode::OK
    );
    let replay = http()
        .post(a.url("/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", "demo-spa"),
            ("redirect_uri", redirect),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(replay).await["error"], "invalid_grant");
    assert_eq!(
        get_with(&b, "/auth/me", &access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    drop(a);
    drop(b);
    db.finish().await;
}

/// A federated sign-in through the demo server, with a seed file naming a provider (the fake
/// OpenID provider on loopback, on real time, as a real one would be).
#[cfg(feature = "reqwest")]
#[tokio::test]
async fn federated_sign_in_through_a_seeded_provider() {
    use crate::common::fake_idp::{FakeIdp, FakeIdpOptions, NextLogin};
    use std::collections::HashMap;

    let idp = FakeIdp::start(FakeIdpOptions::default()).await;
    idp.set_next_login(NextLogin::user("idp-nurse-7", "Nurse@Partner.test"));
    let options = idp.options().clone();
    let seed = json!({
        "projects": [{ "id": "clinic", "name": "Clinic" }],
        "users": [{ "id": "nurse", "email": "nurse@partner.test" }],
        "memberships": [{
            "id": "m-nurse", "project": "clinic", "user": "nurse",
            "profile": "Practitioner/nurse-7"
        }],
        "clients": [{
            "id": "fed-spa", "project": "clinic",
            "redirectUris": ["https://app.example/cb"],
            "allowedScopes": "openid fhirUser user/*.rs"
        }],
        "domains": [{
            "domain": "partner.test",
            "identityProvider": {
                "issuer": idp.issuer(),
                "authorizeUrl": idp.authorize_url(),
                "tokenUrl": idp.token_url(),
                "userInfoUrl": idp.userinfo_url(),
                "jwksUri": idp.jwks_uri(),
                "clientId": options.client_id,
                "clientSecret": options.client_secret,
                "tokenAuthMethod": "client_secret_basic"
            }
        }]
    });
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("demo-server-seeds");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("federation.json");
    std::fs::write(&path, seed.to_string()).unwrap();
    let server = Server::start(&["--addr", "127.0.0.1:0", "--seed", path.to_str().unwrap()]);
    let query = |url: &reqwest::Url| -> HashMap<String, String> {
        url.query_pairs().into_owned().collect()
    };
    let location = |response: &reqwest::Response| {
        assert_eq!(response.status(), StatusCode::FOUND, "{}", response.url());
        reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap()
    };

    // The sign-in page posts the email; the domain signs in at the provider.
    let answer = post_json(
        &server,
        "/auth/login",
        json!({
            "email": "nurse@partner.test",
            "clientId": "fed-spa",
            "redirectUri": "https://app.example/cb",
            "scope": "openid fhirUser user/*.rs",
            "codeChallenge": CHALLENGE,
            "codeChallengeMethod": "S256",
            "state": "app-state-1"
        }),
    )
    .await;
    assert_eq!(answer["domain"], "partner.test");
    // Our start route, to which the page appends its login request (as Medplum's clients
    // do); the browser gets its binding cookie there.
    let mut start = reqwest::Url::parse(answer["authorizeUrl"].as_str().unwrap()).unwrap();
    assert_eq!(
        start.as_str(),
        server.url("/auth/external/start?domain=partner.test")
    );
    start.query_pairs_mut().append_pair(
        "state",
        &json!({
            "clientId": "fed-spa",
            "redirectUri": "https://app.example/cb",
            "scope": "openid fhirUser user/*.rs",
            "codeChallenge": CHALLENGE,
            "codeChallengeMethod": "S256",
            "state": "app-state-1"
        })
        .to_string(),
    );
    let started = http().get(start).send().await.unwrap();
    let binding = started.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(binding.starts_with("__Host-fhirgate-idp="), "{binding}");
    let at_provider = http().get(location(&started)).send().await.unwrap();
    let back = location(&at_provider);
    assert!(
        back.as_str().starts_with(&server.url("/auth/external?")),
        "{back}"
    );
    let to_app = location(
        &http()
            .get(back)
            .header("cookie", binding)
            .send()
            .await
            .unwrap(),
    );
    assert!(
        to_app.as_str().starts_with("https://app.example/cb?"),
        "{to_app}"
    );
    let q = query(&to_app);
    assert_eq!(q["state"], "app-state-1");
    let tokens = http()
        .post(server.url("/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", q["code"].as_str()),
            ("client_id", "fed-spa"),
            ("redirect_uri", "https://app.example/cb"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(tokens.status(), StatusCode::OK);
    let tokens = json_of(tokens).await;
    assert_eq!(tokens["scope"], "openid fhirUser user/*.rs");
    assert!(tokens["id_token"].is_string());
}

#[tokio::test]
async fn seed_file_banner_names_the_bound_port_and_the_signed_assertion_client_works() {
    let server = Server::start(&["--addr", "127.0.0.1:0", "--seed", "examples/seed.json"]);
    let banner = server.stdout();
    // The seed registers :8103 redirect URIs; the banner shows the ones that reach this server.
    assert!(!banner.contains(":8103/"), "{banner}");
    assert!(
        banner.contains(&format!("redirect_uri {}", server.url("/callback"))),
        "{banner}"
    );

    // The private_key_jwt client, with the committed demo key, signed by the example the
    // README uses.
    let token_endpoint = server.url("/oauth2/token");
    let sign = || {
        let output = Command::new(example_binary("client_assertion"))
            .args([
                "examples/keys/clinic-service-demo-key.pem",
                "clinic-service",
                "riverside-service-1",
                &token_endpoint,
            ])
            .current_dir(manifest_dir())
            .output()
            .expect("run the client_assertion example");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let assertion = sign();
    let grant = |assertion: String| {
        http()
            .post(server.url("/oauth2/token"))
            .form(&[
                ("grant_type", "client_credentials".to_owned()),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                ),
                ("client_assertion", assertion),
                ("scope", "system/Patient.rs".to_owned()),
            ])
            .send()
    };
    let answer = grant(assertion.clone()).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let answer = json_of(answer).await;
    assert_eq!(answer["scope"], "system/Patient.rs");
    let read = get_with(
        &server,
        "/fhir/R4/Patient/pat",
        answer["access_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(
        json_of(read).await["principal"]["subject"],
        "ClientApplication/clinic-service"
    );
    // The assertion works once (its jti is spent); a fresh one works again.
    let replay = grant(assertion).await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(replay).await["error"], "invalid_client");
    assert_eq!(grant(sign()).await.unwrap().status(), StatusCode::OK);

    // The refusal is in the audit log with its reason.
    let logged = server.stderr();
    assert!(
        logged.contains("token_refused") && logged.contains("invalid_client"),
        "{logged}"
    );
}

#[tokio::test]
async fn sign_in_page_shows_profiles_scopes_and_enrolment_in_words() {
    let server = Server::start(&["--addr", "127.0.0.1:0", "--seed", "examples/seed.json"]);
    // Scopes in words next to the raw string.
    let page = http()
        .get(server.url("/signin"))
        .query(&[
            ("client_id", "clinic-spa"),
            (
                "scope",
                "openid offline_access patient/Observation.rs user/*.cruds",
            ),
        ])
        .send()
        .await
        .unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("img-src 'self' data:"), "{csp}");
    let html = page.text().await.unwrap();
    for words in [
        "confirm who you are <code>openid</code>",
        "read and search Observation records of the selected patient <code>patient/Observation.rs</code>",
        "read, search, create, update and delete all records you have access to <code>user/*.cruds</code>",
    ] {
        assert!(html.contains(words), "the page lacks {words:?}:\n{html}");
    }
    // The page words codes for people and shows the enrolment QR code and key.
    assert!(html.contains("Authentication code"));
    assert!(html.contains("id=\"enroll-qr\"") && html.contains("id=\"enroll-key\""));
    assert!(!html.contains("MFA token</"), "{html}");

    // What the profile step shows comes from the API: display names, projects, read-only.
    let answer = login(
        &server,
        "jane.doe@riverside.example",
        "correct horse battery staple",
        "clinic-spa",
        "http://127.0.0.1:8103/callback",
        "openid user/*.rs",
    )
    .await;
    let answer = post_json(
        &server,
        "/auth/mfa/verify",
        json!({ "login": answer["login"], "token": totp_now(b"12345678901234567890") }),
    )
    .await;
    let memberships = answer["memberships"].as_array().unwrap();
    let jane = memberships.iter().find(|m| m["id"] == "m-jane").unwrap();
    assert_eq!(jane["profile"]["display"], "Dr Jane Doe");
    assert_eq!(jane["project"]["display"], "Riverside Clinic");
    assert!(jane["extension"].is_null());
    let locum = memberships
        .iter()
        .find(|m| m["id"] == "m-jane-locum")
        .unwrap();
    assert_eq!(locum["profile"]["display"], "Dr Jane Doe (locum)");
    assert_eq!(
        locum["extension"][0]["url"],
        "urn:fhirgate:membership-read-only"
    );
    assert_eq!(locum["extension"][0]["valueBoolean"], true);

    // Sam's enrolment answer carries the QR code the page shows.
    let answer = login(
        &server,
        "sam@riverside.example",
        "sam-demo-password",
        "clinic-spa",
        "http://127.0.0.1:8103/callback",
        "openid",
    )
    .await;
    assert!(
        answer["enrollQrCode"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );
}
