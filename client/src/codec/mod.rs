//! The object codec: object → segments → sealed (XChaCha20-Poly1305) → Reed-Solomon
//! shards → blake3 ids, and back. DESIGN.md, "The object codec".
//!
//! - [`encode_object`] reads any `AsyncRead` (length known or not), seals and codes whole
//!   segments on blocking threads, up to `pipeline_depth` at a time, and hands each
//!   segment's shards to a [`ShardSink`] in order. Small objects are inlined.
//! - [`open_manifest`] checks the master key and authenticates a manifest for its object;
//!   [`OpenedObject::read`] streams the object, or a byte range of it, from any
//!   [`ShardSource`]: data shards first, parity only when a data shard is missing or fails
//!   its hash; any `k` valid shards per segment suffice.
//!
//! Memory is bounded by segment size × (pipeline depth + 2) × (k+m)/k, whatever the object
//! size; with a [`MemoryBudget`], all encodes and decodes together stay within it. The codec never does I/O itself beyond the reader, sink and source it is given.

mod budget;
mod decode;
mod encode;
mod inline;
mod memory;
mod range;
pub(crate) mod seal;
mod segment;

use std::future::Future;

use andromede_proto::ShardId;
use andromede_proto::limits::{
    INLINE_BYTES_DEFAULT, INLINE_BYTES_MAX, PIPELINE_DEPTH_MAX, SEGMENT_BYTES_DEFAULT,
    SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
};
use bytes::Bytes;

pub use andromede_cluster::shard::{Erasure, ErasureParams};
pub use budget::{BudgetPermit, MemoryBudget};
pub use decode::{OpenedObject, open_manifest};
pub use encode::{
    BodyEnd, Encoded, FinishHook, PutOptions, assemble_manifest, encode_object, new_version_id,
};
pub use memory::MemoryShards;

use crate::error::{BoxError, CodecError};

/// Tuning of the codec. Bucket-level parameters (`k`, `m`) are in [`PutOptions`].
#[derive(Debug, Clone)]
pub struct CodecConfig {
    /// Plaintext bytes per segment.
    pub segment_bytes: u64,
    /// Objects up to this size are inlined in their manifest.
    pub inline_bytes_max: u64,
    /// Segments encoded or decoded concurrently (and so held in memory at once).
    pub pipeline_depth: usize,
    /// A budget every encode and decode of this process counts its segment buffers
    /// against (see [`MemoryBudget`]); `None`: each is bounded by `pipeline_depth` alone.
    pub memory: Option<MemoryBudget>,
}

impl Default for CodecConfig {
    fn default() -> Self {
        Self {
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            inline_bytes_max: INLINE_BYTES_DEFAULT,
            pipeline_depth: std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8)),
            memory: None,
        }
    }
}

impl CodecConfig {
    /// Checks every field against its allowed range.
    ///
    /// # Errors
    /// [`CodecError::InvalidParameter`] naming the first bad field.
    pub fn validate(&self) -> Result<(), CodecError> {
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return Err(CodecError::InvalidParameter {
                field: "segment_bytes",
                value: self.segment_bytes,
                allowed: "64 KiB to 64 MiB",
            });
        }
        if self.inline_bytes_max > INLINE_BYTES_MAX {
            return Err(CodecError::InvalidParameter {
                field: "inline_bytes_max",
                value: self.inline_bytes_max,
                allowed: "0 to 64 KiB",
            });
        }
        if self.pipeline_depth == 0 || self.pipeline_depth as u64 > PIPELINE_DEPTH_MAX {
            return Err(CodecError::InvalidParameter {
                field: "pipeline_depth",
                value: self.pipeline_depth as u64,
                allowed: "1 to 16",
            });
        }
        Ok(())
    }
}

/// Which object a version belongs to; bound into the manifest's seals so that a replica
/// serving another object's manifest is caught.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectName {
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
}

impl ObjectName {
    /// Names `key` in `bucket`.
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            key: key.into(),
        }
    }
}

/// One shard produced by the encoder.
#[derive(Clone)]
pub struct EncodedShard {
    /// blake3 of `bytes`.
    pub id: ShardId,
    /// The shard.
    pub bytes: Bytes,
}

impl std::fmt::Debug for EncodedShard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EncodedShard({}, {} bytes)",
            self.id.short(),
            self.bytes.len()
        )
    }
}

/// Where the encoder puts shards: the cluster, a directory, memory.
pub trait ShardSink: Sync {
    /// Stores the `k + m` shards of segment `segment` (shard `j` at index `j`). Called
    /// once per segment, in order; the object is acknowledged only after every call
    /// returned `Ok`, so an implementation returns only once the shards are durable.
    fn put_segment(
        &self,
        segment: u64,
        shards: &[EncodedShard],
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// Where the decoder gets shards from.
pub trait ShardSource: Send + Sync + 'static {
    /// Fetches shard `shard_index` of segment `segment`, named `id`. The decoder verifies
    /// the bytes against `id`, so a source may return whatever it holds; any error or
    /// mismatch makes the decoder try another shard.
    fn fetch(
        &self,
        segment: u64,
        shard_index: u8,
        id: ShardId,
    ) -> impl Future<Output = Result<Bytes, BoxError>> + Send;
}

/// What one segment takes while it is in flight: the sealed segment and its parity, and
/// as much again for the request frames its shards are copied into on the way to (or
/// from) their holders.
pub(crate) fn segment_memory(segment_bytes: u64, params: ErasureParams) -> u64 {
    let sealed = segment_bytes + andromede_proto::limits::SEAL_OVERHEAD_BYTES;
    2 * sealed.div_ceil(u64::from(params.k())) * params.shard_count() as u64 + 4096
}

/// Runs CPU-bound codec work off the async threads.
async fn blocking<T, F>(work: F) -> Result<T, CodecError>
where
    F: FnOnce() -> Result<T, CodecError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| CodecError::Worker(e.to_string()))?
}
