//! The registered claims (RFC 7519 §4.1) and the one check of them every use shares.

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::secret::ct_eq_bytes;

/// The registered claims fhirgate checks. Decoding refuses a payload that repeats one of
/// them (a second `exp` or `aud` must not win over the first).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Registered {
    /// `iss`.
    #[serde(default)]
    pub iss: Option<Value>,
    /// `sub`.
    #[serde(default)]
    pub sub: Option<Value>,
    /// `aud`.
    #[serde(default)]
    pub aud: Option<Value>,
    /// `exp`.
    #[serde(default)]
    pub exp: Option<Value>,
    /// `nbf`.
    #[serde(default)]
    pub nbf: Option<Value>,
    /// `iat`.
    #[serde(default)]
    pub iat: Option<Value>,
    /// `azp` (OpenID Connect).
    #[serde(default)]
    pub azp: Option<Value>,
    /// `nonce` (OpenID Connect).
    #[serde(default)]
    pub nonce: Option<Value>,
    /// `jti`.
    #[serde(default)]
    pub jti: Option<Value>,
}

/// Why a token's claims are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    /// A claim the expectation needs is absent.
    #[error("the token lacks the claim `{0}`")]
    Missing(&'static str),
    /// A claim has the wrong JSON type (a time that is not a number, an audience that is not
    /// a string or strings).
    #[error("the token's claim `{0}` is malformed")]
    Malformed(&'static str),
    /// `exp` has passed (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `exp` lies further ahead than the use allows.
    #[error("the token's expiry is too far in the future")]
    TooFarAhead,
    /// `nbf` lies in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iat` lies in the future (beyond the leeway).
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// `iat` is older than the use allows.
    #[error("the token was issued too long ago")]
    TooOld,
    /// `iss` is not an accepted issuer.
    #[error("the token's issuer is not the expected issuer")]
    WrongIssuer,
    /// `aud` does not name us (as the rule asks).
    #[error("the token is not meant for this audience")]
    WrongAudience,
    /// Several audiences and we are not the `azp`.
    #[error("the token has several audiences without us as the authorized party")]
    AuthorizedParty,
    /// `nonce` is not the one sent.
    #[error("the token's nonce is wrong")]
    WrongNonce,
}

/// How `aud` must name us.
#[derive(Debug, Clone, Copy)]
pub enum Audience<'a> {
    /// At least one of the token's audiences is one of these.
    AnyOf(&'a [&'a str]),
    /// The token has exactly one audience (a string, or an array of one), and it is one of
    /// these (RFC 7523 §3 for client assertions).
    SoleOf(&'a [&'a str]),
}

/// The time rules of a use.
#[derive(Debug, Clone, Copy)]
pub struct TimeRules {
    /// Allowed clock skew, in seconds (negative counts as zero).
    pub leeway_seconds: i64,
    /// The oldest `iat` accepted, as seconds before now; `iat` is then required.
    pub max_age_seconds: Option<i64>,
    /// The furthest `exp` accepted, as seconds after now.
    pub max_ahead_seconds: Option<i64>,
}

/// What a token's claims must say.
#[derive(Debug, Clone, Copy)]
pub struct Expectation<'a> {
    /// Accepted issuers (exact string comparison); empty: the caller checks `iss` itself.
    pub issuers: &'a [&'a str],
    /// How `aud` must name us.
    pub audience: Audience<'a>,
    /// For ID tokens (OIDC Core 3.1.3.7): with several audiences, `azp` must be this.
    pub authorized_party: Option<&'a str>,
    /// The nonce sent with the authorization request (compared in constant time).
    pub nonce: Option<&'a str>,
    /// Expiry, not-before, issue time.
    pub times: TimeRules,
}

/// The times a checked token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    /// `exp`, in whole seconds (rounded down).
    pub exp: i64,
}

#[derive(Clone, Copy)]
enum Round {
    Down,
    Up,
}

/// A NumericDate (RFC 7519 §2) in whole seconds; `None` if it is not a number. A fraction
/// rounds the way that never extends validity (the caller says which).
fn numeric_date(value: &Value, round: Round) -> Option<i64> {
    let number = value.as_number()?;
    if let Some(seconds) = number.as_i64() {
        return Some(seconds);
    }
    if number.as_u64().is_some() {
        // Above i64::MAX: the far future.
        return Some(i64::MAX);
    }
    let seconds = number.as_f64().filter(|f| f.is_finite())?;
    let whole = match round {
        Round::Down => seconds.floor(),
        Round::Up => seconds.ceil(),
    };
    // `as` saturates at the i64 range.
    Some(whole as i64)
}

fn date(
    value: Option<&Value>,
    name: &'static str,
    round: Round,
) -> Result<Option<i64>, ClaimError> {
    value
        .map(|v| numeric_date(v, round).ok_or(ClaimError::Malformed(name)))
        .transpose()
}

impl Registered {
    /// The audiences, from a string or an array of strings.
    pub fn audiences(&self) -> Result<Vec<&str>, ClaimError> {
        match self.aud.as_ref().ok_or(ClaimError::Missing("aud"))? {
            Value::String(aud) => Ok(vec![aud.as_str()]),
            Value::Array(list) => list
                .iter()
                .map(|a| a.as_str().ok_or(ClaimError::Malformed("aud")))
                .collect(),
            _ => Err(ClaimError::Malformed("aud")),
        }
    }

    /// A claim that must be a string.
    pub fn text(value: Option<&Value>) -> Option<&str> {
        value.and_then(Value::as_str)
    }

    /// Checks the claims against `expected` at `now`: issuer, audience, `azp`, times, nonce.
    pub fn check(
        &self,
        expected: &Expectation<'_>,
        now: OffsetDateTime,
    ) -> Result<Times, ClaimError> {
        if !expected.issuers.is_empty() {
            let iss = match self.iss.as_ref().ok_or(ClaimError::Missing("iss"))? {
                Value::String(iss) => iss.as_str(),
                _ => return Err(ClaimError::WrongIssuer),
            };
            if !expected.issuers.contains(&iss) {
                return Err(ClaimError::WrongIssuer);
            }
        }
        let audiences = self.audiences()?;
        match expected.audience {
            Audience::AnyOf(ours) => {
                if !audiences.iter().any(|a| ours.contains(a)) {
                    return Err(ClaimError::WrongAudience);
                }
            }
            Audience::SoleOf(ours) => match audiences.as_slice() {
                [only] if ours.contains(only) => {}
                _ => return Err(ClaimError::WrongAudience),
            },
        }
        if let Some(party) = expected.authorized_party
            && audiences.len() > 1
            && Self::text(self.azp.as_ref()) != Some(party)
        {
            return Err(ClaimError::AuthorizedParty);
        }

        let times = expected.times;
        let now = now.unix_timestamp();
        let leeway = times.leeway_seconds.max(0);
        let exp = date(self.exp.as_ref(), "exp", Round::Down)?.ok_or(ClaimError::Missing("exp"))?;
        if now >= exp.saturating_add(leeway) {
            return Err(ClaimError::Expired);
        }
        if let Some(ahead) = times.max_ahead_seconds
            && exp.saturating_sub(now) > ahead
        {
            return Err(ClaimError::TooFarAhead);
        }
        if let Some(nbf) = date(self.nbf.as_ref(), "nbf", Round::Up)?
            && nbf > now.saturating_add(leeway)
        {
            return Err(ClaimError::NotYetValid);
        }
        let iat = date(self.iat.as_ref(), "iat", Round::Up)?;
        if let Some(iat) = iat
            && iat > now.saturating_add(leeway)
        {
            return Err(ClaimError::IssuedInFuture);
        }
        if let Some(max_age) = times.max_age_seconds {
            let iat = iat.ok_or(ClaimError::Missing("iat"))?;
            if now.saturating_sub(iat) > max_age.saturating_add(leeway) {
                return Err(ClaimError::TooOld);
            }
        }
        if let Some(nonce) = expected.nonce {
            let presented = Self::text(self.nonce.as_ref()).unwrap_or_default();
            if !ct_eq_bytes(presented.as_bytes(), nonce.as_bytes()) {
                return Err(ClaimError::WrongNonce);
            }
        }
        Ok(Times { exp })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_795_860_000;

    fn claims(value: Value) -> Registered {
        serde_json::from_value(value).unwrap_or_default()
    }

    fn expect<'a>(audience: Audience<'a>) -> Expectation<'a> {
        Expectation {
            issuers: &["https://iss"],
            audience,
            authorized_party: None,
            nonce: None,
            times: TimeRules {
                leeway_seconds: 30,
                max_age_seconds: None,
                max_ahead_seconds: None,
            },
        }
    }

    fn check(value: Value, expected: &Expectation<'_>) -> Result<Times, ClaimError> {
        claims(value).check(
            expected,
            OffsetDateTime::from_unix_timestamp(NOW).unwrap_or(OffsetDateTime::UNIX_EPOCH),
        )
    }

    #[test]
    fn times_with_leeway_and_fractions_that_never_extend_validity() {
        let e = expect(Audience::AnyOf(&["me"]));
        let base = |extra: Value| {
            let mut v = json!({"iss": "https://iss", "aud": "me"});
            if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
                o.extend(x.clone());
            }
            v
        };
        assert_eq!(check(base(json!({})), &e), Err(ClaimError::Missing("exp")));
        assert_eq!(
            check(base(json!({"exp": "soon"})), &e),
            Err(ClaimError::Malformed("exp"))
        );
        assert_eq!(
            check(base(json!({"exp": NOW - 30})), &e),
            Err(ClaimError::Expired)
        );
        assert!(check(base(json!({"exp": NOW - 29})), &e).is_ok());
        // 29.9 s ago rounds down to 30 s ago: expired.
        assert_eq!(
            check(base(json!({"exp": NOW as f64 - 29.9})), &e),
            Err(ClaimError::Expired)
        );
        assert_eq!(
            check(base(json!({"exp": NOW + 60, "nbf": NOW + 31})), &e),
            Err(ClaimError::NotYetValid)
        );
        assert!(check(base(json!({"exp": NOW + 60, "nbf": NOW + 30})), &e).is_ok());
        assert_eq!(
            check(base(json!({"exp": NOW + 60, "iat": NOW as f64 + 30.1})), &e),
            Err(ClaimError::IssuedInFuture)
        );
        let mut aged = e;
        aged.times.max_age_seconds = Some(600);
        assert_eq!(
            check(base(json!({"exp": NOW + 60})), &aged),
            Err(ClaimError::Missing("iat"))
        );
        assert_eq!(
            check(base(json!({"exp": NOW + 60, "iat": NOW - 631})), &aged),
            Err(ClaimError::TooOld)
        );
        assert!(check(base(json!({"exp": NOW + 60, "iat": NOW - 630})), &aged).is_ok());
        let mut short = e;
        short.times.max_ahead_seconds = Some(300);
        assert_eq!(
            check(base(json!({"exp": NOW + 301})), &short),
            Err(ClaimError::TooFarAhead)
        );
        assert!(check(base(json!({"exp": NOW + 300})), &short).is_ok());
        assert_eq!(
            check(base(json!({"exp": u64::MAX})), &short),
            Err(ClaimError::TooFarAhead)
        );
    }

    #[test]
    fn issuer_audience_authorized_party_and_nonce() {
        let ok = json!({"iss": "https://iss", "aud": ["me", "other"], "azp": "me", "exp": NOW + 60, "nonce": "n1"});
        let mut e = expect(Audience::AnyOf(&["me"]));
        e.authorized_party = Some("me");
        e.nonce = Some("n1");
        assert!(check(ok.clone(), &e).is_ok());
        let mut wrong = ok.clone();
        wrong["azp"] = json!("other");
        assert_eq!(check(wrong, &e), Err(ClaimError::AuthorizedParty));
        let mut wrong = ok.clone();
        wrong["nonce"] = json!("n2");
        assert_eq!(check(wrong, &e), Err(ClaimError::WrongNonce));
        let mut wrong = ok.clone();
        wrong["iss"] = json!("https://iss/");
        assert_eq!(check(wrong, &e), Err(ClaimError::WrongIssuer));
        let mut wrong = ok.clone();
        wrong["aud"] = json!(["me", 7]);
        assert_eq!(check(wrong, &e), Err(ClaimError::Malformed("aud")));
        // Sole audience: one string, or an array of one.
        let sole = expect(Audience::SoleOf(&["me"]));
        let one = json!({"iss": "https://iss", "aud": ["me"], "exp": NOW + 60});
        assert!(check(one, &sole).is_ok());
        let two = json!({"iss": "https://iss", "aud": ["me", "me"], "exp": NOW + 60});
        assert_eq!(check(two, &sole), Err(ClaimError::WrongAudience));
    }
}
