//! The fhirgate demo server: the library's Medplum-compatible routes and sign-in UI on axum,
//! seeded with demo data (`fhirgate::seed`), and a FHIR stub guarded by SMART scopes. In
//! memory unless `--database-url`; README.md ("Demo server") has a curl walk-through.
//!
//! `cargo run --features demo --example server -- --addr 127.0.0.1:0 --seed examples/seed.json`

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fhirgate::audit::TracingAudit;
use fhirgate::http::ui::{self, UiConfig};
use fhirgate::http::{Authenticated, HttpConfig, OperationOutcome};
use fhirgate::mail::{Mailer, Outbox, SmtpConfig, SmtpMailer};
use fhirgate::model::Interaction;
use fhirgate::seed::{Seed, Summary};
use fhirgate::store::DirectoryAdmin;
use fhirgate::token::{KeySet, ScopeDecision, SigningKey};
use fhirgate::{Config, Engine, EngineBuilder, MemoryStore};
use serde_json::json;
use tokio::net::TcpListener;
use url::Url;

const USAGE: &str = "\
usage: cargo run --features demo --example server -- [OPTIONS]

  --addr HOST:PORT   where to listen (default 127.0.0.1:8103; port 0 picks a free port)
  --seed FILE        load the data from a JSON seed file instead of the built-in demo data
  --issuer URL       the issuer (default http://<listening address>); required when listening
                     on a non-loopback address, where it must be https (a TLS proxy in front)
  --database-url URL keep everything in PostgreSQL (needs --features demo,postgres);
                     several servers can share one database
  --signing-key FILE sign with this PKCS#8 PEM key (ES256, EdDSA or RS256) instead of a key
                     generated at start-up; servers sharing a database must share it too
  --smtp-url URL     send mail (reset links, invitations, codes) over SMTP: smtp://user:pass@host:587
                     (STARTTLS), smtps://… (TLS) or smtp+plain://127.0.0.1:1025 (a local relay);
                     without it mail stays in an outbox shown at /outbox
  --mail-from ADDR   the sender of that mail (default \"fhirgate demo <no-reply@localhost>\")
  --log-json         JSON log lines on stderr (RUST_LOG filters them; default info)
  -h, --help         this text";

/// The PKCE pair of RFC 7636 Appendix B, used by the printed authorize URL and the README.
const RFC7636_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const RFC7636_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The built-in demo data, in the seed format, with `{issuer}` in its redirect URIs.
const BUILTIN_SEED: &str = include_str!("demo-seed.json");
const BUILTIN_SECRETS: &str = "passwords demo-password; client_secret of demo-confidential: \
                               demo-confidential-secret (client_secret_basic; also client_credentials)";
const DEMO_SCOPE: &str = "openid fhirUser offline_access user/*.rs";

#[derive(Default)]
struct Args {
    addr: Option<SocketAddr>,
    seed: Option<PathBuf>,
    issuer: Option<String>,
    database_url: Option<String>,
    signing_key: Option<PathBuf>,
    smtp_url: Option<String>,
    mail_from: Option<String>,
    log_json: bool,
}

/// The store's administrative side, which the seed is written through.
type Admin = Arc<dyn DirectoryAdmin>;

/// Why the server did not run: a usage or data problem (exit code 2) or a runtime failure (1).
enum Failure {
    Usage(String),
    Runtime(String),
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    init_tracing(args.log_json);
    let (message, code) = match run(args).await {
        Ok(()) => return ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => (message, ExitCode::from(2)),
        Err(Failure::Runtime(message)) => (message, ExitCode::FAILURE),
    };
    eprintln!("error: {message}");
    code
}

/// `Ok(None)` for `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args::default();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--addr" => {
                let text = value()?;
                let addr = text.to_socket_addrs().ok().and_then(|mut all| all.next());
                parsed.addr =
                    Some(addr.ok_or_else(|| format!("--addr {text:?} is not HOST:PORT"))?);
            }
            "--seed" => parsed.seed = Some(PathBuf::from(value()?)),
            "--issuer" => parsed.issuer = Some(value()?),
            "--database-url" => parsed.database_url = Some(value()?),
            "--signing-key" => parsed.signing_key = Some(PathBuf::from(value()?)),
            "--smtp-url" => parsed.smtp_url = Some(value()?),
            "--mail-from" => parsed.mail_from = Some(value()?),
            "--log-json" if inline.is_none() => parsed.log_json = true,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(parsed))
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let installed = match json {
        true => logs.json().try_init(),
        false => logs.with_ansi(ansi).try_init(),
    };
    if let Err(error) = installed {
        eprintln!("warning: logging not initialised: {error}");
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    // Bind first: with port 0 the issuer must name the port the system picked.
    let addr = args.addr.unwrap_or((Ipv4Addr::LOCALHOST, 8103).into());
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::Runtime(format!("cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::Runtime(format!("no local address: {e}")))?;
    let local = reachable(bound);
    let issuer = match args.issuer {
        Some(issuer) => issuer.trim_end_matches('/').to_owned(),
        None if local.ip().is_loopback() => format!("http://{local}"),
        None => {
            return Err(Failure::Usage(format!(
                "{bound} is not a loopback address, so the issuer must be https: pass \
                 --issuer https://… (the URL clients reach this server at, through a TLS proxy)"
            )));
        }
    };

    let (seed, origin) = match &args.seed {
        Some(path) => (
            Seed::from_file(path),
            format!("seed file {}", path.display()),
        ),
        None => {
            let builtin = BUILTIN_SEED.replace("{issuer}", &issuer);
            (Seed::from_json(&builtin), "built-in demo data".to_owned())
        }
    };
    let seed = seed.map_err(|e| Failure::Usage(format!("{origin}: {e}")))?;

    let mut config = Config::default();
    config.oauth.issuer = issuer.clone();
    seed.configure(&mut config);
    // Identity providers send the browser back here (register it at the provider). An issuer
    // that is not a URL is refused by `build` below.
    config.external_callback_url = Url::parse(&format!("{issuer}/auth/external")).ok();
    let mut builder = Engine::builder()
        .config(config)
        .audit(Arc::new(TracingAudit));
    // The seed is written through the store's administrative trait; the engine only reads.
    let admin: Admin;
    (builder, admin) = match &args.database_url {
        Some(url) => with_database(builder, url).await?,
        None => {
            let store = MemoryStore::new();
            (builder.store(store.clone()), Arc::new(store) as Admin)
        }
    };
    if let Some(path) = &args.signing_key {
        builder = builder.keys(KeySet::new(read_signing_key(path)?));
    }
    // Mail: SMTP when asked, else an outbox the pages show at /outbox.
    let from = args
        .mail_from
        .as_deref()
        .unwrap_or("fhirgate demo <no-reply@localhost>");
    let outbox = args.smtp_url.is_none().then(Outbox::new);
    builder = builder.mailer(match (&args.smtp_url, &outbox) {
        (Some(url), _) => SmtpConfig::from_url(url, from)
            .and_then(SmtpMailer::new)
            .map(|m| Arc::new(m) as Arc<dyn Mailer>)
            .map_err(|e| Failure::Usage(format!("--smtp-url: {e}")))?,
        (None, Some(outbox)) => Arc::new(outbox.clone()),
        (None, None) => Arc::new(fhirgate::mail::NoMailer),
    });
    // Outbound HTTP (identity providers, clients' JWKS): reqwest with rustls when built with
    // the `reqwest` feature; without it, federated sign-in reports the provider unreachable.
    #[cfg(feature = "reqwest")]
    {
        let transport = fhirgate::transport::ReqwestTransport::new(Default::default())
            .map_err(|e| Failure::Runtime(format!("HTTP client: {e}")))?;
        builder = builder.transport(Arc::new(transport));
    }
    #[cfg(not(feature = "reqwest"))]
    if seed.has_identity_providers() {
        eprintln!(
            "note: identity providers are configured but this build has no HTTP client; \
             run with --features demo,reqwest to sign in through them"
        );
    }
    let engine = builder.build().map_err(|e| Failure::Usage(e.to_string()))?;
    let mut summary = seed
        .load_for(&engine, admin.as_ref())
        .await
        .map_err(|e| Failure::Usage(format!("{origin}: {e}")))?;
    // Loopback redirect URIs as they reach this server (the banner and the tryout use them).
    summary.localize_redirects(&issuer);
    let scope = if args.seed.is_none() {
        DEMO_SCOPE
    } else {
        "openid"
    };
    let try_url = summary.try_url(&issuer, RFC7636_CHALLENGE, scope);
    print_banner(&issuer, &summary, try_url.as_deref(), args.seed.is_none());
    if outbox.is_some() {
        println!("  mail (reset links, invitations, codes): {issuer}/outbox\n");
    }

    fhirgate::http::spawn_purger(engine.clone(), Duration::from_secs(300));

    let mut pages = UiConfig::default();
    pages.product = "fhirgate demo".to_owned();
    pages.callback_client = summary.sign_in_client().map(|c| c.id.clone());
    pages.try_url = try_url;
    pages.try_verifier = Some(RFC7636_VERIFIER.to_owned());
    pages.outbox = outbox;
    let fhir = Router::new().route("/fhir/R4/Patient/{id}", get(read_patient));
    let app = fhirgate::http::router_with(engine.clone(), HttpConfig::default())
        .merge(ui::routes(engine.clone(), pages))
        .merge(fhir.with_state(engine));

    let shutdown = shutdown_signal()?;
    // The machine-readable line (tests and scripts wait for it).
    println!("listening on http://{local}");
    tracing::info!(address = %bound, %issuer, data = %origin, "listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(|e| Failure::Runtime(format!("server failed: {e}")))?;
    tracing::info!("stopped");
    Ok(())
}

/// PostgreSQL as the store, migrated; several servers may share it.
async fn with_database(
    builder: EngineBuilder,
    url: &str,
) -> Result<(EngineBuilder, Admin), Failure> {
    #[cfg(feature = "postgres")]
    {
        let failed =
            |e: fhirgate::store::StoreError| Failure::Runtime(format!("--database-url: {e}"));
        let store = fhirgate::PgStore::connect(url).await.map_err(failed)?;
        store.migrate().await.map_err(failed)?;
        Ok((builder.store(store.clone()), Arc::new(store)))
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = (builder, url);
        let hint = "--database-url needs the postgres feature: cargo run --features demo,postgres --example server";
        Err(Failure::Usage(hint.to_owned()))
    }
}

/// A PEM signing key: ES256, EdDSA or RS256, whichever it is.
fn read_signing_key(path: &std::path::Path) -> Result<SigningKey, Failure> {
    let refused = |e: String| Failure::Usage(format!("--signing-key {}: {e}", path.display()));
    let pem = std::fs::read_to_string(path).map_err(|e| refused(e.to_string()))?;
    SigningKey::from_pem(&pem).map_err(|e| refused(e.to_string()))
}

/// The bound address as a client reaches it: an unspecified address over loopback.
fn reachable(bound: SocketAddr) -> SocketAddr {
    match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, bound.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, bound.port()).into(),
        _ => bound,
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, so a signal
/// sent right after the `listening on` line (printed after this call) is never missed.
fn shutdown_signal() -> Result<impl Future<Output = ()>, Failure> {
    use tokio::signal::unix::{SignalKind, signal};
    let install = |kind: SignalKind, name: &str| {
        signal(kind).map_err(|e| Failure::Runtime(format!("cannot listen for {name}: {e}")))
    };
    let mut interrupt = install(SignalKind::interrupt(), "SIGINT")?;
    let mut terminate = install(SignalKind::terminate(), "SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down");
    })
}

fn print_banner(issuer: &str, summary: &Summary, try_url: Option<&str>, builtin: bool) {
    println!("fhirgate demo server (in memory: everything is lost when it stops)\n");
    println!("  issuer          {issuer}\n  sign-in page    {issuer}/signin\n{summary}");
    let secrets = "passwords and secrets are the ones in the seed file";
    println!("  {}", if builtin { BUILTIN_SECRETS } else { secrets });
    if let Some(url) = try_url {
        println!("\n  Sign in from a browser (PKCE code_verifier {RFC7636_VERIFIER}):\n  {url}");
    }
    println!();
}

/// `GET /fhir/R4/Patient/{id}`: a FHIR stub that echoes who is asking. A `patient/` scope
/// reads only the patient in context; a `user/` or `system/` scope any patient.
async fn read_patient(Authenticated(principal): Authenticated, Path(id): Path<String>) -> Response {
    let allowed = match principal.scope_allows("Patient", Interaction::Read) {
        ScopeDecision::Allowed => true,
        ScopeDecision::PatientCompartment(patient) => {
            patient.resource_type() == "Patient" && patient.id() == id
        }
        _ => false,
    };
    if !allowed {
        let challenge = "Bearer realm=\"fhirgate\", error=\"insufficient_scope\", \
                         scope=\"patient/Patient.rs user/Patient.rs\"";
        let outcome = OperationOutcome::with_status(StatusCode::FORBIDDEN, "Insufficient scope");
        let challenge = [(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        )];
        return (challenge, outcome).into_response();
    }
    let body = json!({
        "resourceType": "Patient",
        "id": id,
        "principal": {
            "subject": principal.subject.to_string(),
            "client": principal.client.as_ref().map(|c| c.as_str()),
            "profile": principal.profile.as_str(),
            "scope": principal.scope.to_string(),
            "patient": principal.patient.as_ref().map(|p| p.as_str()),
        }
    });
    (
        [(header::CONTENT_TYPE, "application/fhir+json")],
        body.to_string(),
    )
        .into_response()
}
