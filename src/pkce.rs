//! PKCE (RFC 7636): challenge validation at the start of a login and the verifier check at
//! redemption. S256 only, unless a client is explicitly marked insecure.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::model::{PkceChallenge, PkceMethod};
use crate::secret::ct_eq_bytes;

/// Whether `text` is a legal `code_verifier`: 43–128 characters from
/// `[A-Z] [a-z] [0-9] - . _ ~` (RFC 7636 §4.1).
pub fn is_valid_verifier(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `text` has the shape of an S256 challenge: exactly 43 unpadded base64url
/// characters (a SHA-256 digest).
pub fn is_valid_s256_challenge(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && URL_SAFE_NO_PAD.decode(text).is_ok_and(|d| d.len() == 32)
}

/// BASE64URL(SHA-256(ASCII(verifier))).
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Checks a `code_verifier` against the challenge a code was issued with, in constant time.
/// A malformed verifier never matches.
pub fn verify(challenge: &PkceChallenge, verifier: &str) -> bool {
    if !is_valid_verifier(verifier) {
        return false;
    }
    match challenge.method {
        PkceMethod::S256 => ct_eq_bytes(
            s256_challenge(verifier).as_bytes(),
            challenge.challenge.as_bytes(),
        ),
        PkceMethod::Plain => ct_eq_bytes(verifier.as_bytes(), challenge.challenge.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s256(c: &str) -> PkceChallenge {
        PkceChallenge {
            challenge: c.to_owned(),
            method: PkceMethod::S256,
        }
    }

    #[test]
    fn rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            s256_challenge(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let c = s256("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(verify(&c, verifier));
        assert!(!verify(&c, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK"));
        assert!(is_valid_s256_challenge(&c.challenge));
    }

    #[test]
    fn verifier_syntax_edges() {
        let shortest = "a".repeat(43);
        assert_eq!(
            s256_challenge(&shortest),
            "ZtNPunH49FD35FWYhT5Tv8I7vRKQJ8uxMaL0_9eHjNA"
        );
        assert!(is_valid_verifier(&shortest));
        let longest = "A".repeat(128);
        assert_eq!(
            s256_challenge(&longest),
            "tqw8wQOGMxx2XwTwQcFH0PJ48q7Y6qAh4tAFf8b2_54"
        );
        let punct = "-._~".repeat(11);
        assert_eq!(
            s256_challenge(&punct),
            "lK2NFO4fUsSGSxx7eD9ozetZRvfDEp9wtnPrjHKcyXE"
        );
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(!is_valid_verifier(&"A".repeat(129)));
        assert!(!is_valid_verifier(
            "dBjftJeZ4CVP+mB92K27uhbUJU1p1r/wW1gFWFOEjXk"
        ));
        // a too-short verifier never matches, even against its own hash
        let short = "a".repeat(42);
        assert!(!verify(&s256(&s256_challenge(&short)), &short));
    }

    #[test]
    fn challenge_shape() {
        assert!(!is_valid_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"
        ));
        assert!(!is_valid_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"
        ));
        assert!(!is_valid_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM="
        ));
    }
}
