//! An in-memory shard set that is both a [`ShardSink`] and a [`ShardSource`]: for tests,
//! benchmarks and tools that need the codec without a cluster. It counts fetches, and can
//! lose or corrupt shards on demand, so tests can assert what the decoder asked for.
//!
//! Shards are kept per slot (shard index, id), as holder `j` keeps shard `j` in a
//! cluster: with `k = 1` every shard of a segment has the same bytes and id, and each
//! copy must still be lost or damaged on its own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use andromede_proto::ShardId;
use bytes::Bytes;

use super::{EncodedShard, ShardSink, ShardSource};
use crate::error::BoxError;

/// Shards kept in a map, keyed by id.
#[derive(Debug, Default)]
pub struct MemoryShards {
    shards: Mutex<HashMap<(u8, ShardId), Bytes>>,
    fetches: AtomicU64,
}

/// The shard a [`MemoryShards`] was asked for is not there.
#[derive(Debug, thiserror::Error)]
#[error("shard {0} not found")]
pub(crate) struct NotFound(String);

impl MemoryShards {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(u8, ShardId), Bytes>> {
        // A poisoned map still holds valid shards: every mutation is a single insert or
        // remove.
        self.shards.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of shards held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no shard is held.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Loses shard `shard_index` named `id`; returns whether it was held.
    pub fn remove(&self, shard_index: u8, id: &ShardId) -> bool {
        self.lock().remove(&(shard_index, *id)).is_some()
    }

    /// Replaces a shard's bytes (to simulate bit rot or a misplaced shard).
    pub fn replace(&self, shard_index: u8, id: &ShardId, bytes: Bytes) {
        self.lock().insert((shard_index, *id), bytes);
    }

    /// The bytes held for shard `shard_index` named `id`.
    pub fn get(&self, shard_index: u8, id: &ShardId) -> Option<Bytes> {
        self.lock().get(&(shard_index, *id)).cloned()
    }

    /// Fetches served (successful or not) since creation or the last reset.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Resets the fetch counter.
    pub fn reset_fetch_count(&self) {
        self.fetches.store(0, Ordering::Relaxed);
    }
}

impl ShardSink for MemoryShards {
    async fn put_segment(&self, _segment: u64, shards: &[EncodedShard]) -> Result<(), BoxError> {
        let mut map = self.lock();
        if shards.len() > usize::from(u8::MAX) {
            return Err(BoxError::from("more than 255 shards in one segment"));
        }
        for (index, shard) in (0..=u8::MAX).zip(shards) {
            map.insert((index, shard.id), shard.bytes.clone());
        }
        Ok(())
    }
}

impl ShardSource for MemoryShards {
    async fn fetch(&self, _segment: u64, shard_index: u8, id: ShardId) -> Result<Bytes, BoxError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        self.get(shard_index, &id)
            .ok_or_else(|| Box::new(NotFound(id.short())) as BoxError)
    }
}
