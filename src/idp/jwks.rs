//! Identity providers' signing keys, fetched through the [`Transport`](crate::transport) and
//! cached per JWKS URL. An unknown `kid` triggers one refetch (a provider that rotated its
//! keys), at most every few seconds per URL so forged `kid`s cannot turn us into a request
//! amplifier.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use time::{Duration, OffsetDateTime};
use url::Url;

use super::ExternalError;
use crate::engine::Engine;
use crate::transport::HttpRequest;

/// The least time between two fetches of one JWKS URL caused by unknown `kid`s.
pub const REFETCH_INTERVAL: Duration = Duration::seconds(10);

#[derive(Clone)]
struct Entry {
    keys: Arc<JwkSet>,
    fetched_at: OffsetDateTime,
}

/// The per-URL cache of providers' key sets.
#[derive(Default)]
pub(crate) struct JwksCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwksCache")
    }
}

impl JwksCache {
    fn get(&self, url: &Url) -> Option<Entry> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(url.as_str())
            .cloned()
    }

    fn put(&self, url: &Url, entry: Entry) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= 1024 {
            entries.clear();
        }
        entries.insert(url.as_str().to_owned(), entry);
    }
}

/// The one key of `keys` a token with `kid` (and `alg` of family `kty`) must be checked
/// with: the key with that `kid`, or — when the token names none — the only key of the
/// right type.
fn select<'a>(keys: &'a JwkSet, kid: Option<&str>, kty: &str) -> Option<&'a Jwk> {
    let fits = |k: &&Jwk| key_type(k) == kty;
    match kid {
        Some(kid) => {
            let mut matching = keys
                .keys
                .iter()
                .filter(|k| k.common.key_id.as_deref() == Some(kid))
                .filter(fits);
            let first = matching.next();
            if matching.next().is_some() {
                None
            } else {
                first
            }
        }
        None => {
            let mut candidates = keys.keys.iter().filter(fits);
            let first = candidates.next();
            if candidates.next().is_some() {
                None
            } else {
                first
            }
        }
    }
}

fn key_type(key: &Jwk) -> &'static str {
    use jsonwebtoken::jwk::AlgorithmParameters;
    match key.algorithm {
        AlgorithmParameters::RSA(_) => "RSA",
        AlgorithmParameters::EllipticCurve(_) => "EC",
        AlgorithmParameters::OctetKeyPair(_) => "OKP",
        AlgorithmParameters::OctetKey(_) => "oct",
        _ => "unknown",
    }
}

impl Engine {
    /// The key to check a provider's token with.
    pub(crate) async fn provider_key(
        &self,
        jwks_uri: &Url,
        kid: Option<&str>,
        kty: &str,
    ) -> Result<Jwk, ExternalError> {
        let now = self.now();
        let ttl = self.config().oauth.jwks_cache_ttl;
        let cached = self.inner.provider_keys.get(jwks_uri);
        if let Some(entry) = &cached {
            let fresh = now - entry.fetched_at < ttl;
            if let Some(key) = select(&entry.keys, kid, kty).filter(|_| fresh) {
                return Ok(key.clone());
            }
            if fresh && now - entry.fetched_at < REFETCH_INTERVAL {
                return Err(ExternalError::InvalidToken(
                    "no key of the identity provider matches the token".to_owned(),
                ));
            }
        }
        let keys = self.fetch_jwks(jwks_uri).await?;
        self.inner.provider_keys.put(
            jwks_uri,
            Entry {
                keys: keys.clone(),
                fetched_at: now,
            },
        );
        select(&keys, kid, kty).cloned().ok_or_else(|| {
            ExternalError::InvalidToken(
                "no key of the identity provider matches the token".to_owned(),
            )
        })
    }

    async fn fetch_jwks(&self, url: &Url) -> Result<Arc<JwkSet>, ExternalError> {
        let mut request = HttpRequest::get(url.clone());
        request
            .headers
            .push(("Accept".to_owned(), "application/json".to_owned()));
        let response = self
            .transport()
            .send(request)
            .await
            .map_err(ExternalError::Unreachable)?;
        if response.status != 200 {
            return Err(ExternalError::ProviderError(format!(
                "the JWKS answered {}",
                response.status
            )));
        }
        let keys: JwkSet = serde_json::from_slice(&response.body)
            .map_err(|e| ExternalError::ProviderError(format!("the JWKS is not a JWK Set: {e}")))?;
        Ok(Arc::new(keys))
    }
}
