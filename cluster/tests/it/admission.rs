//! Admission by certificate against real swarms on loopback: who is refused (another
//! authority, an expired certificate, someone else's certificate, a revoked peer), that a
//! refused peer is served nothing — not even a Kademlia answer — and how fast a revocation
//! reaches every node.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use andromede_cluster::authority::{
    Authority, CertificateSpec, PeerRole, RevocationList, Trust, unix_now,
};
use andromede_cluster::net::{
    Admission, Keypair, Multiaddr, NetConfig, NetError, NetHandle, spawn,
};
use futures::StreamExt;
use libp2p::{PeerId, StreamProtocol, kad, noise, tcp, yamux};

use crate::net::{get, member, start_node, start_node_as, wait_for};

/// A rogue peer presenting `admission` as it is, unchecked.
fn rogue(key: Keypair, admission: Admission) -> NetHandle {
    let (handle, _inbound) = spawn(key, admission, NetConfig::new(PeerRole::Node)).unwrap();
    handle
}

/// `intruder` cannot get in to `node` (at `addr`), and `node`'s service saw nothing.
async fn assert_refused(
    node: &NetHandle,
    addr: Multiaddr,
    served: &std::sync::atomic::AtomicU64,
    intruder: &NetHandle,
) {
    let err = intruder.dial(addr).await.unwrap_err();
    assert!(
        matches!(
            err,
            NetError::NotAdmitted { .. } | NetError::Disconnected { .. }
        ),
        "{err}"
    );
    let err = get(intruder, node.local_peer_id()).await.unwrap_err();
    assert!(
        matches!(
            err,
            NetError::NotConnected { .. }
                | NetError::NotAdmitted { .. }
                | NetError::Disconnected { .. }
        ),
        "{err}"
    );
    assert_eq!(
        served.load(Ordering::Relaxed),
        0,
        "the service saw a request"
    );
    assert!(
        !node
            .admitted_peers()
            .await
            .unwrap()
            .contains(&intruder.local_peer_id())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_of_another_authority_is_refused_and_served_nothing() {
    let (node, addr, served) = start_node(&Authority::generate()).await;
    let (intruder, _, _) = start_node(&Authority::generate()).await;
    assert_refused(&node, addr, &served, &intruder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_refused() {
    let authority = Authority::generate();
    let (node, addr, served) = start_node(&authority).await;
    let key = Keypair::generate_ed25519();
    let now = unix_now();
    let expired = authority
        .certify(CertificateSpec {
            not_before_unix: now - 7200,
            not_after_unix: now - 3600,
            ..CertificateSpec::new(
                key.public().to_peer_id(),
                PeerRole::Node,
                "late",
                Duration::from_secs(1),
            )
        })
        .unwrap();
    let intruder = rogue(
        key,
        Admission::unchecked(expired, Trust::new(authority.public())),
    );
    assert_refused(&node, addr, &served, &intruder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_peer_id_is_refused() {
    let authority = Authority::generate();
    let (node, addr, served) = start_node(&authority).await;
    // A valid certificate, copied from another peer.
    let (_, someone_else) = member(&authority, PeerRole::Node);
    let intruder = rogue(
        Keypair::generate_ed25519(),
        Admission::unchecked(
            someone_else.certificate().clone(),
            Trust::new(authority.public()),
        ),
    );
    assert_refused(&node, addr, &served, &intruder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_authority_gets_no_kademlia_answer() {
    let authority = Authority::generate();
    let (node, addr, _) = start_node(&authority).await;
    // The node knows another member: something a lookup could leak.
    let (other, _, _) = start_node(&authority).await;
    other.dial(addr.clone()).await.unwrap();
    wait_for(|| {
        let node = node.clone();
        let other = other.local_peer_id();
        async move {
            node.routed_peers()
                .await
                .unwrap()
                .contains(&other)
                .then_some(())
        }
    })
    .await;

    // A bare libp2p peer speaking the cluster's Kademlia protocol, never admitted.
    let mut stranger = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| {
            let peer = key.public().to_peer_id();
            let mut config = kad::Config::new(StreamProtocol::new("/andromede/kad/1"));
            config.set_query_timeout(Duration::from_secs(20));
            kad::Behaviour::with_config(peer, kad::store::MemoryStore::new(peer), config)
        })
        .unwrap()
        .build();
    stranger
        .behaviour_mut()
        .add_address(&node.local_peer_id(), addr);
    stranger.behaviour_mut().get_closest_peers(PeerId::random());
    let found = loop {
        if let libp2p::swarm::SwarmEvent::Behaviour(kad::Event::OutboundQueryProgressed {
            result: kad::QueryResult::GetClosestPeers(result),
            step,
            ..
        }) = stranger.select_next_some().await
            && step.last
        {
            break match result {
                Ok(ok) => ok.peers,
                Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
            };
        }
    };
    let found: Vec<PeerId> = found.into_iter().map(|p| p.peer_id).collect();
    assert!(
        !found.contains(&other.local_peer_id()),
        "a stranger learnt a member through Kademlia: {found:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_node_is_dropped_by_every_node_and_stays_refused() {
    let authority = Authority::generate();
    let (a, a_addr, _) = start_node(&authority).await;
    let (c, _, _) = start_node(&authority).await;
    let (revoked_key, revoked_admission) = member(&authority, PeerRole::Node);
    let revoked_peer = revoked_key.public().to_peer_id();
    let (b, _, b_served) = start_node_as(revoked_key.clone(), revoked_admission.clone()).await;
    c.dial(a_addr.clone()).await.unwrap();
    b.dial(a_addr.clone()).await.unwrap();
    // C meets B through the DHT.
    wait_for(|| {
        let c = c.clone();
        async move {
            c.admitted_peers()
                .await
                .unwrap()
                .contains(&revoked_peer)
                .then_some(())
        }
    })
    .await;

    let list = authority
        .revoke(&RevocationList::empty(), revoked_peer, unix_now())
        .unwrap();
    let started = Instant::now();
    a.publish_revocations(list.signed().unwrap().clone())
        .await
        .unwrap()
        .unwrap();
    for node in [&a, &c] {
        wait_for(|| {
            let node = node.clone();
            async move {
                let list = node.revocations().borrow().clone();
                let admitted = node.admitted_peers().await.unwrap();
                (list.version() == 1 && !admitted.contains(&revoked_peer)).then_some(())
            }
        })
        .await;
    }
    eprintln!(
        "revoked peer dropped by every node {} ms after the list was published",
        started.elapsed().as_millis()
    );
    // It cannot come back, not with a restart (the same identity and certificate).
    drop(b);
    let before = b_served.load(Ordering::Relaxed);
    let again = rogue(revoked_key, revoked_admission);
    let err = again.dial(a_addr).await.unwrap_err();
    assert!(
        matches!(
            err,
            NetError::NotAdmitted { .. } | NetError::Disconnected { .. }
        ),
        "{err}"
    );
    assert_eq!(b_served.load(Ordering::Relaxed), before);
    // A list of another authority is refused, and changes nothing.
    let forged = Authority::generate()
        .revoke(&RevocationList::empty(), c.local_peer_id(), unix_now())
        .unwrap();
    assert!(
        a.publish_revocations(forged.signed().unwrap().clone())
            .await
            .unwrap()
            .is_err()
    );
    assert_eq!(a.revocations().borrow().version(), 1);
    assert!(
        a.admitted_peers()
            .await
            .unwrap()
            .contains(&c.local_peer_id())
    );
}

/// A renewed certificate is presented on the open connection: the other side takes it
/// (its view of the peer shows the new validity) without a reconnection; one that does
/// not fit (another peer's) is refused and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_taken_without_reconnecting() {
    let authority = Authority::generate();
    let (a, a_addr, _) = start_node(&authority).await;
    let (key, admission) = member(&authority, PeerRole::Node);
    let peer = key.public().to_peer_id();
    let first_end = admission.certificate().not_after_unix();
    let (b, _, _) = start_node_as(key, admission).await;
    b.dial(a_addr).await.unwrap();
    let renewed = authority
        .certify(CertificateSpec::new(
            peer,
            PeerRole::Node,
            "renewed",
            Duration::from_secs(30 * 86_400),
        ))
        .unwrap();
    assert!(renewed.not_after_unix() > first_end);
    b.renew(renewed.clone()).await.unwrap();
    wait_for(|| {
        let a = a.clone();
        async move {
            a.certificates()
                .await
                .unwrap()
                .iter()
                .any(|c| c.peer() == peer && c.name() == "renewed")
                .then_some(())
        }
    })
    .await;
    assert!(a.admitted_peers().await.unwrap().contains(&peer));
    // Someone else's certificate is no renewal.
    let (_, other) = member(&authority, PeerRole::Node);
    assert!(b.renew(other.certificate().clone()).await.is_err());
}
