//! Named failure scenarios (issue 4) with a fixed schedule, against real node processes
//! on 127.0.0.1 killed with SIGKILL or a simulated power cut: metadata replicas lost right
//! after a write, a replica that missed a delete, clock skew, every node losing power.
//!
//! DESIGN.md, "Testnet": planted bugs (ack before fsync, write quorum of 1, raw-clock
//! versions) must make some scenario fail. The `planted_*` tests run a scenario with its
//! bug switched on and assert that it fails for the reason it should.

use std::time::Duration;

use andromede_client::{Client, ClientError, PutObjectOptions};
use andromede_cluster::faults::PlantedBug;
use andromede_cluster::{REPLICAS, closest_members, partition_key};
use andromede_testnet::cluster::Testnet;

use crate::common;

const BUCKET: &str = "scenarios";

async fn up(dir: &std::path::Path, nodes: usize) -> (Testnet, Client) {
    common::up(dir, nodes, BUCKET).await
}

async fn put(client: &Client, key: &str, data: &[u8]) {
    put_result(client, key, data).await.unwrap();
}

/// The testnet indices of the bucket's three metadata replicas, as the client sees them.
fn replica_nodes(testnet: &Testnet, client: &Client) -> Vec<usize> {
    let replicas = closest_members(&client.nodes(), &partition_key(BUCKET));
    replicas[..REPLICAS.min(replicas.len())]
        .iter()
        .map(|peer| {
            testnet
                .state()
                .nodes
                .iter()
                .position(|n| n.peer.as_deref() == Some(&peer.to_string()))
                .expect("a replica that is a testnet node")
        })
        .collect()
}

/// Reads `key` until it succeeds (the cluster is settling after restarts), at most 60 s;
/// any answer must be exactly `data`.
/// Reads `key` until it comes back, for up to 30 s: the callers read a cluster that is up
/// (after a fault, once it has settled), where an object that is there reads back within
/// a few retries; one that is still missing then is lost.
async fn read_back(client: &Client, key: &str, data: &[u8]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match client.get_object_bytes(BUCKET, key).await {
            Ok(read) => {
                assert!(read == data, "{key} read back other bytes");
                return;
            }
            Err(error) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{key} never read back: {error}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_metadata_replicas_killed_right_after_a_put_come_back_with_it() {
    let _machine = common::MACHINE.read().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut testnet, client) = up(dir.path(), 5).await;
    let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    let replicas = replica_nodes(&testnet, &client);
    put(&client, "acked", &data).await;
    // Right after the acknowledgement: two of the three replicas die without a flush
    // beyond what the write quorum already made durable.
    testnet.kill(replicas[0]).unwrap();
    testnet.kill(replicas[1]).unwrap();
    testnet.restart(replicas[0]).unwrap();
    testnet.restart(replicas[1]).unwrap();
    testnet.wait_settled(Duration::from_secs(60)).await.unwrap();
    read_back(&client, "acked", &data).await;
    // And through a client that has never seen the cluster before.
    let fresh = testnet.client().await.unwrap();
    fresh
        .wait_for_nodes(5, Duration::from_secs(30))
        .await
        .unwrap();
    read_back(&fresh, "acked", &data).await;
    testnet.down().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_offline_during_a_delete_comes_back_and_the_object_stays_deleted() {
    let _machine = common::MACHINE.read().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut testnet, client) = up(dir.path(), 5).await;
    let data = vec![7u8; 300_000];
    put(&client, "doomed", &data).await;
    put(&client, "kept", &data).await;
    let replicas = replica_nodes(&testnet, &client);

    testnet.kill(replicas[0]).unwrap();
    client.delete_object(BUCKET, "doomed").await.unwrap();
    testnet.restart(replicas[0]).unwrap();
    testnet.wait_settled(Duration::from_secs(60)).await.unwrap();
    // One of the replicas that saw the delete goes down too: the returning replica's
    // stale record now meets only one tombstone, which must still win.
    testnet.kill(replicas[1]).unwrap();
    for _ in 0..5 {
        match client.head_object(BUCKET, "doomed").await {
            Err(ClientError::NoSuchKey { .. }) => {}
            other => panic!("a deleted object came back: {other:?}"),
        }
        let listed = client
            .list_objects(BUCKET, &andromede_client::ListOptions::default())
            .await
            .unwrap();
        let keys: Vec<&str> = listed.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["kept"], "the listing shows a deleted object");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    read_back(&client, "kept", &data).await;
    testnet.down().unwrap();
}

/// A client of `testnet` whose clock reads `skew_ms` off, running with `bug`.
async fn skewed_client(testnet: &Testnet, skew_ms: i64, bug: Option<PlantedBug>) -> Client {
    let mut config = testnet.client_config().unwrap();
    config.clock_skew_ms = skew_ms;
    config.planted_bug = bug;
    let client = Client::connect(config).await.unwrap();
    client
        .wait_for_nodes(testnet.len(), Duration::from_secs(30))
        .await
        .unwrap();
    client
}

async fn put_result(client: &Client, key: &str, data: &[u8]) -> Result<(), ClientError> {
    client
        .put_object(
            BUCKET,
            key,
            data,
            PutObjectOptions {
                size_hint: Some(data.len() as u64),
                ..PutObjectOptions::default()
            },
        )
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_never_lets_a_wrong_clock_pin_or_lose_a_write() {
    let _machine = common::MACHINE.read().await;
    clock_skew(None).await;
}

/// Writers 10 minutes ahead and behind, clients running with `bug`.
async fn clock_skew(bug: Option<PlantedBug>) {
    const TEN_MINUTES_MS: i64 = 10 * 60 * 1000;
    let dir = tempfile::tempdir().unwrap();
    let (mut testnet, correct) = up(dir.path(), 4).await;
    let ahead = skewed_client(&testnet, TEN_MINUTES_MS, bug).await;
    let behind = skewed_client(&testnet, -TEN_MINUTES_MS, bug).await;
    let v1 = vec![1u8; 200_000];
    let v2 = vec![2u8; 200_000];
    let v3 = vec![3u8; 200_000];

    // A writer 10 minutes ahead is refused by the replicas, clearly, and changes
    // nothing: its version would have outlived every correct write for 10 minutes.
    put(&correct, "clock", &v1).await;
    let refused = put_result(&ahead, "clock", &v2).await.unwrap_err();
    assert!(refused.to_string().contains("NTP"), "unclear: {refused}");
    assert!(ahead.delete_object(BUCKET, "clock").await.is_err());
    read_back(&correct, "clock", &v1).await;
    // A later write from a correct clock wins.
    put(&correct, "clock", &v3).await;
    read_back(&correct, "clock", &v3).await;

    // A writer 10 minutes behind still overwrites (its version follows the one it
    // replaces), and a correct writer after it wins again.
    put(&behind, "clock", &v2).await;
    read_back(&correct, "clock", &v2).await;
    put(&correct, "clock", &v1).await;
    read_back(&behind, "clock", &v1).await;

    // Delete then re-put under skew and a partition: the writer behind deletes, then a
    // replica of the bucket is cut off while the correct writer puts the key again; once
    // the partition heals every client reads the re-put, never the delete.
    behind.delete_object(BUCKET, "clock").await.unwrap();
    let replicas = replica_nodes(&testnet, &correct);
    testnet.partition(&[replicas[0]]).await.unwrap();
    put(&correct, "clock", &v3).await;
    testnet.unpartition().await.unwrap();
    testnet.wait_settled(Duration::from_secs(60)).await.unwrap();
    for client in [&correct, &behind, &ahead] {
        read_back(client, "clock", &v3).await;
    }
    // And the behind writer deleting after the re-put wins over it (delete follows).
    behind.delete_object(BUCKET, "clock").await.unwrap();
    assert!(matches!(
        correct.head_object(BUCKET, "clock").await,
        Err(ClientError::NoSuchKey { .. })
    ));
    testnet.down().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_losing_power_right_after_acknowledgements_loses_nothing() {
    let _machine = common::MACHINE.read().await;
    power_cut_everywhere(None).await;
}

/// Objects acknowledged, then every node loses power at once (writes not yet durable
/// are undone, see `andromede_node::store::power`) and comes back: each object reads back.
async fn power_cut_everywhere(bug: Option<PlantedBug>) {
    let dir = tempfile::tempdir().unwrap();
    let (mut testnet, client) = common::up_planted(dir.path(), 5, BUCKET, bug).await;
    let objects: Vec<(String, Vec<u8>)> = (0..6u8)
        .map(|i| {
            (
                format!("powered-{i}"),
                vec![i; 150_000 + usize::from(i) * 70_001],
            )
        })
        .collect();
    for (key, data) in &objects {
        put(&client, key, data).await;
    }
    for i in 0..testnet.len() {
        testnet.power_cut(i).await.unwrap();
    }
    for i in 0..testnet.len() {
        testnet.start(i).unwrap();
    }
    testnet.wait_settled(Duration::from_secs(60)).await.unwrap();
    for (key, data) in &objects {
        read_back(&client, key, data).await;
    }
    testnet.down().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_quorum_outlives_each_replica_lost_in_turn() {
    let _machine = common::MACHINE.read().await;
    replicas_lost_in_turn(None).await;
}

/// Every metadata replica of the bucket but one is slow when a PUT is acknowledged; the
/// fast one dies right after it, then the slow ones before they serve what is still in
/// flight, and the slow ones come back: with a write quorum of 3 of 5, two of them made
/// the write durable before the acknowledgement, so the object reads back. With a write
/// quorum of one (planted), only the dead replica held it: lost.
///
/// The fast replica dies first: its anti-entropy pass, were it still running, could hand
/// the write on and let a write acknowledged by one replica survive by chance.
async fn replicas_lost_in_turn(bug: Option<PlantedBug>) {
    let dir = tempfile::tempdir().unwrap();
    let (mut testnet, reader) = up(dir.path(), 5).await;
    let writer = skewed_client(&testnet, 0, bug).await;
    let replicas = replica_nodes(&testnet, &writer);
    for &slow in &replicas[1..] {
        testnet.slow(slow, 3_000).await.unwrap();
    }
    let data = vec![9u8; 400_000];
    put(&writer, "in-turn", &data).await;
    for &replica in &replicas {
        testnet.kill(replica).unwrap();
    }
    for &replica in &replicas[1..] {
        testnet.start(replica).unwrap();
    }
    testnet.wait_settled(Duration::from_secs(60)).await.unwrap();
    read_back(&reader, "in-turn", &data).await;
    testnet.down().unwrap();
}

/// Runs `scenario` (which panics on a failed check) and returns why it failed; panics
/// when it passed.
async fn failure_of(scenario: impl std::future::Future<Output = ()> + Send + 'static) -> String {
    match tokio::spawn(scenario).await {
        Ok(()) => panic!("the scenario passed with its planted bug"),
        Err(error) => {
            let panic = error.into_panic();
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_ack_before_fsync_loses_objects_to_a_power_cut() {
    let _machine = common::MACHINE.read().await;
    let why = failure_of(power_cut_everywhere(Some(PlantedBug::AckBeforeFsync))).await;
    assert!(why.contains("never read back"), "failed otherwise: {why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_write_quorum_of_one_loses_an_acknowledged_write() {
    let _machine = common::MACHINE.read().await;
    let why = failure_of(replicas_lost_in_turn(Some(PlantedBug::WriteQuorumOne))).await;
    assert!(why.contains("never read back"), "failed otherwise: {why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_raw_clock_versions_lose_a_late_clock_s_overwrite() {
    let _machine = common::MACHINE.read().await;
    let why = failure_of(clock_skew(Some(PlantedBug::RawClockVersions))).await;
    assert!(
        why.contains("read back other bytes"),
        "failed otherwise: {why}"
    );
}
