//! `application/x-www-form-urlencoded` request bodies, parsed the way RFC 6749 §3.1 and §3.2
//! require: a parameter sent without a value counts as absent, and a parameter may not be
//! sent twice.

use std::fmt;

use url::form_urlencoded;
use zeroize::Zeroize;

use super::OAuthError;

/// The largest body [`Form::parse`] accepts (64 KiB). Token and authorization requests are a
/// few hundred bytes; a client assertion a few kilobytes.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// The most parameters [`Form::parse`] accepts, empty ones included.
pub const MAX_FORM_PARAMS: usize = 64;

/// A parsed form: parameter names and their values.
///
/// Parameters sent with an empty value are treated as omitted (RFC 6749 §3.1); they are
/// counted only to refuse repetitions. Values may be credentials (`client_secret`,
/// `client_assertion`, `code`, `refresh_token`, `code_verifier`), so `Debug` shows parameter
/// names only and the values are wiped from memory when the form is dropped.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Form {
    /// Parameters with a non-empty value, in the order received.
    params: Vec<(String, String)>,
}

impl Form {
    /// Parses a form body.
    ///
    /// Fails with `invalid_request` when the body is larger than [`MAX_FORM_BYTES`], has more
    /// than [`MAX_FORM_PARAMS`] parameters, repeats a parameter (even with an empty value),
    /// or has a name or value that does not decode to UTF-8. Pairs with an empty name
    /// (`=x`, `&&`) are ignored.
    pub fn parse(body: &[u8]) -> Result<Form, OAuthError> {
        if body.len() > MAX_FORM_BYTES {
            return Err(OAuthError::invalid_request(format!(
                "Request body is too large (at most {MAX_FORM_BYTES} bytes)"
            )));
        }
        let mut form = Form::default();
        let mut seen: Vec<String> = Vec::new();
        for (name, value) in form_urlencoded::parse(body) {
            if name.is_empty() {
                continue;
            }
            if seen.len() >= MAX_FORM_PARAMS {
                return Err(OAuthError::invalid_request(format!(
                    "Too many parameters (at most {MAX_FORM_PARAMS})"
                )));
            }
            // `form_urlencoded` decodes bytes that are not UTF-8 to U+FFFD. No OAuth parameter
            // legitimately contains it, so it marks a value that did not decode.
            if name.contains('\u{FFFD}') || value.contains('\u{FFFD}') {
                return Err(OAuthError::invalid_request(format!(
                    "Parameter {} is not valid UTF-8",
                    printable(&name)
                )));
            }
            if seen.iter().any(|s| *s == name) {
                return Err(OAuthError::invalid_request(format!(
                    "Parameter {} is repeated",
                    printable(&name)
                )));
            }
            seen.push(name.clone().into_owned());
            if !value.is_empty() {
                form.params.push((name.into_owned(), value.into_owned()));
            }
        }
        Ok(form)
    }

    /// Builds a form from name/value pairs, for tests and for callers that already hold typed
    /// values. Empty values are dropped like [`parse`](Self::parse) drops them; of a repeated
    /// name only the first value is kept (use [`parse`](Self::parse) for untrusted input,
    /// which refuses repetitions).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Form {
        let mut form = Form::default();
        for (name, value) in pairs {
            if name.is_empty() || value.is_empty() || form.get(name).is_some() {
                continue;
            }
            form.params.push(((*name).to_owned(), (*value).to_owned()));
        }
        form
    }

    /// The value of a parameter, if it was sent with a non-empty value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a parameter was sent with a non-empty value.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The names of the parameters with a non-empty value, in the order received.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.params.iter().map(|(n, _)| n.as_str())
    }
}

impl Drop for Form {
    fn drop(&mut self) {
        for (_, value) in &mut self.params {
            value.zeroize();
        }
    }
}

impl fmt::Debug for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Form")
            .field("names", &self.names().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A parameter name as it may appear in an error description: at most 40 characters.
fn printable(name: &str) -> String {
    let mut out: String = name.chars().take(40).collect();
    if name.chars().nth(40).is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::ErrorCode;

    #[test]
    fn parses_and_decodes() {
        let form = Form::parse(b"grant_type=authorization_code&code=a%2Bb+c&redirect_uri=https%3A%2F%2Fapp.example.org%2Fcb").unwrap();
        assert_eq!(form.get("grant_type"), Some("authorization_code"));
        assert_eq!(form.get("code"), Some("a+b c"));
        assert_eq!(form.get("redirect_uri"), Some("https://app.example.org/cb"));
        assert_eq!(form.get("scope"), None);
        assert!(form.contains("code"));
        assert_eq!(
            form.names().collect::<Vec<_>>(),
            ["grant_type", "code", "redirect_uri"]
        );
    }

    #[test]
    fn empty_values_count_as_absent() {
        let form = Form::parse(b"client_id=&scope&code=x&&=y").unwrap();
        assert_eq!(form.get("client_id"), None);
        assert_eq!(form.get("scope"), None);
        assert_eq!(form.get("code"), Some("x"));
        assert_eq!(form.names().count(), 1);
    }

    #[test]
    fn duplicate_parameters_are_refused_by_name() {
        for body in [
            &b"code=a&code=b"[..],
            b"code=a&code=a",
            b"code=&code=b",
            b"code=a&code=",
        ] {
            let e = Form::parse(body).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest);
            assert!(e.description.contains("code"), "{}", e.description);
        }
        // Percent-encoded names are the same parameter.
        let e = Form::parse(b"client_secret=a&client%5Fsecret=b").unwrap_err();
        assert!(e.description.contains("client_secret"));
    }

    #[test]
    fn size_and_count_are_capped() {
        let big = vec![b'a'; MAX_FORM_BYTES + 1];
        let e = Form::parse(&big).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.description.contains("too large"));

        let many: Vec<String> = (0..=MAX_FORM_PARAMS).map(|i| format!("p{i}=v")).collect();
        let e = Form::parse(many.join("&").as_bytes()).unwrap_err();
        assert!(e.description.contains("Too many"));
        let enough: Vec<String> = (0..MAX_FORM_PARAMS).map(|i| format!("p{i}=v")).collect();
        assert!(Form::parse(enough.join("&").as_bytes()).is_ok());
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let e = Form::parse(b"client_secret=%FF%FE").unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(e.description.contains("client_secret"));
    }

    #[test]
    fn debug_shows_names_only() {
        let form = Form::parse(b"client_id=app&client_secret=hunter2-value").unwrap();
        let debug = format!("{form:?}");
        assert!(debug.contains("client_secret"));
        assert!(!debug.contains("hunter2"));
    }

    #[test]
    fn from_pairs_drops_empty_values_and_keeps_the_first() {
        let form = Form::from_pairs(&[("a", "1"), ("b", ""), ("a", "2")]);
        assert_eq!(form.get("a"), Some("1"));
        assert_eq!(form.get("b"), None);
    }
}
