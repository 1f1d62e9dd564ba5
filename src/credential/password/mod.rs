//! Passwords: the length policy, normalisation, and argon2id hashing off the async executor.
//!
//! A password goes through two steps before it is hashed or verified:
//!
//! 1. [`PasswordPolicy`] turns the raw text into a [`Password`]: Unicode NFKC normalisation
//!    (NIST 800-63B 5.1.1.2), length counted in code points, and nothing else: no
//!    truncation, no case folding, no space collapsing.
//! 2. A [`PasswordHasher`] ([`Argon2Hasher`] in production) hashes it to an argon2id PHC
//!    string, or verifies it against a stored one with the parameters written in that string.
//!
//! Verification costs the same whatever the outcome: an unknown user (no stored hash), a
//! stored hash that is malformed or over the configured caps, a wrong password and a right
//! one each cost one argon2 computation, so timing does not reveal which accounts exist.
//!
//! The argon2 work runs on a small pool of dedicated threads, never on the caller's thread,
//! and the returned futures work on any executor. The pool has a bounded queue: when it is
//! full a verification fails at once with [`HashError::Busy`] rather than queueing without
//! limit, so a login flood cannot exhaust memory.

mod hasher;
mod policy;
#[cfg(test)]
mod tests;

pub use hasher::{
    Argon2Config, Argon2Hasher, HashError, OUTPUT_LEN, PasswordHasher, SALT_LEN, StoredHashProblem,
    Verification,
};
pub use policy::{Password, PasswordPolicy, PasswordPolicyError};

/// A credential setting (password policy or argon2 parameters) is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyConfigError {
    /// `min_chars` is below [`PasswordPolicy::MIN_CHARS_FLOOR`].
    #[error(
        "invalid credential configuration: password min_chars is {found}, but must be at least {floor}"
    )]
    MinCharsTooLow {
        /// The configured value.
        found: usize,
        /// The floor.
        floor: usize,
    },
    /// `max_chars` is below [`PasswordPolicy::MAX_CHARS_FLOOR`].
    #[error(
        "invalid credential configuration: password max_chars is {found}, but must be at least {floor}"
    )]
    MaxCharsTooLow {
        /// The configured value.
        found: usize,
        /// The floor.
        floor: usize,
    },
    /// `max_chars` is below `min_chars`.
    #[error(
        "invalid credential configuration: password max_chars ({max}) is below min_chars ({min})"
    )]
    MaxBelowMin {
        /// `max_chars`.
        max: usize,
        /// `min_chars`.
        min: usize,
    },
    /// argon2 refuses `m_kib`, `t` and `p` together.
    #[error(
        "invalid credential configuration: argon2 parameters m={m_kib}, t={t}, p={p} are invalid: {reason}"
    )]
    Argon2Params {
        /// Memory cost.
        m_kib: u32,
        /// Iterations.
        t: u32,
        /// Lanes.
        p: u32,
        /// argon2's reason.
        reason: argon2::Error,
    },
    /// A cost parameter is above its cap for stored hashes.
    #[error(
        "invalid credential configuration: argon2 {name} ({value}) is above {cap_name} ({cap})"
    )]
    AboveCap {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: u32,
        /// The cap's name.
        cap_name: &'static str,
        /// The cap.
        cap: u32,
    },
    /// `max_concurrent` or `max_queued` is zero.
    #[error("invalid credential configuration: argon2 {0} must be at least 1")]
    EmptyPool(&'static str),
    /// argon2 cannot hash with parameters it accepted.
    #[error("invalid credential configuration: argon2 cannot hash with these parameters: {0}")]
    Argon2Hash(argon2::password_hash::Error),
    /// The hashing threads could not be started.
    #[error("invalid credential configuration: cannot start password hashing threads ({0:?})")]
    Threads(std::io::ErrorKind),
}
