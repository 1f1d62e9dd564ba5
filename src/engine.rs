//! `Engine`: the configuration and the injected world (stores, clock, randomness, hashing,
//! audit) that every login step runs against.
//!
//! An engine is a cheap handle (`Clone` shares it); build one per process with
//! [`Engine::builder`] and hand clones to request handlers.

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::audit::{AuditEvent, AuditKind, AuditSink, NoAudit};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, ConfigError};
use crate::credential::password::{Argon2Hasher, PasswordHasher};
use crate::oauth::ClientAuthenticator;
use crate::random::{OsRandom, SecureRandom};
use crate::store::{
    Directory, DirectoryAdmin, LoginStore, MemoryStore, OnceStore, RequestStore, StoreError,
};
use crate::token::keys::{KeyError, KeySet, SigningAlgorithm, SigningKey};
use crate::token::{KeyRing, Keys, Verifier};
use crate::transport::{NoTransport, Transport};

/// The login engine. See the [crate documentation](crate) for a complete flow.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    directory: Arc<dyn Directory>,
    directory_admin: Option<Arc<dyn DirectoryAdmin>>,
    logins: Arc<dyn LoginStore>,
    once: Arc<dyn OnceStore>,
    requests: Arc<dyn RequestStore>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn SecureRandom>,
    hasher: Arc<dyn PasswordHasher>,
    audit: Arc<dyn AuditSink>,
    keys: KeyRing,
    verifier: Verifier,
    transport: Arc<dyn Transport>,
    mailer: Arc<dyn crate::mail::Mailer>,
    breached: Arc<dyn crate::account::BreachedPasswords>,
    human_check: Option<Arc<dyn crate::account::HumanCheck>>,
    clients: ClientAuthenticator,
    sign_in: url::Url,
    jwks: Arc<crate::jose::JwksCache>,
}

impl Engine {
    /// Starts building an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The identity directory.
    pub fn directory(&self) -> &dyn Directory {
        self.inner.directory.as_ref()
    }

    /// The login store.
    pub fn login_store(&self) -> &dyn LoginStore {
        self.inner.logins.as_ref()
    }

    /// The single-use store.
    pub fn once_store(&self) -> &dyn OnceStore {
        self.inner.once.as_ref()
    }

    /// The current time by the engine's clock.
    pub fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    /// The engine's random source.
    pub fn random(&self) -> &dyn SecureRandom {
        self.inner.random.as_ref()
    }

    /// The password hasher.
    pub fn password_hasher(&self) -> &dyn PasswordHasher {
        self.inner.hasher.as_ref()
    }

    /// Key management: the keys in use, their JWKS, and rotation (publish → promote →
    /// prune).
    pub fn keys(&self) -> Keys<'_> {
        Keys::new(
            &self.inner.keys,
            &self.inner.config.oauth,
            self.inner.clock.as_ref(),
        )
    }

    /// TOTP administration of accounts: status, enrolment, confirmation, removal.
    pub fn mfa(&self) -> crate::credential::totp::Mfa<'_> {
        crate::credential::totp::Mfa::new(self)
    }

    /// Account self-service: password resets and changes, email verification.
    pub fn accounts(&self) -> crate::account::Accounts<'_> {
        crate::account::Accounts::new(self)
    }

    /// The discovery documents: OpenID Provider, RFC 8414 and SMART metadata.
    pub fn discovery(&self) -> crate::oauth::Discovery<'_> {
        crate::oauth::Discovery::new(&self.inner.config.oauth, self.inner.keys.current())
    }

    /// The bearer-token verifier of this engine (the same a resource server can build on its
    /// own with [`Verifier::new`]).
    pub fn verifier(&self) -> &Verifier {
        &self.inner.verifier
    }

    /// The outbound HTTP transport.
    pub fn transport(&self) -> &dyn Transport {
        self.inner.transport.as_ref()
    }

    /// Applies the password policy (NFKC, length in code points) to a new password and hashes
    /// it with the engine's hasher: what a host calls to set or seed a password.
    pub async fn hash_new_password(
        &self,
        password: &str,
    ) -> Result<crate::model::PasswordHash, crate::error::LoginError> {
        let password = self.config().password_policy.for_new_password(password)?;
        Ok(self.inner.hasher.hash(&password).await?)
    }

    /// Deletes expired logins, claims, counters and security requests; returns how many entries went. Call it
    /// periodically (every few minutes) from a background task.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        let now = self.now();
        let logins = self.inner.logins.purge_expired_logins(now).await?;
        let once = self.inner.once.purge_expired_once(now).await?;
        let requests = self.inner.requests.purge_expired_requests(now).await?;
        Ok(logins.saturating_add(once).saturating_add(requests))
    }

    /// The security-request store.
    pub(crate) fn request_store(&self) -> &dyn RequestStore {
        self.inner.requests.as_ref()
    }

    /// Administrative writes, when the engine was given them.
    pub(crate) fn directory_admin(&self) -> Option<Arc<dyn DirectoryAdmin>> {
        self.inner.directory_admin.clone()
    }

    /// The human check, when one is configured.
    pub(crate) fn human_check(&self) -> Option<&dyn crate::account::HumanCheck> {
        self.inner.human_check.as_deref()
    }

    /// The check new passwords must pass.
    pub(crate) fn breached_passwords(&self) -> &dyn crate::account::BreachedPasswords {
        self.inner.breached.as_ref()
    }

    /// The mailer.
    pub(crate) fn mailer(&self) -> &dyn crate::mail::Mailer {
        self.inner.mailer.as_ref()
    }

    /// Client authentication at the token endpoint (and its JWKS cache).
    pub(crate) fn client_authenticator(&self) -> &ClientAuthenticator {
        &self.inner.clients
    }

    /// Where browsers sign in.
    pub(crate) fn sign_in_url(&self) -> &url::Url {
        &self.inner.sign_in
    }

    /// The identity-provider checks, with access to what they need only.
    pub(crate) fn federation(&self) -> crate::idp::Federation<'_> {
        crate::idp::Federation::new(
            &self.inner.config,
            self.inner.directory.as_ref(),
            self.inner.transport.as_ref(),
            &self.inner.jwks,
            self.inner.clock.as_ref(),
            self.inner.random.as_ref(),
        )
    }

    pub(crate) fn audit(&self, kind: AuditKind, context: AuditContext) {
        self.inner.audit.record(AuditEvent {
            at: self.now(),
            login: context.login,
            user: context.user,
            client: context.client,
            remote_address: context.remote_address,
            kind,
        });
    }
}

/// Who an audit event is about.
#[derive(Default)]
pub(crate) struct AuditContext {
    pub(crate) login: Option<crate::model::LoginId>,
    pub(crate) user: Option<crate::model::UserId>,
    pub(crate) client: Option<crate::model::ClientId>,
    pub(crate) remote_address: Option<std::net::IpAddr>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Builds an [`Engine`]. Every part has a default: an in-memory store, the system clock, the
/// operating system's CSPRNG, argon2id with OWASP parameters on a bounded worker pool, and no
/// audit sink.
#[derive(Default)]
pub struct EngineBuilder {
    config: Option<Config>,
    directory: Option<Arc<dyn Directory>>,
    directory_admin: Option<Arc<dyn DirectoryAdmin>>,
    logins: Option<Arc<dyn LoginStore>>,
    once: Option<Arc<dyn OnceStore>>,
    requests: Option<Arc<dyn RequestStore>>,
    clock: Option<Arc<dyn Clock>>,
    random: Option<Arc<dyn SecureRandom>>,
    hasher: Option<Arc<dyn PasswordHasher>>,
    audit: Option<Arc<dyn AuditSink>>,
    keys: Option<KeySet>,
    transport: Option<Arc<dyn Transport>>,
    mailer: Option<Arc<dyn crate::mail::Mailer>>,
    breached: Option<Arc<dyn crate::account::BreachedPasswords>>,
    human_check: Option<Arc<dyn crate::account::HumanCheck>>,
}

impl EngineBuilder {
    /// Uses one store for identity data (read, and written by registration), logins,
    /// single-use values and security requests.
    pub fn store<S>(mut self, store: S) -> Self
    where
        S: DirectoryAdmin + LoginStore + OnceStore + RequestStore + 'static,
    {
        let store = Arc::new(store);
        self.directory = Some(store.clone());
        self.directory_admin = Some(store.clone());
        self.logins = Some(store.clone());
        self.once = Some(store.clone());
        self.requests = Some(store);
        self
    }

    /// Uses this store for security requests (reset, invitation and verification links,
    /// mailed codes).
    pub fn request_store(mut self, requests: Arc<dyn RequestStore>) -> Self {
        self.requests = Some(requests);
        self
    }

    /// Uses this identity directory.
    pub fn directory(mut self, directory: Arc<dyn Directory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// Lets registration create projects, clients and memberships through `admin` (set by
    /// [`store`](Self::store); without it `/auth/newproject` and `/auth/newpatient` refuse).
    pub fn directory_admin(mut self, admin: Arc<dyn DirectoryAdmin>) -> Self {
        self.directory_admin = Some(admin);
        self
    }

    /// Uses this login store.
    pub fn login_store(mut self, logins: Arc<dyn LoginStore>) -> Self {
        self.logins = Some(logins);
        self
    }

    /// Uses this single-use store.
    pub fn once_store(mut self, once: Arc<dyn OnceStore>) -> Self {
        self.once = Some(once);
        self
    }

    /// Uses this configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Uses this clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Uses this random source.
    pub fn random(mut self, random: Arc<dyn SecureRandom>) -> Self {
        self.random = Some(random);
        self
    }

    /// Uses this password hasher instead of the built-in argon2id pool.
    pub fn password_hasher(mut self, hasher: Arc<dyn PasswordHasher>) -> Self {
        self.hasher = Some(hasher);
        self
    }

    /// Sends audit events here.
    pub fn audit(mut self, audit: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Signs with these keys. Without it the engine generates an ES256 key at start-up —
    /// fine for a demo or a single process, but tokens then die with the process: production
    /// loads persisted keys ([`SigningKey::from_pkcs8_pem`], [`SigningKey::from_private_jwk`]).
    pub fn keys(mut self, keys: KeySet) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Uses this transport for outbound HTTP (client JWKS, external providers).
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Sends account mail (reset links, invitations, codes) through this mailer. Without
    /// one the engine uses [`NoMailer`](crate::mail::NoMailer), which refuses to send.
    pub fn mailer(mut self, mailer: Arc<dyn crate::mail::Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Screens new passwords with this check instead of the bundled list of common
    /// passwords ([`CommonPasswords`](crate::account::CommonPasswords)).
    pub fn breached_passwords(mut self, check: Arc<dyn crate::account::BreachedPasswords>) -> Self {
        self.breached = Some(check);
        self
    }

    /// Asks this check for a human at registration and password reset.
    pub fn human_check(mut self, check: Arc<dyn crate::account::HumanCheck>) -> Self {
        self.human_check = Some(check);
        self
    }

    /// Validates the configuration and builds the engine. Installs the JOSE crypto provider
    /// (see [`crate::crypto`]).
    pub fn build(self) -> Result<Engine, BuildError> {
        crate::crypto::install_provider();
        let config = self.config.unwrap_or_default();
        config.validate()?;
        let random: Arc<dyn SecureRandom> = self.random.unwrap_or_else(|| Arc::new(OsRandom));
        let hasher: Arc<dyn PasswordHasher> = match self.hasher {
            Some(hasher) => hasher,
            None => Arc::new(Argon2Hasher::new(config.argon2.clone(), random.clone())?),
        };
        let default_store = MemoryStore::new();
        let directory_admin = match (&self.directory, self.directory_admin) {
            (_, Some(admin)) => Some(admin),
            (None, None) => Some(Arc::new(default_store.clone()) as Arc<dyn DirectoryAdmin>),
            (Some(_), None) => None,
        };
        let directory = self
            .directory
            .unwrap_or_else(|| Arc::new(default_store.clone()));
        let logins = self
            .logins
            .unwrap_or_else(|| Arc::new(default_store.clone()));
        let once = self.once.unwrap_or_else(|| Arc::new(default_store.clone()));
        let requests = self.requests.unwrap_or_else(|| Arc::new(default_store));
        let keys = match self.keys {
            Some(keys) => keys,
            None => KeySet::new(
                SigningKey::generate(SigningAlgorithm::Es256, random.as_ref())
                    .map_err(BuildError::SigningKey)?,
            ),
        };
        let clock: Arc<dyn Clock> = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let transport: Arc<dyn Transport> = self.transport.unwrap_or_else(|| Arc::new(NoTransport));
        let jwks = Arc::new(crate::jose::JwksCache::new(config.oauth.jwks_cache_ttl));
        let clients = ClientAuthenticator::new(
            directory.clone(),
            once.clone(),
            transport.clone(),
            clock.clone(),
            parse_url("oauth.issuer", &config.oauth.issuer_id())?,
            parse_url("the token endpoint", &config.oauth.endpoint("oauth2/token"))?,
            jwks.clone(),
        );
        let sign_in = parse_url("oauth.sign_in_url", &config.oauth.sign_in_url())?;
        let keys = KeyRing::new(keys);
        let verifier = Verifier::new(
            &config.oauth,
            keys.clone(),
            logins.clone(),
            directory.clone(),
            clock.clone(),
        );
        Ok(Engine {
            inner: Arc::new(Inner {
                config,
                directory,
                directory_admin,
                logins,
                once,
                requests,
                clock,
                random,
                hasher,
                audit: self.audit.unwrap_or_else(|| Arc::new(NoAudit)),
                keys,
                verifier,
                transport,
                mailer: self
                    .mailer
                    .unwrap_or_else(|| Arc::new(crate::mail::NoMailer)),
                breached: self
                    .breached
                    .unwrap_or_else(|| Arc::new(crate::account::CommonPasswords)),
                human_check: self.human_check,
                clients,
                sign_in,
                jwks,
            }),
        })
    }
}

/// Why [`EngineBuilder::build`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No signing key was configured and none could be generated.
    #[error("cannot generate a signing key: {0}")]
    SigningKey(KeyError),
}

impl From<crate::credential::password::PolicyConfigError> for BuildError {
    fn from(e: crate::credential::password::PolicyConfigError) -> Self {
        BuildError::Config(e.into())
    }
}

fn parse_url(setting: &'static str, text: &str) -> Result<url::Url, ConfigError> {
    url::Url::parse(text).map_err(|error| ConfigError::NotAUrl { setting, error })
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
