//! Key material: the private and public components of the three supported key kinds, read
//! from PEM (PKCS#8, PKCS#1, SEC1) and private JWKs, and written as the DER the JOSE backends
//! take and as a private JWK.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::der::{self, DerError, PemLabel, Reader, oid, tag};
use super::{KeyError, SigningAlgorithm};

/// Smallest RSA modulus accepted, in bits (NIST SP 800-131A; RFC 7518 §3.3 requires 2048).
pub(super) const RSA_MIN_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (keeps verification cost bounded).
pub(super) const RSA_MAX_BITS: usize = 8192;

/// The private components of a signing key.
pub(super) enum Private {
    /// P-256: the scalar `d`, big-endian.
    Ec { d: Zeroizing<[u8; 32]> },
    /// Ed25519: the 32-byte seed (RFC 8032 private key).
    Ed { seed: Zeroizing<[u8; 32]> },
    /// RSA with two primes and the CRT values.
    Rsa(Box<RsaPrivate>),
}

/// RSA private components, big-endian magnitudes without leading zeros.
pub(super) struct RsaPrivate {
    pub(super) n: Vec<u8>,
    pub(super) e: Vec<u8>,
    pub(super) d: Zeroizing<Vec<u8>>,
    pub(super) p: Zeroizing<Vec<u8>>,
    pub(super) q: Zeroizing<Vec<u8>>,
    pub(super) dp: Zeroizing<Vec<u8>>,
    pub(super) dq: Zeroizing<Vec<u8>>,
    pub(super) qi: Zeroizing<Vec<u8>>,
}

/// The public components of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Public {
    /// P-256 affine coordinates.
    Ec { x: [u8; 32], y: [u8; 32] },
    /// Ed25519 public key.
    Ed { x: [u8; 32] },
    /// RSA modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

impl Private {
    /// The algorithm this kind of key signs with.
    pub(super) fn algorithm(&self) -> SigningAlgorithm {
        match self {
            Self::Ec { .. } => SigningAlgorithm::Es256,
            Self::Ed { .. } => SigningAlgorithm::EdDsa,
            Self::Rsa(_) => SigningAlgorithm::Rs256,
        }
    }
}

impl From<DerError> for KeyError {
    fn from(e: DerError) -> Self {
        KeyError::InvalidKey(e.0.to_owned())
    }
}

fn invalid(message: &str) -> KeyError {
    KeyError::InvalidKey(message.to_owned())
}

// ---------------------------------------------------------------------------------------------
// DER out
// ---------------------------------------------------------------------------------------------

/// PKCS#8 v1 for an Ed25519 seed: the fixed 16-byte prefix of RFC 8410 §7 plus the seed.
pub(super) fn ed25519_pkcs8(seed: &[u8; 32]) -> Zeroizing<Vec<u8>> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut out = Zeroizing::new(Vec::with_capacity(48));
    out.extend_from_slice(&PREFIX);
    out.extend_from_slice(seed);
    out
}

/// PKCS#8 v1 for a P-256 scalar, with the public point when known (RFC 5915 inside RFC 5208).
/// Without the point the backends compute it, which is how a public key is derived.
pub(super) fn p256_pkcs8(
    d: &[u8; 32],
    public: Option<(&[u8; 32], &[u8; 32])>,
) -> Zeroizing<Vec<u8>> {
    let version = der::unsigned_integer(&[1]);
    let scalar = der::element(tag::OCTET_STRING, d);
    let ec_private_key = match public {
        Some((x, y)) => {
            let mut point = Vec::with_capacity(66);
            point.extend_from_slice(&[0x00, 0x04]);
            point.extend_from_slice(x);
            point.extend_from_slice(y);
            let bit_string = der::element(tag::BIT_STRING, &point);
            let explicit = der::element(tag::CONTEXT_1, &bit_string);
            der::sequence(&[&version, &scalar, &explicit])
        }
        None => der::sequence(&[&version, &scalar]),
    };
    let algorithm = der::sequence(&[
        &der::element(tag::OID, oid::EC_PUBLIC_KEY),
        &der::element(tag::OID, oid::PRIME256V1),
    ]);
    der::sequence(&[
        &der::unsigned_integer(&[0]),
        &algorithm,
        &der::element(tag::OCTET_STRING, &ec_private_key),
    ])
}

/// PKCS#1 `RSAPrivateKey` (two primes), the form the JOSE backends sign with.
pub(super) fn rsa_pkcs1(key: &RsaPrivate) -> Zeroizing<Vec<u8>> {
    der::sequence(&[
        &der::unsigned_integer(&[0]),
        &der::unsigned_integer(&key.n),
        &der::unsigned_integer(&key.e),
        &der::unsigned_integer(&key.d),
        &der::unsigned_integer(&key.p),
        &der::unsigned_integer(&key.q),
        &der::unsigned_integer(&key.dp),
        &der::unsigned_integer(&key.dq),
        &der::unsigned_integer(&key.qi),
    ])
}

// ---------------------------------------------------------------------------------------------
// PEM / DER in
// ---------------------------------------------------------------------------------------------

/// Reads a PEM private key: PKCS#8 `PRIVATE KEY`, or the traditional `RSA PRIVATE KEY`
/// (PKCS#1) and `EC PRIVATE KEY` (SEC1) forms. Returns the private components and the public
/// key the container carried, if any (to be checked against the derived one).
pub(super) fn from_pem(pem: &str) -> Result<(Private, Option<Public>), KeyError> {
    let (label, der_bytes) = der::decode_pem(pem)?;
    match label {
        PemLabel::Pkcs8 => from_pkcs8(&der_bytes),
        PemLabel::Pkcs1Rsa => from_pkcs1(&der_bytes).map(|k| (Private::Rsa(Box::new(k)), None)),
        PemLabel::Sec1Ec => from_sec1(&der_bytes, false),
        PemLabel::EncryptedPkcs8 => Err(KeyError::Unsupported(
            "encrypted PKCS#8 keys are not supported: decrypt the key before loading it".to_owned(),
        )),
    }
}

/// The content of a single top-level SEQUENCE with nothing after it.
fn single_sequence(bytes: &[u8]) -> Result<Reader<'_>, KeyError> {
    let mut outer = Reader::new(bytes);
    let body = outer.read(tag::SEQUENCE)?;
    if !outer.is_empty() {
        return Err(invalid("trailing data after the key"));
    }
    Ok(Reader::new(body))
}

/// PKCS#8 `PrivateKeyInfo` / `OneAsymmetricKey` (v1 or v2).
fn from_pkcs8(bytes: &[u8]) -> Result<(Private, Option<Public>), KeyError> {
    let mut info = single_sequence(bytes)?;
    let version = info.read_small()?;
    if version > 1 {
        return Err(invalid("unknown PKCS#8 version"));
    }
    let mut algorithm = Reader::new(info.read(tag::SEQUENCE)?);
    let algorithm_oid = algorithm.read(tag::OID)?;
    let private_key = info.read(tag::OCTET_STRING)?;
    let _attributes = info.read_optional(tag::CONTEXT_0)?;
    let v2_public = info.read_optional(tag::CONTEXT_1_PRIMITIVE)?;
    if !info.is_empty() {
        return Err(invalid("unexpected data in PKCS#8"));
    }
    if algorithm_oid == oid::RSA_ENCRYPTION {
        let _null = algorithm.read_optional(tag::NULL)?;
        if !algorithm.is_empty() {
            return Err(invalid("unexpected RSA algorithm parameters"));
        }
        from_pkcs1(private_key).map(|k| (Private::Rsa(Box::new(k)), None))
    } else if algorithm_oid == oid::EC_PUBLIC_KEY {
        let curve = algorithm.read(tag::OID)?;
        if curve != oid::PRIME256V1 || !algorithm.is_empty() {
            return Err(KeyError::Unsupported(
                "only P-256 elliptic-curve keys are supported".to_owned(),
            ));
        }
        from_sec1(private_key, true)
    } else if algorithm_oid == oid::ED25519 {
        if !algorithm.is_empty() {
            return Err(invalid("Ed25519 keys take no algorithm parameters"));
        }
        let mut inner = Reader::new(private_key);
        let seed_bytes = inner.read(tag::OCTET_STRING)?;
        if !inner.is_empty() {
            return Err(invalid("unexpected data after the Ed25519 key"));
        }
        let seed = Zeroizing::new(
            <[u8; 32]>::try_from(seed_bytes)
                .map_err(|_| invalid("an Ed25519 private key is 32 bytes"))?,
        );
        let public = match v2_public {
            None => None,
            Some(bits) => match bits.split_first() {
                Some((0, key)) => Some(Public::Ed {
                    x: <[u8; 32]>::try_from(key)
                        .map_err(|_| invalid("an Ed25519 public key is 32 bytes"))?,
                }),
                _ => return Err(invalid("malformed Ed25519 public key")),
            },
        };
        Ok((Private::Ed { seed }, public))
    } else {
        Err(KeyError::Unsupported(
            "key algorithm not supported (RSA, P-256 and Ed25519 are)".to_owned(),
        ))
    }
}

/// PKCS#1 `RSAPrivateKey` with two primes.
fn from_pkcs1(bytes: &[u8]) -> Result<RsaPrivate, KeyError> {
    let mut key = single_sequence(bytes)?;
    if key.read_small()? != 0 {
        return Err(KeyError::Unsupported(
            "multi-prime RSA keys are not supported".to_owned(),
        ));
    }
    let n = key.read_unsigned()?.to_vec();
    let e = key.read_unsigned()?.to_vec();
    let mut secret = || -> Result<Zeroizing<Vec<u8>>, KeyError> {
        Ok(Zeroizing::new(key.read_unsigned()?.to_vec()))
    };
    let rsa = RsaPrivate {
        n,
        e,
        d: secret()?,
        p: secret()?,
        q: secret()?,
        dp: secret()?,
        dq: secret()?,
        qi: secret()?,
    };
    if !key.is_empty() {
        return Err(invalid("unexpected data in the RSA key"));
    }
    check_rsa_public(&rsa.n, &rsa.e)?;
    Ok(rsa)
}

/// Checks the RSA modulus size and exponent shape.
pub(super) fn check_rsa_public(n: &[u8], e: &[u8]) -> Result<(), KeyError> {
    let n = der::strip_leading_zeros(n);
    let bits = match n.first() {
        Some(first) if *first != 0 => n.len() * 8 - first.leading_zeros() as usize,
        _ => 0,
    };
    if bits < RSA_MIN_BITS {
        return Err(invalid(
            "RSA keys must have a modulus of at least 2048 bits",
        ));
    }
    if bits > RSA_MAX_BITS {
        return Err(KeyError::Unsupported(
            "RSA moduli above 8192 bits are not supported".to_owned(),
        ));
    }
    let e = der::strip_leading_zeros(e);
    let odd = e.last().is_some_and(|b| b & 1 == 1);
    if !odd || e == [1] || e.len() > 8 {
        return Err(invalid("the RSA public exponent is not valid"));
    }
    Ok(())
}

/// SEC1 `ECPrivateKey`. `curve_known` is set inside PKCS#8, which names the curve itself.
fn from_sec1(bytes: &[u8], curve_known: bool) -> Result<(Private, Option<Public>), KeyError> {
    let mut key = single_sequence(bytes)?;
    if key.read_small()? != 1 {
        return Err(invalid("unknown ECPrivateKey version"));
    }
    let scalar = key.read(tag::OCTET_STRING)?;
    if let Some(parameters) = key.read_optional(tag::CONTEXT_0)? {
        let mut parameters = Reader::new(parameters);
        if parameters.read(tag::OID)? != oid::PRIME256V1 || !parameters.is_empty() {
            return Err(KeyError::Unsupported(
                "only P-256 elliptic-curve keys are supported".to_owned(),
            ));
        }
    } else if !curve_known && scalar.len() != 32 {
        return Err(invalid(
            "an EC key without parameters must be a 32-byte P-256 key",
        ));
    }
    let public = match key.read_optional(tag::CONTEXT_1)? {
        None => None,
        Some(explicit) => {
            let mut explicit = Reader::new(explicit);
            let bits = explicit.read(tag::BIT_STRING)?;
            Some(p256_point(bits)?)
        }
    };
    if !key.is_empty() {
        return Err(invalid("unexpected data in the EC key"));
    }
    Ok((
        Private::Ec {
            d: p256_scalar(scalar)?,
        },
        public,
    ))
}

/// A P-256 scalar from its octet string, left-padded if an encoder dropped leading zeros.
fn p256_scalar(bytes: &[u8]) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let mut d = Zeroizing::new([0u8; 32]);
    let offset = 32usize
        .checked_sub(bytes.len())
        .ok_or_else(|| invalid("a P-256 private key is 32 bytes"))?;
    d.get_mut(offset..)
        .ok_or_else(|| invalid("a P-256 private key is 32 bytes"))?
        .copy_from_slice(bytes);
    Ok(d)
}

/// An uncompressed P-256 point from BIT STRING content (unused-bits byte, 0x04, x, y).
fn p256_point(bits: &[u8]) -> Result<Public, KeyError> {
    match bits {
        [0x00, 0x04, coordinates @ ..] if coordinates.len() == 64 => {
            let (x, y) = coordinates.split_at(32);
            Ok(Public::Ec {
                x: <[u8; 32]>::try_from(x).map_err(|_| invalid("malformed EC point"))?,
                y: <[u8; 32]>::try_from(y).map_err(|_| invalid("malformed EC point"))?,
            })
        }
        _ => Err(invalid(
            "the EC public key must be an uncompressed P-256 point",
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// JWK in and out
// ---------------------------------------------------------------------------------------------

/// The members of a private JWK this loader reads (RFC 7517, RFC 7518 §6, RFC 8037 §2).
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
struct PrivateJwk {
    kty: String,
    crv: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    x: Option<String>,
    y: Option<String>,
    d: Option<String>,
    n: Option<String>,
    e: Option<String>,
    p: Option<String>,
    q: Option<String>,
    dp: Option<String>,
    dq: Option<String>,
    qi: Option<String>,
    #[zeroize(skip)]
    oth: Option<serde::de::IgnoredAny>,
}

/// A required base64url member, decoded.
fn member(value: Option<&String>, name: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let text = value.ok_or_else(|| KeyError::InvalidKey(format!("the JWK lacks `{name}`")))?;
    URL_SAFE_NO_PAD
        .decode(text.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| KeyError::InvalidKey(format!("the JWK member `{name}` is not base64url")))
}

/// A required 32-byte base64url member.
fn member32(value: Option<&String>, name: &str) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let bytes = member(value, name)?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| KeyError::InvalidKey(format!("the JWK member `{name}` must be 32 bytes")))
}

/// Reads a private JWK: EC P-256 (`d`, `x`, `y`), OKP Ed25519 (`d`, `x`) or RSA (`n`, `e`,
/// `d`, `p`, `q`, `dp`, `dq`, `qi`). `alg`, when present, must be the one the key type
/// implies; `use`, when present, must be `sig`. `kid` is ignored: the key id is recomputed
/// from the public key.
pub(super) fn from_private_jwk(json: &str) -> Result<(Private, Option<Public>), KeyError> {
    let jwk: PrivateJwk = serde_json::from_str(json)
        .map_err(|_| invalid("the private JWK is not valid JSON of the expected shape"))?;
    if let Some(key_use) = &jwk.key_use
        && key_use != "sig"
    {
        return Err(invalid("the JWK `use` is not `sig`"));
    }
    if jwk.d.is_none() && jwk.kty != "oct" {
        return Err(invalid(
            "the JWK has no private key (`d`): it is a public key",
        ));
    }
    let alg = jwk.alg.as_deref();
    match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("EC", Some("P-256")) => {
            expect_alg(alg, &["ES256"])?;
            let d = member32(jwk.d.as_ref(), "d")?;
            let x = member32(jwk.x.as_ref(), "x")?;
            let y = member32(jwk.y.as_ref(), "y")?;
            Ok((Private::Ec { d }, Some(Public::Ec { x: *x, y: *y })))
        }
        ("EC", _) => Err(KeyError::Unsupported(
            "only P-256 elliptic-curve keys are supported".to_owned(),
        )),
        ("OKP", Some("Ed25519")) => {
            // RFC 9864 names the fully specified algorithm "Ed25519"; both denote this key.
            expect_alg(alg, &["EdDSA", "Ed25519"])?;
            let seed = member32(jwk.d.as_ref(), "d")?;
            let x = member32(jwk.x.as_ref(), "x")?;
            Ok((Private::Ed { seed }, Some(Public::Ed { x: *x })))
        }
        ("OKP", _) => Err(KeyError::Unsupported(
            "only Ed25519 octet key pairs are supported".to_owned(),
        )),
        ("RSA", _) => {
            if let Some(other) = alg
                && other != "RS256"
            {
                return Err(KeyError::Unsupported(format!(
                    "RSA keys are used with RS256 only, not {other}"
                )));
            }
            if jwk.oth.is_some() {
                return Err(KeyError::Unsupported(
                    "multi-prime RSA keys are not supported".to_owned(),
                ));
            }
            let strip = |bytes: Zeroizing<Vec<u8>>| {
                Zeroizing::new(der::strip_leading_zeros(&bytes).to_vec())
            };
            let n = strip(member(jwk.n.as_ref(), "n")?).to_vec();
            let e = strip(member(jwk.e.as_ref(), "e")?).to_vec();
            check_rsa_public(&n, &e)?;
            let rsa = RsaPrivate {
                d: strip(member(jwk.d.as_ref(), "d")?),
                p: strip(member(jwk.p.as_ref(), "p")?),
                q: strip(member(jwk.q.as_ref(), "q")?),
                dp: strip(member(jwk.dp.as_ref(), "dp")?),
                dq: strip(member(jwk.dq.as_ref(), "dq")?),
                qi: strip(member(jwk.qi.as_ref(), "qi")?),
                n: n.clone(),
                e: e.clone(),
            };
            Ok((Private::Rsa(Box::new(rsa)), Some(Public::Rsa { n, e })))
        }
        ("oct", _) => Err(KeyError::Unsupported(
            "symmetric (`oct`) keys cannot be signing keys: use an asymmetric key".to_owned(),
        )),
        (other, _) => Err(KeyError::Unsupported(format!(
            "JWK key type `{other}` is not supported"
        ))),
    }
}

fn expect_alg(found: Option<&str>, allowed: &[&str]) -> Result<(), KeyError> {
    match found {
        None => Ok(()),
        Some(alg) if allowed.contains(&alg) => Ok(()),
        Some(alg) => Err(KeyError::InvalidKey(format!(
            "the JWK `alg` {alg} does not fit its key type"
        ))),
    }
}

/// Appends `,"name":"base64url(bytes)"` to `out`.
fn push_member(out: &mut Zeroizing<String>, name: &str, bytes: &[u8]) {
    let encoded = Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes));
    // Writing to a String cannot fail.
    let _ = write!(out, ",\"{name}\":\"{}\"", encoded.as_str());
}

/// Serializes a private JWK with `kid`, `alg` and `use` (members in a fixed order).
pub(super) fn private_jwk_json(
    alg: SigningAlgorithm,
    kid: &str,
    private: &Private,
    public: &Public,
) -> String {
    // Sized up front so that the buffer holding secrets never reallocates (and leaves an
    // unwiped copy behind).
    let material: usize = match private {
        Private::Rsa(rsa) => {
            rsa.n.len()
                + rsa.e.len()
                + rsa.d.len()
                + rsa.p.len()
                + rsa.q.len()
                + rsa.dp.len()
                + rsa.dq.len()
                + rsa.qi.len()
        }
        Private::Ec { .. } | Private::Ed { .. } => 96,
    };
    let mut out = Zeroizing::new(String::with_capacity(256 + material * 4 / 3 + 16 * 8));
    let head = match public {
        Public::Ec { .. } => r#"{"kty":"EC","crv":"P-256""#,
        Public::Ed { .. } => r#"{"kty":"OKP","crv":"Ed25519""#,
        Public::Rsa { .. } => r#"{"kty":"RSA""#,
    };
    out.push_str(head);
    // `kid` is a base64url thumbprint, `alg` a fixed name: neither needs JSON escaping.
    let _ = write!(
        out,
        ",\"kid\":\"{kid}\",\"alg\":\"{}\",\"use\":\"sig\"",
        alg.as_str()
    );
    match public {
        Public::Ec { x, y } => {
            push_member(&mut out, "x", x);
            push_member(&mut out, "y", y);
        }
        Public::Ed { x } => push_member(&mut out, "x", x),
        Public::Rsa { n, e } => {
            push_member(&mut out, "n", n);
            push_member(&mut out, "e", e);
        }
    }
    match private {
        Private::Ec { d } => push_member(&mut out, "d", d.as_slice()),
        Private::Ed { seed } => push_member(&mut out, "d", seed.as_slice()),
        Private::Rsa(rsa) => {
            push_member(&mut out, "d", &rsa.d);
            push_member(&mut out, "p", &rsa.p);
            push_member(&mut out, "q", &rsa.q);
            push_member(&mut out, "dp", &rsa.dp);
            push_member(&mut out, "dq", &rsa.dq);
            push_member(&mut out, "qi", &rsa.qi);
        }
    }
    out.push('}');
    // The caller owns the returned copy; the working buffer is wiped here.
    out.as_str().to_owned()
}
