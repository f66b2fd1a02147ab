//! Moving healthy shards with real daemons on 127.0.0.1 (old copies stay until the orphan
//! collector's grace period): a drained node hands everything
//! over (shards through the holder index, metadata through anti-entropy) and is then told
//! it is safe to stop; nodes that join receive shards of existing objects. Redundancy is
//! checked all along: every manifest read names `k + m` distinct nodes that hold their
//! shards, and every object reads back exactly.

use std::time::Duration;

use andromede_client::manifest::Manifest;
use andromede_client::net::PeerId;

use crate::eventually;
use crate::objects::{body, bucket, get, put};
use crate::repair::{Cluster, SEGMENT};

/// Every peer a manifest names as a holder.
fn holders(manifest: &Manifest) -> Vec<PeerId> {
    manifest
        .distinct_holders()
        .iter()
        .filter_map(|h| PeerId::from_bytes(h).ok())
        .collect()
}

/// Asserts that `key` is fully redundant on distinct running nodes. A shard may leave its
/// old holder right after a new manifest names its new one, so a failed check counts only
/// when the manifest read again is the same.
async fn assert_redundant(cluster: &Cluster, bucket: &str, key: &str) {
    let mut manifest = cluster.manifest(bucket, key).await;
    for _ in 0..5 {
        if cluster.fully_redundant(&manifest, true).await {
            return;
        }
        let again = cluster.manifest(bucket, key).await;
        assert!(
            again != manifest,
            "{key}: a manifest names a node that does not hold its shard (redundancy dropped)"
        );
        manifest = again;
    }
    panic!("{key}: its manifest kept changing under the check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drained_node_hands_everything_over_and_is_then_safe_to_stop() {
    let mut cluster = Cluster::start(5).await;
    cluster
        .client
        .create_bucket("drain", bucket(2, 1, &[]))
        .await
        .unwrap();
    let mut objects: Vec<(String, Vec<u8>)> = [2 * SEGMENT + 1, SEGMENT - 1, 40_000]
        .into_iter()
        .enumerate()
        .map(|(i, len)| (format!("object-{i}"), body(len, i as u8)))
        .collect();
    for (key, data) in &objects {
        put(&cluster.client, "drain", key, data).await;
    }
    // Drain a holder of the first object other than the bootstrap node.
    let first = cluster.manifest("drain", &objects[0].0).await;
    let victim_peer = holders(&first)
        .into_iter()
        .find(|p| Some(*p) != cluster.peer(0))
        .unwrap();
    let victim = cluster.index_of(victim_peer);
    let drained = cluster.daemons[victim].as_ref().unwrap();
    assert!(!drained.drain_progress().await.safe_to_stop);
    drained.start_drain().unwrap();

    // Once the client sees the drain, new objects avoid the node.
    let seen = eventually(Duration::from_secs(30), async || {
        cluster
            .client
            .nodes()
            .iter()
            .any(|m| m.peer == victim_peer && m.info.draining)
    })
    .await;
    assert!(seen, "the client never saw the node draining");
    let during = ("during".to_owned(), body(SEGMENT + 7, 9));
    put(&cluster.client, "drain", &during.0, &during.1).await;
    assert!(
        !holders(&cluster.manifest("drain", &during.0).await).contains(&victim_peer),
        "a new object was placed on a draining node"
    );
    objects.push(during);

    let drained = cluster.daemons[victim].as_ref().unwrap();
    let safe = eventually(Duration::from_secs(120), async || {
        drained.drain_progress().await.safe_to_stop
    })
    .await;
    assert!(
        safe,
        "never safe to stop: {:?}",
        drained.drain_progress().await
    );
    for (key, _) in &objects {
        let manifest = cluster.manifest("drain", key).await;
        assert!(
            !holders(&manifest).contains(&victim_peer),
            "{key} still names the drained node"
        );
        assert_redundant(&cluster, "drain", key).await;
    }
    let moved: u64 = cluster
        .daemons
        .iter()
        .flatten()
        .map(|d| d.repair_status().shards_moved)
        .sum();
    assert!(moved > 0, "no shard was moved off the drained node");

    // Stopped for good, and one more node (m = 1) with it: everything reads back, and the
    // bucket's metadata is still there (its replicas took the drained node's records).
    cluster.stop(victim).await;
    let other = (1..cluster.daemons.len())
        .find(|&i| cluster.daemons[i].is_some())
        .unwrap();
    cluster.stop(other).await;
    for (key, data) in &objects {
        assert_eq!(&get(&cluster.client, "drain", key).await, data, "{key}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn joining_nodes_receive_shards_and_redundancy_never_drops_on_the_way() {
    // Exactly k + m nodes: every object is on all of them until others join.
    let mut cluster = Cluster::start(3).await;
    cluster
        .client
        .create_bucket("grow", bucket(2, 1, &[]))
        .await
        .unwrap();
    let objects: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| (format!("object-{i}"), body(SEGMENT + 1 + i, i as u8)))
        .collect();
    for (key, data) in &objects {
        put(&cluster.client, "grow", key, data).await;
    }
    let original: Vec<PeerId> = (0..3).filter_map(|i| cluster.peer(i)).collect();
    for _ in 0..3 {
        cluster.join().await;
    }

    // Bounded: at most 120 s of checks, each round reading every object and checking
    // that its manifest names k + m distinct nodes that hold their shards.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut on_new_nodes = false;
    while tokio::time::Instant::now() < deadline {
        on_new_nodes = false;
        for (key, data) in &objects {
            assert_eq!(&get(&cluster.client, "grow", key).await, data, "{key}");
            assert_redundant(&cluster, "grow", key).await;
            let manifest = cluster.manifest("grow", key).await;
            on_new_nodes |= holders(&manifest).iter().any(|p| !original.contains(p));
        }
        if on_new_nodes {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(on_new_nodes, "no shard moved to a joining node");
    let moved: u64 = cluster
        .daemons
        .iter()
        .flatten()
        .map(|d| d.repair_status().shards_moved)
        .sum();
    assert!(moved > 0, "the repair workers counted no moved shard");
}
