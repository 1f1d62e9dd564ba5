//! TOTP second factor (RFC 6238): HMAC-SHA1, 6 digits, 30-second steps, `T0 = 0`.
//!
//! This module generates secrets, renders the `otpauth://` enrolment URI and checks codes
//! against an explicit time. It does **not** stop replays: [`verify`] returns the time step
//! that matched, and the caller must accept each step at most once per user, and only steps
//! later than the last one accepted (RFC 6238 §5.2), through its store.
//!
//! Time steps are 64-bit, so codes keep working past 2038 (RFC 6238 §4.2).

pub mod account;

pub use account::{EnrolmentUri, Mfa, MfaStatus};

use totp_rs::{Algorithm, Builder, Totp};

use crate::model::TotpSecret;
use crate::random::{RandomError, SecureRandom};

/// Bytes in a generated secret: 160 bits, the length RFC 4226 §4 recommends and the
/// HMAC-SHA1 output length RFC 6238 §5.1 suggests.
pub const SECRET_LEN: usize = 20;

/// Shortest secret accepted (RFC 4226 §4: at least 128 bits).
pub const MIN_SECRET_LEN: usize = 16;

/// Digits in a code.
pub const DIGITS: usize = 6;

/// Seconds in one time step.
pub const STEP_SECONDS: u64 = 30;

/// Widest accepted window, in steps on each side of the current one (RFC 6238 §5.2).
pub const MAX_SKEW: u8 = 1;

/// A TOTP operation could not be carried out (a configuration or data problem, never a wrong
/// code: a wrong code is `Ok(None)` from [`verify`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TotpError {
    /// The stored secret is shorter than 128 bits.
    #[error("TOTP secret is {len} bytes; at least {MIN_SECRET_LEN} are required")]
    SecretTooShort {
        /// Length of the secret given, in bytes.
        len: usize,
    },
    /// The issuer is empty or contains `:` (which separates issuer and account in the label).
    #[error("TOTP issuer must be non-empty and must not contain ':'")]
    InvalidIssuer,
    /// The account name is empty or contains `:`.
    #[error("TOTP account name must be non-empty and must not contain ':'")]
    InvalidAccount,
    /// The window is wider than [`MAX_SKEW`] steps.
    #[error("TOTP skew of {skew} steps is not allowed; use 0 or 1")]
    SkewTooLarge {
        /// The skew asked for.
        skew: u8,
    },
    /// The TOTP library refused the input.
    #[error("TOTP failed: {0}")]
    Library(String),
}

/// Draws a new [`SECRET_LEN`]-byte secret from `rng`.
pub fn generate_secret(rng: &dyn SecureRandom) -> Result<TotpSecret, RandomError> {
    let mut bytes = vec![0u8; SECRET_LEN];
    if let Err(error) = rng.fill(&mut bytes) {
        zeroize::Zeroize::zeroize(&mut bytes);
        return Err(error);
    }
    Ok(TotpSecret::from_bytes(bytes))
}

/// The `otpauth://totp/Issuer:account?secret=BASE32&issuer=Issuer` URI an authenticator app
/// enrols from (usually shown as a QR code, which the host renders). Issuer and account are
/// percent-encoded; the secret is unpadded base32. SHA1, 6 digits and 30 s are the defaults
/// of the Key URI format, so they are not spelled out.
///
/// The URI contains the secret: show it once, never log it.
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> Result<String, TotpError> {
    if issuer.is_empty() || issuer.contains(':') {
        return Err(TotpError::InvalidIssuer);
    }
    if account.is_empty() || account.contains(':') {
        return Err(TotpError::InvalidAccount);
    }
    let totp = builder(secret)?
        .with_issuer(Some(issuer))
        .with_account_name(account)
        .build()
        .map_err(map_error)?;
    totp.to_url().map_err(map_error)
}

/// Checks `code` at `unix_time` (the server's clock, never the client's), accepting the
/// steps within `skew` (0 or 1) of the current one.
///
/// Returns the matched time step (`unix_time / 30` for the current one), or `None` for a
/// wrong code, including anything that is not exactly six ASCII digits. If more than one
/// step in the window matches, the latest is returned. Every step in the window is computed
/// and compared in constant time, whether or not an earlier one matched.
///
/// The caller must still refuse a step it accepted before (replay).
pub fn verify(
    secret: &TotpSecret,
    code: &str,
    unix_time: u64,
    skew: u8,
) -> Result<Option<u64>, TotpError> {
    if skew > MAX_SKEW {
        return Err(TotpError::SkewTooLarge { skew });
    }
    let totp = build(secret)?;
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let current = unix_time / STEP_SECONDS;
    let first = current.saturating_sub(u64::from(skew));
    let last = current.saturating_add(u64::from(skew));
    let mut matched = None;
    for step in first..=last {
        // A step whose start does not fit in 64 bits cannot be the current time's neighbour
        // in any meaningful sense; skip it rather than wrap around.
        let Some(start) = step.checked_mul(STEP_SECONDS) else {
            continue;
        };
        // `check` with no skew compares this one step, in constant time.
        if totp.check(code, start).is_some() {
            matched = Some(step);
        }
    }
    Ok(matched)
}

/// The code an authenticator app shows at `unix_time` (for examples and tests).
pub fn code_at(secret: &TotpSecret, unix_time: u64) -> Result<String, TotpError> {
    Ok(build(secret)?.generate(unix_time).to_string())
}

fn builder(secret: &TotpSecret) -> Result<Builder, TotpError> {
    let bytes = secret.as_bytes();
    if bytes.len() < MIN_SECRET_LEN {
        return Err(TotpError::SecretTooShort { len: bytes.len() });
    }
    // The library's copy of the secret is wiped on drop (its `zeroize` feature).
    Ok(Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(STEP_SECONDS)
        .with_skew(0)
        .with_secret(bytes))
}

fn build(secret: &TotpSecret) -> Result<Totp, TotpError> {
    builder(secret)?.build().map_err(map_error)
}

fn map_error(error: totp_rs::TotpError) -> TotpError {
    match error {
        totp_rs::TotpError::SecretTooShort { bits } => TotpError::SecretTooShort { len: bits / 8 },
        totp_rs::TotpError::InvalidIssuer { .. } => TotpError::InvalidIssuer,
        totp_rs::TotpError::InvalidAccountName { .. } | totp_rs::TotpError::AccountNameNotSet => {
            TotpError::InvalidAccount
        }
        other => TotpError::Library(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    const SEED_SHA1: &[u8] = b"12345678901234567890";
    const SEED_SHA256: &[u8] = b"12345678901234567890123456789012";
    const SEED_SHA512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(SEED_SHA1.to_vec())
    }

    fn eight_digits(algorithm: Algorithm, seed: &[u8], time: u64) -> String {
        Builder::new()
            .with_algorithm(algorithm)
            .with_digits(8)
            .with_secret(seed)
            .build()
            .unwrap()
            .generate(time)
            .to_string()
    }

    /// RFC 6238 Appendix B: (time, SHA1, SHA256, SHA512), each hash with its own seed.
    const APPENDIX_B: [(u64, &str, &str, &str); 6] = [
        (59, "94287082", "46119246", "90693936"),
        (1111111109, "07081804", "68084774", "25091201"),
        (1111111111, "14050471", "67062674", "99943326"),
        (1234567890, "89005924", "91819424", "93441116"),
        (2000000000, "69279037", "90698825", "38618901"),
        (20000000000, "65353130", "77737706", "47863826"),
    ];

    #[test]
    fn rfc6238_appendix_b_eight_digit_vectors() {
        for (time, sha1, sha256, sha512) in APPENDIX_B {
            assert_eq!(
                eight_digits(Algorithm::SHA1, SEED_SHA1, time),
                sha1,
                "SHA1 t={time}"
            );
            assert_eq!(
                eight_digits(Algorithm::SHA256, SEED_SHA256, time),
                sha256,
                "SHA256 t={time}"
            );
            assert_eq!(
                eight_digits(Algorithm::SHA512, SEED_SHA512, time),
                sha512,
                "SHA512 t={time}"
            );
        }
        // The erratum: the 20-byte seed does not reproduce the SHA256/SHA512 table.
        assert_eq!(eight_digits(Algorithm::SHA256, SEED_SHA1, 59), "32247374");
        assert_eq!(eight_digits(Algorithm::SHA512, SEED_SHA1, 59), "69342147");
    }

    #[test]
    fn six_digit_sha1_table() {
        let table = [
            (59, 1, "287082"),
            (1111111109, 37037036, "081804"),
            (1111111111, 37037037, "050471"),
            (1234567890, 41152263, "005924"),
            (2000000000, 66666666, "279037"),
            (20000000000, 666666666, "353130"),
        ];
        let secret = rfc_secret();
        for (time, step, code) in table {
            assert_eq!(code_at(&secret, time).unwrap(), code, "t={time}");
            assert_eq!(verify(&secret, code, time, 0), Ok(Some(step)), "t={time}");
            assert_eq!(verify(&secret, code, time, 1), Ok(Some(step)), "t={time}");
        }
    }

    #[test]
    fn rfc4226_hotp_vectors_as_time_steps() {
        let hotp = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        let secret = rfc_secret();
        for (count, code) in (0u64..).zip(hotp) {
            assert_eq!(
                code_at(&secret, count * STEP_SECONDS).unwrap(),
                code,
                "count {count}"
            );
        }
    }

    #[test]
    fn window_vectors() {
        let secret = rfc_secret();
        let now = 1111111109;
        assert_eq!(verify(&secret, "150727", now, 1), Ok(None)); // -2
        assert_eq!(verify(&secret, "731029", now, 1), Ok(Some(37037035))); // -1
        assert_eq!(verify(&secret, "081804", now, 1), Ok(Some(37037036))); // 0
        assert_eq!(verify(&secret, "050471", now, 1), Ok(Some(37037037))); // +1
        assert_eq!(verify(&secret, "266759", now, 1), Ok(None)); // +2
        // With no skew only the current step counts.
        assert_eq!(verify(&secret, "731029", now, 0), Ok(None));
        assert_eq!(verify(&secret, "050471", now, 0), Ok(None));
        assert_eq!(verify(&secret, "081804", now, 0), Ok(Some(37037036)));
        assert_eq!(
            verify(&secret, "081804", now, 2),
            Err(TotpError::SkewTooLarge { skew: 2 })
        );
    }

    #[test]
    fn the_latest_matching_step_wins() {
        // A secret whose codes for steps 0 and 1 coincide (found by search, ~1 in 10^6).
        let mut bytes = SEED_SHA1.to_vec();
        bytes.extend_from_slice(&2_935_063u32.to_be_bytes());
        let secret = TotpSecret::from_bytes(bytes);
        assert_eq!(code_at(&secret, 0).unwrap(), "263812");
        assert_eq!(code_at(&secret, STEP_SECONDS).unwrap(), "263812");
        assert_ne!(code_at(&secret, 2 * STEP_SECONDS).unwrap(), "263812");
        // At t=30 (step 1) the window is 0..=2 and both 0 and 1 match: step 1 is reported.
        assert_eq!(verify(&secret, "263812", STEP_SECONDS, 1), Ok(Some(1)));
        // At t=0 the window is 0..=1: again the later step.
        assert_eq!(verify(&secret, "263812", 0, 1), Ok(Some(1)));
        assert_eq!(verify(&secret, "263812", 0, 0), Ok(Some(0)));
    }

    #[test]
    fn malformed_codes_are_simply_wrong() {
        let secret = rfc_secret();
        let now = 1111111109;
        for code in [
            "81804",
            "0081804",
            "07081804",
            "",
            "08180a",
            "+81804",
            "-81804",
            " 81804",
            "081804 ",
            "08 804",
            "０８１８０４",
            "08180٤",
        ] {
            assert_eq!(verify(&secret, code, now, 1), Ok(None), "{code:?}");
        }
        // Leading zeros are significant.
        assert_eq!(verify(&secret, "081804", now, 1), Ok(Some(37037036)));
    }

    #[test]
    fn far_future_and_edge_times() {
        let secret = rfc_secret();
        assert_eq!(
            verify(&secret, "353130", 20000000000, 1),
            Ok(Some(666666666))
        );
        // Step 0 has no predecessor, and the last steps of u64 have no successor.
        let at_zero = code_at(&secret, 0).unwrap();
        assert_eq!(verify(&secret, &at_zero, 0, 1), Ok(Some(0)));
        let end = code_at(&secret, u64::MAX).unwrap();
        assert_eq!(
            verify(&secret, &end, u64::MAX, 1),
            Ok(Some(u64::MAX / STEP_SECONDS))
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        let short = TotpSecret::from_bytes(vec![7; 15]);
        assert_eq!(
            verify(&short, "123456", 59, 1),
            Err(TotpError::SecretTooShort { len: 15 })
        );
        assert_eq!(
            code_at(&short, 59),
            Err(TotpError::SecretTooShort { len: 15 })
        );
        assert_eq!(
            otpauth_uri(&short, "Example", "alice"),
            Err(TotpError::SecretTooShort { len: 15 })
        );
        assert!(verify(&TotpSecret::from_bytes(vec![7; 16]), "123456", 59, 1).is_ok());
    }

    #[test]
    fn otpauth_uri_content() {
        let secret = rfc_secret();
        assert_eq!(
            otpauth_uri(&secret, "Example", "alice").unwrap(),
            "otpauth://totp/Example:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example"
        );
        assert_eq!(
            otpauth_uri(&secret, "Acme Health", "alice@example.org").unwrap(),
            "otpauth://totp/Acme%20Health:alice%40example.org\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Health"
        );
        // It round-trips through the parser an authenticator would use.
        let uri = otpauth_uri(&secret, "Acme Health", "alice@example.org").unwrap();
        let parsed = Totp::from_url(&uri).unwrap();
        assert_eq!(parsed.secret().as_bytes(), SEED_SHA1);
        assert_eq!(parsed.issuer(), Some("Acme Health"));
        assert_eq!(parsed.account_name(), "alice@example.org");
        assert_eq!(parsed.generate(59).to_string(), "287082");

        assert_eq!(
            otpauth_uri(&secret, "Ex:ample", "alice"),
            Err(TotpError::InvalidIssuer)
        );
        assert_eq!(
            otpauth_uri(&secret, "", "alice"),
            Err(TotpError::InvalidIssuer)
        );
        assert_eq!(
            otpauth_uri(&secret, "Example", "al:ice"),
            Err(TotpError::InvalidAccount)
        );
        assert_eq!(
            otpauth_uri(&secret, "Example", ""),
            Err(TotpError::InvalidAccount)
        );
    }

    #[test]
    fn generated_secrets_are_20_random_bytes() {
        let a = generate_secret(&OsRandom).unwrap();
        let b = generate_secret(&OsRandom).unwrap();
        assert_eq!(a.as_bytes().len(), SECRET_LEN);
        assert_ne!(a, b);
        // A fresh secret works end to end.
        let code = code_at(&a, 1_700_000_000).unwrap();
        assert_eq!(
            verify(&a, &code, 1_700_000_000, 1),
            Ok(Some(1_700_000_000 / 30))
        );
        assert!(!format!("{a:?}").contains(&format!("{:?}", a.as_bytes())));
    }

    #[test]
    fn generate_secret_uses_the_injected_rng() {
        struct Fixed;
        impl SecureRandom for Fixed {
            fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
                dest.fill(0xAB);
                Ok(())
            }
        }
        struct Failing;
        impl SecureRandom for Failing {
            fn fill(&self, _dest: &mut [u8]) -> Result<(), RandomError> {
                Err(RandomError("down".to_owned()))
            }
        }
        assert_eq!(
            generate_secret(&Fixed).unwrap().as_bytes(),
            &[0xAB; SECRET_LEN]
        );
        assert_eq!(
            generate_secret(&Failing),
            Err(RandomError("down".to_owned()))
        );
    }
}
