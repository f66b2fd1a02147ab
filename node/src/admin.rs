//! The admin endpoint: a loopback-only TCP port that answers one request line (`status`,
//! `drain`, `drain-progress`) with one line of JSON, for `andromede-node status` and
//! `drain` and for monitoring scripts. Loopback only
//! because it has no authentication: whoever can reach it is on the machine already.
//!
//! Bounded: `ADMIN_CONNECTIONS_MAX` connections at once, requests of at most
//! `ADMIN_REQUEST_BYTES_MAX` bytes, `ADMIN_TIMEOUT` per connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use andromede_client::cluster::{Membership, MetaQuorum};
use andromede_client::net::NetHandle;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::drain::{self, Drain, DrainProgress};
use crate::service::dispatch::NodeTags;
use crate::store::ShardStore;
use crate::workers::catch_up::CatchUp;
use crate::workers::repair::{RepairStatus, RepairStatusHandle};

/// Admin connections served at once.
pub const ADMIN_CONNECTIONS_MAX: usize = 8;
/// Longest request line (a fault-injection block list names peers).
pub const ADMIN_REQUEST_BYTES_MAX: u64 = 16 * 1024;
/// Time a connection may take.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the swarm task's listen addresses in a status.
const LISTEN_ADDRS_WAIT: Duration = Duration::from_secs(2);
/// Longest answer accepted by [`query_status`].
const ADMIN_RESPONSE_BYTES_MAX: u64 = 16 * 1024 * 1024;

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

/// What the endpoint reads to answer.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// The swarm.
    pub net: NetHandle,
    /// The shard store.
    pub store: ShardStore,
    /// The known nodes.
    pub membership: Membership,
    /// This node's tags.
    pub tags: NodeTags,
    /// The repair worker's status.
    pub repair: RepairStatusHandle,
    /// Whether the node is being drained.
    pub drain: Drain,
    /// Metadata access (drain progress asks every member).
    pub quorum: MetaQuorum,
    /// Whether the metadata store is still being filled.
    pub catch_up: CatchUp,
}

impl AdminState {
    /// How far this node's drain has come.
    pub async fn drain_progress(&self) -> DrainProgress {
        drain::progress(
            &self.drain,
            self.net.local_peer_id(),
            &self.membership,
            &self.quorum,
        )
        .await
    }

    async fn status(&self) -> Status {
        let usage = self.store.usage();
        // The swarm task answers this; when it is swamped, the status goes out without
        // the addresses rather than not at all.
        let listen = tokio::time::timeout(LISTEN_ADDRS_WAIT, self.net.listen_addrs())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        Status {
            peer: self.net.local_peer_id().to_string(),
            listen: listen.iter().map(ToString::to_string).collect(),
            zone: self.tags.zone.clone(),
            jurisdiction: self.tags.jurisdiction.clone(),
            capacity_bytes: usage.capacity_bytes,
            used_bytes: usage.used_bytes,
            shard_count: usage.shard_count,
            peers: self
                .membership
                .all()
                .into_iter()
                .map(|m| PeerStatus {
                    peer: m.peer.to_string(),
                    zone: m.info.zone,
                    jurisdiction: m.info.jurisdiction,
                    capacity_bytes: m.info.capacity_bytes,
                    used_bytes: m.info.used_bytes,
                    reachable: m.live,
                    draining: m.info.draining,
                    handing_off: m.handing_off,
                })
                .collect(),
            repair: self
                .repair
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            draining: self.drain.is_draining(),
            catching_up: self.catch_up.is_pending(),
        }
    }
}

/// Serves the endpoint until the task is aborted.
pub async fn serve(listener: TcpListener, state: AdminState) {
    let permits = Arc::new(Semaphore::new(ADMIN_CONNECTIONS_MAX));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "admin endpoint accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(ADMIN_TIMEOUT, answer(stream, &state)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => debug!(%peer, %error, "admin connection failed"),
                Err(_) => debug!(%peer, "admin connection timed out"),
            }
        });
    }
}

async fn answer(stream: TcpStream, state: &AdminState) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read.take(ADMIN_REQUEST_BYTES_MAX))
        .read_line(&mut line)
        .await?;
    let body = match line.trim() {
        "status" => serde_json::to_value(state.status().await),
        "drain" => Ok(match state.drain.start() {
            Ok(since_ms) => serde_json::json!({ "draining_since_ms": since_ms }),
            Err(error) => serde_json::json!({ "error": error }),
        }),
        "drain-progress" => serde_json::to_value(state.drain_progress().await),
        #[cfg(feature = "fault-injection")]
        fault if fault.starts_with("fault ") => Ok(
            match crate::faults::apply(fault.trim_start_matches("fault "), &state.net).await {
                Ok(done) => serde_json::json!({ "ok": done }),
                Err(error) => serde_json::json!({ "error": error }),
            },
        ),
        other => Ok(serde_json::json!({
            "error": format!("unknown request {other:?}: requests are `status`, `drain` and `drain-progress` (fault injection is not compiled into this node)")
        })),
    }
    .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
    .to_string();
    write.write_all(body.as_bytes()).await?;
    write.write_all(b"\n").await?;
    write.shutdown().await
}

/// Sends one request line to the admin endpoint at `addr`; returns the answer line.
///
/// # Errors
/// A message saying whether the node is not running or did not answer in time.
pub async fn admin_request(addr: SocketAddr, request: &str) -> Result<String, String> {
    if request.len() as u64 >= ADMIN_REQUEST_BYTES_MAX || request.contains('\n') {
        return Err(format!(
            "an admin request is one line of less than {ADMIN_REQUEST_BYTES_MAX} bytes"
        ));
    }
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| {
            format!("cannot reach the node's admin endpoint at {addr} ({e}): is `andromede-node run` running?")
        })?;
        stream
            .write_all(format!("{request}\n").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut text = String::new();
        stream
            .take(ADMIN_RESPONSE_BYTES_MAX)
            .read_to_string(&mut text)
            .await
            .map_err(|e| e.to_string())?;
        Ok(text)
    };
    tokio::time::timeout(ADMIN_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("the node at {addr} did not answer within {ADMIN_TIMEOUT:?}"))?
}

/// Asks the node whose admin endpoint is at `addr` for its status.
///
/// # Errors
/// A message saying whether the node is not running or answered badly.
pub async fn query_status(addr: SocketAddr) -> Result<Status, String> {
    let text = admin_request(addr, "status").await?;
    serde_json::from_str::<Status>(&text)
        .map_err(|e| format!("the node answered something other than a status ({e}): {text}"))
}
