//! Replica sets from the certified roster (DESIGN.md, "Metadata"): no node or client acts
//! alone, metadata survives what RS(4,2) data survives, and a member that leaves hands
//! its partitions over before its place stops counting. Real daemons on 127.0.0.1.

use std::collections::BTreeMap;
use std::time::Duration;

use andromede_client::{ClientError, MasterKey};
use andromede_cluster::meta::key::Table;
use andromede_cluster::meta::record::Version;
use andromede_cluster::net::PeerId;
use andromede_cluster::{REPLICAS, closest_members, partition_key};

use crate::eventually;
use crate::objects::{body, bucket, get, put};
use crate::repair::Cluster;

/// Every running daemon refuses every connection with `cut` and `cut` with them.
async fn isolate(cluster: &Cluster, cut: usize) {
    let peer = cluster.peer(cut).unwrap();
    let others: Vec<PeerId> = (0..cluster.daemons.len())
        .filter(|&i| i != cut)
        .filter_map(|i| cluster.peer(i))
        .collect();
    for (i, daemon) in cluster.daemons.iter().enumerate() {
        let Some(daemon) = daemon else { continue };
        let blocked = if i == cut { others.clone() } else { vec![peer] };
        daemon.net().set_blocked(blocked).await.unwrap();
    }
}

/// Lifts every partition hook.
async fn heal(cluster: &Cluster) {
    for daemon in cluster.daemons.iter().flatten() {
        daemon.net().set_blocked(Vec::new()).await.unwrap();
    }
}

/// Waits until every running daemon's roster holds `members` nodes and it reaches all of
/// them: the cluster has formed.
async fn wait_rosters(cluster: &Cluster, members: usize) {
    let formed = eventually(Duration::from_secs(60), async || {
        cluster.daemons.iter().flatten().all(|d| {
            let reach = d.membership().reach();
            reach.members == members && reach.reachable == members
        })
    })
    .await;
    assert!(formed, "the rosters never held all {members} nodes");
}

/// Writes `handoff/key-NN` (3 000 bytes drawn from NN) for each NN of `keys`.
async fn put_keys(cluster: &Cluster, keys: std::ops::Range<u8>) {
    for i in keys {
        let key = format!("key-{i:02}");
        put(&cluster.client, "handoff", &key, &body(3_000, i)).await;
    }
}

fn is_no_quorum(error: &ClientError) -> bool {
    error.to_string().contains("no quorum:")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_cut_off_from_the_majority_gets_no_quorum_and_the_majoritys_writes_survive_the_heal()
 {
    let cluster = Cluster::start(5).await;
    let master = MasterKey::generate();
    let connect = async || {
        let client = andromede_client::Client::connect(crate::client_config(
            vec![cluster.first_addr()],
            master.clone(),
        ))
        .await
        .unwrap();
        client
            .wait_for_nodes(5, Duration::from_secs(30))
            .await
            .unwrap();
        client
    };
    let majority = connect().await;
    let cut = connect().await;
    majority
        .create_bucket("split", bucket(2, 1, &[]))
        .await
        .unwrap();
    put(&majority, "split", "before", &body(30_000, 1)).await;
    assert_eq!(get(&cut, "split", "before").await, body(30_000, 1));

    // The cut client reaches two of the five members: a minority of every replica set.
    let far: Vec<PeerId> = (2..5).filter_map(|i| cluster.peer(i)).collect();
    cut.block_peers(far).await.unwrap();
    let read = cut.get_object_bytes("split", "before").await.unwrap_err();
    assert!(is_no_quorum(&read), "{read}");
    assert!(read.to_string().contains("of 5 replicas"), "{read}");
    let write = cut
        .put_object(
            "split",
            "from-the-cut",
            &b"never acknowledged"[..],
            Default::default(),
        )
        .await
        .unwrap_err();
    assert!(is_no_quorum(&write), "{write}");
    let create = cut
        .create_bucket("cut-bucket", bucket(2, 1, &[]))
        .await
        .unwrap_err();
    assert!(is_no_quorum(&create), "{create}");

    // Meanwhile the majority side writes, acknowledged.
    let mut written: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for i in 0..8u8 {
        let key = format!("during-{i}");
        let data = body(10_000 + usize::from(i) * 1000, i + 10);
        put(&majority, "split", &key, &data).await;
        written.insert(key, data);
    }

    // Healed: every acknowledged write reads back from both sides, and the cut client's
    // refused writes never appear.
    cut.block_peers(Vec::new()).await.unwrap();
    for (key, data) in &written {
        for client in [&majority, &cut] {
            let back = eventually(Duration::from_secs(30), async || {
                client.get_object_bytes("split", key).await.ok().as_ref() == Some(data)
            })
            .await;
            assert!(back, "{key} does not read back after the heal");
        }
    }
    assert!(matches!(
        majority.get_object_bytes("split", "from-the-cut").await,
        Err(ClientError::NoSuchKey { .. })
    ));
    assert!(matches!(
        majority.head_bucket("cut-bucket").await,
        Err(ClientError::NoSuchBucket { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_isolated_node_writes_nothing_destructive_and_resumes_after_it_rejoins() {
    let cluster = Cluster::start(5).await;
    let hasty = crate::hasty_client(cluster.first_addr(), 5).await;
    hasty
        .create_bucket("lonely", bucket(2, 1, &[]))
        .await
        .unwrap();
    // Overwritten keys: garbage records due at once, work for every collector.
    for round in 0..3u8 {
        for i in 0..6u8 {
            put(
                &hasty,
                "lonely",
                &format!("key-{i}"),
                &body(40_000, round * 10 + i),
            )
            .await;
        }
    }
    wait_rosters(&cluster, 5).await;
    // Cut off the node that leads the bucket's maintenance.
    let leader = (0..5)
        .find(|&i| {
            let daemon = cluster.daemons[i].as_ref().unwrap();
            daemon
                .quorum()
                .leads("lonely", daemon.net().local_peer_id())
        })
        .expect("a leader");
    let lonely = cluster.daemons[leader].as_ref().unwrap();
    let me = lonely.net().local_peer_id();
    isolate(&cluster, leader).await;
    let cut_off = eventually(Duration::from_secs(30), async || {
        !lonely.membership().reach().majority()
    })
    .await;
    assert!(
        cut_off,
        "the isolated node never saw itself in the minority"
    );
    let authored = |daemon: &andromede_node::daemon::Daemon| {
        let mut count = 0;
        for table in [Table::ObjectIndex, Table::Manifest, Table::Garbage] {
            let records = daemon
                .meta()
                .scan(table, "lonely", b"", None, 10_000)
                .unwrap();
            count += records
                .iter()
                .filter(|(_, r)| r.version.writer.as_bytes() == me.to_bytes().as_slice())
                .count();
        }
        count
    };
    let before = authored(lonely);
    let shards_before = lonely.store().usage().shard_count;
    // More garbage comes due while it is cut off; several collector and repair passes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let passes_before = crate::passes(lonely, "gc");
    let ran = eventually(Duration::from_secs(30), async || {
        crate::passes(lonely, "gc") >= passes_before + 3
    })
    .await;
    assert!(ran, "the collector stopped running");
    for worker in ["gc", "repair", "orphans"] {
        let status = lonely
            .worker_statuses()
            .into_iter()
            .find(|s| s.name == worker)
            .unwrap();
        if worker != "orphans" || status.passes > 0 {
            let error = status.last_error.unwrap_or_default();
            assert!(
                error.contains("reaches 1 of the roster's 5 members"),
                "{worker}: {error}"
            );
            assert_eq!(status.last_items, 0, "{worker} did work while cut off");
        }
    }
    assert_eq!(authored(lonely), before, "records written while cut off");
    assert_eq!(lonely.store().usage().shard_count, shards_before);

    // Back with the others: it collects again (its passes end without the refusal).
    heal(&cluster).await;
    let resumed = eventually(Duration::from_secs(60), async || {
        lonely
            .worker_statuses()
            .into_iter()
            .find(|s| s.name == "gc")
            .is_some_and(|s| {
                s.last_error
                    .as_deref()
                    .is_none_or(|e| !e.contains("reaches"))
            })
    })
    .await;
    assert!(resumed, "the collector did not resume after the heal");
    for i in 0..6u8 {
        assert_eq!(
            get(&hasty, "lonely", &format!("key-{i}")).await,
            body(40_000, 20 + i)
        );
    }
}

/// Bucket names whose replica set (the `REPLICAS` members closest to them) holds all of
/// `down`, and names whose set holds fewer than a quorum's worth of them.
fn buckets_by_fate(
    members: &[andromede_cluster::Member],
    down: &[PeerId],
) -> (Vec<String>, Vec<String>) {
    let (mut lose, mut keep) = (Vec::new(), Vec::new());
    for i in 0..2000 {
        let name = format!("b{i:04}");
        let set: Vec<PeerId> = closest_members(members, &partition_key(&name))
            .into_iter()
            .take(REPLICAS)
            .collect();
        let hit = set.iter().filter(|p| down.contains(p)).count();
        if hit == down.len() && lose.len() < 3 {
            lose.push(name);
        } else if hit < 2 && keep.len() < 3 {
            keep.push(name);
        }
        if lose.len() == 3 && keep.len() == 3 {
            break;
        }
    }
    (lose, keep)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_of_seven_down_every_partition_works_and_a_third_stops_only_those_it_leaves_short() {
    let mut cluster = Cluster::start(7).await;
    wait_rosters(&cluster, 7).await;
    let members = cluster.client.nodes();
    // The bucket directory keeps its quorum whoever goes down here: the three stopped
    // nodes are chosen so that at most two are its replicas.
    let directory: Vec<PeerId> = closest_members(&members, &partition_key(""))
        .into_iter()
        .take(REPLICAS)
        .collect();
    let outside: Vec<usize> = (0..7)
        .filter(|&i| !directory.contains(&cluster.peer(i).unwrap()))
        .collect();
    let inside: Vec<usize> = (0..7)
        .filter(|&i| directory.contains(&cluster.peer(i).unwrap()))
        .collect();
    let stopped: Vec<usize> = vec![outside[0], outside[1], inside[0]];
    let down: Vec<PeerId> = stopped.iter().map(|&i| cluster.peer(i).unwrap()).collect();
    let (lose, keep) = buckets_by_fate(&members, &down);
    assert!(lose.len() == 3 && keep.len() == 3, "{lose:?} {keep:?}");
    let buckets: Vec<&String> = lose.iter().chain(&keep).collect();
    for name in &buckets {
        cluster
            .client
            .create_bucket(name, bucket(2, 1, &[]))
            .await
            .unwrap();
        put(&cluster.client, name, "first", &body(5_000, 1)).await;
    }

    // Two down, any two: every partition still reads and writes.
    cluster.stop(stopped[0]).await;
    cluster.stop(stopped[1]).await;
    for name in &buckets {
        put(&cluster.client, name, "second", &body(6_000, 2)).await;
        assert_eq!(get(&cluster.client, name, "first").await, body(5_000, 1));
        let listed = cluster
            .client
            .list_objects(name, &andromede_client::ListOptions::default())
            .await
            .unwrap();
        assert_eq!(listed.objects.len(), 2);
    }

    // A third: only the partitions with three of their five replicas down refuse, and
    // they say so; the others carry on.
    cluster.stop(stopped[2]).await;
    for name in &lose {
        let error = cluster
            .client
            .put_object(name, "third", &b"refused"[..], Default::default())
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains(&format!(
                "no quorum: 2 of 5 replicas of bucket {name} reachable, 3 needed"
            )),
            "{error}"
        );
        let error = cluster
            .client
            .get_object_bytes(name, "first")
            .await
            .unwrap_err();
        assert!(is_no_quorum(&error), "{error}");
    }
    for name in &keep {
        put(&cluster.client, name, "third", &body(7_000, 3)).await;
        assert_eq!(get(&cluster.client, name, "second").await, body(6_000, 2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retired_nodes_records_all_reach_its_replacement_before_it_stops_counting() {
    let mut cluster = Cluster::start(REPLICAS + 1).await;
    wait_rosters(&cluster, REPLICAS + 1).await;
    cluster
        .client
        .create_bucket("handoff", bucket(2, 1, &[]))
        .await
        .unwrap();
    put_keys(&cluster, 0..20).await;
    let members = cluster.client.nodes();
    let order = closest_members(&members, &partition_key("handoff"));
    // The member that leaves: a replica of the bucket other than the bootstrap node; the
    // one that replaces it: the only node outside the set.
    let gone = order[..REPLICAS]
        .iter()
        .copied()
        .find(|p| Some(*p) != cluster.peer(0))
        .unwrap();
    let heir = order[REPLICAS];
    let gone_index = cluster.index_of(gone);
    let heir_index = cluster.index_of(heir);
    assert!(
        cluster.daemons[heir_index]
            .as_ref()
            .unwrap()
            .meta()
            .scan(Table::ObjectIndex, "handoff", b"", None, 1)
            .unwrap()
            .is_empty(),
        "the node outside the set already holds the bucket"
    );

    // It dies, and is retired where the authority key is.
    cluster.stop(gone_index).await;
    cluster.revoke(gone).await;
    // Writes go on meanwhile, acknowledged by the sets with and without it.
    put_keys(&cluster, 20..30).await;

    // Every view sees the departure, then drops the departed member only once every
    // member has handed off; by then the heir holds every record any other replica
    // holds, at the newest version.
    cluster.wait_handed_off(&[gone]).await;
    let running: Vec<usize> = (0..cluster.daemons.len())
        .filter(|&i| cluster.daemons[i].is_some())
        .collect();
    let heir_meta = cluster.daemons[heir_index].as_ref().unwrap().meta();
    for table in [Table::ObjectIndex, Table::Manifest] {
        let mut newest: BTreeMap<Vec<u8>, Version> = BTreeMap::new();
        for &i in running.iter().filter(|&&i| i != heir_index) {
            for (key, record) in cluster.daemons[i]
                .as_ref()
                .unwrap()
                .meta()
                .scan(table, "handoff", b"", None, 10_000)
                .unwrap()
            {
                let entry = newest.entry(key).or_insert(record.version.clone());
                if record.version > *entry {
                    *entry = record.version;
                }
            }
        }
        assert!(!newest.is_empty());
        for (sort, version) in &newest {
            let held = heir_meta
                .get(&andromede_cluster::meta::key::RecordKey {
                    table,
                    partition: "handoff".into(),
                    sort: sort.clone(),
                })
                .unwrap()
                .map(|r| r.version);
            assert!(
                held.as_ref() >= Some(version),
                "{table:?} {} not handed to the heir",
                String::from_utf8_lossy(sort)
            );
        }
    }
    for i in 0..30u8 {
        assert_eq!(
            get(&cluster.client, "handoff", &format!("key-{i:02}")).await,
            body(3_000, i)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_put_right_after_the_nodes_start_spreads_over_distinct_nodes() {
    // Four nodes, and at once a bucket and a 20 MB PUT: every shard of a segment on its
    // own node, the object surviving one node failure.
    let cluster = Cluster::start_quick(4).await;
    cluster
        .client
        .create_bucket("fresh", bucket(2, 1, &[]))
        .await
        .unwrap();
    let data = body(20_000_000, 7);
    let info = cluster
        .client
        .put_object("fresh", "big", &data[..], Default::default())
        .await
        .unwrap();
    assert_eq!(
        info.holders, 3,
        "shards doubled up on {} node(s)",
        info.holders
    );
    assert_eq!(info.node_failures_survived, Some(1));
    assert_eq!(get(&cluster.client, "fresh", "big").await, data);

    // Two nodes only: the shards double up, and the answer says what that survives.
    let pair = Cluster::start_quick(2).await;
    pair.client
        .create_bucket("pair", bucket(2, 1, &[]))
        .await
        .unwrap();
    let info = pair
        .client
        .put_object("pair", "small", &body(300_000, 8)[..], Default::default())
        .await
        .unwrap();
    assert_eq!(info.holders, 2);
    assert_eq!(info.node_failures_survived, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_node_finds_its_peers_without_its_bootstrap_list() {
    // Node 0 is every other node's bootstrap; it comes back on another port with no
    // bootstrap list: nobody can dial it, it must dial them from the roster it kept.
    let mut cluster = Cluster::start(4).await;
    wait_rosters(&cluster, 4).await;
    let roster_file = cluster.dir(0).join("roster.pb");
    assert!(
        roster_file.exists(),
        "no roster kept in {}",
        roster_file.display()
    );
    cluster.stop(0).await;
    cluster.restart_alone_elsewhere(0).await;
    let back = cluster.daemons[0].as_ref().unwrap();
    let found = eventually(Duration::from_secs(60), async || {
        let reach = back.membership().reach();
        reach.members == 4 && reach.reachable == 4
    })
    .await;
    assert!(
        found,
        "the restarted node reaches {:?} of its roster",
        back.membership().reach()
    );
}
