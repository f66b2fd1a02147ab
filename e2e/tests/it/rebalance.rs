//! Moving healthy shards with real daemons on 127.0.0.1 (old copies stay until the orphan
//! collector's grace period): a drained node hands everything
//! over (shards through the holder index, metadata through anti-entropy) and is then told
//! it is safe to stop; nodes that join receive shards of existing objects. Redundancy is
//! checked all along: every manifest read names `k + m` distinct nodes that hold their
//! shards, and every object reads back exactly.

use andromede_cluster::REPLICAS;
use std::time::Duration;

use andromede_cluster::manifest::Manifest;
use andromede_cluster::net::PeerId;

use crate::eventually;
use crate::objects::{body, bucket, get, put};
use crate::repair::{Cluster, SEGMENT};

/// A cluster of `nodes` nodes with bucket `name` under RS(2,1).
async fn cluster_with_bucket(nodes: usize, name: &str) -> Cluster {
    let cluster = Cluster::start(nodes).await;
    cluster
        .client
        .create_bucket(name, bucket(2, 1, &[]))
        .await
        .unwrap();
    cluster
}

/// Shards the repair workers of `cluster` have moved so far.
fn moved(cluster: &Cluster) -> u64 {
    cluster
        .daemons
        .iter()
        .flatten()
        .map(|d| d.repair_status().shards_moved)
        .sum()
}

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
    let mut cluster = cluster_with_bucket(5, "drain").await;
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
    assert!(
        moved(&cluster) > 0,
        "no shard was moved off the drained node"
    );

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
    let mut cluster = cluster_with_bucket(3, "grow").await;
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
    assert!(
        moved(&cluster) > 0,
        "the repair workers counted no moved shard"
    );
}

/// An identity key (written under `dir`) whose peer is closer to `bucket`'s partition
/// than every peer in `than`: a node started with it becomes the bucket's first replica.
fn closer_identity(dir: &std::path::Path, bucket: &str, than: &[PeerId]) -> std::path::PathBuf {
    use andromede_cluster::partition_key;
    use andromede_cluster::placement::placement_key;
    let target = partition_key(bucket);
    let distance = |peer: &PeerId| {
        let key = placement_key(&peer.to_bytes());
        let mut d = [0u8; 32];
        for (o, (a, b)) in d.iter_mut().zip(key.iter().zip(target.iter())) {
            *o = a ^ b;
        }
        d
    };
    let best = than.iter().map(distance).min().unwrap();
    for attempt in 0..10_000 {
        let path = dir.join(format!("identity-{attempt}.key"));
        let keypair = andromede_cluster::net::load_or_create_identity(&path).unwrap();
        if distance(&keypair.public().to_peer_id()) < best {
            return path;
        }
        std::fs::remove_file(&path).unwrap();
    }
    panic!("no closer identity in 10000 tries");
}

/// Every object of `written` reads back from `bucket`, and the listing holds exactly them.
async fn reads_and_lists_in_full(cluster: &Cluster, bucket: &str, written: &[(String, Vec<u8>)]) {
    for (key, data) in written {
        assert_eq!(&get(&cluster.client, bucket, key).await, data, "{key}");
    }
    let listed = cluster
        .client
        .list_objects(bucket, &andromede_client::ListOptions::default())
        .await
        .unwrap();
    assert_eq!(listed.objects.len(), written.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn closer_peers_joining_during_writes_and_reads_take_over_the_replica_set() {
    let mut cluster = cluster_with_bucket(REPLICAS, "moving").await;
    let before: Vec<PeerId> = (0..REPLICAS).filter_map(|i| cluster.peer(i)).collect();

    // A writer puts new keys and reads each back at once, while two nodes closer to the
    // bucket than any replica join (the replica set becomes both of them and three old
    // replicas). Bounded: 60 keys.
    let writer = {
        let client = cluster.client.clone();
        tokio::spawn(async move {
            let mut written: Vec<(String, Vec<u8>)> = Vec::new();
            for i in 0..60u32 {
                let key = format!("key-{i:03}");
                let data = body(20_000 + i as usize, i as u8);
                put(&client, "moving", &key, &data).await;
                assert_eq!(
                    get(&client, "moving", &key).await,
                    data,
                    "{key} read after write"
                );
                // Earlier keys stay readable through the change.
                if let Some((old_key, old_data)) = written.get(written.len() / 2) {
                    assert_eq!(
                        &get(&client, "moving", old_key).await,
                        old_data,
                        "{old_key}"
                    );
                }
                written.push((key, data));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            written
        })
    };
    let ids = tempfile::tempdir().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..2 {
        let known: Vec<PeerId> = (0..cluster.daemons.len())
            .filter_map(|i| cluster.peer(i))
            .collect();
        let identity = closer_identity(ids.path(), "moving", &known);
        cluster.join_as(Some(&identity)).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let written = writer.await.unwrap();

    // The client now routes the bucket to the new nodes, which hold every record (given
    // one anti-entropy interval), and every key reads back, also through a new client.
    let replicas = eventually(Duration::from_secs(30), async || {
        let replicas = andromede_cluster::closest_members(
            &cluster.client.nodes(),
            &andromede_cluster::partition_key("moving"),
        );
        replicas.len() >= REPLICAS
            && !before.contains(&replicas[0])
            && !before.contains(&replicas[1])
    })
    .await;
    assert!(replicas, "the joining nodes did not become replicas");
    for i in [REPLICAS, REPLICAS + 1] {
        let meta = std::sync::Arc::clone(cluster.daemons[i].as_ref().unwrap().meta());
        let caught_up = eventually(Duration::from_secs(30), async || {
            written.iter().all(|(key, _)| {
                meta.get(&andromede_cluster::meta::key::RecordKey {
                    table: andromede_cluster::meta::key::Table::ObjectIndex,
                    partition: "moving".into(),
                    sort: key.as_bytes().to_vec(),
                })
                .unwrap()
                .is_some()
            })
        })
        .await;
        assert!(caught_up, "new replica {i} never received every record");
    }
    reads_and_lists_in_full(&cluster, "moving", &written).await;

    // The two former replicas hand their records over and drop them (a replica that
    // kept them would hold stale records the day it is a replica again); the bucket
    // still reads and lists in full.
    let replicas = andromede_cluster::closest_members(
        &cluster.client.nodes(),
        &andromede_cluster::partition_key("moving"),
    );
    let former: Vec<usize> = (0..REPLICAS)
        .filter(|&i| !replicas[..REPLICAS].contains(&cluster.peer(i).unwrap()))
        .collect();
    assert_eq!(
        former.len(),
        2,
        "replicas now {replicas:?}, before {before:?}"
    );
    for i in former {
        let meta = std::sync::Arc::clone(cluster.daemons[i].as_ref().unwrap().meta());
        let dropped = eventually(Duration::from_secs(60), async || {
            [
                andromede_cluster::meta::key::Table::ObjectIndex,
                andromede_cluster::meta::key::Table::Manifest,
                andromede_cluster::meta::key::Table::Garbage,
            ]
            .into_iter()
            .all(|table| meta.scan(table, "moving", b"", None, 1).unwrap().is_empty())
        })
        .await;
        assert!(
            dropped,
            "former replica {i} still holds records of the bucket"
        );
    }
    reads_and_lists_in_full(&cluster, "moving", &written).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_joining_replica_counts_for_reads_only_once_it_holds_every_record() {
    // Anti-entropy out of reach: whatever the new node holds when it stops catching up
    // comes from its own copy.
    let mut cluster = Cluster::start_tuned(
        3,
        |_| 1 << 30,
        |config| config.anti_entropy.interval = Duration::from_secs(3600),
    )
    .await;
    // Nodes of a new cluster have no one to copy from (or only empty peers): done soon.
    let formed = eventually(Duration::from_secs(60), async || {
        cluster
            .daemons
            .iter()
            .all(|d| !d.as_ref().unwrap().is_catching_up())
    })
    .await;
    assert!(
        formed,
        "the nodes of a new cluster never finished catching up"
    );
    cluster
        .client
        .create_bucket("handoff", bucket(2, 1, &[]))
        .await
        .unwrap();
    let mut written = Vec::new();
    for i in 0..40u32 {
        let key = format!("before-{i:02}");
        let data = body(1_000 + i as usize, i as u8);
        put(&cluster.client, "handoff", &key, &data).await;
        written.push((key, data));
    }

    let ids = tempfile::tempdir().unwrap();
    let known: Vec<PeerId> = (0..3).filter_map(|i| cluster.peer(i)).collect();
    let identity = closer_identity(ids.path(), "handoff", &known);
    let joined = cluster.join_as(Some(&identity)).await;
    let daemon = cluster.daemons[joined].as_ref().unwrap();
    assert!(
        daemon.is_catching_up(),
        "a node with a new metadata store must catch up first"
    );
    let done = eventually(Duration::from_secs(90), async || !daemon.is_catching_up()).await;
    assert!(done, "the new node never finished catching up");
    // The moment it counts for reads, it holds the bucket and every object record.
    let meta = daemon.meta();
    let record = |table, partition: &str, sort: &[u8]| {
        meta.get(&andromede_cluster::meta::key::RecordKey {
            table,
            partition: partition.into(),
            sort: sort.to_vec(),
        })
        .unwrap()
    };
    use andromede_cluster::meta::key::Table;
    assert!(record(Table::Bucket, "", b"handoff").is_some());
    for (key, _) in &written {
        assert!(
            record(Table::ObjectIndex, "handoff", key.as_bytes()).is_some(),
            "{key} missing on the new replica after it caught up"
        );
    }
    // And the cluster, now routing the bucket through it, reads everything back.
    cluster
        .client
        .wait_for_nodes(4, Duration::from_secs(30))
        .await
        .unwrap();
    for (key, data) in &written {
        assert_eq!(&get(&cluster.client, "handoff", key).await, data, "{key}");
    }
}
