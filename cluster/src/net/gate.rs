//! The admission gate: a behaviour wrapping every service a peer can use (request
//! protocols, Kademlia, identify, ping) so that nothing of it runs for a connection until
//! admission has opened it.
//!
//! On a closed connection the services' handler is never polled (no outbound stream:
//! no identify, no Kademlia query), and inbound streams are negotiated but not read: up to
//! [`HELD_STREAMS_MAX`] are held unread (the peer on the other side may have admitted us a
//! moment before we admitted it, and its first requests must not be lost) and the rest are
//! dropped. A held stream costs at most the multiplexer's receive window, so an unadmitted
//! peer cannot make a node read a frame, let alone buffer one.
//!
//! The gate also limits unadmitted inbound connections (still in the handshake, or
//! established and not yet admitted) per remote IP address and in total, so that one host
//! cannot hold all of a node's admission slots.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::task::{Context, Poll, Waker};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr, multiaddr::Protocol};
use libp2p::swarm::handler::{ConnectionEvent, FullyNegotiatedInbound};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, NotifyHandler, SubstreamProtocol, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};

/// Inbound streams held unread per connection until it is admitted.
pub const HELD_STREAMS_MAX: usize = 8;

/// Limits on connections that are not admitted yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GateLimits {
    /// From one remote IP address.
    pub(crate) per_address: usize,
    /// From everywhere.
    pub(crate) total: usize,
}

/// Why the gate refused a connection.
#[derive(Debug, thiserror::Error)]
#[error("too many unadmitted connections {0}")]
pub(crate) struct TooManyUnadmitted(&'static str);

/// A behaviour whose handlers stay closed until [`Gate::open`].
pub(crate) struct Gate<B> {
    pub(crate) inner: B,
    limits: GateLimits,
    /// Peers admitted: their new connections start open.
    open: HashSet<PeerId>,
    /// Live connections per peer, to open them all.
    connections: HashMap<PeerId, HashSet<ConnectionId>>,
    /// Inbound connections not admitted yet (handshake running, or waiting for admission),
    /// with the remote address they came from.
    unadmitted: HashMap<ConnectionId, Option<IpAddr>>,
    /// Handlers to open.
    to_open: VecDeque<(PeerId, ConnectionId)>,
}

impl<B> std::fmt::Debug for Gate<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("open", &self.open.len())
            .field("unadmitted", &self.unadmitted.len())
            .finish_non_exhaustive()
    }
}

fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl<B> Gate<B> {
    pub(crate) fn new(inner: B, limits: GateLimits) -> Self {
        Self {
            inner,
            limits,
            open: HashSet::new(),
            connections: HashMap::new(),
            unadmitted: HashMap::new(),
            to_open: VecDeque::new(),
        }
    }

    /// Opens every connection of `peer`, and those it makes later.
    pub(crate) fn open(&mut self, peer: PeerId) {
        if !self.open.insert(peer) {
            return;
        }
        for &connection in self.connections.get(&peer).into_iter().flatten() {
            self.unadmitted.remove(&connection);
            self.to_open.push_back((peer, connection));
        }
    }

    /// Closes `peer` for its next connections (it is disconnected by the caller). A peer
    /// whose last connection closes is closed by the gate itself.
    pub(crate) fn close(&mut self, peer: &PeerId) {
        self.open.remove(peer);
    }

    fn established(&mut self, connection: ConnectionId, peer: PeerId) -> GateHandlerState {
        self.connections.entry(peer).or_default().insert(connection);
        if self.open.contains(&peer) {
            self.unadmitted.remove(&connection);
            GateHandlerState::Open
        } else {
            GateHandlerState::Closed
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GateHandlerState {
    Closed,
    Open,
}

impl<B: NetworkBehaviour> NetworkBehaviour for Gate<B> {
    type ConnectionHandler = GateHandler<THandler<B>>;
    type ToSwarm = B::ToSwarm;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let ip = ip_of(remote_addr);
        if self.unadmitted.len() >= self.limits.total {
            return Err(ConnectionDenied::new(TooManyUnadmitted("in total")));
        }
        let from_ip = self.unadmitted.values().filter(|a| **a == ip).count();
        if from_ip >= self.limits.per_address {
            return Err(ConnectionDenied::new(TooManyUnadmitted(
                "from this address",
            )));
        }
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)?;
        self.unadmitted.insert(connection_id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let inner = self
            .inner
            .handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)
            .inspect_err(|_| {
                self.unadmitted.remove(&connection_id);
            })?;
        let state = self.established(connection_id, peer);
        Ok(GateHandler::new(inner, state))
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let inner = self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )?;
        let state = self.established(connection_id, peer);
        Ok(GateHandler::new(inner, state))
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match &event {
            FromSwarm::ConnectionClosed(closed) => {
                self.unadmitted.remove(&closed.connection_id);
                if let Some(connections) = self.connections.get_mut(&closed.peer_id) {
                    connections.remove(&closed.connection_id);
                    if connections.is_empty() {
                        self.connections.remove(&closed.peer_id);
                    }
                }
                // A peer with no connection left is admitted again from scratch: its
                // certificate may have expired or been revoked meanwhile.
                if closed.remaining_established == 0 {
                    self.open.remove(&closed.peer_id);
                }
            }
            FromSwarm::ListenFailure(failure) => {
                self.unadmitted.remove(&failure.connection_id);
            }
            _ => {}
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        if let Some((peer_id, connection)) = self.to_open.pop_front() {
            return Poll::Ready(ToSwarm::NotifyHandler {
                peer_id,
                handler: NotifyHandler::One(connection),
                event: GateIn::Open,
            });
        }
        self.inner.poll(cx).map(|event| event.map_in(GateIn::Inner))
    }
}

/// What the gate's behaviour tells a handler.
#[derive(Debug)]
pub(crate) enum GateIn<E> {
    /// The peer is admitted: serve it.
    Open,
    /// For the wrapped handler.
    Inner(E),
}

/// A connection handler that runs its inner handler only once opened.
pub(crate) struct GateHandler<H: ConnectionHandler> {
    inner: H,
    state: GateHandlerState,
    held: Vec<FullyNegotiatedInbound<H::InboundProtocol, H::InboundOpenInfo>>,
    waker: Option<Waker>,
}

impl<H: ConnectionHandler> GateHandler<H> {
    fn new(inner: H, state: GateHandlerState) -> Self {
        Self {
            inner,
            state,
            held: Vec::new(),
            waker: None,
        }
    }
}

impl<H: ConnectionHandler> ConnectionHandler for GateHandler<H> {
    type FromBehaviour = GateIn<H::FromBehaviour>;
    type ToBehaviour = H::ToBehaviour;
    type InboundProtocol = H::InboundProtocol;
    type OutboundProtocol = H::OutboundProtocol;
    type InboundOpenInfo = H::InboundOpenInfo;
    type OutboundOpenInfo = H::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.inner.listen_protocol()
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        match event {
            GateIn::Open => {
                self.state = GateHandlerState::Open;
                for stream in std::mem::take(&mut self.held) {
                    self.inner
                        .on_connection_event(ConnectionEvent::FullyNegotiatedInbound(stream));
                }
                if let Some(waker) = self.waker.take() {
                    waker.wake();
                }
            }
            GateIn::Inner(event) => self.inner.on_behaviour_event(event),
        }
    }

    fn connection_keep_alive(&self) -> bool {
        self.inner.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        if self.state == GateHandlerState::Closed {
            self.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        self.inner.poll(cx)
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            '_,
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(stream)
                if self.state == GateHandlerState::Closed =>
            {
                // Unread; past the cap, dropped (which resets the stream).
                if self.held.len() < HELD_STREAMS_MAX {
                    self.held.push(stream);
                }
            }
            event => self.inner.on_connection_event(event),
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.inner.poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::swarm::dummy;

    #[test]
    fn unadmitted_connections_are_limited_per_address_and_in_total() {
        let mut gate = Gate::new(
            dummy::Behaviour,
            GateLimits {
                per_address: 2,
                total: 3,
            },
        );
        let local: Multiaddr = "/ip4/127.0.0.1/tcp/4100".parse().unwrap();
        let a: Multiaddr = "/ip4/10.0.0.1/tcp/5000".parse().unwrap();
        let b: Multiaddr = "/ip4/10.0.0.2/tcp/5000".parse().unwrap();
        let mut next = 0;
        let mut pending = |addr: &Multiaddr| {
            next += 1;
            gate.handle_pending_inbound_connection(ConnectionId::new_unchecked(next), &local, addr)
                .is_ok()
        };
        assert!(pending(&a));
        assert!(pending(&a));
        assert!(!pending(&a), "a third from the same address");
        assert!(pending(&b));
        assert!(!pending(&b), "a fourth in total");
    }

    #[test]
    fn a_peer_whose_connections_all_closed_is_admitted_again_from_scratch() {
        use libp2p::core::ConnectedPoint;
        use libp2p::core::transport::PortUse;
        use libp2p::swarm::ConnectionClosed;

        let mut gate = Gate::new(
            dummy::Behaviour,
            GateLimits {
                per_address: 8,
                total: 8,
            },
        );
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4100".parse().unwrap();
        let peer = PeerId::random();
        let first = ConnectionId::new_unchecked(1);
        let state = |gate: &mut Gate<dummy::Behaviour>, id| {
            gate.handle_established_outbound_connection(
                id,
                peer,
                &addr,
                Endpoint::Dialer,
                PortUse::New,
            )
            .unwrap()
            .state
        };
        assert_eq!(state(&mut gate, first), GateHandlerState::Closed);
        gate.open(peer);
        assert_eq!(
            state(&mut gate, ConnectionId::new_unchecked(2)),
            GateHandlerState::Open,
            "a second connection of an admitted peer"
        );
        let endpoint = ConnectedPoint::Dialer {
            address: addr.clone(),
            role_override: Endpoint::Dialer,
            port_use: PortUse::New,
        };
        for (id, remaining) in [(1, 1), (2, 0)] {
            gate.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id: peer,
                connection_id: ConnectionId::new_unchecked(id),
                endpoint: &endpoint,
                cause: None,
                remaining_established: remaining,
            }));
        }
        assert_eq!(
            state(&mut gate, ConnectionId::new_unchecked(3)),
            GateHandlerState::Closed,
            "after its last connection closed, a peer waits for admission again"
        );
    }
}
