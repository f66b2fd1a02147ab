//! The swarm task: owns the swarm, runs admission (certificates both ways, then opening
//! the gate) and the trust exchange (revocation lists, renewals), forwards requests of
//! admitted peers to the service with their certified role, and answers the
//! [`NetHandle`]'s commands. It never awaits a consumer: the inbound queue is fed with
//! `try_send`, and a full queue (in count or in bytes) is answered `Busy`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, identity, kad};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::admission::{Admission, AdmitError, TrustRequest, trust_answer, trust_outcome};
use super::behaviour::{Behaviour, BehaviourEvent, ServicesEvent};
use super::frame::FrameCodec;
use super::handle::{Command, NetError, NetHandle, Reply};
use super::message::{RemoteErrorCode, ShardResponse};
use super::meta_message::MetaResponse;
use super::{
    DIALING_PEERS_MAX, INBOUND_QUEUE_BYTES_MAX, INBOUND_QUEUE_MAX, NEGOTIATING_STREAMS_MAX,
    NET_COMMAND_QUEUE_MAX, NET_PENDING_REQUESTS_MAX, NetConfig, QUEUED_PER_PEER_MAX,
};
use crate::authority::{Certificate, Grant, PeerRole, RevocationList, unix_now};

/// The request-response protocols a service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// `/andromede/shard/1`.
    Shard,
    /// `/andromede/meta/1`.
    Meta,
}

impl Protocol {
    /// An encoded error answer in this protocol's vocabulary.
    fn refusal(self, code: RemoteErrorCode, detail: &str) -> Vec<u8> {
        match self {
            Self::Shard => ShardResponse::Error {
                code,
                detail: detail.into(),
            }
            .encode(),
            Self::Meta => MetaResponse::Error {
                code,
                detail: detail.into(),
            }
            .encode(),
        }
    }
}

/// The share of [`super::INBOUND_QUEUE_BYTES_MAX`] a request holds: keep it alive while
/// the request's bytes are.
#[derive(Debug)]
pub struct InboundBudget(#[allow(dead_code, reason = "held for its drop")] OwnedSemaphorePermit);

/// An admitted peer: the certificate it was admitted with, and its grants shared with
/// every request it sends (built once, not per request).
#[derive(Debug)]
struct AdmittedPeer {
    certificate: Certificate,
    grants: Arc<[Grant]>,
}

impl AdmittedPeer {
    fn new(certificate: Certificate) -> Self {
        let grants = Arc::from(certificate.grants());
        Self {
            certificate,
            grants,
        }
    }
}

/// A request from an admitted peer, to be answered through [`NetHandle::respond`].
#[derive(Debug)]
pub struct InboundRequest {
    /// Who asked.
    pub peer: PeerId,
    /// The role its certificate gives it: node-only requests from a client are refused.
    pub role: PeerRole,
    /// What its certificate grants (a client's rights per bucket; empty for a node).
    pub grants: Arc<[Grant]>,
    /// On which protocol.
    pub protocol: Protocol,
    /// The raw request (decode with the protocol's `decode_*`).
    pub request: Vec<u8>,
    /// Its share of the inbound byte budget.
    pub budget: InboundBudget,
    pub(crate) channel: ResponseChannel<Vec<u8>>,
}

/// Builds the swarm, starts listening, and spawns its task on the current tokio runtime.
///
/// # Errors
/// [`NetError::Setup`] if the transport cannot be built or an address cannot be listened on.
pub fn spawn(
    key: identity::Keypair,
    admission: Admission,
    config: NetConfig,
) -> Result<(NetHandle, mpsc::Receiver<InboundRequest>), NetError> {
    let setup = |e: &dyn std::fmt::Display| NetError::Setup(e.to_string());
    let local_peer_id = PeerId::from(key.public());
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .map_err(|e| setup(&e))?
        .with_behaviour(|key| Behaviour::new(key, &config))
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| {
            c.with_idle_connection_timeout(Duration::from_secs(300))
                .with_max_negotiating_inbound_streams(NEGOTIATING_STREAMS_MAX)
        })
        .build();
    for addr in &config.listen {
        swarm.listen_on(addr.clone()).map_err(|e| setup(&e))?;
    }
    let (commands, command_rx) = mpsc::channel(NET_COMMAND_QUEUE_MAX);
    let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE_MAX);
    let (revocations_tx, revocations) = watch::channel(admission.trust().revocations().clone());
    let (certificate_tx, certificate) = watch::channel(admission.certificate().clone());
    let event_loop = EventLoop {
        swarm,
        admission,
        revocations: revocations_tx,
        certificate: certificate_tx,
        inbound_bytes: Arc::new(Semaphore::new(INBOUND_QUEUE_BYTES_MAX)),
        config,
        local_peer_id,
        commands: command_rx,
        inbound: inbound_tx,
        admitted: HashMap::new(),
        pending_admission: HashMap::new(),
        banned: HashMap::new(),
        blocked: HashSet::new(),
        dials: HashMap::new(),
        dial_waiting: HashMap::new(),
        queued: HashMap::new(),
        outbound: HashMap::new(),
        dialed_addrs: HashMap::new(),
        dialing: HashMap::new(),
        lookups: HashMap::new(),
        trust_calls: HashMap::new(),
    };
    tokio::spawn(event_loop.run());
    Ok((
        NetHandle {
            commands,
            local_peer_id,
            revocations,
            certificate,
        },
        inbound,
    ))
}

/// Peers banned at once at most.
const BANNED_PEERS_MAX: usize = 4096;

/// Listen addresses taken from a peer's identify message.
const ANNOUNCED_ADDRS_MAX: usize = 8;

/// The peers whose deadline in `deadlines` has passed at `now`.
fn due(deadlines: &HashMap<PeerId, Instant>, now: Instant) -> Vec<PeerId> {
    deadlines
        .iter()
        .filter(|(_, deadline)| **deadline <= now)
        .map(|(peer, _)| *peer)
        .collect()
}

/// An outbound request awaiting its answer: the peer asked, and who to tell.
type Pending = (PeerId, Reply<Vec<u8>>);

type Queued = (Protocol, Vec<u8>, Reply<Vec<u8>>);

struct EventLoop {
    swarm: Swarm<Behaviour>,
    admission: Admission,
    /// The newest revocation list, for the owner to keep on disk.
    revocations: watch::Sender<RevocationList>,
    /// The certificate presented now.
    certificate: watch::Sender<Certificate>,
    inbound_bytes: Arc<Semaphore>,
    config: NetConfig,
    local_peer_id: PeerId,
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::Sender<InboundRequest>,
    /// Admitted peers and the certificate each was admitted with.
    admitted: HashMap<PeerId, AdmittedPeer>,
    /// Peers connected but not yet admitted, with their deadline.
    pending_admission: HashMap<PeerId, Instant>,
    /// Peers refused until the given instant.
    banned: HashMap<PeerId, Instant>,
    /// Peers refused until the owner says otherwise (`NetHandle::set_blocked`).
    blocked: HashSet<PeerId>,
    dials: HashMap<ConnectionId, (Multiaddr, Reply<PeerId>)>,
    dial_waiting: HashMap<PeerId, Vec<Reply<PeerId>>>,
    queued: HashMap<PeerId, Vec<Queued>>,
    /// Request ids are per behaviour, so the protocol is part of the key.
    outbound: HashMap<(Protocol, OutboundRequestId), Pending>,
    dialed_addrs: HashMap<PeerId, Multiaddr>,
    /// Peers dialed for waiting requests, with the time the requests give up.
    dialing: HashMap<PeerId, Instant>,
    /// DHT lookups of peers that requests wait on.
    lookups: HashMap<kad::QueryId, PeerId>,
    /// Revocation lists pushed for the owner ([`NetHandle::push_revocations`]).
    trust_calls: HashMap<OutboundRequestId, Reply<()>>,
}

impl EventLoop {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut bootstrap = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    // Every handle is gone: stop.
                    None => return,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = tick.tick() => self.expire(),
                _ = bootstrap.tick() => self.bootstrap(),
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Dial { addr, reply } => {
                let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.dials.insert(id, (addr, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dial {
                            addr: addr.to_string(),
                            reason: e.to_string(),
                        }));
                    }
                }
            }
            Command::Request {
                peer,
                protocol,
                request,
                reply,
            } => self.send_request(peer, protocol, request, reply),
            Command::Respond {
                protocol,
                channel,
                response,
            } => {
                // The peer may have left meanwhile: nothing to do then.
                let _ = self.protocol(protocol).send_response(channel, response);
            }
            Command::AdmittedPeers { reply } => {
                let _ = reply.send(self.admitted.keys().copied().collect());
            }
            Command::Certificates { reply } => {
                let _ = reply.send(
                    self.admitted
                        .values()
                        .map(|a| a.certificate.clone())
                        .collect(),
                );
            }
            Command::PublishRevocations { list, reply } => {
                let _ = reply.send(self.take_revocations(None, list));
            }
            Command::PushRevocations { peer, reply } => {
                match self.admission.trust().revocations().signed().cloned() {
                    Some(signed) if self.admitted.contains_key(&peer) => {
                        let id = self.send_trust(&peer, TrustRequest::Revocations(signed));
                        self.trust_calls.insert(id, reply);
                    }
                    Some(_) => {
                        let _ = reply.send(Err(NetError::NotConnected { peer }));
                    }
                    None => {
                        let _ = reply.send(Err(NetError::Request {
                            peer,
                            reason: "no revocation list to push".into(),
                        }));
                    }
                }
            }
            Command::PullRevocations { peer, reply } => {
                if self.admitted.contains_key(&peer) {
                    let held = self.admission.trust().revocations().version();
                    let id = self.send_trust(&peer, TrustRequest::RevocationsNewerThan(held));
                    self.trust_calls.insert(id, reply);
                } else {
                    let _ = reply.send(Err(NetError::NotConnected { peer }));
                }
            }
            Command::Renew { certificate, reply } => {
                let _ = reply.send(self.renew(*certificate));
            }
            Command::SetBlocked { peers, reply } => {
                let peers: HashSet<PeerId> = peers.into_iter().collect();
                for lifted in self.blocked.difference(&peers) {
                    if !self.banned.contains_key(lifted) {
                        self.swarm.behaviour_mut().blocked.unblock_peer(*lifted);
                    }
                }
                for &peer in &peers {
                    self.swarm.behaviour_mut().blocked.block_peer(peer);
                    let _ = self.swarm.disconnect_peer_id(peer);
                    self.forget(peer, &NetError::NotConnected { peer });
                }
                info!(blocked = peers.len(), "blocked peers set");
                self.blocked = peers;
                let _ = reply.send(Ok(()));
            }
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::AddAddresses { peer, addrs } => {
                if peer != self.local_peer_id && !self.banned.contains_key(&peer) {
                    self.learn_addresses(peer, addrs);
                }
            }
            Command::RoutedPeers { reply } => {
                let peers = self
                    .swarm
                    .behaviour_mut()
                    .services()
                    .kad
                    .kbuckets()
                    .flat_map(|bucket| {
                        bucket
                            .iter()
                            .map(|entry| *entry.node.key.preimage())
                            .collect::<Vec<_>>()
                    })
                    .collect();
                let _ = reply.send(peers);
            }
        }
    }

    fn send_request(
        &mut self,
        peer: PeerId,
        protocol: Protocol,
        request: Vec<u8>,
        reply: Reply<Vec<u8>>,
    ) {
        if self.outbound.len() >= NET_PENDING_REQUESTS_MAX {
            let _ = reply.send(Err(NetError::Busy));
        } else if self.admitted.contains_key(&peer) {
            let id = self.protocol(protocol).send_request(&peer, request);
            self.outbound.insert((protocol, id), (peer, reply));
        } else if self.pending_admission.contains_key(&peer) {
            let queue = self.queued.entry(peer).or_default();
            if queue.len() >= QUEUED_PER_PEER_MAX {
                let _ = reply.send(Err(NetError::Busy));
            } else {
                queue.push((protocol, request, reply));
            }
        } else if peer == self.local_peer_id
            || self.banned.contains_key(&peer)
            || self.blocked.contains(&peer)
        {
            let _ = reply.send(Err(NetError::NotConnected { peer }));
        } else {
            self.connect_for(peer, protocol, request, reply);
        }
    }

    /// A request for a peer this process is not connected to (a node that joined after
    /// it last looked, or came back on another address): the request waits while the peer
    /// is dialed with the addresses the routing table has, or looked up in the DHT when it
    /// has none or they fail (the lookup reaches the peer itself, the closest to its own
    /// id). The wait ends at admission, or fails after twice the admission timeout.
    fn connect_for(
        &mut self,
        peer: PeerId,
        protocol: Protocol,
        request: Vec<u8>,
        reply: Reply<Vec<u8>>,
    ) {
        if !self.dialing.contains_key(&peer) && self.dialing.len() >= DIALING_PEERS_MAX {
            let _ = reply.send(Err(NetError::Busy));
            return;
        }
        let queue = self.queued.entry(peer).or_default();
        if queue.len() >= QUEUED_PER_PEER_MAX {
            let _ = reply.send(Err(NetError::Busy));
            return;
        }
        queue.push((protocol, request, reply));
        if self.dialing.contains_key(&peer) {
            return;
        }
        self.dialing
            .insert(peer, Instant::now() + 2 * self.config.admission_timeout);
        if self.swarm.dial(DialOpts::peer_id(peer).build()).is_err() {
            self.look_up(peer);
        }
    }

    /// Looks `peer` up in the DHT for requests waiting on it; when the lookup ends
    /// without a connection, they fail at once rather than at their deadline.
    fn look_up(&mut self, peer: PeerId) {
        if self.lookups.len() < DIALING_PEERS_MAX {
            let query = self
                .swarm
                .behaviour_mut()
                .services()
                .kad
                .get_closest_peers(peer);
            self.lookups.insert(query, peer);
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(peer = %self.local_peer_id, %address, "listening");
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => self.on_connected(peer_id, connection_id, &endpoint),
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                if let Some((addr, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Dial {
                        addr: addr.to_string(),
                        reason: error.to_string(),
                    }));
                }
                // Known addresses failed for a peer a request waits for: ask the DHT.
                if let Some(peer) = peer_id
                    && self.dialing.contains_key(&peer)
                    && !self.swarm.is_connected(&peer)
                    && !self.lookups.values().any(|p| *p == peer)
                {
                    self.look_up(peer);
                }
                debug!(peer = ?peer_id, %error, "outgoing connection failed");
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => self.on_disconnected(peer_id),
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            _ => {}
        }
    }

    fn on_connected(&mut self, peer: PeerId, connection: ConnectionId, endpoint: &ConnectedPoint) {
        self.dialing.remove(&peer);
        if let Some((_, reply)) = self.dials.remove(&connection) {
            if self.admitted.contains_key(&peer) {
                let _ = reply.send(Ok(peer));
            } else {
                self.dial_waiting.entry(peer).or_default().push(reply);
            }
        }
        if self.admitted.contains_key(&peer) {
            return;
        }
        self.pending_admission
            .entry(peer)
            .or_insert_with(|| Instant::now() + self.config.admission_timeout);
        if endpoint.is_dialer() {
            self.dialed_addrs
                .insert(peer, endpoint.get_remote_address().clone());
            let hello = self.admission.hello();
            self.swarm.behaviour_mut().admit.send_request(&peer, hello);
        }
    }

    fn on_disconnected(&mut self, peer: PeerId) {
        self.admitted.remove(&peer);
        // A peer that hangs up while admission runs has refused our proof.
        let error = if self.pending_admission.contains_key(&peer) {
            NetError::NotAdmitted { peer }
        } else {
            NetError::Disconnected { peer }
        };
        self.forget(peer, &error);
    }

    /// Drops what was kept for a peer's admission and fails whoever waits on it.
    fn forget(&mut self, peer: PeerId, error: &NetError) {
        self.pending_admission.remove(&peer);
        self.dialing.remove(&peer);
        self.dialed_addrs.remove(&peer);
        for (_, _, reply) in self.queued.remove(&peer).unwrap_or_default() {
            let _ = reply.send(Err(error.clone()));
        }
        for reply in self.dial_waiting.remove(&peer).unwrap_or_default() {
            let _ = reply.send(Err(error.clone()));
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Admit(event) => self.on_admit_event(event),
            BehaviourEvent::Gate(event) => self.on_service_event(event),
            _ => {}
        }
    }

    fn on_service_event(&mut self, event: ServicesEvent) {
        match event {
            ServicesEvent::Shard(event) => self.on_request_response(Protocol::Shard, event),
            ServicesEvent::Meta(event) => self.on_request_response(Protocol::Meta, event),
            ServicesEvent::Trust(event) => self.on_trust_event(event),
            // Only certified nodes are routed to (identify runs after admission).
            ServicesEvent::Identify(identify::Event::Received { peer_id, info, .. })
                if self
                    .admitted
                    .get(&peer_id)
                    .is_some_and(|a| a.certificate.role() == PeerRole::Node) =>
            {
                self.learn_addresses(peer_id, info.listen_addrs);
            }
            ServicesEvent::Kad(kad::Event::RoutablePeer { peer, address })
            | ServicesEvent::Kad(kad::Event::PendingRoutablePeer { peer, address }) => {
                self.discover(peer, address);
            }
            ServicesEvent::Kad(kad::Event::OutboundQueryProgressed { id, step, .. })
                if step.last =>
            {
                if let Some(peer) = self.lookups.remove(&id)
                    && self.dialing.contains_key(&peer)
                    && !self.swarm.is_connected(&peer)
                {
                    debug!(%peer, "peer not found for waiting requests");
                    self.forget(peer, &NetError::NotConnected { peer });
                }
            }
            ServicesEvent::Kad(kad::Event::UnroutablePeer { peer }) => {
                debug!(%peer, "kademlia saw a peer without address");
            }
            _ => {}
        }
    }

    /// Listen addresses an admitted node announced (identify): into the routing table.
    fn learn_addresses(&mut self, peer: PeerId, mut addrs: Vec<Multiaddr>) {
        addrs.truncate(ANNOUNCED_ADDRS_MAX);
        for addr in addrs {
            self.swarm
                .behaviour_mut()
                .services()
                .kad
                .add_address(&peer, addr);
        }
    }

    /// A peer learnt through the DHT: connect, and admission decides the rest.
    fn discover(&mut self, peer: PeerId, address: Multiaddr) {
        if peer == self.local_peer_id
            || self.banned.contains_key(&peer)
            || self.blocked.contains(&peer)
            || self.swarm.is_connected(&peer)
        {
            return;
        }
        let opts = DialOpts::peer_id(peer).addresses(vec![address]).build();
        if let Err(error) = self.swarm.dial(opts) {
            debug!(%peer, %error, "dialing a discovered peer failed");
        }
    }

    fn on_admit_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                // A listener takes nodes and clients.
                let checked = self.admission.check(&request, &peer, None);
                // A refused dialer gets an empty answer, never our certificate.
                let answer = if checked.is_ok() {
                    self.admission.hello()
                } else {
                    Vec::new()
                };
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .admit
                    .send_response(channel, answer);
                match checked {
                    Ok(admitted) => {
                        self.admit(peer, admitted.certificate, admitted.revocations_version)
                    }
                    Err(error) => self.reject(peer, &error),
                }
            }
            request_response::Event::Message {
                peer,
                message: request_response::Message::Response { response, .. },
                ..
            } => {
                // Only nodes listen: whoever answered a dial must be one.
                match self.admission.check(&response, &peer, Some(PeerRole::Node)) {
                    Ok(admitted) => {
                        self.admit(peer, admitted.certificate, admitted.revocations_version)
                    }
                    Err(error) => self.reject(peer, &error),
                }
            }
            request_response::Event::OutboundFailure { peer, error, .. }
                if !self.admitted.contains_key(&peer) =>
            {
                match error {
                    // The connection went away mid-exchange (a peer restarting, two peers
                    // dialing each other at once, a partition): nothing was proven either
                    // way, so no ban; the next dial tries again.
                    request_response::OutboundFailure::ConnectionClosed
                    | request_response::OutboundFailure::DialFailure
                    | request_response::OutboundFailure::Io(_) => {
                        debug!(%peer, %error, "admission interrupted");
                        let _ = self.swarm.disconnect_peer_id(peer);
                        self.forget(peer, &NetError::Disconnected { peer });
                    }
                    // Silent: refused briefly (see `expire`).
                    request_response::OutboundFailure::Timeout => {
                        self.refuse(
                            peer,
                            "admission answer timed out",
                            self.config.admission_timeout,
                        );
                    }
                    // It does not speak admission: not one of ours.
                    _ => self.reject(
                        peer,
                        &AdmitError::Malformed(format!("admission failed: {error}")),
                    ),
                }
            }
            _ => {}
        }
    }

    /// `/andromede/trust/1`: revocation lists and renewals between admitted peers.
    fn on_trust_event(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let answer = match TrustRequest::decode(&request) {
                    Ok(TrustRequest::Revocations(list)) => {
                        self.take_revocations(Some(peer), list).map(|_| None)
                    }
                    Ok(TrustRequest::RevocationsNewerThan(version)) => {
                        let held = self.admission.trust().revocations();
                        Ok((held.version() > version)
                            .then(|| held.signed().cloned())
                            .flatten())
                    }
                    Ok(TrustRequest::Renewed(certificate)) => {
                        self.renewed(peer, certificate).map(|()| None)
                    }
                    Err(error) => Err(error),
                };
                let response = trust_answer(&answer);
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .services()
                    .trust
                    .send_response(channel, response);
            }
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let outcome = trust_outcome(&response);
                if let Ok(Some(list)) = &outcome {
                    let _ = self.take_revocations(Some(peer), list.clone());
                }
                if let Some(reply) = self.trust_calls.remove(&request_id) {
                    let _ = reply.send(
                        outcome
                            .map(|_| ())
                            .map_err(|reason| NetError::Request { peer, reason }),
                    );
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                debug!(%peer, %error, "trust exchange failed");
                if let Some(reply) = self.trust_calls.remove(&request_id) {
                    let _ = reply.send(Err(NetError::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            _ => {}
        }
    }

    /// Takes a revocation list from `from` (a peer, or this process's owner): if it is
    /// newer, keeps it, refuses and disconnects every admitted peer it revokes, and
    /// passes it on to every other admitted node.
    fn take_revocations(
        &mut self,
        from: Option<PeerId>,
        list: andromede_proto::pb::RevocationList,
    ) -> Result<(), AdmitError> {
        let Some(list) = self.admission.update_revocations(list)?.cloned() else {
            return Ok(());
        };
        info!(version = list.version(), revoked = list.peers().len(), from = ?from, "newer revocation list taken");
        let _ = self.revocations.send(list.clone());
        for peer in list.peers() {
            if self.admitted.contains_key(peer) || self.pending_admission.contains_key(peer) {
                self.reject(
                    *peer,
                    &AdmitError::Certificate(crate::authority::CertificateError::Revoked(
                        peer.to_string(),
                    )),
                );
            }
        }
        let Some(signed) = list.signed().cloned() else {
            return Ok(());
        };
        // Nodes only: a client takes no requests, and pulls the list when a node's info
        // announces a newer one (`NetHandle::pull_revocations`).
        let peers: Vec<PeerId> = self
            .admitted
            .iter()
            .filter(|(peer, a)| Some(**peer) != from && a.certificate.role() == PeerRole::Node)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in peers {
            self.send_trust(&peer, TrustRequest::Revocations(signed.clone()));
        }
        Ok(())
    }

    fn send_trust(&mut self, peer: &PeerId, request: TrustRequest) -> OutboundRequestId {
        self.swarm
            .behaviour_mut()
            .services()
            .trust
            .send_request(peer, request.encode())
    }

    /// An admitted peer presents a renewed certificate.
    fn renewed(
        &mut self,
        peer: PeerId,
        certificate: andromede_proto::pb::Certificate,
    ) -> Result<(), AdmitError> {
        let certificate = Certificate::from_pb(certificate)?;
        let role = self.admitted.get(&peer).map(|a| a.certificate.role());
        self.admission.verify(&certificate, &peer, role)?;
        info!(%peer, not_after = certificate.not_after_unix(), "peer renewed its certificate");
        self.admitted.insert(peer, AdmittedPeer::new(certificate));
        Ok(())
    }

    /// This process's own certificate is renewed: present it to every admitted peer.
    fn renew(&mut self, certificate: Certificate) -> Result<(), NetError> {
        self.admission
            .renew(certificate, &self.local_peer_id)
            .map_err(|e| NetError::Setup(e.to_string()))?;
        let _ = self.certificate.send(self.admission.certificate().clone());
        let renewed = self.admission.certificate().to_pb();
        let peers: Vec<PeerId> = self.admitted.keys().copied().collect();
        for peer in peers {
            self.send_trust(&peer, TrustRequest::Renewed(renewed.clone()));
        }
        info!(
            not_after = self.admission.certificate().not_after_unix(),
            "certificate renewed"
        );
        Ok(())
    }

    fn protocol(&mut self, protocol: Protocol) -> &mut request_response::Behaviour<FrameCodec> {
        match protocol {
            Protocol::Shard => &mut self.swarm.behaviour_mut().services().shard,
            Protocol::Meta => &mut self.swarm.behaviour_mut().services().meta,
        }
    }

    fn on_request_response(
        &mut self,
        protocol: Protocol,
        event: request_response::Event<Vec<u8>, Vec<u8>>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.on_inbound(peer, protocol, request, channel),
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some((_, reply)) = self.outbound.remove(&(protocol, request_id)) {
                    let _ = reply.send(Ok(response));
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some((_, reply)) = self.outbound.remove(&(protocol, request_id)) {
                    let _ = reply.send(Err(NetError::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            _ => {}
        }
    }

    fn on_inbound(
        &mut self,
        peer: PeerId,
        protocol: Protocol,
        request: Vec<u8>,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        // The gate keeps unadmitted peers out; a peer refused since (revoked) is answered.
        let Some((role, grants)) = self
            .admitted
            .get(&peer)
            .map(|a| (a.certificate.role(), Arc::clone(&a.grants)))
        else {
            warn!(%peer, "request from a peer that is not admitted refused");
            let response = protocol.refusal(RemoteErrorCode::Invalid, "not admitted");
            let _ = self.protocol(protocol).send_response(channel, response);
            return;
        };
        let bytes = u32::try_from(request.len().max(1)).unwrap_or(u32::MAX);
        let Ok(permit) = Arc::clone(&self.inbound_bytes).try_acquire_many_owned(bytes) else {
            let response = protocol.refusal(RemoteErrorCode::Busy, "inbound bytes budget full");
            let _ = self.protocol(protocol).send_response(channel, response);
            return;
        };
        let inbound = InboundRequest {
            peer,
            role,
            grants,
            protocol,
            request,
            budget: InboundBudget(permit),
            channel,
        };
        if let Err(e) = self.inbound.try_send(inbound) {
            let (code, detail) = match &e {
                mpsc::error::TrySendError::Full(_) => (RemoteErrorCode::Busy, "inbound queue full"),
                mpsc::error::TrySendError::Closed(_) => (RemoteErrorCode::Internal, "not serving"),
            };
            let channel = e.into_inner().channel;
            let response = protocol.refusal(code, detail);
            let _ = self.protocol(protocol).send_response(channel, response);
        }
    }

    fn admit(&mut self, peer: PeerId, certificate: Certificate, revocations_version: u64) {
        let role = certificate.role();
        let name = certificate.name().to_owned();
        if self
            .admitted
            .insert(peer, AdmittedPeer::new(certificate))
            .is_some()
        {
            return;
        }
        self.pending_admission.remove(&peer);
        self.swarm.behaviour_mut().gate.open(peer);
        info!(%peer, %role, name, "peer admitted");
        let dialed = self.dialed_addrs.remove(&peer);
        if role == PeerRole::Node {
            if let Some(addr) = dialed {
                self.swarm
                    .behaviour_mut()
                    .services()
                    .kad
                    .add_address(&peer, addr);
            }
            // Whoever holds the newer revocation list passes it on.
            let held = self.admission.trust().revocations().version();
            if revocations_version > held {
                self.send_trust(&peer, TrustRequest::RevocationsNewerThan(held));
            } else if revocations_version < held
                && let Some(signed) = self.admission.trust().revocations().signed().cloned()
            {
                self.send_trust(&peer, TrustRequest::Revocations(signed));
            }
        }
        for (protocol, request, reply) in self.queued.remove(&peer).unwrap_or_default() {
            self.send_request(peer, protocol, request, reply);
        }
        for reply in self.dial_waiting.remove(&peer).unwrap_or_default() {
            let _ = reply.send(Ok(peer));
        }
        if self.admitted.len() == 1 {
            self.bootstrap();
        }
    }

    /// Refuses a peer whose certificate was refused for the full ban.
    fn reject(&mut self, peer: PeerId, error: &AdmitError) {
        self.refuse(peer, &error.to_string(), self.config.ban_duration);
    }

    fn refuse(&mut self, peer: PeerId, reason: &str, duration: Duration) {
        warn!(%peer, reason, ?duration, "peer refused");
        // Bans are bounded in count too: past the cap a refused peer is only disconnected
        // (each ban costs the peer a full Noise handshake, so the cap is rarely reached).
        if self.banned.len() < BANNED_PEERS_MAX {
            self.banned.insert(peer, Instant::now() + duration);
            self.swarm.behaviour_mut().blocked.block_peer(peer);
        }
        self.admitted.remove(&peer);
        self.swarm.behaviour_mut().gate.close(&peer);
        // Nor is it routed to, or handed out by our DHT answers, any more.
        self.swarm.behaviour_mut().services().kad.remove_peer(&peer);
        let _ = self.swarm.disconnect_peer_id(peer);
        self.forget(peer, &NetError::NotAdmitted { peer });
    }

    fn expire(&mut self) {
        let now = Instant::now();
        // No proof in time: refused only as long as it had to answer. Silence proves
        // nothing (an honest peer on a loaded machine can be slow, and a wrong secret is
        // refused by its proof), so it must not cost a member the full ban.
        for peer in due(&self.pending_admission, now) {
            self.refuse(
                peer,
                "no certificate in time",
                self.config.admission_timeout,
            );
        }
        // Certificates run out while connected: such a peer is refused until it renews.
        let now_unix = unix_now();
        let expired: Vec<PeerId> = self
            .admitted
            .iter()
            .filter(|(_, a)| a.certificate.not_after_unix() <= now_unix)
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            self.refuse(peer, "certificate expired", self.config.admission_timeout);
        }
        for peer in due(&self.dialing, now) {
            if !self.swarm.is_connected(&peer) {
                debug!(%peer, "no connection in time for waiting requests");
                self.forget(peer, &NetError::NotConnected { peer });
            }
            self.dialing.remove(&peer);
        }
        for peer in due(&self.banned, now) {
            self.banned.remove(&peer);
            if !self.blocked.contains(&peer) {
                self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            }
        }
    }

    fn bootstrap(&mut self) {
        if !self.admitted.is_empty() {
            // Fails only with an empty routing table, which the check above rules out
            // except for peers without a known address yet; the next tick retries.
            let _ = self.swarm.behaviour_mut().services().kad.bootstrap();
        }
    }
}
