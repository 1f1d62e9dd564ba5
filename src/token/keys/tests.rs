//! Tests for keys, the key set, and JWT signing and verification. Standard vectors come from
//! `test-vectors.md` section J; the PEM files under `tests/data/keys/` were made once with
//! OpenSSL 3.0 (`openssl genpkey`), and their expected public values and thumbprints were
//! computed independently (OpenSSL's `-text` output, Python's hashlib).

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use base64::Engine as _;

use super::*;
use crate::random::{RandomError, SecureRandom};

const RSA_PEM: &str = include_str!("../../../tests/data/keys/rsa2048.pem");
const RSA_PKCS1_PEM: &str = include_str!("../../../tests/data/keys/rsa2048-pkcs1.pem");
const RSA_WEAK_PEM: &str = include_str!("../../../tests/data/keys/rsa1024-weak.pem");
const P256_PEM: &str = include_str!("../../../tests/data/keys/p256.pem");
const P256_SEC1_PEM: &str = include_str!("../../../tests/data/keys/p256-sec1.pem");
const P384_PEM: &str = include_str!("../../../tests/data/keys/p384.pem");
const ED25519_PEM: &str = include_str!("../../../tests/data/keys/ed25519.pem");

// Independently computed from OpenSSL's view of the PEM files.
const P256_X: &str = "9eyj7QniJeiyHUofCQ2GQGwxWIua0Sob8f138nLqc5c";
const P256_Y: &str = "9IfkPeJLJf663kIjvERgbrx8ubv2HewLgZRdJ4yPPHU";
const P256_KID: &str = "xLufFZjjAOhakolevTribzjvaSqhRC_aaaP2g1QI3yY";
const ED25519_X: &str = "VJUcOWrD8UKbdImBqZX5vWr1J5xQn5Im2Ub-OfdsOlA";
const ED25519_KID: &str = "13Zy2nw2450CdOvquxdKZ1HnOmrRCvKXemPF_-9vh4A";
const RSA_N: &str = "zauyslfc6WUXcllZmeFGttm8NE8crg9f7_zecgq3rYmPkr10lM72kyX7dy0W7qXufIRVObvfVZ19PksfqTrONIxU281QTDwdnmkZUmqGCL1s8qa5XfXuiHgr0nTAlRYTN7xcqE-TSxQZ9OJgW3KRVnIKyMYPJsmzadvESdoO2IGcQxrw2kJF4MNh8duxcBmnmKXlxZpJ5jQnkQMUGm734Nx0lp_BdlRPaHuZ5XKW637Qf9_ZMuxkHRLNuVewdRUZoD9svnOfN8rWtIDNGHnhNk_0SEVbuwxgMdAvmL6M4phfNSjmL2Jfr0j01sF9Cmv3FePf-2n7gNlgu2cDbadpzQ";
const RSA_KID: &str = "rDIqSOyeTbos_obv2UcPboouuRyXbGHLNpskzP357ds";

// test-vectors.md J1, J2, J3 (RFC 8037 A.4), J4 (RFC 7638 §3.1).
const J1_HS256: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const J2_NONE: &str = "eyJhbGciOiJub25lIn0.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.";
const J3_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const J3_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const J3_JWS: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
const J3_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
const J4_JWK: &str = r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#;
const J4_THUMBPRINT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "https://fhir.example.com/r4";
const T0: i64 = 1_700_000_000;

/// A deterministic source: SHA-256 of a seed and a counter.
struct TestRandom {
    seed: u8,
    counter: Mutex<u64>,
}

impl TestRandom {
    fn new(seed: u8) -> Self {
        Self {
            seed,
            counter: Mutex::new(0),
        }
    }
}

impl SecureRandom for TestRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        let mut counter = self.counter.lock().unwrap();
        for chunk in dest.chunks_mut(32) {
            *counter += 1;
            let mut hasher = Sha256::new();
            hasher.update([self.seed]);
            hasher.update(counter.to_be_bytes());
            let block = hasher.finalize();
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        Ok(())
    }
}

/// A source that hands out the given blocks in order, then fails.
struct ScriptedRandom(Mutex<VecDeque<Vec<u8>>>);

impl ScriptedRandom {
    fn new(blocks: Vec<Vec<u8>>) -> Self {
        Self(Mutex::new(blocks.into()))
    }
}

impl SecureRandom for ScriptedRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        let block = self
            .0
            .lock()
            .unwrap()
            .pop_front()
            .ok_or_else(|| RandomError("script exhausted".to_owned()))?;
        dest.copy_from_slice(&block);
        Ok(())
    }
}

/// A source that always returns the same byte.
struct ConstantRandom(u8);

impl SecureRandom for ConstantRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        dest.fill(self.0);
        Ok(())
    }
}

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(seconds).unwrap()
}

fn expectation(typ: &str, now: i64) -> Expectation<'_> {
    Expectation {
        typ,
        issuer: ISSUER,
        audience: AUDIENCE,
        now: at(now),
        leeway_seconds: 30,
    }
}

fn claims(exp: i64) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "Practitioner/123", "iat": T0, "exp": exp, "scope": "user/*.rs"})
}

fn es256(seed: u8) -> SigningKey {
    SigningKey::generate(SigningAlgorithm::Es256, &TestRandom::new(seed)).unwrap()
}

fn eddsa(seed: u8) -> SigningKey {
    SigningKey::generate(SigningAlgorithm::EdDsa, &TestRandom::new(seed)).unwrap()
}

fn rs256() -> SigningKey {
    SigningKey::from_pkcs8_pem(SigningAlgorithm::Rs256, RSA_PEM).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs an arbitrary header and payload with `key` (or with `alg`/`encoding` overrides), for
/// building tokens `KeySet::sign` would never produce.
fn sign_raw(key: &SigningKey, header: &Value, payload: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), key.encoding(), key.alg().jwt_alg()).unwrap();
    format!("{input}.{signature}")
}

fn std_header(key: &SigningKey) -> Value {
    json!({"alg": key.alg().as_str(), "kid": key.kid(), "typ": "at+jwt"})
}

// ---------------------------------------------------------------------------------------------
// Standard vectors
// ---------------------------------------------------------------------------------------------

#[test]
fn j4_rfc7638_thumbprint() {
    let jwk: Jwk = serde_json::from_str(J4_JWK).unwrap();
    assert_eq!(thumbprint(&jwk).unwrap(), J4_THUMBPRINT);

    // kid, alg and use do not change it.
    let mut bare: Value = serde_json::from_str(J4_JWK).unwrap();
    bare.as_object_mut().unwrap().remove("kid");
    bare.as_object_mut().unwrap().remove("alg");
    let bare_jwk: Jwk = serde_json::from_value(bare.clone()).unwrap();
    assert_eq!(thumbprint(&bare_jwk).unwrap(), J4_THUMBPRINT);
    bare["use"] = json!("sig");
    bare["kid"] = json!("something-else");
    let with_use: Jwk = serde_json::from_value(bare).unwrap();
    assert_eq!(thumbprint(&with_use).unwrap(), J4_THUMBPRINT);
}

#[test]
fn j3_rfc8037_ed25519_vector() {
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "d": J3_D, "x": J3_X}).to_string();
    let key = SigningKey::from_private_jwk(&jwk).unwrap();
    assert_eq!(key.alg(), SigningAlgorithm::EdDsa);
    // RFC 8037 A.3 thumbprint.
    assert_eq!(key.kid(), J3_THUMBPRINT);
    let jsonwebtoken_thumbprint = key.public_jwk().thumbprint(ThumbprintHash::SHA256).unwrap();
    assert_eq!(jsonwebtoken_thumbprint, J3_THUMBPRINT);

    // Ed25519 is deterministic: signing with d reproduces the RFC's JWS byte for byte.
    let (input, signature) = J3_JWS.rsplit_once('.').unwrap();
    let ours =
        jsonwebtoken::crypto::sign(input.as_bytes(), key.encoding(), Algorithm::EdDSA).unwrap();
    assert_eq!(ours, signature);

    // And the RFC's JWS verifies with the RFC's public key through jsonwebtoken.
    let public: Jwk =
        serde_json::from_value(json!({"kty": "OKP", "crv": "Ed25519", "x": J3_X})).unwrap();
    let decoding = DecodingKey::from_jwk(&public).unwrap();
    assert!(
        jsonwebtoken::crypto::verify(signature, input.as_bytes(), &decoding, Algorithm::EdDSA)
            .unwrap()
    );
    let mut tampered = signature.to_owned();
    tampered.replace_range(0..1, "i");
    assert!(
        !jsonwebtoken::crypto::verify(&tampered, input.as_bytes(), &decoding, Algorithm::EdDSA)
            .unwrap_or(false)
    );
}

#[test]
fn oidc_at_hash_and_c_hash_vectors() {
    assert_eq!(
        token_hash(
            SigningAlgorithm::Rs256,
            "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
        ),
        "77QmUPtjPfzWtF2AnpK9RQ"
    );
    assert_eq!(
        token_hash(
            SigningAlgorithm::Rs256,
            "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk"
        ),
        "LDktKdoQak3Pk0cnXxCltA"
    );
    // ES256 hashes like RS256; EdDSA keeps the left half of SHA-512.
    assert_eq!(
        token_hash(SigningAlgorithm::Es256, "abc"),
        token_hash(SigningAlgorithm::Rs256, "abc")
    );
    let ed = token_hash(SigningAlgorithm::EdDsa, "abc");
    let sha512 = sha2::Sha512::digest(b"abc");
    assert_eq!(ed, b64(&sha512[..32]));
    assert_eq!(ed.len(), 43);
}

#[test]
fn j1_hs256_and_j2_unsecured_tokens_are_refused_by_every_key_set() {
    for key in [es256(1), eddsa(2), rs256()] {
        let mut set = KeySet::new(key);
        set.publish_next(es256(3)).unwrap();
        for now in [1_300_819_000, T0] {
            let expected = Expectation {
                typ: "JWT",
                issuer: "joe",
                audience: "joe",
                now: at(now),
                leeway_seconds: 0,
            };
            assert_eq!(
                set.verify::<Value>(J1_HS256, &expected),
                Err(TokenError::AlgorithmMismatch)
            );
            assert_eq!(
                set.verify::<Value>(J2_NONE, &expected),
                Err(TokenError::AlgorithmMismatch)
            );
        }
    }
}

#[test]
fn none_and_hmac_with_a_real_kid_are_refused() {
    let key = es256(4);
    let set = KeySet::new(key.clone());
    let payload = b64(claims(T0 + 600).to_string().as_bytes());
    for alg in [
        "none", "None", "NONE", "HS256", "HS384", "HS512", "ES384", "PS256", "RS256", "EdDSA",
        "Ed25519", "",
    ] {
        let header = json!({"alg": alg, "kid": key.kid(), "typ": "at+jwt"});
        for signature in ["", "c2ln"] {
            let token = format!(
                "{}.{payload}.{signature}",
                b64(header.to_string().as_bytes())
            );
            assert_eq!(
                set.verify::<Value>(&token, &expectation("at+jwt", T0)),
                Err(TokenError::AlgorithmMismatch),
                "{alg}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Keys: generation, loading, export
// ---------------------------------------------------------------------------------------------

#[test]
fn round_trip_for_every_algorithm() {
    for key in [es256(10), eddsa(11), rs256()] {
        let set = KeySet::new(key.clone());
        let token = set.sign("at+jwt", &claims(T0 + 600)).unwrap();
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            header,
            json!({"alg": key.alg().as_str(), "kid": key.kid(), "typ": "at+jwt"})
        );
        let back: Value = set.verify(&token, &expectation("at+jwt", T0)).unwrap();
        assert_eq!(back, claims(T0 + 600));

        // The token also verifies with the published public key through jsonwebtoken alone.
        let (input, signature) = token.rsplit_once('.').unwrap();
        let decoding = DecodingKey::from_jwk(key.public_jwk()).unwrap();
        assert!(
            jsonwebtoken::crypto::verify(
                signature,
                input.as_bytes(),
                &decoding,
                key.alg().jwt_alg()
            )
            .unwrap()
        );
    }
}

#[test]
fn generation_is_driven_by_the_injected_random_source() {
    for alg in [SigningAlgorithm::Es256, SigningAlgorithm::EdDsa] {
        let a = SigningKey::generate(alg, &TestRandom::new(7)).unwrap();
        let b = SigningKey::generate(alg, &TestRandom::new(7)).unwrap();
        let c = SigningKey::generate(alg, &TestRandom::new(8)).unwrap();
        assert_eq!(a.kid(), b.kid());
        assert_eq!(a.to_private_jwk(), b.to_private_jwk());
        assert_ne!(a.kid(), c.kid());
        assert_eq!(a.alg(), alg);
    }
    assert_eq!(
        SigningKey::generate(SigningAlgorithm::Rs256, &TestRandom::new(1)).unwrap_err(),
        KeyError::Unsupported("RS256 keys are loaded from PEM or JWK, not generated".to_owned())
    );
}

#[test]
fn p256_generation_redraws_out_of_range_scalars() {
    let mut good = [0u8; 32];
    good[31] = 42;
    let rng = ScriptedRandom::new(vec![vec![0xff; 32], vec![0; 32], good.to_vec()]);
    let key = SigningKey::generate(SigningAlgorithm::Es256, &rng).unwrap();
    let private: Value = serde_json::from_str(&key.to_private_jwk()).unwrap();
    assert_eq!(private["d"], b64(&good));

    // A source stuck on an invalid value is reported, not looped on forever.
    assert!(matches!(
        SigningKey::generate(SigningAlgorithm::Es256, &ConstantRandom(0)),
        Err(KeyError::InvalidKey(_))
    ));
    // A failing source is an error.
    assert!(matches!(
        SigningKey::generate(SigningAlgorithm::EdDsa, &ScriptedRandom::new(vec![])),
        Err(KeyError::InvalidKey(_))
    ));
}

#[test]
fn pem_keys_load_with_the_expected_public_keys_and_kids() {
    let ec = SigningKey::from_pkcs8_pem(SigningAlgorithm::Es256, P256_PEM).unwrap();
    let ec_sec1 = SigningKey::from_pkcs8_pem(SigningAlgorithm::Es256, P256_SEC1_PEM).unwrap();
    assert_eq!(ec.kid(), P256_KID);
    assert_eq!(ec_sec1.kid(), P256_KID);
    let ec_jwk = serde_json::to_value(ec.public_jwk()).unwrap();
    assert_eq!(ec_jwk["x"], P256_X);
    assert_eq!(ec_jwk["y"], P256_Y);

    let ed = SigningKey::from_pkcs8_pem(SigningAlgorithm::EdDsa, ED25519_PEM).unwrap();
    assert_eq!(ed.kid(), ED25519_KID);
    assert_eq!(
        serde_json::to_value(ed.public_jwk()).unwrap()["x"],
        ED25519_X
    );

    let rsa = rs256();
    let rsa_pkcs1 = SigningKey::from_pkcs8_pem(SigningAlgorithm::Rs256, RSA_PKCS1_PEM).unwrap();
    assert_eq!(rsa.kid(), RSA_KID);
    assert_eq!(rsa_pkcs1.kid(), RSA_KID);
    let rsa_jwk = serde_json::to_value(rsa.public_jwk()).unwrap();
    assert_eq!(rsa_jwk["n"], RSA_N);
    assert_eq!(rsa_jwk["e"], "AQAB");
    assert_eq!(rsa.to_private_jwk(), rsa_pkcs1.to_private_jwk());

    // jsonwebtoken's own PEM parsing and thumbprint agree.
    let pairs = [
        (
            EncodingKey::from_ec_pem(P256_PEM.as_bytes()).unwrap(),
            Algorithm::ES256,
            P256_KID,
        ),
        (
            EncodingKey::from_ed_pem(ED25519_PEM.as_bytes()).unwrap(),
            Algorithm::EdDSA,
            ED25519_KID,
        ),
        (
            EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).unwrap(),
            Algorithm::RS256,
            RSA_KID,
        ),
    ];
    for (encoding, alg, kid) in pairs {
        let jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
        assert_eq!(jwk.thumbprint(ThumbprintHash::SHA256).unwrap(), kid);
        assert_eq!(thumbprint(&jwk).unwrap(), kid);
    }
}

#[test]
fn pem_loading_refuses_the_wrong_algorithm_weak_and_unsupported_keys() {
    assert!(matches!(
        SigningKey::from_pkcs8_pem(SigningAlgorithm::Rs256, P256_PEM),
        Err(KeyError::InvalidKey(_))
    ));
    assert!(matches!(
        SigningKey::from_pkcs8_pem(SigningAlgorithm::Es256, ED25519_PEM),
        Err(KeyError::InvalidKey(_))
    ));
    assert!(matches!(
        SigningKey::from_pkcs8_pem(SigningAlgorithm::EdDsa, RSA_PEM),
        Err(KeyError::InvalidKey(_))
    ));
    assert!(matches!(
        SigningKey::from_pkcs8_pem(SigningAlgorithm::Rs256, RSA_WEAK_PEM),
        Err(KeyError::InvalidKey(_))
    ));
    assert!(matches!(
        SigningKey::from_pkcs8_pem(SigningAlgorithm::Es256, P384_PEM),
        Err(KeyError::Unsupported(_))
    ));
    let encrypted =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAMCAQA=\n-----END ENCRYPTED PRIVATE KEY-----\n";
    assert!(matches!(
        SigningKey::from_pkcs8_pem(SigningAlgorithm::Es256, encrypted),
        Err(KeyError::Unsupported(_))
    ));
    for garbage in [
        "",
        "not a pem",
        "-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----",
    ] {
        assert!(SigningKey::from_pkcs8_pem(SigningAlgorithm::Es256, garbage).is_err());
    }
    // A PKCS#8 whose public key does not match its private key.
    let (_, der) = der::decode_pem(P256_PEM).unwrap();
    let mut tampered = der.to_vec();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(&tampered)
    );
    assert!(matches!(
        SigningKey::from_pkcs8_pem(SigningAlgorithm::Es256, &pem),
        Err(KeyError::InvalidKey(_))
    ));
}

#[test]
fn private_jwk_round_trips_with_the_same_kid() {
    for key in [es256(20), eddsa(21), rs256()] {
        let exported = key.to_private_jwk();
        let parsed: Value = serde_json::from_str(&exported).unwrap();
        assert_eq!(parsed["kid"], key.kid());
        assert_eq!(parsed["alg"], key.alg().as_str());
        assert_eq!(parsed["use"], "sig");
        assert!(parsed.get("d").is_some());
        let again = SigningKey::from_private_jwk(&exported).unwrap();
        assert_eq!(again.kid(), key.kid());
        assert_eq!(again.alg(), key.alg());
        assert_eq!(again.to_private_jwk(), exported);
        // A token from the reloaded key verifies against the original.
        let token = KeySet::new(again).sign("at+jwt", &claims(T0 + 60)).unwrap();
        let set = KeySet::new(key);
        assert!(
            set.verify::<Value>(&token, &expectation("at+jwt", T0))
                .is_ok()
        );
    }
}

#[test]
fn private_jwk_loading_checks_consistency_and_support() {
    let a: Value = serde_json::from_str(&es256(30).to_private_jwk()).unwrap();
    let b: Value = serde_json::from_str(&es256(31).to_private_jwk()).unwrap();
    let mut mixed = a.clone();
    mixed["x"] = b["x"].clone();
    mixed["y"] = b["y"].clone();
    assert_eq!(
        SigningKey::from_private_jwk(&mixed.to_string()).unwrap_err(),
        KeyError::InvalidKey("the public key does not match the private key".to_owned())
    );

    let ed: Value = serde_json::from_str(&eddsa(32).to_private_jwk()).unwrap();
    let mut ed_mixed = ed.clone();
    ed_mixed["x"] = json!(J3_X);
    assert!(matches!(
        SigningKey::from_private_jwk(&ed_mixed.to_string()),
        Err(KeyError::InvalidKey(_))
    ));
    // RFC 9864's "Ed25519" alg name is accepted for loading.
    let mut ed_new_name = ed.clone();
    ed_new_name["alg"] = json!("Ed25519");
    assert_eq!(
        SigningKey::from_private_jwk(&ed_new_name.to_string())
            .unwrap()
            .alg(),
        SigningAlgorithm::EdDsa
    );

    let rsa: Value = serde_json::from_str(&rs256().to_private_jwk()).unwrap();
    let mut rsa_bad_d = rsa.clone();
    let mut d = URL_SAFE_NO_PAD.decode(rsa["d"].as_str().unwrap()).unwrap();
    d[100] ^= 0x10;
    rsa_bad_d["d"] = json!(b64(&d));
    // aws-lc checks d; the RustCrypto backend checks d against p and q: both refuse.
    assert!(matches!(
        SigningKey::from_private_jwk(&rsa_bad_d.to_string()),
        Err(KeyError::InvalidKey(_))
    ));
    let mut rsa_bad_p = rsa.clone();
    rsa_bad_p["p"] = rsa["q"].clone();
    assert!(SigningKey::from_private_jwk(&rsa_bad_p.to_string()).is_err());
    let mut rsa_no_crt = rsa.clone();
    rsa_no_crt.as_object_mut().unwrap().remove("qi");
    assert!(matches!(
        SigningKey::from_private_jwk(&rsa_no_crt.to_string()),
        Err(KeyError::InvalidKey(_))
    ));
    let mut rsa_ps = rsa.clone();
    rsa_ps["alg"] = json!("PS256");
    assert!(matches!(
        SigningKey::from_private_jwk(&rsa_ps.to_string()),
        Err(KeyError::Unsupported(_))
    ));
    let mut rsa_enc = rsa.clone();
    rsa_enc["use"] = json!("enc");
    assert!(matches!(
        SigningKey::from_private_jwk(&rsa_enc.to_string()),
        Err(KeyError::InvalidKey(_))
    ));
    let mut ec_wrong_alg = a.clone();
    ec_wrong_alg["alg"] = json!("RS256");
    assert!(matches!(
        SigningKey::from_private_jwk(&ec_wrong_alg.to_string()),
        Err(KeyError::InvalidKey(_))
    ));
    // A foreign kid is ignored: the kid is the thumbprint.
    let mut other_kid = a.clone();
    other_kid["kid"] = json!("2011-04-29");
    assert_eq!(
        SigningKey::from_private_jwk(&other_kid.to_string())
            .unwrap()
            .kid(),
        a["kid"]
    );

    // Public keys, symmetric keys, other curves, garbage.
    let public_only: Value = serde_json::from_str(J4_JWK).unwrap();
    for (jwk, unsupported) in [
        (public_only, false),
        (
            json!({"kty": "oct", "k": "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}),
            true,
        ),
        (
            json!({"kty": "EC", "crv": "P-384", "d": "AA", "x": "AA", "y": "AA"}),
            true,
        ),
        (
            json!({"kty": "OKP", "crv": "Ed448", "d": "AA", "x": "AA"}),
            true,
        ),
        (
            json!({"kty": "OKP", "crv": "Ed25519", "d": "AA", "x": "AA"}),
            false,
        ),
        (
            json!({"kty": "EC", "crv": "P-256", "d": "!!", "x": "AA", "y": "AA"}),
            false,
        ),
        (json!({"kty": 5}), false),
        (json!([1, 2]), false),
    ] {
        let result = SigningKey::from_private_jwk(&jwk.to_string());
        if unsupported {
            assert!(matches!(result, Err(KeyError::Unsupported(_))), "{jwk}");
        } else {
            assert!(matches!(result, Err(KeyError::InvalidKey(_))), "{jwk}");
        }
    }
    assert!(SigningKey::from_private_jwk("{").is_err());
    assert!(SigningKey::from_private_jwk(r#"{"kty":"EC","kty":"EC","crv":"P-256"}"#).is_err());
}

#[test]
fn debug_output_shows_no_private_material() {
    for key in [es256(40), eddsa(41), rs256()] {
        let private: Value = serde_json::from_str(&key.to_private_jwk()).unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains(key.kid()));
        for member in ["d", "p", "q", "dp", "dq", "qi"] {
            if let Some(secret) = private.get(member).and_then(Value::as_str) {
                assert!(!debug.contains(secret));
                assert!(!debug.contains(&secret[..12]));
            }
        }
        let mut set = KeySet::new(key.clone());
        set.publish_next(es256(42)).unwrap();
        let set_debug = format!("{set:?}");
        assert!(set_debug.contains(key.kid()));
        assert!(!set_debug.contains(private["d"].as_str().unwrap()));
    }
}

// ---------------------------------------------------------------------------------------------
// JWKS and rotation
// ---------------------------------------------------------------------------------------------

#[test]
fn jwks_holds_public_keys_only_with_kid_alg_and_use() {
    let mut set = KeySet::new(es256(50));
    set.publish_next(rs256()).unwrap();
    set.promote_next(at(T0), Duration::hours(1)).unwrap();
    set.publish_next(eddsa(51)).unwrap();

    let json = set.jwks_json();
    let keys = json["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3);
    let mut kids = HashSet::new();
    for key in keys {
        let object = key.as_object().unwrap();
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(!object.contains_key(private), "{private} in {key}");
        }
        for absent in ["x5u", "x5c", "key_ops"] {
            assert!(!object.contains_key(absent));
        }
        assert_eq!(key["use"], "sig");
        assert!(["ES256", "EdDSA", "RS256"].contains(&key["alg"].as_str().unwrap()));
        let kid = key["kid"].as_str().unwrap();
        assert!(kids.insert(kid.to_owned()), "duplicate kid {kid}");
        let jwk: Jwk = serde_json::from_value(key.clone()).unwrap();
        assert_eq!(thumbprint(&jwk).unwrap(), kid);
    }
    assert_eq!(serde_json::to_value(set.jwks()).unwrap(), json);
    assert_eq!(keys[0]["kid"], set.active().kid());
}

#[test]
fn rotation_publishes_first_then_signs_then_retires() {
    let old = es256(60);
    let new = eddsa(61);
    let mut set = KeySet::new(old.clone());
    let expected = |now| expectation("at+jwt", now);

    let before = set.sign("at+jwt", &claims(T0 + 7200)).unwrap();
    assert_eq!(set.publish_next(new.clone()), Ok(()));
    assert_eq!(set.jwks().keys.len(), 2);
    assert!(set.jwks().find(new.kid()).is_some());
    // Published but not used: the old key still signs.
    let during = set.sign("at+jwt", &claims(T0 + 7200)).unwrap();
    assert_eq!(kid_of(&during), old.kid());
    assert_eq!(set.next().unwrap().kid(), new.kid());

    // Another node that already promoted signs with the new key: this node accepts it.
    let mut promoted_elsewhere = set.clone();
    promoted_elsewhere
        .promote_next(at(T0), Duration::hours(1))
        .unwrap();
    let early = promoted_elsewhere
        .sign("at+jwt", &claims(T0 + 600))
        .unwrap();
    assert!(set.verify::<Value>(&early, &expected(T0)).is_ok());

    // Refusals while a next key is pending.
    assert_eq!(set.publish_next(eddsa(62)), Err(KeyError::Duplicate));

    set.promote_next(at(T0), Duration::hours(1)).unwrap();
    assert_eq!(set.active().kid(), new.kid());
    assert!(set.next().is_none());
    assert_eq!(
        set.promote_next(at(T0), Duration::hours(1)),
        Err(KeyError::NoNextKey)
    );
    // The retired key cannot come back as next, nor the active one.
    assert_eq!(set.publish_next(old.clone()), Err(KeyError::Duplicate));
    assert_eq!(set.publish_next(new.clone()), Err(KeyError::Duplicate));

    let after = set.sign("at+jwt", &claims(T0 + 7200)).unwrap();
    assert_eq!(kid_of(&after), new.kid());
    assert_eq!(set.jwks().keys.len(), 2);
    for token in [&before, &during, &after] {
        assert!(set.verify::<Value>(token, &expected(T0 + 1800)).is_ok());
        assert!(set.verify::<Value>(token, &expected(T0 + 3600)).is_ok());
    }
    // Past keep-until the retired key no longer verifies, even before pruning.
    assert_eq!(
        set.verify::<Value>(&before, &expected(T0 + 3601)),
        Err(TokenError::UnknownKey)
    );
    set.prune(at(T0 + 3600));
    assert_eq!(set.jwks().keys.len(), 2);
    set.prune(at(T0 + 3601));
    assert_eq!(set.jwks().keys.len(), 1);
    assert_eq!(set.retired().count(), 0);
    for token in [&before, &during] {
        assert_eq!(
            set.verify::<Value>(token, &expected(T0 + 1800)),
            Err(TokenError::UnknownKey)
        );
    }
    assert!(set.verify::<Value>(&after, &expected(T0 + 3601)).is_ok());
}

fn kid_of(token: &str) -> String {
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------------
// Verification: every refusal
// ---------------------------------------------------------------------------------------------

#[test]
fn tampering_breaks_the_signature() {
    let key = es256(70);
    let set = KeySet::new(key.clone());
    let token = set.sign("at+jwt", &claims(T0 + 600)).unwrap();
    let parts: Vec<&str> = token.split('.').collect();

    let mut forged = claims(T0 + 600);
    forged["scope"] = json!("user/*.cruds");
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        b64(forged.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(
        set.verify::<Value>(&swapped, &expectation("at+jwt", T0)),
        Err(TokenError::BadSignature)
    );

    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[10] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], b64(&signature));
    assert_eq!(
        set.verify::<Value>(&flipped, &expectation("at+jwt", T0)),
        Err(TokenError::BadSignature)
    );
    for bad_signature in ["", "AAAA"] {
        let token = format!("{}.{}.{bad_signature}", parts[0], parts[1]);
        assert_eq!(
            set.verify::<Value>(&token, &expectation("at+jwt", T0)),
            Err(TokenError::BadSignature)
        );
    }
    // A signature that is not base64url is not a compact JWS at all.
    let token = format!("{}.{}.!!!!", parts[0], parts[1]);
    assert_eq!(
        set.verify::<Value>(&token, &expectation("at+jwt", T0)),
        Err(TokenError::Malformed)
    );
    // Same header with another key's kid swapped in.
    let other = es256(71);
    let mut set2 = set.clone();
    set2.publish_next(other.clone()).unwrap();
    let header = json!({"alg": "ES256", "kid": other.kid(), "typ": "at+jwt"});
    let rekeyed = format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        parts[1],
        parts[2]
    );
    assert_eq!(
        set2.verify::<Value>(&rekeyed, &expectation("at+jwt", T0)),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn typ_must_match_with_optional_application_prefix() {
    let key = eddsa(72);
    let set = KeySet::new(key.clone());
    let payload = claims(T0 + 600);
    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/AT+JWT",
    ] {
        let token = set.sign(typ, &payload).unwrap();
        assert!(
            set.verify::<Value>(&token, &expectation("at+jwt", T0))
                .is_ok(),
            "{typ}"
        );
        assert!(
            set.verify::<Value>(&token, &expectation("application/at+jwt", T0))
                .is_ok(),
            "{typ}"
        );
    }
    for typ in [
        "JWT",
        "at+jwt ",
        "",
        "application/",
        "text/at+jwt",
        "application/x/at+jwt",
    ] {
        let token = set.sign(typ, &payload).unwrap();
        assert_eq!(
            set.verify::<Value>(&token, &expectation("at+jwt", T0)),
            Err(TokenError::WrongType),
            "{typ:?}"
        );
    }
    let jwt = set.sign("JWT", &payload).unwrap();
    assert!(set.verify::<Value>(&jwt, &expectation("JWT", T0)).is_ok());
    assert_eq!(
        set.verify::<Value>(&jwt, &expectation("at+jwt", T0)),
        Err(TokenError::WrongType)
    );
    // No typ at all.
    let untyped = sign_raw(&key, &json!({"alg": "EdDSA", "kid": key.kid()}), &payload);
    assert_eq!(
        set.verify::<Value>(&untyped, &expectation("at+jwt", T0)),
        Err(TokenError::WrongType)
    );
}

#[test]
fn issuer_and_audience_are_checked() {
    let key = es256(73);
    let set = KeySet::new(key.clone());
    let check = |payload: Value| {
        let token = set.sign("at+jwt", &payload).unwrap();
        set.verify::<Value>(&token, &expectation("at+jwt", T0))
    };
    let base = claims(T0 + 600);

    let mut wrong_iss = base.clone();
    wrong_iss["iss"] = json!("https://auth.example.com/");
    assert_eq!(check(wrong_iss), Err(TokenError::WrongIssuer));
    let mut iss_array = base.clone();
    iss_array["iss"] = json!([ISSUER]);
    assert_eq!(check(iss_array), Err(TokenError::WrongIssuer));
    let mut no_iss = base.clone();
    no_iss.as_object_mut().unwrap().remove("iss");
    assert_eq!(check(no_iss), Err(TokenError::MissingClaim("iss")));

    let mut wrong_aud = base.clone();
    wrong_aud["aud"] = json!("https://other.example.com");
    assert_eq!(check(wrong_aud), Err(TokenError::WrongAudience));
    let mut wrong_aud_array = base.clone();
    wrong_aud_array["aud"] = json!(["https://other.example.com", "client-1"]);
    assert_eq!(check(wrong_aud_array), Err(TokenError::WrongAudience));
    let mut empty_aud_array = base.clone();
    empty_aud_array["aud"] = json!([]);
    assert_eq!(check(empty_aud_array), Err(TokenError::WrongAudience));
    let mut aud_array = base.clone();
    aud_array["aud"] = json!(["client-1", AUDIENCE]);
    assert_eq!(check(aud_array.clone()), Ok(aud_array));
    let mut no_aud = base.clone();
    no_aud.as_object_mut().unwrap().remove("aud");
    assert_eq!(check(no_aud), Err(TokenError::MissingClaim("aud")));
    let mut numeric_aud = base.clone();
    numeric_aud["aud"] = json!(5);
    assert_eq!(check(numeric_aud), Err(TokenError::Malformed));
}

#[test]
fn time_checks_use_the_injected_time_and_leeway() {
    let key = rs256();
    let set = KeySet::new(key.clone());
    let exp = T0 + 600;
    let token = set.sign("at+jwt", &claims(exp)).unwrap();
    let verify_at = |now: i64, leeway: i64| {
        let expected = Expectation {
            leeway_seconds: leeway,
            ..expectation("at+jwt", now)
        };
        set.verify::<Value>(&token, &expected)
    };
    // Leeway 30: valid while now < exp + 30.
    assert!(verify_at(exp + 29, 30).is_ok());
    assert_eq!(verify_at(exp + 30, 30), Err(TokenError::Expired));
    // Leeway 0: valid while now < exp.
    assert!(verify_at(exp - 1, 0).is_ok());
    assert_eq!(verify_at(exp, 0), Err(TokenError::Expired));
    // Negative leeway counts as zero.
    assert!(verify_at(exp - 1, -100).is_ok());
    // The system clock plays no part: far in the past and future of today.
    assert_eq!(verify_at(4_000_000_000, 30), Err(TokenError::Expired));

    let check = |payload: Value, now: i64| {
        let token = set.sign("at+jwt", &payload).unwrap();
        set.verify::<Value>(&token, &expectation("at+jwt", now))
    };
    let mut nbf = claims(T0 + 600);
    nbf["nbf"] = json!(T0 + 100);
    assert_eq!(check(nbf.clone(), T0), Err(TokenError::NotYetValid));
    assert_eq!(check(nbf.clone(), T0 + 69), Err(TokenError::NotYetValid));
    assert!(check(nbf.clone(), T0 + 70).is_ok());
    let mut iat_future = claims(T0 + 600);
    iat_future["iat"] = json!(T0 + 31);
    assert_eq!(check(iat_future.clone(), T0), Err(TokenError::NotYetValid));
    iat_future["iat"] = json!(T0 + 30);
    assert!(check(iat_future, T0).is_ok());

    let mut no_exp = claims(T0 + 600);
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(check(no_exp, T0), Err(TokenError::MissingClaim("exp")));
    let mut null_exp = claims(T0 + 600);
    null_exp["exp"] = Value::Null;
    assert_eq!(check(null_exp, T0), Err(TokenError::MissingClaim("exp")));
    let mut string_exp = claims(T0 + 600);
    string_exp["exp"] = json!("1700000600");
    assert_eq!(check(string_exp, T0), Err(TokenError::Malformed));
    // Fractions never extend validity.
    let mut fractional = claims(T0 + 600);
    fractional["exp"] = json!(T0 as f64 + 0.9);
    assert_eq!(check(fractional.clone(), T0 + 30), Err(TokenError::Expired));
    assert!(check(fractional, T0 + 29).is_ok());
    let mut huge = claims(T0 + 600);
    huge["exp"] = json!(u64::MAX);
    huge["nbf"] = json!(i64::MIN);
    assert!(check(huge, T0).is_ok());
}

#[test]
fn kid_must_name_a_key_of_the_set() {
    let key = es256(74);
    let set = KeySet::new(key.clone());
    let foreign = KeySet::new(es256(75))
        .sign("at+jwt", &claims(T0 + 600))
        .unwrap();
    assert_eq!(
        set.verify::<Value>(&foreign, &expectation("at+jwt", T0)),
        Err(TokenError::UnknownKey)
    );
    let payload = claims(T0 + 600);
    let no_kid = sign_raw(&key, &json!({"alg": "ES256", "typ": "at+jwt"}), &payload);
    assert_eq!(
        set.verify::<Value>(&no_kid, &expectation("at+jwt", T0)),
        Err(TokenError::UnknownKey)
    );
    for kid in [json!(null), json!(""), json!(key.kid().to_uppercase())] {
        let token = sign_raw(
            &key,
            &json!({"alg": "ES256", "kid": kid, "typ": "at+jwt"}),
            &payload,
        );
        assert_eq!(
            set.verify::<Value>(&token, &expectation("at+jwt", T0)),
            Err(TokenError::UnknownKey)
        );
    }
    let numeric_kid = sign_raw(
        &key,
        &json!({"alg": "ES256", "kid": 7, "typ": "at+jwt"}),
        &payload,
    );
    assert_eq!(
        set.verify::<Value>(&numeric_kid, &expectation("at+jwt", T0)),
        Err(TokenError::Malformed)
    );
    // The properly signed token with the kid verifies.
    let good = sign_raw(&key, &std_header(&key), &payload);
    assert!(
        set.verify::<Value>(&good, &expectation("at+jwt", T0))
            .is_ok()
    );
}

#[test]
fn header_alg_must_be_the_keys_algorithm() {
    let payload = claims(T0 + 600);
    for key in [es256(76), eddsa(77), rs256()] {
        let set = KeySet::new(key.clone());
        // HS256 "signed" with the public key as the secret: the classic confusion attack.
        let public_bytes = serde_json::to_vec(key.public_jwk()).unwrap();
        for secret in [public_bytes, key.kid().as_bytes().to_vec()] {
            let header = json!({"alg": "HS256", "kid": key.kid(), "typ": "at+jwt"});
            let input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(payload.to_string().as_bytes())
            );
            let signature = jsonwebtoken::crypto::sign(
                input.as_bytes(),
                &EncodingKey::from_secret(&secret),
                Algorithm::HS256,
            )
            .unwrap();
            let forged = format!("{input}.{signature}");
            assert_eq!(
                set.verify::<Value>(&forged, &expectation("at+jwt", T0)),
                Err(TokenError::AlgorithmMismatch)
            );
        }
        // Another of our algorithms under this key's kid.
        for other in [
            SigningAlgorithm::Es256,
            SigningAlgorithm::EdDsa,
            SigningAlgorithm::Rs256,
        ] {
            if other == key.alg() {
                continue;
            }
            let header = json!({"alg": other.as_str(), "kid": key.kid(), "typ": "at+jwt"});
            let token = format!(
                "{}.{}.AAAA",
                b64(header.to_string().as_bytes()),
                b64(payload.to_string().as_bytes())
            );
            assert_eq!(
                set.verify::<Value>(&token, &expectation("at+jwt", T0)),
                Err(TokenError::AlgorithmMismatch)
            );
        }
    }
}

#[test]
fn header_and_payload_shapes_are_enforced() {
    let key = es256(78);
    let set = KeySet::new(key.clone());
    let payload = claims(T0 + 600);
    let expected = expectation("at+jwt", T0);

    let mut crit = std_header(&key);
    crit["crit"] = json!(["exp"]);
    assert_eq!(
        set.verify::<Value>(&sign_raw(&key, &crit, &payload), &expected),
        Err(TokenError::Malformed)
    );
    // Duplicate header members and duplicate registered claims are refused.
    let duplicated_header = format!(
        r#"{{"alg":"ES256","kid":"{}","typ":"at+jwt","kid":"{}"}}"#,
        key.kid(),
        key.kid()
    );
    let input = format!(
        "{}.{}",
        b64(duplicated_header.as_bytes()),
        b64(payload.to_string().as_bytes())
    );
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), key.encoding(), Algorithm::ES256).unwrap();
    assert_eq!(
        set.verify::<Value>(&format!("{input}.{signature}"), &expected),
        Err(TokenError::Malformed)
    );
    let duplicated_claims = format!(
        r#"{{"iss":"https://evil.example","iss":"{ISSUER}","aud":"{AUDIENCE}","exp":{}}}"#,
        T0 + 600
    );
    let input = format!(
        "{}.{}",
        b64(std_header(&key).to_string().as_bytes()),
        b64(duplicated_claims.as_bytes())
    );
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), key.encoding(), Algorithm::ES256).unwrap();
    assert_eq!(
        set.verify::<Value>(&format!("{input}.{signature}"), &expected),
        Err(TokenError::Malformed)
    );
    // A signed payload that is not a JSON object.
    for body in [json!([1, 2, 3]), json!("claims"), json!(null)] {
        assert_eq!(
            set.verify::<Value>(&sign_raw(&key, &std_header(&key), &body), &expected),
            Err(TokenError::Malformed)
        );
    }
    // Claims that verify but do not fit T.
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Needs {
        tenant: String,
    }
    let token = set.sign("at+jwt", &payload).unwrap();
    assert!(matches!(
        set.verify::<Needs>(&token, &expected),
        Err(TokenError::Malformed)
    ));
    // Signing refuses claims that are not an object.
    assert!(matches!(
        set.sign("at+jwt", &json!([1])),
        Err(KeyError::Signing(_))
    ));
    assert!(matches!(
        set.sign("at+jwt", &"text"),
        Err(KeyError::Signing(_))
    ));
}

#[test]
fn garbage_is_malformed_and_never_panics() {
    let key = es256(79);
    let set = KeySet::new(key.clone());
    let expected = expectation("at+jwt", T0);
    let header = b64(std_header(&key).to_string().as_bytes());
    let too_long = "a".repeat(MAX_TOKEN_BYTES + 1);
    let inputs: Vec<String> = vec![
        String::new(),
        ".".into(),
        "..".into(),
        "...".into(),
        "a.b".into(),
        "a.b.c".into(),
        "a.b.c.d".into(),
        "a.b.c.d.e".into(),
        format!("{header}..sig"),
        format!("{header}.e30.sig.extra"),
        format!(".{header}.sig"),
        "é.ü.ß".into(),
        "eyJhbGciOiJFUzI1NiJ9".into(),
        format!("{}.e30.sig", b64(b"not json")),
        format!("{}.e30.sig", b64(b"[]")),
        format!("{}.e30.sig", b64(b"{\"alg\":5}")),
        format!("{}.e30.sig", b64(b"{}")),
        format!("{header}=.e30.sig"),
        format!("{header}.!!!.sig"),
        too_long,
    ];
    for input in &inputs {
        let result = set.verify::<Value>(input, &expected);
        assert!(result.is_err(), "{input}");
    }
    assert_eq!(
        set.verify::<Value>("", &expected),
        Err(TokenError::Malformed)
    );
    assert_eq!(
        set.verify::<Value>("a.b.c", &expected),
        Err(TokenError::Malformed)
    );
    assert_eq!(
        set.verify::<Value>(&inputs[19], &expected),
        Err(TokenError::Malformed)
    );
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_strings_never_panic(input in ".{0,300}") {
            let set = KeySet::new(es256(90));
            prop_assert!(set.verify::<Value>(&input, &expectation("at+jwt", T0)).is_err());
        }

        #[test]
        fn arbitrary_three_part_tokens_never_verify(
            a in "[A-Za-z0-9_-]{0,80}",
            b in "[A-Za-z0-9_-]{0,80}",
            c in "[A-Za-z0-9_-]{0,120}",
        ) {
            let set = KeySet::new(es256(91));
            let token = format!("{a}.{b}.{c}");
            prop_assert!(set.verify::<Value>(&token, &expectation("at+jwt", T0)).is_err());
        }

        #[test]
        fn any_single_byte_change_is_refused(position in 0usize..400, byte in any::<u8>()) {
            let set = KeySet::new(es256(92));
            let token = set.sign("at+jwt", &claims(T0 + 600)).unwrap();
            let mut bytes = token.clone().into_bytes();
            let at = position % bytes.len();
            prop_assume!(bytes[at] != byte);
            bytes[at] = byte;
            if let Ok(changed) = String::from_utf8(bytes) {
                prop_assert!(set.verify::<Value>(&changed, &expectation("at+jwt", T0)).is_err());
            }
        }
    }
}
