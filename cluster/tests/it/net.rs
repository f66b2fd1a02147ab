//! In-process network: real swarms on 127.0.0.1 over real TCP. Admission lets peers
//! certified by the cluster's authority talk and keeps others out; peers told of one node
//! find the rest.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use andromede_cluster::authority::{Authority, CertificateSpec, PeerRole};
use andromede_cluster::net::message::{
    ShardRequest, ShardResponse, decode_shard_request, decode_shard_response,
};
use andromede_cluster::net::{
    Admission, Keypair, Multiaddr, NetConfig, NetError, NetHandle, Protocol, spawn,
};
use andromede_proto::ShardId;
use bytes::Bytes;

const SHARD_BYTES: &[u8] = b"shard bytes served by the node";

/// Starts a node on an ephemeral loopback port that answers `get` with [`SHARD_BYTES`].
/// Returns its handle, its address and the count of requests its service saw.
pub(crate) async fn start_node(authority: &Authority) -> (NetHandle, Multiaddr, Arc<AtomicU64>) {
    let (key, admission) = member(authority, PeerRole::Node);
    start_node_as(key, admission).await
}

/// A fresh identity certified by `authority` in `role` for an hour.
pub(crate) fn member(authority: &Authority, role: PeerRole) -> (Keypair, Admission) {
    let key = Keypair::generate_ed25519();
    let spec = CertificateSpec::new(
        key.public().to_peer_id(),
        role,
        "m",
        Duration::from_secs(3600),
    );
    let admission = Admission::issued(authority, spec).unwrap();
    (key, admission)
}

/// [`start_node`] with a given identity and admission.
pub(crate) async fn start_node_as(
    key: Keypair,
    admission: Admission,
) -> (NetHandle, Multiaddr, Arc<AtomicU64>) {
    let mut config = NetConfig::new(PeerRole::Node);
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    config.admission_timeout = Duration::from_secs(2);
    let (handle, mut inbound) = spawn(key, admission, config).unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let service = handle.clone();
    let counter = Arc::clone(&served);
    tokio::spawn(async move {
        while let Some(request) = inbound.recv().await {
            counter.fetch_add(1, Ordering::Relaxed);
            let response = match decode_shard_request(Bytes::from(request.request.clone())) {
                Ok(ShardRequest::Get { .. }) => ShardResponse::Get {
                    data: Bytes::from_static(SHARD_BYTES),
                },
                _ => ShardResponse::Error {
                    code: andromede_cluster::net::message::RemoteErrorCode::Invalid,
                    detail: "unsupported in this test".into(),
                },
            };
            if service.respond(request, response.encode()).await.is_err() {
                return;
            }
        }
    });
    let addr = wait_for(|| {
        let handle = handle.clone();
        async move { handle.listen_addrs().await.unwrap().into_iter().next() }
    })
    .await;
    (handle, addr, served)
}

/// Polls `probe` every 50 ms for up to 20 s.
pub(crate) async fn wait_for<T, F, Fut>(mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..400 {
        if let Some(value) = probe().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached within 20 s");
}

pub(crate) async fn get(
    from: &NetHandle,
    to: andromede_cluster::net::PeerId,
) -> Result<ShardResponse, NetError> {
    let request = ShardRequest::Get {
        id: ShardId([1; 32]),
    };
    let bytes = from.request(to, Protocol::Shard, request.encode()).await?;
    Ok(decode_shard_response(&request, Bytes::from(bytes)).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_certified_by_the_authority_are_admitted_and_served() {
    let authority = Authority::generate();
    let (a, a_addr, a_served) = start_node(&authority).await;
    let (b, _, _) = start_node(&authority).await;
    let peer = b.dial(a_addr).await.unwrap();
    assert_eq!(peer, a.local_peer_id());
    assert_eq!(
        get(&b, peer).await.unwrap(),
        ShardResponse::Get {
            data: Bytes::from_static(SHARD_BYTES)
        }
    );
    assert_eq!(a_served.load(Ordering::Relaxed), 1);
    let b_id = b.local_peer_id();
    wait_for(|| {
        let a = a.clone();
        async move {
            a.admitted_peers()
                .await
                .unwrap()
                .contains(&b_id)
                .then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_told_only_of_the_first_discover_each_other() {
    let authority = Authority::generate();
    let (first, first_addr, _) = start_node(&authority).await;
    let mut nodes = vec![first];
    for _ in 0..4 {
        let (node, _, _) = start_node(&authority).await;
        node.dial(first_addr.clone()).await.unwrap();
        nodes.push(node);
    }
    // Every node ends up admitted to every other one, through Kademlia.
    for node in &nodes {
        let others: Vec<_> = nodes
            .iter()
            .map(NetHandle::local_peer_id)
            .filter(|p| *p != node.local_peer_id())
            .collect();
        wait_for(|| {
            let node = node.clone();
            let others = others.clone();
            async move {
                let admitted = node.admitted_peers().await.unwrap();
                others.iter().all(|p| admitted.contains(p)).then_some(())
            }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_admitted_but_never_routed_to() {
    let authority = Authority::generate();
    let (a, a_addr, _) = start_node(&authority).await;
    // A client that listens (as a gateway might) still must not be routed to.
    let mut config = NetConfig::new(PeerRole::Client);
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let (key, admission) = member(&authority, PeerRole::Client);
    let (client, _inbound) = spawn(key, admission, config).unwrap();
    assert_eq!(
        client.dial(a_addr.clone()).await.unwrap(),
        a.local_peer_id()
    );
    let (b, _, _) = start_node(&authority).await;
    b.dial(a_addr).await.unwrap();
    // A routes to node B (its identify arrived after the client's) but not to the client.
    let b_id = b.local_peer_id();
    let routed = wait_for(|| {
        let a = a.clone();
        async move {
            let routed = a.routed_peers().await.unwrap();
            routed.contains(&b_id).then_some(routed)
        }
    })
    .await;
    assert!(
        !routed.contains(&client.local_peer_id()),
        "a client entered the routing table"
    );
    assert!(
        a.admitted_peers()
            .await
            .unwrap()
            .contains(&client.local_peer_id())
    );
}
