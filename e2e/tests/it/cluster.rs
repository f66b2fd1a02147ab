//! Several real node daemons on 127.0.0.1 and a client: an object is encoded into shards
//! placed on the nodes over the network, survives a stopped node, and no node's data
//! directory ever holds its plaintext.

use std::sync::Arc;

use andromede_client::{
    Client, CodecConfig, ErasureParams, MasterKey, NetShards, ObjectName, PutOptions,
    encode_object, open_manifest,
};
use andromede_cluster::net::{Multiaddr, NetConfig, NetHandle, PeerId, PeerRole, spawn};
use andromede_cluster::placement::{Candidate, PlacementPolicy, place_shards, placement_key};
use andromede_node::daemon::Daemon;
use futures::TryStreamExt;

use crate::{assert_no_plaintext, daemon_config, listen_addr, start_daemon};

const MARKER: &[u8] = b"PLAINTEXT-MARKER-ANDROMEDE-7f3a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_spread_over_nodes_survives_a_stopped_node_and_stays_encrypted() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut daemons = vec![start_daemon(dirs[0].path()).await];
    for dir in &dirs[1..] {
        daemons.push(start_daemon(dir.path()).await);
    }

    let (identity, admission) = crate::daemons::client_identity();
    let (client, _inbound): (NetHandle, _) =
        spawn(identity, admission, NetConfig::new(PeerRole::Client)).unwrap();
    let mut peers: Vec<PeerId> = Vec::new();
    for daemon in &daemons {
        peers.push(client.dial(listen_addr(daemon).await).await.unwrap());
    }

    // Place RS(2,1) on the three nodes.
    let params = ErasureParams::new(2, 1).unwrap();
    let candidates: Vec<Candidate> = peers
        .iter()
        .map(|p| Candidate {
            key: placement_key(&p.to_bytes()),
            zone: p.to_string(),
            jurisdiction: "FR".into(),
            free_bytes: 1 << 30,
        })
        .collect();
    let placement = place_shards(
        &candidates,
        &PlacementPolicy::default(),
        params,
        &placement_key(b"b/k"),
        1,
    )
    .unwrap();
    assert_eq!(placement.peer_loss_tolerance, 1);
    let holders: Vec<PeerId> = placement.holders.iter().map(|&i| peers[i]).collect();
    let shards = Arc::new(NetShards::new(client.clone(), holders.clone()));

    let config = CodecConfig {
        segment_bytes: 64 * 1024,
        ..CodecConfig::default()
    };
    let master = MasterKey::generate();
    let object = ObjectName::new("b", "k");
    let input: Vec<u8> = MARKER
        .iter()
        .copied()
        .cycle()
        .take(3 * 64 * 1024 + 777)
        .collect();
    let options = PutOptions {
        params,
        ..PutOptions::default()
    };
    let encoded = encode_object(
        &config,
        &master,
        &object,
        &options,
        &input[..],
        shards.as_ref(),
    )
    .await
    .unwrap();
    let stored: u64 = daemons.iter().map(|d| d.store().usage().shard_count).sum();
    assert_eq!(stored, 4 * 3, "4 segments × 3 shards");

    // Stop the holder of data shard 0; the object still reads back exactly.
    let victim = peers.iter().position(|p| *p == holders[0]).unwrap();
    daemons.remove(victim).stop().await.unwrap();
    let opened = Arc::new(open_manifest(&master, &object, encoded.manifest).unwrap());
    let chunks: Vec<bytes::Bytes> = opened
        .read(&config, None, Arc::clone(&shards))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(chunks.concat(), input);

    // Invariant 4: no plaintext in any data directory.
    assert_no_plaintext(&dirs, MARKER);
    for daemon in daemons {
        daemon.stop().await.unwrap();
    }
}

/// A bootstrap node that is down when a client connects enters the client's view once it
/// starts: the client redials the bootstrap addresses it is not connected to. The node
/// joins nobody itself, so nothing else could tell the client about it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_node_started_after_the_client_enters_its_view() {
    let first_dir = tempfile::tempdir().unwrap();
    let second_dir = tempfile::tempdir().unwrap();
    let first = start_daemon(first_dir.path()).await;
    let first_addr = listen_addr(&first).await;
    // The second node's address, chosen now and served only later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let second_addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
    let config = crate::client_config(vec![first_addr, second_addr.clone()], MasterKey::generate());
    let client = Client::connect(config).await.unwrap();
    assert_eq!(client.nodes().len(), 1, "only the first node runs");

    let mut second_config = daemon_config(second_dir.path(), Vec::new(), "FR");
    second_config.listen = vec![second_addr];
    let second = Daemon::start(second_config).await.unwrap();
    client
        .wait_for_nodes(2, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    drop(client);
    second.stop().await.unwrap();
    first.stop().await.unwrap();
}
