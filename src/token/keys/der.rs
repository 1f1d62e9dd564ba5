//! Just enough DER and PEM to read and write the private-key containers the key set handles:
//! PKCS#8 `PrivateKeyInfo` (RFC 5208 / 5958), PKCS#1 `RSAPrivateKey` (RFC 8017 A.1.2) and
//! SEC1 `ECPrivateKey` (RFC 5915). Everything is bounds-checked; nothing here panics on any
//! input.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// DER tags used here.
pub(super) mod tag {
    /// INTEGER.
    pub const INTEGER: u8 = 0x02;
    /// BIT STRING.
    pub const BIT_STRING: u8 = 0x03;
    /// OCTET STRING.
    pub const OCTET_STRING: u8 = 0x04;
    /// NULL.
    pub const NULL: u8 = 0x05;
    /// OBJECT IDENTIFIER.
    pub const OID: u8 = 0x06;
    /// SEQUENCE (constructed).
    pub const SEQUENCE: u8 = 0x30;
    /// `[0]` constructed, context-specific.
    pub const CONTEXT_0: u8 = 0xA0;
    /// `[1]` constructed, context-specific.
    pub const CONTEXT_1: u8 = 0xA1;
    /// `[1]` primitive, context-specific (PKCS#8 v2 `publicKey`, an implicit BIT STRING).
    pub const CONTEXT_1_PRIMITIVE: u8 = 0x81;
}

/// Content bytes of the object identifiers used here.
pub(super) mod oid {
    /// rsaEncryption, 1.2.840.113549.1.1.1.
    pub const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    /// id-ecPublicKey, 1.2.840.10045.2.1.
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    /// prime256v1 (P-256), 1.2.840.10045.3.1.7.
    pub const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    /// id-Ed25519, 1.3.101.112.
    pub const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
}

/// Malformed DER or PEM (the detail is for messages; it never contains key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DerError(pub &'static str);

/// A cursor over DER bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub(super) fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    /// Whether everything has been read.
    pub(super) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The tag of the next element, if any.
    pub(super) fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// Reads one element of any tag: (tag, content).
    pub(super) fn read_any(&mut self) -> Result<(u8, &'a [u8]), DerError> {
        let (&tag, after_tag) = self.rest.split_first().ok_or(DerError("truncated DER"))?;
        let (&first, after_len) = after_tag
            .split_first()
            .ok_or(DerError("truncated DER length"))?;
        let (len, after_len) = if first < 0x80 {
            (usize::from(first), after_len)
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err(DerError("unsupported DER length"));
            }
            let bytes = after_len
                .get(..count)
                .ok_or(DerError("truncated DER length"))?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, after_len.get(count..).unwrap_or_default())
        };
        let content = after_len
            .get(..len)
            .ok_or(DerError("DER length exceeds the data"))?;
        self.rest = after_len.get(len..).unwrap_or_default();
        Ok((tag, content))
    }

    /// Reads one element that must carry `expected` as its tag.
    pub(super) fn read(&mut self, expected: u8) -> Result<&'a [u8], DerError> {
        let (found, content) = self.read_any()?;
        if found == expected {
            Ok(content)
        } else {
            Err(DerError("unexpected DER tag"))
        }
    }

    /// Reads the next element if it carries `expected` as its tag.
    pub(super) fn read_optional(&mut self, expected: u8) -> Result<Option<&'a [u8]>, DerError> {
        if self.peek_tag() == Some(expected) {
            self.read(expected).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Reads a non-negative INTEGER and returns its big-endian magnitude without leading
    /// zero bytes (zero is one `0x00` byte).
    pub(super) fn read_unsigned(&mut self) -> Result<&'a [u8], DerError> {
        let content = self.read(tag::INTEGER)?;
        match content.first() {
            None => Err(DerError("empty DER integer")),
            Some(b) if b & 0x80 != 0 => Err(DerError("negative DER integer")),
            Some(_) => Ok(strip_leading_zeros(content)),
        }
    }

    /// Reads a small non-negative INTEGER (a version field).
    pub(super) fn read_small(&mut self) -> Result<u8, DerError> {
        match self.read_unsigned()? {
            [value] => Ok(*value),
            _ => Err(DerError("DER version out of range")),
        }
    }
}

/// `bytes` without its leading zero bytes, keeping one byte for zero.
pub(super) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first_nonzero = bytes.iter().position(|b| *b != 0);
    match first_nonzero {
        Some(at) => bytes.get(at..).unwrap_or_default(),
        None => bytes
            .get(bytes.len().saturating_sub(1)..)
            .unwrap_or_default(),
    }
}

/// Encodes one element: tag, definite length, content.
pub(super) fn element(tag: u8, content: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(content.len() + 6));
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let significant = strip_leading_zeros(&bytes);
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// Encodes a non-negative INTEGER from its big-endian magnitude.
pub(super) fn unsigned_integer(magnitude: &[u8]) -> Zeroizing<Vec<u8>> {
    let magnitude = strip_leading_zeros(magnitude);
    let mut content = Zeroizing::new(Vec::with_capacity(magnitude.len() + 1));
    if magnitude.is_empty() || magnitude.first().is_some_and(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(magnitude);
    element(tag::INTEGER, &content)
}

/// Encodes a SEQUENCE of already encoded elements.
pub(super) fn sequence(parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    let mut content = Zeroizing::new(Vec::with_capacity(parts.iter().map(|p| p.len()).sum()));
    for part in parts {
        content.extend_from_slice(part);
    }
    element(tag::SEQUENCE, &content)
}

/// The kinds of PEM block the key loader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PemLabel {
    /// `PRIVATE KEY`: PKCS#8 `PrivateKeyInfo`.
    Pkcs8,
    /// `RSA PRIVATE KEY`: PKCS#1 `RSAPrivateKey`.
    Pkcs1Rsa,
    /// `EC PRIVATE KEY`: SEC1 `ECPrivateKey`.
    Sec1Ec,
    /// `ENCRYPTED PRIVATE KEY`: recognised so that it can be refused clearly.
    EncryptedPkcs8,
}

/// Decodes the first PEM block of `text`: its label and DER bytes. Text around the block
/// (comments, a certificate before it) is ignored; only the private-key labels are accepted.
pub(super) fn decode_pem(text: &str) -> Result<(PemLabel, Zeroizing<Vec<u8>>), DerError> {
    const BEGIN: &str = "-----BEGIN ";
    const DASHES: &str = "-----";
    let mut search = text;
    loop {
        let start = search
            .find(BEGIN)
            .ok_or(DerError("no PEM private key block"))?;
        let after_begin = search
            .get(start + BEGIN.len()..)
            .ok_or(DerError("truncated PEM"))?;
        let label_end = after_begin
            .find(DASHES)
            .ok_or(DerError("malformed PEM header"))?;
        let label_text = after_begin.get(..label_end).unwrap_or_default();
        let body_and_rest = after_begin
            .get(label_end + DASHES.len()..)
            .unwrap_or_default();
        let label = match label_text {
            "PRIVATE KEY" => PemLabel::Pkcs8,
            "RSA PRIVATE KEY" => PemLabel::Pkcs1Rsa,
            "EC PRIVATE KEY" => PemLabel::Sec1Ec,
            "ENCRYPTED PRIVATE KEY" => PemLabel::EncryptedPkcs8,
            _ => {
                // Another kind of block (a certificate, EC parameters): look further on.
                search = body_and_rest;
                continue;
            }
        };
        let end_marker = format!("-----END {label_text}-----");
        let body_end = body_and_rest
            .find(&end_marker)
            .ok_or(DerError("PEM block has no matching END line"))?;
        let body = body_and_rest.get(..body_end).unwrap_or_default();
        if body.contains(':') {
            // RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`): legacy encrypted keys.
            return Err(DerError("encrypted PEM keys are not supported"));
        }
        let compact: Zeroizing<String> =
            Zeroizing::new(body.chars().filter(|c| !c.is_ascii_whitespace()).collect());
        let der = STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| DerError("PEM body is not valid base64"))?;
        return Ok((label, Zeroizing::new(der)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 1000, 70_000] {
            let content = vec![7u8; len];
            let encoded = element(tag::OCTET_STRING, &content);
            let mut reader = Reader::new(&encoded);
            assert_eq!(reader.read(tag::OCTET_STRING).unwrap(), &content[..]);
            assert!(reader.is_empty());
        }
    }

    #[test]
    fn integers_round_trip() {
        for magnitude in [&[][..], &[0], &[1], &[0x7f], &[0x80], &[0, 0, 0x80, 1]] {
            let encoded = unsigned_integer(magnitude);
            let mut reader = Reader::new(&encoded);
            let read = reader.read_unsigned().unwrap();
            let expected = strip_leading_zeros(magnitude);
            if expected.is_empty() {
                assert_eq!(read, &[0]);
            } else {
                assert_eq!(read, expected);
            }
        }
        assert_eq!(&unsigned_integer(&[0x80])[..], &[0x02, 0x02, 0x00, 0x80]);
    }

    #[test]
    fn truncated_and_hostile_inputs_are_errors() {
        for bytes in [
            &[][..],
            &[0x30],
            &[0x30, 0x05, 0x01],
            &[0x30, 0x80],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x02, 0x01, 0x80],
            &[0x02, 0x00],
        ] {
            let mut reader = Reader::new(bytes);
            assert!(reader.read_unsigned().is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn pem_skips_other_blocks_and_refuses_encrypted_keys() {
        let text = "junk\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n\
                    -----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n";
        let (label, der) = decode_pem(text).unwrap();
        assert_eq!(label, PemLabel::Pkcs8);
        assert_eq!(&der[..], &[0x30, 0x03, 0x02, 0x01, 0x00]);
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAMCAQA=\n-----END ENCRYPTED PRIVATE KEY-----";
        assert_eq!(decode_pem(encrypted).unwrap().0, PemLabel::EncryptedPkcs8);
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nMAMCAQA=\n-----END RSA PRIVATE KEY-----";
        assert!(decode_pem(legacy).is_err());
        assert!(decode_pem("no pem here").is_err());
        assert!(decode_pem("-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n").is_err());
        assert!(decode_pem("-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----").is_err());
    }
}
