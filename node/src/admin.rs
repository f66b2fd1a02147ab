//! The admin endpoint (its answers' shapes and the asking side are
//! `andromede_cluster::admin`): a loopback-only TCP port that answers one request line (`status`,
//! `drain`, `drain-progress`) with one line of JSON, for `andromede-node status` and
//! `drain` and for monitoring scripts. Loopback only
//! because it has no authentication: whoever can reach it is on the machine already.
//!
//! Bounded: `ADMIN_CONNECTIONS_MAX` connections at once, requests of at most
//! `ADMIN_REQUEST_BYTES_MAX` bytes, `ADMIN_TIMEOUT` per connection.

use std::sync::Arc;
use std::time::Duration;

use andromede_cluster::admin::{
    ADMIN_REQUEST_BYTES_MAX, ADMIN_TIMEOUT, CertificateStatus, DrainProgress, PeerStatus, Status,
};
use andromede_cluster::net::NetHandle;
use andromede_cluster::{Membership, MetaQuorum};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::drain::{self, Drain};
use crate::service::dispatch::NodeTags;
use crate::store::ShardStore;
use crate::workers::catch_up::CatchUp;
use crate::workers::repair::RepairStatusHandle;
use crate::workers::runner::StatusHandle;

/// Admin connections served at once.
pub const ADMIN_CONNECTIONS_MAX: usize = 8;
/// Longest wait for the swarm task's listen addresses in a status.
const LISTEN_ADDRS_WAIT: Duration = Duration::from_secs(2);

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
    /// The workers' statuses.
    pub workers: Vec<StatusHandle>,
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
        let reach = self.membership.reach();
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
            workers: self.workers.iter().map(StatusHandle::get).collect(),
            certificate: {
                let certificate = self.net.certificate();
                Some(CertificateStatus {
                    name: certificate.name().to_owned(),
                    not_after_unix: certificate.not_after_unix(),
                    authority: certificate
                        .issuer()
                        .map_or_else(|_| String::new(), |key| key.to_string()),
                })
            },
            revocations_version: self.net.revocations().borrow().version(),
            roster_members: reach.members as u64,
            roster_reachable: reach.reachable as u64,
            minority: reach.minority_reason(),
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
            Err(error) => serde_json::json!({ "error": error.to_string() }),
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
