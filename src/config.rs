//! Engine configuration: lifetimes, password policy, argon2 parameters, second-factor limits
//! and throttling.

use time::Duration;
use url::Url;

use crate::credential::password::{Argon2Config, PasswordPolicy};

/// The longest an authorization code may live (RFC 9700 / ASVS L3 / SMART: about a minute).
pub const MAX_CODE_LIFETIME: Duration = Duration::seconds(60);

/// Everything the engine can be tuned with. `Config::default()` is a secure starting point.
#[derive(Debug, Clone)]
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
    /// Where external identity providers send the browser back to (our `/auth/external`).
    /// Needed only when a client or domain uses an external provider.
    pub external_callback_url: Option<Url>,
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
        }
    }
}

impl Config {
    /// Checks the configuration for values that would weaken security or cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.code_lifetime <= Duration::ZERO || self.code_lifetime > MAX_CODE_LIFETIME {
            return Err(ConfigError(
                "code_lifetime must be between 1 and 60 seconds".to_owned(),
            ));
        }
        if self.login_lifetime < Duration::minutes(1) || self.login_lifetime > Duration::hours(24) {
            return Err(ConfigError(
                "login_lifetime must be between 1 minute and 24 hours".to_owned(),
            ));
        }
        self.password_policy
            .validate()
            .map_err(|e| ConfigError(e.to_string()))?;
        self.argon2
            .validate()
            .map_err(|e| ConfigError(e.to_string()))?;
        self.totp.validate()?;
        self.throttle.validate()?;
        Ok(())
    }
}

/// TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps) settings.
#[derive(Debug, Clone)]
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
}

impl Default for TotpConfig {
    fn default() -> Self {
        Self {
            skew: 1,
            issuer: "fhirgate".to_owned(),
            attempts_per_login: 5,
            attempts_per_user: 10,
            attempts_window: Duration::minutes(15),
        }
    }
}

impl TotpConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.skew > 1 {
            return Err(ConfigError("totp.skew must be 0 or 1".to_owned()));
        }
        if self.issuer.is_empty() || self.issuer.contains(':') {
            return Err(ConfigError(
                "totp.issuer must be non-empty and contain no ':'".to_owned(),
            ));
        }
        if self.attempts_per_login == 0 || self.attempts_per_user == 0 {
            return Err(ConfigError(
                "totp attempt limits must be at least 1".to_owned(),
            ));
        }
        if self.attempts_window <= Duration::ZERO {
            return Err(ConfigError(
                "totp.attempts_window must be positive".to_owned(),
            ));
        }
        Ok(())
    }
}

/// Failed-password throttling, counted in the store so it holds across server instances.
///
/// Attempts are counted per account (the email within the login's scope, whether or not the
/// account exists, so throttling reveals nothing) before the hash is checked, and forgotten
/// after a success. The window ends by itself: throttling slows an attacker down but never
/// locks the owner out for longer than one window.
#[derive(Debug, Clone)]
pub struct ThrottleConfig {
    /// Password attempts per account per window (default 100, NIST 800-63B §5.2.2).
    pub attempts_per_account: u32,
    /// Password attempts per client address per window; `None` (the default) disables the
    /// per-address limit, which would otherwise throttle whole hospitals behind one NAT.
    pub attempts_per_address: Option<u32>,
    /// The window (default 1 hour).
    pub window: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            attempts_per_account: 100,
            attempts_per_address: None,
            window: Duration::hours(1),
        }
    }
}

impl ThrottleConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.attempts_per_account == 0 || self.attempts_per_address == Some(0) {
            return Err(ConfigError("throttle limits must be at least 1".to_owned()));
        }
        if self.window <= Duration::ZERO {
            return Err(ConfigError("throttle.window must be positive".to_owned()));
        }
        Ok(())
    }
}

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);
