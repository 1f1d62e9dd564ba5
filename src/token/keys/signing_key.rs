//! One signing key: generated, or loaded from PEM or a private JWK, checked pairwise, with its
//! public JWK and RFC 7638 thumbprint as `kid`.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::{Digest, Sha256};

use super::material::{Private, Public};
use super::{KeyError, SigningAlgorithm, generate, material};
use crate::random::SecureRandom;

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
pub(super) const PAIRWISE_CHECK_MESSAGE: &[u8] = b"fhirgate signing key self-check";

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

    /// Loads a PEM private key of whichever supported kind it holds — P-256 (ES256), Ed25519
    /// (EdDSA) or RSA (RS256) — in the containers [`SigningKey::from_pkcs8_pem`] reads.
    pub fn from_pem(pem: &str) -> Result<SigningKey, KeyError> {
        let (private, public) = material::from_pem(pem)?;
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

    /// The public JWK as JSON, as the JWKS publishes it.
    pub(super) fn public_json(&self) -> &serde_json::Value {
        &self.inner.public_json
    }

    /// The key that signs.
    pub(super) fn encoding(&self) -> &EncodingKey {
        &self.inner.encoding
    }

    /// The key that verifies.
    pub(super) fn decoding(&self) -> &DecodingKey {
        &self.inner.decoding
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
pub(super) fn derive_public(
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

pub(super) fn decode32(text: &str) -> Result<[u8; 32], KeyError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text.as_bytes())
        .map_err(|_| KeyError::InvalidKey("derived public key is not base64url".to_owned()))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| KeyError::InvalidKey("derived public key has the wrong size".to_owned()))
}

/// The bare public JWK (no `kid`, `alg` or `use` yet).
pub(super) fn public_jwk_of(public: &Public) -> Jwk {
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
