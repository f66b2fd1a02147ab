//! The loopback admin endpoint of a real daemon: `status` reports the node and the peers
//! it knows with their tags and reachability; anything else gets an error answer.

use std::time::Duration;

use andromede_cluster::admin::query_status;
use andromede_node::daemon::Daemon;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{daemon_config, listen_addr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_the_peers_with_their_tags() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let admin = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = daemon_config(a.path(), Vec::new(), "FR");
    config.admin = Some(admin);
    let first = Daemon::start(config).await.unwrap();
    let second = Daemon::start(daemon_config(
        b.path(),
        vec![listen_addr(&first).await],
        "DE",
    ))
    .await
    .unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = query_status(admin).await.unwrap();
        if status.peers.iter().any(|p| p.reachable) {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "peer never reported"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status.peer, first.net().local_peer_id().to_string());
    assert_eq!(status.jurisdiction, "FR");
    assert_eq!(status.peers.len(), 1);
    let peer = &status.peers[0];
    assert_eq!(peer.peer, second.net().local_peer_id().to_string());
    assert_eq!(
        (peer.jurisdiction.as_str(), peer.capacity_bytes),
        ("DE", 1 << 30)
    );

    let mut stream = tokio::net::TcpStream::connect(admin).await.unwrap();
    stream.write_all(b"shutdown\n").await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.contains("unknown request"), "{answer}");

    second.stop().await.unwrap();
    first.stop().await.unwrap();
}
