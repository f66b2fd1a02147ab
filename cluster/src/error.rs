//! Errors of the shared core's data types: the erasure code and the manifest. Variants
//! are facts with data; the client's `CodecError` and the node's errors convert from them
//! without losing their kind.

use andromede_proto::{DecodeError, IdLengthError};

/// Why the erasure coder refused a parameter or could not rebuild a segment.
// Exhaustive on purpose: the client maps every case onto its own `CodecError` variant.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    /// A shard count is outside its allowed range.
    #[error("invalid {field}: {value} (allowed: {allowed})")]
    InvalidParameter {
        /// Which parameter.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The allowed range, in words.
        allowed: &'static str,
    },
    /// A shard given to the coder had the wrong length.
    #[error("shard has {bytes} bytes, {expected} expected")]
    ShardSize {
        /// Its length.
        bytes: u64,
        /// The expected length.
        expected: u64,
    },
    /// Fewer than `k` valid shards of a segment were given.
    #[error("segment {segment} is unrecoverable: {valid} valid shards found, {needed} needed")]
    SegmentUnrecoverable {
        /// Segment index (0 where the coder does not know it; the caller does).
        segment: u64,
        /// Valid shards given.
        valid: u8,
        /// Shards needed (k).
        needed: u8,
    },
}

/// Why a manifest was refused.
// Exhaustive on purpose, as `ErasureError`.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The manifest breaks a rule of the format: it is corrupted or tampered with.
    #[error("manifest is corrupted or belongs to another object: {reason}")]
    Corrupt {
        /// What failed.
        reason: String,
    },
    /// The manifest was written by a format this version does not know.
    #[error(
        "manifest format version {found} is not supported (this build reads version {supported}): upgrade"
    )]
    UnsupportedVersion {
        /// Version found.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The manifest could not be decoded at all.
    #[error("manifest could not be decoded: {0}")]
    Decode(DecodeError),
    /// An identifier had the wrong length.
    #[error(transparent)]
    IdLength(#[from] IdLengthError),
    /// Its erasure parameters are out of range.
    #[error(transparent)]
    Erasure(#[from] ErasureError),
}

impl From<DecodeError> for ManifestError {
    fn from(error: DecodeError) -> Self {
        Self::Decode(error)
    }
}
