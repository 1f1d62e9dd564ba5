//! Tests of the policy and the hasher.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use argon2::{AssociatedData, ParamsBuilder};

use std::sync::Arc;

use argon2::PasswordHasher as _;
use argon2::password_hash::phc;
use argon2::{Algorithm, Argon2, Params, Version};

use super::hasher::*;
use super::policy::*;
use crate::model::PasswordHash;
use crate::random::OsRandom;
use crate::random::{RandomError, SecureRandom};

/// Fills every buffer with one byte value, to prove where salts come from.
struct FixedRandom(u8);

impl SecureRandom for FixedRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        dest.fill(self.0);
        Ok(())
    }
}

struct FailingRandom;

impl SecureRandom for FailingRandom {
    fn fill(&self, _dest: &mut [u8]) -> Result<(), RandomError> {
        Err(RandomError("no entropy".to_owned()))
    }
}

fn policy() -> PasswordPolicy {
    PasswordPolicy::default()
}

fn hasher(config: Argon2Config) -> Argon2Hasher {
    Argon2Hasher::new(config, Arc::new(OsRandom)).unwrap()
}

/// Cheap parameters for tests that only need the mechanics.
fn fast_config() -> Argon2Config {
    Argon2Config {
        m_kib: 256,
        t: 2,
        p: 1,
        max_concurrent: 2,
        ..Argon2Config::default()
    }
}

fn login(raw: &str) -> Password {
    policy().for_login(raw).unwrap()
}

fn stored(phc: &str) -> PasswordHash {
    PasswordHash::new(phc)
}

// ---- policy ----

#[test]
fn default_policy_is_valid_and_floors_are_enforced() {
    assert_eq!(
        policy(),
        PasswordPolicy {
            min_chars: 8,
            max_chars: 128
        }
    );
    policy().validate().unwrap();
    PasswordPolicy {
        min_chars: 15,
        max_chars: 256,
    }
    .validate()
    .unwrap();
    let low_min = PasswordPolicy {
        min_chars: 7,
        max_chars: 128,
    }
    .validate();
    assert!(low_min.unwrap_err().to_string().contains("min_chars is 7"));
    let low_max = PasswordPolicy {
        min_chars: 8,
        max_chars: 127,
    }
    .validate();
    assert!(
        low_max
            .unwrap_err()
            .to_string()
            .contains("max_chars is 127")
    );
    let inverted = PasswordPolicy {
        min_chars: 200,
        max_chars: 150,
    }
    .validate();
    assert!(
        inverted
            .unwrap_err()
            .to_string()
            .contains("below min_chars")
    );
}

#[test]
fn length_counts_code_points_not_bytes() {
    let eight = "é".repeat(8);
    assert_eq!(eight.len(), 16);
    assert!(policy().for_new_password(&eight).is_ok());
    let seven = "é".repeat(7);
    assert_eq!(
        policy().for_new_password(&seven).unwrap_err(),
        PasswordPolicyError::TooShort { min: 8 }
    );
    // Seven emoji are 28 bytes but still seven characters.
    assert!(policy().for_new_password(&"🔑".repeat(7)).is_err());
    assert!(policy().for_new_password(&"🔑".repeat(8)).is_ok());
}

#[test]
fn nfkc_is_applied_and_nothing_else() {
    let precomposed = policy().for_new_password("\u{00C5}ngström-pass").unwrap();
    let decomposed = policy().for_login("A\u{030A}ngstro\u{0308}m-pass").unwrap();
    assert_eq!(precomposed.as_bytes(), decomposed.as_bytes());
    // Compatibility forms fold too (NFKC, not NFC): the "ﬁ" ligature is "fi".
    assert_eq!(login("pro\u{FB01}le-1234").as_bytes(), b"profile-1234");
    // No case folding, trimming or space collapsing.
    assert_eq!(login("  Two  Spaces ").as_bytes(), b"  Two  Spaces ");
    assert_ne!(login("Password1").as_bytes(), login("password1").as_bytes());
}

#[test]
fn maximum_length_and_huge_inputs() {
    let max = "a".repeat(128);
    assert!(policy().for_new_password(&max).is_ok());
    assert!(policy().for_login(&max).is_ok());
    let over = "a".repeat(129);
    let too_long = PasswordPolicyError::TooLong { max: 128 };
    assert_eq!(policy().for_new_password(&over).unwrap_err(), too_long);
    assert_eq!(policy().for_login(&over).unwrap_err(), too_long);

    let huge = "é".repeat(512 * 1024); // 1 MiB
    let started = Instant::now();
    assert_eq!(policy().for_login(&huge).unwrap_err(), too_long);
    assert_eq!(policy().for_new_password(&huge).unwrap_err(), too_long);
    // The refusal is decided from the byte length: far below a millisecond.
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    // Even just over the byte bound it is refused without normalising.
    let ascii = "a".repeat(128 * 16 + 1);
    assert_eq!(policy().for_login(&ascii).unwrap_err(), too_long);
}

#[test]
fn decomposed_input_of_a_maximal_password_is_still_accepted_at_login() {
    // 128 precomposed "Å" set as a password; typed decomposed it is 256 code points raw.
    let set = policy().for_new_password(&"\u{00C5}".repeat(128)).unwrap();
    let typed = policy().for_login(&"A\u{030A}".repeat(128)).unwrap();
    assert_eq!(set.as_bytes(), typed.as_bytes());
}

#[test]
fn composition_never_shrinks_text_more_than_the_assumed_ratio() {
    // The raw-length bound relies on this property of the Unicode data.
    let mut longest = 0;
    for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
        let mut len = 0;
        unicode_normalization::char::decompose_canonical(c, |_| len += 1);
        longest = longest.max(len);
    }
    assert!(
        longest <= MAX_COMPOSITION_RATIO,
        "longest decomposition {longest}"
    );
}

#[test]
fn empty_login_and_error_texts() {
    assert_eq!(
        policy().for_login("").unwrap_err(),
        PasswordPolicyError::TooShort { min: 8 }
    );
    assert_eq!(
        policy().for_new_password("").unwrap_err(),
        PasswordPolicyError::TooShort { min: 8 }
    );
    // A short password is not refused at sign-in (it may predate the current minimum).
    assert!(policy().for_login("short").is_ok());
    assert_eq!(PasswordPolicyError::Empty.to_string(), "Invalid password");
    assert_eq!(
        PasswordPolicyError::TooShort { min: 8 }.to_string(),
        "Password must be at least 8 characters"
    );
    assert_eq!(
        PasswordPolicyError::TooLong { max: 128 }.to_string(),
        "Password must be no more than 128 characters"
    );
    assert_eq!(
        HashError::Busy.to_string(),
        "Too many password checks in progress; try again later"
    );
}

#[test]
fn password_debug_is_redacted() {
    let password = login("hunter2-secret");
    assert_eq!(format!("{password:?}"), "Password(<redacted>)");
}

// ---- configuration ----

#[test]
fn argon2_config_validation() {
    let config = Argon2Config::default();
    assert_eq!((config.m_kib, config.t, config.p), (19456, 2, 1));
    assert_eq!(
        (config.max_m_kib, config.max_t, config.max_p),
        (65536, 8, 4)
    );
    assert!(config.max_concurrent >= 1);
    assert_eq!(config.max_queued, 256);
    config.validate().unwrap();

    let bad = |c: Argon2Config| c.validate().unwrap_err().to_string();
    assert!(
        bad(Argon2Config {
            t: 0,
            ..Argon2Config::default()
        })
        .contains("invalid")
    );
    assert!(
        bad(Argon2Config {
            m_kib: 7,
            ..Argon2Config::default()
        })
        .contains("invalid")
    );
    assert!(
        bad(Argon2Config {
            p: 0,
            ..Argon2Config::default()
        })
        .contains("invalid")
    );
    assert!(
        bad(Argon2Config {
            m_kib: 70000,
            ..Argon2Config::default()
        })
        .contains("above max_m_kib")
    );
    assert!(
        bad(Argon2Config {
            t: 9,
            ..Argon2Config::default()
        })
        .contains("above max_t")
    );
    assert!(
        bad(Argon2Config {
            p: 5,
            m_kib: 65536,
            ..Argon2Config::default()
        })
        .contains("above max_p")
    );
    assert!(
        bad(Argon2Config {
            max_concurrent: 0,
            ..Argon2Config::default()
        })
        .contains("max_concurrent")
    );
    assert!(
        bad(Argon2Config {
            max_queued: 0,
            ..Argon2Config::default()
        })
        .contains("max_queued")
    );
    assert!(
        Argon2Hasher::new(
            Argon2Config {
                t: 0,
                ..fast_config()
            },
            Arc::new(OsRandom)
        )
        .is_err()
    );
}

// ---- argon2 primitive: RFC 9106 §5 ----

#[test]
fn rfc9106_raw_tag_vectors() {
    let cases = [
        (
            Algorithm::Argon2id,
            Version::V0x13,
            "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659",
        ),
        (
            Algorithm::Argon2i,
            Version::V0x13,
            "c814d9d1dc7f37aa13f0d77f2494bda1c8de6b016dd388d29952a4c4672b6ce8",
        ),
        (
            Algorithm::Argon2d,
            Version::V0x13,
            "512b391b6f1162975371d30919734294f868e3be3984f3c1a13a4db9fabe4acb",
        ),
        (
            Algorithm::Argon2id,
            Version::V0x10,
            "b64615f07789b66b645b67ee9ed3b377ae350b6bfcbb0fc95141ea8f322613c0",
        ),
    ];
    for (algorithm, version, expected) in cases {
        let params = ParamsBuilder::new()
            .m_cost(32)
            .t_cost(3)
            .p_cost(4)
            .data(AssociatedData::new(&[0x04; 12]).unwrap())
            .output_len(32)
            .build()
            .unwrap();
        let argon2 = Argon2::new_with_secret(&[0x03; 8], algorithm, version, params).unwrap();
        let mut tag = [0u8; 32];
        argon2
            .hash_password_into(&[0x01; 32], &[0x02; 16], &mut tag)
            .unwrap();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected, "{algorithm:?} {version:?}");
    }
}

// ---- PHC reference vectors (test-vectors.md A1) ----

const ROW_M256_P1: &str =
    "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4";
const ROW_M256_P2: &str =
    "$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHQ$bQk8UB/VmZZF4Oo79iDXuL5/0ttZwg2f/5U52iv1cDc";
const ROW_1: &str =
    "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
const ROW_M262144: &str =
    "$argon2id$v=19$m=262144,t=2,p=1$c29tZXNhbHQ$eP4eyR+zqlZX1y5xCFTkw9m5GYx0L5YWwvCFvtlbLow";
const ROWS_M65536: [(&str, &str); 5] = [
    ("password", ROW_1),
    (
        "password",
        "$argon2id$v=19$m=65536,t=1,p=1$c29tZXNhbHQ$9qWtwbpyPd3vm1rB1GThgPzZ3/ydHL92zKL+15XZypg",
    ),
    (
        "password",
        "$argon2id$v=19$m=65536,t=4,p=1$c29tZXNhbHQ$kCXUjmjvc5XMqQedpMTsOv+zyJEf5PhtGiUghW9jFyw",
    ),
    (
        "differentpassword",
        "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$C4TWUs9rDEvq7w3+J4umqA32aWKB1+DSiRuBfYxFj94",
    ),
    (
        "password",
        "$argon2id$v=19$m=65536,t=2,p=1$ZGlmZnNhbHQ$vfMrBczELrFdWP0ZsfhWsRPaHppYdP3MVEMIVlqoFBw",
    ),
];
const ARGON2I_ROW: &str =
    "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA";

const REHASH: Verification = Verification::Match { needs_rehash: true };

#[tokio::test]
async fn phc_reference_vectors_with_small_memory() {
    let h = hasher(Argon2Config::default());
    for phc in [ROW_M256_P1, ROW_M256_P2] {
        assert_eq!(
            h.verify(&login("password"), Some(&stored(phc))).await,
            Ok(REHASH)
        );
        assert_eq!(
            h.verify(&login("Password"), Some(&stored(phc))).await,
            Ok(Verification::Mismatch)
        );
    }
}

#[tokio::test]
async fn reused_worker_memory_never_changes_an_answer() {
    // One worker, so every verification below runs in the same reused buffer: larger and
    // smaller parameters, lanes 1 and 2, argon2i and argon2id, matches and mismatches.
    let h = hasher(Argon2Config {
        max_concurrent: 1,
        ..Argon2Config::default()
    });
    let own = h.hash(&login("correct horse")).await.unwrap();
    let sequence = [
        ("password", ROW_1, REHASH),
        ("password", ROW_M256_P2, REHASH),
        ("Password", ROW_1, Verification::Mismatch),
        ("password", ARGON2I_ROW, REHASH),
        ("password", ROW_M256_P1, REHASH),
        ("password", ROW_M256_P2, REHASH),
        (
            "correct horse",
            own.as_str(),
            Verification::Match {
                needs_rehash: false,
            },
        ),
        ("correct horsf", own.as_str(), Verification::Mismatch),
        ("password", ROW_1, REHASH),
    ];
    for round in 0..2 {
        for (password, phc, expected) in sequence {
            assert_eq!(
                h.verify(&login(password), Some(&stored(phc))).await,
                Ok(expected),
                "round {round}: {password} against {phc}"
            );
        }
    }
}

#[tokio::test]
async fn phc_reference_vectors_with_64_mib() {
    let h = hasher(Argon2Config::default());
    for (password, phc) in ROWS_M65536 {
        assert_eq!(
            h.verify(&login(password), Some(&stored(phc))).await,
            Ok(REHASH),
            "{phc}"
        );
    }
    // Capital P against row 1.
    assert_eq!(
        h.verify(&login("Password"), Some(&stored(ROW_1))).await,
        Ok(Verification::Mismatch)
    );
}

#[tokio::test]
async fn argon2i_is_verified_and_marked_for_rehash() {
    let h = hasher(Argon2Config::default());
    assert_eq!(
        h.verify(&login("password"), Some(&stored(ARGON2I_ROW)))
            .await,
        Ok(REHASH)
    );
    assert_eq!(
        h.verify(&login("passwore"), Some(&stored(ARGON2I_ROW)))
            .await,
        Ok(Verification::Mismatch)
    );
}

#[tokio::test]
async fn a_hash_above_the_caps_is_refused_at_the_cost_of_a_dummy() {
    let h = hasher(fast_config());
    let before = h.pool().completed();
    assert_eq!(
        h.verify(&login("password"), Some(&stored(ROW_M262144)))
            .await,
        Ok(Verification::Refused(StoredHashProblem::OverCaps))
    );
    // One argon2 run was still spent.
    assert_eq!(h.pool().completed(), before + 1);
    for phc in [
        "$argon2id$v=19$m=4294967295,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
        "$argon2id$v=19$m=256,t=4294967295,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
        "$argon2id$v=19$m=256,t=2,p=16$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
    ] {
        assert_eq!(
            h.verify(&login("password"), Some(&stored(phc))).await,
            Ok(Verification::Refused(StoredHashProblem::OverCaps)),
            "{phc}"
        );
    }
}

/// 256 MiB and about 0.6 s here: run with `--ignored`.
#[tokio::test]
#[ignore = "allocates 256 MiB"]
async fn the_256_mib_row_verifies_when_the_caps_allow_it() {
    let h = hasher(Argon2Config {
        max_m_kib: 262144,
        ..fast_config()
    });
    assert_eq!(
        h.verify(&login("password"), Some(&stored(ROW_M262144)))
            .await,
        Ok(REHASH)
    );
}

#[tokio::test]
async fn malformed_and_foreign_hashes_never_panic() {
    let h = hasher(fast_config());
    let malformed = [
        // test.c error-state strings.
        "$argon2i$v=19$m=65536,t=2,p=1c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA",
        "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQwWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA",
        "$argon2i$v=19$m=65536,t=2,p=1$$9sTbSlTio3Biev89thdrlKKiCaYsjjYVJxGAL3swxpQ",
        // Assorted breakage.
        "",
        "password",
        "argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
        "$",
        "$$",
        "$ARGON2ID$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
        "$argon2id",
        "$argon2id$v=19",
        "$argon2id$v=19$m=256,t=2,p=1",
        "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ",
        "$argon2id$v=20$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
        "$argon2id$v=19$m=1,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
        "$argon2id$v=19$m=256,t=0,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
        "$argon2id$v=19$m=256,t=2,p=0$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
        "$argon2id$v=19$m=256,t=2,p=1,x=3$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
        "$argon2id$v=19$m=abc,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
        "$argon2id$v=19$m=256,t=2,p=1$c29tZQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
        "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4$x",
        "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$!!!!",
        "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR-uIPnA4rEsF5h7TKyQwu9U1bMCHGi_4",
    ];
    for phc in malformed {
        assert_eq!(
            h.verify(&login("password"), Some(&stored(phc))).await,
            Ok(Verification::Refused(StoredHashProblem::Malformed)),
            "{phc:?}"
        );
    }
    // test.c: the hash of "passwore" is a plain mismatch.
    assert_eq!(
        h.verify(
            &login("password"),
            Some(&stored(
                "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$8iIuixkI73Js3G1uMbezQXD0b8LG4SXGsOwoQkdAQIM"
            ))
        )
        .await,
        Ok(Verification::Mismatch)
    );
    let unsupported = [
        "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
        "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
        "$argon2d$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
        "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
        "$pbkdf2-sha256$29000$N2bMGcO4N6aUshYipDhn7A$..",
    ];
    for phc in unsupported {
        assert_eq!(
            h.verify(&login("password"), Some(&stored(phc))).await,
            Ok(Verification::Refused(
                StoredHashProblem::UnsupportedAlgorithm
            )),
            "{phc:?}"
        );
    }
}

#[tokio::test]
async fn unknown_user_costs_one_verification_and_mismatches() {
    let h = hasher(fast_config());
    let before = h.pool().completed();
    assert_eq!(
        h.verify(&login("password"), None).await,
        Ok(Verification::Mismatch)
    );
    assert_eq!(h.pool().completed(), before + 1);
    // Even the dummy password itself does not match "no hash".
    let dummy = login(std::str::from_utf8(DUMMY_PASSWORD).unwrap());
    assert_eq!(h.verify(&dummy, None).await, Ok(Verification::Mismatch));
    // A malformed hash costs one run too.
    assert_eq!(
        h.verify(&login("password"), Some(&stored("garbage"))).await,
        Ok(Verification::Refused(StoredHashProblem::Malformed))
    );
    assert_eq!(h.pool().completed(), before + 3);
}

#[tokio::test]
async fn hash_round_trip_and_rehash_detection() {
    let h = hasher(Argon2Config::default());
    let password = policy()
        .for_new_password("correct horse battery staple")
        .unwrap();
    let hashed = h.hash(&password).await.unwrap();
    let text = hashed.as_str();
    assert!(
        text.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{text}"
    );
    let parsed = phc::PasswordHash::new(text).unwrap();
    assert_eq!(parsed.salt.unwrap().len(), SALT_LEN);
    assert_eq!(parsed.hash.unwrap().len(), OUTPUT_LEN);
    assert_eq!(
        h.verify(&password, Some(&hashed)).await,
        Ok(Verification::Match {
            needs_rehash: false
        })
    );
    assert_eq!(
        h.verify(&login("correct horse battery stapl"), Some(&hashed))
            .await,
        Ok(Verification::Mismatch)
    );
    assert_eq!(
        h.verify(&login("Correct horse battery staple"), Some(&hashed))
            .await,
        Ok(Verification::Mismatch)
    );
    // Two hashes of one password differ (fresh salt).
    assert_ne!(h.hash(&password).await.unwrap(), hashed);

    // A hash made under other parameters verifies and asks for a rehash.
    let stronger = hasher(Argon2Config {
        t: 3,
        ..fast_config()
    });
    assert_eq!(stronger.verify(&password, Some(&hashed)).await, Ok(REHASH));
    // Short salt, short output, old version: rehash.
    let fast = hasher(fast_config());
    let old_version = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x10,
        Params::new(256, 2, 1, None).unwrap(),
    )
    .hash_password_with_salt(b"password", b"sixteen-byte-sal")
    .unwrap()
    .to_string();
    assert!(old_version.starts_with("$argon2id$v=16$"));
    assert_eq!(
        fast.verify(&login("password"), Some(&stored(&old_version)))
            .await,
        Ok(REHASH)
    );
    let short_output = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(256, 2, 1, Some(16)).unwrap(),
    )
    .hash_password_with_salt(b"password", b"sixteen-byte-sal")
    .unwrap()
    .to_string();
    assert_eq!(
        fast.verify(&login("password"), Some(&stored(&short_output)))
            .await,
        Ok(REHASH)
    );
    let current = new_argon2id(&fast_config().params().unwrap())
        .hash_password_with_salt(b"password", b"sixteen-byte-sal")
        .unwrap()
        .to_string();
    assert_eq!(
        fast.verify(&login("password"), Some(&stored(&current)))
            .await,
        Ok(Verification::Match {
            needs_rehash: false
        })
    );
    // The same output with the version field removed: argon2 0.6 reads it as 0x13 (the
    // reference C library would read 0x10), and the hash is rewritten in full.
    let no_version = current.replace("$v=19", "");
    assert_eq!(
        fast.verify(&login("password"), Some(&stored(&no_version)))
            .await,
        Ok(REHASH)
    );
}

#[tokio::test]
async fn nfkc_equivalent_input_verifies() {
    let h = hasher(fast_config());
    let set = policy()
        .for_new_password("\u{00C5}sa-h\u{00E9}mlig-1")
        .unwrap();
    let hashed = h.hash(&set).await.unwrap();
    let typed = policy().for_login("A\u{030A}sa-he\u{0301}mlig-1").unwrap();
    assert_eq!(
        h.verify(&typed, Some(&hashed)).await,
        Ok(Verification::Match {
            needs_rehash: false
        })
    );
    // A prefix or a case change fails (no truncation, no folding).
    for wrong in [
        "\u{00C5}sa-h\u{00E9}mlig-",
        "\u{00E5}sa-h\u{00E9}mlig-1",
        "\u{00C5}SA-H\u{00C9}MLIG-1",
    ] {
        assert_eq!(
            h.verify(&login(wrong), Some(&hashed)).await,
            Ok(Verification::Mismatch),
            "{wrong}"
        );
    }
}

#[tokio::test]
async fn salts_come_from_the_injected_rng() {
    let h = Argon2Hasher::new(fast_config(), Arc::new(FixedRandom(0x07))).unwrap();
    let a = h.hash(&login("password")).await.unwrap();
    let b = h.hash(&login("password")).await.unwrap();
    // base64 (standard, unpadded) of sixteen 0x07 bytes.
    assert!(
        a.as_str().contains("$BwcHBwcHBwcHBwcHBwcHBw$"),
        "{}",
        a.as_str()
    );
    assert_eq!(a, b);

    let failing = Argon2Hasher::new(fast_config(), Arc::new(FailingRandom)).unwrap();
    assert_eq!(
        failing.hash(&login("password")).await,
        Err(HashError::Random(RandomError("no entropy".to_owned())))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_gets_busy_and_never_runs_more_than_max_concurrent() {
    let h = Arc::new(hasher(Argon2Config {
        max_concurrent: 1,
        max_queued: 1,
        ..Argon2Config::default()
    }));
    let hashed = h.hash(&login("password")).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let h = Arc::clone(&h);
        let hashed = hashed.clone();
        tasks.spawn(async move { h.verify(&login("password"), Some(&hashed)).await });
    }
    let (mut matched, mut busy) = (0, 0);
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(Verification::Match {
                needs_rehash: false,
            }) => matched += 1,
            Err(HashError::Busy) => busy += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(matched + busy, 32);
    assert!(matched >= 1, "matched {matched}");
    assert!(busy >= 1, "busy {busy}");
    assert_eq!(h.pool().peak_running(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn verification_does_not_block_a_current_thread_runtime() {
    let h = hasher(Argon2Config::default());
    let hashed = h.hash(&login("password")).await.unwrap();
    let ticks = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&ticks);
    let ticker = tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(1));
        loop {
            interval.tick().await;
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    // Let the ticker start, then count its ticks during the verifications only.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let before = ticks.load(Ordering::SeqCst);
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(
            h.verify(&login("password"), Some(&hashed)).await,
            Ok(Verification::Match {
                needs_rehash: false
            })
        );
    }
    let elapsed = started.elapsed();
    let during = ticks.load(Ordering::SeqCst) - before;
    ticker.abort();
    // Three default-cost verifications take tens of milliseconds; had they run on this
    // (only) runtime thread, the ticker could not have run in between.
    assert!(during >= 3, "{during} ticks in {elapsed:?}");
}

#[test]
fn dropping_the_hasher_stops_its_workers() {
    let h = hasher(fast_config());
    let watch = h.pool().watch();
    drop(h);
    let deadline = Instant::now() + Duration::from_secs(10);
    while watch.live_workers() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(watch.live_workers(), 0);
}

#[test]
fn hasher_debug_shows_no_secrets_and_is_object_safe() {
    let h = hasher(fast_config());
    let _: &dyn PasswordHasher = &h;
    let text = format!("{h:?}");
    assert!(text.contains("Argon2Hasher"));
    assert!(!text.contains("argon2id$"));
}
