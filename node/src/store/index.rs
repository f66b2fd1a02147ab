//! The shard index in sled: id → (size, last verified). A cache of the shard directory,
//! never the source of truth: open-time reconciliation rebuilds it from the files. This
//! module is the only place the store touches sled, so the engine can be swapped here.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use andromede_proto::ShardId;

use crate::error::StoreError;

/// What the index records of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardMeta {
    /// Bytes in the shard file.
    pub size_bytes: u64,
    /// When it was last re-hashed and found intact (Unix seconds; 0 = at write).
    pub verified_at_unix_secs: u64,
}

impl ShardMeta {
    fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.size_bytes.to_le_bytes());
        out[8..].copy_from_slice(&self.verified_at_unix_secs.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let size = bytes.get(..8)?.try_into().ok()?;
        let verified = bytes.get(8..16)?.try_into().ok()?;
        Some(Self {
            size_bytes: u64::from_le_bytes(size),
            verified_at_unix_secs: u64::from_le_bytes(verified),
        })
    }
}

pub(crate) fn now_unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// sled settings, explicit rather than sled's defaults (1 GiB cache, 500 ms flush).
#[derive(Debug, Clone, Copy)]
pub struct IndexOptions {
    /// sled page cache.
    pub cache_bytes: u64,
    /// Background flush period; writes are also flushed before every acknowledgement.
    pub flush_every_ms: u64,
}

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            cache_bytes: 64 * 1024 * 1024,
            flush_every_ms: 1000,
        }
    }
}

/// Attempts at opening a sled directory whose lock is still held.
const OPEN_ATTEMPTS_MAX: u32 = 40;
/// Pause between those attempts.
const OPEN_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);

/// Opens a sled database with explicit settings. sled releases its directory lock from a
/// background thread after the last handle is dropped, so a reopen in the same process
/// (a restart, a test) can find it still held for a moment: I/O errors are retried for up
/// to two seconds before they are reported.
pub(crate) fn open_sled(dir: &Path, options: IndexOptions) -> Result<sled::Db, sled::Error> {
    let config = sled::Config::new()
        .path(dir)
        .cache_capacity(options.cache_bytes)
        .flush_every_ms(Some(options.flush_every_ms))
        .mode(sled::Mode::HighThroughput);
    let mut attempt = 1;
    loop {
        match config.open() {
            Err(sled::Error::Io(_)) if attempt < OPEN_ATTEMPTS_MAX => {
                attempt += 1;
                #[allow(
                    clippy::disallowed_methods,
                    reason = "open is synchronous; callers run it on a blocking thread"
                )]
                std::thread::sleep(OPEN_RETRY_PAUSE);
            }
            result => return result,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ShardIndex {
    db: sled::Db,
    tree: sled::Tree,
}

impl ShardIndex {
    pub(crate) fn open(dir: &Path, options: IndexOptions) -> Result<Self, StoreError> {
        let db = open_sled(dir, options).map_err(|error| StoreError::Locked {
            path: dir.to_owned(),
            error,
        })?;
        let tree = db.open_tree("shards")?;
        Ok(Self { db, tree })
    }

    pub(crate) fn get(&self, id: &ShardId) -> Result<Option<ShardMeta>, StoreError> {
        Ok(self
            .tree
            .get(id.as_bytes())?
            .and_then(|v| ShardMeta::decode(&v)))
    }

    pub(crate) fn insert(&self, id: &ShardId, meta: ShardMeta) -> Result<(), StoreError> {
        self.tree.insert(id.as_bytes(), &meta.encode())?;
        Ok(())
    }

    pub(crate) fn remove(&self, id: &ShardId) -> Result<Option<ShardMeta>, StoreError> {
        Ok(self
            .tree
            .remove(id.as_bytes())?
            .and_then(|v| ShardMeta::decode(&v)))
    }

    /// Makes every change so far durable.
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Up to `limit` entries with ids strictly after `after`, in id order. Entries that do
    /// not decode (a damaged index) are returned with `None` so the caller can drop them.
    pub(crate) fn page(
        &self,
        after: Option<&ShardId>,
        limit: usize,
    ) -> Result<Vec<(ShardId, Option<ShardMeta>)>, StoreError> {
        let range = match after {
            Some(id) => self.tree.range::<&[u8], _>((
                std::ops::Bound::Excluded(id.as_bytes().as_slice()),
                std::ops::Bound::Unbounded,
            )),
            None => self.tree.iter(),
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        for entry in range.take(limit) {
            let (key, value) = entry?;
            match ShardId::try_from(key.as_ref()) {
                Ok(id) => out.push((id, ShardMeta::decode(&value))),
                // A key of the wrong length cannot name a shard: remove it now.
                Err(_) => {
                    self.tree.remove(key)?;
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn len(&self) -> usize {
        self.tree.len()
    }
}
