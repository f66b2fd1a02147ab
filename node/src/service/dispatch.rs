//! The dispatcher: takes requests from the swarm's bounded inbound queue and runs at most
//! `SERVICE_CONCURRENCY_MAX` of them at once on blocking threads; beyond that, requests
//! wait in the (bounded) queue and the swarm answers `Busy` when it is full.

use std::sync::Arc;

use andromede_cluster::Membership;
use andromede_cluster::net::meta_message::NodeInfo;
use andromede_cluster::net::{InboundRequest, NetHandle, Protocol};
use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, debug_span};

use super::meta::{LocalMeta, Requester};
use super::shard::handle_shard_request;
use crate::store::ShardStore;

/// Requests served concurrently at most (each may hold one shard, up to 64 MiB, in memory).
pub const SERVICE_CONCURRENCY_MAX: usize = 16;

/// Requests taken off the inbound queue at once: those being served, plus, in
/// fault-injection builds, those held by an injected delay. A delay models a slow link,
/// so a delayed request waits *before* it takes one of the node's service slots; were it
/// to hold a slot while it waits, a slowed node would serve a handful of requests per
/// second, time out its peers' info requests and leave their replica sets, which is
/// another fault than the one asked for.
const HANDLERS_MAX: usize = if cfg!(feature = "fault-injection") {
    SERVICE_CONCURRENCY_MAX + 256
} else {
    SERVICE_CONCURRENCY_MAX
};

/// A node's tags, as its config gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeTags {
    /// Failure domain.
    pub zone: String,
    /// Legal jurisdiction.
    pub jurisdiction: String,
}

impl NodeTags {
    /// What the node says about itself now, seeing `membership`.
    pub fn info(&self, store: &ShardStore, membership: &Membership, draining: bool) -> NodeInfo {
        let usage = store.usage();
        NodeInfo {
            zone: self.zone.clone(),
            jurisdiction: self.jurisdiction.clone(),
            capacity_bytes: usage.capacity_bytes,
            used_bytes: usage.used_bytes,
            live_nodes: u32::try_from(membership.live().len() + 1).unwrap_or(u32::MAX),
            draining,
            store_epoch: store.epoch(),
            catching_up: false,
            roster_digest: Some(membership.roster_digest()),
            handed_off: membership.handed_off(),
            departed: membership.departed().iter().map(|m| m.peer).collect(),
            revocations_version: membership.revocations_version(),
            roster_unchanged_ms: u64::try_from(membership.roster_unchanged_for().as_millis())
                .unwrap_or(u64::MAX),
            members_digest: Some(membership.members_digest()),
        }
    }
}

/// Serves inbound requests until the swarm task stops.
pub async fn serve(
    store: ShardStore,
    meta: LocalMeta,
    net: NetHandle,
    mut inbound: mpsc::Receiver<InboundRequest>,
) {
    let service = Arc::new(Semaphore::new(SERVICE_CONCURRENCY_MAX));
    let slots = Arc::new(Semaphore::new(HANDLERS_MAX));
    // The handlers in flight (at most `HANDLERS_MAX`): dropped, so aborted, with this
    // task when the daemon stops; none outlives it holding the stores.
    let mut handlers = JoinSet::new();
    while let Some(mut request) = inbound.recv().await {
        while handlers.try_join_next().is_some() {}
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let service = Arc::clone(&service);
        let store = store.clone();
        let meta = meta.clone();
        let net = net.clone();
        let span = debug_span!("request", protocol = ?request.protocol, peer = %request.peer);
        handlers.spawn(
            async move {
                let _slot = slot;
                #[cfg(feature = "fault-injection")]
                crate::faults::delay().await;
                let Ok(_permit) = service.acquire_owned().await else {
                    return;
                };
                let bytes = std::mem::take(&mut request.request);
                let role = request.role;
                let grants = Arc::clone(&request.grants);
                let response = match request.protocol {
                    Protocol::Shard => {
                        tokio::task::spawn_blocking(move || {
                            let requester = Requester {
                                role,
                                grants: &grants,
                            };
                            handle_shard_request(&store, Bytes::from(bytes), requester).encode()
                        })
                        .await
                    }
                    Protocol::Meta => {
                        tokio::task::spawn_blocking(move || {
                            let requester = Requester {
                                role,
                                grants: &grants,
                            };
                            meta.answer(&bytes, requester).encode()
                        })
                        .await
                    }
                    // A protocol this node does not serve: dropping the channel fails the
                    // requester's call at once.
                    _ => return,
                };
                match response {
                    Ok(response) => {
                        if net.respond(request, response).await.is_err() {
                            debug!("network stopped before the answer was sent");
                        }
                    }
                    Err(e) => debug!(error = %e, "request handler failed"),
                }
            }
            .instrument(span),
        );
    }
}
