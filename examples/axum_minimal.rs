//! A host application: fhirgate's routes mounted beside the host's own, and one route of the
//! host guarded by a bearer token and its SMART scopes.
//!
//! `cargo run --features axum --example axum_minimal`, then sign in through `/auth/*` (README,
//! "Walk-through with curl") and call `GET /notes` with the access token.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use fhirgate::http::{Authenticated, router};
use fhirgate::model::Interaction;
use fhirgate::token::ScopeDecision;
use fhirgate::{Engine, MemoryStore};

/// The host's own state: here only the engine, which the guard finds through `FromRef`.
#[derive(Clone)]
struct App {
    engine: Engine,
}

impl axum::extract::FromRef<App> for Engine {
    fn from_ref(app: &App) -> Engine {
        app.engine.clone()
    }
}

/// `GET /notes`: only with a token whose scopes may read `Observation`; answers who asked.
async fn notes(
    State(_app): State<App>,
    Authenticated(principal): Authenticated,
) -> Result<String, StatusCode> {
    match principal.scope_allows("Observation", Interaction::Read) {
        ScopeDecision::Allowed => Ok(format!("notes for {}", principal.subject)),
        ScopeDecision::PatientCompartment(patient) => Ok(format!("notes of {}", patient.as_str())),
        _ => Err(StatusCode::FORBIDDEN),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = fhirgate::Config::default();
    config.oauth.issuer = "http://127.0.0.1:8104".into();
    let engine = Engine::builder()
        .store(MemoryStore::new())
        .config(config)
        .build()?;

    let host = Router::new().route("/notes", get(notes)).with_state(App {
        engine: engine.clone(),
    });
    // `/auth/*`, `/oauth2/*` and `/.well-known/*` beside the host's routes.
    let app = router(engine).merge(host);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:8104").await?;
    println!("listening on http://127.0.0.1:8104");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
