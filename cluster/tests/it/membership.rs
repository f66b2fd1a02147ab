//! Membership views over real swarms: a node that answers `Busy` is alive and stays in
//! the live view, one that gives no answer leaves it (overload must not turn into
//! replica-set churn); the places a view holds are the certified ones, and one node
//! announcing a huge cluster cannot keep a view from settling.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use andromede_cluster::authority::{Authority, CertificateSpec, PeerRole};
use andromede_cluster::net::message::RemoteErrorCode;
use andromede_cluster::net::meta_message::{MetaResponse, NodeInfo};
use andromede_cluster::net::{Admission, Keypair, NetConfig, spawn};
use andromede_cluster::{Membership, MembershipConfig};

const ANSWER_INFO: u8 = 0;
const ANSWER_BUSY: u8 = 1;
const ANSWER_NOTHING: u8 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_node_stays_live_and_a_silent_one_does_not() {
    let authority = Authority::generate();
    let member = |role| crate::net::member(&authority, role);

    // A node whose answers the test chooses.
    let mut node_config = NetConfig::new(PeerRole::Node);
    node_config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let (key, admission) = member(PeerRole::Node);
    let (node, mut inbound) = spawn(key, admission, node_config).unwrap();
    let mode = Arc::new(AtomicU8::new(ANSWER_INFO));
    let answered = Arc::new(AtomicU8::new(0));
    {
        let (node, mode, answered) = (node.clone(), Arc::clone(&mode), Arc::clone(&answered));
        tokio::spawn(async move {
            while let Some(request) = inbound.recv().await {
                let answer = match mode.load(Ordering::SeqCst) {
                    ANSWER_INFO => MetaResponse::Info(NodeInfo::default()),
                    ANSWER_BUSY => MetaResponse::Error {
                        code: RemoteErrorCode::Busy,
                        detail: "overloaded".into(),
                    },
                    // Dropping the request: the asker gets no answer.
                    _ => continue,
                };
                answered.fetch_add(1, Ordering::SeqCst);
                let _ = node.respond(request, answer.encode()).await;
            }
        });
    }
    let mut addr = None;
    for _ in 0..200 {
        addr = node.listen_addrs().await.unwrap().into_iter().next();
        if addr.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (key, admission) = member(PeerRole::Client);
    let (client, _inbound) = spawn(key, admission, NetConfig::new(PeerRole::Client)).unwrap();
    let peer = client
        .dial(addr.expect("node never listened"))
        .await
        .unwrap();
    let membership = Membership::start(
        client,
        MembershipConfig {
            // Refreshed by hand below.
            refresh_every: Duration::from_secs(3600),
            info_timeout: Duration::from_secs(2),
        },
    );
    let is_live = |membership: &Membership| membership.live().iter().any(|m| m.peer == peer);

    membership.refresh().await;
    assert!(is_live(&membership), "the node answered its info");

    mode.store(ANSWER_BUSY, Ordering::SeqCst);
    let before = answered.load(Ordering::SeqCst);
    membership.refresh().await;
    assert!(
        answered.load(Ordering::SeqCst) > before,
        "the node was asked and answered busy"
    );
    assert!(is_live(&membership), "a busy node is alive");

    mode.store(ANSWER_NOTHING, Ordering::SeqCst);
    membership.refresh().await;
    assert!(
        !is_live(&membership),
        "a node that gives no answer is not live"
    );
}

/// A node answering its info requests with `info`, certified by `authority` as `spec`
/// says; returns its address.
async fn node_answering(
    authority: &Authority,
    zone: &str,
    jurisdiction: &str,
    info: NodeInfo,
) -> andromede_cluster::net::Multiaddr {
    let key = Keypair::generate_ed25519();
    let spec = CertificateSpec::new(
        key.public().to_peer_id(),
        PeerRole::Node,
        "n",
        Duration::from_secs(3600),
    )
    .placed(zone, jurisdiction);
    let admission = Admission::issued(authority, spec).unwrap();
    let mut config = NetConfig::new(PeerRole::Node);
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let (node, mut inbound) = spawn(key, admission, config).unwrap();
    let service = node.clone();
    tokio::spawn(async move {
        while let Some(request) = inbound.recv().await {
            let answer = MetaResponse::Info(info.clone()).encode();
            if service.respond(request, answer).await.is_err() {
                return;
            }
        }
    });
    for _ in 0..200 {
        if let Some(addr) = node.listen_addrs().await.unwrap().into_iter().next() {
            // The handle keeps the swarm running for the rest of the test.
            std::mem::forget(node);
            return addr;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("node never listened");
}

/// What placement and repair see of a node (its member entry) carries the zone and
/// jurisdiction of its certificate, whatever it announces; and one node announcing a huge
/// cluster does not keep a view from settling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn places_come_from_certificates_and_one_node_cannot_stall_settling() {
    let authority = Authority::generate();
    let liar = node_answering(
        &authority,
        "rack-de",
        "DE",
        NodeInfo {
            zone: "rack-fr".into(),
            jurisdiction: "FR".into(),
            live_nodes: 1_000_000,
            ..NodeInfo::default()
        },
    )
    .await;
    let honest = node_answering(
        &authority,
        "rack-fr",
        "FR",
        NodeInfo {
            zone: "rack-fr".into(),
            jurisdiction: "FR".into(),
            live_nodes: 2,
            ..NodeInfo::default()
        },
    )
    .await;
    let (key, admission) = crate::net::member(&authority, PeerRole::Client);
    let (client, _inbound) = spawn(key, admission, NetConfig::new(PeerRole::Client)).unwrap();
    let liar_peer = client.dial(liar).await.unwrap();
    client.dial(honest).await.unwrap();
    let membership = Membership::start(
        client,
        MembershipConfig {
            refresh_every: Duration::from_secs(3600),
            info_timeout: Duration::from_secs(2),
        },
    );
    let mut live = Vec::new();
    for _ in 0..200 {
        membership.refresh().await;
        live = membership.live();
        if live.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(live.len(), 2, "both nodes answered");
    let seen = live.iter().find(|m| m.peer == liar_peer).unwrap();
    assert_eq!(
        (seen.info.zone.as_str(), seen.info.jurisdiction.as_str()),
        ("rack-de", "DE"),
        "the certified place, not the announced one"
    );
    assert!(
        membership.is_settled(0),
        "a view that holds both nodes is settled, whatever one of them claims"
    );
}
