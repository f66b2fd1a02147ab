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
    /// The identity key could not be loaded or created.
    #[error(transparent)]
    Key(#[from] andromede_cluster::secret_file::SecretFileError),
    /// The node's certificate or revocation list is missing or does not admit it.
    #[error("{0}")]
    Credentials(String),
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
    /// The roster file cannot be read.
    #[error("{0}: delete the file to learn the roster again from the bootstrap nodes")]
    Roster(#[from] andromede_cluster::roster::RosterError),
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
    /// A client's listing passed too many buckets it may not see to fill a page.
    #[error(
        "{examined} buckets looked at without filling a page of those this client may see (at most {limit}): ask the authority for a narrower grant pattern or list with a prefix"
    )]
    TooManyHidden {
        /// Rows looked at.
        examined: usize,
        /// The bound.
        limit: usize,
    },
}

impl From<sled::Error> for MetaError {
    fn from(error: sled::Error) -> Self {
        Self::Engine(error)
    }
}

/// Why a worker's pass, or one step of it, stopped. The pass logs it, the worker's status
/// shows it, and the next pass tries again; callers branch on the kind (a local store
/// failure ends a pass, a peer's failure defers one version).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// This node's metadata replica failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// This node's shard store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Too few replicas answered a quorum request.
    #[error(transparent)]
    Quorum(#[from] andromede_cluster::QuorumError),
    /// This node reaches no majority of the roster: destructive work waits.
    #[error("{0}")]
    Minority(String),
    /// One replica gave no usable answer (boxed: a call error names its peer).
    #[error(transparent)]
    Replica(Box<andromede_cluster::ReplicaError>),
    /// A shard call to a holder failed (boxed, as `Replica`).
    #[error(transparent)]
    Shard(Box<crate::workers::shard_calls::ShardCallError>),
    /// A manifest failed validation.
    #[error(transparent)]
    Manifest(#[from] andromede_cluster::ManifestError),
    /// The erasure coder refused.
    #[error(transparent)]
    Erasure(#[from] andromede_cluster::ErasureError),
    /// A peer answered a request with an answer of another kind.
    #[error("{peer} answered a {request} request with another kind of answer")]
    UnexpectedAnswer {
        /// Who answered.
        peer: andromede_cluster::net::PeerId,
        /// What was asked.
        request: &'static str,
    },
    /// A shard of a manifest has no holder, or its holder is not a peer id.
    #[error("shard {shard} of segment {segment} has no usable holder")]
    NoHolder {
        /// Segment index.
        segment: u64,
        /// Shard index.
        shard: u8,
    },
    /// No node can take a shard that must move or be rebuilt.
    #[error("no node can take shard {shard} of segment {segment} (policy, room or zones)")]
    NoDestination {
        /// Segment index.
        segment: u64,
        /// Shard index.
        shard: u8,
    },
    /// A plan names a shard without what repairing it needs (its id, its rebuilt bytes).
    #[error("shard {shard} of segment {segment}: {what}")]
    PlanIncomplete {
        /// Segment index.
        segment: u64,
        /// Shard index.
        shard: u8,
        /// What is missing.
        what: &'static str,
    },
    /// Fewer than `k` shards of a segment could be fetched: it cannot be rebuilt now.
    #[error("segment {segment}: {fetched} of {needed} shards fetched, no healthy shard left")]
    Unrecoverable {
        /// Segment index.
        segment: u64,
        /// Shards fetched.
        fetched: usize,
        /// Shards needed (k).
        needed: usize,
    },
    /// Some segments of a version could not be repaired (the others were).
    #[error("{failed} segment(s) not repaired; the first: {first}")]
    SegmentsFailed {
        /// How many.
        failed: usize,
        /// The first failure.
        first: Box<WorkerError>,
    },
    /// A rebuilt shard does not hash to the id its manifest names: the manifest or a
    /// holder is inconsistent, and nothing was stored.
    #[error("rebuilt shard {shard} of segment {segment} does not match its id")]
    RebuiltMismatch {
        /// Segment index.
        segment: u64,
        /// Shard index.
        shard: u8,
    },
    /// None of a segment's shards could be stored on its destinations.
    #[error("no shard of segment {segment} could be stored: {failures}")]
    NothingStored {
        /// Segment index.
        segment: u64,
        /// Each failure, as `shard j to peer: error`.
        failures: String,
    },
    /// A marker or state file could not be read or written.
    #[error("{what} {path}: {error}")]
    File {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why it failed.
        error: std::io::Error,
    },
    /// The roster of nodes seen (kept with the shards) does not parse.
    #[error("roster {path} is unreadable ({error}): delete it to start a new one")]
    RosterUnreadable {
        /// The file.
        path: std::path::PathBuf,
        /// Why it does not parse.
        error: serde_json::Error,
    },
    /// A peer's paged answer did not end within the pages allowed.
    #[error("{peer} answered more than {pages_max} pages")]
    TooManyPages {
        /// Who answered.
        peer: andromede_cluster::net::PeerId,
        /// Pages allowed.
        pages_max: usize,
    },
    /// Placement found no room for the shards that must move.
    #[error(transparent)]
    Placement(#[from] andromede_cluster::placement::PlacementError),
    /// The worker is stopping; the step was not done.
    #[error("stopping")]
    Stopping,
    /// A blocking task panicked or was cancelled.
    #[error("a blocking task failed: {0}")]
    Task(String),
}

impl From<andromede_cluster::ReplicaError> for WorkerError {
    fn from(error: andromede_cluster::ReplicaError) -> Self {
        Self::Replica(Box::new(error))
    }
}

impl From<crate::workers::shard_calls::ShardCallError> for WorkerError {
    fn from(error: crate::workers::shard_calls::ShardCallError) -> Self {
        Self::Shard(Box::new(error))
    }
}

impl From<tokio::task::JoinError> for WorkerError {
    fn from(error: tokio::task::JoinError) -> Self {
        Self::Task(error.to_string())
    }
}
