//! Errors of the client library. Variants are facts with data; messages say what to do.
//!
//! Each message includes its cause, and no variant exposes it again through `source()`,
//! so `{e:#}` chains and `%e` in logs both print every cause exactly once.

use andromede_cluster::error::{ErasureError, ManifestError};
use andromede_proto::{DecodeError, IdLengthError};

/// A boxed error from a caller-supplied sink or source (network, disk, memory).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why an object could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A configuration or bucket parameter is outside its allowed range.
    #[error("invalid {field}: {value} (allowed: {allowed})")]
    InvalidParameter {
        /// Which parameter.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The allowed range, in words.
        allowed: &'static str,
    },
    /// A field of the request (key, content type, metadata) exceeds its limit.
    #[error("{field} is {bytes} bytes, more than the limit of {bytes_max}")]
    TooLarge {
        /// Which field.
        field: &'static str,
        /// Its size.
        bytes: u64,
        /// The limit.
        bytes_max: u64,
    },
    /// The manifest was written with a different master key than the one loaded.
    #[error(
        "this object was written with another master key (id {expected}, loaded {loaded}): load the tenant's master key"
    )]
    WrongMasterKey {
        /// Key id recorded in the manifest.
        expected: String,
        /// Key id of the loaded key.
        loaded: String,
    },
    /// The manifest fails validation or authentication: it is corrupted, tampered with, or
    /// belongs to another object.
    #[error("manifest is corrupted or belongs to another object: {reason}")]
    ManifestCorrupt {
        /// What failed.
        reason: String,
    },
    /// The manifest was written by a format this version does not know.
    #[error(
        "manifest format version {found} is not supported (this build reads version {supported}): upgrade the client"
    )]
    UnsupportedManifestVersion {
        /// Version found.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The manifest could not be decoded at all.
    #[error("manifest could not be decoded: {0}")]
    ManifestDecode(DecodeError),
    /// An identifier had the wrong length.
    #[error(transparent)]
    IdLength(#[from] IdLengthError),
    /// Fewer than `k` valid shards of a segment could be obtained.
    #[error("segment {segment} is unrecoverable: {valid} valid shards found, {needed} needed")]
    SegmentUnrecoverable {
        /// Segment index.
        segment: u64,
        /// Valid shards obtained.
        valid: u8,
        /// Shards needed (k).
        needed: u8,
    },
    /// Decryption of a segment or inline body failed although its shards verified: the data
    /// key or the manifest does not match the data.
    #[error("segment {segment} failed authentication: the data does not belong to this manifest")]
    SegmentAuthentication {
        /// Segment index (0 for inline bodies).
        segment: u64,
    },
    /// A shard given to the erasure coder had the wrong length.
    #[error("shard has {bytes} bytes, {expected} expected")]
    ShardSize {
        /// Its length.
        bytes: u64,
        /// The expected length.
        expected: u64,
    },
    /// The object is larger than one manifest can describe.
    #[error(
        "object too large: more than {shard_ids_max} shard ids in one manifest; use larger segments"
    )]
    ObjectTooLarge {
        /// The manifest limit.
        shard_ids_max: u64,
    },
    /// Reading the input failed.
    #[error("reading the object failed: {0}")]
    Read(std::io::Error),
    /// The caller's [`crate::codec::FinishHook`] refused the body once it was read (a
    /// digest that does not match): nothing was committed.
    #[error("the object's body was refused: {0}")]
    Refused(BoxError),
    /// The shard sink refused a segment.
    #[error("storing segment {segment} failed: {error}")]
    Sink {
        /// Segment index.
        segment: u64,
        /// The sink's error.
        error: BoxError,
    },
    /// The AEAD refused to seal (only possible for inputs beyond its length limit).
    #[error("sealing failed: input of {bytes} bytes is beyond the cipher's limit")]
    SealFailed {
        /// Length of the refused input.
        bytes: u64,
    },
    /// A blocking codec task panicked or was cancelled.
    #[error("codec worker failed: {0}")]
    Worker(String),
}

impl From<DecodeError> for CodecError {
    fn from(error: DecodeError) -> Self {
        Self::ManifestDecode(error)
    }
}

impl From<ErasureError> for CodecError {
    fn from(error: ErasureError) -> Self {
        match error {
            ErasureError::InvalidParameter {
                field,
                value,
                allowed,
            } => Self::InvalidParameter {
                field,
                value,
                allowed,
            },
            ErasureError::ShardSize { bytes, expected } => Self::ShardSize { bytes, expected },
            ErasureError::SegmentUnrecoverable {
                segment,
                valid,
                needed,
            } => Self::SegmentUnrecoverable {
                segment,
                valid,
                needed,
            },
        }
    }
}

impl From<ManifestError> for CodecError {
    fn from(error: ManifestError) -> Self {
        match error {
            ManifestError::Corrupt { reason } => Self::ManifestCorrupt { reason },
            ManifestError::UnsupportedVersion { found, supported } => {
                Self::UnsupportedManifestVersion { found, supported }
            }
            ManifestError::Decode(error) => Self::ManifestDecode(error),
            ManifestError::IdLength(error) => Self::IdLength(error),
            ManifestError::Erasure(error) => error.into(),
        }
    }
}
