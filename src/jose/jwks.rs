//! The one cache of JWK Sets fetched through the [`Transport`]: clients' `jwks_uri`,
//! identity providers' JWKS, Google's keys.
//!
//! Per URL: a set is reused while fresh — the configured lifetime, or less when the answer's
//! `Cache-Control` says so (`no-store`/`no-cache`: not at all). A token naming a `kid` the
//! fresh set lacks causes one refetch, and refetches of one URL — for unknown `kid`s or after
//! a failure — are at most one per [`REFETCH_INTERVAL`], so forged `kid`s cannot turn the
//! server into a request amplifier. A failed fetch keeps a still-fresh set usable for its
//! other keys. The cache holds at most [`MAX_ENTRIES`] URLs; when full, expired entries go
//! first, then the least recently fetched one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, KeyOperations, PublicKeyUse};
use time::{Duration, OffsetDateTime};
use url::Url;

use super::policy::fits;
use crate::transport::{HttpRequest, Transport, TransportError};

/// The least time between two fetches of one URL caused by unknown `kid`s or failures.
pub const REFETCH_INTERVAL: Duration = Duration::seconds(10);
/// The largest JWK Set document accepted (256 KiB).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The most URLs cached at once.
pub const MAX_ENTRIES: usize = 10_000;

/// Why no key came from a JWKS URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The transport failed (or none is configured).
    #[error("{0}")]
    Transport(TransportError),
    /// The answer was not 200.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The answer was larger than [`MAX_JWKS_BYTES`].
    #[error("the response is too large")]
    TooLarge,
    /// The answer was not a JWK Set.
    #[error("the response is not a JWK Set")]
    NotAJwkSet,
    /// The last fetch failed too recently to try again.
    #[error("the JWKS could not be fetched; retry later")]
    RetryLater,
    /// No single key fits the token (unknown `kid`, several candidates, or a key restricted
    /// to another algorithm or use).
    #[error("no key matches the token")]
    NoMatchingKey,
}

struct Entry {
    keys: Option<Arc<JwkSet>>,
    fresh_until: OffsetDateTime,
    last_fetch: OffsetDateTime,
    last_failed: bool,
}

/// The cache. Build one per process (the engine holds it) and share it.
pub struct JwksCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The one key of `keys` a token with `kid` (or, when the token names none and the caller
/// allows it, the only key that fits) and `alg` must be checked with: exactly one candidate
/// whose type and curve fit `alg`, not restricted to another algorithm, use or operation.
pub fn select<'a>(keys: &'a JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<&'a Jwk> {
    let mut candidates = keys
        .keys
        .iter()
        .filter(|k| kid.is_none_or(|kid| k.common.key_id.as_deref() == Some(kid)))
        .filter(|k| fits(k, alg));
    let (Some(key), None) = (candidates.next(), candidates.next()) else {
        return None;
    };
    let common = &key.common;
    let alg_ok = common
        .key_algorithm
        .is_none_or(|a| a == KeyAlgorithm::from(alg));
    let use_ok = common
        .public_key_use
        .as_ref()
        .is_none_or(|u| *u == PublicKeyUse::Signature);
    let ops_ok = common
        .key_operations
        .as_ref()
        .is_none_or(|ops| ops.contains(&KeyOperations::Verify));
    (alg_ok && use_ok && ops_ok).then_some(key)
}

/// How many keys of `keys` fit `kid` and `alg` (before the restrictions [`select`] checks).
fn candidates(keys: &JwkSet, kid: Option<&str>, alg: Algorithm) -> usize {
    keys.keys
        .iter()
        .filter(|k| kid.is_none_or(|kid| k.common.key_id.as_deref() == Some(kid)))
        .filter(|k| fits(k, alg))
        .count()
}

/// The `max-age` a `Cache-Control` value allows (`no-store` and `no-cache` allow none).
pub fn cache_control_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',') {
        let directive = directive.trim();
        let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
        let name = name.trim();
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age")
            && let Ok(seconds) = arg.trim().trim_matches('"').parse::<u32>()
        {
            max_age = Some(Duration::seconds(i64::from(seconds)));
        }
    }
    max_age
}

impl JwksCache {
    /// A cache that reuses a set for at most `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl: ttl.max(Duration::ZERO),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // The cache holds no invariant a panic could break halfway.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key for `kid`/`alg` from the JWKS at `url`: from the cache while fresh, with one
    /// rate-limited refetch when the `kid` is unknown (see the [module docs](self)).
    pub async fn key(
        &self,
        transport: &dyn Transport,
        url: &Url,
        kid: Option<&str>,
        alg: Algorithm,
        now: OffsetDateTime,
    ) -> Result<Jwk, JwksError> {
        let (cached, may_fetch) = {
            let entries = self.lock();
            match entries.get(url.as_str()) {
                Some(entry) if entry.fresh_until > now && entry.keys.is_some() => (
                    entry.keys.clone(),
                    now - entry.last_fetch >= REFETCH_INTERVAL,
                ),
                Some(entry) => (
                    None,
                    !(entry.last_failed && now - entry.last_fetch < REFETCH_INTERVAL),
                ),
                None => (None, true),
            }
        };
        if let Some(keys) = cached {
            match candidates(&keys, kid, alg) {
                1 => {
                    return select(&keys, kid, alg)
                        .cloned()
                        .ok_or(JwksError::NoMatchingKey);
                }
                0 if may_fetch => {}
                _ => return Err(JwksError::NoMatchingKey),
            }
        } else if !may_fetch {
            return Err(JwksError::RetryLater);
        }
        let keys = self.fetch(transport, url, now).await?;
        select(&keys, kid, alg)
            .cloned()
            .ok_or(JwksError::NoMatchingKey)
    }

    /// Fetches the set at `url` and records the outcome.
    async fn fetch(
        &self,
        transport: &dyn Transport,
        url: &Url,
        now: OffsetDateTime,
    ) -> Result<Arc<JwkSet>, JwksError> {
        let mut request = HttpRequest::get(url.clone());
        request.headers.push((
            "Accept".to_owned(),
            "application/jwk-set+json, application/json".to_owned(),
        ));
        let outcome = match transport.send(request).await {
            Err(TransportError::TooLarge) => Err(JwksError::TooLarge),
            Err(e) => Err(JwksError::Transport(e)),
            Ok(response) if response.status != 200 => Err(JwksError::Status(response.status)),
            Ok(response) if response.body.len() > MAX_JWKS_BYTES => Err(JwksError::TooLarge),
            Ok(response) => match serde_json::from_slice::<JwkSet>(&response.body) {
                Ok(keys) => {
                    let ttl = response
                        .header("Cache-Control")
                        .and_then(cache_control_max_age)
                        .map_or(self.ttl, |max_age| max_age.min(self.ttl));
                    Ok((Arc::new(keys), ttl))
                }
                Err(_) => Err(JwksError::NotAJwkSet),
            },
        };
        if matches!(
            outcome,
            Err(JwksError::Transport(TransportError::NotConfigured))
        ) {
            // Nothing was asked of anyone: nothing to remember.
            return outcome.map(|(keys, _)| keys);
        }
        let mut entries = self.lock();
        if !entries.contains_key(url.as_str()) && entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.fresh_until > now);
            if entries.len() >= MAX_ENTRIES {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, e)| e.last_fetch)
                    .map(|(url, _)| url.clone());
                if let Some(url) = oldest {
                    entries.remove(&url);
                }
            }
        }
        let entry = entries
            .entry(url.as_str().to_owned())
            .or_insert_with(|| Entry {
                keys: None,
                fresh_until: now,
                last_fetch: now,
                last_failed: false,
            });
        entry.last_fetch = now;
        match outcome {
            Ok((keys, ttl)) => {
                entry.keys = Some(keys.clone());
                entry.fresh_until = now.saturating_add(ttl);
                entry.last_failed = false;
                Ok(keys)
            }
            Err(error) => {
                // Keys that are still fresh stay usable for their other kids.
                entry.last_failed = true;
                Err(error)
            }
        }
    }

    /// How many URLs are cached (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control() {
        assert_eq!(
            cache_control_max_age("max-age=60"),
            Some(Duration::seconds(60))
        );
        assert_eq!(
            cache_control_max_age("public, max-age=\"5\""),
            Some(Duration::seconds(5))
        );
        assert_eq!(
            cache_control_max_age("no-store, max-age=60"),
            Some(Duration::ZERO)
        );
        assert_eq!(cache_control_max_age("private"), None);
        assert_eq!(
            cache_control_max_age("max-age=86400"),
            Some(Duration::days(1))
        );
        assert_eq!(
            cache_control_max_age("MAX-AGE=\"5\", private"),
            Some(Duration::seconds(5))
        );
        assert_eq!(
            cache_control_max_age("max-age=5, no-cache"),
            Some(Duration::ZERO)
        );
        assert_eq!(cache_control_max_age("max-age=abc"), None);
    }
}
