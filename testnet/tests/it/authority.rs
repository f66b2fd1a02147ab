//! The cluster authority against real node processes: a node revoked with
//! `andromede-node revoke` is dropped by every other node, stays refused after restarts
//! on both sides, and its shards are rebuilt elsewhere.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use andromede_cluster::net::PeerId;
use andromede_testnet::redundancy::{Depth, check_bucket};

use crate::common;

const BUCKET: &str = "authority";

/// Waits (up to `within`) until no node of `others` lists `revoked` among its peers.
async fn wait_dropped(
    testnet: &andromede_testnet::cluster::Testnet,
    others: &[usize],
    revoked: &str,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    loop {
        let mut listing = Vec::new();
        for &i in others {
            match testnet.status(i).await {
                Ok(status) if !status.peers.iter().any(|p| p.peer == revoked) => {}
                _ => listing.push(i),
            }
        }
        if listing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nodes {listing:?} still list the revoked node after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_node_is_refused_everywhere_and_its_shards_are_rebuilt() {
    let _machine = common::MACHINE.read().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut testnet, client) = common::up(dir.path(), 5, BUCKET).await;
    let bodies: Vec<Vec<u8>> = (0..12u8).map(|i| vec![i; 200_000]).collect();
    for (i, body) in bodies.iter().enumerate() {
        client
            .put_object(BUCKET, &format!("o{i}"), &body[..], Default::default())
            .await
            .unwrap();
    }
    let victim = 3;
    let revoked = testnet.status(victim).await.unwrap().peer;
    let others: Vec<usize> = (0..5).filter(|&i| i != victim).collect();

    let started = Instant::now();
    testnet.revoke(victim).unwrap();
    wait_dropped(&testnet, &others, &revoked, Duration::from_secs(30)).await;
    eprintln!(
        "revoked node dropped by every other node {} ms after `andromede-node revoke` returned",
        started.elapsed().as_millis()
    );

    // Restarts on both sides: the list is kept on disk, the revoked node stays out.
    testnet.restart(victim).unwrap();
    testnet.restart(1).unwrap();
    let back = Instant::now() + Duration::from_secs(60);
    loop {
        let seen = testnet
            .status(1)
            .await
            .map(|s| s.peers.iter().filter(|p| p.reachable).count())
            .unwrap_or(0);
        if seen >= others.len() - 1 {
            break;
        }
        assert!(Instant::now() < back, "node 1 did not see the others again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_dropped(&testnet, &others, &revoked, Duration::from_secs(5)).await;
    // It still knows its old roster (from its file), but no member answers it.
    let victim_status = testnet.status(victim).await.unwrap();
    assert!(
        victim_status.peers.iter().all(|p| !p.reachable),
        "the revoked node was admitted by {:?}",
        victim_status.peers
    );
    assert!(victim_status.minority.is_some(), "{victim_status:?}");

    // Its shards count as lost and are rebuilt on the others.
    let running: BTreeSet<PeerId> = testnet
        .running_peers()
        .await
        .into_iter()
        .filter(|p| p.to_string() != revoked)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let redundancy = check_bucket(&client, BUCKET, &running, Depth::Have).await;
        if redundancy.as_ref().is_ok_and(|r| r.is_full()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not back to full redundancy without the revoked node: {redundancy:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for (i, body) in bodies.iter().enumerate() {
        assert_eq!(
            &client
                .get_object_bytes(BUCKET, &format!("o{i}"))
                .await
                .unwrap(),
            body
        );
    }
    testnet.down().unwrap();
}
