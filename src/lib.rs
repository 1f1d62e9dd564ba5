//! # fhirgate
//!
//! Authentication and identity for healthcare servers, as a library: Medplum's login model
//! (users, projects, memberships, client applications), SMART-on-FHIR scopes, and OAuth 2.0 /
//! OpenID Connect done the way the standards say.
//!
//! A login moves forward through four stages, each a type:
//!
//! | stage | decides |
//! |---|---|
//! | [`Domain`](login::Domain) | how the person authenticates: password, or an external identity provider |
//! | [`Credentials`](login::Credentials) | that they are who they say: argon2id password, then TOTP |
//! | [`Profile`](login::Profile) | which project membership they act as |
//! | [`Consent`](login::Consent) | which SMART scopes are granted, then the authorization code |
//!
//! Then the [`oauth`] layer turns codes, refresh tokens and client credentials into tokens
//! ([`Engine::token`]), answers the authorization endpoint ([`Engine::authorize`]),
//! introspection, revocation, UserInfo and [discovery](Engine::discovery), and a
//! [`token::Verifier`] (from [`Engine::verifier`], or built alone by a resource server without
//! the password machinery) turns a bearer token into a [`Principal`](token::Principal).
//! Signing keys rotate through [`Engine::keys`]; TOTP administration is [`Engine::mfa`]. Every
//! JWS the crate reads — its own tokens, client assertions, provider ID tokens — goes through
//! one [`jose`] pipeline with one JWKS cache.
//!
//! A step that does not belong to a stage does not exist on it, so a login whose user has a
//! second factor cannot reach a profile, a scope or a code before the factor passes. Between
//! requests a login is a plain [`LoginRecord`](model::LoginRecord) resumed through one checked
//! function, [`Engine::resume`]. Storage, time, randomness and auditing are handed in through
//! traits ([`store`], [`clock`], [`random`], [`audit`]); every single-use value is consumed by
//! one atomic store operation, so it stays single-use with many server instances.
//!
//! The design notes live in [`manual`]: the [threat model](manual::threat_model), the
//! [storage contract](manual::storage_contract) a host's store must keep, and the
//! [deviations](manual::deviations) from Medplum with the test behind each.
//!
//! ## A complete login
//!
//! ```
//! use std::sync::Arc;
//! use fhirgate::{Engine, LoginRequest, MemoryStore};
//! use fhirgate::login::{Passed, Method, ProfileChoice};
//! use fhirgate::model::*;
//! use fhirgate::oauth::{Form, TokenRequest};
//! use fhirgate::store::{Directory, DirectoryAdmin};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new();
//! let engine = Engine::builder().store(store.clone()).build()?;
//!
//! // Seed a project, a client, a user with a password, and one membership.
//! let project = Project::new(ProjectId::new("p1"), "Demo");
//! store.put_project(&project).await?;
//! let mut client = ClientApplication::new(ClientId::new("app"), project.id.clone());
//! client.allowed_scopes = "openid fhirUser offline_access user/*.rs".into();
//! client.redirect_uris = vec!["https://app.example.org/callback".into()];
//! store.put_client(&client).await?;
//! let mut user = User::new(UserId::new("u1"), "alice@example.org");
//! user.password_hash = Some(engine.hash_new_password("correct horse battery").await?);
//! store.create_user(&user).await?;
//! let membership = ProjectMembership::new(
//!     MembershipId::new("m1"), project.id.clone(), user.id.clone(),
//!     Reference::parse("Practitioner/123")?,
//! );
//! store.put_membership(&membership).await?;
//!
//! // Domain: the request is checked, then the email decides the method.
//! let login = engine.start(LoginRequest {
//!     client_id: Some("app".into()),
//!     redirect_uri: Some("https://app.example.org/callback".into()),
//!     scope: Some("openid fhirUser user/Patient.rs user/Observation.cruds".into()),
//!     code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
//!     code_challenge_method: Some("S256".into()),
//!     ..LoginRequest::default()
//! }).await?;
//! let Method::Password(login) = login.method("Alice@Example.org").await? else {
//!     unreachable!("no identity provider is configured");
//! };
//!
//! // Credentials: argon2id. (A user with TOTP would get Passed::SecondFactor.)
//! let Passed::Profile(login) = login.password("correct horse battery").await? else {
//!     unreachable!("this user has no second factor");
//! };
//! let handle = login.handle().expose().to_owned(); // Medplum's `login`, for the next request
//!
//! // Profile, in a later request: resumed by handle, the only membership is chosen.
//! let login = engine.resume::<fhirgate::login::Profile>(&handle).await?;
//! let ProfileChoice::Chosen(login) = login.choose_if_single().await? else {
//!     unreachable!("one membership");
//! };
//!
//! // Consent: requested ∩ client-allowed ∩ access policy, then a single-use code.
//! let (login, code) = login.grant(None).await?;
//! assert_eq!(login.granted_scope(), "openid fhirUser user/Observation.rs user/Patient.rs");
//!
//! // Token endpoint: the public client redeems the code once, proving PKCE.
//! let form = Form::from_pairs(&[
//!     ("grant_type", "authorization_code"),
//!     ("code", code.expose()),
//!     ("client_id", "app"),
//!     ("redirect_uri", "https://app.example.org/callback"),
//!     ("code_verifier", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
//! ]);
//! let response = engine.token(TokenRequest::from_form(form.clone())).await;
//! assert_eq!(response.status, 200);
//! assert_eq!(response.header("Cache-Control"), Some("no-store"));
//! let access_token = response.body["access_token"].as_str().unwrap_or_default();
//!
//! // A resource server turns the bearer token into a principal.
//! let principal = engine.verifier().verify(access_token).await?;
//! assert_eq!(principal.profile.as_str(), "Practitioner/123");
//!
//! // A second redemption is refused — and revokes everything issued from the code.
//! let replay = engine.token(TokenRequest::from_form(form)).await;
//! assert_eq!(replay.body["error"], "invalid_grant");
//! assert!(engine.verifier().verify(access_token).await.is_err());
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod account;
pub mod audit;
pub mod clock;
pub mod config;
pub mod credential;
pub mod crypto;
pub mod engine;
pub mod error;
mod escape;
#[cfg(feature = "axum")]
pub mod http;
pub mod idp;
pub mod jose;
pub mod login;
pub mod mail;
pub mod manual;
pub mod model;
pub mod oauth;
pub mod pkce;
pub mod random;
pub mod scope;
pub mod secret;
#[cfg(feature = "seed")]
pub mod seed;
pub mod store;
pub mod token;
pub mod transport;

pub use config::Config;
pub use engine::{BuildError, Engine, EngineBuilder};
pub use error::{CredentialError, Fault, LoginError, PolicyError, RequestError, ServerError};
pub use login::{AuthorizationCode, Login, LoginHandle, LoginRequest};
pub use store::MemoryStore;
#[cfg(feature = "postgres")]
pub use store::PgStore;
