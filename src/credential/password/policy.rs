//! The password policy: NFKC normalisation and length in code points, nothing else.

use std::fmt;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::PolicyConfigError;

/// Canonical decompositions are at most this many code points long (checked against the
/// Unicode data in a test), so NFKC never shortens text by more than this factor. That lets
/// an over-long input be refused from its raw length, before any normalisation work.
pub(super) const MAX_COMPOSITION_RATIO: usize = 4;

/// Largest UTF-8 encoding of one code point.
pub(super) const MAX_UTF8_BYTES: usize = 4;

/// Length rules for passwords, counted in Unicode code points after NFKC normalisation.
///
/// There are no composition rules (no required digits or symbols), and the text is never
/// truncated, case-folded or space-collapsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct PasswordPolicy {
    /// Fewest code points a new password may have. Default 8; never below 8.
    pub min_chars: usize,
    /// Most code points a password may have. Default 128; never below 128.
    pub max_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 8,
            max_chars: 128,
        }
    }
}

impl PasswordPolicy {
    /// Lowest allowed `min_chars` (NIST 800-63B 5.1.1.2).
    pub const MIN_CHARS_FLOOR: usize = 8;
    /// Lowest allowed `max_chars` (ASVS 4.0.3 2.1.2).
    pub const MAX_CHARS_FLOOR: usize = 128;

    /// Checks the policy itself: `min_chars >= 8`, `max_chars >= 128`, `max_chars >= min_chars`.
    pub fn validate(&self) -> Result<(), PolicyConfigError> {
        if self.min_chars < Self::MIN_CHARS_FLOOR {
            return Err(PolicyConfigError::MinCharsTooLow {
                found: self.min_chars,
                floor: Self::MIN_CHARS_FLOOR,
            });
        }
        if self.max_chars < Self::MAX_CHARS_FLOOR {
            return Err(PolicyConfigError::MaxCharsTooLow {
                found: self.max_chars,
                floor: Self::MAX_CHARS_FLOOR,
            });
        }
        if self.max_chars < self.min_chars {
            return Err(PolicyConfigError::MaxBelowMin {
                max: self.max_chars,
                min: self.min_chars,
            });
        }
        Ok(())
    }

    /// Accepts a password being set (registration, change, reset): NFKC-normalised, then
    /// `min_chars..=max_chars` code points long.
    ///
    /// An empty password is [`PasswordPolicyError::TooShort`], which tells the user the rule.
    /// Other checks a new password needs (blocklists, breached passwords) are not here.
    pub fn for_new_password(&self, raw: &str) -> Result<Password, PasswordPolicyError> {
        let password = self.normalize_bounded(raw)?;
        if password.0.chars().count() < self.min_chars {
            return Err(PasswordPolicyError::TooShort {
                min: self.min_chars,
            });
        }
        Ok(password)
    }

    /// Accepts a password presented at sign-in. Only an empty or over-long password is
    /// refused here; anything else goes on to verification, so an account whose password
    /// predates a stricter minimum can still sign in.
    ///
    /// An over-long input is refused from its raw length before normalisation, so a huge
    /// input costs almost nothing. The raw bound allows for NFKC composition (a password set
    /// with precomposed characters and typed in decomposed form is up to four times longer
    /// raw), and the normalised length is then held to `max_chars`, so every password
    /// [`for_new_password`](Self::for_new_password) accepted is accepted here in any
    /// equivalent form.
    pub fn for_login(&self, raw: &str) -> Result<Password, PasswordPolicyError> {
        if raw.is_empty() {
            // Medplum's validator text for a missing password at sign-in.
            return Err(PasswordPolicyError::TooShort {
                min: self.min_chars,
            });
        }
        self.normalize_bounded(raw)
    }

    /// NFKC with the `max_chars` bound, refusing over-long raw input before normalising it.
    fn normalize_bounded(&self, raw: &str) -> Result<Password, PasswordPolicyError> {
        let too_long = PasswordPolicyError::TooLong {
            max: self.max_chars,
        };
        let raw_char_bound = self.max_chars.saturating_mul(MAX_COMPOSITION_RATIO);
        // O(1) on the byte length first, then a bounded scan of the code points.
        if raw.len() > raw_char_bound.saturating_mul(MAX_UTF8_BYTES)
            || raw.chars().count() > raw_char_bound
        {
            return Err(too_long);
        }
        let password = Password(raw.nfkc().collect());
        if password.0.chars().count() > self.max_chars {
            return Err(too_long);
        }
        Ok(password)
    }
}

/// A password that passed a [`PasswordPolicy`]: NFKC-normalised text.
///
/// `Debug` never shows it and the memory is wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Password(String);

impl Password {
    /// The UTF-8 bytes of the normalised password (what gets hashed).
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Why a password was refused by a [`PasswordPolicy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordPolicyError {
    /// No password was given where one is required outside the policy (the policy itself
    /// answers an empty sign-in password with [`TooShort`](Self::TooShort), Medplum's text).
    #[error("Invalid password")]
    Empty,
    /// Fewer code points than the policy's minimum.
    #[error("Password must be at least {min} characters")]
    TooShort {
        /// The policy's minimum.
        min: usize,
    },
    /// More code points than the policy's maximum.
    #[error("Password must be no more than {max} characters")]
    TooLong {
        /// The policy's maximum.
        max: usize,
    },
}
