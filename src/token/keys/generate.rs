//! Key generation from the injected random source.
//!
//! Ed25519: the private key is 32 random bytes (RFC 8032 §5.1.5), used as is.
//! P-256: the private key is a scalar `d` with `1 <= d < n`; 32 random bytes are drawn and
//! drawn again while out of range (rejection sampling, FIPS 186-5 A.2.2 style). The chance of
//! a redraw is below 2^-32, so more than a few draws means a broken source, which is reported
//! rather than looped on. The public point is then derived by the JOSE backend.

use zeroize::Zeroizing;

use super::material::Private;
use super::{KeyError, SigningAlgorithm};
use crate::random::SecureRandom;

/// How many 32-byte draws P-256 generation makes before calling the source broken.
const MAX_P256_DRAWS: usize = 64;

/// The order `n` of the P-256 group, big-endian.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// Draws the private components of a new key.
pub(super) fn generate_private(
    alg: SigningAlgorithm,
    rng: &dyn SecureRandom,
) -> Result<Private, KeyError> {
    match alg {
        SigningAlgorithm::EdDsa => {
            let mut seed = Zeroizing::new([0u8; 32]);
            fill(rng, seed.as_mut_slice())?;
            Ok(Private::Ed { seed })
        }
        SigningAlgorithm::Es256 => {
            for _ in 0..MAX_P256_DRAWS {
                let mut d = Zeroizing::new([0u8; 32]);
                fill(rng, d.as_mut_slice())?;
                if is_valid_p256_scalar(&d) {
                    return Ok(Private::Ec { d });
                }
            }
            Err(KeyError::InvalidKey(format!(
                "the random source gave no P-256 scalar in range in {MAX_P256_DRAWS} draws"
            )))
        }
        SigningAlgorithm::Rs256 => Err(KeyError::Unsupported(
            "RS256 keys are loaded from PEM or JWK, not generated".to_owned(),
        )),
    }
}

fn fill(rng: &dyn SecureRandom, dest: &mut [u8]) -> Result<(), KeyError> {
    rng.fill(dest)
        .map_err(|e| KeyError::InvalidKey(format!("key generation failed: {e}")))
}

/// Whether `1 <= d < n`, without data-dependent branches on `d` (the accepted value is the
/// private key).
pub(super) fn is_valid_p256_scalar(d: &[u8; 32]) -> bool {
    // d - n, from the least significant byte: a final borrow means d < n.
    let mut borrow: u16 = 0;
    for (a, b) in d.iter().rev().zip(P256_ORDER.iter().rev()) {
        let difference = u16::from(*a)
            .wrapping_sub(u16::from(*b))
            .wrapping_sub(borrow);
        borrow = (difference >> 15) & 1;
    }
    let nonzero = d.iter().fold(0u8, |acc, b| acc | b);
    (borrow == 1) & (nonzero != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_range_edges() {
        let mut n_minus_1 = P256_ORDER;
        n_minus_1[31] -= 1;
        let mut one = [0u8; 32];
        one[31] = 1;
        let mut n_plus_1 = P256_ORDER;
        n_plus_1[31] += 1;
        assert!(is_valid_p256_scalar(&one));
        assert!(is_valid_p256_scalar(&n_minus_1));
        assert!(!is_valid_p256_scalar(&[0u8; 32]));
        assert!(!is_valid_p256_scalar(&P256_ORDER));
        assert!(!is_valid_p256_scalar(&n_plus_1));
        assert!(!is_valid_p256_scalar(&[0xff; 32]));
        // ff ff ff ff 00 00 00 00 fe ff ..: below n at byte 8.
        let mut just_below_top = [0xff; 32];
        just_below_top[4..8].fill(0);
        just_below_top[8] = 0xfe;
        assert!(is_valid_p256_scalar(&just_below_top));
    }
}
