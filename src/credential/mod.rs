//! Credentials: password policy and argon2id hashing, and TOTP second factors.
//!
//! - [`password`]: [`PasswordPolicy`] (NFKC, length in code points), [`Argon2Hasher`]
//!   (argon2id on a bounded pool of worker threads, constant-cost verification, rehash
//!   detection, caps on stored parameters).
//! - [`totp`]: RFC 6238 secrets, `otpauth://` URIs and code checks that return the matched
//!   time step for the caller's replay guard.
//! - [`throttle`]: password attempt limits per address, per account and address, and
//!   per-account back-off.
//! - [`qr`]: QR codes of enrolment URIs as PNG data URLs (Medplum's `enrollQrCode`).

pub mod email_code;
pub mod password;
mod pool;
pub mod qr;
pub mod throttle;
pub mod totp;

pub use password::{
    Argon2Config, Argon2Hasher, HashError, Password, PasswordHasher, PasswordPolicy,
    PasswordPolicyError, PolicyConfigError, StoredHashProblem, Verification,
};
pub use totp::TotpError;
