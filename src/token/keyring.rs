//! The signing keys in use, shared by everything that signs or verifies in one process: the
//! engine's issuance, its [`Verifier`](super::Verifier), discovery's JWKS. Rotation swaps the
//! whole [`KeySet`] at once, so a reader never sees half a rotation.

use std::sync::{Arc, PoisonError, RwLock};

use serde_json::Value;

use super::keys::{KeyError, KeySet, SigningKey};
use crate::clock::Clock;
use crate::config::OAuthConfig;

/// A shared, swappable [`KeySet`]. Cloning shares it.
#[derive(Clone)]
pub struct KeyRing {
    current: Arc<RwLock<Arc<KeySet>>>,
}

impl KeyRing {
    /// A ring holding `keys`.
    pub fn new(keys: KeySet) -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(keys))),
        }
    }

    /// The keys now (a snapshot: a rotation swaps in a new set).
    pub fn current(&self) -> Arc<KeySet> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Applies `change` to a copy of the keys and swaps it in, or leaves the keys as they
    /// were when it fails.
    pub fn update(
        &self,
        change: impl FnOnce(&mut KeySet) -> Result<(), KeyError>,
    ) -> Result<(), KeyError> {
        let mut guard = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = KeySet::clone(&guard);
        change(&mut next)?;
        *guard = Arc::new(next);
        Ok(())
    }
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KeyRing").field(&self.current()).finish()
    }
}

/// Key management over a [`KeyRing`] ([`Engine::keys`](crate::Engine::keys)): the keys in use,
/// the published JWKS, and rotation — publish the next key, promote it once relying parties
/// have fetched it, prune retired keys whose tokens have all expired.
pub struct Keys<'a> {
    ring: &'a KeyRing,
    oauth: &'a OAuthConfig,
    clock: &'a dyn Clock,
}

impl<'a> Keys<'a> {
    /// Key management over `ring`, with token lifetimes from `oauth` and time from `clock`.
    pub fn new(ring: &'a KeyRing, oauth: &'a OAuthConfig, clock: &'a dyn Clock) -> Self {
        Self { ring, oauth, clock }
    }

    /// The keys now (a snapshot: rotation swaps in a new set).
    pub fn current(&self) -> Arc<KeySet> {
        self.ring.current()
    }

    /// The public JWKS (`/.well-known/jwks.json`): active, next and retired keys.
    pub fn jwks(&self) -> Value {
        self.ring.current().jwks_json()
    }

    /// Publishes `key` in the JWKS without signing with it yet: the first half of a rotation
    /// (publish before use, OIDC Core §10.1.1). Promote it once relying parties have had time
    /// to fetch the new JWKS (at least their JWKS cache lifetime).
    pub fn publish_next(&self, key: SigningKey) -> Result<(), KeyError> {
        self.ring.update(|set| set.publish_next(key))
    }

    /// Makes the published next key the signing key. The previous key keeps verifying, and
    /// stays in the JWKS, until every token it signed has expired.
    pub fn promote_next(&self) -> Result<(), KeyError> {
        let keep = self
            .oauth
            .access_token_lifetime
            .max(self.oauth.id_token_lifetime)
            .saturating_add(self.oauth.leeway);
        let now = self.clock.now();
        self.ring.update(|set| set.promote_next(now, keep))
    }

    /// Drops retired keys whose tokens have all expired.
    pub fn prune(&self) {
        let now = self.clock.now();
        let _ = self.ring.update(|set| {
            set.prune(now);
            Ok(())
        });
    }
}
