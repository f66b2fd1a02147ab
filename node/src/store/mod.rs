//! The shard store: shards as files in a fan-out directory, each written durably (temp →
//! fsync → rename → fsync directory) and indexed in sled. DESIGN.md, "Shard store".
//!
//! Invariants:
//! - A shard file's bytes hash to its name. `put` checks before writing, `get` and the
//!   scrubber check after reading; a mismatch is quarantined, never served.
//! - A crash at any point leaves either no shard or a whole one, and [`ShardStore::open`]
//!   reconciles the index with the files (see `recover`).
//! - Bytes used never exceed the configured capacity.
//! - Every method blocks on disk I/O: async callers run them with `spawn_blocking`.

mod epoch;
pub(crate) mod index;
mod layout;
pub mod power;
mod quarantine;
mod quota;
mod recover;
mod write;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use andromede_cluster::shard::hash::{shard_id, verify_shard};
use andromede_proto::ShardId;
use andromede_proto::limits::{SHARD_BATCH_IDS_MAX, SHARD_BYTES_MAX};
use bytes::Bytes;
use tracing::{error, warn};

pub use index::{IndexOptions, ShardMeta};
pub use recover::RecoveryReport;
pub use write::CrashPoint;

use crate::error::StoreError;
use index::{ShardIndex, now_unix_secs};
use layout::Layout;
use quota::Quota;

/// Locks striped by the first byte of the id: concurrent puts and deletes of one shard
/// are serialised, different shards proceed in parallel.
const LOCK_STRIPES: usize = 64;

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Root directory (created if missing).
    pub root: PathBuf,
    /// Most bytes of shards kept.
    pub capacity_bytes: u64,
    /// sled settings.
    pub index: IndexOptions,
}

/// Result of a `put`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The shard was written.
    Stored,
    /// The shard was already held; nothing changed.
    AlreadyHeld,
}

/// Result of re-verifying one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyOutcome {
    /// Intact; its verification time was updated.
    Intact,
    /// No longer matched its id; quarantined.
    Quarantined,
    /// The file was gone; the index entry was dropped.
    Missing,
}

/// Space and count of the shards held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreUsage {
    /// Number of shards.
    pub shard_count: u64,
    /// Bytes of shards.
    pub used_bytes: u64,
    /// Configured capacity.
    pub capacity_bytes: u64,
}

/// A node's shard store. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct ShardStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    layout: Layout,
    index: ShardIndex,
    quota: Quota,
    locks: Vec<Mutex<()>>,
    epoch: u64,
    new_epoch: bool,
}

impl ShardStore {
    /// Opens (or creates) the store at `config.root`: removes leftover temp files and
    /// reconciles the index with the shard files.
    ///
    /// # Errors
    /// I/O failures, a locked or damaged index, or an invalid capacity.
    pub fn open(config: &StoreConfig) -> Result<(Self, RecoveryReport), StoreError> {
        if config.capacity_bytes == 0 {
            return Err(StoreError::InvalidConfig {
                field: "capacity_bytes",
                value: 0,
                allowed: "at least 1 byte",
            });
        }
        let layout = Layout::new(&config.root);
        for dir in [
            layout.shards_dir(),
            layout.tmp_dir(),
            layout.quarantine_dir(),
        ] {
            write::create_dir_durable(&dir)?;
        }
        let (epoch, new_epoch) = epoch::read_or_create(&layout)?;
        let index = ShardIndex::open(&layout.index_dir(), config.index)?;
        let report = recover::reconcile(&layout, &index)?;
        let quota = Quota::new(config.capacity_bytes, report.used_bytes);
        let locks = (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect();
        Ok((
            Self {
                inner: Arc::new(Inner {
                    layout,
                    index,
                    quota,
                    locks,
                    epoch,
                    new_epoch,
                }),
            },
            report,
        ))
    }

    /// A random number drawn when this store was created (never 0). Nodes announce it:
    /// a peer whose epoch changes has lost its shards (wiped or replaced disk) even if it
    /// never looked down, and repair checks what it should hold at once.
    pub fn epoch(&self) -> u64 {
        self.inner.epoch
    }

    /// Whether this open created the store (and drew its epoch): a node whose metadata
    /// names it as a holder has then lost those shards.
    pub fn is_new(&self) -> bool {
        self.inner.new_epoch
    }

    fn lock(&self, id: &ShardId) -> MutexGuard<'_, ()> {
        let stripe = usize::from(id.0[0]) % LOCK_STRIPES;
        // The guarded data is `()`: a panic elsewhere cannot have left it inconsistent.
        self.inner.locks[stripe]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `bytes` as shard `id`, durably, after checking that they hash to `id`.
    /// Idempotent: a shard already held is not written again.
    ///
    /// # Errors
    /// [`StoreError::TooLarge`], [`StoreError::IdMismatch`], [`StoreError::QuotaExceeded`]
    /// or an I/O error; in every case nothing is stored.
    pub fn put(&self, id: &ShardId, bytes: &[u8]) -> Result<PutOutcome, StoreError> {
        self.put_inner(id, bytes, None)
    }

    /// Like [`ShardStore::put`] but stops, as a crash would, at `point`: no cleanup and no
    /// index update. For crash-safety tests only.
    ///
    /// # Errors
    /// [`StoreError::InjectedCrash`] once the point is reached.
    #[cfg(feature = "fault-injection")]
    pub fn put_crashing_at(
        &self,
        id: &ShardId,
        bytes: &[u8],
        point: CrashPoint,
    ) -> Result<PutOutcome, StoreError> {
        self.put_inner(id, bytes, Some(point))
    }

    fn put_inner(
        &self,
        id: &ShardId,
        bytes: &[u8],
        crash: Option<CrashPoint>,
    ) -> Result<PutOutcome, StoreError> {
        let size = bytes.len() as u64;
        if size > SHARD_BYTES_MAX {
            return Err(StoreError::TooLarge {
                bytes: size,
                bytes_max: SHARD_BYTES_MAX,
            });
        }
        if !verify_shard(id, bytes) {
            return Err(StoreError::IdMismatch {
                claimed: *id,
                actual: shard_id(bytes),
            });
        }
        let _guard = self.lock(id);
        let path = self.inner.layout.shard_path(id);
        // Held already if indexed and the file has the right length (a cheap check; the
        // scrubber and every read re-hash). A file of the wrong length is rewritten.
        let file_bytes = std::fs::metadata(&path).ok().map(|m| m.len());
        if self.inner.index.get(id)?.is_some() && file_bytes == Some(size) {
            return Ok(PutOutcome::AlreadyHeld);
        }
        // An index entry without a whole file is stale: forget it (and its bytes) first.
        if let Some(stale) = self.inner.index.remove(id)? {
            self.inner.quota.release(stale.size_bytes);
        }
        self.inner.quota.reserve(size)?;
        let written = write::write_shard(&self.inner.layout.tmp_dir(), &path, bytes, crash)
            .and_then(|()| {
                if crash == Some(CrashPoint::BeforeIndex) {
                    return Err(crash_error(CrashPoint::BeforeIndex));
                }
                self.inner.index.insert(
                    id,
                    ShardMeta {
                        size_bytes: size,
                        verified_at_unix_secs: now_unix_secs(),
                    },
                )?;
                self.inner.index.flush()
            });
        if let Err(e) = written {
            if crash.is_none() {
                self.inner.quota.release(size);
            }
            return Err(e);
        }
        Ok(PutOutcome::Stored)
    }

    /// Reads shard `id` and verifies it before returning it.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Corrupt`] if it no longer matches its id
    /// (it is quarantined first); an I/O error.
    pub fn get(&self, id: &ShardId) -> Result<Bytes, StoreError> {
        let path = self.inner.layout.shard_path(id);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _guard = self.lock(id);
                if let Some(stale) = self.inner.index.remove(id)? {
                    warn!(shard = %id.short(), "index listed a shard whose file is gone; entry dropped");
                    self.inner.quota.release(stale.size_bytes);
                }
                return Err(StoreError::NotFound { id: *id });
            }
            Err(e) => return Err(StoreError::io("read shard", path)(e)),
        };
        if !verify_shard(id, &bytes) {
            self.quarantine(id)?;
            return Err(StoreError::Corrupt { id: *id });
        }
        Ok(Bytes::from(bytes))
    }

    /// Which of `ids` are held, in order.
    ///
    /// # Errors
    /// [`StoreError::BatchTooLarge`] beyond `SHARD_BATCH_IDS_MAX` ids; index errors.
    pub fn have(&self, ids: &[ShardId]) -> Result<Vec<bool>, StoreError> {
        check_batch(ids)?;
        ids.iter()
            .map(|id| Ok(self.inner.index.get(id)?.is_some()))
            .collect()
    }

    /// Deletes those of `ids` that are held; returns how many were.
    ///
    /// # Errors
    /// [`StoreError::BatchTooLarge`]; I/O or index errors (shards deleted before the error
    /// stay deleted).
    pub fn delete(&self, ids: &[ShardId]) -> Result<u32, StoreError> {
        check_batch(ids)?;
        let mut deleted = 0u32;
        for id in ids {
            let _guard = self.lock(id);
            let path = self.inner.layout.shard_path(id);
            let removed_file = match std::fs::remove_file(&path) {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => return Err(StoreError::io("delete shard", path)(e)),
            };
            if removed_file {
                write::fsync_dir(&self.inner.layout.shard_dir(id))?;
            }
            if let Some(meta) = self.inner.index.remove(id)? {
                self.inner.quota.release(meta.size_bytes);
            }
            deleted += u32::from(removed_file);
        }
        self.inner.index.flush()?;
        Ok(deleted)
    }

    /// When shard `id`'s file was written (files are written once and never changed),
    /// if it is held.
    pub fn written_at(&self, id: &ShardId) -> Option<std::time::SystemTime> {
        std::fs::metadata(self.inner.layout.shard_path(id))
            .and_then(|m| m.modified())
            .ok()
    }

    /// Up to `limit` shards with ids after `after`, in id order: iteration in pages, so a
    /// scan never holds the whole index.
    ///
    /// # Errors
    /// Index errors.
    pub fn list(
        &self,
        after: Option<&ShardId>,
        limit: usize,
    ) -> Result<Vec<(ShardId, ShardMeta)>, StoreError> {
        let page = self.inner.index.page(after, limit)?;
        let mut out = Vec::with_capacity(page.len());
        for (id, meta) in page {
            match meta {
                Some(meta) => out.push((id, meta)),
                None => {
                    warn!(shard = %id.short(), "undecodable index entry dropped");
                    self.inner.index.remove(&id)?;
                }
            }
        }
        Ok(out)
    }

    /// Re-hashes shard `id`: quarantines it if it no longer matches, records the time if
    /// it does. Used by the scrubber.
    ///
    /// # Errors
    /// I/O or index errors other than a missing file.
    pub fn verify(&self, id: &ShardId) -> Result<VerifyOutcome, StoreError> {
        match self.get(id) {
            Ok(bytes) => {
                let _guard = self.lock(id);
                if self.inner.index.get(id)?.is_some() {
                    self.inner.index.insert(
                        id,
                        ShardMeta {
                            size_bytes: bytes.len() as u64,
                            verified_at_unix_secs: now_unix_secs(),
                        },
                    )?;
                }
                Ok(VerifyOutcome::Intact)
            }
            Err(StoreError::Corrupt { .. }) => Ok(VerifyOutcome::Quarantined),
            Err(StoreError::NotFound { .. }) => Ok(VerifyOutcome::Missing),
            Err(e) => Err(e),
        }
    }

    fn quarantine(&self, id: &ShardId) -> Result<(), StoreError> {
        let _guard = self.lock(id);
        let path = self.inner.layout.shard_path(id);
        error!(shard = %id.short(), path = %path.display(), "shard failed verification; quarantined");
        match quarantine::quarantine_file(&path, &self.inner.layout.quarantine_dir()) {
            Ok(()) => {}
            // Another reader quarantined it first.
            Err(StoreError::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if let Some(meta) = self.inner.index.remove(id)? {
            self.inner.quota.release(meta.size_bytes);
        }
        self.inner.index.flush()
    }

    /// Shards and bytes held, and the capacity.
    pub fn usage(&self) -> StoreUsage {
        StoreUsage {
            shard_count: self.inner.index.len() as u64,
            used_bytes: self.inner.quota.used_bytes(),
            capacity_bytes: self.inner.quota.capacity_bytes(),
        }
    }

    /// Makes every index change durable (shard files always are).
    ///
    /// # Errors
    /// Index errors.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.index.flush()
    }
}

fn check_batch(ids: &[ShardId]) -> Result<(), StoreError> {
    if ids.len() as u64 > SHARD_BATCH_IDS_MAX {
        return Err(StoreError::BatchTooLarge {
            count: ids.len() as u64,
            count_max: SHARD_BATCH_IDS_MAX,
        });
    }
    Ok(())
}

#[cfg(feature = "fault-injection")]
pub(crate) fn crash_error(point: CrashPoint) -> StoreError {
    StoreError::InjectedCrash(point)
}

#[cfg(not(feature = "fault-injection"))]
pub(crate) fn crash_error(point: CrashPoint) -> StoreError {
    // Unreachable: without the feature no caller passes a crash point.
    StoreError::InvalidConfig {
        field: "crash point",
        value: point as u64,
        allowed: "only in fault-injection builds",
    }
}
