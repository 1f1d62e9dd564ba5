//! A store written by a host, checked with the public conformance suite before an engine
//! uses it. Here the host keeps single-use keys, watermarks and attempt windows itself (one
//! map under one lock, so each operation is atomic) and leaves identity data and logins to
//! `MemoryStore`; `store::Combined` makes the three one store.
//!
//! `cargo run --features test-util --example custom_store`

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use fhirgate::MemoryStore;
use fhirgate::store::conformance::{self, Stores};
use fhirgate::store::{Attempt, Combined, OnceKey, OnceStore, StoreError};
use time::{Duration, OffsetDateTime};

/// The three kinds of entry a key can have; they never collide (the same key may hold one of
/// each, as the suite checks).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Claim,
    Watermark,
    Attempts,
}

/// Each entry: its value (the watermark, or the attempts taken) and its deadline.
type Map = HashMap<(Kind, OnceKey), (u64, OffsetDateTime)>;

/// The host's single-use store. Clones share the map, like instances share a database.
#[derive(Clone, Default)]
struct HostOnce(Arc<Mutex<Map>>);

impl HostOnce {
    /// The map, locked for one whole operation, without entries whose deadline has passed.
    fn live(&self, now: OffsetDateTime) -> MutexGuard<'_, Map> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, (_, until)| *until > now);
        map
    }
}

#[async_trait]
impl OnceStore for HostOnce {
    async fn claim_once(
        &self,
        key: &OnceKey,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut map = self.live(now);
        let fresh = map.get(&(Kind::Claim, key.clone())).is_none();
        if fresh {
            map.insert((Kind::Claim, key.clone()), (0, until));
        }
        Ok(fresh)
    }

    async fn claim_above(
        &self,
        key: &OnceKey,
        value: u64,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut map = self.live(now);
        let entry = (Kind::Watermark, key.clone());
        let raised = map.get(&entry).is_none_or(|(current, _)| value > *current);
        if raised {
            map.insert(entry, (value, until));
        }
        Ok(raised)
    }

    async fn take_attempt(
        &self,
        key: &OnceKey,
        limit: u32,
        window: Duration,
        now: OffsetDateTime,
    ) -> Result<Attempt, StoreError> {
        let mut map = self.live(now);
        let (count, until) = map
            .entry((Kind::Attempts, key.clone()))
            .or_insert((0, now + window));
        if *count >= u64::from(limit) {
            return Ok(Attempt::Limited {
                retry_after: *until,
            });
        }
        *count += 1;
        let count = u32::try_from(*count).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Attempt::Allowed { count })
    }

    async fn clear_attempts(&self, key: &OnceKey) -> Result<(), StoreError> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(&(Kind::Attempts, key.clone()));
        Ok(())
    }

    async fn purge_expired_once(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let before = map.len();
        map.retain(|_, (_, until)| *until > now);
        Ok((before - map.len()) as u64)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Every check on fresh stores; two handles on the same data each time.
    conformance::run_all(|| async {
        let store = Combined::new(MemoryStore::new(), MemoryStore::new(), HostOnce::default());
        Stores::shared(store)
    })
    .await;
    println!(
        "HostOnce passes all {} conformance checks",
        conformance::CHECKS.len()
    );

    let store = Combined::new(MemoryStore::new(), MemoryStore::new(), HostOnce::default());
    let engine = fhirgate::Engine::builder().store(store).build();
    println!(
        "an engine on it: {}",
        if engine.is_ok() { "built" } else { "refused" }
    );
}
