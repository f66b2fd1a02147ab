//! A node that answers `Busy` is alive and stays in the live view; one that gives no
//! answer is the one that leaves it (overload must not turn into replica-set churn).

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
    let member = |role: PeerRole| {
        let key = Keypair::generate_ed25519();
        let spec = CertificateSpec::new(
            key.public().to_peer_id(),
            role,
            "m",
            Duration::from_secs(3600),
        );
        (key, Admission::issued(&authority, spec).unwrap())
    };

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
