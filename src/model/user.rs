//! Users and their credentials at rest.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{ProjectId, UserId};

/// A person who can sign in.
///
/// A user is *server-scoped* when `project` is `None` (one account that can join many projects)
/// or *project-scoped* when it names a project (it exists only there and is found only when a
/// login names that project). The same email may exist once server-scoped and once per project.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Identifier.
    pub id: UserId,
    /// Sign-in email, stored normalised (trimmed, lower-cased).
    pub email: String,
    /// Whether the email address was proven to belong to the user.
    #[serde(default)]
    pub email_verified: bool,
    /// Given name.
    #[serde(default)]
    pub first_name: String,
    /// Family name.
    #[serde(default)]
    pub last_name: String,
    /// The project a project-scoped user belongs to; `None` for server-scoped users.
    #[serde(default)]
    pub project: Option<ProjectId>,
    /// Argon2id PHC string, absent for accounts that sign in only through an external provider.
    #[serde(default)]
    pub password_hash: Option<PasswordHash>,
    /// TOTP second factor.
    #[serde(default)]
    pub totp: TotpState,
    /// The user must enrol a second factor before a password login completes.
    #[serde(default)]
    pub mfa_required: bool,
    /// Mailed one-time codes are a second factor of this account (enrolled by proving a
    /// mailed code).
    #[serde(default)]
    pub email_mfa: bool,
    /// Optimistic-concurrency version, bumped by every stored update.
    #[serde(default)]
    pub version: u64,
}

impl User {
    /// A server-scoped user with no password and no second factor.
    pub fn new(id: UserId, email: &str) -> Self {
        Self {
            id,
            email: normalize_email(email),
            email_verified: false,
            first_name: String::new(),
            last_name: String::new(),
            project: None,
            password_hash: None,
            totp: TotpState::None,
            mfa_required: false,
            email_mfa: false,
            version: 0,
        }
    }

    /// Whether the user has a confirmed TOTP factor.
    pub fn mfa_enrolled(&self) -> bool {
        matches!(self.totp, TotpState::Enrolled { .. })
    }

    /// Whether any second factor (TOTP, mailed codes) guards the account.
    pub fn has_second_factor(&self) -> bool {
        self.mfa_enrolled() || self.email_mfa
    }

    /// The second factors the account can pass, as named on the wire (`mfaMethods`):
    /// `totp`, `email`.
    pub fn second_factor_methods(&self) -> Vec<&'static str> {
        let mut methods = Vec::new();
        if self.mfa_enrolled() {
            methods.push("totp");
        }
        if self.email_mfa {
            methods.push("email");
        }
        methods
    }
}

/// Normalises an email for storage and lookup: trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// An argon2id (or other PHC) password hash string. `Debug` is redacted: a hash can be
/// attacked offline, so it stays out of logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string.
    pub fn new(phc: impl Into<String>) -> Self {
        Self(phc.into())
    }

    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// A TOTP shared secret (raw bytes). Redacted from `Debug`, wiped on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// Wraps raw secret bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The raw secret bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// Where a user stands with the TOTP second factor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TotpState {
    /// No factor.
    #[default]
    None,
    /// A secret was issued (its `otpauth://` URI shown once) but no code has confirmed it yet.
    Pending {
        /// The issued secret.
        secret: TotpSecret,
    },
    /// Confirmed: every password login must pass it.
    Enrolled {
        /// The confirmed secret.
        secret: TotpSecret,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let mut u = User::new(UserId::new("u1"), "  Alice@Example.ORG ");
        assert_eq!(u.email, "alice@example.org");
        u.password_hash = Some(PasswordHash::new(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
        ));
        u.totp = TotpState::Enrolled {
            secret: TotpSecret::from_bytes(b"12345678901234567890".to_vec()),
        };
        let dbg = format!("{u:?}");
        assert!(!dbg.contains("argon2id"));
        assert!(!dbg.contains("49, 50"));
        assert!(u.mfa_enrolled());
    }
}
