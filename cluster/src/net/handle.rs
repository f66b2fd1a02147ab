//! [`NetHandle`]: the cloneable way into the swarm task. Every method sends one command on
//! a bounded channel and awaits its oneshot reply.

use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot, watch};

use super::admission::AdmitError;
use super::event_loop::{InboundRequest, Protocol};
use crate::authority::{Certificate, RevocationList};

/// Why a network operation failed. Kinds stay distinct: callers fail over on some.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The transport could not be built or could not listen.
    #[error("network setup failed: {0}")]
    Setup(String),
    /// Dialing failed.
    #[error("could not connect to {addr}: {reason}")]
    Dial {
        /// Where.
        addr: String,
        /// Why.
        reason: String,
    },
    /// No connection to the peer.
    #[error("not connected to peer {peer}")]
    NotConnected {
        /// Which peer.
        peer: PeerId,
    },
    /// The peer's certificate was refused, or it refused ours (another cluster, expired,
    /// revoked: its log and ours say which).
    #[error(
        "peer {peer} is not admitted: its certificate or ours was refused (another cluster's authority, expired or revoked; see the logs)"
    )]
    NotAdmitted {
        /// Which peer.
        peer: PeerId,
    },
    /// The connection closed before the answer came.
    #[error("peer {peer} disconnected")]
    Disconnected {
        /// Which peer.
        peer: PeerId,
    },
    /// The request failed in flight (timeout, stream error, oversize answer).
    #[error("request to {peer} failed: {reason}")]
    Request {
        /// Which peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// Too many requests in flight or queued; retry later.
    #[error("too many requests in flight")]
    Busy,
    /// More peers to block than a node keeps.
    #[error("{count} peers to block, at most {count_max}")]
    TooManyBlocked {
        /// Peers given.
        count: usize,
        /// The limit.
        count_max: usize,
    },
    /// The swarm task has stopped.
    #[error("the network task has stopped")]
    Shutdown,
}

/// Peers a node can be told to refuse at most (see [`NetHandle::set_blocked`]).
pub const BLOCKED_PEERS_MAX: usize = 4096;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, NetError>>;

#[derive(Debug)]
pub(crate) enum Command {
    Dial {
        addr: Multiaddr,
        reply: Reply<PeerId>,
    },
    Request {
        peer: PeerId,
        protocol: Protocol,
        request: Vec<u8>,
        reply: Reply<Vec<u8>>,
    },
    Respond {
        protocol: Protocol,
        channel: ResponseChannel<Vec<u8>>,
        response: Vec<u8>,
    },
    AdmittedPeers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Certificates {
        reply: oneshot::Sender<Vec<Certificate>>,
    },
    PublishRevocations {
        list: andromede_proto::pb::RevocationList,
        reply: oneshot::Sender<Result<(), AdmitError>>,
    },
    PushRevocations {
        peer: PeerId,
        reply: Reply<()>,
    },
    PullRevocations {
        peer: PeerId,
        reply: Reply<()>,
    },
    Renew {
        certificate: Box<Certificate>,
        reply: Reply<()>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    RoutedPeers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    SetBlocked {
        peers: Vec<PeerId>,
        reply: Reply<()>,
    },
    AddAddresses {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
    },
}

/// A handle on the swarm task. The task stops when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct NetHandle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) local_peer_id: PeerId,
    pub(crate) revocations: watch::Receiver<RevocationList>,
    pub(crate) certificate: watch::Receiver<Certificate>,
}

impl NetHandle {
    /// This peer's id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    async fn call<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| NetError::Shutdown)?;
        answer.await.map_err(|_| NetError::Shutdown)
    }

    /// Connects to `addr` and returns the peer once it is admitted.
    ///
    /// # Errors
    /// [`NetError::Dial`], [`NetError::NotAdmitted`], [`NetError::Shutdown`].
    ///
    /// # Cancel safety
    /// Cancelling leaves the connection to complete or fail on its own.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, NetError> {
        self.call(|reply| Command::Dial { addr, reply }).await?
    }

    /// Sends `request` to an admitted (or being admitted) peer and returns its answer.
    ///
    /// # Errors
    /// [`NetError::NotConnected`], [`NetError::NotAdmitted`], [`NetError::Request`],
    /// [`NetError::Busy`], [`NetError::Shutdown`].
    pub async fn request(
        &self,
        peer: PeerId,
        protocol: Protocol,
        request: Vec<u8>,
    ) -> Result<Vec<u8>, NetError> {
        self.call(|reply| Command::Request {
            peer,
            protocol,
            request,
            reply,
        })
        .await?
    }

    /// Answers an inbound request.
    ///
    /// # Errors
    /// [`NetError::Shutdown`]. A peer that left meanwhile is not an error.
    pub async fn respond(
        &self,
        request: InboundRequest,
        response: Vec<u8>,
    ) -> Result<(), NetError> {
        self.commands
            .send(Command::Respond {
                protocol: request.protocol,
                channel: request.channel,
                response,
            })
            .await
            .map_err(|_| NetError::Shutdown)
    }

    /// The peers admitted and connected now.
    ///
    /// # Errors
    /// [`NetError::Shutdown`].
    pub async fn admitted_peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.call(|reply| Command::AdmittedPeers { reply }).await
    }

    /// The certificates of the peers admitted and connected now: who they are, in what
    /// role, and (nodes) their certified zone and jurisdiction.
    ///
    /// # Errors
    /// [`NetError::Shutdown`].
    pub async fn certificates(&self) -> Result<Vec<Certificate>, NetError> {
        self.call(|reply| Command::Certificates { reply }).await
    }

    /// Takes a revocation list (from the authority, through any member): if it verifies
    /// and is newer than the one held, revoked peers are disconnected and refused, and
    /// the list goes on to every admitted node.
    ///
    /// # Errors
    /// [`NetError::Shutdown`], or the list's [`AdmitError`] (another authority, malformed).
    pub async fn publish_revocations(
        &self,
        list: andromede_proto::pb::RevocationList,
    ) -> Result<Result<(), AdmitError>, NetError> {
        self.call(|reply| Command::PublishRevocations { list, reply })
            .await
    }

    /// Sends the revocation list this peer holds to `peer` (admitted) and waits for it to
    /// be taken: how the authority's tools hand a new list to the cluster.
    ///
    /// # Errors
    /// [`NetError::NotConnected`], [`NetError::Request`] (refused: another authority,
    /// malformed), [`NetError::Shutdown`].
    pub async fn push_revocations(&self, peer: PeerId) -> Result<(), NetError> {
        self.call(|reply| Command::PushRevocations { peer, reply })
            .await?
    }

    /// Asks `peer` (admitted, a node) for a revocation list newer than the one held and
    /// takes it: how a client, which takes no requests, learns of revocations after it
    /// connected (its node info says a node holds a newer list).
    ///
    /// # Errors
    /// [`NetError::NotConnected`], [`NetError::Request`] (the list was refused: another
    /// authority, malformed), [`NetError::Shutdown`].
    pub async fn pull_revocations(&self, peer: PeerId) -> Result<(), NetError> {
        self.call(|reply| Command::PullRevocations { peer, reply })
            .await?
    }

    /// The certificate this peer presents now (renewals replace it).
    pub fn certificate(&self) -> Certificate {
        self.certificate.borrow().clone()
    }

    /// The newest revocation list this peer holds, watched: the owner keeps it on disk.
    pub fn revocations(&self) -> watch::Receiver<RevocationList> {
        self.revocations.clone()
    }

    /// Replaces this peer's certificate with a renewed one (same peer id and role) and
    /// presents it to every admitted peer: no reconnection, no downtime.
    ///
    /// # Errors
    /// [`NetError::Setup`] if the certificate does not admit this peer; [`NetError::Shutdown`].
    pub async fn renew(&self, certificate: Certificate) -> Result<(), NetError> {
        self.call(|reply| Command::Renew {
            certificate: Box::new(certificate),
            reply,
        })
        .await?
    }

    /// The peers in this peer's Kademlia routing table (admitted nodes only).
    ///
    /// # Errors
    /// [`NetError::Shutdown`].
    pub async fn routed_peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.call(|reply| Command::RoutedPeers { reply }).await
    }

    /// Refuses every connection with `peers` (closing open ones, failing requests to
    /// them) until the next call replaces the list; an empty list lifts it. Independent of
    /// the bans admission puts on refused peers. How the testnet cuts a cluster in two.
    ///
    /// # Errors
    /// [`NetError::TooManyBlocked`] for more than [`BLOCKED_PEERS_MAX`] peers;
    /// [`NetError::Shutdown`].
    pub async fn set_blocked(&self, peers: Vec<PeerId>) -> Result<(), NetError> {
        if peers.len() > BLOCKED_PEERS_MAX {
            return Err(NetError::TooManyBlocked {
                count: peers.len(),
                count_max: BLOCKED_PEERS_MAX,
            });
        }
        self.call(|reply| Command::SetBlocked { peers, reply })
            .await?
    }

    /// Tells the swarm where `peer`, a roster member, may be reached (its roster entry's
    /// addresses): requests to it dial them when no connection is open.
    ///
    /// # Errors
    /// [`NetError::Shutdown`].
    pub async fn add_addresses(&self, peer: PeerId, addrs: Vec<Multiaddr>) -> Result<(), NetError> {
        self.commands
            .send(Command::AddAddresses { peer, addrs })
            .await
            .map_err(|_| NetError::Shutdown)
    }

    /// The addresses this peer listens on.
    ///
    /// # Errors
    /// [`NetError::Shutdown`].
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.call(|reply| Command::ListenAddrs { reply }).await
    }
}
