//! Shared test helpers: a small-segment codec config, deterministic data, round trips.

use std::sync::Arc;

use andromede_client::codec::Encoded;
use andromede_client::{
    CodecConfig, CodecError, ErasureParams, MasterKey, MemoryShards, ObjectName, PutOptions,
    encode_object, open_manifest,
};
use bytes::Bytes;
use futures::TryStreamExt;

/// Segment size used by tests: the smallest allowed, so several segments stay cheap.
pub(crate) const SEGMENT: u64 = 64 * 1024;
/// Inline threshold used by tests (the default).
pub(crate) const INLINE: u64 = 16 * 1024;

/// Sizes at every boundary of the codec, each with the reason it matters.
pub(crate) const INTERESTING_SIZES: &[u64] = &[
    0,                  // empty object: inline, no segments
    1,                  // smallest non-empty
    INLINE - 1,         // just below the inline threshold
    INLINE,             // largest inlined object
    INLINE + 1,         // smallest segmented object (one short segment)
    SEGMENT - 1,        // one segment, one byte short
    SEGMENT,            // exactly one full segment (reader ends on a boundary)
    SEGMENT + 1,        // a full segment and a 1-byte last segment
    3 * SEGMENT + 4321, // several segments, short last one
];

/// Erasure codes the tests run over.
pub(crate) const PARAMS: &[(u32, u32)] = &[(1, 1), (2, 1), (4, 2), (3, 3), (6, 3)];

pub(crate) fn config() -> CodecConfig {
    CodecConfig {
        segment_bytes: SEGMENT,
        inline_bytes_max: INLINE,
        pipeline_depth: 2,
        memory: None,
    }
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Deterministic, non-repeating bytes (so a misplaced segment cannot pass for another).
pub(crate) fn data(size: u64, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

pub(crate) fn object() -> ObjectName {
    ObjectName::new("bucket", "some/key")
}

pub(crate) fn options(k: u32, m: u32) -> PutOptions {
    PutOptions {
        params: ErasureParams::new(k, m).unwrap(),
        ..PutOptions::default()
    }
}

/// Encodes `data` with explicit config, name and options (for tests of refusals).
pub(crate) async fn encode_with(
    config: &CodecConfig,
    master: &MasterKey,
    object: &ObjectName,
    options: &PutOptions,
    data: &[u8],
    shards: &MemoryShards,
) -> Result<Encoded, CodecError> {
    encode_object(config, master, object, options, data, shards).await
}

pub(crate) async fn encode(
    master: &MasterKey,
    data: &[u8],
    k: u32,
    m: u32,
    shards: &MemoryShards,
) -> Encoded {
    encode_object(&config(), master, &object(), &options(k, m), data, shards)
        .await
        .unwrap()
}

/// Decodes a manifest's object (or a range of it) back from `shards`.
pub(crate) async fn decode(
    master: &MasterKey,
    manifest_bytes: &[u8],
    range: Option<std::ops::Range<u64>>,
    shards: Arc<MemoryShards>,
) -> Result<Vec<u8>, CodecError> {
    let manifest = andromede_cluster::Manifest::decode(manifest_bytes)?;
    let opened = Arc::new(open_manifest(master, &object(), manifest)?);
    let chunks: Vec<Bytes> = opened.read(&config(), range, shards).try_collect().await?;
    Ok(chunks.concat())
}
