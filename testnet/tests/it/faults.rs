//! Each fault kind the testnet injects, against real node processes on 127.0.0.1: the
//! cluster returns to full redundancy by itself and every object reads back exactly.

use std::time::{Duration, Instant};

use andromede_client::{Client, PutObjectOptions};
use andromede_testnet::cluster::{Testnet, UpOptions, shard_files};
use andromede_testnet::redundancy::{Depth, Redundancy, check_bucket};

use crate::common;

const BUCKET: &str = "faults";

async fn up(dir: &std::path::Path) -> (Testnet, Client) {
    up_with(dir, 4).await
}

async fn up_with(dir: &std::path::Path, nodes: usize) -> (Testnet, Client) {
    common::up(dir, nodes, BUCKET).await
}

fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7).to_le_bytes()[0] ^ seed)
        .collect()
}

/// Objects of one and several segments (8 MiB segments) and one inlined.
async fn write_objects(client: &Client) -> Vec<(String, Vec<u8>)> {
    let objects: Vec<(String, Vec<u8>)> = [(300 * 1024, 1), (9 << 20, 2), (1000, 3), (2 << 20, 4)]
        .into_iter()
        .map(|(len, seed)| (format!("object-{seed}"), body(len, seed)))
        .collect();
    for (key, data) in &objects {
        client
            .put_object(
                BUCKET,
                key,
                &data[..],
                PutObjectOptions {
                    size_hint: Some(data.len() as u64),
                    ..PutObjectOptions::default()
                },
            )
            .await
            .unwrap();
    }
    objects
}

async fn read_all(client: &Client, objects: &[(String, Vec<u8>)]) {
    for (key, data) in objects {
        let read = client.get_object_bytes(BUCKET, key).await.unwrap();
        assert!(&read == data, "{key} read back other bytes");
    }
}

/// Waits until every segment is fully redundant over the running nodes.
async fn wait_full(testnet: &Testnet, client: &Client, within: Duration) -> Redundancy {
    let deadline = Instant::now() + within;
    loop {
        let running = testnet.running_peers().await;
        let redundancy = check_bucket(client, BUCKET, &running, Depth::Read)
            .await
            .unwrap();
        if redundancy.is_full() {
            return redundancy;
        }
        assert!(
            Instant::now() < deadline,
            "not back to full redundancy in {within:?}: {redundancy:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_repaired_around_and_restarts() {
    let _machine = common::MACHINE.read().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut testnet, client) = up(dir.path()).await;
    let objects = write_objects(&client).await;
    let before = wait_full(&testnet, &client, Duration::from_secs(30)).await;
    assert_eq!(before.objects, 4);
    assert_eq!(
        before.segments,
        1 + 2 + 1,
        "the inlined object has no segment"
    );

    testnet.kill(1).unwrap();
    assert!(!testnet.is_running(1));
    // k + m = 3 nodes are left: the killed node's shards are rebuilt on them.
    wait_full(&testnet, &client, Duration::from_secs(90)).await;
    read_all(&client, &objects).await;

    testnet.restart(1).unwrap();
    testnet.wait_settled(Duration::from_secs(60)).await.unwrap();
    wait_full(&testnet, &client, Duration::from_secs(30)).await;
    read_all(&client, &objects).await;
    testnet.down().unwrap();
    assert!(testnet.running_nodes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_gets_its_shards_back() {
    let _machine = common::MACHINE.read().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut testnet, client) = up(dir.path()).await;
    let objects = write_objects(&client).await;
    wait_full(&testnet, &client, Duration::from_secs(30)).await;

    let node = 2;
    let store = testnet.state().nodes[node].dir.join("store");
    assert!(!shard_files(&store).is_empty());
    testnet.wipe(node).unwrap();
    // Started empty (repair cannot have run yet: nobody is down, no sweep is due).
    assert!(shard_files(&store).is_empty(), "the wipe left shards");
    testnet.wait_settled(Duration::from_secs(60)).await.unwrap();
    wait_full(&testnet, &client, Duration::from_secs(90)).await;
    assert!(
        !shard_files(&store).is_empty(),
        "the wiped node got nothing back"
    );
    read_all(&client, &objects).await;
    testnet.down().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_shards_are_never_returned_and_are_rebuilt() {
    let _machine = common::MACHINE.read().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut testnet, client) = up(dir.path()).await;
    let objects = write_objects(&client).await;
    wait_full(&testnet, &client, Duration::from_secs(30)).await;

    // Every shard file of one node: at most one shard of each segment (m = 1).
    let corrupted = testnet.corrupt(3, 1.0, 7).unwrap();
    assert!(corrupted > 0);
    read_all(&client, &objects).await;
    // The scrubber quarantines what reads did not touch; repair rebuilds all of it.
    wait_full(&testnet, &client, Duration::from_secs(90)).await;
    read_all(&client, &objects).await;
    testnet.down().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_heals_and_nothing_is_lost() {
    let _machine = common::MACHINE.read().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut testnet, client) = up_with(dir.path(), 5).await;
    let mut objects = write_objects(&client).await;

    testnet.partition(&[0, 1]).await.unwrap();
    // Each side sees only itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = testnet.status(0).await.unwrap();
        let reachable: Vec<&str> = status
            .peers
            .iter()
            .filter(|p| p.reachable)
            .map(|p| p.peer.as_str())
            .collect();
        if reachable == [testnet.state().nodes[1].peer.as_deref().unwrap()] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 0 still reaches {reachable:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The client reaches both sides: writes and reads go on (past down_after too).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = body(500 * 1024, 9);
    client
        .put_object(BUCKET, "during", &during[..], PutObjectOptions::default())
        .await
        .unwrap();
    objects.push(("during".into(), during));
    read_all(&client, &objects).await;

    testnet.unpartition().await.unwrap();
    testnet.wait_settled(Duration::from_secs(60)).await.unwrap();
    wait_full(&testnet, &client, Duration::from_secs(90)).await;
    read_all(&client, &objects).await;
    testnet.down().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_node_delays_its_answers_and_nothing_breaks() {
    let _machine = common::MACHINE.read().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut testnet, client) = up(dir.path()).await;
    let objects = write_objects(&client).await;
    let slow_peer: andromede_cluster::net::PeerId = testnet.state().nodes[2]
        .peer
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();

    testnet.slow(2, 400).await.unwrap();
    // Every request it serves waits the delay (a lower bound: never flaky).
    let request = andromede_cluster::net::message::ShardRequest::Have { ids: Vec::new() };
    let start = Instant::now();
    client
        .net()
        .request(
            slow_peer,
            andromede_cluster::net::Protocol::Shard,
            request.encode(),
        )
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(400));
    read_all(&client, &objects).await;

    testnet.slow(2, 0).await.unwrap();
    assert!(
        testnet.slow(2, 10_000_000).await.is_err(),
        "an absurd delay is refused"
    );
    wait_full(&testnet, &client, Duration::from_secs(30)).await;
    testnet.down().unwrap();
}

#[test]
fn bad_fault_arguments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Testnet::open(dir.path()).is_err(), "no testnet there");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let error = runtime
        .block_on(Testnet::up(
            dir.path(),
            &UpOptions {
                nodes: 0,
                ..UpOptions::default()
            },
        ))
        .unwrap_err();
    assert!(error.to_string().contains("--nodes"), "{error}");
    let error = runtime
        .block_on(Testnet::up(
            dir.path(),
            &UpOptions {
                k: 0,
                ..UpOptions::default()
            },
        ))
        .unwrap_err();
    assert!(error.to_string().contains("--k"), "{error}");
}
