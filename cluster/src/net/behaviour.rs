//! The libp2p behaviour of every Andromède peer, with every option that matters explicit.

use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::{
    PeerId, StreamProtocol, allow_block_list, connection_limits, identify, identity, kad, ping,
    request_response,
};

use super::NetConfig;
use super::frame::FrameCodec;
use super::gate::{Gate, GateLimits};
use andromede_proto::limits::{
    ADMIT_MESSAGE_BYTES_MAX, META_MESSAGE_BYTES_MAX, SHARD_MESSAGE_BYTES_MAX,
    TRUST_MESSAGE_BYTES_MAX,
};

/// Protocol names. Private names keep Andromède's DHT apart from any public one.
pub(crate) const KAD_PROTOCOL: &str = "/andromede/kad/1";
pub(crate) const ADMIT_PROTOCOL: &str = "/andromede/admit/2";
pub(crate) const TRUST_PROTOCOL: &str = "/andromede/trust/1";
pub(crate) const SHARD_PROTOCOL: &str = "/andromede/shard/1";
pub(crate) const META_PROTOCOL: &str = "/andromede/meta/1";
pub(crate) const IDENTIFY_PROTOCOL: &str = "/andromede/id/1";

/// Everything a connection offers once admitted; behind the [`Gate`] until then.
#[derive(NetworkBehaviour)]
pub(crate) struct Services {
    pub(crate) shard: request_response::Behaviour<FrameCodec>,
    pub(crate) meta: request_response::Behaviour<FrameCodec>,
    pub(crate) trust: request_response::Behaviour<FrameCodec>,
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
}

/// The whole behaviour: refusals and limits first, then admission, then the gated
/// services. The gate comes last so that it sees only connections every other part
/// accepted.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) admit: request_response::Behaviour<FrameCodec>,
    pub(crate) gate: Gate<Services>,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Behaviour")
    }
}

impl Behaviour {
    pub(crate) fn services(&mut self) -> &mut Services {
        &mut self.gate.inner
    }
}

fn request_response_config(config: &NetConfig) -> request_response::Config {
    request_response::Config::default()
        .with_request_timeout(config.request_timeout)
        .with_max_concurrent_streams(config.streams_per_connection_max)
}

impl Behaviour {
    pub(crate) fn new(key: &identity::Keypair, config: &NetConfig) -> Self {
        let peer_id = PeerId::from(key.public());
        let shard_bytes_max = usize::try_from(SHARD_MESSAGE_BYTES_MAX).unwrap_or(usize::MAX);
        let meta_bytes_max = usize::try_from(META_MESSAGE_BYTES_MAX).unwrap_or(usize::MAX);
        let mut kad_config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
        // Only admitted peers enter the routing table: the event loop inserts them.
        kad_config.set_kbucket_inserts(kad::BucketInserts::Manual);
        kad_config.set_query_timeout(Duration::from_secs(30));
        // The event loop bootstraps itself once a peer is admitted, and every 30 s after.
        kad_config.set_periodic_bootstrap_interval(None);
        let mut kad =
            kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
        // Nodes route; clients only ask, so they never appear as closest peers.
        kad.set_mode(Some(match config.role {
            crate::authority::PeerRole::Node => kad::Mode::Server,
            crate::authority::PeerRole::Client => kad::Mode::Client,
        }));
        // One admission exchange per connection: a few streams are plenty.
        let admit_config = request_response::Config::default()
            .with_request_timeout(config.admission_timeout)
            .with_max_concurrent_streams(2);
        let admit_bytes_max = usize::try_from(ADMIT_MESSAGE_BYTES_MAX).unwrap_or(usize::MAX);
        let trust_bytes_max = usize::try_from(TRUST_MESSAGE_BYTES_MAX).unwrap_or(usize::MAX);
        let services = Services {
            shard: request_response::Behaviour::with_codec(
                FrameCodec {
                    request_bytes_max: shard_bytes_max,
                    response_bytes_max: shard_bytes_max,
                },
                [(
                    StreamProtocol::new(SHARD_PROTOCOL),
                    config.service_support(),
                )],
                request_response_config(config),
            ),
            meta: request_response::Behaviour::with_codec(
                FrameCodec {
                    request_bytes_max: meta_bytes_max,
                    response_bytes_max: meta_bytes_max,
                },
                [(StreamProtocol::new(META_PROTOCOL), config.service_support())],
                request_response_config(config),
            ),
            trust: request_response::Behaviour::with_codec(
                FrameCodec {
                    request_bytes_max: trust_bytes_max,
                    response_bytes_max: trust_bytes_max,
                },
                [(
                    StreamProtocol::new(TRUST_PROTOCOL),
                    config.service_support(),
                )],
                request_response::Config::default()
                    .with_request_timeout(config.request_timeout)
                    .with_max_concurrent_streams(4),
            ),
            kad,
            identify: identify::Behaviour::new(identify::Config::new(
                IDENTIFY_PROTOCOL.into(),
                key.public(),
            )),
            ping: ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_secs(15))),
        };
        Self {
            blocked: allow_block_list::Behaviour::default(),
            limits: connection_limits::Behaviour::new(
                connection_limits::ConnectionLimits::default()
                    .with_max_established(Some(config.connections_max))
                    .with_max_established_per_peer(Some(config.connections_per_peer_max))
                    .with_max_pending_incoming(Some(config.connections_max)),
            ),
            admit: request_response::Behaviour::with_codec(
                FrameCodec {
                    request_bytes_max: admit_bytes_max,
                    response_bytes_max: admit_bytes_max,
                },
                [(
                    StreamProtocol::new(ADMIT_PROTOCOL),
                    request_response::ProtocolSupport::Full,
                )],
                admit_config,
            ),
            gate: Gate::new(
                services,
                GateLimits {
                    per_address: config.unadmitted_per_address_max,
                    total: config.unadmitted_max,
                },
            ),
        }
    }
}
