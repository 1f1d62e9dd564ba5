//! Shared fixture: an engine on a manual clock, an in-memory store, an audit log, and a few
//! seeded accounts.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[cfg(feature = "axum")]
pub mod fake_idp;
#[cfg(feature = "postgres")]
pub mod pg;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use fhirgate::audit::MemoryAudit;
use fhirgate::clock::ManualClock;
use fhirgate::credential::password::{
    Argon2Config, Argon2Hasher, HashError, Password, PasswordHasher, Verification,
};
use fhirgate::credential::totp;
use fhirgate::login::{Method, Passed};
use fhirgate::model::*;
use fhirgate::random::OsRandom;
use fhirgate::store::DirectoryAdmin;
use fhirgate::{Config, Engine, Login, LoginRequest, MemoryStore};

pub const PASSWORD: &str = "correct horse battery staple";
pub const REDIRECT: &str = "https://app.example.org/callback";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// 2026-11-28T10:00:00Z
pub const START: i64 = 1_795_860_000;
pub const TOTP_SECRET: &[u8] = b"12345678901234567890";

/// Counts verifications and hashes, delegating to argon2id.
pub struct CountingHasher {
    pub inner: Argon2Hasher,
    pub verifies: AtomicUsize,
    pub hashes: AtomicUsize,
}

#[async_trait]
impl PasswordHasher for CountingHasher {
    async fn verify(
        &self,
        password: &Password,
        stored: Option<&PasswordHash>,
    ) -> Result<Verification, HashError> {
        self.verifies.fetch_add(1, Ordering::SeqCst);
        self.inner.verify(password, stored).await
    }
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        self.hashes.fetch_add(1, Ordering::SeqCst);
        self.inner.hash(password).await
    }
}

pub struct Fixture {
    pub engine: Engine,
    pub store: MemoryStore,
    pub clock: Arc<ManualClock>,
    pub audit: Arc<MemoryAudit>,
    pub hasher: Arc<CountingHasher>,
    /// Every mail the engine sent.
    pub outbox: fhirgate::mail::Outbox,
}

/// Cheap argon2 parameters so the suite runs fast; the production defaults are exercised by
/// the credential unit tests and the bench.
pub fn test_argon2() -> Argon2Config {
    {
        let mut config = Argon2Config::default();
        config.m_kib = 256;
        config.t = 1;
        config.p = 1;
        config
    }
}

pub const ISSUER: &str = "https://auth.example.org";
pub const AUDIENCE: &str = "https://auth.example.org/fhir/R4";
/// Secret of the `confidential` (client_secret_basic) and `m2m` clients.
pub const CLIENT_SECRET: &str = "s3cr3t-for-tests-0123456789abcdef";

pub fn config() -> Config {
    let mut config = {
        let mut config = Config::default();
        config.argon2 = test_argon2();
        config.external_callback_url =
            Some("https://auth.example.org/auth/external".parse().unwrap());
        config
    };
    config.oauth.issuer = ISSUER.to_owned();
    config
}

impl Fixture {
    pub async fn new() -> Self {
        Self::with_config(config()).await
    }

    pub async fn with_config(config: Config) -> Self {
        Self::with_transport(config, None).await
    }

    /// A fixture whose engine reaches the network through `transport`.
    pub async fn with_transport(
        config: Config,
        transport: Option<Arc<dyn fhirgate::transport::Transport>>,
    ) -> Self {
        let store = MemoryStore::new();
        let clock = Arc::new(ManualClock::at_unix(START));
        let audit = Arc::new(MemoryAudit::new());
        let hasher = Arc::new(CountingHasher {
            inner: Argon2Hasher::new(config.argon2.clone(), Arc::new(OsRandom)).unwrap(),
            verifies: AtomicUsize::new(0),
            hashes: AtomicUsize::new(0),
        });
        let outbox = fhirgate::mail::Outbox::new();
        let engine = Engine::builder()
            .store(store.clone())
            .config(config)
            .clock(clock.clone())
            .audit(audit.clone())
            .mailer(Arc::new(outbox.clone()))
            .password_hasher(hasher.clone());
        let engine = match transport {
            Some(transport) => engine.transport(transport),
            None => engine,
        }
        .build()
        .unwrap();
        let fixture = Self {
            engine,
            store,
            clock,
            audit,
            hasher,
            outbox,
        };
        fixture.seed().await;
        fixture
    }

    async fn seed(&self) {
        self.seeder().seed().await;
    }

    /// A seeder writing to this fixture's store.
    pub fn seeder(&self) -> Seeder<'_> {
        Seeder {
            engine: &self.engine,
            dir: &self.store,
        }
    }

    pub async fn user(
        &self,
        id: &str,
        email: &str,
        project: Option<&str>,
        password: bool,
        totp: TotpState,
        mfa_required: bool,
    ) -> User {
        self.seeder()
            .user(id, email, project, password, totp, mfa_required)
            .await
    }

    pub async fn membership(
        &self,
        id: &str,
        project: &str,
        user: &str,
        profile: &str,
    ) -> ProjectMembership {
        self.seeder().membership(id, project, user, profile).await
    }

    /// A typical request from the `app` client.
    pub fn request(&self) -> LoginRequest {
        LoginRequest {
            client_id: Some("app".into()),
            redirect_uri: Some(REDIRECT.into()),
            scope: Some("openid fhirUser user/Patient.rs user/Observation.cruds".into()),
            code_challenge: Some(CHALLENGE.into()),
            code_challenge_method: Some("S256".into()),
            remote_address: Some("192.0.2.10".parse().unwrap()),
            ..LoginRequest::default()
        }
    }

    /// Domain + password stages for `email` with the default request.
    pub async fn password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Passed, fhirgate::LoginError> {
        self.password_with(self.request(), email, password).await
    }

    pub async fn password_with(
        &self,
        request: LoginRequest,
        email: &str,
        password: &str,
    ) -> Result<Passed, fhirgate::LoginError> {
        let login = self.engine.start(request).await?;
        match login.method(email).await? {
            Method::Password(login) => login.password(password).await,
            Method::External { .. } => panic!("unexpected external provider"),
        }
    }

    /// alice (password, one membership) signed in through the default request, her only
    /// membership chosen: ready for the Consent stage.
    pub async fn alice_at_scope(&self) -> Login<fhirgate::login::Consent> {
        let login = expect_profile(self.password("alice@example.org", PASSWORD).await.unwrap());
        match login.choose_if_single().await.unwrap() {
            fhirgate::login::ProfileChoice::Chosen(login) => login,
            other => panic!("alice has one membership: {other:?}"),
        }
    }

    /// A code for alice through `client` (`app` is public with PKCE; `confidential`
    /// authenticates with Basic), with `scope`.
    pub async fn code_for(
        &self,
        client: &str,
        scope: &str,
    ) -> (fhirgate::Login<fhirgate::login::Authorized>, String) {
        let mut request = self.request();
        request.client_id = Some(client.into());
        request.scope = Some(scope.into());
        request.nonce = Some("n-0S6_WzA2Mj".into());
        let login = expect_profile(
            self.password_with(request, "alice@example.org", PASSWORD)
                .await
                .unwrap(),
        );
        let login = match login.choose_if_single().await.unwrap() {
            fhirgate::login::ProfileChoice::Chosen(login) => login,
            other => panic!("{other:?}"),
        };
        let (login, code) = login.grant(None).await.unwrap();
        (login, code.expose().to_owned())
    }

    /// Redeems a code at the token endpoint the way a client would.
    pub async fn redeem(&self, client: &str, code: &str) -> fhirgate::oauth::OAuthResponse {
        let mut pairs = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ];
        let mut authorization = None;
        if client == "confidential" {
            authorization = Some(basic("confidential", CLIENT_SECRET));
        } else {
            pairs.push(("client_id", client));
        }
        self.token(authorization, &pairs).await
    }

    /// Calls the token endpoint with a form and an optional Authorization header.
    pub async fn token(
        &self,
        authorization: Option<String>,
        pairs: &[(&str, &str)],
    ) -> fhirgate::oauth::OAuthResponse {
        let mut request =
            fhirgate::oauth::TokenRequest::from_form(fhirgate::oauth::Form::from_pairs(pairs));
        request.authorization = authorization;
        self.engine.token(request).await
    }

    /// The TOTP code an authenticator app shows now (optionally `steps` steps away).
    pub fn totp_now(&self, steps: i64) -> String {
        let secret = TotpSecret::from_bytes(TOTP_SECRET.to_vec());
        let t = self.engine.now().unix_timestamp() + steps * 30;
        totp::code_at(&secret, t as u64).unwrap()
    }
}

/// Seeds any directory with the fixture's accounts and clients (hashing with `engine`).
pub struct Seeder<'a> {
    pub engine: &'a Engine,
    pub dir: &'a dyn DirectoryAdmin,
}

impl Seeder<'_> {
    pub async fn seed(&self) {
        let s = self.dir;
        for (id, name) in [("p1", "Clinic"), ("p2", "Lab")] {
            s.put_project(&Project::new(ProjectId::new(id), name))
                .await
                .unwrap();
        }
        let mut client = ClientApplication::new(ClientId::new("app"), ProjectId::new("p1"));
        client.allowed_scopes =
            "openid fhirUser profile email offline_access launch/patient patient/*.rs user/*.cruds"
                .into();
        client.redirect_uris = vec![REDIRECT.into(), "http://127.0.0.1/cb".into()];
        s.put_client(&client).await.unwrap();
        let mut lab = ClientApplication::new(ClientId::new("lab-app"), ProjectId::new("p2"));
        lab.allowed_scopes = "openid user/*.rs".into();
        lab.redirect_uris = vec![REDIRECT.into()];
        s.put_client(&lab).await.unwrap();
        // A confidential web app (client_secret_basic) allowed refresh tokens.
        let mut web = ClientApplication::new(ClientId::new("confidential"), ProjectId::new("p1"));
        web.auth_method = ClientAuthMethod::ClientSecretBasic;
        web.secret = Some(ClientSecretHash::of(CLIENT_SECRET));
        web.allowed_scopes =
            "openid fhirUser profile email offline_access patient/*.rs user/*.cruds".into();
        web.redirect_uris = vec![REDIRECT.into()];
        s.put_client(&web).await.unwrap();
        // A backend service (client_credentials) acting through its own membership.
        let mut m2m = ClientApplication::new(ClientId::new("m2m"), ProjectId::new("p1"));
        m2m.auth_method = ClientAuthMethod::ClientSecretPost;
        m2m.secret = Some(ClientSecretHash::of(CLIENT_SECRET));
        m2m.allowed_scopes = "system/Observation.rs system/Patient.r".into();
        s.put_client(&m2m).await.unwrap();
        self.membership("m-m2m", "p1", "m2m", "ClientApplication/m2m")
            .await;

        // alice: password, one membership in p1.
        self.user(
            "alice",
            "alice@example.org",
            None,
            true,
            TotpState::None,
            false,
        )
        .await;
        self.membership("m-alice", "p1", "alice", "Practitioner/alice")
            .await;
        // bob: password + TOTP, memberships in p1 and p2.
        self.user(
            "bob",
            "bob@example.org",
            None,
            true,
            TotpState::Enrolled {
                secret: TotpSecret::from_bytes(TOTP_SECRET.to_vec()),
            },
            false,
        )
        .await;
        self.membership("m-bob-1", "p1", "bob", "Practitioner/bob")
            .await;
        self.membership("m-bob-2", "p2", "bob", "Practitioner/bob2")
            .await;
        // carol: must enrol TOTP at login.
        self.user(
            "carol",
            "carol@example.org",
            None,
            true,
            TotpState::None,
            true,
        )
        .await;
        self.membership("m-carol", "p1", "carol", "Practitioner/carol")
            .await;
        // dave: no password (external only).
        self.user(
            "dave",
            "dave@example.org",
            None,
            false,
            TotpState::None,
            false,
        )
        .await;
        self.membership("m-dave", "p1", "dave", "Practitioner/dave")
            .await;
        // erin: right password, no membership at all.
        self.user(
            "erin",
            "erin@example.org",
            None,
            true,
            TotpState::None,
            false,
        )
        .await;
        // pat: a patient in p1, two memberships (patient profile, and an inactive one).
        self.user("pat", "pat@example.org", None, true, TotpState::None, false)
            .await;
        self.membership("m-pat", "p1", "pat", "Patient/pat").await;
        let mut inactive = self
            .membership("m-pat-old", "p1", "pat", "Practitioner/pat")
            .await;
        inactive.active = false;
        s.put_membership(&inactive).await.unwrap();
        // frank: project-scoped in p2 with the same email as a server-scoped account.
        self.user(
            "frank-p2",
            "frank@example.org",
            Some("p2"),
            true,
            TotpState::None,
            false,
        )
        .await;
        self.membership("m-frank-p2", "p2", "frank-p2", "Practitioner/frank")
            .await;
        self.user(
            "frank",
            "frank@example.org",
            None,
            true,
            TotpState::None,
            false,
        )
        .await;
        self.membership("m-frank", "p1", "frank", "Practitioner/frank1")
            .await;
    }

    pub async fn user(
        &self,
        id: &str,
        email: &str,
        project: Option<&str>,
        password: bool,
        totp: TotpState,
        mfa_required: bool,
    ) -> User {
        let mut user = User::new(UserId::new(id), email);
        user.project = project.map(ProjectId::new);
        if password {
            user.password_hash = Some(self.engine.hash_new_password(PASSWORD).await.unwrap());
        }
        user.totp = totp;
        user.mfa_required = mfa_required;
        self.dir.create_user(&user).await.unwrap();
        user
    }

    pub async fn membership(
        &self,
        id: &str,
        project: &str,
        user: &str,
        profile: &str,
    ) -> ProjectMembership {
        let m = ProjectMembership::new(
            MembershipId::new(id),
            ProjectId::new(project),
            UserId::new(user),
            Reference::parse(profile).unwrap(),
        );
        self.dir.put_membership(&m).await.unwrap();
        m
    }
}

/// `Basic base64(id:secret)` (both urlencoded first, RFC 6749 §2.3.1).
pub fn basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

/// A string field of a JSON response body.
pub fn field<'a>(response: &'a fhirgate::oauth::OAuthResponse, name: &str) -> &'a str {
    response.body[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {}", response.body))
}

pub fn expect_profile(a: Passed) -> Login<fhirgate::login::Profile> {
    match a {
        Passed::Profile(l) => l,
        other => panic!("expected Profile, got {other:?}"),
    }
}

pub fn expect_second_factor(a: Passed) -> Login<fhirgate::login::SecondFactor> {
    match a {
        Passed::SecondFactor(l) => l,
        other => panic!("expected SecondFactor, got {other:?}"),
    }
}
