//! A fake OpenID provider on loopback, for the federation tests: real HTTP (axum on
//! `127.0.0.1:0`), real signatures (jsonwebtoken, with keys the fake owns — never fhirgate's
//! signer), and knobs for every way a provider can misbehave.
//!
//! The authorization endpoint "authenticates" whoever [`FakeIdp::set_next_login`] configured
//! last (the setting stays until changed); the login is captured with the code, so changing it
//! afterwards does not alter a code already issued. The misbehaviours of a [`NextLogin`] apply
//! to its ID token only; access tokens are always well formed.
//!
//! Keys come from `tests/data/keys/idp/` (four RSA-2048 and four P-256 keys, plus one of each
//! that is never published): deterministic, and no key generation at test time. Key
//! generation `g` uses pool key `g % 4` under the kid `fake-rs256-{g+1}` (or `fake-es256-…`),
//! so a kid is never reused, while the key material repeats after four rotations.
//!
//! Time is the system clock unless [`FakeIdp::set_now`] fixes it (for an engine on a manual
//! clock).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use url::Url;

const RSA_POOL: [&str; 4] = [
    include_str!("../../data/keys/idp/rsa-1.pem"),
    include_str!("../../data/keys/idp/rsa-2.pem"),
    include_str!("../../data/keys/idp/rsa-3.pem"),
    include_str!("../../data/keys/idp/rsa-4.pem"),
];
const RSA_ROGUE: &str = include_str!("../../data/keys/idp/rsa-rogue.pem");
const P256_POOL: [&str; 4] = [
    include_str!("../../data/keys/idp/p256-1.pem"),
    include_str!("../../data/keys/idp/p256-2.pem"),
    include_str!("../../data/keys/idp/p256-3.pem"),
    include_str!("../../data/keys/idp/p256-4.pem"),
];
const P256_ROGUE: &str = include_str!("../../data/keys/idp/p256-rogue.pem");

/// How the fake expects our client to authenticate at its token endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenAuth {
    /// `client_secret_basic`: `Authorization: Basic base64(urlenc(id):urlenc(secret))`.
    #[default]
    Basic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form.
    Post,
}

/// The fake's signing algorithm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FakeAlg {
    /// RS256 (RSA-2048), what most providers use.
    #[default]
    Rs256,
    /// ES256 (P-256).
    Es256,
}

impl FakeAlg {
    /// The jsonwebtoken algorithm.
    pub fn algorithm(self) -> Algorithm {
        match self {
            FakeAlg::Rs256 => Algorithm::RS256,
            FakeAlg::Es256 => Algorithm::ES256,
        }
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            FakeAlg::Rs256 => "RS256",
            FakeAlg::Es256 => "ES256",
        }
    }
}

/// How the fake is set up.
#[derive(Clone, Debug)]
pub struct FakeIdpOptions {
    /// Our client id at the fake. Default `fhirgate-at-idp`.
    pub client_id: String,
    /// Our client secret at the fake. Default `idp-secret-0123456789`.
    pub client_secret: String,
    /// The client authentication the token endpoint accepts (only that one).
    pub token_auth: TokenAuth,
    /// The signing algorithm of ID tokens and access tokens.
    pub alg: FakeAlg,
}

impl Default for FakeIdpOptions {
    fn default() -> Self {
        Self {
            client_id: "fhirgate-at-idp".to_owned(),
            client_secret: "idp-secret-0123456789".to_owned(),
            token_auth: TokenAuth::Basic,
            alg: FakeAlg::Rs256,
        }
    }
}

/// Who the authorization endpoint "authenticates" next, and how the resulting ID token
/// misbehaves (everything defaults to behaving).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NextLogin {
    /// `sub`.
    pub sub: String,
    /// `email` (omitted when `None`).
    pub email: Option<String>,
    /// `email_verified` (omitted when `None`).
    pub email_verified: Option<bool>,
    /// `name` (omitted when `None`).
    pub name: Option<String>,
    /// `iss` instead of the fake's issuer.
    pub iss_override: Option<String>,
    /// `aud` instead of the client id (always written as an array; with more than one
    /// audience the token also carries `azp` = the client id).
    pub aud_override: Option<Vec<String>>,
    /// `azp` instead of the default above; `Some(None)` omits it.
    pub azp_override: Option<Option<String>>,
    /// `nonce` instead of the one from the authorization request; `Some(None)` omits it.
    pub nonce_override: Option<Option<String>>,
    /// `exp` ten minutes in the past (and `iat` an hour ago).
    pub expired: bool,
    /// Added to `iat` (now by default): negative for old tokens, positive for tokens from
    /// the future. `exp` does not move.
    pub iat_offset_seconds: i64,
    /// Signed by a key that is not in the JWKS, under the current key's `kid`.
    pub sign_with_unknown_key: bool,
    /// The payload is changed after signing (`sub` gets a `.tampered` suffix).
    pub tamper_payload: bool,
    /// The token response has no `id_token`: the relying party must use UserInfo.
    pub omit_id_token: bool,
}

impl NextLogin {
    /// A well-behaved login: `sub`, `email`, `email_verified: true`, no name.
    pub fn user(sub: &str, email: &str) -> Self {
        Self {
            sub: sub.to_owned(),
            email: Some(email.to_owned()),
            email_verified: Some(true),
            name: None,
            iss_override: None,
            aud_override: None,
            azp_override: None,
            nonce_override: None,
            expired: false,
            iat_offset_seconds: 0,
            sign_with_unknown_key: false,
            tamper_payload: false,
            omit_id_token: false,
        }
    }
}

/// How the token endpoint behaves (until changed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TokenBehaviour {
    /// Checks the request and issues tokens.
    #[default]
    Normal,
    /// Answers with this status and an OAuth error JSON (`invalid_client` for 401,
    /// `invalid_grant` for other 4xx, `server_error` otherwise); the code is not consumed.
    Status(u16),
    /// Sleeps this long, then behaves normally.
    Delay(Duration),
    /// Answers 200 with an HTML page; the code is not consumed.
    NotJson,
}

/// How a token request authenticated the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordedClientAuth {
    /// An `Authorization: Basic` header only.
    Basic,
    /// `client_secret` in the form only.
    Post,
    /// Both (refused: one method per request).
    Both,
    /// Neither.
    None,
}

/// A request the token endpoint received (recorded before any check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedTokenRequest {
    /// The form fields, in order.
    pub form: Vec<(String, String)>,
    /// Which client authentication it carried.
    pub client_auth: RecordedClientAuth,
    /// The client id from the Basic header, decoded.
    pub basic_client_id: Option<String>,
}

impl RecordedTokenRequest {
    /// The first form field called `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        field(&self.form, name)
    }
}

/// A request the authorization endpoint received (recorded before any check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedAuthorizeRequest {
    /// The query parameters, in order.
    pub query: Vec<(String, String)>,
}

impl RecordedAuthorizeRequest {
    /// The first query parameter called `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        field(&self.query, name)
    }
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// A signing key of the fake.
struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
}

impl Key {
    fn load(alg: FakeAlg, pem: &str, kid: String) -> Key {
        fhirgate::crypto::install_provider();
        let encoding = match alg {
            FakeAlg::Rs256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
            FakeAlg::Es256 => EncodingKey::from_ec_pem(pem.as_bytes()),
        }
        .expect("fake IdP key");
        let mut jwk = Jwk::from_encoding_key(&encoding, alg.algorithm()).expect("public JWK");
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&jwk).expect("decoding key");
        Key {
            kid,
            encoding,
            decoding,
            jwk,
        }
    }

    fn generation(alg: FakeAlg, generation: usize) -> Key {
        let pool = match alg {
            FakeAlg::Rs256 => RSA_POOL,
            FakeAlg::Es256 => P256_POOL,
        };
        let kid = format!(
            "fake-{}-{}",
            alg.name().to_ascii_lowercase(),
            generation + 1
        );
        Key::load(alg, pool[generation % pool.len()], kid)
    }

    fn rogue(alg: FakeAlg) -> Key {
        let pem = match alg {
            FakeAlg::Rs256 => RSA_ROGUE,
            FakeAlg::Es256 => P256_ROGUE,
        };
        Key::load(alg, pem, "rogue".to_owned())
    }
}

/// What a code stands for.
struct PendingCode {
    login: NextLogin,
    nonce: String,
    challenge: String,
    redirect_uri: String,
    client_id: String,
    scope: String,
}

struct Mutable {
    next_login: NextLogin,
    token_behaviour: TokenBehaviour,
    generation: usize,
    /// Published keys, the current (signing) key first.
    published: Vec<Arc<Key>>,
    codes: HashMap<String, PendingCode>,
    jwks_fetches: usize,
    token_requests: Vec<RecordedTokenRequest>,
    authorize_requests: Vec<RecordedAuthorizeRequest>,
    now: Option<i64>,
    /// Opaque access tokens the fake issued, with what its introspection and UserInfo say of
    /// them.
    opaque: HashMap<String, Value>,
}

impl Mutable {
    fn current(&self) -> Arc<Key> {
        self.published[0].clone()
    }

    fn now(&self) -> i64 {
        self.now.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("clock after 1970")
                .as_secs() as i64
        })
    }
}

struct Shared {
    issuer: String,
    options: FakeIdpOptions,
    rogue: Key,
    state: Mutex<Mutable>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Mutable> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn sign(&self, key: &Key, kid: &str, typ: &str, claims: &Value) -> String {
        let mut header = Header::new(self.options.alg.algorithm());
        header.kid = Some(kid.to_owned());
        header.typ = Some(typ.to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign")
    }

    /// An RFC 9068 access token (`typ: at+jwt`), signed by the current key.
    #[allow(clippy::too_many_arguments)]
    fn access_token(
        &self,
        sub: &str,
        email: Option<&str>,
        email_verified: Option<bool>,
        name: Option<&str>,
        audience: &str,
        scope: &str,
        expired: bool,
    ) -> String {
        let (key, now) = {
            let state = self.lock();
            (state.current(), state.now())
        };
        let (iat, exp) = if expired {
            (now - 3600, now - 600)
        } else {
            (now, now + 3600)
        };
        let mut claims = json!({
            "iss": self.issuer,
            "sub": sub,
            "aud": audience,
            "client_id": self.options.client_id,
            "scope": scope,
            "iat": iat,
            "exp": exp,
            "jti": random_token(),
        });
        if let Some(email) = email {
            claims["email"] = json!(email);
        }
        if let Some(verified) = email_verified {
            claims["email_verified"] = json!(verified);
        }
        if let Some(name) = name {
            claims["name"] = json!(name);
        }
        self.sign(&key, &key.kid, "at+jwt", &claims)
    }

    fn id_token(&self, pending: &PendingCode, access_token: &str) -> String {
        let (key, now) = {
            let state = self.lock();
            (state.current(), state.now())
        };
        let login = &pending.login;
        let (iat, exp) = if login.expired {
            (now - 3600, now - 600)
        } else {
            (now, now + 3600)
        };
        let digest = Sha256::digest(access_token.as_bytes());
        let mut claims = json!({
            "iss": login.iss_override.clone().unwrap_or_else(|| self.issuer.clone()),
            "sub": login.sub,
            "iat": iat + login.iat_offset_seconds,
            "exp": exp,
            "auth_time": now,
            "at_hash": URL_SAFE_NO_PAD.encode(&digest[..16]),
        });
        match &login.aud_override {
            Some(audiences) => {
                claims["aud"] = json!(audiences);
                if audiences.len() > 1 {
                    claims["azp"] = json!(pending.client_id);
                }
            }
            None => claims["aud"] = json!(pending.client_id),
        }
        match &login.azp_override {
            Some(Some(azp)) => claims["azp"] = json!(azp),
            Some(None) => {
                if let Some(map) = claims.as_object_mut() {
                    map.remove("azp");
                }
            }
            None => {}
        }
        let nonce = match &login.nonce_override {
            None => Some(pending.nonce.clone()),
            Some(chosen) => chosen.clone(),
        };
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        if let Some(email) = &login.email {
            claims["email"] = json!(email);
        }
        if let Some(verified) = login.email_verified {
            claims["email_verified"] = json!(verified);
        }
        if let Some(name) = &login.name {
            claims["name"] = json!(name);
        }
        let signer = if login.sign_with_unknown_key {
            &self.rogue
        } else {
            &*key
        };
        let token = self.sign(signer, &key.kid, "JWT", &claims);
        if login.tamper_payload {
            let parts: Vec<&str> = token.split('.').collect();
            let mut payload: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
            payload["sub"] = json!(format!("{}.tampered", login.sub));
            let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
            format!("{}.{}.{}", parts[0], payload, parts[2])
        } else {
            token
        }
    }
}

/// The fake provider; stops serving when stopped or dropped.
pub struct FakeIdp {
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl FakeIdp {
    /// Binds `127.0.0.1:0` and serves in a tokio task.
    pub async fn start(options: FakeIdpOptions) -> FakeIdp {
        fhirgate::crypto::install_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake IdP");
        let addr = listener.local_addr().expect("local address");
        let alg = options.alg;
        let shared = Arc::new(Shared {
            issuer: format!("http://{addr}"),
            rogue: Key::rogue(alg),
            options,
            state: Mutex::new(Mutable {
                next_login: NextLogin::user("idp-user-1", "alice@example.org"),
                token_behaviour: TokenBehaviour::Normal,
                generation: 0,
                published: vec![Arc::new(Key::generation(alg, 0))],
                codes: HashMap::new(),
                jwks_fetches: 0,
                token_requests: Vec::new(),
                authorize_requests: Vec::new(),
                now: None,
                opaque: HashMap::new(),
            }),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo).post(userinfo))
            .route("/jwks", get(jwks))
            .route("/introspect", post(introspect))
            .with_state(shared.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        FakeIdp {
            shared,
            shutdown: Some(shutdown),
        }
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// `{issuer}/authorize`.
    pub fn authorize_url(&self) -> String {
        format!("{}/authorize", self.shared.issuer)
    }

    /// `{issuer}/token`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.shared.issuer)
    }

    /// `{issuer}/userinfo`.
    pub fn userinfo_url(&self) -> String {
        format!("{}/userinfo", self.shared.issuer)
    }

    /// `{issuer}/jwks`.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.shared.issuer)
    }

    /// `{issuer}/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.shared.issuer)
    }

    /// The options the fake was started with.
    pub fn options(&self) -> &FakeIdpOptions {
        &self.shared.options
    }

    /// The provider as fhirgate configures it.
    pub fn identity_provider(&self) -> fhirgate::model::IdentityProvider {
        let options = &self.shared.options;
        fhirgate::model::IdentityProvider {
            issuer: Some(self.issuer()),
            authorize_url: Url::parse(&self.authorize_url()).unwrap(),
            token_url: Url::parse(&self.token_url()).unwrap(),
            userinfo_url: Some(Url::parse(&self.userinfo_url()).unwrap()),
            jwks_uri: Some(Url::parse(&self.jwks_uri()).unwrap()),
            client_id: options.client_id.clone(),
            client_secret: Some(options.client_secret.clone()),
            token_auth_method: match options.token_auth {
                TokenAuth::Basic => fhirgate::model::IdpTokenAuth::ClientSecretBasic,
                TokenAuth::Post => fhirgate::model::IdpTokenAuth::ClientSecretPost,
            },
            use_subject: false,
            scope: "openid profile email".to_owned(),
            access_token_audiences: Vec::new(),
            iss_parameter_supported: false,
            introspection_url: None,
        }
    }

    /// Who the authorization endpoint authenticates from now on (default:
    /// `NextLogin::user("idp-user-1", "alice@example.org")`).
    pub fn set_next_login(&self, next: NextLogin) {
        self.shared.lock().next_login = next;
    }

    /// How the token endpoint behaves from now on.
    pub fn set_token_behaviour(&self, behaviour: TokenBehaviour) {
        self.shared.lock().token_behaviour = behaviour;
    }

    /// Fixes the fake's clock at `now` (Unix seconds), or back to the system clock with
    /// `None`. Applies to every token issued afterwards and to UserInfo's expiry check.
    pub fn set_now(&self, now: Option<i64>) {
        self.shared.lock().now = now;
    }

    /// A new signing key with a new kid; the JWKS then lists only the new key (an abrupt
    /// rotation: tokens signed before no longer verify).
    pub fn rotate_keys(&self) {
        let mut state = self.shared.lock();
        state.generation += 1;
        let key = Arc::new(Key::generation(self.shared.options.alg, state.generation));
        state.published = vec![key];
    }

    /// A new signing key with a new kid, published before every key already published (the
    /// new one signs from now on; the old ones still verify).
    pub fn rotate_keys_keep_old(&self) {
        let mut state = self.shared.lock();
        state.generation += 1;
        let key = Arc::new(Key::generation(self.shared.options.alg, state.generation));
        state.published.insert(0, key);
    }

    /// The kid of the key that signs now.
    pub fn current_kid(&self) -> String {
        self.shared.lock().current().kid.clone()
    }

    /// The kids in the JWKS, current first.
    pub fn published_kids(&self) -> Vec<String> {
        self.shared
            .lock()
            .published
            .iter()
            .map(|k| k.kid.clone())
            .collect()
    }

    /// How many times `/jwks` was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.shared.lock().jwks_fetches
    }

    /// Every request the token endpoint received, in order.
    pub fn token_requests(&self) -> Vec<RecordedTokenRequest> {
        self.shared.lock().token_requests.clone()
    }

    /// Every request the authorization endpoint received, in order.
    pub fn authorize_requests(&self) -> Vec<RecordedAuthorizeRequest> {
        self.shared.lock().authorize_requests.clone()
    }

    /// A JWT access token (`typ: at+jwt`) signed by the fake's current key: `iss` the fake,
    /// `aud` = `audience`, `sub`, `email` (verified), `client_id`, `scope`; expired an
    /// hour-long token ten minutes ago when `expired`. `/userinfo` accepts it (unless expired
    /// or its key was rotated out).
    pub fn access_token(&self, sub: &str, email: &str, audience: &str, expired: bool) -> String {
        self.shared.access_token(
            sub,
            Some(email),
            Some(true),
            None,
            audience,
            "openid profile email",
            expired,
        )
    }

    /// An opaque (non-JWT) access token for `sub`/`email`, issued to the OAuth client
    /// `client_id` with audience `audience`: `/userinfo` accepts it, and `/introspect` reports
    /// it active with those `client_id` and `aud`.
    pub fn opaque_access_token(
        &self,
        sub: &str,
        email: &str,
        client_id: &str,
        audience: &str,
    ) -> String {
        let token = random_token();
        let mut state = self.shared.lock();
        let now = state.now();
        state.opaque.insert(
            token.clone(),
            json!({
                "sub": sub,
                "email": email,
                "email_verified": true,
                "client_id": client_id,
                "aud": audience,
                "iss": self.shared.issuer,
                "exp": now + 3600,
            }),
        );
        token
    }

    /// The RFC 7662 introspection endpoint.
    pub fn introspection_url(&self) -> String {
        format!("{}/introspect", self.shared.issuer)
    }

    /// Stops serving: no new connections; idle ones are closed.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for FakeIdp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

impl std::fmt::Debug for FakeIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeIdp")
            .field("issuer", &self.shared.issuer)
            .finish_non_exhaustive()
    }
}

fn random_token() -> String {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).expect("randomness");
    URL_SAFE_NO_PAD.encode(bytes)
}

fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

/// The single value of `name`: `Err` when repeated (RFC 6749 §3.1), `Ok(None)` when absent
/// or empty.
fn single<'a>(pairs: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, String> {
    let mut values = pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v);
    let first = values.next();
    if values.next().is_some() {
        return Err(format!("{name} is repeated"));
    }
    Ok(first.map(String::as_str).filter(|v| !v.is_empty()))
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (
        status,
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    let issuer = &shared.issuer;
    let auth_method = match shared.options.token_auth {
        TokenAuth::Basic => "client_secret_basic",
        TokenAuth::Post => "client_secret_post",
    };
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [shared.options.alg.name()],
        "token_endpoint_auth_methods_supported": [auth_method],
        "scopes_supported": ["openid", "profile", "email"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "email", "email_verified", "name"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

async fn authorize(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let query = pairs(query.unwrap_or_default().as_bytes());
    shared
        .lock()
        .authorize_requests
        .push(RecordedAuthorizeRequest {
            query: query.clone(),
        });
    let bad =
        |description: String| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &description);
    let get = |name: &str| single(&query, name);
    let (response_type, client_id, redirect_uri, scope, state, nonce, challenge, method) = match (
        get("response_type"),
        get("client_id"),
        get("redirect_uri"),
        get("scope"),
        get("state"),
        get("nonce"),
        get("code_challenge"),
        get("code_challenge_method"),
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d), Ok(e), Ok(f), Ok(g), Ok(h)) => (a, b, c, d, e, f, g, h),
        _ => return bad("a parameter is repeated".to_owned()),
    };
    if response_type != Some("code") {
        return bad("response_type must be code".to_owned());
    }
    if client_id != Some(shared.options.client_id.as_str()) {
        return bad("unknown client_id".to_owned());
    }
    let Some(redirect_uri) = redirect_uri else {
        return bad("redirect_uri is missing".to_owned());
    };
    let Ok(mut location) = Url::parse(redirect_uri) else {
        return bad("redirect_uri is not an absolute URL".to_owned());
    };
    let Some(scope) = scope.filter(|s| s.split(' ').any(|s| s == "openid")) else {
        return bad("scope must include openid".to_owned());
    };
    let Some(state) = state else {
        return bad("state is missing".to_owned());
    };
    let Some(nonce) = nonce else {
        return bad("nonce is missing".to_owned());
    };
    let Some(challenge) = challenge else {
        return bad("code_challenge is missing".to_owned());
    };
    if method != Some("S256") {
        return bad("code_challenge_method must be S256".to_owned());
    }

    let code = random_token();
    {
        let mut guard = shared.lock();
        let login = guard.next_login.clone();
        guard.codes.insert(
            code.clone(),
            PendingCode {
                login,
                nonce: nonce.to_owned(),
                challenge: challenge.to_owned(),
                redirect_uri: redirect_uri.to_owned(),
                client_id: shared.options.client_id.clone(),
                scope: scope.to_owned(),
            },
        );
    }
    location
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", state)
        .append_pair("iss", &shared.issuer);
    let mut response = StatusCode::FOUND.into_response();
    response.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(location.as_str()).expect("location"),
    );
    response
}

/// `id:secret` from a Basic header, each part form-urldecoded (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |part: &str| -> String {
        url::form_urlencoded::parse(format!("x={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

fn valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = pairs(&body);
    let basic = basic_credentials(&headers);
    let has_basic_header = headers.contains_key(header::AUTHORIZATION);
    let has_form_secret = field(&form, "client_secret").is_some();
    let client_auth = match (has_basic_header, has_form_secret) {
        (true, true) => RecordedClientAuth::Both,
        (true, false) => RecordedClientAuth::Basic,
        (false, true) => RecordedClientAuth::Post,
        (false, false) => RecordedClientAuth::None,
    };
    let behaviour = {
        let mut state = shared.lock();
        state.token_requests.push(RecordedTokenRequest {
            form: form.clone(),
            client_auth,
            basic_client_id: basic.as_ref().map(|(id, _)| id.clone()),
        });
        state.token_behaviour.clone()
    };
    match behaviour {
        TokenBehaviour::Normal => {}
        TokenBehaviour::Delay(pause) => tokio::time::sleep(pause).await,
        TokenBehaviour::Status(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let error = match status.as_u16() {
                401 => "invalid_client",
                400..=499 => "invalid_grant",
                _ => "server_error",
            };
            return oauth_error(status, error, "the fake IdP was told to fail");
        }
        TokenBehaviour::NotJson => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                "<html><body><h1>Sign in</h1></body></html>",
            )
                .into_response();
        }
    }

    let options = &shared.options;
    let invalid_client = |description: &str| {
        let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description);
        if options.token_auth == TokenAuth::Basic {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"fake-idp\""),
            );
        }
        response
    };
    let Ok(form_client_id) = single(&form, "client_id") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "client_id is repeated",
        );
    };
    let authenticated = match (options.token_auth, client_auth) {
        (TokenAuth::Basic, RecordedClientAuth::Basic) => match &basic {
            Some((id, secret)) => {
                id == &options.client_id
                    && secret == &options.client_secret
                    && form_client_id.is_none_or(|form_id| form_id == id)
            }
            None => false,
        },
        (TokenAuth::Post, RecordedClientAuth::Post) => {
            form_client_id == Some(options.client_id.as_str())
                && single(&form, "client_secret") == Ok(Some(options.client_secret.as_str()))
        }
        _ => false,
    };
    if !authenticated {
        return invalid_client("client authentication failed");
    }

    let get = |name: &str| single(&form, name);
    let (grant_type, code, redirect_uri, verifier) = match (
        get("grant_type"),
        get("code"),
        get("redirect_uri"),
        get("code_verifier"),
    ) {
        (Ok(a), Ok(b), Ok(c), Ok(d)) => (a, b, c, d),
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "a parameter is repeated",
            );
        }
    };
    if grant_type != Some("authorization_code") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code",
        );
    }
    let invalid_grant =
        |description: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description);
    let Some(code) = code else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code is missing",
        );
    };
    // Single use: the code is gone whether or not the rest checks out.
    let Some(pending) = shared.lock().codes.remove(code) else {
        return invalid_grant("unknown or used code");
    };
    if pending.client_id != options.client_id {
        return invalid_grant("the code was issued to another client");
    }
    if redirect_uri != Some(pending.redirect_uri.as_str()) {
        return invalid_grant("redirect_uri does not match the authorization request");
    }
    let Some(verifier) = verifier.filter(|v| valid_verifier(v)) else {
        return invalid_grant("code_verifier is missing or malformed");
    };
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != pending.challenge {
        return invalid_grant("code_verifier does not match the code_challenge");
    }

    let login = &pending.login;
    let access_token = shared.access_token(
        &login.sub,
        login.email.as_deref(),
        login.email_verified,
        login.name.as_deref(),
        &pending.client_id,
        &pending.scope,
        false,
    );
    let mut answer = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": pending.scope,
    });
    if !login.omit_id_token {
        answer["id_token"] = json!(shared.id_token(&pending, &access_token));
    }
    let mut response = axum::Json(answer).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Verifies one of the fake's own access tokens against the published keys.
fn verify_access_token(shared: &Shared, token: &str) -> Option<Value> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.typ.as_deref() != Some("at+jwt") {
        return None;
    }
    let kid = header.kid?;
    let (key, now) = {
        let state = shared.lock();
        let key = state.published.iter().find(|k| k.kid == kid)?.clone();
        (key, state.now())
    };
    let mut validation = Validation::new(shared.options.alg.algorithm());
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(token, &key.decoding, &validation)
        .ok()?
        .claims;
    (claims["iss"] == json!(shared.issuer) && claims["exp"].as_i64()? > now).then_some(claims)
}

async fn userinfo(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let opaque = token.and_then(|t| shared.lock().opaque.get(t).cloned());
    let Some(claims) = opaque.or_else(|| token.and_then(|t| verify_access_token(&shared, t)))
    else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
        )
            .into_response();
    };
    let mut answer = json!({"sub": claims["sub"]});
    for name in ["email", "email_verified", "name"] {
        if let Some(value) = claims.get(name) {
            answer[name] = value.clone();
        }
    }
    axum::Json(answer).into_response()
}

/// RFC 7662: the fake's client authenticates with Basic; its opaque tokens and JWT access
/// tokens are described, anything else is `{"active": false}`.
async fn introspect(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authenticated = basic_credentials(&headers).is_some_and(|(id, secret)| {
        id == shared.options.client_id && secret == shared.options.client_secret
    });
    if !authenticated {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "bad client");
    }
    let form = pairs(&body);
    let token = field(&form, "token").unwrap_or_default().to_owned();
    let opaque = shared.lock().opaque.get(&token).cloned();
    let described = opaque.or_else(|| verify_access_token(&shared, &token));
    match described {
        Some(mut claims) => {
            claims["active"] = json!(true);
            axum::Json(claims).into_response()
        }
        None => axum::Json(json!({"active": false})).into_response(),
    }
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    let set = {
        let mut state = shared.lock();
        state.jwks_fetches += 1;
        JwkSet {
            keys: state.published.iter().map(|k| k.jwk.clone()).collect(),
        }
    };
    axum::Json(set).into_response()
}
