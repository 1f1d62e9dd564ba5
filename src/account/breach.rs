//! Screening new passwords against passwords attackers try first.

use std::collections::HashSet;
use std::sync::OnceLock;

use async_trait::async_trait;

use crate::credential::password::Password;

/// The bundled list (see `data/README.md`): lower-case, one per line.
const COMMON: &str = include_str!("../../data/common-passwords.txt");

/// Decides whether a new password is known to attackers (NIST 800-63B 5.1.1.2: "passwords
/// obtained from previous breach corpuses" and "commonly-used" values must be refused).
/// The default is [`CommonPasswords`]; a host plugs in its own (a k-anonymity breach
/// service through the [`Transport`](crate::transport::Transport), a larger list) with
/// [`EngineBuilder::breached_passwords`](crate::EngineBuilder::breached_passwords).
#[async_trait]
pub trait BreachedPasswords: Send + Sync {
    /// Whether `password` (already NFKC-normalised by the policy) must be refused.
    async fn is_breached(&self, password: &Password) -> Result<bool, BreachCheckError>;
}

/// A breach check could not answer (its service is down). The password is then refused
/// with a server-side fault rather than accepted unchecked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("password breach check failed: {0}")]
pub struct BreachCheckError(pub String);

/// The bundled list of common passwords (11,611 of at least 8 characters from the 30,000
/// most common; see `data/README.md`), compared case-insensitively.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommonPasswords;

impl CommonPasswords {
    /// How many passwords the bundled list holds.
    pub fn len() -> usize {
        set().len()
    }

    /// Whether `candidate` is on the list (case-insensitively).
    pub fn contains(candidate: &str) -> bool {
        set().contains(candidate.to_lowercase().as_str())
    }
}

fn set() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON.lines().filter(|l| !l.is_empty()).collect())
}

#[async_trait]
impl BreachedPasswords for CommonPasswords {
    async fn is_breached(&self, password: &Password) -> Result<bool, BreachCheckError> {
        Ok(Self::contains(
            std::str::from_utf8(password.as_bytes()).unwrap_or_default(),
        ))
    }
}

/// Accepts every password: for tests and hosts that screen elsewhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBreachCheck;

#[async_trait]
impl BreachedPasswords for NoBreachCheck {
    async fn is_breached(&self, _password: &Password) -> Result<bool, BreachCheckError> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_list_holds_the_common_passwords() {
        assert!(CommonPasswords::len() >= 10_000);
        for p in [
            "password",
            "PassWord1",
            "12345678",
            "iloveyou",
            "qwertyuiop",
        ] {
            assert!(CommonPasswords::contains(p), "{p}");
        }
        assert!(!CommonPasswords::contains("correct horse battery staple"));
        assert!(!CommonPasswords::contains(""));
    }
}
