//! The node's admin endpoint as its callers see it (`andromede-node status` and `drain`,
//! the testnet, monitoring scripts): a loopback-only TCP port that answers one request
//! line with one line of JSON. These are the answers' shapes and the one function that
//! asks; the node serves them (`andromede_node::admin`).
//!
//! Bounded: requests of at most [`ADMIN_REQUEST_BYTES_MAX`] bytes, answers of at most
//! [`ADMIN_RESPONSE_BYTES_MAX`], [`ADMIN_TIMEOUT`] per exchange.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest request line (a fault-injection block list names peers).
pub const ADMIN_REQUEST_BYTES_MAX: u64 = 16 * 1024;
/// Longest answer accepted.
pub const ADMIN_RESPONSE_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Time one exchange may take.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What `status` reports about the node and its peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// This node's peer id.
    pub peer: String,
    /// Where it listens.
    pub listen: Vec<String>,
    /// Its zone.
    pub zone: String,
    /// Its jurisdiction.
    pub jurisdiction: String,
    /// Its shard store's capacity.
    pub capacity_bytes: u64,
    /// Bytes of shards held.
    pub used_bytes: u64,
    /// Shards held.
    pub shard_count: u64,
    /// The other nodes it knows of.
    pub peers: Vec<PeerStatus>,
    /// Redundancy of the segments this node repairs, and what repair has done.
    #[serde(default)]
    pub repair: RepairStatus,
    /// Whether this node is being drained (`andromede-node drain` reports progress).
    #[serde(default)]
    pub draining: bool,
    /// Whether its metadata store is new and still being copied from the other
    /// replicas (reads do not count it yet).
    #[serde(default)]
    pub catching_up: bool,
    /// Its background workers, by name.
    #[serde(default)]
    pub workers: Vec<WorkerStatus>,
    /// Its certificate: the name it was certified with, and until when.
    #[serde(default)]
    pub certificate: Option<CertificateStatus>,
    /// The version of the newest revocation list it holds (0: none).
    #[serde(default)]
    pub revocations_version: u64,
    /// Members of the roster (this node included).
    #[serde(default)]
    pub roster_members: u64,
    /// Of them, those it reaches (itself included).
    #[serde(default)]
    pub roster_reachable: u64,
    /// Why destructive work waits, when this node reaches no majority of the roster
    /// (cut off, or on the minority side of a partition).
    #[serde(default)]
    pub minority: Option<String>,
}

/// A node's certificate, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateStatus {
    /// The certified name.
    pub name: String,
    /// End of validity (seconds since the Unix epoch).
    pub not_after_unix: u64,
    /// The cluster's authority that signed it.
    pub authority: String,
}

/// One known peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Its peer id.
    pub peer: String,
    /// Its zone.
    pub zone: String,
    /// Its jurisdiction.
    pub jurisdiction: String,
    /// Its capacity.
    pub capacity_bytes: u64,
    /// Bytes it holds.
    pub used_bytes: u64,
    /// Whether it answered lately.
    pub reachable: bool,
    /// Whether it is being drained.
    #[serde(default)]
    pub draining: bool,
    /// Whether replica sets are changing because of it (catching up, or just done).
    #[serde(default)]
    pub handing_off: bool,
}

/// What repair has done and sees, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairStatus {
    /// Redundancy of the segments this node owns, as of the last complete sweep.
    pub health: HealthCounts,
    /// When that sweep ended (ms since the Unix epoch; 0: none yet).
    pub health_at_ms: u64,
    /// Versions found needing repair and not yet done in the current pass.
    pub queue: u64,
    /// Segments repaired since start.
    pub segments_repaired: u64,
    /// Shards rebuilt and stored since start.
    pub shards_rebuilt: u64,
    /// Bytes of rebuilt shards stored since start.
    pub bytes_rebuilt: u64,
    /// Versions whose manifest was rewritten since start.
    pub versions_repaired: u64,
    /// Healthy shards copied to another node since start (off draining nodes, doubled-up
    /// nodes, or toward the preferred placement after nodes joined); their old copies are
    /// collected as unreferenced shards after the grace period.
    #[serde(default)]
    pub shards_moved: u64,
}

/// Redundancy of segments, as `status` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCounts {
    /// Segments with all `k + m` shards healthy.
    pub full: u64,
    /// Segments missing shards but with more than `k` left, by shards missing.
    pub degraded: BTreeMap<u64, u64>,
    /// Segments with exactly `k` healthy shards: one more loss loses them.
    pub at_risk: u64,
    /// Segments with fewer than `k` healthy shards: unreadable until a holder returns.
    pub lost: u64,
    /// Readable segments by how many node losses they survive, whichever nodes: fewer
    /// than `m` when a node holds several of a segment's shards (a cluster of fewer than
    /// `k + m` nodes) or shards are missing.
    #[serde(default)]
    pub survives_node_losses: BTreeMap<u64, u64>,
}

/// How far a drain has come, for `andromede-node drain` and `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainProgress {
    /// Whether the node is draining.
    pub draining: bool,
    /// When the drain began (ms since the Unix epoch).
    pub since_ms: u64,
    /// Live manifest versions that still name this node as a holder, summed over the
    /// members that answered (a lower bound when `capped`).
    pub versions_left: u64,
    /// Whether a member stopped counting at its limit.
    pub capped: bool,
    /// Members that did not answer (their count is unknown).
    pub unanswered: Vec<String>,
    /// Whether this node's metadata records are on their new replica sets.
    pub metadata_handed_off: bool,
    /// Whether the node can be stopped for good without lowering any redundancy.
    pub safe_to_stop: bool,
}

/// How a background worker's passes go, in the same shape for every worker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// The worker (`scrub`, `anti_entropy`, `gc`, `repair`, `orphans`, `catch_up`).
    pub name: String,
    /// Passes finished since the node started, successful or not.
    pub passes: u64,
    /// When the last pass ended (ms since the Unix epoch; 0: none yet).
    pub last_pass_end_ms: u64,
    /// How long the last pass took.
    pub last_pass_ms: u64,
    /// What the last pass did, in the worker's own unit (shards scrubbed, records pushed,
    /// versions collected or repaired, shards deleted, records copied).
    pub last_items: u64,
    /// Why the last pass stopped early, if it did.
    pub last_error: Option<String>,
}

/// Why an admin request got no usable answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The request is not one line shorter than [`ADMIN_REQUEST_BYTES_MAX`].
    #[error("an admin request is one line of less than {ADMIN_REQUEST_BYTES_MAX} bytes")]
    BadRequest,
    /// Nothing listens at the address.
    #[error(
        "cannot reach the node's admin endpoint at {addr} ({error}): is `andromede-node run` running?"
    )]
    Unreachable {
        /// The endpoint.
        addr: SocketAddr,
        /// Why the connection failed.
        error: std::io::Error,
    },
    /// The connection broke during the exchange.
    #[error("the admin exchange with {addr} failed: {error}")]
    Io {
        /// The endpoint.
        addr: SocketAddr,
        /// What failed.
        error: std::io::Error,
    },
    /// The node did not answer in time.
    #[error("the node at {addr} did not answer within {ADMIN_TIMEOUT:?}")]
    Timeout {
        /// The endpoint.
        addr: SocketAddr,
    },
    /// The answer is not the JSON expected.
    #[error("the node answered something other than {expected} ({error}): {answer}")]
    BadAnswer {
        /// What was asked for.
        expected: &'static str,
        /// Why it does not parse.
        error: serde_json::Error,
        /// The answer, as received.
        answer: String,
    },
}

/// Sends one request line to the admin endpoint at `addr`; returns the answer line.
///
/// # Errors
/// [`AdminError`]: a bad request, the node not running, a broken exchange or a timeout.
///
/// # Cancel safety
/// Cancel-safe: dropping the future closes the connection; the node's answer is lost.
pub async fn admin_request(addr: SocketAddr, request: &str) -> Result<String, AdminError> {
    if request.len() as u64 >= ADMIN_REQUEST_BYTES_MAX || request.contains('\n') {
        return Err(AdminError::BadRequest);
    }
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|error| AdminError::Unreachable { addr, error })?;
        let io = |error| AdminError::Io { addr, error };
        stream
            .write_all(format!("{request}\n").as_bytes())
            .await
            .map_err(io)?;
        let mut text = String::new();
        stream
            .take(ADMIN_RESPONSE_BYTES_MAX)
            .read_to_string(&mut text)
            .await
            .map_err(io)?;
        Ok(text)
    };
    tokio::time::timeout(ADMIN_TIMEOUT, exchange)
        .await
        .map_err(|_| AdminError::Timeout { addr })?
}

/// Asks the node whose admin endpoint is at `addr` for its status.
///
/// # Errors
/// As [`admin_request`], or [`AdminError::BadAnswer`].
pub async fn query_status(addr: SocketAddr) -> Result<Status, AdminError> {
    let answer = admin_request(addr, "status").await?;
    serde_json::from_str::<Status>(&answer).map_err(|error| AdminError::BadAnswer {
        expected: "a status",
        error,
        answer,
    })
}
