//! QR codes of enrolment URIs as PNG data URLs (Medplum's `enrollQrCode`).
//!
//! Medplum's sign-in form shows the TOTP enrolment step only when the answer carries
//! `enrollQrCode`, a `data:image/png;base64,…` picture of the `otpauth://` URI. The symbol is
//! made by `qrcodegen` (error correction level M, the smallest version that fits, a four-module
//! quiet zone as ISO/IEC 18004 asks); the PNG is written here: one-bit greyscale, scanlines
//! without filtering, in stored (uncompressed) deflate blocks. That keeps the dependency to one
//! small crate with no dependencies of its own; a picture of a typical URI is 5–8 KiB.
//!
//! The picture carries the TOTP secret: treat the data URL like the URI (shown once, never
//! logged).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use qrcodegen::{QrCode, QrCodeEcc};

/// Pixels per QR module.
const SCALE: usize = 4;
/// Quiet zone around the symbol, in modules (ISO/IEC 18004 §6.3.8).
const BORDER: usize = 4;
/// The longest text encoded (a URI beyond this is not an enrolment URI of ours).
pub const MAX_QR_TEXT: usize = 1024;

/// Why no QR code could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QrError {
    /// The text is longer than [`MAX_QR_TEXT`] bytes, or does not fit a QR symbol.
    #[error("the text is too long for a QR code")]
    TooLong,
}

/// A QR code of `text` as a `data:image/png;base64,…` URL.
pub fn png_data_url(text: &str) -> Result<String, QrError> {
    let png = png(text)?;
    let mut url = String::with_capacity(22 + png.len() * 4 / 3 + 4);
    url.push_str("data:image/png;base64,");
    STANDARD.encode_string(&png, &mut url);
    Ok(url)
}

/// A QR code of `text` as PNG bytes.
pub fn png(text: &str) -> Result<Vec<u8>, QrError> {
    if text.len() > MAX_QR_TEXT {
        return Err(QrError::TooLong);
    }
    let code = QrCode::encode_text(text, QrCodeEcc::Medium).map_err(|_| QrError::TooLong)?;
    let modules = usize::try_from(code.size()).map_err(|_| QrError::TooLong)?;
    let side = (modules + 2 * BORDER) * SCALE;
    let dark = |x: usize, y: usize| -> bool {
        let (mx, my) = (x / SCALE, y / SCALE);
        if mx < BORDER || my < BORDER || mx >= BORDER + modules || my >= BORDER + modules {
            return false;
        }
        // Both are below `modules`, which came from an i32.
        let to_i32 = |v: usize| i32::try_from(v - BORDER).unwrap_or(i32::MAX);
        code.get_module(to_i32(mx), to_i32(my))
    };
    Ok(encode_bilevel_png(side, dark))
}

/// A square one-bit greyscale PNG of `side` × `side` pixels; `dark(x, y)` says which are black.
fn encode_bilevel_png(side: usize, dark: impl Fn(usize, usize) -> bool) -> Vec<u8> {
    let row_bytes = side.div_ceil(8);
    let mut raw = Vec::with_capacity((row_bytes + 1) * side);
    for y in 0..side {
        raw.push(0); // filter type: none
        for byte in 0..row_bytes {
            let mut bits = 0u8;
            for bit in 0..8 {
                let x = byte * 8 + bit;
                // 1 is white in greyscale; padding bits past the edge are white too.
                if x >= side || !dark(x, y) {
                    bits |= 0x80 >> bit;
                }
            }
            raw.push(bits);
        }
    }

    let side32 = u32::try_from(side).unwrap_or(u32::MAX);
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&side32.to_be_bytes());
    header.extend_from_slice(&side32.to_be_bytes());
    // bit depth 1, colour type 0 (greyscale), deflate, adaptive filtering, no interlace
    header.extend_from_slice(&[1, 0, 0, 0, 0]);

    let mut png = Vec::with_capacity(raw.len() + raw.len() / 65_535 * 5 + 64);
    png.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    chunk(&mut png, b"IHDR", &header);
    chunk(&mut png, b"IDAT", &zlib_stored(&raw));
    chunk(&mut png, b"IEND", &[]);
    png
}

/// One PNG chunk: length, type, data, CRC-32 of type and data.
fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let length = u32::try_from(data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(out.get(start..).unwrap_or_default());
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream (RFC 1950) of stored deflate blocks (RFC 1951 §3.2.4).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 65_535 * 5 + 11);
    // CMF: deflate, 32 KiB window; FLG: no dictionary, fastest, check bits (0x7801 % 31 == 0).
    out.extend_from_slice(&[0x78, 0x01]);
    let mut blocks = data.chunks(65_535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none())); // BFINAL, BTYPE = 00
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65_521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 bytes keep the sums below 2^32 before reduction (zlib's NMAX).
    for block in data.chunks(5552) {
        for &byte in block {
            a += u32::from(byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_their_standard_check_values() {
        // The CRC-32 "check" value (ISO-HDLC) and the Adler-32 example of RFC 1950's users
        // (Wikipedia's "Wikipedia" = 0x11E60398).
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        assert_eq!(adler32(&[]), 1);
    }

    #[test]
    fn zlib_header_check_bits_and_block_split() {
        let data = vec![7u8; 70_000];
        let z = zlib_stored(&data);
        assert_eq!((u16::from(z[0]) << 8 | u16::from(z[1])) % 31, 0);
        // Two blocks: 65,535 then 4,465 bytes, the second final.
        assert_eq!(z[2], 0);
        assert_eq!(&z[3..5], &65_535u16.to_le_bytes());
        let second = 2 + 5 + 65_535;
        assert_eq!(z[second], 1);
        assert_eq!(&z[second + 1..second + 3], &4_465u16.to_le_bytes());
        assert_eq!(z.len(), 2 + 5 + 65_535 + 5 + 4_465 + 4);
    }

    #[test]
    fn overlong_text_is_refused() {
        assert_eq!(png(&"a".repeat(MAX_QR_TEXT + 1)), Err(QrError::TooLong));
        assert!(png_data_url("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP").is_ok());
    }
}
