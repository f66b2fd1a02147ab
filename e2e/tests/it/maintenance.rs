//! The nodes' background metadata work against real daemons on 127.0.0.1: garbage
//! collection removes the shards and manifests of replaced and deleted versions (and
//! nothing else), and anti-entropy brings a replica that was down while records were
//! written up to date without any client reading them.

use std::sync::Arc;
use std::time::Duration;

use andromede_client::{Client, ClientError, MasterKey};
use andromede_cluster::meta::key::{RecordKey, Table};
use andromede_cluster::net::meta_message::{MetaRequest, MetaResponse, decode_meta_response};
use andromede_cluster::net::{PeerId, Protocol};
use andromede_cluster::{closest_members, partition_key};
use andromede_node::daemon::Daemon;

use crate::objects::{body, bucket, get, put, start_cluster};
use crate::{daemon_config, eventually, passes, shard_files};

const KIB: usize = 1 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replaced_and_deleted_versions_are_collected_after_the_grace_period() {
    let (dirs, daemons, first_addr) = start_cluster(&["FR", "FR", "FR", "FR"]).await;
    let master = MasterKey::generate();
    // Two writers of one tenant: one keeps replaced versions for an hour, one for a second.
    let connect = async |grace: Duration| {
        let mut config = crate::client_config(vec![first_addr.clone()], master.clone());
        config.gc_grace = grace;
        let client = Client::connect(config).await.unwrap();
        client
            .wait_for_nodes(4, Duration::from_secs(30))
            .await
            .unwrap();
        client
    };
    let patient = connect(Duration::from_secs(3600)).await;
    let hasty = connect(Duration::from_secs(1)).await;
    // The records below must land on exactly their replicas (all four nodes: the roster
    // is smaller than a replica set): wait until no view
    // sees a replica set changing (nodes of a new cluster catch up as they start, and
    // writes then also reach the set with them).
    let stable = eventually(Duration::from_secs(60), async || {
        let changing =
            |members: Vec<andromede_cluster::Member>| members.iter().any(|m| m.handing_off);
        daemons
            .iter()
            .flatten()
            .all(|d| !d.is_catching_up() && !changing(d.membership().all()))
            && !changing(patient.nodes())
            && !changing(hasty.nodes())
    })
    .await;
    assert!(stable, "the new cluster's replica sets never settled");
    patient
        .create_bucket("gc-test", bucket(2, 1, &[]))
        .await
        .unwrap();

    // Each of these is one segment: three shards.
    put(&patient, "gc-test", "kept", &body(300 * KIB, 1)).await;
    put(&patient, "gc-test", "kept", &body(300 * KIB, 2)).await;
    put(&hasty, "gc-test", "gone", &body(200 * KIB, 3)).await;
    assert_eq!(shard_files(&dirs), 9, "nothing is due yet");
    hasty.delete_object("gc-test", "gone").await.unwrap();
    // Inline objects have no shards; their manifests are collected all the same.
    put(&hasty, "gc-test", "tiny", b"one").await;
    put(&hasty, "gc-test", "tiny", b"two").await;

    // The deleted object's shards go; the replaced `kept` keeps its shards for an hour.
    let collected = eventually(Duration::from_secs(60), async || shard_files(&dirs) == 6).await;
    assert!(
        collected,
        "{} shard files left, 6 expected",
        shard_files(&dirs)
    );
    // Several more passes of every collector leave the version that is not due alone.
    let before: Vec<u64> = daemons.iter().flatten().map(|d| passes(d, "gc")).collect();
    assert!(
        crate::ran_passes(&daemons, "gc", &before, 3).await,
        "the collectors did not run"
    );
    assert_eq!(shard_files(&dirs), 6);
    let client = patient;
    assert_eq!(get(&client, "gc-test", "kept").await, body(300 * KIB, 2));
    assert_eq!(get(&client, "gc-test", "tiny").await, b"two");
    assert!(matches!(
        client.get_object_bytes("gc-test", "gone").await,
        Err(ClientError::NoSuchKey { .. })
    ));

    // The collected versions' manifests and garbage records are tombstones now, on every
    // node that holds them; nothing else was touched.
    let peers: Vec<PeerId> = daemons
        .iter()
        .flatten()
        .map(|d| d.net().local_peer_id())
        .collect();
    let mut live_garbage = 0;
    let mut live_manifests = 0;
    for &peer in &peers {
        for table in [Table::Garbage, Table::Manifest] {
            let request = MetaRequest::Scan {
                table,
                partition: "gc-test".into(),
                prefix: Vec::new(),
                start_after: None,
                limit: 100,
            };
            let answer = client
                .net()
                .request(peer, Protocol::Meta, request.encode())
                .await
                .unwrap();
            let MetaResponse::Scan { records, .. } =
                decode_meta_response(&request, &answer).unwrap()
            else {
                panic!("scan refused");
            };
            let live = records.iter().filter(|(_, r)| !r.is_tombstone()).count();
            match table {
                Table::Garbage => live_garbage += live,
                _ => live_manifests = live_manifests.max(live),
            }
        }
    }
    assert_eq!(
        live_garbage, 4,
        "only the garbage record that is not due is live, on its four replicas"
    );
    assert_eq!(
        live_manifests, 3,
        "the manifests of `kept` (both) and of the latest `tiny` are live"
    );

    // A garbage record for the *current* version of `kept`, due at once, applied
    // directly to every node by an admitted client: the collectors refuse it (they check
    // the object's index at quorum first) and delete nothing.
    let current = client.head_object("gc-test", "kept").await.unwrap();
    crate::apply_forged_garbage(&client, &daemons, "gc-test", "kept", &current.version_id).await;
    let before: Vec<u64> = daemons.iter().flatten().map(|d| passes(d, "gc")).collect();
    assert!(
        crate::ran_passes(&daemons, "gc", &before, 3).await,
        "the collectors did not run"
    );
    assert_eq!(
        shard_files(&dirs),
        6,
        "a forged garbage record deleted shards"
    );
    assert_eq!(get(&client, "gc-test", "kept").await, body(300 * KIB, 2));
    for daemon in daemons.into_iter().flatten() {
        daemon.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_that_was_down_catches_up_through_anti_entropy() {
    let (dirs, mut daemons, first_addr) = start_cluster(&["FR", "FR", "FR", "FR", "FR"]).await;
    let client = Client::connect(crate::client_config(
        vec![first_addr.clone()],
        MasterKey::generate(),
    ))
    .await
    .unwrap();
    client
        .wait_for_nodes(5, Duration::from_secs(30))
        .await
        .unwrap();
    client
        .create_bucket("ae-test", bucket(2, 1, &[]))
        .await
        .unwrap();
    put(
        &client,
        "ae-test",
        "before",
        b"written with every replica up",
    )
    .await;

    // Stop a replica of the bucket (not the bootstrap node, which the others dial).
    let replicas = closest_members(&client.nodes(), &partition_key("ae-test"));
    let first_peer = daemons[0].as_ref().unwrap().net().local_peer_id();
    let down = *replicas[..3]
        .iter()
        .find(|p| **p != first_peer)
        .expect("a replica other than the bootstrap node");
    let index = daemons
        .iter()
        .position(|d| d.as_ref().is_some_and(|d| d.net().local_peer_id() == down))
        .unwrap();
    daemons[index].take().unwrap().stop().await.unwrap();

    // Written while it is down: a new key, and a delete.
    put(
        &client,
        "ae-test",
        "during",
        b"written while a replica was down",
    )
    .await;
    client.delete_object("ae-test", "before").await.unwrap();

    let restarted = Daemon::start(daemon_config(
        dirs[index].path(),
        vec![first_addr.clone()],
        "FR",
    ))
    .await
    .unwrap();
    assert_eq!(restarted.net().local_peer_id(), down);
    daemons[index] = Some(restarted);

    // No client reads these keys: only anti-entropy can bring them to the replica. What
    // the replica holds is read from its own store, so the check needs no client route to
    // the restarted node (whose port changed).
    let meta = Arc::clone(daemons[index].as_ref().unwrap().meta());
    let record_on = |key: &str| {
        meta.get(&RecordKey {
            table: Table::ObjectIndex,
            partition: "ae-test".into(),
            sort: key.as_bytes().to_vec(),
        })
        .unwrap()
    };
    let caught_up = eventually(Duration::from_secs(60), async || {
        let during = record_on("during");
        let before = record_on("before");
        during.is_some_and(|r| !r.is_tombstone()) && before.is_some_and(|r| r.is_tombstone())
    })
    .await;
    assert!(caught_up, "the restarted replica did not catch up");
    assert_eq!(
        get(&client, "ae-test", "during").await,
        b"written while a replica was down"
    );
    for daemon in daemons.into_iter().flatten() {
        daemon.stop().await.unwrap();
    }
}
