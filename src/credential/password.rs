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

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use argon2::PasswordHasher as _;
use argon2::password_hash::phc;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::pool::{SubmitError, WorkerPool, oneshot};
use crate::model::PasswordHash;
use crate::random::{RandomError, SecureRandom};

/// Canonical decompositions are at most this many code points long (checked against the
/// Unicode data in a test), so NFKC never shortens text by more than this factor. That lets
/// an over-long input be refused from its raw length, before any normalisation work.
const MAX_COMPOSITION_RATIO: usize = 4;

/// Largest UTF-8 encoding of one code point.
const MAX_UTF8_BYTES: usize = 4;

/// Bytes of random salt in every new hash (RFC 9106 recommends 16).
pub const SALT_LEN: usize = 16;

/// Bytes of argon2 output in every new hash.
pub const OUTPUT_LEN: usize = 32;

/// Fixed input of the dummy hash used when there is no real one to verify against. Its value
/// does not matter: a dummy verification always answers "mismatch".
const DUMMY_PASSWORD: &[u8] = b"fhirgate dummy password for constant-cost verification";
const DUMMY_SALT: &[u8; SALT_LEN] = b"fhirgate-dummy!!";

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
            return Err(PasswordPolicyError::Empty);
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
    /// No password was given (sign-in).
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

/// Argon2id cost parameters for new hashes, caps for verifying stored ones, and the size of
/// the hashing pool.
///
/// The defaults are the OWASP / ASVS 5.0 Appendix C choice `m=19456 KiB, t=2, p=1` (about
/// 17 ms and 19 MiB per hash on one core of this project's machines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Argon2Config {
    /// Memory cost of new hashes, in KiB. Default 19456.
    pub m_kib: u32,
    /// Iterations of new hashes. Default 2.
    pub t: u32,
    /// Lanes of new hashes. Default 1.
    pub p: u32,
    /// Largest memory cost a stored hash may ask for, in KiB. Default 65536 (64 MiB).
    /// Verification uses the parameters written in the stored hash, so without caps a
    /// tampered or foreign hash could make one check allocate gigabytes.
    pub max_m_kib: u32,
    /// Most iterations a stored hash may ask for. Default 8.
    pub max_t: u32,
    /// Most lanes a stored hash may ask for. Default 4.
    pub max_p: u32,
    /// Worker threads, hence hashes running at once (each may hold up to `max_m_kib` of
    /// memory). Default: the number of available CPU cores.
    pub max_concurrent: usize,
    /// Hashes that may wait for a worker; beyond that a request fails at once with
    /// [`HashError::Busy`]. Default 256.
    pub max_queued: usize,
}

impl Default for Argon2Config {
    fn default() -> Self {
        Self {
            m_kib: Params::DEFAULT_M_COST,
            t: Params::DEFAULT_T_COST,
            p: Params::DEFAULT_P_COST,
            max_m_kib: 65536,
            max_t: 8,
            max_p: 4,
            max_concurrent: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_queued: 256,
        }
    }
}

impl Argon2Config {
    /// Checks that `m_kib`/`t`/`p` are valid argon2 parameters within the caps, and that the
    /// pool has at least one worker and one queue slot.
    pub fn validate(&self) -> Result<(), PolicyConfigError> {
        self.params().map(|_| ())
    }

    /// The validated argon2 parameters for new hashes.
    fn params(&self) -> Result<Params, PolicyConfigError> {
        let params =
            Params::new(self.m_kib, self.t, self.p, Some(OUTPUT_LEN)).map_err(|reason| {
                PolicyConfigError::Argon2Params {
                    m_kib: self.m_kib,
                    t: self.t,
                    p: self.p,
                    reason,
                }
            })?;
        for (name, value, cap_name, cap) in [
            ("m_kib", self.m_kib, "max_m_kib", self.max_m_kib),
            ("t", self.t, "max_t", self.max_t),
            ("p", self.p, "max_p", self.max_p),
        ] {
            if value > cap {
                return Err(PolicyConfigError::AboveCap {
                    name,
                    value,
                    cap_name,
                    cap,
                });
            }
        }
        if self.max_concurrent == 0 {
            return Err(PolicyConfigError::EmptyPool("max_concurrent"));
        }
        if self.max_queued == 0 {
            return Err(PolicyConfigError::EmptyPool("max_queued"));
        }
        Ok(params)
    }
}

/// Hashes and verifies passwords. Implementations must not block the calling (executor)
/// thread while doing it.
#[async_trait::async_trait]
pub trait PasswordHasher: Send + Sync {
    /// Verifies `password` against a stored hash.
    ///
    /// `stored == None` (unknown user, or an account without a password) must cost the same
    /// as a real verification: run a dummy verification and return
    /// [`Verification::Mismatch`]. A stored hash that cannot be used is
    /// [`Verification::Refused`], at the same cost.
    async fn verify(
        &self,
        password: &Password,
        stored: Option<&PasswordHash>,
    ) -> Result<Verification, HashError>;

    /// Hashes a new password with a fresh random salt.
    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError>;
}

/// The outcome of [`PasswordHasher::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password is right.
    Match {
        /// The stored hash is weaker than, or different from, what [`PasswordHasher::hash`]
        /// makes now: store a fresh hash of the password.
        needs_rehash: bool,
    },
    /// The password is wrong (or there was no stored hash).
    Mismatch,
    /// The stored hash cannot be used; treat the attempt as failed and the hash as broken.
    Refused(StoredHashProblem),
}

/// Why a stored hash was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoredHashProblem {
    /// Not a well-formed argon2 PHC string.
    #[error("the stored password hash is malformed")]
    Malformed,
    /// A PHC-style string of another algorithm (bcrypt, scrypt, argon2d, ...).
    #[error("the stored password hash uses an unsupported algorithm")]
    UnsupportedAlgorithm,
    /// Argon2 parameters above the configured caps.
    #[error("the stored password hash asks for more resources than allowed")]
    OverCaps,
}

/// Hashing could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// Every worker is busy and the queue is full; the caller should answer "try later"
    /// (HTTP 503 or 429).
    #[error("Too many password checks in progress; try again later")]
    Busy,
    /// The hashing pool or a worker is gone, or argon2 failed (out of memory).
    #[error("password hashing is unavailable: {0}")]
    Unavailable(String),
    /// The random source failed while drawing a salt.
    #[error(transparent)]
    Random(#[from] RandomError),
}

impl From<SubmitError> for HashError {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::Busy => HashError::Busy,
            SubmitError::Closed => HashError::Unavailable("the hashing workers stopped".to_owned()),
        }
    }
}

impl From<oneshot::Canceled> for HashError {
    fn from(_: oneshot::Canceled) -> Self {
        HashError::Unavailable("a hashing worker stopped before answering".to_owned())
    }
}

/// Argon2id [`PasswordHasher`] running on its own pool of worker threads.
///
/// New hashes are `$argon2id$v=19$m=..,t=..,p=..$salt$hash` with a 16-byte salt drawn from
/// the injected [`SecureRandom`] and a 32-byte output.
///
/// Stored hashes are verified with the parameters they carry, within the caps of the
/// [`Argon2Config`]:
///
/// - argon2id and **argon2i** hashes are verified. argon2i (a common library default before
///   argon2id was recommended) is accepted so that imported users are not locked out, and a
///   match reports `needs_rehash = true` so the caller upgrades it to argon2id.
/// - argon2d hashes are refused ([`StoredHashProblem::UnsupportedAlgorithm`]): its
///   password-dependent memory access is a side channel, and it is not meant for password
///   storage. Other algorithms (bcrypt, scrypt, PBKDF2, ...) are refused the same way.
/// - a match reports `needs_rehash = true` when the algorithm is not argon2id, the version is
///   not 0x13 (or absent), m/t/p differ from the configuration, the output is not 32 bytes,
///   the salt is shorter than 16 bytes, or the hash carries argon2 `keyid`/`data` fields.
///
/// Dropping the hasher stops its worker threads (after the hash each is running).
pub struct Argon2Hasher {
    config: Argon2Config,
    params: Params,
    dummy: Arc<phc::PasswordHash>,
    rng: Arc<dyn SecureRandom>,
    pool: WorkerPool,
}

impl fmt::Debug for Argon2Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Argon2Hasher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Argon2Hasher {
    /// Validates `config`, computes the dummy hash (one argon2 run with the configured
    /// parameters, on the calling thread: build the hasher at start-up) and starts
    /// `max_concurrent` worker threads.
    pub fn new(
        config: Argon2Config,
        rng: Arc<dyn SecureRandom>,
    ) -> Result<Self, PolicyConfigError> {
        let params = config.params()?;
        let dummy = new_argon2id(&params)
            .hash_password_with_salt(DUMMY_PASSWORD, DUMMY_SALT)
            .map_err(PolicyConfigError::Argon2Hash)?;
        let pool = WorkerPool::start("fhirgate-argon2", config.max_concurrent, config.max_queued)
            .map_err(|e| PolicyConfigError::Threads(e.kind()))?;
        Ok(Self {
            config,
            params,
            dummy: Arc::new(dummy),
            rng,
            pool,
        })
    }

    /// The configuration this hasher runs with.
    pub fn config(&self) -> &Argon2Config {
        &self.config
    }

    /// Decides, without any argon2 work, what a worker verifies against.
    fn target(&self, stored: Option<&PasswordHash>) -> Target {
        let outcome = match stored.map(|stored| inspect(stored.as_str(), &self.config)) {
            Some(Ok((hash, needs_rehash))) => {
                return Target::Stored {
                    hash: Box::new(hash),
                    needs_rehash,
                };
            }
            Some(Err(problem)) => Verification::Refused(problem),
            None => Verification::Mismatch,
        };
        Target::Dummy {
            hash: Arc::clone(&self.dummy),
            outcome,
        }
    }

    #[cfg(test)]
    pub(crate) fn pool(&self) -> &WorkerPool {
        &self.pool
    }
}

/// Result of one argon2 verification on a worker.
enum Checked {
    Match,
    Mismatch,
    OutOfMemory,
    Failed,
}

#[async_trait::async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn verify(
        &self,
        password: &Password,
        stored: Option<&PasswordHash>,
    ) -> Result<Verification, HashError> {
        let target = self.target(stored);
        let keep_blocks = self.params.block_count();
        let secret = Zeroizing::new(password.as_bytes().to_vec());
        let receiver = self.pool.submit(move || {
            let hash: &phc::PasswordHash = match &target {
                Target::Stored { hash, .. } => hash.as_ref(),
                Target::Dummy { hash, .. } => hash.as_ref(),
            };
            // The algorithm, version and parameters come from `hash`.
            let checked = verify_reusing_memory(&secret, hash, keep_blocks);
            drop(secret);
            match (target, checked) {
                // Whatever the dummy computation said, the answer was decided beforehand.
                (Target::Dummy { outcome, .. }, _) => Ok(outcome),
                (Target::Stored { needs_rehash, .. }, Checked::Match) => {
                    Ok(Verification::Match { needs_rehash })
                }
                (Target::Stored { .. }, Checked::Mismatch) => Ok(Verification::Mismatch),
                (Target::Stored { .. }, Checked::OutOfMemory) => Err(HashError::Unavailable(
                    "not enough memory to verify the password hash".to_owned(),
                )),
                (Target::Stored { .. }, Checked::Failed) => {
                    Ok(Verification::Refused(StoredHashProblem::Malformed))
                }
            }
        })?;
        receiver.await?
    }

    async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let mut salt = [0u8; SALT_LEN];
        self.rng.fill(&mut salt)?;
        let secret = Zeroizing::new(password.as_bytes().to_vec());
        let params = self.params.clone();
        let receiver = self.pool.submit(move || {
            let hashed = new_argon2id(&params)
                .hash_password_with_salt(&secret, &salt)
                .map(|hash| hash.to_string());
            drop(secret);
            hashed
        })?;
        match receiver.await? {
            Ok(phc) => Ok(PasswordHash::new(phc)),
            Err(e) => Err(HashError::Unavailable(format!("argon2 failed: {e}"))),
        }
    }
}

/// The hash a worker verifies against.
enum Target {
    /// The user's stored hash.
    Stored {
        hash: Box<phc::PasswordHash>,
        needs_rehash: bool,
    },
    /// The dummy hash, with the answer decided before any argon2 work.
    Dummy {
        hash: Arc<phc::PasswordHash>,
        outcome: Verification,
    },
}

thread_local! {
    /// Each worker's argon2 memory, kept between verifications. Allocating and faulting in
    /// 19 MiB of fresh pages for every verification costs about a fifth of the hash itself on
    /// these machines; reusing the blocks removes that, and bounds memory at one buffer per
    /// worker. Argon2's first pass overwrites every block before reading it, so stale contents
    /// never influence a result.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Verifies `secret` against a parsed PHC hash (algorithm, version, parameters, salt and
/// expected output all taken from it) in this thread's reusable argon2 memory. A buffer grown
/// beyond `keep_blocks` (for a legacy hash with larger parameters) is released afterwards.
fn verify_reusing_memory(secret: &[u8], hash: &phc::PasswordHash, keep_blocks: usize) -> Checked {
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else {
        return Checked::Failed;
    };
    // argon2 0.6 reads an absent version as 0x13, as its own verifier does.
    let version = match hash.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(version)) => version,
        Some(Err(_)) => return Checked::Failed,
    };
    let Ok(params) = Params::try_from(hash) else {
        return Checked::Failed;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return Checked::Failed;
    };
    let needed = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    let result = BLOCKS.with(|cell| {
        let Ok(mut blocks) = cell.try_borrow_mut() else {
            return Err(Checked::Failed);
        };
        if blocks.len() < needed {
            let missing = needed - blocks.len();
            if blocks.try_reserve_exact(missing).is_err() {
                return Err(Checked::OutOfMemory);
            }
            blocks.resize(needed, Block::default());
        }
        let memory = blocks.get_mut(..needed).ok_or(Checked::Failed)?;
        let hashed = argon2.hash_password_into_with_memory(secret, salt.as_ref(), &mut out, memory);
        if blocks.len() > keep_blocks {
            *blocks = Vec::new();
        }
        hashed.map_err(|e| match e {
            argon2::Error::OutOfMemory => Checked::OutOfMemory,
            _ => Checked::Failed,
        })
    });
    match result {
        Ok(()) if crate::secret::ct_eq_bytes(&out, expected.as_bytes()) => Checked::Match,
        Ok(()) => Checked::Mismatch,
        Err(checked) => checked,
    }
}

fn new_argon2id(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// Parses a stored PHC string and checks it against the caps, without running argon2.
/// Returns the parsed hash and whether a match should be rehashed.
fn inspect(
    stored: &str,
    config: &Argon2Config,
) -> Result<(phc::PasswordHash, bool), StoredHashProblem> {
    // Look at the algorithm name first, so that a well-formed hash of another scheme (whose
    // fields the PHC parser may not accept, e.g. bcrypt) is reported as such.
    let ident = stored
        .strip_prefix('$')
        .and_then(|rest| rest.split('$').next())
        .ok_or(StoredHashProblem::Malformed)?;
    let algorithm = match ident {
        "argon2id" => Algorithm::Argon2id,
        "argon2i" => Algorithm::Argon2i,
        "" => return Err(StoredHashProblem::Malformed),
        other
            if other.len() <= 32
                && other
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            return Err(StoredHashProblem::UnsupportedAlgorithm);
        }
        _ => return Err(StoredHashProblem::Malformed),
    };
    let hash = phc::PasswordHash::new(stored).map_err(|_| StoredHashProblem::Malformed)?;
    let version = match hash.version {
        None => None,
        Some(v) => Some(Version::try_from(v).map_err(|_| StoredHashProblem::Malformed)?),
    };
    let params = Params::try_from(&hash).map_err(|_| StoredHashProblem::Malformed)?;
    let (Some(salt), Some(output)) = (&hash.salt, &hash.hash) else {
        return Err(StoredHashProblem::Malformed);
    };
    if salt.len() < argon2::MIN_SALT_LEN {
        return Err(StoredHashProblem::Malformed);
    }
    if params.m_cost() > config.max_m_kib
        || params.t_cost() > config.max_t
        || params.p_cost() > config.max_p
    {
        return Err(StoredHashProblem::OverCaps);
    }
    let needs_rehash = algorithm != Algorithm::Argon2id
        || version != Some(Version::V0x13)
        || params.m_cost() != config.m_kib
        || params.t_cost() != config.t
        || params.p_cost() != config.p
        || output.len() != OUTPUT_LEN
        || salt.len() < SALT_LEN
        || !params.keyid().is_empty()
        || !params.data().is_empty();
    Ok((hash, needs_rehash))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use argon2::{AssociatedData, ParamsBuilder};

    use super::*;
    use crate::random::OsRandom;

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
            PasswordPolicyError::Empty
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
}
