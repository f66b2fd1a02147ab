//! Where a metadata record lives: table, partition (a bucket), sort key. Shared by the
//! replicas that store records and the clients that ask for them.

use andromede_proto::limits::{BUCKET_NAME_BYTES_MAX, OBJECT_KEY_BYTES_MAX};

/// What a record describes; part of its key, so each kind lists on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// Buckets (partition: empty; sort key: bucket name).
    Bucket = 1,
    /// Object index (partition: bucket; sort key: object key) → latest version or tombstone.
    ObjectIndex = 2,
    /// Manifests (partition: bucket; sort key: version id).
    Manifest = 3,
    /// Versions to collect (partition: bucket; sort key: version id) → when.
    Garbage = 4,
    /// A client program's own small values, sealed by the client (partition: empty, so
    /// they live with the bucket directory; sort key: the program's namespace, `/`, a
    /// name). Nodes store and replicate them and never read them: the S3 gateway's
    /// access keys live here.
    Private = 5,
    /// Multipart uploads in progress (partition: bucket; sort key: object key, 0x00,
    /// 16-byte upload id) → what the object will be.
    Upload = 6,
    /// Their parts (partition: bucket; sort key: upload id, 4-byte big-endian part
    /// number) → the part's version.
    Part = 7,
    /// Versions whose shards a copy reuses (partition: bucket; sort key: the version id
    /// the segments are sealed under) → an empty value. The collector leaves the shards
    /// of such a version to the collection of unreferenced shards.
    Shared = 8,
}

impl TryFrom<u32> for Table {
    type Error = RecordKeyError;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        match value {
            1 => Ok(Self::Bucket),
            2 => Ok(Self::ObjectIndex),
            3 => Ok(Self::Manifest),
            4 => Ok(Self::Garbage),
            5 => Ok(Self::Private),
            6 => Ok(Self::Upload),
            7 => Ok(Self::Part),
            8 => Ok(Self::Shared),
            other => Err(RecordKeyError::UnknownTable(other)),
        }
    }
}

/// A record key from a peer that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordKeyError {
    /// A table number this build does not know.
    #[error("unknown metadata table {0}")]
    UnknownTable(u32),
    /// A partition or sort key over its limit.
    #[error("{field} of {bytes} bytes exceeds the limit of {bytes_max}")]
    TooLong {
        /// Which part.
        field: &'static str,
        /// Its length.
        bytes: u64,
        /// The limit.
        bytes_max: u64,
    },
}

/// Where a record lives: table, partition (a bucket), then a sort key that orders listings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKey {
    /// The table.
    pub table: Table,
    /// The partition (bucket name, or empty for the bucket table).
    pub partition: String,
    /// The sort key within the partition (object keys are the longest).
    pub sort: Vec<u8>,
}

impl RecordKey {
    /// A key from its wire parts, checked.
    ///
    /// # Errors
    /// [`RecordKeyError`] for an unknown table or a part over its limit.
    pub fn from_parts(table: u32, partition: String, sort: &[u8]) -> Result<Self, RecordKeyError> {
        let key = Self {
            table: Table::try_from(table)?,
            partition,
            sort: sort.to_vec(),
        };
        key.validate()?;
        Ok(key)
    }

    /// Checks the partition and sort key lengths.
    ///
    /// # Errors
    /// [`RecordKeyError::TooLong`].
    pub fn validate(&self) -> Result<(), RecordKeyError> {
        check_len("partition", self.partition.len(), BUCKET_NAME_BYTES_MAX)?;
        validate_sort_key(&self.sort)
    }
}

/// Checks a sort key (or a listing bound) against [`SORT_KEY_BYTES_MAX`].
///
/// # Errors
/// [`RecordKeyError::TooLong`].
pub fn validate_sort_key(sort: &[u8]) -> Result<(), RecordKeyError> {
    check_len("sort key", sort.len(), SORT_KEY_BYTES_MAX)
}

/// The longest sort key: an upload record's (an object key, a separator, an upload id).
pub const SORT_KEY_BYTES_MAX: u64 = OBJECT_KEY_BYTES_MAX + 1 + 16;

fn check_len(field: &'static str, bytes: usize, bytes_max: u64) -> Result<(), RecordKeyError> {
    if bytes as u64 > bytes_max {
        return Err(RecordKeyError::TooLong {
            field,
            bytes: bytes as u64,
            bytes_max,
        });
    }
    Ok(())
}
