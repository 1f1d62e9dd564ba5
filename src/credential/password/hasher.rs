//! argon2id hashing and verification on a bounded worker pool, at one cost whatever the
//! outcome.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

use argon2::PasswordHasher as _;
use argon2::password_hash::phc;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::PolicyConfigError;
use super::policy::Password;
use crate::credential::pool::{SubmitError, WorkerPool, oneshot};
use crate::model::PasswordHash;
use crate::random::{RandomError, SecureRandom};

/// Bytes of random salt in every new hash (RFC 9106 recommends 16).
pub const SALT_LEN: usize = 16;

/// Bytes of argon2 output in every new hash.
pub const OUTPUT_LEN: usize = 32;

/// Fixed input of the dummy hash used when there is no real one to verify against. Its value
/// does not matter: a dummy verification always answers "mismatch".
pub(super) const DUMMY_PASSWORD: &[u8] = b"fhirgate dummy password for constant-cost verification";

pub(super) const DUMMY_SALT: &[u8; SALT_LEN] = b"fhirgate-dummy!!";

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
    pub(super) fn params(&self) -> Result<Params, PolicyConfigError> {
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
pub(super) enum Checked {
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
pub(super) enum Target {
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
pub(super) fn verify_reusing_memory(
    secret: &[u8],
    hash: &phc::PasswordHash,
    keep_blocks: usize,
) -> Checked {
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

pub(super) fn new_argon2id(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// Parses a stored PHC string and checks it against the caps, without running argon2.
/// Returns the parsed hash and whether a match should be rehashed.
pub(super) fn inspect(
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
