//! Errors of the node library. Variants are facts with data; messages say what to do.
//!
//! Each message includes its cause, and no variant exposes it again through `source()`,
//! so `{e:#}` chains and `%e` in logs both print every cause exactly once.

use std::path::PathBuf;

use andromede_proto::ShardId;

/// Why a shard store operation failed. Every failing operation leaves the store as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("{op} {path}: {error}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The sled index failed.
    #[error("shard index: {0}")]
    Index(sled::Error),
    /// The shard's bytes do not hash to the id it was offered under.
    #[error("shard bytes hash to {actual}, not to the claimed id {claimed}")]
    IdMismatch {
        /// The id it was offered under.
        claimed: ShardId,
        /// What its bytes hash to.
        actual: ShardId,
    },
    /// Larger than any shard the codec produces.
    #[error("shard of {bytes} bytes exceeds the limit of {bytes_max}")]
    TooLarge {
        /// Its size.
        bytes: u64,
        /// The limit.
        bytes_max: u64,
    },
    /// More ids in one batch than allowed.
    #[error("batch of {count} ids exceeds the limit of {count_max}")]
    BatchTooLarge {
        /// Ids given.
        count: u64,
        /// The limit.
        count_max: u64,
    },
    /// The store is full under its configured capacity.
    #[error(
        "store is full: {needed} bytes needed, {available} available; raise --capacity or add nodes"
    )]
    QuotaExceeded {
        /// Bytes the write needs.
        needed: u64,
        /// Bytes left under the capacity.
        available: u64,
    },
    /// The shard is not held.
    #[error("shard {id} not found")]
    NotFound {
        /// Which one.
        id: ShardId,
    },
    /// The shard was held but no longer matches its id; it has been quarantined.
    #[error("shard {id} is corrupt on disk and was quarantined")]
    Corrupt {
        /// Which one.
        id: ShardId,
    },
    /// The index cannot be opened: most often another node holds the data directory.
    #[error(
        "cannot open the shard index {path} ({error}): is another node running on this data directory?"
    )]
    Locked {
        /// The index directory.
        path: PathBuf,
        /// sled's error.
        error: sled::Error,
    },
    /// A configuration value is out of range.
    #[error("invalid {field}: {value} (allowed: {allowed})")]
    InvalidConfig {
        /// Which field.
        field: &'static str,
        /// The value.
        value: u64,
        /// The allowed range.
        allowed: &'static str,
    },
    /// A crash point of the fault-injection build was reached.
    #[cfg(feature = "fault-injection")]
    #[error("injected crash at {0:?}")]
    InjectedCrash(crate::store::CrashPoint),
}

impl StoreError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| Self::Io { op, path, error }
    }
}

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        Self::Index(error)
    }
}

/// Why the node daemon could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// The identity key or cluster secret could not be loaded or created.
    #[error(transparent)]
    Key(#[from] andromede_cluster::secret_file::SecretFileError),
    /// The shard store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The metadata store could not be opened.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// The network could not be started.
    #[error(transparent)]
    Net(#[from] andromede_cluster::net::NetError),
    /// A startup task failed.
    #[error("startup task failed: {0}")]
    Task(String),
    /// The admin endpoint could not be started.
    #[error("admin endpoint: {0}")]
    Admin(String),
}

/// Why a metadata store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// The storage engine failed.
    #[error("metadata store: {0}")]
    Engine(sled::Error),
    /// A stored record does not decode: the metadata store is damaged.
    #[error(
        "metadata record {key} is corrupt ({reason}): the bucket's other replicas still serve it"
    )]
    CorruptRecord {
        /// The raw key, hex.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// A partition name too long to encode in a key.
    #[error("partition name of {bytes} bytes is too long")]
    KeyTooLong {
        /// Its length.
        bytes: u64,
    },
}

impl From<sled::Error> for MetaError {
    fn from(error: sled::Error) -> Self {
        Self::Engine(error)
    }
}
