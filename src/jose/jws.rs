//! Compact JWS (RFC 7515 §7.1): parsing and signature verification.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::claims::Registered;

/// Why a token is not a compact JWS this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwsError {
    /// Longer than the caller's cap.
    #[error("the token is too large")]
    TooLarge,
    /// Not exactly three base64url parts with a non-empty header and payload.
    #[error("the token is not a single compact JWS")]
    NotCompact,
    /// The header is not a JSON object with a string `alg`.
    #[error("the token has a malformed header")]
    MalformedHeader,
    /// The header has `crit`: no header extension is understood here (RFC 7515 §4.1.11).
    #[error("the token has critical header parameters, which are not supported")]
    Critical,
    /// The payload is not the JSON object the caller needs (or repeats a member).
    #[error("the token has a malformed payload")]
    MalformedPayload,
}

/// The JOSE header members fhirgate looks at.
#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    /// `alg`.
    pub alg: String,
    /// `kid`.
    #[serde(default)]
    pub kid: Option<String>,
    /// `typ`.
    #[serde(default)]
    pub typ: Option<String>,
    /// `jku`.
    #[serde(default)]
    pub jku: Option<String>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

impl Header {
    /// Whether `typ` names the media type `expected`: ASCII case-insensitive, with the
    /// `application/` prefix optional when the rest has no `/` (RFC 7515 §4.1.9). A missing
    /// or empty `typ` never matches.
    pub fn typ_is(&self, expected: &str) -> bool {
        fn short(media_type: &str) -> &str {
            const PREFIX: &str = "application/";
            match (
                media_type.get(..PREFIX.len()),
                media_type.get(PREFIX.len()..),
            ) {
                (Some(prefix), Some(rest))
                    if prefix.eq_ignore_ascii_case(PREFIX) && !rest.contains('/') =>
                {
                    rest
                }
                _ => media_type,
            }
        }
        match self.typ.as_deref().map(short) {
            Some(found) => !found.is_empty() && found.eq_ignore_ascii_case(short(expected)),
            None => false,
        }
    }
}

/// A parsed compact JWS whose signature has not been checked yet.
#[derive(Debug)]
pub struct Jws<'a> {
    /// The header.
    pub header: Header,
    signing_input: &'a str,
    signature: &'a str,
    payload: Vec<u8>,
}

fn base64url(part: &str) -> bool {
    part.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl<'a> Jws<'a> {
    /// Parses `token`: at most `max_bytes`, exactly three base64url parts (the signature may
    /// be empty here — it then fails verification), a JSON header with a string `alg` and
    /// no `crit`.
    pub fn parse(token: &'a str, max_bytes: usize) -> Result<Jws<'a>, JwsError> {
        if token.len() > max_bytes {
            return Err(JwsError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwsError::NotCompact);
        };
        if header.is_empty()
            || payload.is_empty()
            || !base64url(header)
            || !base64url(payload)
            || !base64url(signature)
        {
            return Err(JwsError::NotCompact);
        }
        let header_bytes = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| JwsError::MalformedHeader)?;
        let header: Header =
            serde_json::from_slice(&header_bytes).map_err(|_| JwsError::MalformedHeader)?;
        if header.crit.is_some() {
            return Err(JwsError::Critical);
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| JwsError::MalformedPayload)?;
        let signing_input = token
            .get(..token.len() - signature.len() - 1)
            .ok_or(JwsError::NotCompact)?;
        Ok(Jws {
            header,
            signing_input,
            signature,
            payload,
        })
    }

    /// The registered claims of the payload (a JSON object; a repeated member refused).
    pub fn registered(&self) -> Result<Registered, JwsError> {
        self.claims()
    }

    /// The payload as `T`. The payload must be a JSON object (RFC 7519 §7.2 step 10): an
    /// array would otherwise fill a struct's fields by position.
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, JwsError> {
        let first = self.payload.iter().find(|b| !b.is_ascii_whitespace());
        if first != Some(&b'{') {
            return Err(JwsError::MalformedPayload);
        }
        serde_json::from_slice(&self.payload).map_err(|_| JwsError::MalformedPayload)
    }

    /// Whether the signature verifies with `key` under `alg` — the algorithm the caller's
    /// policy settled on, never the header's by itself.
    pub fn verify(&self, key: &DecodingKey, alg: Algorithm) -> bool {
        matches!(
            jsonwebtoken::crypto::verify(self.signature, self.signing_input.as_bytes(), key, alg),
            Ok(true)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn shapes_that_are_not_one_compact_jws_are_refused() {
        let h = b64(r#"{"alg":"ES256"}"#);
        let p = b64(r#"{"sub":"x"}"#);
        for token in [
            String::new(),
            format!("{h}.{p}"),
            format!("{h}.{p}.sig.extra"),
            format!(".{p}.sig"),
            format!("{h}..sig"),
            format!("{h}.{p}.s+g"),
            format!("{h}=.{p}.sig"),
        ] {
            assert_eq!(
                Jws::parse(&token, 1024).unwrap_err(),
                JwsError::NotCompact,
                "{token}"
            );
        }
        assert_eq!(
            Jws::parse(&format!("{h}.{p}.sig"), 10).unwrap_err(),
            JwsError::TooLarge
        );
        let crit = b64(r#"{"alg":"ES256","crit":["exp"]}"#);
        assert_eq!(
            Jws::parse(&format!("{crit}.{p}.sig"), 1024).unwrap_err(),
            JwsError::Critical
        );
        let no_alg = b64(r#"{"kid":"k"}"#);
        assert_eq!(
            Jws::parse(&format!("{no_alg}.{p}.sig"), 1024).unwrap_err(),
            JwsError::MalformedHeader
        );
        let token = format!("{h}.{p}.sig");
        let jws = Jws::parse(&token, 1024).unwrap();
        assert_eq!(jws.header.alg, "ES256");
        assert_eq!(jws.signing_input, format!("{h}.{p}"));
        let twice = b64(r#"{"sub":"x","sub":"y"}"#);
        let token = format!("{h}.{twice}.sig");
        let jws = Jws::parse(&token, 1024).unwrap();
        assert_eq!(jws.registered().unwrap_err(), JwsError::MalformedPayload);
    }
}
