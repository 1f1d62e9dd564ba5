//! The fhirgate demo server: the library's Medplum-compatible routes on axum, seeded with demo
//! data, plus what a newcomer needs around them — a sign-in page, a callback page that shows
//! the code it received, and a FHIR stub guarded by SMART scopes.
//!
//! ```sh
//! cargo run --features axum --example server                  # 127.0.0.1:8103, built-in data
//! cargo run --features axum --example server -- --addr 127.0.0.1:0 --seed examples/seed.json
//! ```
//!
//! Everything lives in memory and is lost when the server stops; the signing key is generated
//! at start-up. README.md ("Demo server") documents the seed file and a curl walk-through.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path as FsPath, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use fhirgate::audit::{AuditEvent, AuditSink};
use fhirgate::http::{Authenticated, HttpConfig, OperationOutcome};
use fhirgate::model::{
    AccessPolicy, AccessPolicyId, ClientApplication, ClientAuthMethod, ClientId, ClientSecretHash,
    DomainConfiguration, IdentityProvider, IdpTokenAuth, Interaction, IpAccessRule, MembershipId,
    PkcePolicy, Project, ProjectId, ProjectMembership, Reference, ResourcePolicy, TotpSecret,
    TotpState, User, UserId,
};
use fhirgate::scope::ScopeSet;
use fhirgate::store::DirectoryAdmin;
use fhirgate::token::{KeySet, Principal, ScopeDecision, SigningAlgorithm, SigningKey, Subject};
use fhirgate::{Config, Engine, MemoryStore};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use url::Url;

const USAGE: &str = "\
usage: cargo run --features axum --example server -- [OPTIONS]

  --addr HOST:PORT   where to listen (default 127.0.0.1:8103; port 0 picks a free port)
  --seed FILE        load the data from a JSON seed file instead of the built-in demo data
  --issuer URL       the issuer (default http://<listening address>); required when listening
                     on a non-loopback address, where it must be https (a TLS proxy in front)
  --database-url URL keep everything in PostgreSQL instead of memory (needs the postgres
                     feature: cargo run --features axum,postgres --example server); several
                     servers can share one database
  --signing-key FILE sign with this PKCS#8 PEM key (ES256, EdDSA or RS256) instead of a key
                     generated at start-up; servers sharing a database must share it too
  --log-json         JSON log lines on stderr (RUST_LOG filters them; default info)
  -h, --help         this text";

/// The PKCE pair of RFC 7636 Appendix B, used by the printed authorize URL and the README.
const RFC7636_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const RFC7636_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

// The built-in demo data.
const DEMO_PASSWORD: &str = "demo-password";
const PRACTITIONER_EMAIL: &str = "practitioner@example.com";
const PATIENT_EMAIL: &str = "patient@example.com";
const SPA_CLIENT: &str = "demo-spa";
const CONFIDENTIAL_CLIENT: &str = "demo-confidential";
const CONFIDENTIAL_SECRET: &str = "demo-confidential-secret";
const DEMO_SCOPE: &str = "openid fhirUser offline_access user/*.rs";

// ---------------------------------------------------------------------------------------------
// Start-up

#[derive(Debug)]
struct Args {
    addr: SocketAddr,
    seed: Option<PathBuf>,
    issuer: Option<String>,
    database_url: Option<String>,
    signing_key: Option<PathBuf>,
    log_json: bool,
}

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
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `Ok(None)` for `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut parsed = Args {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 8103)),
        seed: None,
        issuer: None,
        database_url: None,
        signing_key: None,
        log_json: false,
    };
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
                parsed.addr = text
                    .to_socket_addrs()
                    .map_err(|e| format!("--addr {text:?}: {e}"))?
                    .next()
                    .ok_or_else(|| format!("--addr {text:?} names no address"))?;
            }
            "--seed" => parsed.seed = Some(PathBuf::from(value()?)),
            "--issuer" => parsed.issuer = Some(value()?),
            "--database-url" => parsed.database_url = Some(value()?),
            "--signing-key" => parsed.signing_key = Some(PathBuf::from(value()?)),
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let installed = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    if let Err(error) = installed {
        eprintln!("warning: logging not initialised: {error}");
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    // Bind first: with port 0 the issuer must name the port the system picked.
    let listener = TcpListener::bind(args.addr)
        .await
        .map_err(|e| Failure::Runtime(format!("cannot listen on {}: {e}", args.addr)))?;
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

    let (mut seed, origin) = match &args.seed {
        Some(path) => (
            read_seed(path).map_err(Failure::Usage)?,
            format!("seed file {}", path.display()),
        ),
        None => (
            builtin_seed(&issuer).map_err(|e| Failure::Runtime(format!("built-in seed: {e}")))?,
            "built-in demo data".to_owned(),
        ),
    };

    let mut config = Config::default();
    config.oauth.issuer = issuer.clone();
    if let Some(google) = seed.google.take() {
        config.google.client_ids = google.client_ids;
        config.google.create_users = google.create_users;
    }
    // Identity providers send the browser back here (register it at the provider).
    config.external_callback_url = Some(
        Url::parse(&format!("{issuer}/auth/external"))
            .map_err(|e| Failure::Usage(format!("--issuer: {e}")))?,
    );
    let mut builder = Engine::builder()
        .config(config)
        .audit(Arc::new(TracingAudit));
    // The seed is written through the store's administrative trait; the engine only reads.
    let admin: Arc<dyn DirectoryAdmin>;
    (builder, admin) = match &args.database_url {
        Some(url) => with_database(builder, url).await?,
        None => {
            let store = MemoryStore::new();
            let admin: Arc<dyn DirectoryAdmin> = Arc::new(store.clone());
            (builder.store(store), admin)
        }
    };
    if let Some(path) = &args.signing_key {
        builder = builder.keys(KeySet::new(read_signing_key(path)?));
    }
    // Outbound HTTP (identity providers, clients' JWKS): reqwest with rustls when built with
    // the `reqwest` feature; without it, federated sign-in reports the provider unreachable.
    #[cfg(feature = "reqwest")]
    {
        let transport = fhirgate::transport::ReqwestTransport::new(Default::default())
            .map_err(|e| Failure::Runtime(format!("HTTP client: {e}")))?;
        builder = builder.transport(Arc::new(transport));
    }
    #[cfg(not(feature = "reqwest"))]
    if !seed.domains.is_empty() || seed.clients.iter().any(|c| c.identity_provider.is_some()) {
        eprintln!(
            "note: identity providers are configured but this build has no HTTP client; \
             run with --features axum,reqwest to sign in through them"
        );
    }
    let engine = builder.build().map_err(|e| Failure::Usage(e.to_string()))?;

    let summary = load_seed(&engine, admin.as_ref(), seed)
        .await
        .map_err(|e| {
            Failure::Usage(match &args.seed {
                Some(path) => format!("seed file {}: {e}", path.display()),
                None => format!("built-in demo data: {e}"),
            })
        })?;

    let try_url = summary.try_url(&issuer);
    if args.seed.is_some() {
        print_seed_banner(&issuer, &summary, try_url.as_deref());
    } else {
        print_builtin_banner(&issuer, try_url.as_deref());
    }

    let purger = engine.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(300));
        loop {
            tick.tick().await;
            match purger.purge_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(entries = n, "purged expired logins and claims"),
                Err(error) => tracing::warn!(%error, "purging expired entries failed"),
            }
        }
    });

    let demo = Demo {
        engine: engine.clone(),
        issuer: issuer.clone().into(),
        callback_client: summary.callback_client(),
        try_url: try_url.map(Into::into),
    };
    let app = fhirgate::http::router_with(engine, HttpConfig::default()).merge(demo_routes(demo));

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
#[cfg(feature = "postgres")]
async fn with_database(
    builder: fhirgate::EngineBuilder,
    url: &str,
) -> Result<(fhirgate::EngineBuilder, Arc<dyn DirectoryAdmin>), Failure> {
    let store = fhirgate::PgStore::connect(url)
        .await
        .map_err(|e| Failure::Runtime(format!("--database-url: {e}")))?;
    store
        .migrate()
        .await
        .map_err(|e| Failure::Runtime(format!("--database-url: migrating failed: {e}")))?;
    tracing::info!("using PostgreSQL");
    Ok((builder.store(store.clone()), Arc::new(store)))
}

#[cfg(not(feature = "postgres"))]
async fn with_database(
    _builder: fhirgate::EngineBuilder,
    _url: &str,
) -> Result<(fhirgate::EngineBuilder, Arc<dyn DirectoryAdmin>), Failure> {
    Err(Failure::Usage(
        "--database-url needs the postgres feature: cargo run --features axum,postgres --example server"
            .to_owned(),
    ))
}

/// A PKCS#8 PEM signing key: ES256, EdDSA or RS256, whichever it is.
fn read_signing_key(path: &FsPath) -> Result<SigningKey, Failure> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("--signing-key {}: {e}", path.display())))?;
    [
        SigningAlgorithm::Es256,
        SigningAlgorithm::EdDsa,
        SigningAlgorithm::Rs256,
    ]
    .into_iter()
    .find_map(|alg| SigningKey::from_pkcs8_pem(alg, &pem).ok())
    .ok_or_else(|| {
        Failure::Usage(format!(
            "--signing-key {}: not a PKCS#8 PEM ES256, EdDSA or RS256 private key",
            path.display()
        ))
    })
}

/// The bound address as a client reaches it: an unspecified address (`0.0.0.0`, `::`) is
/// reached over loopback.
fn reachable(bound: SocketAddr) -> SocketAddr {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bound.port())
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled, so a signal sent right after the `listening on` line (which is
/// printed after this call) is never missed.
fn shutdown_signal() -> Result<impl Future<Output = ()>, Failure> {
    #[cfg(unix)]
    {
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
    #[cfg(not(unix))]
    {
        Ok(async {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::error!(%error, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
            tracing::info!("shutting down");
        })
    }
}

/// Audit events as log lines (target `fhirgate::audit`).
struct TracingAudit;

impl AuditSink for TracingAudit {
    fn record(&self, event: AuditEvent) {
        match serde_json::to_string(&event) {
            Ok(text) => tracing::info!(target: "fhirgate::audit", event = %text, "audit"),
            Err(error) => tracing::warn!(%error, "audit event not serialisable"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Banners

fn print_builtin_banner(issuer: &str, try_url: Option<&str>) {
    println!("fhirgate demo server (in memory: everything is lost when it stops)");
    println!();
    println!("  issuer          {issuer}");
    println!("  sign-in page    {issuer}/signin");
    println!(
        "  users           {PRACTITIONER_EMAIL} / {DEMO_PASSWORD}   (Practitioner/demo-practitioner)"
    );
    println!("                  {PATIENT_EMAIL} / {DEMO_PASSWORD}        (Patient/demo-patient)");
    println!("  public client   client_id {SPA_CLIENT}, PKCE S256 required");
    println!("                  redirect_uri {issuer}/callback");
    println!(
        "  confidential    client_id {CONFIDENTIAL_CLIENT}, client_secret {CONFIDENTIAL_SECRET}"
    );
    println!("                  (client_secret_basic; also client_credentials)");
    if let Some(url) = try_url {
        println!();
        println!("  Sign in from a browser (PKCE code_verifier {RFC7636_VERIFIER}):");
        println!("  {url}");
    }
    println!();
}

fn print_seed_banner(issuer: &str, summary: &Summary, try_url: Option<&str>) {
    println!("fhirgate demo server (in memory: everything is lost when it stops)");
    println!();
    println!("  issuer          {issuer}");
    println!("  sign-in page    {issuer}/signin");
    for (i, user) in summary.users.iter().enumerate() {
        let label = if i == 0 { "users" } else { "" };
        let mut notes = Vec::new();
        if !user.profiles.is_empty() {
            notes.push(user.profiles.join(", "));
        }
        if !user.password {
            notes.push("no password".to_owned());
        }
        if user.totp {
            notes
                .push("TOTP enrolled: add its totpSecretBase32 to an authenticator app".to_owned());
        } else if user.mfa_required {
            notes.push("must enrol TOTP at sign-in".to_owned());
        }
        println!("  {label:<15} {}   ({})", user.email, notes.join("; "));
    }
    for (i, client) in summary.clients.iter().enumerate() {
        let label = if i == 0 { "clients" } else { "" };
        println!(
            "  {label:<15} client_id {} ({}){}",
            client.id,
            match client.auth_method {
                ClientAuthMethod::None => "public, PKCE".to_owned(),
                other => other.to_string(),
            },
            client
                .redirect_uris
                .first()
                .map(|uri| format!(", redirect_uri {}", on_this_port(uri, issuer)))
                .unwrap_or_default()
        );
    }
    println!("  passwords and secrets are the ones in the seed file");
    if let Some(url) = try_url {
        println!();
        println!("  Sign in from a browser (PKCE code_verifier {RFC7636_VERIFIER}):");
        println!("  {url}");
    }
    println!();
}

// ---------------------------------------------------------------------------------------------
// Seed data

/// The seed file (README.md, "Demo server", documents it).
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Seed {
    #[serde(default)]
    projects: Vec<SeedProject>,
    #[serde(default)]
    users: Vec<SeedUser>,
    #[serde(default)]
    access_policies: Vec<SeedAccessPolicy>,
    #[serde(default)]
    memberships: Vec<SeedMembership>,
    #[serde(default)]
    clients: Vec<SeedClient>,
    #[serde(default)]
    domains: Vec<SeedDomain>,
    /// Google sign-in (`/auth/google`).
    #[serde(default)]
    google: Option<SeedGoogle>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedGoogle {
    client_ids: Vec<String>,
    #[serde(default)]
    create_users: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedProject {
    id: String,
    name: String,
    #[serde(default)]
    features: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedUser {
    id: String,
    email: String,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    /// Plain text here; hashed with argon2id at load.
    #[serde(default)]
    password: Option<String>,
    /// An enrolled TOTP factor (RFC 4648 base32, at least 128 bits).
    #[serde(default)]
    totp_secret_base32: Option<String>,
    #[serde(default)]
    mfa_required: bool,
    /// Project-scoped user.
    #[serde(default)]
    project: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedAccessPolicy {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    compartment: Option<Reference>,
    #[serde(default)]
    resources: Vec<SeedResourcePolicy>,
    #[serde(default, alias = "ip_rules")]
    ip_rules: Vec<IpAccessRule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedResourcePolicy {
    #[serde(alias = "resource_type")]
    resource_type: String,
    #[serde(default)]
    compartment: Option<Reference>,
    #[serde(default)]
    criteria: Option<String>,
    #[serde(default)]
    readonly: bool,
    #[serde(default)]
    interactions: Vec<Interaction>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedMembership {
    id: String,
    project: String,
    user: String,
    profile: Reference,
    /// The profile's display name, shown when a profile is chosen at sign-in.
    #[serde(default)]
    profile_display: Option<String>,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    access_policy: Option<String>,
    /// The subject an identity provider with `useSubject` knows the member by.
    #[serde(default)]
    external_id: Option<String>,
    /// That provider's issuer (a subject matches only together with it).
    #[serde(default)]
    external_issuer: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedClient {
    id: String,
    project: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    allowed_scopes: String,
    #[serde(default)]
    auth_method: ClientAuthMethod,
    /// Plain text here; stored as its SHA-256.
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    jwks: Option<jsonwebtoken::jwk::JwkSet>,
    #[serde(default)]
    jwks_uri: Option<Url>,
    #[serde(default)]
    pkce: Option<PkcePolicy>,
    #[serde(default)]
    default_scope: Option<String>,
    /// The client's own identity provider (every login through it, and token exchange).
    #[serde(default)]
    identity_provider: Option<SeedIdentityProvider>,
    /// The project's own application: its tokens may manage the account.
    #[serde(default)]
    first_party: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedDomain {
    domain: String,
    identity_provider: SeedIdentityProvider,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedIdentityProvider {
    #[serde(default)]
    issuer: Option<String>,
    authorize_url: Url,
    token_url: Url,
    #[serde(default, alias = "userinfoUrl")]
    user_info_url: Option<Url>,
    #[serde(default)]
    jwks_uri: Option<Url>,
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    token_auth_method: Option<IdpTokenAuth>,
    #[serde(default)]
    use_subject: bool,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    access_token_audiences: Vec<String>,
    /// The provider sends RFC 9207 `iss` in its authorization responses.
    #[serde(default)]
    iss_parameter_supported: bool,
    /// RFC 7662 introspection, for exchanging opaque access tokens.
    #[serde(default)]
    introspection_url: Option<Url>,
}

impl SeedIdentityProvider {
    fn into_provider(self) -> IdentityProvider {
        IdentityProvider {
            issuer: self.issuer,
            authorize_url: self.authorize_url,
            token_url: self.token_url,
            userinfo_url: self.user_info_url,
            jwks_uri: self.jwks_uri,
            client_id: self.client_id,
            client_secret: self.client_secret,
            token_auth_method: self.token_auth_method.unwrap_or_default(),
            use_subject: self.use_subject,
            scope: self
                .scope
                .unwrap_or_else(|| "openid profile email".to_owned()),
            access_token_audiences: self.access_token_audiences,
            iss_parameter_supported: self.iss_parameter_supported,
            introspection_url: self.introspection_url,
        }
    }
}

/// What the banner and the pages need to know about the loaded data.
#[derive(Debug, Default)]
struct Summary {
    users: Vec<UserSummary>,
    clients: Vec<ClientSummary>,
}

#[derive(Debug)]
struct UserSummary {
    email: String,
    password: bool,
    totp: bool,
    mfa_required: bool,
    profiles: Vec<String>,
}

#[derive(Debug)]
struct ClientSummary {
    id: String,
    auth_method: ClientAuthMethod,
    redirect_uris: Vec<String>,
    default_scope: Option<String>,
}

impl Summary {
    /// The client the sign-in walk-through uses: the first public client with a redirect URI,
    /// else the first client with one.
    fn walk_through_client(&self) -> Option<&ClientSummary> {
        let with_redirect = || self.clients.iter().filter(|c| !c.redirect_uris.is_empty());
        with_redirect()
            .find(|c| c.auth_method == ClientAuthMethod::None)
            .or_else(|| with_redirect().next())
    }

    fn callback_client(&self) -> Option<Arc<str>> {
        self.walk_through_client().map(|c| c.id.as_str().into())
    }

    /// An authorization request a browser can open to try the sign-in page.
    fn try_url(&self, issuer: &str) -> Option<String> {
        let client = self.walk_through_client()?;
        let redirect = on_this_port(client.redirect_uris.first()?, issuer);
        let mut url = Url::parse(&format!("{issuer}/oauth2/authorize")).ok()?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &client.id)
            .append_pair("redirect_uri", &redirect)
            .append_pair(
                "scope",
                client
                    .default_scope
                    .as_deref()
                    .unwrap_or(if client.id == SPA_CLIENT {
                        DEMO_SCOPE
                    } else {
                        "openid"
                    }),
            )
            .append_pair("state", "demo-state")
            .append_pair("code_challenge", RFC7636_CHALLENGE)
            .append_pair("code_challenge_method", "S256");
        Some(url.into())
    }
}

/// A loopback redirect URI on the issuer's host moved to the issuer's port (RFC 8252 §7.3 lets
/// a loopback redirect URI vary in port), so that a seed file's `http://127.0.0.1:8103/callback`
/// still reaches this server's callback page when it listens elsewhere.
fn on_this_port(redirect: &str, issuer: &str) -> String {
    let (Ok(mut uri), Ok(issuer)) = (Url::parse(redirect), Url::parse(issuer)) else {
        return redirect.to_owned();
    };
    let loopback = match uri.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost",
        None => false,
    };
    if loopback
        && uri.scheme() == "http"
        && issuer.scheme() == "http"
        && uri.host() == issuer.host()
        && uri.set_port(issuer.port()).is_ok()
    {
        return uri.into();
    }
    redirect.to_owned()
}

fn read_seed(path: &FsPath) -> Result<Seed, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read seed file {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("seed file {}: {e}", path.display()))
}

/// The built-in demo data, in the seed file format.
fn builtin_seed(issuer: &str) -> Result<Seed, serde_json::Error> {
    let callback = format!("{issuer}/callback");
    serde_json::from_value(json!({
        "projects": [{ "id": "demo", "name": "fhirgate demo" }],
        "users": [
            {
                "id": "practitioner", "email": PRACTITIONER_EMAIL, "password": DEMO_PASSWORD,
                "firstName": "Alice", "lastName": "Practitioner"
            },
            {
                "id": "patient", "email": PATIENT_EMAIL, "password": DEMO_PASSWORD,
                "firstName": "Bob", "lastName": "Patient"
            }
        ],
        "memberships": [
            {
                "id": "m-practitioner", "project": "demo", "user": "practitioner",
                "profile": "Practitioner/demo-practitioner", "profileDisplay": "Alice Practitioner"
            },
            {
                "id": "m-patient", "project": "demo", "user": "patient",
                "profile": "Patient/demo-patient", "profileDisplay": "Bob Patient"
            },
            {
                "id": "m-confidential", "project": "demo", "user": CONFIDENTIAL_CLIENT,
                "profile": format!("ClientApplication/{CONFIDENTIAL_CLIENT}")
            }
        ],
        "clients": [
            {
                "id": SPA_CLIENT, "project": "demo", "name": "Demo single-page app",
                "authMethod": "none", "pkce": "required", "firstParty": true,
                "redirectUris": [callback],
                "allowedScopes": "openid fhirUser profile email offline_access patient/*.rs user/*.rs"
            },
            {
                "id": CONFIDENTIAL_CLIENT, "project": "demo", "name": "Demo confidential client",
                "authMethod": "client_secret_basic", "secret": CONFIDENTIAL_SECRET,
                "redirectUris": [callback],
                "allowedScopes": "openid fhirUser profile email offline_access patient/*.rs user/*.cruds"
            }
        ]
    }))
}

/// A FHIR id: 1–64 characters of `[A-Za-z0-9.-]` (ids end up in references).
fn check_id(id: &str, at: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{at}: id {id:?} must be 1-64 characters of A-Z a-z 0-9 - ."
        ))
    }
}

fn unique(seen: &mut HashSet<String>, id: &str, at: &str) -> Result<(), String> {
    if seen.insert(id.to_owned()) {
        Ok(())
    } else {
        Err(format!("{at}: duplicate id {id:?}"))
    }
}

/// Decodes RFC 4648 base32 (case-insensitive; spaces and `=` padding ignored).
fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let c = c.to_ascii_uppercase();
        let value = match c {
            'A'..='Z' => u32::from(c) - u32::from('A'),
            '2'..='7' => u32::from(c) - u32::from('2') + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Checks the seed and stores it. Every refusal names the entry it is about.
async fn load_seed(
    engine: &Engine,
    directory: &dyn DirectoryAdmin,
    seed: Seed,
) -> Result<Summary, String> {
    let mut summary = Summary::default();

    let mut projects = HashSet::new();
    for (i, p) in seed.projects.into_iter().enumerate() {
        let at = format!("projects[{i}]");
        check_id(&p.id, &at)?;
        unique(&mut projects, &p.id, &at)?;
        let mut project = Project::new(ProjectId::new(p.id.as_str()), &p.name);
        project.features = p.features.into_iter().collect();
        directory
            .put_project(&project)
            .await
            .map_err(|e| format!("{at}: {e}"))?;
    }

    let mut policies = HashSet::new();
    for (i, a) in seed.access_policies.into_iter().enumerate() {
        let at = format!("accessPolicies[{i}]");
        check_id(&a.id, &at)?;
        unique(&mut policies, &a.id, &at)?;
        let mut resources = Vec::with_capacity(a.resources.len());
        for (j, r) in a.resources.into_iter().enumerate() {
            let type_ok = r.resource_type == "*"
                || (r
                    .resource_type
                    .starts_with(|c: char| c.is_ascii_uppercase())
                    && r.resource_type.chars().all(|c| c.is_ascii_alphabetic()));
            if !type_ok {
                return Err(format!(
                    "{at}.resources[{j}]: resourceType {:?} must be * or a FHIR resource type",
                    r.resource_type
                ));
            }
            resources.push(ResourcePolicy {
                resource_type: r.resource_type,
                compartment: r.compartment,
                criteria: r.criteria,
                readonly: r.readonly,
                interactions: r.interactions,
            });
        }
        let policy = AccessPolicy {
            id: AccessPolicyId::new(a.id.as_str()),
            name: a.name,
            compartment: a.compartment,
            resources,
            ip_rules: a.ip_rules,
        };
        directory
            .put_access_policy(&policy)
            .await
            .map_err(|e| format!("{at}: {e}"))?;
    }

    // Users are stored after the clients are known (a client id must not be a user id).
    let mut users: HashMap<String, (Option<String>, usize)> = HashMap::new();
    let mut emails = HashSet::new();
    let mut pending_users = Vec::with_capacity(seed.users.len());
    for (i, u) in seed.users.into_iter().enumerate() {
        let at = format!("users[{i}]");
        check_id(&u.id, &at)?;
        if users.contains_key(&u.id) {
            return Err(format!("{at}: duplicate id {:?}", u.id));
        }
        let email = fhirgate::model::normalize_email(&u.email);
        if !email.contains('@') || email.len() > 320 {
            return Err(format!("{at}: email {:?} is not an email address", u.email));
        }
        if let Some(project) = &u.project
            && !projects.contains(project)
        {
            return Err(format!("{at}: project {project:?} is not in projects"));
        }
        if !emails.insert((email.clone(), u.project.clone())) {
            return Err(format!(
                "{at}: email {email} is already used{}",
                u.project
                    .as_ref()
                    .map(|p| format!(" in project {p}"))
                    .unwrap_or_default()
            ));
        }
        let mut user = User::new(UserId::new(u.id.as_str()), &email);
        user.first_name = u.first_name.unwrap_or_default();
        user.last_name = u.last_name.unwrap_or_default();
        user.email_verified = u.email_verified.unwrap_or(true);
        user.project = u.project.as_deref().map(ProjectId::new);
        user.mfa_required = u.mfa_required;
        if let Some(password) = &u.password {
            user.password_hash = Some(
                engine
                    .hash_new_password(password)
                    .await
                    .map_err(|e| format!("{at}: password refused: {e}"))?,
            );
        }
        if let Some(text) = &u.totp_secret_base32 {
            let bytes = base32_decode(text)
                .ok_or_else(|| format!("{at}: totpSecretBase32 is not base32 (A-Z and 2-7)"))?;
            if bytes.len() < fhirgate::credential::totp::MIN_SECRET_LEN {
                return Err(format!(
                    "{at}: totpSecretBase32 is {} bytes; at least {} (26 base32 characters) are required",
                    bytes.len(),
                    fhirgate::credential::totp::MIN_SECRET_LEN
                ));
            }
            user.totp = TotpState::Enrolled {
                secret: TotpSecret::from_bytes(bytes),
            };
        }
        users.insert(u.id.clone(), (u.project.clone(), summary.users.len()));
        summary.users.push(UserSummary {
            email: email.clone(),
            password: user.password_hash.is_some(),
            totp: user.mfa_enrolled(),
            mfa_required: user.mfa_required,
            profiles: Vec::new(),
        });
        pending_users.push((at, user));
    }

    let mut clients: HashMap<String, String> = HashMap::new();
    for (i, c) in seed.clients.into_iter().enumerate() {
        let at = format!("clients[{i}]");
        check_id(&c.id, &at)?;
        if clients.contains_key(&c.id) {
            return Err(format!("{at}: duplicate id {:?}", c.id));
        }
        if users.contains_key(&c.id) {
            return Err(format!(
                "{at}: id {:?} is also a user id (a client acts as the user with its own id)",
                c.id
            ));
        }
        if !projects.contains(&c.project) {
            return Err(format!("{at}: project {:?} is not in projects", c.project));
        }
        let allowed =
            ScopeSet::parse(&c.allowed_scopes).map_err(|e| format!("{at}: allowedScopes: {e}"))?;
        if let Some(default) = &c.default_scope {
            let default =
                ScopeSet::parse(default).map_err(|e| format!("{at}: defaultScope: {e}"))?;
            if !allowed.covers(&default) {
                return Err(format!("{at}: defaultScope is not within allowedScopes"));
            }
        }
        for uri in &c.redirect_uris {
            match Url::parse(uri) {
                Ok(url) if url.fragment().is_none() => {}
                Ok(_) => return Err(format!("{at}: redirect URI {uri:?} has a fragment")),
                Err(e) => return Err(format!("{at}: redirect URI {uri:?}: {e}")),
            }
        }
        let pkce = c.pkce.unwrap_or_default();
        match c.auth_method {
            ClientAuthMethod::None => {
                if c.secret.is_some() || c.jwks.is_some() || c.jwks_uri.is_some() {
                    return Err(format!(
                        "{at}: a public client (authMethod none) has no secret, jwks or jwksUri"
                    ));
                }
                if pkce == PkcePolicy::Optional {
                    return Err(format!(
                        "{at}: a public client must use PKCE (pkce \"required\")"
                    ));
                }
            }
            ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost => {
                match &c.secret {
                    Some(secret) if secret.chars().count() >= 16 => {}
                    Some(_) => {
                        return Err(format!(
                            "{at}: secret must be at least 16 characters (it is stored as an unsalted SHA-256)"
                        ));
                    }
                    None => {
                        return Err(format!("{at}: authMethod {} needs a secret", c.auth_method));
                    }
                }
            }
            ClientAuthMethod::PrivateKeyJwt => {
                if c.jwks.is_none() && c.jwks_uri.is_none() {
                    return Err(format!("{at}: private_key_jwt needs jwks or jwksUri"));
                }
                if let Some(uri) = &c.jwks_uri {
                    if uri.scheme() != "https" {
                        return Err(format!("{at}: jwksUri must be https"));
                    }
                    if c.jwks.is_none() {
                        tracing::warn!(
                            client = %c.id,
                            "the demo server has no outbound HTTP transport: jwksUri cannot be \
                             fetched, so use inline jwks to try private_key_jwt"
                        );
                    }
                }
            }
        }
        let mut client = ClientApplication::new(
            ClientId::new(c.id.as_str()),
            ProjectId::new(c.project.as_str()),
        );
        client.name = c.name.unwrap_or_default();
        client.allowed_scopes = c.allowed_scopes;
        client.default_scope = c.default_scope.clone();
        client.redirect_uris = c.redirect_uris.clone();
        client.pkce = pkce;
        client.auth_method = c.auth_method;
        client.secret = c.secret.as_deref().map(ClientSecretHash::of);
        client.jwks = c.jwks;
        client.jwks_uri = c.jwks_uri;
        client.identity_provider = c.identity_provider.map(SeedIdentityProvider::into_provider);
        client.first_party = c.first_party;
        directory
            .put_client(&client)
            .await
            .map_err(|e| format!("{at}: {e}"))?;
        clients.insert(c.id.clone(), c.project.clone());
        summary.clients.push(ClientSummary {
            id: c.id,
            auth_method: c.auth_method,
            redirect_uris: c.redirect_uris,
            default_scope: c.default_scope,
        });
    }

    for (at, user) in pending_users {
        match directory.create_user(&user).await {
            Ok(()) => {}
            // Another server sharing the database seeded this user first.
            Err(fhirgate::store::StoreError::Conflict(_)) => {
                tracing::info!(user = %user.id, "user already in the database; kept as it is");
            }
            Err(e) => return Err(format!("{at}: {e}")),
        }
    }

    let mut memberships = HashSet::new();
    for (i, m) in seed.memberships.into_iter().enumerate() {
        let at = format!("memberships[{i}]");
        check_id(&m.id, &at)?;
        unique(&mut memberships, &m.id, &at)?;
        if !projects.contains(&m.project) {
            return Err(format!("{at}: project {:?} is not in projects", m.project));
        }
        match (users.get(&m.user), clients.get(&m.user)) {
            (Some((user_project, index)), _) => {
                if let Some(own) = user_project
                    && *own != m.project
                {
                    return Err(format!(
                        "{at}: user {:?} belongs to project {own:?} only",
                        m.user
                    ));
                }
                if let Some(user) = summary.users.get_mut(*index) {
                    user.profiles.push(m.profile.as_str().to_owned());
                }
            }
            (None, Some(client_project)) => {
                let expected = format!("ClientApplication/{}", m.user);
                if m.profile.as_str() != expected || *client_project != m.project {
                    return Err(format!(
                        "{at}: a client's membership has profile {expected} and the client's project"
                    ));
                }
            }
            (None, None) => {
                return Err(format!(
                    "{at}: user {:?} is neither in users nor a client id",
                    m.user
                ));
            }
        }
        if let Some(policy) = &m.access_policy
            && !policies.contains(policy)
        {
            return Err(format!(
                "{at}: accessPolicy {policy:?} is not in accessPolicies"
            ));
        }
        let mut membership = ProjectMembership::new(
            MembershipId::new(m.id.as_str()),
            ProjectId::new(m.project.as_str()),
            UserId::new(m.user.as_str()),
            m.profile,
        );
        membership.profile_display = m.profile_display;
        membership.active = m.active.unwrap_or(true);
        membership.admin = m.admin;
        membership.access_policy = m.access_policy.as_deref().map(AccessPolicyId::new);
        membership.external_id = m.external_id;
        membership.external_issuer = m.external_issuer;
        directory
            .put_membership(&membership)
            .await
            .map_err(|e| format!("{at}: {e}"))?;
    }

    let mut domains = HashSet::new();
    for (i, d) in seed.domains.into_iter().enumerate() {
        let at = format!("domains[{i}]");
        let domain = d.domain.trim().to_ascii_lowercase();
        if domain.is_empty() || domain.contains('@') || domain.contains('/') {
            return Err(format!("{at}: domain {:?} is not a domain name", d.domain));
        }
        if !domains.insert(domain.clone()) {
            return Err(format!("{at}: duplicate domain {domain:?}"));
        }
        let provider = d.identity_provider.into_provider();
        directory
            .put_domain(&DomainConfiguration {
                domain,
                identity_provider: Some(provider),
            })
            .await
            .map_err(|e| format!("{at}: {e}"))?;
    }

    Ok(summary)
}

// ---------------------------------------------------------------------------------------------
// Routes of the demo (the library serves /auth/*, /oauth2/* and /.well-known/*)

#[derive(Clone)]
struct Demo {
    engine: Engine,
    issuer: Arc<str>,
    /// The client the callback page's curl hint names.
    callback_client: Option<Arc<str>>,
    /// The printed authorize URL, linked from the index page.
    try_url: Option<Arc<str>>,
}

impl FromRef<Demo> for Engine {
    fn from_ref(demo: &Demo) -> Engine {
        demo.engine.clone()
    }
}

fn demo_routes(demo: Demo) -> Router {
    Router::new()
        .route("/", get(index_page))
        .route("/signin", get(sign_in_page))
        .route("/callback", get(callback_page))
        .route("/fhir/R4/Patient/{id}", get(read_patient))
        .layer(axum::middleware::from_fn(fhirgate::http::no_store))
        .layer(axum::middleware::from_fn(fhirgate::http::trace))
        .layer(axum::middleware::from_fn(nosniff))
        .with_state(demo)
}

/// `X-Content-Type-Options: nosniff` on the demo's HTML pages.
async fn nosniff(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Escapes text for HTML content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .take(64)
        .collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// A fresh CSP nonce (128 bits from the engine's random source).
fn csp_nonce(engine: &Engine) -> Result<String, StatusCode> {
    let mut bytes = [0u8; 16];
    engine.random().fill(&mut bytes).map_err(|error| {
        tracing::error!(%error, "no randomness for a CSP nonce");
        StatusCode::INTERNAL_SERVER_ERROR
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// An HTML page with a nonce-based Content-Security-Policy: only the page's own inline
/// script and style run, it talks only to its own origin and it cannot be framed.
fn html_page(nonce: &str, html: String) -> Response {
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         connect-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; \
         frame-ancestors 'none'"
    );
    let Ok(csp) = HeaderValue::from_str(&csp) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The query strings carry states, challenges and codes: never in a Referer.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

const STYLE: &str = "
body { font: 16px/1.5 system-ui, sans-serif; margin: 0; background: #f4f6f8; color: #1b2733; }
main { max-width: 30rem; margin: 3rem auto; padding: 2rem; background: #fff; border-radius: 8px;
       box-shadow: 0 1px 4px rgba(0,0,0,.15); }
h1 { margin-top: 0; font-size: 1.5rem; }
label { display: block; margin: .75rem 0 .25rem; }
input[type=email], input[type=password], input[type=text] { width: 100%; box-sizing: border-box;
       padding: .5rem; font: inherit; border: 1px solid #9aa5b1; border-radius: 4px; }
button { margin-top: 1rem; padding: .5rem 1.25rem; font: inherit; border: 0; border-radius: 4px;
       background: #2156a5; color: #fff; cursor: pointer; }
button:disabled { opacity: .6; }
code, pre { background: #eef1f4; padding: .1rem .3rem; border-radius: 3px; word-break: break-all;
       white-space: pre-wrap; }
pre { padding: .75rem; }
.muted { color: #52606d; font-size: .9rem; }
.error { color: #b3261e; }
fieldset { border: 0; padding: 0; }
fieldset label { display: flex; gap: .5rem; align-items: baseline; }
dt { font-weight: 600; }
ul.scopes { padding-left: 1.25rem; font-size: .95rem; }
ul.scopes code { font-size: .8rem; }
#enroll-qr:not([hidden]) { display: block; margin: .5rem auto; image-rendering: pixelated; }
dd { margin: 0 0 .5rem; }
";

const SIGN_IN_SCRIPT: &str = r#"
'use strict';
(() => {
  const q = new URLSearchParams(window.location.search);
  const issuer = document.body.dataset.issuer;
  const READ_ONLY = 'urn:fhirgate:membership-read-only';
  const $ = (id) => document.getElementById(id);
  const steps = ['password-form', 'totp-form', 'profile-form', 'done'];
  let login = null;
  // The login request of the last sign-in attempt (without the email and password): sent on
  // to the identity provider start route when the account signs in elsewhere.
  let loginRequest = null;
  let totpPath = '/auth/mfa/verify';
  // Without a client the page is its own app (as Medplum's app is): it makes the PKCE pair and
  // redeems the code itself.
  let ownVerifier = null;

  const show = (step) => { for (const id of steps) $(id).hidden = id !== step; };
  // The API keeps Medplum's texts; the page words them for people.
  const WORDING = {
    'Invalid MFA token': 'That authentication code is not valid. Check the time on your device and try the newest code.',
  };
  const fail = (text) => {
    $('error').textContent = WORDING[text] || text;
    $('error').hidden = false;
  };
  const httpUrl = (text) => {
    try {
      const url = new URL(text);
      return url.protocol === 'https:' || url.protocol === 'http:' ? url : null;
    } catch {
      return null;
    }
  };
  const buttons = (disabled) => {
    for (const b of document.querySelectorAll('button')) b.disabled = disabled;
  };
  const base64url = (bytes) =>
    btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

  async function pkcePair() {
    const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
    return { verifier, challenge: base64url(new Uint8Array(digest)) };
  }

  async function post(path, body) {
    $('error').hidden = true;
    buttons(true);
    try {
      const res = await fetch(path, body === undefined ? { credentials: 'same-origin' } : {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      const data = await res.json().catch(() => ({}));
      if (!res.ok) {
        const issue = Array.isArray(data.issue) ? data.issue[0] : null;
        fail((issue && issue.details && issue.details.text) || `The server answered ${res.status}.`);
        return;
      }
      next(data);
    } catch {
      fail('The server cannot be reached.');
    } finally {
      buttons(false);
    }
  }

  function next(data) {
    if (typeof data.login === 'string') login = data.login;
    $('password').value = '';
    if (typeof data.code === 'string') return finish(data.code);
    if (data.mfaRequired) {
      totpPath = '/auth/mfa/verify';
      $('enroll').hidden = true;
      show('totp-form');
      $('token').focus();
      return;
    }
    if (data.mfaEnrollRequired) {
      totpPath = '/auth/mfa/login-enroll';
      enrolment(data);
      $('enroll').hidden = false;
      show('totp-form');
      $('token').focus();
      return;
    }
    if (Array.isArray(data.memberships)) return choose(data.memberships);
    const external = httpUrl(data.authorizeUrl || '');
    if (external && external.origin === window.location.origin) {
      // Our start route: it creates the login from this request, binds it to this browser
      // and sends us to the provider, which sends us back here with a one-time `login`.
      // Keep our PKCE verifier for then.
      if (ownVerifier) sessionStorage.setItem('fhirgate-verifier', ownVerifier);
      external.searchParams.set('state', JSON.stringify(loginRequest || {}));
      window.location.assign(external.href);
      return;
    }
    fail('Unexpected answer from the server.');
  }

  // The enrolment step: the QR code to scan and, for typing in, the key in groups of four.
  function enrolment(data) {
    const qr = typeof data.enrollQrCode === 'string' && data.enrollQrCode.startsWith('data:image/png;base64,')
      ? data.enrollQrCode : '';
    $('enroll-qr').hidden = !qr;
    if (qr) $('enroll-qr').src = qr;
    let key = '';
    try {
      key = new URL(data.enrollUri || '').searchParams.get('secret') || '';
    } catch {
      key = '';
    }
    $('enroll-key').textContent = (key.match(/.{1,4}/g) || []).join(' ');
  }

  function choose(memberships) {
    const list = $('profiles');
    list.replaceChildren();
    memberships.forEach((m, i) => {
      const label = document.createElement('label');
      const input = document.createElement('input');
      input.type = 'radio';
      input.name = 'profile';
      input.value = String(m.id);
      input.checked = i === 0;
      const reference = (m.profile && m.profile.reference) || String(m.id);
      const name = (m.profile && m.profile.display) || reference;
      const project = (m.project && (m.project.display || m.project.reference)) || '';
      const readOnly = Array.isArray(m.extension) && m.extension.some(
        (e) => e && e.url === READ_ONLY && e.valueBoolean === true);
      const text = document.createElement('span');
      const strong = document.createElement('strong');
      strong.textContent = name;
      text.append(strong);
      if (project) text.append(document.createTextNode(` in ${project}`));
      if (readOnly) text.append(document.createTextNode(' \u00b7 read-only'));
      if (name !== reference) {
        const small = document.createElement('span');
        small.className = 'muted';
        small.textContent = ` (${reference})`;
        text.append(small);
      }
      label.append(input, text);
      list.append(label);
    });
    show('profile-form');
  }

  function finish(code) {
    // Only a login that named a client redirects: the server checked that this redirect URI
    // is registered for it before issuing the code.
    const target = q.get('client_id') ? httpUrl(q.get('redirect_uri') || '') : null;
    if (target) {
      target.searchParams.append('code', code);
      const state = q.get('state');
      if (state !== null) target.searchParams.append('state', state);
      target.searchParams.append('iss', issuer);
      window.location.assign(target.href);
      return;
    }
    if (ownVerifier) return redeem(code);
    $('done-label').textContent = 'Signed in. The authorization code (single use, valid 60 seconds):';
    $('code').textContent = code;
    show('done');
  }

  async function redeem(code) {
    const form = new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      client_id: '',
      code_verifier: ownVerifier,
    });
    try {
      const res = await fetch('/oauth2/token', { method: 'POST', credentials: 'same-origin', body: form });
      const data = await res.json().catch(() => ({}));
      if (!res.ok || typeof data.access_token !== 'string') {
        fail(data.error_description || `The token endpoint answered ${res.status}.`);
        return;
      }
      $('done-label').textContent =
        `Signed in without a client. Access token (${data.scope || 'no scope'}; ` +
        `${data.expires_in} s), for Authorization: Bearer …`;
      $('code').textContent = data.access_token;
      show('done');
    } catch {
      fail('The server cannot be reached.');
    }
  }

  $('password-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = {
      email: $('email').value,
      password: $('password').value,
      clientId: q.get('client_id') || '',
    };
    // With a client, the authorization request's own parameters (checked again by the
    // server); without one, only the scope, and the page's own PKCE pair.
    const client = Boolean(q.get('client_id'));
    const fields = client
      ? {
          redirectUri: 'redirect_uri',
          scope: 'scope',
          nonce: 'nonce',
          codeChallenge: 'code_challenge',
          codeChallengeMethod: 'code_challenge_method',
          launch: 'launch',
          state: 'state',
        }
      : { scope: 'scope' };
    for (const [field, name] of Object.entries(fields)) {
      const value = q.get(name);
      if (value) body[field] = value;
    }
    if (!client) {
      if (!window.crypto || !crypto.subtle) {
        fail('This browser cannot make a PKCE challenge here: open the page through /oauth2/authorize.');
        return;
      }
      const pair = await pkcePair();
      ownVerifier = pair.verifier;
      body.codeChallenge = pair.challenge;
      body.codeChallengeMethod = 'S256';
    }
    const { email, password, ...request } = body;
    loginRequest = request;
    post('/auth/login', body);
  });

  $('totp-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('token').value.trim();
    $('token').value = '';
    post(totpPath, { login, token });
  });

  $('profile-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const chosen = document.querySelector('input[name="profile"]:checked');
    if (chosen) post('/auth/profile', { login, profile: chosen.value });
  });

  // Back from an identity provider with a one-time reference: this browser (it holds the
  // binding cookie) picks the login up, once, and continues where it stands.
  const returning = q.get('login');
  if (returning) {
    login = returning;
    ownVerifier = sessionStorage.getItem('fhirgate-verifier');
    sessionStorage.removeItem('fhirgate-verifier');
    history.replaceState(null, '', window.location.pathname);
    post(`/auth/login/${encodeURIComponent(returning)}`);
  }
})();
"#;

/// `GET /signin`: where `/oauth2/authorize` sends a browser that must sign in, with the
/// authorization request in the query string.
async fn sign_in_page(State(demo): State<Demo>, RawQuery(query): RawQuery) -> Response {
    let pairs = query_pairs(query.as_deref());
    let nonce = match csp_nonce(&demo.engine) {
        Ok(nonce) => nonce,
        Err(status) => return status.into_response(),
    };
    let request = match param(&pairs, "client_id") {
        Some(client_id) => {
            let name = match demo
                .engine
                .directory()
                .client(&ClientId::new(client_id))
                .await
            {
                Ok(Some(client)) if !client.name.is_empty() => client.name,
                _ => client_id.to_owned(),
            };
            let scope = param(&pairs, "scope").unwrap_or("openid");
            format!(
                "<p>to continue to <strong>{}</strong></p>\n\
                 <p class=\"muted\">Requested access: <code>{}</code></p>\n{}",
                escape(&name),
                escape(scope),
                scope_in_words(scope)
            )
        }
        None => "<p class=\"muted\">No client in the request: this page signs you in as its \
                 own app and shows the access token.</p>"
            .to_owned(),
    };
    let issuer = escape(&demo.issuer);
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · fhirgate demo</title>
<style nonce="{nonce}">{STYLE}</style>
</head>
<body data-issuer="{issuer}">
<main>
<h1>Sign in</h1>
{request}
<p id="error" class="error" role="alert" hidden></p>
<form id="password-form">
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
<form id="totp-form" hidden>
<div id="enroll" hidden>
<p>Your account needs a second factor. Scan this code with an authenticator app, then enter
the six-digit authentication code it shows.</p>
<img id="enroll-qr" alt="QR code of your authenticator key" width="196" height="196" hidden>
<p class="muted">Cannot scan? Type this key into the app: <code id="enroll-key"></code></p>
</div>
<label for="token">Authentication code</label>
<input id="token" name="token" type="text" inputmode="numeric" autocomplete="one-time-code"
 pattern="[0-9]{{6}}" maxlength="6" required>
<button type="submit">Verify</button>
</form>
<form id="profile-form" hidden>
<fieldset>
<legend>Choose a profile</legend>
<div id="profiles"></div>
</fieldset>
<button type="submit">Continue</button>
</form>
<section id="done" hidden>
<p id="done-label"></p>
<pre id="code"></pre>
</section>
</main>
<script nonce="{nonce}">{SIGN_IN_SCRIPT}</script>
</body>
</html>
"#
    );
    html_page(&nonce, html)
}

/// The requested scopes in words, one per line, each next to its raw form. A scope string
/// that does not parse is shown raw only (the authorization endpoint refuses it anyway).
fn scope_in_words(scope: &str) -> String {
    let Ok(scopes) = ScopeSet::parse(scope) else {
        return String::new();
    };
    let mut list = String::from("<ul class=\"scopes\">\n");
    for (raw, words) in scopes.describe() {
        list.push_str(&format!(
            "<li>{} <code>{}</code></li>\n",
            escape(&words),
            escape(&raw)
        ));
    }
    list.push_str("</ul>");
    list
}

/// `GET /callback`: a stand-in for a client's redirect URI that shows what it received.
async fn callback_page(State(demo): State<Demo>, RawQuery(query): RawQuery) -> Response {
    let pairs = query_pairs(query.as_deref());
    let nonce = match csp_nonce(&demo.engine) {
        Ok(nonce) => nonce,
        Err(status) => return status.into_response(),
    };
    let mut rows = String::new();
    for name in ["code", "state", "iss", "error", "error_description"] {
        if let Some(value) = param(&pairs, name) {
            rows.push_str(&format!(
                "<dt>{name}</dt><dd><code>{}</code></dd>\n",
                escape(value)
            ));
        }
    }
    if rows.is_empty() {
        rows.push_str(
            "<dt>nothing</dt><dd>This page shows the code or error a client receives.</dd>\n",
        );
    }
    let code = param(&pairs, "code").filter(|code| {
        code.len() <= 256
            && code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    let hint = match code {
        Some(code) => {
            let client = demo.callback_client.as_deref().unwrap_or("CLIENT_ID");
            let command = format!(
                "curl -s {issuer}/oauth2/token \\\n  -d grant_type=authorization_code \\\n  \
                 -d code={code} \\\n  -d client_id={client} \\\n  \
                 -d redirect_uri={issuer}/callback \\\n  -d code_verifier={RFC7636_VERIFIER}",
                issuer = demo.issuer
            );
            format!(
                "<p>Redeem the code within 60 seconds; it works once. With the authorize URL \
                 the server printed (PKCE pair of RFC 7636, Appendix B):</p>\n<pre>{}</pre>",
                escape(&command)
            )
        }
        None => String::new(),
    };
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Callback · fhirgate demo</title>
<style nonce="{nonce}">{STYLE}</style>
</head>
<body>
<main>
<h1>Callback</h1>
<dl>
{rows}</dl>
{hint}
</main>
</body>
</html>
"#
    );
    html_page(&nonce, html)
}

/// `GET /`: where to start.
async fn index_page(State(demo): State<Demo>) -> Response {
    let nonce = match csp_nonce(&demo.engine) {
        Ok(nonce) => nonce,
        Err(status) => return status.into_response(),
    };
    let issuer = escape(&demo.issuer);
    let try_link = demo
        .try_url
        .as_deref()
        .map(|url| {
            format!(
                "<li><a href=\"{}\">Sign in through the authorization endpoint</a> \
                 (PKCE code_verifier <code>{RFC7636_VERIFIER}</code>)</li>",
                escape(url)
            )
        })
        .unwrap_or_default();
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>fhirgate demo</title>
<style nonce="{nonce}">{STYLE}</style>
</head>
<body>
<main>
<h1>fhirgate demo server</h1>
<ul>
{try_link}
<li><a href="{issuer}/signin">Sign-in page</a> (without a client: shows an access token)</li>
<li><a href="{issuer}/.well-known/openid-configuration">OpenID configuration</a></li>
<li><a href="{issuer}/.well-known/smart-configuration">SMART configuration</a></li>
<li><a href="{issuer}/.well-known/jwks.json">JWKS</a></li>
</ul>
<p class="muted">README.md, "Demo server", has a curl walk-through.</p>
</main>
</body>
</html>
"#
    );
    html_page(&nonce, html)
}

/// Whether the principal's SMART scopes allow reading `Patient/{id}`: a `patient/` scope only
/// for the patient in context, a `user/` or `system/` scope for any patient, each on `Patient`
/// or `*` with the `r` permission. A scope restricted by a query (`?name=…`) cannot be
/// checked without the resource, so it does not count.
fn may_read_patient(principal: &Principal, id: &str) -> bool {
    match principal.scope_allows("Patient", Interaction::Read) {
        ScopeDecision::Allowed => true,
        ScopeDecision::PatientCompartment(patient) => {
            patient.resource_type() == "Patient" && patient.id() == id
        }
        ScopeDecision::Denied => false,
    }
}

/// `GET /fhir/R4/Patient/{id}`: a FHIR stub that echoes who is asking.
async fn read_patient(Authenticated(principal): Authenticated, Path(id): Path<String>) -> Response {
    if !may_read_patient(&principal, &id) {
        let mut response =
            OperationOutcome::with_status(StatusCode::FORBIDDEN, "Insufficient scope")
                .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer realm=\"fhirgate\", error=\"insufficient_scope\", \
                 scope=\"patient/Patient.rs user/Patient.rs\"",
            ),
        );
        return response;
    }
    let subject = match &principal.subject {
        Subject::User(user) => format!("User/{user}"),
        Subject::Client(client) => format!("ClientApplication/{client}"),
    };
    let body = json!({
        "resourceType": "Patient",
        "id": id,
        "text": {
            "status": "generated",
            "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">fhirgate demo stub</div>"
        },
        "principal": {
            "subject": subject,
            "client": principal.client.as_ref().map(ClientId::as_str),
            "project": principal.project.as_str(),
            "membership": principal.membership.as_str(),
            "profile": principal.profile.as_str(),
            "scope": principal.scope.to_string(),
            "patient": principal.patient.as_ref().map(Reference::as_str),
            "login": principal.login.as_str(),
            "expiresAt": principal.expires_at.unix_timestamp(),
        }
    });
    (
        [(header::CONTENT_TYPE, "application/fhir+json")],
        body.to_string(),
    )
        .into_response()
}
