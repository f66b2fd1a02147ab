//! [`ClientError`]: what a bucket or object operation can fail with, each message saying
//! what to do.

use crate::error::CodecError;
use andromede_cluster::QuorumError;
use andromede_cluster::meta::values::ValueError;
use andromede_cluster::net::NetError;
use andromede_cluster::placement::PlacementError;

/// Why a bucket or object operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A bucket name that breaks the naming rules.
    #[error("invalid bucket name {name:?}: {reason}")]
    InvalidBucketName {
        /// The name.
        name: String,
        /// The rule broken.
        reason: &'static str,
    },
    /// An object key that breaks the rules.
    #[error("invalid object key: {reason}")]
    InvalidKey {
        /// The rule broken.
        reason: &'static str,
    },
    /// A request argument out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// This client's certificate does not allow it (every node refuses it too): ask the
    /// authority for a certificate with the grant.
    #[error("{0}")]
    Forbidden(String),
    /// No such bucket.
    #[error("bucket {bucket:?} does not exist: create it with `andromede mb {bucket}`")]
    NoSuchBucket {
        /// The bucket.
        bucket: String,
    },
    /// The bucket exists already.
    #[error("bucket {bucket:?} already exists")]
    BucketExists {
        /// The bucket.
        bucket: String,
    },
    /// Only empty buckets can be deleted.
    #[error("bucket {bucket:?} is not empty: delete its objects first")]
    BucketNotEmpty {
        /// The bucket.
        bucket: String,
    },
    /// No such object.
    #[error("object {bucket}/{key} does not exist")]
    NoSuchKey {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// No such multipart upload (never started, completed, aborted, or expired).
    #[error(
        "multipart upload {upload} of {bucket}/{key} does not exist (completed, aborted or expired?)"
    )]
    NoSuchUpload {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The upload id.
        upload: String,
    },
    /// A part named in a completion was not uploaded, or not with that ETag.
    #[error("part {part_number}: {reason}")]
    InvalidPart {
        /// The part.
        part_number: u32,
        /// What is wrong.
        reason: String,
    },
    /// A completion's parts are not in ascending order.
    #[error("the list of parts was not in ascending order")]
    InvalidPartOrder,
    /// A part other than the last is smaller than the minimum.
    #[error(
        "part {part_number} is {size} bytes; every part but the last must be at least {min} bytes"
    )]
    EntityTooSmall {
        /// The part.
        part_number: u32,
        /// Its size.
        size: u64,
        /// The minimum.
        min: u64,
    },
    /// Metadata replicas could not be reached in sufficient number.
    #[error(transparent)]
    Quorum(#[from] QuorumError),
    /// The network failed (connecting, admission).
    #[error(transparent)]
    Net(#[from] NetError),
    /// Encoding or decoding the object failed (wrong master key, unrecoverable segment, ...).
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// No placement satisfies the bucket's policy.
    #[error("cannot place the object's shards: {0}")]
    Placement(#[from] PlacementError),
    /// A replica returned a record that does not decode.
    #[error("corrupt {what} record from a metadata replica: {source}")]
    CorruptRecord {
        /// Which kind of record.
        what: &'static str,
        /// What was wrong.
        #[source]
        source: ValueError,
    },
}

impl From<andromede_cluster::ManifestError> for ClientError {
    fn from(error: andromede_cluster::ManifestError) -> Self {
        Self::Codec(error.into())
    }
}

impl From<andromede_cluster::ErasureError> for ClientError {
    fn from(error: andromede_cluster::ErasureError) -> Self {
        Self::Codec(error.into())
    }
}
