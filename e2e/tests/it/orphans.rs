//! Collection of unreferenced shards against real daemons on 127.0.0.1: shards that no
//! manifest names are deleted once older than the grace period, never while a node of
//! the roster cannot answer, and never a shard of a live object — not even after one of
//! its metadata replicas lost everything.

use std::time::Duration;

use andromede_client::{Client, MasterKey};
use andromede_cluster::manifest::Body;
use andromede_cluster::net::message::{ShardRequest, ShardResponse, decode_shard_response};
use andromede_cluster::net::{Multiaddr, PeerId, Protocol};
use andromede_cluster::shard::hash::shard_id;
use andromede_cluster::{closest_members, partition_key};
use andromede_node::daemon::{Daemon, DaemonConfig};
use andromede_node::data_dir::DataDir;
use andromede_proto::ShardId;

use crate::objects::{body, bucket, get, put};
use crate::{daemon_config, eventually, listen_addr, passes};

fn config(dir: &std::path::Path, bootstrap: Vec<Multiaddr>) -> DaemonConfig {
    let mut config = daemon_config(dir, bootstrap, "FR");
    config.orphans.interval = Duration::from_millis(500);
    config.orphans.grace = Duration::from_secs(2);
    // No moves toward the preferred placement: once a stopped node is back, a sweep
    // would move the live object's shard back to it, and the copy it leaves is rightly
    // collected — under the checks below that name where the shards were.
    config.repair.rebalance_bytes_per_sweep = 0;
    config
}

fn config_at(dir: &std::path::Path, bootstrap: Vec<Multiaddr>, listen: Multiaddr) -> DaemonConfig {
    let mut config = config(dir, bootstrap);
    config.listen = vec![listen];
    config
}

/// Where the live object's shards are now (repair may move them while a node is down).
async fn live_shards(client: &Client) -> Vec<(PeerId, ShardId)> {
    let manifest = client.object_manifest("orphans", "live").await.unwrap();
    let Body::Segments(segments) = &manifest.body else {
        panic!("not segmented")
    };
    (0u8..3)
        .map(|j| {
            let holder = PeerId::from_bytes(manifest.holder(0, j).unwrap()).unwrap();
            (holder, segments[0].shard_ids[usize::from(j)])
        })
        .collect()
}

async fn store_shard(client: &Client, peer: PeerId, seed: u8) -> ShardId {
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8 ^ seed).collect();
    let id = shard_id(&data);
    let request = ShardRequest::Put {
        id,
        data: data.into(),
    };
    let answer = client
        .net()
        .request(peer, Protocol::Shard, request.encode())
        .await
        .unwrap();
    assert!(matches!(
        decode_shard_response(&request, answer.into()),
        Ok(ShardResponse::Put { .. })
    ));
    id
}

/// Whether `peer` holds `id`; retried while the client cannot reach it (a restarted node
/// listens on a new port, which the client learns through the DHT).
async fn has(client: &Client, peer: PeerId, id: ShardId) -> bool {
    let request = ShardRequest::Have { ids: vec![id] };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let answer = loop {
        match client
            .net()
            .request(peer, Protocol::Shard, request.encode())
            .await
        {
            Ok(answer) => break answer,
            Err(error) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{peer} unreachable: {error}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    match decode_shard_response(&request, answer.into()) {
        Ok(ShardResponse::Have { present }) => present == [true],
        other => panic!("{peer} answered a have with {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_unreferenced_shards_are_collected_and_only_when_every_node_answers() {
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let first = Daemon::start(config(dirs[0].path(), Vec::new()))
        .await
        .unwrap();
    let first_addr = listen_addr(&first).await;
    let mut daemons = vec![Some(first)];
    for dir in &dirs[1..] {
        daemons.push(Some(
            Daemon::start(config(dir.path(), vec![first_addr.clone()]))
                .await
                .unwrap(),
        ));
    }
    let client = Client::connect(crate::client_config(
        vec![first_addr.clone()],
        MasterKey::generate(),
    ))
    .await
    .unwrap();
    client
        .wait_for_nodes(4, Duration::from_secs(30))
        .await
        .unwrap();
    let peers: Vec<PeerId> = daemons
        .iter()
        .flatten()
        .map(|d| d.net().local_peer_id())
        .collect();
    client
        .create_bucket("orphans", bucket(2, 1, &[]))
        .await
        .unwrap();
    let data = body(300 * 1024, 5);
    put(&client, "orphans", "live", &data).await;
    let live = live_shards(&client).await;

    // Orphans on two nodes go once old enough (after the collectors' warm-up: six
    // membership refreshes).
    let orphan_1 = store_shard(&client, peers[1], 1).await;
    let orphan_2 = store_shard(&client, peers[2], 2).await;
    assert!(has(&client, peers[1], orphan_1).await);
    let gone = eventually(Duration::from_secs(90), async || {
        !has(&client, peers[1], orphan_1).await && !has(&client, peers[2], orphan_2).await
    })
    .await;
    assert!(gone, "unreferenced shards were not collected");
    for (holder, id) in &live {
        assert!(
            has(&client, *holder, *id).await,
            "a live shard was collected"
        );
    }

    // With a node of the roster stopped, nothing is collected.
    let stopped = 3;
    let stopped_addr = listen_addr(daemons[stopped].as_ref().unwrap()).await;
    daemons[stopped].take().unwrap().stop().await.unwrap();
    let waiting = store_shard(&client, peers[1], 3).await;
    // Old enough to go, and looked at by two passes since.
    let stored = tokio::time::Instant::now();
    let before = passes(daemons[1].as_ref().unwrap(), "orphans");
    let ran = eventually(Duration::from_secs(30), async || {
        stored.elapsed() > Duration::from_secs(3)
            && passes(daemons[1].as_ref().unwrap(), "orphans") >= before + 2
    })
    .await;
    assert!(ran, "the collector did not run");
    assert!(
        has(&client, peers[1], waiting).await,
        "collected while a node could not answer"
    );
    // Back on the same address, so that the client reaches it at once.
    daemons[stopped] = Some(
        Daemon::start(config_at(
            dirs[stopped].path(),
            vec![first_addr.clone()],
            stopped_addr,
        ))
        .await
        .unwrap(),
    );
    let gone = eventually(Duration::from_secs(60), async || {
        !has(&client, peers[1], waiting).await
    })
    .await;
    assert!(gone, "not collected once every node answered again");

    // A metadata replica of the bucket loses everything: the other replicas still name
    // the live shards, so none is collected. (Node 3 was down past `down_after`: repair
    // may have moved its shard, and its old copy may since be collected — rightly.)
    let live = live_shards(&client).await;
    let replicas = closest_members(&client.nodes(), &partition_key("orphans"));
    let replica = replicas[..3]
        .iter()
        .find(|r| live.iter().any(|(holder, _)| holder == *r))
        .copied()
        .unwrap_or(replicas[0]);
    let wiped = peers.iter().position(|p| *p == replica).unwrap();
    let wiped_addr = listen_addr(daemons[wiped].as_ref().unwrap()).await;
    daemons[wiped].take().unwrap().stop().await.unwrap();
    std::fs::remove_dir_all(DataDir::new(dirs[wiped].path()).meta()).unwrap();
    let bootstrap = if wiped == 0 {
        Vec::new()
    } else {
        vec![first_addr.clone()]
    };
    daemons[wiped] = Some(
        Daemon::start(config_at(dirs[wiped].path(), bootstrap, wiped_addr))
            .await
            .unwrap(),
    );
    // Every collector passes twice with the wiped node back (past its warm-up).
    let before: Vec<u64> = daemons
        .iter()
        .flatten()
        .map(|d| passes(d, "orphans"))
        .collect();
    let ran = eventually(Duration::from_secs(60), async || {
        daemons
            .iter()
            .flatten()
            .zip(&before)
            .all(|(d, before)| passes(d, "orphans") >= before + 2)
    })
    .await;
    assert!(ran, "the collectors did not run");
    for (holder, id) in &live {
        assert!(
            has(&client, *holder, *id).await,
            "a live shard was collected after a replica lost its metadata"
        );
    }
    assert_eq!(get(&client, "orphans", "live").await, data);
    for daemon in daemons.into_iter().flatten() {
        daemon.stop().await.unwrap();
    }
}
