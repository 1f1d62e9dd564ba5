//! Randomness, handed in rather than ambient.
//!
//! Every secret the crate draws (login handles, codes, salts, TOTP seeds, IdP `state`) comes
//! from a [`SecureRandom`] held by the engine. Production uses [`OsRandom`]; tests may inject a
//! deterministic source to make runs repeatable.

use std::fmt;

/// A cryptographically secure random source.
pub trait SecureRandom: Send + Sync {
    /// Fills `dest` with random bytes.
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError>;
}

/// The operating system's CSPRNG (through `getrandom`).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl SecureRandom for OsRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        getrandom::fill(dest).map_err(|e| RandomError(e.to_string()))
    }
}

/// The random source failed (the operating system refused to provide entropy).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("random source failed: {0}")]
pub struct RandomError(pub String);

impl fmt::Debug for dyn SecureRandom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecureRandom")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_random_fills_buffers() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        OsRandom.fill(&mut a).unwrap();
        OsRandom.fill(&mut b).unwrap();
        assert_ne!(a, b);
    }
}
