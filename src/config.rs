//! Engine configuration: lifetimes, password policy, argon2 parameters, second-factor limits
//! and throttling.

use time::Duration;
use url::Url;

use crate::credential::password::{Argon2Config, PasswordPolicy, PolicyConfigError};

/// The longest an authorization code may live (RFC 9700 / ASVS L3 / SMART: about a minute).
pub const MAX_CODE_LIFETIME: Duration = Duration::seconds(60);

/// Everything the engine can be tuned with. `Config::default()` is a secure starting point.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// How long a login may take from the password to the authorization code (default 15 min).
    pub login_lifetime: Duration,
    /// How long an authorization code lives (default and maximum 60 s).
    pub code_lifetime: Duration,
    /// Password length rules.
    pub password_policy: PasswordPolicy,
    /// Argon2id parameters, caps and hashing concurrency.
    pub argon2: Argon2Config,
    /// Second-factor settings.
    pub totp: TotpConfig,
    /// Password throttling.
    pub throttle: ThrottleConfig,
    /// Where external identity providers send the browser back to (our `/auth/external`;
    /// register it at the provider). Needed only when a client or domain uses an external
    /// provider. The HTTP layer's start route, which `/auth/method` names, is this URL with
    /// `/start` appended to its path.
    pub external_callback_url: Option<Url>,
    /// The OAuth 2.0 / OpenID Connect side: issuer, endpoints, token lifetimes.
    pub oauth: OAuthConfig,
    /// Google sign-in.
    pub google: GoogleConfig,
    /// Account self-service: registration, password resets, mailed links.
    pub accounts: AccountsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            login_lifetime: Duration::minutes(15),
            code_lifetime: MAX_CODE_LIFETIME,
            password_policy: PasswordPolicy::default(),
            argon2: Argon2Config::default(),
            totp: TotpConfig::default(),
            throttle: ThrottleConfig::default(),
            external_callback_url: None,
            oauth: OAuthConfig::default(),
            google: GoogleConfig::default(),
            accounts: AccountsConfig::default(),
        }
    }
}

impl Config {
    /// Checks the configuration for values that would weaken security or cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.code_lifetime <= Duration::ZERO || self.code_lifetime > MAX_CODE_LIFETIME {
            return Err(setting("code_lifetime", "must be between 1 and 60 seconds"));
        }
        if self.login_lifetime < Duration::minutes(1) || self.login_lifetime > Duration::hours(24) {
            return Err(setting(
                "login_lifetime",
                "must be between 1 minute and 24 hours",
            ));
        }
        self.password_policy.validate()?;
        self.argon2.validate()?;
        self.totp.validate()?;
        self.throttle.validate()?;
        self.oauth.validate()?;
        Ok(())
    }
}

/// The authorization server's identity, endpoints and token lifetimes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OAuthConfig {
    /// The issuer identifier (`iss` of every token, and the base of the endpoint URLs). Must
    /// be an `https` URL, except for loopback addresses during development, with no query or
    /// fragment (default `http://127.0.0.1:8103`, for the demo).
    pub issuer: String,
    /// The audience of access tokens: the FHIR server's base URL (SMART `aud`). Default:
    /// `<issuer>/fhir/R4`.
    pub audience: Option<String>,
    /// Where the authorization endpoint sends a browser that must sign in (Medplum's app
    /// `oauth` page). Default: `<issuer>/signin`.
    pub sign_in_url: Option<Url>,
    /// Access token lifetime (default 1 hour; a client may ask for less).
    pub access_token_lifetime: Duration,
    /// ID token lifetime (default 1 hour).
    pub id_token_lifetime: Duration,
    /// Absolute lifetime of a refresh-token family: rotation never extends it (default 14
    /// days).
    pub refresh_lifetime: Duration,
    /// How long a signed-in browser session can be reused for single sign-on (default 1 hour).
    pub sso_lifetime: Duration,
    /// Clock leeway when checking token times (default 60 s).
    pub leeway: Duration,
    /// How long the resource-server verifier may trust a cached "login live, membership
    /// active, client active" answer. `None` (the default) checks the store on every call;
    /// `Some(d)` means a revocation or deactivation takes effect within `d`.
    pub verify_cache: Option<Duration>,
    /// How long a client's JWKS fetched from its `jwks_uri` is reused (default 5 minutes).
    pub jwks_cache_ttl: Duration,
    /// `smart_style_url` in token responses, if any.
    pub smart_style_url: Option<String>,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8103".to_owned(),
            audience: None,
            sign_in_url: None,
            access_token_lifetime: Duration::hours(1),
            id_token_lifetime: Duration::hours(1),
            refresh_lifetime: Duration::days(14),
            sso_lifetime: Duration::hours(1),
            leeway: Duration::seconds(60),
            verify_cache: None,
            jwks_cache_ttl: Duration::minutes(5),
            smart_style_url: None,
        }
    }
}

impl OAuthConfig {
    /// The issuer as a string without a trailing slash (the `iss` claim).
    pub fn issuer_id(&self) -> String {
        self.issuer.trim_end_matches('/').to_owned()
    }

    /// `<issuer>/<path>`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}/{}", self.issuer_id(), path.trim_start_matches('/'))
    }

    /// The audience of access tokens.
    pub fn audience(&self) -> String {
        self.audience
            .clone()
            .unwrap_or_else(|| self.endpoint("fhir/R4"))
    }

    /// The sign-in page.
    pub fn sign_in_url(&self) -> String {
        self.sign_in_url
            .as_ref()
            .map(|u| u.to_string())
            .unwrap_or_else(|| self.endpoint("signin"))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let issuer = Url::parse(&self.issuer).map_err(|error| ConfigError::NotAUrl {
            setting: "oauth.issuer",
            error,
        })?;
        let loopback = match issuer.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        if issuer.scheme() != "https" && !(issuer.scheme() == "http" && loopback) {
            return Err(setting(
                "oauth.issuer",
                "must be https (http only on a loopback address)",
            ));
        }
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(setting("oauth.issuer", "must not have a query or fragment"));
        }
        for (name, d) in [
            ("oauth.access_token_lifetime", self.access_token_lifetime),
            ("oauth.id_token_lifetime", self.id_token_lifetime),
            ("oauth.refresh_lifetime", self.refresh_lifetime),
            ("oauth.sso_lifetime", self.sso_lifetime),
            ("oauth.jwks_cache_ttl", self.jwks_cache_ttl),
        ] {
            if d <= Duration::ZERO {
                return Err(setting(name, "must be positive"));
            }
        }
        if let Some(bound) = self.verify_cache
            && (bound <= Duration::ZERO || bound > MAX_VERIFY_CACHE)
        {
            return Err(setting(
                "oauth.verify_cache",
                "must be positive and at most 900 seconds (MAX_VERIFY_CACHE: it bounds how long \
                 a revoked grant's tokens keep working)",
            ));
        }
        if self.leeway < Duration::ZERO || self.leeway > Duration::minutes(5) {
            return Err(setting("oauth.leeway", "must be between 0 and 5 minutes"));
        }
        Ok(())
    }
}

/// TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps) settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TotpConfig {
    /// Steps of clock skew accepted on each side: 1 (RFC 6238's recommendation) or 0.
    pub skew: u8,
    /// The issuer label shown in authenticator apps.
    pub issuer: String,
    /// Code attempts allowed per login (default 5).
    pub attempts_per_login: u32,
    /// Code attempts allowed per user across all logins within the window (default 10).
    pub attempts_per_user: u32,
    /// The attempt window (default 15 minutes).
    pub attempts_window: Duration,
    /// Code attempts allowed per user per day, across windows (default 30): the per-window
    /// limit alone would reset into about a thousand guesses a day.
    pub attempts_per_user_per_day: u32,
}

impl Default for TotpConfig {
    fn default() -> Self {
        Self {
            skew: 1,
            issuer: "fhirgate".to_owned(),
            attempts_per_login: 5,
            attempts_per_user: 10,
            attempts_window: Duration::minutes(15),
            attempts_per_user_per_day: 30,
        }
    }
}

impl TotpConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.skew > 1 {
            return Err(setting("totp.skew", "must be 0 or 1"));
        }
        if self.issuer.is_empty() || self.issuer.contains(':') {
            return Err(setting(
                "totp.issuer",
                "must be non-empty and contain no ':'",
            ));
        }
        if self.attempts_per_login == 0
            || self.attempts_per_user == 0
            || self.attempts_per_user_per_day == 0
        {
            return Err(setting(
                "totp.attempts_per_login, attempts_per_user and attempts_per_user_per_day",
                "must be at least 1",
            ));
        }
        if self.attempts_window <= Duration::ZERO {
            return Err(setting("totp.attempts_window", "must be positive"));
        }
        Ok(())
    }
}

/// Password throttling, counted in the store so it holds across server instances (see
/// [`crate::credential::throttle`] for how the three limits work together).
///
/// The defaults follow NIST 800-63B §5.2.2 without enabling malicious lockout: a source gets
/// 10 attempts per account per 15 minutes; an account's failures beyond 10 since its last
/// success slow each failing address down exponentially (1 s doubling, at most 5 minutes),
/// never the owner's first attempt from an address of their own; and one address may try 160
/// passwords a minute across all accounts (Medplum's auth rate limit).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ThrottleConfig {
    /// Password attempts per account and client address per [`window`](Self::window)
    /// (default 10).
    pub attempts_per_account_source: u32,
    /// The window of the per-account-and-address limit (default 15 minutes).
    pub window: Duration,
    /// Failures of an account (since its last success, from anywhere) before back-off starts
    /// (default 10).
    pub backoff_after: u32,
    /// The first back-off delay; it doubles with each further failure (default 1 s).
    pub backoff_base: Duration,
    /// The longest back-off delay (default 5 minutes).
    pub backoff_max: Duration,
    /// Password attempts per client address across all accounts per
    /// [`address_window`](Self::address_window); `None` switches the limit off (default
    /// 160).
    pub attempts_per_address: Option<u32>,
    /// The window of the per-address limit (default 1 minute).
    pub address_window: Duration,
    /// External sign-ins a client address may start per
    /// [`address_window`](Self::address_window) (each stores a login for a few minutes
    /// before anyone has authenticated); `None` switches the limit off (default 30).
    pub external_starts_per_address: Option<u32>,
    /// Requests a client address may make to each group of account routes (sign-in,
    /// registration, password reset, second factor; see
    /// [`RouteGroup`](crate::credential::throttle::RouteGroup)) per
    /// [`address_window`](Self::address_window), counted before any other work; `None`
    /// switches the limit off (default 160, Medplum's auth rate limit).
    pub requests_per_address_per_group: Option<u32>,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            attempts_per_account_source: 10,
            window: Duration::minutes(15),
            backoff_after: 10,
            backoff_base: Duration::seconds(1),
            backoff_max: Duration::minutes(5),
            attempts_per_address: Some(160),
            address_window: Duration::minutes(1),
            external_starts_per_address: Some(30),
            requests_per_address_per_group: Some(160),
        }
    }
}

impl ThrottleConfig {
    /// No throttling at all: for benchmarks and load tests, never for a server.
    pub fn off() -> Self {
        Self {
            attempts_per_account_source: u32::MAX,
            backoff_after: u32::MAX,
            attempts_per_address: None,
            external_starts_per_address: None,
            requests_per_address_per_group: None,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.attempts_per_account_source == 0
            || self.attempts_per_address == Some(0)
            || self.external_starts_per_address == Some(0)
            || self.requests_per_address_per_group == Some(0)
        {
            return Err(setting(
                "throttle.attempts_per_account_source, attempts_per_address, \
                 external_starts_per_address and requests_per_address_per_group",
                "must be at least 1",
            ));
        }
        if self.window <= Duration::ZERO || self.address_window <= Duration::ZERO {
            return Err(setting(
                "throttle.window and address_window",
                "must be positive",
            ));
        }
        if self.backoff_base <= Duration::ZERO || self.backoff_max < self.backoff_base {
            return Err(setting(
                "throttle.backoff_base",
                "must be positive and at most backoff_max",
            ));
        }
        Ok(())
    }
}

/// Account self-service: where mailed links point, how mail is branded, whether anyone may
/// register.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AccountsConfig {
    /// The sign-in application's base URL: mailed links are `<base>setpassword/<id>/<secret>`
    /// and `<base>verifyemail/<id>/<secret>` (Medplum's `appBaseUrl`). Default: the issuer
    /// with a trailing slash.
    pub app_base_url: Option<Url>,
    /// The name mail to server-scoped accounts is branded with (project-scoped accounts get
    /// their project's name). Default "Sign-in".
    pub product_name: String,
    /// Whether new users may register themselves (`/auth/newuser`); a project can still
    /// refuse on its own. Default `true`, as Medplum's `registerEnabled`.
    pub registration_enabled: bool,
    /// Sign-in codes mailed to one account per 15 minutes (default 5): bounds the mail an
    /// attacker holding the password can make the server send.
    pub codes_per_user: u32,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            app_base_url: None,
            product_name: "Sign-in".to_owned(),
            registration_enabled: true,
            codes_per_user: 5,
        }
    }
}

impl AccountsConfig {
    /// `<app base URL><path>`, the issuer standing in for an unset base.
    pub fn link(&self, oauth: &OAuthConfig, path: &str) -> String {
        let base = match &self.app_base_url {
            Some(url) => url.to_string(),
            None => format!("{}/", oauth.issuer_id()),
        };
        format!(
            "{}/{}",
            base.trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }
}

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting has a value outside what it allows.
    #[error("invalid configuration: {setting} {requirement}")]
    Setting {
        /// The setting, as a path in [`Config`] (`oauth.leeway`).
        setting: &'static str,
        /// What it must be.
        requirement: &'static str,
    },
    /// A URL the engine derives or is given does not parse.
    #[error("invalid configuration: {setting} is not a URL: {error}")]
    NotAUrl {
        /// The setting or the derived URL.
        setting: &'static str,
        /// Why it does not parse.
        error: url::ParseError,
    },
    /// The password policy or the argon2 parameters cannot be used.
    #[error(transparent)]
    Credentials(#[from] PolicyConfigError),
}

fn setting(setting: &'static str, requirement: &'static str) -> ConfigError {
    ConfigError::Setting {
        setting,
        requirement,
    }
}

/// The longest staleness bound [`OAuthConfig::verify_cache`] accepts.
pub const MAX_VERIFY_CACHE: Duration = Duration::minutes(15);

/// Google sign-in settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GoogleConfig {
    /// The OAuth client ids (of Google Cloud projects) whose ID tokens are accepted. Empty:
    /// Google sign-in is off.
    pub client_ids: Vec<String>,
    /// Google's JWKS.
    pub jwks_uri: String,
    /// Issuers Google uses.
    pub issuers: Vec<String>,
    /// Create a server-scoped account for a verified Google email that has none. Off by
    /// default: accounts are normally created by invitation.
    pub create_users: bool,
}

impl Default for GoogleConfig {
    fn default() -> Self {
        Self {
            client_ids: Vec::new(),
            jwks_uri: "https://www.googleapis.com/oauth2/v3/certs".to_owned(),
            issuers: vec![
                "https://accounts.google.com".to_owned(),
                "accounts.google.com".to_owned(),
            ],
            create_users: false,
        }
    }
}

#[cfg(test)]
mod verify_cache_text {
    #[test]
    fn the_refusal_names_the_bound_in_force() {
        assert_eq!(super::MAX_VERIFY_CACHE.whole_seconds(), 900);
    }
}
