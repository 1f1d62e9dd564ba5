//! The whole login in memory, for a seeded user with TOTP: start → method → password →
//! second factor (computed as an authenticator app would) → profile → scope → code.
//!
//! Run: `cargo run --example login_flow`

use std::sync::Arc;

use fhirgate::audit::MemoryAudit;
use fhirgate::credential::totp;
use fhirgate::login::{Method, Passed, ProfileChoice, SecondFactor};
use fhirgate::model::*;
use fhirgate::store::{CodeRedemption, Directory, DirectoryAdmin, redeem_code};
use fhirgate::{Engine, LoginRequest, MemoryStore, pkce};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    let audit = Arc::new(MemoryAudit::new());
    let engine = Engine::builder()
        .store(store.clone())
        .audit(audit.clone())
        .build()?;

    // --- seed: a project, a SMART app, a clinician with a password and TOTP, two memberships
    let project = Project::new(ProjectId::new("clinic"), "Riverside Clinic");
    store.put_project(&project).await?;
    let research = Project::new(ProjectId::new("research"), "Research");
    store.put_project(&research).await?;
    let mut app = ClientApplication::new(ClientId::new("charts"), project.id.clone());
    app.name = "Charts".into();
    app.allowed_scopes = "openid fhirUser offline_access user/*.rs user/Observation.cruds".into();
    app.redirect_uris = vec!["https://charts.example.org/callback".into()];
    store.put_client(&app).await?;

    let totp_secret = TotpSecret::from_bytes(b"fhirgate-demo-secret".to_vec());
    let mut user = User::new(UserId::new("u-jane"), "jane.doe@riverside.example");
    user.first_name = "Jane".into();
    user.last_name = "Doe".into();
    user.password_hash = Some(
        engine
            .hash_new_password("correct horse battery staple")
            .await?,
    );
    user.totp = TotpState::Enrolled {
        secret: totp_secret.clone(),
    };
    store.create_user(&user).await?;
    for (id, project, profile) in [
        ("m-clinic", &project.id, "Practitioner/jane"),
        ("m-research", &research.id, "Practitioner/jane-research"),
    ] {
        store
            .put_membership(&ProjectMembership::new(
                MembershipId::new(id),
                project.clone(),
                user.id.clone(),
                Reference::parse(profile)?,
            ))
            .await?;
    }
    println!("seeded: jane.doe@riverside.example / correct horse battery staple (TOTP enrolled)");

    // --- Domain: the client's request is checked; the email decides the method
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let login = engine
        .start(LoginRequest {
            client_id: Some("charts".into()),
            redirect_uri: Some("https://charts.example.org/callback".into()),
            scope: Some("openid fhirUser user/Patient.rs user/Observation.cruds".into()),
            nonce: Some("n-0S6_WzA2Mj".into()),
            code_challenge: Some(pkce::s256_challenge(verifier)),
            code_challenge_method: Some("S256".into()),
            remote_address: Some("192.0.2.10".parse()?),
            ..LoginRequest::default()
        })
        .await?;
    println!(
        "1. domain      client=charts, PKCE S256, scope requested: {}",
        login.params().scope
    );
    let login = match login.method("Jane.Doe@Riverside.example").await? {
        Method::Password(login) => login,
        Method::External { domain, .. } => {
            return Err(format!("unexpected provider for {domain:?}").into());
        }
    };
    println!("2. method      password (no identity provider for riverside.example)");

    // --- Credentials: argon2id, then the second factor
    let login = match login.password("correct horse battery staple").await? {
        Passed::SecondFactor(login) => login,
        other => return Err(format!("expected a second factor, got {other:?}").into()),
    };
    let handle = login.handle().expose().to_owned();
    println!(
        "3. password    ok → waiting for TOTP (login handle {}…)",
        &handle[..8]
    );

    // A later request (/auth/mfa/verify) resumes the login by its handle.
    let login = engine.resume::<SecondFactor>(&handle).await?;
    let now = engine.now().unix_timestamp() as u64;
    let code = totp::code_at(&totp_secret, now)?;
    let login = login.totp(&code).await?;
    println!("4. totp        {code} accepted (a second use of it would be refused)");

    // --- Profile: the app is bound to the clinic project, so one membership is eligible
    let login = match login.choose_if_single().await? {
        ProfileChoice::Chosen(login) => login,
        ProfileChoice::Choose { memberships, .. } => {
            return Err(format!("{} memberships to choose from", memberships.len()).into());
        }
    };
    println!(
        "5. profile     {} in project {}",
        login
            .record()
            .profile
            .as_ref()
            .map(|p| p.as_str())
            .unwrap_or("?"),
        login
            .record()
            .project
            .as_ref()
            .map(|p| p.as_str())
            .unwrap_or("?")
    );

    // --- Consent: requested ∩ client-allowed ∩ access policy, then the code
    let (login, code) = login.grant(None).await?;
    println!("6. scope       granted: {}", login.granted_scope());
    println!(
        "7. code        {} (valid {} s, single use)",
        code.expose(),
        (code.expires_at() - engine.now()).whole_seconds()
    );

    // What the token endpoint will do: consume it once, check PKCE.
    match redeem_code(&store, &code.hash(), engine.now()).await? {
        CodeRedemption::Redeemed(record) => {
            let challenge = record
                .params
                .code_challenge
                .as_ref()
                .ok_or("no challenge")?;
            println!(
                "8. redeemed    once; PKCE verifier matches: {}",
                pkce::verify(challenge, verifier)
            );
        }
        other => return Err(format!("unexpected redemption: {other:?}").into()),
    }
    let replay = redeem_code(&store, &code.hash(), engine.now()).await?;
    println!(
        "   replay      refused and reported as a replay: {}",
        matches!(replay, CodeRedemption::Replayed(_))
    );
    println!("audit trail:");
    for event in audit.events() {
        println!("   {}", serde_json::to_string(&event.kind)?);
    }
    Ok(())
}
