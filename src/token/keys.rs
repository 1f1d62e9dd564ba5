//! Signing keys, the key set with rotation, the JWKS, and JWT signing and verification.
//!
//! - A [`SigningKey`] is an ES256 (P-256), EdDSA (Ed25519) or RS256 (RSA ≥ 2048 bits) private
//!   key. Its `kid` is the RFC 7638 SHA-256 thumbprint of its public JWK, so it depends on the
//!   public key only and is the same wherever the key is loaded. ES256 and EdDSA keys can be
//!   generated from the injected [`SecureRandom`]; RSA keys are loaded from PEM or a JWK.
//! - A [`KeySet`] holds the *active* key (signs), at most one *next* key (published in the
//!   JWKS but not used to sign yet: OIDC Core 10.1.1, "publish before use") and *retired* keys
//!   (still verify and stay in the JWKS until their keep-until time, so tokens signed before a
//!   rotation stay valid until they expire).
//! - [`KeySet::sign`] writes a compact JWS whose header is exactly `alg`, `kid` and `typ`.
//! - [`KeySet::verify`] checks header, key, algorithm, type, signature and then `exp`, `nbf`,
//!   `iat`, `iss` and `aud` against an injected time, before deserializing the claims.
//!
//! EdDSA tokens carry `"alg":"EdDSA"` (RFC 8037), the name jsonwebtoken and most verifiers
//! implement; RFC 9864's fully specified `"Ed25519"` is accepted when *loading* a JWK but is
//! neither emitted nor accepted in token headers.

mod der;
mod generate;
mod material;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256, Sha512};
use time::OffsetDateTime;

use crate::jose::{self, ClaimError, Jws, Use};
use crate::random::SecureRandom;
use material::{Private, Public};

/// The longest token [`KeySet::verify`] looks at, in bytes; longer input is `Malformed`.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// The JWS algorithms fhirgate signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    /// ECDSA with P-256 and SHA-256 (RFC 7518 §3.4): small keys and signatures, fast.
    Es256,
    /// EdDSA with Ed25519 (RFC 8037), written `"EdDSA"` in headers.
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3): required for OIDC ID tokens (OIDC Core
    /// 15.1) and SMART `sso-openid-connect`.
    Rs256,
}

impl SigningAlgorithm {
    /// The jsonwebtoken algorithm.
    pub fn jwt_alg(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::EdDsa => Algorithm::EdDSA,
            Self::Rs256 => Algorithm::RS256,
        }
    }

    /// The JOSE `alg` name: `"ES256"`, `"EdDSA"` or `"RS256"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
        }
    }

    /// The algorithm for a JOSE `alg` name (exact, case-sensitive), if it is one of ours.
    pub fn from_jose_name(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(Self::Es256),
            "EdDSA" => Some(Self::EdDsa),
            "RS256" => Some(Self::Rs256),
            _ => None,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Loading, generating or using a signing key failed, or a key-set change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key material is malformed, inconsistent (the public key does not match the private
    /// key), too weak, or could not be generated.
    #[error("invalid signing key: {0}")]
    InvalidKey(String),
    /// The key kind, curve, algorithm or container is not supported.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The key is already in the key set, or a next key is already published.
    #[error("the key is already in the key set, or a next key is already published")]
    Duplicate,
    /// [`KeySet::promote_next`] was called with no next key published.
    #[error("no next key has been published")]
    NoNextKey,
    /// Signing failed (the claims did not serialize to a JSON object, or the backend failed).
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Why [`KeySet::verify`] refused a token. The texts are safe to log; they never contain the
/// token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a compact JWS with a JSON header and a JSON object payload, or too long, or it uses
    /// a `crit` header.
    #[error("the token is not a well-formed signed JWT")]
    Malformed,
    /// The header has no `kid`, or the `kid` names no key of the set (unknown, pruned, or
    /// retired past its keep-until time).
    #[error("the token names no key of this key set")]
    UnknownKey,
    /// The header `alg` is not the algorithm of the key its `kid` names (this includes `none`
    /// and every HMAC algorithm, which no key here has).
    #[error("the token's algorithm is not the algorithm of its key")]
    AlgorithmMismatch,
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// The header `typ` is missing or not the expected type.
    #[error("the token is not of the expected type")]
    WrongType,
    /// `iss` is not the expected issuer.
    #[error("the token's issuer is not the expected issuer")]
    WrongIssuer,
    /// `aud` does not contain the expected audience.
    #[error("the token is not meant for this audience")]
    WrongAudience,
    /// `exp` has passed (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` or `iat` lies in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// A required claim is missing.
    #[error("the token lacks the required claim `{0}`")]
    MissingClaim(&'static str),
}

/// What [`KeySet::verify`] requires of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expectation<'a> {
    /// The header `typ`, compared case-insensitively; `application/` may be added or left out
    /// (RFC 7515 §4.1.9, RFC 9068 §2.1): `"at+jwt"` accepts `"application/at+jwt"`.
    pub typ: &'a str,
    /// The exact `iss`.
    pub issuer: &'a str,
    /// A value `aud` must be or contain.
    pub audience: &'a str,
    /// The time to check `exp`, `nbf` and `iat` against.
    pub now: OffsetDateTime,
    /// Allowed clock skew in seconds (negative counts as zero).
    pub leeway_seconds: i64,
}

/// A private signing key with its public JWK and `kid`. Cloning is cheap (shared). `Debug`
/// shows the `kid` and algorithm only.
#[derive(Clone)]
pub struct SigningKey {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    alg: SigningAlgorithm,
    kid: String,
    public_jwk: Jwk,
    public_json: serde_json::Value,
    public: Public,
    private: Private,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Signed and verified once when a key is built: a key that cannot produce a signature its
/// own public key accepts is refused at load time, not at first use.
const PAIRWISE_CHECK_MESSAGE: &[u8] = b"fhirgate signing key self-check";

impl SigningKey {
    /// Generates a new ES256 or EdDSA key from `rng`. RS256 keys are not generated here.
    ///
    /// The key lives in memory only: persist it with [`SigningKey::to_private_jwk`] if it
    /// must survive a restart.
    pub fn generate(alg: SigningAlgorithm, rng: &dyn SecureRandom) -> Result<SigningKey, KeyError> {
        let private = generate::generate_private(alg, rng)?;
        Self::assemble(private, None)
    }

    /// Loads a PEM private key for `alg`: PKCS#8 (`BEGIN PRIVATE KEY`), or the traditional
    /// `BEGIN RSA PRIVATE KEY` (PKCS#1) and `BEGIN EC PRIVATE KEY` (SEC1) forms. Encrypted
    /// keys are refused. The key must be of the kind `alg` needs (P-256, Ed25519, RSA ≥ 2048
    /// bits); a public key in the container must match the private key.
    pub fn from_pkcs8_pem(alg: SigningAlgorithm, pem: &str) -> Result<SigningKey, KeyError> {
        let (private, public) = material::from_pem(pem)?;
        let found = private.algorithm();
        if found != alg {
            return Err(KeyError::InvalidKey(format!(
                "the PEM holds a {} key, not a {} key",
                found.as_str(),
                alg.as_str()
            )));
        }
        Self::assemble(private, public)
    }

    /// Loads a private JWK: EC P-256 (`d`, `x`, `y`), OKP Ed25519 (`d`, `x`) or RSA (`n`, `e`,
    /// `d`, `p`, `q`, `dp`, `dq`, `qi`). The algorithm follows from `kty`/`crv`; an `alg`
    /// member must agree with it (RSA: `RS256` only). `use`, if present, must be `sig`. A
    /// `kid` member is ignored: the key id is always the thumbprint. The public members must
    /// match the private key.
    pub fn from_private_jwk(jwk_json: &str) -> Result<SigningKey, KeyError> {
        let (private, public) = material::from_private_jwk(jwk_json)?;
        Self::assemble(private, public)
    }

    /// The private key as a JWK (with `kid`, `alg` and `use`), for a host to store — as a
    /// secret — and load again with [`SigningKey::from_private_jwk`].
    pub fn to_private_jwk(&self) -> String {
        let inner = &*self.inner;
        material::private_jwk_json(inner.alg, &inner.kid, &inner.private, &inner.public)
    }

    /// The key id: the RFC 7638 SHA-256 thumbprint of the public JWK, base64url.
    pub fn kid(&self) -> &str {
        &self.inner.kid
    }

    /// The algorithm this key signs with.
    pub fn alg(&self) -> SigningAlgorithm {
        self.inner.alg
    }

    /// The public JWK, with `kid`, `alg` and `use: "sig"`, and no private members.
    pub fn public_jwk(&self) -> &Jwk {
        &self.inner.public_jwk
    }

    /// Builds the key from its private components: derives the public key, checks it against
    /// `claimed` (the public key the input carried), computes the kid and runs a sign/verify
    /// self-check.
    fn assemble(private: Private, claimed: Option<Public>) -> Result<SigningKey, KeyError> {
        let backend = crate::crypto::install_provider();
        let alg = private.algorithm();
        let (public, encoding) = derive_public(&private, backend)?;
        if let Some(claimed) = claimed
            && claimed != public
        {
            return Err(KeyError::InvalidKey(
                "the public key does not match the private key".to_owned(),
            ));
        }
        let mut public_jwk = public_jwk_of(&public);
        let kid = thumbprint(&public_jwk)?;
        public_jwk.common = CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::from(alg.jwt_alg())),
            key_id: Some(kid.clone()),
            ..CommonParameters::default()
        };
        let public_json = serde_json::to_value(&public_jwk)
            .map_err(|e| KeyError::InvalidKey(format!("public JWK: {e}")))?;
        let decoding = DecodingKey::from_jwk(&public_jwk)
            .map_err(|e| KeyError::InvalidKey(format!("public key: {e}")))?;
        let signature =
            jsonwebtoken::crypto::sign(PAIRWISE_CHECK_MESSAGE, &encoding, alg.jwt_alg())
                .map_err(|_| KeyError::InvalidKey("the key cannot sign".to_owned()))?;
        let verified = jsonwebtoken::crypto::verify(
            &signature,
            PAIRWISE_CHECK_MESSAGE,
            &decoding,
            alg.jwt_alg(),
        );
        if !matches!(verified, Ok(true)) {
            return Err(KeyError::InvalidKey(
                "the key's signatures do not verify with its public key".to_owned(),
            ));
        }
        Ok(SigningKey {
            inner: Arc::new(KeyInner {
                alg,
                kid,
                public_jwk,
                public_json,
                public,
                private,
                encoding,
                decoding,
            }),
        })
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.inner.kid)
            .field("alg", &self.inner.alg)
            .finish_non_exhaustive()
    }
}

/// The public key and the backend signing key for `private`. The backend derives EC and
/// Ed25519 public keys from the private key; RSA public components are part of the private key.
///
/// Both backends parse the PKCS#8 on every ES256 signature. aws-lc is faster when the public
/// point is included (it checks rather than computes it: ≈39 µs against ≈49 µs per signature
/// here); RustCrypto is faster without it (it would compute the point once more to validate
/// it: ≈400 µs against ≈520 µs). So the signing form follows the backend.
fn derive_public(
    private: &Private,
    backend: crate::crypto::Backend,
) -> Result<(Public, EncodingKey), KeyError> {
    let refused = |e: jsonwebtoken::errors::Error| {
        KeyError::InvalidKey(format!("the backend refused the key: {e}"))
    };
    match private {
        Private::Ed { seed } => {
            let der = material::ed25519_pkcs8(seed);
            let encoding = EncodingKey::from_ed_der(&der);
            let jwk = Jwk::from_encoding_key(&encoding, Algorithm::EdDSA).map_err(refused)?;
            let AlgorithmParameters::OctetKeyPair(params) = &jwk.algorithm else {
                return Err(KeyError::InvalidKey(
                    "unexpected derived key type".to_owned(),
                ));
            };
            let x = decode32(&params.x)?;
            Ok((Public::Ed { x }, encoding))
        }
        Private::Ec { d } => {
            let bare = material::p256_pkcs8(d, None);
            let jwk = Jwk::from_encoding_key(&EncodingKey::from_ec_der(&bare), Algorithm::ES256)
                .map_err(refused)?;
            let AlgorithmParameters::EllipticCurve(params) = &jwk.algorithm else {
                return Err(KeyError::InvalidKey(
                    "unexpected derived key type".to_owned(),
                ));
            };
            let x = decode32(&params.x)?;
            let y = decode32(&params.y)?;
            let encoding = match backend {
                crate::crypto::Backend::AwsLc => {
                    EncodingKey::from_ec_der(&material::p256_pkcs8(d, Some((&x, &y))))
                }
                crate::crypto::Backend::RustCrypto => EncodingKey::from_ec_der(&bare),
            };
            Ok((Public::Ec { x, y }, encoding))
        }
        Private::Rsa(rsa) => {
            let der = material::rsa_pkcs1(rsa);
            let public = Public::Rsa {
                n: rsa.n.clone(),
                e: rsa.e.clone(),
            };
            Ok((public, EncodingKey::from_rsa_der(&der)))
        }
    }
}

fn decode32(text: &str) -> Result<[u8; 32], KeyError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text.as_bytes())
        .map_err(|_| KeyError::InvalidKey("derived public key is not base64url".to_owned()))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| KeyError::InvalidKey("derived public key has the wrong size".to_owned()))
}

/// The bare public JWK (no `kid`, `alg` or `use` yet).
fn public_jwk_of(public: &Public) -> Jwk {
    let algorithm = match public {
        Public::Ec { x, y } => AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
            key_type: EllipticCurveKeyType::EC,
            curve: EllipticCurve::P256,
            x: URL_SAFE_NO_PAD.encode(x),
            y: URL_SAFE_NO_PAD.encode(y),
        }),
        Public::Ed { x } => AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(x),
        }),
        Public::Rsa { n, e } => AlgorithmParameters::RSA(RSAKeyParameters {
            key_type: RSAKeyType::RSA,
            n: URL_SAFE_NO_PAD.encode(n),
            e: URL_SAFE_NO_PAD.encode(e),
        }),
    };
    Jwk {
        common: CommonParameters::default(),
        algorithm,
    }
}

/// The RFC 7638 JWK thumbprint (SHA-256, base64url) of an EC, OKP or RSA public key: the
/// hash of the required members only, in lexicographic order, without whitespace. Other
/// members (`kid`, `alg`, `use`, private members) do not change it.
pub fn thumbprint(jwk: &Jwk) -> Result<String, KeyError> {
    // serde_json escapes the member values; base64url values come out unchanged.
    let canonical = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) => {
            let crv = match p.curve {
                EllipticCurve::P256 => "P-256",
                EllipticCurve::P384 => "P-384",
                EllipticCurve::P521 => "P-521",
                _ => {
                    return Err(KeyError::Unsupported(
                        "EC JWK with a non-NIST curve".to_owned(),
                    ));
                }
            };
            serde_json::json!({"crv": crv, "kty": "EC", "x": p.x, "y": p.y})
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            if p.curve != EllipticCurve::Ed25519 {
                return Err(KeyError::Unsupported(
                    "OKP JWK with a curve other than Ed25519".to_owned(),
                ));
            }
            serde_json::json!({"crv": "Ed25519", "kty": "OKP", "x": p.x})
        }
        AlgorithmParameters::RSA(p) => serde_json::json!({"e": p.e, "kty": "RSA", "n": p.n}),
        _ => {
            return Err(KeyError::Unsupported(
                "thumbprints are computed for EC, OKP and RSA keys".to_owned(),
            ));
        }
    };
    // `json!` objects are sorted maps, and `to_string` writes no whitespace.
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.to_string().as_bytes())))
}

/// OIDC `at_hash` / `c_hash` (OIDC Core 3.1.3.6, 3.3.2.11): base64url of the left half of the
/// hash of the ASCII `value`, with the hash of the ID token's `alg`.
///
/// ES256 and RS256 use SHA-256 (16 bytes kept). EdDSA uses SHA-512 (32 bytes kept): Ed25519
/// signs with SHA-512, and OpenID Connect Core 1.0 errata set 2 names SHA-512 for EdDSA with
/// Ed25519. (Ed448 would be SHAKE256; it is not supported here.)
pub fn token_hash(alg: SigningAlgorithm, value: &str) -> String {
    match alg {
        SigningAlgorithm::Es256 | SigningAlgorithm::Rs256 => {
            let digest = Sha256::digest(value.as_bytes());
            let (left, _) = digest.as_slice().split_at(16);
            URL_SAFE_NO_PAD.encode(left)
        }
        SigningAlgorithm::EdDsa => {
            let digest = Sha512::digest(value.as_bytes());
            let (left, _) = digest.as_slice().split_at(32);
            URL_SAFE_NO_PAD.encode(left)
        }
    }
}

/// The signing and verification keys, with rotation. A plain value: the engine wraps it in a
/// lock. `Debug` shows kids and states only.
#[derive(Clone)]
pub struct KeySet {
    active: SigningKey,
    next: Option<SigningKey>,
    retired: Vec<Retired>,
}

#[derive(Clone)]
struct Retired {
    key: SigningKey,
    keep_until: OffsetDateTime,
}

/// The protected header [`KeySet::sign`] writes: these three members and nothing else.
#[derive(Serialize)]
struct SignHeader<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'a str,
}

impl KeySet {
    /// A key set with `active` as its only key.
    pub fn new(active: SigningKey) -> KeySet {
        KeySet {
            active,
            next: None,
            retired: Vec::new(),
        }
    }

    /// The key that signs.
    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// The published next key, if any.
    pub fn next(&self) -> Option<&SigningKey> {
        self.next.as_ref()
    }

    /// The retired keys with the time each is kept until.
    pub fn retired(&self) -> impl Iterator<Item = (&SigningKey, OffsetDateTime)> + '_ {
        self.retired.iter().map(|r| (&r.key, r.keep_until))
    }

    /// Publishes `key` as the next key: it appears in the JWKS and verifies, but does not sign
    /// until [`KeySet::promote_next`] (OIDC Core 10.1.1: publish a key before using it, so
    /// that relying parties caching the JWKS have it by then).
    ///
    /// Fails with [`KeyError::Duplicate`] if a next key is already published or a key with
    /// the same kid is in the set (active or retired).
    pub fn publish_next(&mut self, key: SigningKey) -> Result<(), KeyError> {
        if self.next.is_some() || self.all_keys().any(|k| k.kid() == key.kid()) {
            return Err(KeyError::Duplicate);
        }
        self.next = Some(key);
        Ok(())
    }

    /// Makes the next key the active one. The old active key is retired: it keeps verifying
    /// and stays in the JWKS until `now + keep_retired_for`, which should be at least the
    /// longest lifetime of a token it signed (OIDC Core 10.1.1).
    pub fn promote_next(
        &mut self,
        now: OffsetDateTime,
        keep_retired_for: time::Duration,
    ) -> Result<(), KeyError> {
        let next = self.next.take().ok_or(KeyError::NoNextKey)?;
        let old = std::mem::replace(&mut self.active, next);
        self.retired.push(Retired {
            key: old,
            keep_until: now.saturating_add(keep_retired_for),
        });
        Ok(())
    }

    /// Drops the retired keys whose keep-until time is before `now`.
    pub fn prune(&mut self, now: OffsetDateTime) {
        self.retired.retain(|r| now <= r.keep_until);
    }

    /// Every key: active, next, then retired.
    fn all_keys(&self) -> impl Iterator<Item = &SigningKey> + '_ {
        std::iter::once(&self.active)
            .chain(self.next.iter())
            .chain(self.retired.iter().map(|r| &r.key))
    }

    /// The public JWKS: active, next and retired keys, each with `kid`, `alg` and
    /// `use: "sig"`, no private members; the kids are distinct.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.all_keys().map(|k| k.public_jwk().clone()).collect(),
        }
    }

    /// [`KeySet::jwks`] as JSON, the body of the `jwks_uri` response.
    pub fn jwks_json(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .all_keys()
            .map(|k| k.inner.public_json.clone())
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Signs `claims` (which must serialize to a JSON object) with the active key. The header
    /// is `{"alg":…,"kid":…,"typ":…}` and nothing else: no `jku`, `jwk`, `x5u` or `x5c`
    /// (OIDC Core §2).
    pub fn sign<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, KeyError> {
        let key = &self.active;
        let header = SignHeader {
            alg: key.alg().as_str(),
            kid: key.kid(),
            typ,
        };
        let header_json =
            serde_json::to_vec(&header).map_err(|e| KeyError::Signing(e.to_string()))?;
        let payload = serde_json::to_vec(claims).map_err(|e| KeyError::Signing(e.to_string()))?;
        if payload.first() != Some(&b'{') {
            return Err(KeyError::Signing(
                "the claims must serialize to a JSON object".to_owned(),
            ));
        }
        let mut token = URL_SAFE_NO_PAD.encode(header_json);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature =
            jsonwebtoken::crypto::sign(token.as_bytes(), &key.inner.encoding, key.alg().jwt_alg())
                .map_err(|e| KeyError::Signing(e.to_string()))?;
        token.push('.');
        token.push_str(&signature);
        Ok(token)
    }

    /// The key a token names, if it may verify at `now`: the active or next key, or a retired
    /// key not past its keep-until time.
    fn key_for(&self, kid: &str, now: OffsetDateTime) -> Option<&SigningKey> {
        if self.active.kid() == kid {
            return Some(&self.active);
        }
        if let Some(next) = &self.next
            && next.kid() == kid
        {
            return Some(next);
        }
        self.retired
            .iter()
            .find(|r| r.key.kid() == kid && now <= r.keep_until)
            .map(|r| &r.key)
    }

    /// Verifies a compact JWS signed by a key of this set and returns its claims.
    ///
    /// In order: the token is three base64url parts with a JSON header (else `Malformed`;
    /// `crit` is refused); the header `alg` is one of ours (else `AlgorithmMismatch`); `kid`
    /// names a key of the set (else `UnknownKey`); `alg` is *that key's* algorithm (else
    /// `AlgorithmMismatch`); `typ` matches (else `WrongType`); the signature verifies with
    /// that key and algorithm only (else `BadSignature`); the payload is a JSON object
    /// (else `Malformed`); `exp` is present and `now < exp + leeway`; `nbf`, if present,
    /// `nbf <= now + leeway`; `iat`, if present, `iat <= now + leeway`; `iss` equals the
    /// expected issuer exactly; `aud` (a string or an array of strings) contains the expected
    /// audience. Only then are the claims deserialized into `T` (failure: `Malformed`).
    ///
    /// Times are whole seconds; a fractional NumericDate is rounded towards rejection.
    pub fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        expected: &Expectation<'_>,
    ) -> Result<T, TokenError> {
        let jws = Jws::parse(token, MAX_TOKEN_BYTES).map_err(|_| TokenError::Malformed)?;
        let header = &jws.header;
        let header_alg = Use::OurTokens
            .algorithm(&header.alg)
            .ok_or(TokenError::AlgorithmMismatch)?;
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        let key = self
            .key_for(kid, expected.now)
            .ok_or(TokenError::UnknownKey)?;
        // The algorithm is the key's, never the header's.
        if header_alg != key.alg().jwt_alg() {
            return Err(TokenError::AlgorithmMismatch);
        }
        if !header.typ_is(expected.typ) {
            return Err(TokenError::WrongType);
        }
        if !jws.verify(&key.inner.decoding, key.alg().jwt_alg()) {
            return Err(TokenError::BadSignature);
        }
        let registered = jws.registered().map_err(|_| TokenError::Malformed)?;
        registered
            .check(
                &jose::Expectation {
                    issuers: &[expected.issuer],
                    audience: jose::claims::Audience::AnyOf(&[expected.audience]),
                    authorized_party: None,
                    nonce: None,
                    times: jose::TimeRules {
                        leeway_seconds: expected.leeway_seconds,
                        max_age_seconds: None,
                        max_ahead_seconds: None,
                    },
                },
                expected.now,
            )
            .map_err(|e| match e {
                ClaimError::Expired => TokenError::Expired,
                ClaimError::NotYetValid | ClaimError::IssuedInFuture => TokenError::NotYetValid,
                ClaimError::WrongIssuer => TokenError::WrongIssuer,
                ClaimError::WrongAudience => TokenError::WrongAudience,
                ClaimError::Missing(claim) => TokenError::MissingClaim(claim),
                _ => TokenError::Malformed,
            })?;
        jws.claims().map_err(|_| TokenError::Malformed)
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct RetiredList<'a>(&'a [Retired]);
        impl fmt::Debug for RetiredList<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list()
                    .entries(self.0.iter().map(|r| (r.key.kid(), r.keep_until)))
                    .finish()
            }
        }
        f.debug_struct("KeySet")
            .field("active", &self.active.kid())
            .field("next", &self.next.as_ref().map(SigningKey::kid))
            .field("retired", &RetiredList(&self.retired))
            .finish()
    }
}
