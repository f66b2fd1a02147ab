//! Networking (DESIGN.md, "The network"): TCP (TCP_NODELAY) + Noise + Yamux, admission
//! by certificate, Kademlia under a private protocol name for discovery only, and
//! request-response protocols with hard size limits.
//!
//! One task ([`event_loop`]) owns the swarm; everything else talks to it through a
//! cloneable [`NetHandle`] (commands over a bounded channel, replies over oneshots), and
//! receives requests from admitted peers as [`InboundRequest`]s on a bounded channel.
//!
//! - [`admission`]: admission by certificate and the trust exchange (revocations,
//!   renewals); the gate (`gate`) keeps every service closed to a connection until then
//!   and limits unadmitted connections.
//! - [`join`]: staying joined through the bootstrap addresses ([`join::JoinKeeper`]).
//! - [`call`]: typed calls to a peer ([`call_shard`], [`call_meta`]) and their typed
//!   errors ([`CallError`]): the one way to ask a peer something.
//! - [`message`]: validated shard-protocol messages.
//! - [`meta_message`]: validated metadata-protocol messages.
//! - [`load_or_create_identity`]: a peer's persistent ed25519 identity.

pub mod admission;
mod behaviour;
pub mod call;
mod event_loop;
mod frame;
mod gate;
mod handle;
mod identity;
pub mod join;
pub mod message;
pub mod meta_message;

use std::time::Duration;

pub use crate::authority::PeerRole;
pub use admission::{Admission, AdmitError};
pub use call::{CallError, call_meta, call_shard};
pub use event_loop::{InboundBudget, InboundRequest, Protocol, spawn};
pub use gate::HELD_STREAMS_MAX;
pub use handle::{BLOCKED_PEERS_MAX, NetError, NetHandle};
pub use identity::{create_identity_file, load_or_create_identity};
pub use libp2p::{Multiaddr, PeerId, identity::Keypair};

/// Commands queued to the swarm task at most.
pub const NET_COMMAND_QUEUE_MAX: usize = 256;
/// Inbound requests queued or being served at most; beyond, peers are answered `Busy`.
pub const INBOUND_QUEUE_MAX: usize = 256;
/// Bytes of inbound requests queued or being served at most (a request holds its share
/// until the service drops it); beyond, peers are answered `Busy`.
pub const INBOUND_QUEUE_BYTES_MAX: usize = 512 << 20;
/// Inbound streams of a connection still negotiating their protocol at most.
pub const NEGOTIATING_STREAMS_MAX: usize = 16;
/// Outbound requests in flight at most (across peers).
pub const NET_PENDING_REQUESTS_MAX: usize = 1024;
/// Requests queued for a peer whose admission is still running.
pub const QUEUED_PER_PEER_MAX: usize = 64;
/// Peers dialed at once on behalf of requests (a node that joined after this process
/// last looked, or that came back on another address).
pub const DIALING_PEERS_MAX: usize = 256;

/// Network settings, every one explicit.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Node or client.
    pub role: PeerRole,
    /// Addresses to listen on (nodes), e.g. `/ip4/127.0.0.1/tcp/0`.
    pub listen: Vec<Multiaddr>,
    /// Time a peer has to present its certificate after connecting; an unadmitted
    /// connection is closed after it.
    pub admission_timeout: Duration,
    /// How long a peer whose certificate was refused is refused (one that stayed silent
    /// is refused for `admission_timeout`).
    pub ban_duration: Duration,
    /// Inbound connections not admitted yet from one IP address at most.
    pub unadmitted_per_address_max: usize,
    /// Inbound connections not admitted yet at most.
    pub unadmitted_max: usize,
    /// Time a request may take before it fails.
    pub request_timeout: Duration,
    /// Concurrent request streams per connection.
    pub streams_per_connection_max: usize,
    /// Established connections in total.
    pub connections_max: u32,
    /// Established connections per peer.
    pub connections_per_peer_max: u32,
}

impl NetConfig {
    /// Defaults for `role`.
    pub fn new(role: PeerRole) -> Self {
        Self {
            role,
            listen: Vec::new(),
            admission_timeout: Duration::from_secs(5),
            ban_duration: Duration::from_secs(60),
            unadmitted_per_address_max: 16,
            unadmitted_max: 256,
            request_timeout: Duration::from_secs(30),
            streams_per_connection_max: 64,
            connections_max: 1024,
            connections_per_peer_max: 4,
        }
    }

    fn service_support(&self) -> libp2p::request_response::ProtocolSupport {
        match self.role {
            PeerRole::Node => libp2p::request_response::ProtocolSupport::Full,
            PeerRole::Client => libp2p::request_response::ProtocolSupport::Outbound,
        }
    }
}
